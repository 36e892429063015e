//! A real wasmCloud 1.9.2 host (`wasmcloud-host` 0.27.1) with the settings edgecell's lattice
//! needs: loopback NATS, labels for placement, `file://` loading for local manifests, the
//! built-in NATS messaging provider, and OTLP trace export when an endpoint is given.
//!
//! Prints one line `host_id=<public key>` on stdout once the host is up, then runs until
//! SIGINT/SIGTERM or a `stop_host` control command.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;
use nkeys::KeyPair;
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;
use wasmcloud_core::{logging::Level, OtelConfig, OtelProtocol};
use wasmcloud_host::wasmbus::{Features, Host, HostConfig};

#[derive(Debug, Parser)]
#[command(version, about = "wasmCloud 1.9.2 host for edgecell lattices")]
struct Args {
    /// NATS URL for control and RPC traffic
    #[arg(long, env = "WASMCLOUD_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: url::Url,
    /// Lattice name
    #[arg(long, env = "WASMCLOUD_LATTICE", default_value = "default")]
    lattice: String,
    /// JetStream domain of the lattice's JetStream (edge hosts on a leaf node: `core`)
    #[arg(long, env = "WASMCLOUD_JS_DOMAIN")]
    js_domain: Option<String>,
    /// Host label `key=value`; repeat for more (placement by wadm spread scalers)
    #[arg(long = "label", short = 'l', value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Load components and provider archives from `file://` references
    #[arg(long, env = "WASMCLOUD_ALLOW_FILE_LOAD", default_value_t = false)]
    allow_file_load: bool,
    /// Timeout of one wRPC invocation, in milliseconds
    #[arg(long, env = "WASMCLOUD_RPC_TIMEOUT_MS", default_value_t = 2000)]
    rpc_timeout_ms: u64,
    /// Longest a component invocation may run, in milliseconds
    #[arg(long, env = "WASMCLOUD_MAX_EXECUTION_TIME_MS", default_value_t = 10_000)]
    max_execution_time_ms: u64,
    /// Linear memory cap per component, in bytes
    #[arg(long, env = "WASMCLOUD_MAX_LINEAR_MEMORY", default_value_t = 64 * 1024 * 1024)]
    max_linear_memory: u32,
    /// Seconds between host heartbeats (wadm reconciles on them)
    #[arg(long, default_value_t = 5)]
    heartbeat_secs: u64,
    /// How long a stopped provider gets to shut down, in milliseconds (a provider that is done
    /// sooner is not waited for; the kv-cache provider writes its snapshot then)
    #[arg(long, default_value_t = 3000)]
    provider_shutdown_delay_ms: u64,
    /// OTLP/HTTP endpoint for traces (e.g. http://127.0.0.1:4318); tracing export is off without it
    #[arg(long, env = "EDGECELL_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Log level for the host's own logs
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("label `{s}` is not key=value")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.nats_url.host_str().is_none() {
        bail!("NATS URL {} has no host", args.nats_url);
    }
    let otel_config = match &args.otlp_endpoint {
        Some(endpoint) => OtelConfig {
            enable_observability: false,
            enable_traces: Some(true),
            traces_endpoint: Some(endpoint.clone()),
            protocol: OtelProtocol::Http,
            trace_level: Level::Info,
            ..OtelConfig::default()
        },
        None => OtelConfig::default(),
    };
    let log_level = Level::from(args.log_level);
    let (dispatch, _flush) = wasmcloud_tracing::configure_observability(
        "wasmcloud-host",
        &otel_config,
        false,
        None::<&str>,
        Some(&log_level),
        Some(&log_level),
    )
    .context("failed to configure tracing")?;
    tracing::dispatcher::set_global_default(dispatch).context("failed to set tracing dispatcher")?;

    let host_key = Arc::new(KeyPair::new_server());
    let host_id = host_key.public_key();
    let config = HostConfig {
        ctl_nats_url: args.nats_url.clone(),
        rpc_nats_url: args.nats_url.clone(),
        rpc_timeout: Duration::from_millis(args.rpc_timeout_ms),
        lattice: args.lattice.clone().into(),
        js_domain: args.js_domain.clone(),
        labels: args.labels.iter().cloned().collect::<HashMap<_, _>>(),
        host_key: Some(host_key),
        provider_shutdown_delay: Some(Duration::from_millis(args.provider_shutdown_delay_ms)),
        allow_file_load: args.allow_file_load,
        log_level,
        otel_config,
        max_execution_time: Duration::from_millis(args.max_execution_time_ms),
        max_linear_memory: args.max_linear_memory,
        heartbeat_interval: Some(Duration::from_secs(args.heartbeat_secs)),
        experimental_features: Features::new().enable_builtin_messaging_nats(),
        ..HostConfig::default()
    };
    let (host, shutdown) = Host::new(config).await.context("failed to start host")?;
    info!(host_id, lattice = args.lattice, "host started");
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "host_id={host_id}").context("failed to write host id")?;
        out.flush().context("failed to flush stdout")?;
    }

    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT, stopping host"),
        _ = term.recv() => info!("SIGTERM, stopping host"),
        stopped = host.stopped() => {
            stopped.context("host stop channel closed")?;
            info!("stop_host received");
        }
    }
    drop(host);
    shutdown.await.context("failed to shut down host")?;
    Ok(())
}
