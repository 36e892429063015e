//! NATS for the embedded host: actors' `wasmcloud:messaging/consumer` calls go to NATS, and
//! the subjects in an actor's config feed its `wasmcloud:messaging/handler`.
//!
//! # Cache ingest
//!
//! [`NatsConnection::cache_ingest`] (started by `edgecell serve`) answers producers' cache put
//! requests, so large payloads (video frames) reach an actor's keyspace without travelling on
//! the bus more than once; the wasmCloud kv-cache provider answers the same protocol:
//!
//! - request subject `edgecell.cache.put.<keyspace>`: the keyspace is the one token after the
//!   prefix (non-empty, no wildcards, no further `.`), e.g. `video-analytics`, the
//!   video-analytics actor's keyspace;
//! - header `edgecell-namespace` (required): the namespace inside the keyspace;
//! - header `edgecell-key` (required): the key;
//! - header `edgecell-ttl-ms` (optional): lifetime in decimal milliseconds; absent or empty =
//!   no expiry;
//! - body: the value's bytes (at most the cache's `max_value_bytes`).
//!
//! The reply is JSON `{"version":N}` (the entry's new version) or `{"error":"<message>"}`
//! (`subject … is not <prefix>.<keyspace>`, `missing header …`, `header edgecell-ttl-ms: …`,
//! `invalid key: …`, `invalid namespace: …`, `value larger than the per-entry limit …`). A bad
//! request never stops the handler. Requests without a reply subject are applied silently.
//! Every embedded host on the lattice subscribes (no queue group), so each host's cache holds
//! the frames whichever host's actor is handed the reference. A producer counts the first
//! reply only: with hosts whose cache settings differ (a smaller `max_value_bytes`, another
//! `ingest_open`), a frame one host refused can be referenced to that host's actor, which then
//! reports it missing. Give every host on one lattice the same cache settings.
//!
//! # Failures
//!
//! A message whose delivery fails in the host (a trap, the deadline, the memory cap, no free
//! instance) is answered on its reply subject with `{"error":"…"}`, as the actors answer
//! their own errors, so a requester does not wait out its timeout. Messages the client had to
//! drop because an actor could not keep up (a slow consumer) are logged.
//!
//! # Stopping
//!
//! [`Feed::drain`] and [`CacheIngest::drain`] stop a subscription without losing what the
//! client already holds: they unsubscribe (other hosts of the queue group get what follows),
//! deliver the messages already received, and wait for the deliveries running, until a
//! deadline. `stop_taking` on all of them first makes them unsubscribe together. A message
//! the server sent just before it saw the unsubscribe, but that arrives after it, is lost (NATS
//! core is at most once). Dropping a feed or ingest instead stops it at once and loses its
//! buffered messages.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use edgecell_kv_cache::Cache;
use edgecell_kv_cache::ingest;

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

/// Subject prefix of cache put requests (`<prefix>.<keyspace>`).
pub const CACHE_PUT_PREFIX: &str = "edgecell.cache.put";

