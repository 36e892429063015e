//! wRPC bindings, NATS subscriptions, handlers and link hooks of the messaging provider.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use edgecell_provider_common::{inject_headers, invocation_span, span_from_headers};
use futures::StreamExt as _;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument as _, Span};
use wasmcloud_provider_sdk::{Context, LinkConfig, LinkDeleteInfo, Provider, ProviderInitConfig};

use crate::config::{self, LinkSettings, check_subject};

wit_bindgen_wrpc::generate!({
    world: "messaging-nats-provider",
    path: "../../wit",
    generate_all,
});

use exports::wasmcloud::messaging::consumer as wit_consumer;
use wasmcloud::messaging::handler as wit_handler;
use wasmcloud::messaging::types::BrokerMessage;

/// A handler link: the component it delivers to and the link's name.
type LinkKey = (String, String);

/// A handler link's settings and the tasks of its subscriptions.
type Subscribed = (LinkSettings, Vec<JoinHandle<()>>);

#[derive(Default)]
struct State {
    default_uris: RwLock<Vec<String>>,
    /// One NATS connection per server list, shared by the links that name the same servers.
    clients: tokio::sync::Mutex<HashMap<String, async_nats::Client>>,
    /// The connection each linked component publishes on (consumer links).
    publishers: RwLock<HashMap<String, async_nats::Client>>,
    /// The settings and subscription tasks of each handler link, by (component, link name).
    subscriptions: std::sync::Mutex<HashMap<LinkKey, Subscribed>>,
    /// Held across a handler link's whole change (stop, subscribe, record): the SDK and a link
    /// sweep may deliver one link at once, and two interleaved changes would leave a
    /// subscription that nothing stops (a dropped `JoinHandle` does not end its task).
    link_changes: tokio::sync::Mutex<()>,
}

/// The provider: subscribes for linked handlers, publishes for linked consumers.
#[derive(Clone, Default)]
pub struct MessagingProvider(Arc<State>);

impl MessagingProvider {
    pub async fn run() -> anyhow::Result<()> {
        edgecell_provider_common::run_and_serve!(Self::default(), "edgecell-messaging-nats", serve)
    }

    fn defaults(&self) -> Vec<String> {
        let d = self.0.default_uris.read().unwrap_or_else(PoisonError::into_inner).clone();
        if d.is_empty() {
            vec![config::DEFAULT_URI.to_owned()]
        } else {
            d
        }
    }

    async fn client(&self, uris: &[String]) -> anyhow::Result<async_nats::Client> {
        let key = uris.join(",");
        let mut clients = self.0.clients.lock().await;
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let addrs = uris
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>().with_context(|| format!("bad NATS URL {u}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let client = async_nats::ConnectOptions::new()
            .name("edgecell-messaging-nats")
            .connect(addrs)
            .await
            .with_context(|| format!("failed to connect to {key}"))?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    async fn publisher(&self, cx: Option<&Context>) -> anyhow::Result<async_nats::Client> {
        let linked = cx
            .and_then(|c| c.component.as_deref())
            .and_then(|source| self.0.publishers.read().unwrap_or_else(PoisonError::into_inner).get(source).cloned());
        match linked {
            Some(c) => Ok(c),
            None => self.client(&self.defaults()).await,
        }
    }

    fn stop_subscriptions(&self, key: &LinkKey) {
        let tasks = self.0.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        for t in tasks.into_iter().flat_map(|(_, tasks)| tasks) {
            t.abort();
        }
    }

    /// True when the link `key` is subscribed with exactly `settings` and its subscriptions
    /// still run (the same link delivered again: by a sweep, or for a component's second link
    /// name). A subscription the server ended is taken again.
    fn subscribed_as(&self, key: &LinkKey, settings: &LinkSettings) -> bool {
        self.0
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|(s, tasks)| s == settings && tasks.iter().all(|t| !t.is_finished()))
    }
}

/// Delivers one message to the component: a span that continues the producer's trace (if its
/// headers carry one) around a wRPC call that hands the trace on to the host.
async fn deliver(wrpc: wasmcloud_provider_sdk::provider::WrpcClient, msg: async_nats::Message) {
    let span = span_from_headers("messaging.handle-message", msg.subject.as_str(), msg.headers.as_ref());
    async move {
        let mut headers = async_nats::HeaderMap::new();
        inject_headers(&Span::current(), &mut headers);
        let m = BrokerMessage { subject: msg.subject.to_string(), body: msg.payload, reply_to: msg.reply.map(|r| r.to_string()) };
        match wit_handler::handle_message(&wrpc, Some(headers), &m).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, subject = m.subject, "component failed to handle message"),
            Err(e) => warn!(error = %format!("{e:#}"), subject = m.subject, "failed to call component"),
        }
    }
    .instrument(span)
    .await;
}

