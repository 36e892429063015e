//! Links a provider missed while it was starting, taken from the lattice.
//!
//! The wasmCloud 1.9 host hands a starting provider the links it knows in the host data, and
//! publishes each later link put on `wasmbus.rpc.<lattice>.<provider xkey>.linkdefs.put`. A put
//! the host publishes after it built the host data but before the provider subscribed is lost:
//! NATS core keeps nothing for absent subscribers. wadm deploys providers and links together,
//! so this happens (seen in CI and locally); the provider then refuses or ignores a component
//! the lattice says is linked, until the provider is restarted.
//!
//! [`sweep`] closes that gap from the provider's side: it asks the lattice's control interface
//! for its links (`wasmbus.ctl.v1.<lattice>.link.get`), resolves the named config of each one
//! it does not hold (`config.get.<name>`) and hands it to the provider exactly as the SDK does
//! for a delivered put. [`spawn_startup_sweeps`] runs it a few times after start-up; a provider
//! that meets a caller it has no link for asks for one more through a [`SweepGate`].
//!
//! Limits: the control interface is assumed on the RPC connection's NATS server with the
//! default `wasmbus.ctl` prefix (a host with a separate control server or prefix gets no
//! answer and the sweep reports that); links whose config names secrets are not recovered
//! (their values reach providers only encrypted by the host); a sweep only adds links. It asks
//! again whether a link is listed just before handing it over, so only a delete that lands in
//! the milliseconds between that answer and the hand-over is undone.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use tracing::{debug, info, warn};
use wasmcloud_provider_sdk::Provider;
use wasmcloud_provider_sdk::core::InterfaceLinkDefinition;
use wasmcloud_provider_sdk::provider::{ProviderConnection, receive_link_for_provider};

/// How long a control-interface request may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(2);
/// The host's marker for a config name that refers to a secret.
const SECRET_PREFIX: &str = "SECRET_";
/// When the start-up sweeps run, after the provider has subscribed to its link puts.
const STARTUP_SWEEPS: [Duration; 3] = [Duration::ZERO, Duration::from_secs(3), Duration::from_secs(10)];

/// A control-interface reply (`CtlResponse` of wasmcloud-control-interface).
#[derive(Deserialize)]
struct CtlReply<T> {
    success: bool,
    #[serde(default)]
    message: String,
    response: Option<T>,
}

/// A link as the control interface lists it: config by name, not yet resolved.
#[derive(Deserialize, Debug, PartialEq, Eq)]
struct CtlLink {
    source_id: String,
    target: String,
    #[serde(default = "default_name")]
    name: String,
    wit_namespace: String,
    wit_package: String,
    #[serde(default)]
    interfaces: Vec<String>,
    #[serde(default)]
    source_config: Vec<String>,
    #[serde(default)]
    target_config: Vec<String>,
}

fn default_name() -> String {
    "default".to_owned()
}

/// This provider's side of a listed link: `Some(true)` as target, `Some(false)` as source.
fn role(link: &CtlLink, provider_id: &str) -> Option<bool> {
    if link.target == provider_id {
        Some(true)
    } else if link.source_id == provider_id {
        Some(false)
    } else {
        None
    }
}

/// Parses a control-interface reply; `Ok(None)` for a successful reply without data (e.g. a
/// config that does not exist).
fn parse_reply<T: for<'de> Deserialize<'de>>(subject: &str, payload: &[u8]) -> anyhow::Result<Option<T>> {
    let reply: CtlReply<T> = serde_json::from_slice(payload).with_context(|| format!("unreadable reply to {subject}"))?;
    if !reply.success {
        bail!("{subject}: {}", reply.message);
    }
    Ok(reply.response)
}

async fn ctl_request<T: for<'de> Deserialize<'de>>(connection: &ProviderConnection, op: &str) -> anyhow::Result<Option<T>> {
    let subject = format!("wasmbus.ctl.v1.{}.{op}", connection.lattice);
    let msg = tokio::time::timeout(CTL_TIMEOUT, connection.nats.request(subject.clone(), bytes::Bytes::new()))
        .await
        .with_context(|| format!("no reply to {subject} within {CTL_TIMEOUT:?}"))?
        .with_context(|| format!("request {subject}"))?;
    parse_reply(&subject, &msg.payload)
}

/// Merges named configs in the order the link lists them (a later name overrides an earlier
/// one, as the host resolves them).
async fn resolve_config(connection: &ProviderConnection, names: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut config = HashMap::new();
    for name in names {
        if let Some(values) = ctl_request::<HashMap<String, String>>(connection, &format!("config.get.{name}")).await? {
            config.extend(values);
        }
    }
    Ok(config)
}