/// How long an actor's publish may wait for the client (its send queue is full while the
/// server is unreachable) before it fails: an actor call must not hang on NATS.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the client reports besides messages: drops are worth a warning.
async fn log_event(event: async_nats::Event) {
    match event {
        async_nats::Event::SlowConsumer(sid) => {
            tracing::warn!(subscription = sid, "NATS messages dropped: an actor does not keep up (slow consumer)");
        }
        async_nats::Event::ServerError(e) => tracing::warn!(error = %e, "NATS server error"),
        async_nats::Event::ClientError(e) => tracing::warn!(error = %e, "NATS client error"),
        other => tracing::info!(event = %other, "NATS connection"),
    }
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
                    async_nats::ConnectOptions::new()
                        .name("edgecell-embedded-host")
                        .retry_on_initial_connect()
                        // each request carries its own timeout (the client's default would cut
                        // every one at 10 s)
                        .request_timeout(None)
                        .event_callback(log_event)
                        .connect(url),
                )
                .await
            })
            .map_err(|_| NatsError::Connect { url: url.to_owned(), message: "timed out after 5 s".into() })?
            .map_err(|e| NatsError::Connect { url: url.to_owned(), message: e.to_string() })?;
        // With retries on the initial connect, connect() returns before a connection exists,
        // and every later flush (the subscriptions' round trips) would wait for one without
        // limit: wait for the connection here, within the same bound.
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), client.flush()).await })
            .map_err(|_| NatsError::Connect { url: url.to_owned(), message: "no connection within 5 s (is the server running?)".into() })?
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

    /// Stops the client's runtime, waiting at most `timeout` for deliveries still running
    /// (dropping the connection would wait for them without limit).
    pub fn shutdown(self, timeout: Duration) {
        let Self { rt, client, .. } = self;
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(1), client.flush()).await });
        rt.shutdown_timeout(timeout);
    }

    /// Subscribe `subjects` (as queue group `edgecell.<actor>`, so several hosts share the work)
    /// and deliver every message to the pool's actor, at most `concurrency` at a time.
    pub fn feed(&self, pool: &Arc<InstancePool>, subjects: &[String], concurrency: usize) -> Result<Feed, NatsError> {
        let stats = Arc::new(FeedStats::default());
        // (the semaphore's own limit: more permits than that would panic it)
        let concurrency = concurrency.clamp(1, tokio::sync::Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let group = format!("edgecell.{}", pool.actor().name());
        // built first, so a subscription that fails stops the ones already running
        let mut feed = Feed {
            tasks: Draining::new(self.rt.handle().clone()),
            stats: Arc::clone(&stats),
            permits: Arc::clone(&permits),
            concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX),
        };
        for subject in subjects {
            let mut sub = self
                .rt
                .block_on(self.client.queue_subscribe(subject.clone(), group.clone()))
                .map_err(|e| NatsError::Subscribe { subject: subject.clone(), message: e.to_string() })?;
            let (pool, stats, permits, client) = (Arc::clone(pool), Arc::clone(&stats), Arc::clone(&permits), self.client.clone());
            let handle = self.rt.handle().clone();
            let (mut stop, mut draining) = (feed.tasks.stop_signal(), false);
            feed.tasks.push(self.rt.spawn(async move {
                while let Some(msg) = next_until_drained(&mut sub, &mut stop, &mut draining).await {
                    let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                    let bm = BrokerMessage {
                        subject: msg.subject.to_string(),
                        body: msg.payload.to_vec(),
                        reply_to: msg.reply.map(|r| r.to_string()),
                    };
                    let (pool, stats, client, handle) = (Arc::clone(&pool), Arc::clone(&stats), client.clone(), handle.clone());
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
                                // the actor could not answer: the host does, so a requester
                                // does not wait out its timeout
                                if let Some(to) = bm.reply_to {
                                    let body = serde_json::json!({ "error": e.to_string() }).to_string();
                                    let sent = handle.block_on(async {
                                        tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(to, body.into())).await
                                    });
                                    if !matches!(sent, Ok(Ok(()))) {
                                        tracing::warn!(subject = %bm.subject, "error reply not sent");
                                    }
                                }
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
            .block_on(server_round_trip(&self.client))
            .map_err(|message| NatsError::Subscribe { subject: subjects.join(","), message })?;
        Ok(feed)
    }

    /// Answer cache put requests on `edgecell.cache.put.>` by writing into `cache`, in the
    /// namespaces its ingest policy opens (`Cache::with_ingest`; see the module docs for the
    /// protocol). Live when this returns; stops when the result is dropped.
    pub fn cache_ingest(&self, cache: Arc<Cache>) -> Result<CacheIngest, NatsError> {
        let subject = format!("{CACHE_PUT_PREFIX}.>");
        let sub_err = |message: String| NatsError::Subscribe { subject: subject.clone(), message };
        let mut sub = self.rt.block_on(self.client.subscribe(subject.clone())).map_err(|e| sub_err(e.to_string()))?;
        let stats = Arc::new(IngestStats::default());
        let (client, task_stats) = (self.client.clone(), Arc::clone(&stats));
        let mut ingest = CacheIngest { tasks: Draining::new(self.rt.handle().clone()), stats };
        let (mut stop, mut draining) = (ingest.tasks.stop_signal(), false);
        ingest.tasks.push(self.rt.spawn(async move {
            while let Some(msg) = next_until_drained(&mut sub, &mut stop, &mut draining).await {
                let reply = answer_cache_put(&cache, &msg, &task_stats);
                if let Some(to) = msg.reply
                    && let Err(e) = client.publish(to, reply.into()).await
                {
                    tracing::warn!(subject = %msg.subject, error = %e, "cache put reply not sent");
                }
            }
        }));
        // (built before the round trip, so a failed one stops the task)
        self.rt.block_on(server_round_trip(&self.client)).map_err(sub_err)?;
        Ok(ingest)
    }
}

/// Returns once the server has processed everything this client sent before the call (its
/// SUBs included): a message to a fresh inbox comes back through the server. `flush()` alone
/// only empties the client's write buffer.
async fn server_round_trip(client: &async_nats::Client) -> Result<(), String> {
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await.map_err(|e| format!("round trip: {e}"))?;
    client.publish(inbox, Vec::new().into()).await.map_err(|e| format!("round trip: {e}"))?;
    match tokio::time::timeout(Duration::from_secs(5), client.flush()).await {
        Ok(flushed) => flushed.map_err(|e| format!("round trip flush: {e}"))?,
        Err(_) => return Err("round trip: the client could not flush within 5 s (disconnected)".into()),
    }
    match tokio::time::timeout(Duration::from_secs(5), echo.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("round trip: subscription closed".into()),
        Err(_) => Err("round trip: no echo from the server within 5 s".into()),
    }
}

/// Applies one cache put request to `cache` and returns the reply body (`{"version":N}` or
/// `{"error":"…"}`); counts the outcome in `stats`.
pub fn answer_cache_put(cache: &Cache, msg: &async_nats::Message, stats: &IngestStats) -> Vec<u8> {
    let header = |name: &str| msg.headers.as_ref().and_then(|h| h.get(name)).map(async_nats::HeaderValue::as_str);
    let outcome = ingest::put(cache, CACHE_PUT_PREFIX, msg.subject.as_str(), header, msg.payload.to_vec());
    match &outcome {
        Ok(version) => {
            stats.stored.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(subject = %msg.subject, version, bytes = msg.payload.len(), "cache put");
        }
        Err(e) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subject = %msg.subject, error = %e, "cache put refused");
        }
    }
    ingest::reply(&outcome)
}

/// The next message of `sub`; once `stop` fires, the subscription is drained (`draining`
/// records that): unsubscribed, with the messages the client already holds still handed out
/// before the end. The stop is looked at first, so a busy subscription drains too.
async fn next_until_drained(
    sub: &mut async_nats::Subscriber,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    draining: &mut bool,
) -> Option<async_nats::Message> {
    if !*draining {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                // the owner is gone (dropped, not drained): end
                if changed.is_err() {
                    return None;
                }
            }
            msg = sub.next() => return msg,
        }
        *draining = true;
        if let Err(e) = sub.drain().await {
            tracing::warn!(error = %e, "cannot drain a subscription; its buffered messages are dropped");
            return None;
        }
    }
    sub.next().await
}