async fn subscribe(
    client: &async_nats::Client,
    settings: &LinkSettings,
    wrpc: &wasmcloud_provider_sdk::provider::WrpcClient,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.max_concurrency));
    let mut tasks: Vec<JoinHandle<()>> = Vec::new();
    for s in &settings.subscriptions {
        let subscribed = match &s.queue {
            Some(q) => client.queue_subscribe(s.subject.clone(), q.clone()).await,
            None => client.subscribe(s.subject.clone()).await,
        }
        .with_context(|| format!("failed to subscribe to {}", s.subject));
        let mut sub = match subscribed {
            Ok(sub) => sub,
            Err(e) => {
                // the link fails as a whole: none of its subscriptions stay
                for t in tasks {
                    t.abort();
                }
                return Err(e);
            }
        };
        let (wrpc, permits) = (wrpc.clone(), Arc::clone(&permits));
        tasks.push(tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
                let wrpc = wrpc.clone();
                tokio::spawn(async move {
                    deliver(wrpc, msg).await;
                    drop(permit);
                });
            }
        }));
    }
    Ok(tasks)
}

impl Provider for MessagingProvider {
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let uris = config::default_uris(init.get_config()).context("invalid messaging configuration")?;
        info!(provider_id = init.get_provider_id(), uris = ?uris, "messaging provider starting");
        *self.0.default_uris.write().unwrap_or_else(PoisonError::into_inner) = uris;
        Ok(())
    }

    /// provider → component (`wasmcloud:messaging/handler`): subscribe for it.
    ///
    /// The same link with the same settings again changes nothing: restarting its
    /// subscriptions would lose the messages of the gap.
    async fn receive_link_config_as_source(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let settings = config::link_settings(link.config, &self.defaults()).context("invalid link configuration")?;
        let key = (link.target_id.to_owned(), link.link_name.to_owned());
        let _change = self.0.link_changes.lock().await;
        if self.subscribed_as(&key, &settings) {
            debug!(target = link.target_id, link = link.link_name, "handler link delivered again: already subscribed");
            return Ok(());
        }
        let client = self.client(&settings.uris).await?;
        let wrpc = wasmcloud_provider_sdk::get_connection().get_wrpc_client(link.target_id).await.context("failed to create wRPC client")?;
        self.stop_subscriptions(&key);
        let tasks = subscribe(&client, &settings, &wrpc).await?;
        info!(target = link.target_id, link = link.link_name, subscriptions = ?settings.subscriptions, "handler linked");
        let replaced = self.0.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).insert(key, (settings, tasks));
        for t in replaced.into_iter().flat_map(|(_, tasks)| tasks) {
            t.abort();
        }
        Ok(())
    }

    /// component → provider (`wasmcloud:messaging/consumer`): the servers it publishes to.
    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let settings = config::link_settings(link.config, &self.defaults()).context("invalid link configuration")?;
        let client = self.client(&settings.uris).await?;
        info!(source = link.source_id, uris = ?settings.uris, "consumer linked");
        self.0.publishers.write().unwrap_or_else(PoisonError::into_inner).insert(link.source_id.to_owned(), client);
        Ok(())
    }

    async fn delete_link_as_source(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let _change = self.0.link_changes.lock().await;
        self.stop_subscriptions(&(info.get_target_id().to_owned(), info.get_link_name().to_owned()));
        Ok(())
    }

    async fn delete_link_as_target(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        self.0.publishers.write().unwrap_or_else(PoisonError::into_inner).remove(info.get_source_id());
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        let all: Vec<_> = self.0.subscriptions.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
        for t in all.into_iter().flat_map(|(_, (_, tasks))| tasks) {
            t.abort();
        }
        let clients: Vec<_> = self.0.clients.lock().await.drain().map(|(_, c)| c).collect();
        for c in clients {
            // what components published must reach the server before the process ends
            let _ = c.flush().await;
        }
        info!("messaging provider stopping");
        Ok(())
    }
}