/// Asks the lattice for this provider's links and hands the provider each one it does not
/// hold; returns how many it recovered.
///
/// # Errors
/// When the control interface does not answer or answers with an error. A link whose config
/// cannot be resolved is skipped with a warning; the others are still recovered.
pub async fn sweep<P: Provider>(provider: &P, connection: &ProviderConnection) -> anyhow::Result<usize> {
    let links: Vec<CtlLink> = ctl_request(connection, "link.get").await?.unwrap_or_default();
    let mut recovered = 0;
    for link in links {
        let Some(as_target) = role(&link, &connection.provider_id) else { continue };
        // (the SDK keeps one link per peer: a peer's other link names count as not held, and
        // are handed over again; the providers take the same link again as a no-op)
        if held(connection, &link, as_target).await {
            continue;
        }
        let names = if as_target { &link.target_config } else { &link.source_config };
        if names.iter().any(|n| n.starts_with(SECRET_PREFIX)) {
            warn!(source = link.source_id, target = link.target, "missed link names secrets: not recovered (restart the provider)");
            continue;
        }
        let config = match resolve_config(connection, names).await {
            Ok(c) => c,
            Err(e) => {
                warn!(source = link.source_id, target = link.target, error = %e, "missed link's config unreadable: not recovered");
                continue;
            }
        };
        // Resolving the config took time: the lattice may have deleted the link meanwhile (a
        // delete the provider has already handled), or the SDK delivered it. Handing it over
        // then would revive a deleted link for good.
        match still_listed(connection, &link).await {
            Ok(true) if !held(connection, &link, as_target).await => {}
            Ok(_) => {
                debug!(source = link.source_id, target = link.target, name = link.name, "link deleted or delivered while its config was read");
                continue;
            }
            Err(e) => {
                warn!(source = link.source_id, target = link.target, error = %e, "missed link could not be checked again: not recovered");
                continue;
            }
        }
        info!(source = link.source_id, target = link.target, name = link.name, "recovering a link put this provider missed");
        let (source_config, target_config) = if as_target { (HashMap::new(), config) } else { (config, HashMap::new()) };
        let ld = InterfaceLinkDefinition {
            source_id: link.source_id,
            target: link.target,
            name: link.name,
            wit_namespace: link.wit_namespace,
            wit_package: link.wit_package,
            interfaces: link.interfaces,
            source_config,
            target_config,
            source_secrets: None,
            target_secrets: None,
        };
        receive_link_for_provider(provider, connection, ld).await?;
        recovered += 1;
    }
    Ok(recovered)
}

/// The SDK holds this link (by peer and link name).
async fn held(connection: &ProviderConnection, link: &CtlLink, as_target: bool) -> bool {
    if as_target {
        connection.target_links.read().await.get(&link.source_id).is_some_and(|l| l.name == link.name)
    } else {
        connection.source_links.read().await.get(&link.target).is_some_and(|l| l.name == link.name)
    }
}

/// The lattice still lists this link.
async fn still_listed(connection: &ProviderConnection, link: &CtlLink) -> anyhow::Result<bool> {
    let links: Vec<CtlLink> = ctl_request(connection, "link.get").await?.unwrap_or_default();
    Ok(links.iter().any(|l| same_link(l, link)))
}

/// One link: the same source, target, name and interface package.
fn same_link(a: &CtlLink, b: &CtlLink) -> bool {
    (&a.source_id, &a.target, &a.name, &a.wit_namespace, &a.wit_package) == (&b.source_id, &b.target, &b.name, &b.wit_namespace, &b.wit_package)
}

async fn sweep_and_log<P: Provider>(provider: &P, connection: &ProviderConnection, why: &str) {
    match sweep(provider, connection).await {
        Ok(0) => debug!(why, "link sweep: nothing missed"),
        Ok(n) => info!(why, recovered = n, "link sweep recovered missed links"),
        Err(e) => warn!(why, error = %e, "link sweep failed"),
    }
}

/// Runs [`sweep`] in the background right after start-up and twice more in the next ten
/// seconds (another host of the lattice may answer the control request before it has seen a
/// link).
pub fn spawn_startup_sweeps<P: Provider + Clone + Send + 'static>(provider: &P, connection: &'static ProviderConnection) {
    let provider = provider.clone();
    tokio::spawn(async move {
        let mut waited = Duration::ZERO;
        for at in STARTUP_SWEEPS {
            tokio::time::sleep(at.saturating_sub(waited)).await;
            waited = at;
            sweep_and_log(&provider, connection, "start-up").await;
        }
    });
}

