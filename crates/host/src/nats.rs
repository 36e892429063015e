//! NATS for the embedded host: actors' `wasmcloud:messaging/consumer` calls go to NATS, and
//! the subjects in an actor's config feed its `wasmcloud:messaging/handler`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;

use crate::bindings::BrokerMessage;
use crate::runtime::InstancePool;
use crate::services::Bus;

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("starting the NATS client runtime: {0}")]
    Runtime(String),
    #[error("connecting to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("subscribing to {subject}: {message}")]
    Subscribe { subject: String, message: String },
}

/// A NATS client with its own small tokio runtime.
pub struct NatsConnection {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    url: String,
}

impl std::fmt::Debug for NatsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConnection").field("url", &self.url).finish_non_exhaustive()
    }
}

impl NatsConnection {
    /// Connect (fails fast if the server is not there).
    pub fn connect(url: &str) -> Result<Self, NatsError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("edgecell-nats")
            .enable_all()
            .build()
            .map_err(|e| NatsError::Runtime(e.to_string()))?;
        let client = rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    async_nats::ConnectOptions::new().name("edgecell-embedded-host").retry_on_initial_connect().connect(url),
                )
                .await
            })
            .map_err(|_| NatsError::Connect { url: url.to_owned(), message: "timed out after 5 s".into() })?
            .map_err(|e| NatsError::Connect { url: url.to_owned(), message: e.to_string() })?;
        Ok(Self { rt, client, url: url.to_owned() })
    }

    /// The bus actors publish through.
    #[must_use]
    pub fn bus(&self) -> Arc<NatsBus> {
        Arc::new(NatsBus { client: self.client.clone(), handle: self.rt.handle().clone() })
    }

    #[must_use]
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    #[must_use]
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }

    /// Subscribe `subjects` (as queue group `edgecell.<actor>`, so several hosts share the work)
    /// and deliver every message to the pool's actor, at most `concurrency` at a time.
    pub fn feed(&self, pool: &Arc<InstancePool>, subjects: &[String], concurrency: usize) -> Result<Feed, NatsError> {
        let stats = Arc::new(FeedStats::default());
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let group = format!("edgecell.{}", pool.actor().name());
        let mut tasks = Vec::new();
        for subject in subjects {
            let mut sub = self
                .rt
                .block_on(self.client.queue_subscribe(subject.clone(), group.clone()))
                .map_err(|e| NatsError::Subscribe { subject: subject.clone(), message: e.to_string() })?;
            let (pool, stats, permits) = (Arc::clone(pool), Arc::clone(&stats), Arc::clone(&permits));
            tasks.push(self.rt.spawn(async move {
                while let Some(msg) = sub.next().await {
                    let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                    let bm = BrokerMessage {
                        subject: msg.subject.to_string(),
                        body: msg.payload.to_vec(),
                        reply_to: msg.reply.map(|r| r.to_string()),
                    };
                    let (pool, stats) = (Arc::clone(&pool), Arc::clone(&stats));
                    tokio::task::spawn_blocking(move || {
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        match pool.with_instance(|i| i.handle_message(&bm)) {
                            Ok(Ok(())) => {
                                stats.handled.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(Err(e)) => {
                                stats.actor_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(actor = %pool.actor().name(), subject = %bm.subject, error = %e, "actor rejected message");
                            }
                            Err(e) => {
                                stats.host_errors.fetch_add(1, Ordering::Relaxed);
                                tracing::error!(actor = %pool.actor().name(), subject = %bm.subject, error = %e, "delivery failed");
                            }
                        }
                        drop(permit);
                    });
                }
            }));
        }
        // Round trip to the server so the subscriptions are live when this returns: a request
        // sent right after must not meet "no responders".
        self.rt
            .block_on(self.client.flush())
            .map_err(|e| NatsError::Subscribe { subject: subjects.join(","), message: format!("flush: {e}") })?;
        Ok(Feed { tasks, stats })
    }
}

/// Counts of one feed's deliveries.
#[derive(Debug, Default)]
pub struct FeedStats {
    pub received: AtomicU64,
    pub handled: AtomicU64,
    /// The actor returned an error for the message.
    pub actor_errors: AtomicU64,
    /// The host could not deliver (trap, deadline, memory limit).
    pub host_errors: AtomicU64,
}

/// A running subscription; unsubscribes when dropped.
#[derive(Debug)]
pub struct Feed {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stats: Arc<FeedStats>,
}

impl Feed {
    #[must_use]
    pub fn stats(&self) -> &FeedStats {
        &self.stats
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// `wasmcloud:messaging/consumer` over NATS. Must not be called from a tokio worker thread
/// (actor calls run on blocking threads or outside the runtime, which is what the host does).
pub struct NatsBus {
    client: async_nats::Client,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus").finish_non_exhaustive()
    }
}

impl Bus for NatsBus {
    fn publish(&self, _from: &str, msg: BrokerMessage) -> Result<(), String> {
        let client = self.client.clone();
        self.handle.block_on(async move {
            match msg.reply_to {
                Some(reply) => client.publish_with_reply(msg.subject, reply, msg.body.into()).await,
                None => client.publish(msg.subject, msg.body.into()).await,
            }
            .map_err(|e| format!("publish failed: {e}"))
        })
    }

    fn request(&self, _from: &str, subject: &str, body: Vec<u8>, timeout: Duration) -> Result<BrokerMessage, String> {
        let client = self.client.clone();
        let subject = subject.to_owned();
        self.handle.block_on(async move {
            let reply = tokio::time::timeout(timeout, client.request(subject.clone(), body.into()))
                .await
                .map_err(|_| format!("request to {subject} timed out after {} ms", timeout.as_millis()))?
                .map_err(|e| format!("request to {subject} failed: {e}"))?;
            Ok(BrokerMessage {
                subject: reply.subject.to_string(),
                body: reply.payload.to_vec(),
                reply_to: reply.reply.map(|r| r.to_string()),
            })
        })
    }
}