type Outcome<T> = anyhow::Result<Result<T, String>>;

impl MessagingProvider {
    /// The caller's connection, and headers carrying the trace of `span` (the call's span),
    /// for a message of `body` bytes on `subject` (replies to `reply_to`). Refused, with
    /// nothing sent, when a subject is not one NATS can carry, or when headers and body exceed
    /// the server's `max_payload`: the server would close the shared connection for it, and
    /// async-nats checks only plain publishes.
    async fn outgoing(
        &self,
        cx: Option<&Context>,
        span: &Span,
        subject: &str,
        reply_to: Option<&str>,
        body: usize,
    ) -> Result<(async_nats::Client, async_nats::HeaderMap), String> {
        check_subject(subject)?;
        if let Some(reply) = reply_to {
            check_subject(reply).map_err(|e| format!("reply {e}"))?;
        }
        let client = self.publisher(cx).await.map_err(|e| format!("{e:#}"))?;
        let mut headers = async_nats::HeaderMap::new();
        inject_headers(span, &mut headers);
        let max = client.server_info().max_payload;
        let size = body + header_bytes(&headers);
        if max > 0 && size > max {
            return Err(format!("message of {size} bytes (body {body}) exceeds the server's max_payload of {max} bytes"));
        }
        Ok((client, headers))
    }
}

/// The size of `headers` on the wire (`NATS/1.0` line, `name: value` lines, blank line).
fn header_bytes(headers: &async_nats::HeaderMap) -> usize {
    let lines: usize = headers
        .iter()
        .flat_map(|(name, values)| {
            let name = name.to_string().len();
            values.iter().map(move |v| name + 2 + v.to_string().len() + 2)
        })
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

impl wit_consumer::Handler<Option<Context>> for MessagingProvider {
    async fn request(&self, cx: Option<Context>, subject: String, body: bytes::Bytes, timeout_ms: u32) -> Outcome<BrokerMessage> {
        let span = invocation_span("messaging.request", cx.as_ref());
        let (client, headers) = match self.outgoing(cx.as_ref(), &span, &subject, None, body.len()).await {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let request = async_nats::Request::new().payload(body).headers(headers).timeout(Some(Duration::from_millis(u64::from(timeout_ms))));
        Ok(match client.send_request(subject, request).instrument(span).await {
            Ok(m) => Ok(BrokerMessage { subject: m.subject.to_string(), body: m.payload, reply_to: m.reply.map(|r| r.to_string()) }),
            Err(e) => Err(e.to_string()),
        })
    }

    async fn publish(&self, cx: Option<Context>, msg: BrokerMessage) -> Outcome<()> {
        let span = invocation_span("messaging.publish", cx.as_ref());
        let (client, headers) = match self.outgoing(cx.as_ref(), &span, &msg.subject, msg.reply_to.as_deref(), msg.body.len()).await {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        let sent = match msg.reply_to {
            Some(reply) => client.publish_with_reply_and_headers(msg.subject, reply, headers, msg.body).instrument(span).await,
            None => client.publish_with_headers(msg.subject, headers, msg.body).instrument(span).await,
        };
        Ok(sent.map_err(|e| e.to_string()))
    }
}