/// At most one on-demand sweep per interval, so a burst of calls from a component whose link
/// is missing costs one control request, not one per call.
#[derive(Debug)]
pub struct SweepGate {
    interval: Duration,
    last: Mutex<Option<Instant>>,
}

impl Default for SweepGate {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl SweepGate {
    /// A gate that opens at most once per `interval`.
    #[must_use]
    pub const fn new(interval: Duration) -> Self {
        Self { interval, last: Mutex::new(None) }
    }

    /// True (and the gate closes for `interval`) when no sweep was let through in the last
    /// `interval`.
    pub fn open(&self, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match *last {
            Some(t) if now.saturating_duration_since(t) < self.interval => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }

    /// Starts a background [`sweep`] if the gate is open: for a provider that was just called
    /// by a component it holds no link for.
    pub fn sweep_soon<P: Provider + Clone + Send + 'static>(&self, provider: &P, connection: &'static ProviderConnection) {
        if self.open(Instant::now()) {
            let provider = provider.clone();
            tokio::spawn(async move { sweep_and_log(&provider, connection, "call from an unlinked component").await });
        }
    }
}

/// On-demand recovery for a provider that can tell when a caller has no link to it: attach the
/// lattice connection once the provider runs, then report each unlinked caller; at most one
/// [`sweep`] a second follows.
#[derive(Debug, Default)]
pub struct Recovery {
    gate: SweepGate,
    connection: OnceLock<&'static ProviderConnection>,
}

impl Recovery {
    /// The connection sweeps use (set once the provider runs; a provider without it, as in
    /// unit tests, never sweeps).
    pub fn attach(&self, connection: &'static ProviderConnection) {
        let _ = self.connection.set(connection);
    }

    /// A component without a link to `provider` called it: sweep soon.
    pub fn unlinked_caller<P: Provider + Clone + Send + 'static>(&self, provider: &P) {
        if let Some(connection) = self.connection.get() {
            self.gate.sweep_soon(provider, connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape wasmCloud 1.9.2's host answers `link.get` with.
    const LINKS: &str = r#"{"success":true,"message":"","response":[
        {"source_id":"v2x","target":"kv","name":"default","wit_namespace":"edgecell","wit_package":"cache",
         "interfaces":["store"],"source_config":[],"target_config":["v2x-keyspace"],"source_secrets":[],"target_secrets":[]},
        {"source_id":"nats","target":"v2x","wit_namespace":"wasmcloud","wit_package":"messaging","interfaces":["handler"],
         "source_config":["subs"]}]}"#;

    #[test]
    fn the_hosts_link_list_is_read_with_defaults() {
        let links: Vec<CtlLink> = parse_reply("link.get", LINKS.as_bytes()).expect("reply").expect("links");
        assert_eq!(links.len(), 2);
        assert_eq!(links[0].target_config, vec!["v2x-keyspace"]);
        assert_eq!(links[1].name, "default", "a link without a name is the default link");
        assert!(links[1].target_config.is_empty());
        assert_eq!(role(&links[0], "kv"), Some(true));
        assert_eq!(role(&links[1], "nats"), Some(false));
        assert_eq!(role(&links[0], "metrics"), None);
        assert!(same_link(&links[0], &links[0]));
        assert!(!same_link(&links[0], &links[1]));
        let other_name = CtlLink { name: "second".into(), ..parse_reply::<Vec<CtlLink>>("link.get", LINKS.as_bytes()).expect("reply").expect("links").remove(0) };
        assert!(!same_link(&links[0], &other_name), "another link name is another link");
    }

    #[test]
    fn config_replies_and_errors() {
        let found: Option<HashMap<String, String>> =
            parse_reply("config.get.a", br#"{"success":true,"message":"","response":{"keyspace":"x"}}"#).expect("ok");
        assert_eq!(found.and_then(|m| m.get("keyspace").cloned()).as_deref(), Some("x"));
        let absent: Option<HashMap<String, String>> =
            parse_reply("config.get.b", br#"{"success":true,"message":"Configuration not found"}"#).expect("ok");
        assert!(absent.is_none());
        let failed = parse_reply::<Vec<CtlLink>>("link.get", br#"{"success":false,"message":"denied"}"#);
        assert!(failed.is_err_and(|e| e.to_string().contains("denied")));
        assert!(parse_reply::<Vec<CtlLink>>("link.get", b"not json").is_err());
    }

    #[test]
    fn the_gate_lets_one_sweep_through_per_interval() {
        let gate = SweepGate::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert!(gate.open(t0));
        assert!(!gate.open(t0 + Duration::from_millis(999)));
        assert!(gate.open(t0 + Duration::from_secs(1)));
    }
}