/// The tasks of subscriptions that stop together: dropped, they are aborted; drained, they
/// finish what their client holds.
#[derive(Debug)]
struct Draining {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::runtime::Handle,
}

impl Draining {
    fn new(handle: tokio::runtime::Handle) -> Self {
        Self { tasks: Vec::new(), stop: tokio::sync::watch::Sender::new(false), handle }
    }

    fn stop_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    fn push(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Tells every task to drain (they unsubscribe and take nothing new).
    fn begin(&self) {
        self.stop.send_replace(true);
    }

    /// [`Self::begin`], then waits until the tasks are done and `then` is, until `deadline`.
    /// True if all finished in time; the rest are aborted.
    fn drain(&mut self, deadline: Instant, then: impl std::future::Future<Output = ()>) -> bool {
        self.begin();
        let tasks = std::mem::take(&mut self.tasks);
        let aborts: Vec<_> = tasks.iter().map(tokio::task::JoinHandle::abort_handle).collect();
        let done = self.handle.block_on(async {
            tokio::time::timeout_at(deadline.into(), async {
                for t in tasks {
                    let _ = t.await;
                }
                then.await;
            })
            .await
            .is_ok()
        });
        for a in aborts {
            a.abort();
        }
        done
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Counts of a [`CacheIngest`]'s requests.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub stored: AtomicU64,
    pub refused: AtomicU64,
}

/// The running cache put handler; unsubscribes when dropped.
#[derive(Debug)]
pub struct CacheIngest {
    tasks: Draining,
    stats: Arc<IngestStats>,
}

impl CacheIngest {
    #[must_use]
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Stops taking requests (unsubscribes) without waiting: call it on everything that stops
    /// together before [`Self::drain`]ing any one of them.
    pub fn stop_taking(&self) {
        self.tasks.begin();
    }

    /// Stops taking requests and answers those already received, until `deadline`. True if all
    /// were answered in time. Must not be called from inside a tokio runtime.
    pub fn drain(mut self, deadline: Instant) -> bool {
        self.tasks.drain(deadline, async {})
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
    tasks: Draining,
    stats: Arc<FeedStats>,
    /// One per delivery running.
    permits: Arc<tokio::sync::Semaphore>,
    concurrency: u32,
}

impl Feed {
    #[must_use]
    pub fn stats(&self) -> &FeedStats {
        &self.stats
    }

    /// The counts, to read after the feed is gone.
    #[must_use]
    pub fn stats_handle(&self) -> Arc<FeedStats> {
        Arc::clone(&self.stats)
    }

    /// Stops taking messages (unsubscribes) without waiting: call it on every feed that stops
    /// together before [`Self::drain`]ing any one of them, so none goes on taking messages
    /// from its queue group while another drains.
    pub fn stop_taking(&self) {
        self.tasks.begin();
    }

    /// Stops taking messages and delivers those the client already holds, waiting for every
    /// delivery to end, until `deadline`. True if all ended in time (a delivery still running
    /// then goes on until the actor call returns or hits its deadline). Messages the server
    /// sent before it saw the unsubscribe but that reach the client after it are lost (NATS
    /// core delivers at most once). While the client is disconnected the unsubscribe cannot
    /// be sent and this waits until `deadline`. Must not be called from inside a tokio runtime.
    pub fn drain(mut self, deadline: Instant) -> bool {
        let (permits, n) = (Arc::clone(&self.permits), self.concurrency);
        self.tasks.drain(deadline, async move {
            // every permit back: no delivery is running
            let _ = permits.acquire_many(n).await;
        })
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
            let send = async {
                match msg.reply_to {
                    Some(reply) => client.publish_with_reply(msg.subject, reply, msg.body.into()).await,
                    None => client.publish(msg.subject, msg.body.into()).await,
                }
            };
            tokio::time::timeout(PUBLISH_TIMEOUT, send)
                .await
                .map_err(|_| format!("publish failed: NATS did not take the message within {} s", PUBLISH_TIMEOUT.as_secs()))?
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
