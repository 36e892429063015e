//! `edgecell`: the embedded lattice's command line.
#![forbid(unsafe_code)]

mod fusion_cli;
mod produce_cli;
mod run;
mod v2x_cli;
mod video_cli;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use edgecell::config::HostConfig;
use edgecell::nats::NatsConnection;
use edgecell::{InstancePool, Runtime, RuntimeConfig, Services};
use edgecell_metrics::MetricsServer;

/// mimalloc instead of glibc's malloc: tract allocates every intermediate tensor of a frame
/// afresh (several MB), and glibc hands such blocks back to the kernel and faults them in again
/// (0.3–10 ms of system time per NanoDet frame measured; 0.2–0.5 ms with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long `edgecell serve` may take to stop at Ctrl-C: draining subscriptions, deliveries
/// still running, the NATS client.
const SHUTDOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(name = "edgecell", version, about = "edgecell: edge workloads as WebAssembly components")]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. `info` or `edgecell=debug`.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: run every available actor over the bundled data in the embedded host.
    Run(run::RunArgs),
    /// Sensor fusion: replay ROS bags through the localizer, run the orientation filter.
    #[command(subcommand)]
    Fusion(fusion_cli::FusionCmd),
    /// Video analytics: detection and the full pipeline through the video-analytics actor.
    #[command(subcommand)]
    Video(video_cli::VideoCmd),
    /// V2X: validate ITS messages and VeReMi traces, verify certificates, simulate attacks.
    #[command(subcommand)]
    V2x(v2x_cli::V2xCmd),
    /// Print a component's WIT imports and exports and its size.
    Inspect {
        component: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a metrics snapshot scraped from a running host's /metrics endpoint.
    Metrics {
        /// e.g. http://127.0.0.1:9464/metrics
        #[arg(long)]
        url: String,
    },
    /// Replay the bundled data (ROS bags, V2X traces, MJPEG video) onto NATS at a given rate.
    #[command(subcommand)]
    Produce(produce_cli::ProduceCmd),
    /// Run actors from a host config file, fed by their NATS subjects, until Ctrl-C.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let outcome = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Fusion(cmd) => fusion_cli::run(cmd),
        Command::V2x(cmd) => v2x_cli::run(cmd),
        Command::Video(cmd) => video_cli::run(cmd),
        Command::Inspect { component, json } => inspect(&component, json),
        Command::Metrics { url } => metrics(&url),
        Command::Produce(cmd) => produce_cli::run(cmd),
        Command::Serve { config } => serve(&config),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn inspect(path: &Path, json: bool) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (services, _bus) = Services::local(edgecell_kv_cache::CacheConfig::default());
    let runtime = Runtime::new(RuntimeConfig { max_instances: 1, ..RuntimeConfig::default() }, services)?;
    let (component, _) = runtime.load_component("inspect", &bytes)?;
    let report = edgecell::inspect::report(runtime.engine(), &component, &bytes);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

/// A minimal HTTP/1.0 GET: enough for a loopback /metrics endpoint, no client dependency.
fn http_get(url: &str) -> Result<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").context("only http:// URLs are supported")?;
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(authority).with_context(|| format!("connecting to {authority}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("malformed HTTP response")?;
    if !head.lines().next().is_some_and(|l| l.contains(" 200")) {
        bail!("{url} answered: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_owned())
}

fn metrics(url: &str) -> Result<()> {
    let body = http_get(url)?;
    let mut rows: Vec<(&str, &str)> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .collect();
    rows.sort_unstable();
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (series, value) in rows {
        println!("{series:<width$}  {value}");
    }
    Ok(())
}

fn serve(config_path: &Path) -> Result<()> {
    let config = HostConfig::load(config_path)?;
    let (mut services, _local) = Services::local(config.cache);
    // producers' puts (below) get shards of their own in the cache, with their own budget
    if config.host.nats_url.is_some() {
        let policy = edgecell_kv_cache::ingest::IngestPolicy::parse(&config.host.ingest_open).map_err(|e| anyhow::anyhow!("[host] ingest_open: {e}"))?;
        services.cache = Arc::new(edgecell_kv_cache::Cache::with_ingest(config.cache, policy));
    }
    let _purger = edgecell_kv_cache::Purger::start(&services.cache)?;
    let snapshot = config.cache_snapshot();
    let snapshotter = match &snapshot {
        Some(path) => {
            restore_cache(&services.cache, path)?;
            let every = std::time::Duration::from_millis(config.host.cache_snapshot_interval_ms);
            let p = path.clone();
            Some(edgecell_kv_cache::snapshot::Snapshotter::start(&services.cache, p, every, |e| {
                tracing::warn!(error = %e, "cache snapshot not saved");
            })?)
        }
        None => None,
    };
    match services.cache.value_limits(64) {
        (components, Some(puts)) => println!("cache: values up to {components} bytes, producers' puts up to {puts} bytes"),
        (components, None) => println!("cache: values up to {components} bytes"),
    }
    if let Some((registry, pool)) = config.inference_config() {
        let (pool, count) = video_cli::inference_pool(&registry, pool)?;
        println!("inference: {count} model(s) from {} on {}", registry.dir.display(), registry.backend.name());
        services.inference = pool;
    }
    let nats = match &config.host.nats_url {
        Some(url) => {
            let conn = NatsConnection::connect(url)?;
            services.bus = conn.bus();
            Some(conn)
        }
        None => None,
    };
    // producers put large payloads (video frames) into the actors' keyspaces over NATS
    let ingest = match &nats {
        Some(conn) => {
            let ingest = conn.cache_ingest(Arc::clone(&services.cache))?;
            println!("cache ingest ← {}.>", edgecell::nats::CACHE_PUT_PREFIX);
            Some(ingest)
        }
        None => None,
    };
    let metrics_server = match config.metrics.listen {
        Some(addr) => Some(MetricsServer::start(addr, Arc::clone(&services.metrics), config.metrics.allow_non_loopback)?),
        None => None,
    };
    let services_cache = Arc::clone(&services.cache);
    let runtime = Runtime::new(config.runtime_config(), services)?;
    let mut feeds = Vec::new();
    for (spec, section) in config.actor_specs().into_iter().zip(&config.actors) {
        let actor = Arc::new(runtime.load_actor(spec)?);
        let pool = Arc::new(InstancePool::new(Arc::clone(&actor), section.instances));
        // instantiate once now so a broken actor fails at start, not at the first message
        pool.with_instance(|_| Ok(()))?;
        if section.subjects.is_empty() {
            continue;
        }
        let Some(conn) = &nats else {
            bail!("actor {} has NATS subjects but [host] nats_url is not set", section.name);
        };
        feeds.push(conn.feed(&pool, &section.subjects, section.instances)?);
        println!("{} ← {}", section.name, section.subjects.join(", "));
    }
    if let Some(m) = &metrics_server {
        println!("metrics: {}", m.url());
    }
    println!("serving; Ctrl-C to stop");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(tokio::signal::ctrl_c())?;
    println!("stopping (Ctrl-C again to exit at once)");
    std::thread::spawn(|| {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            let _ = rt.block_on(tokio::signal::ctrl_c());
            std::process::exit(130);
        }
    });
    // No new deliveries: each subscription is drained (unsubscribed; what the client already
    // holds is still delivered) while the wasmtime runtime and its deadline ticker still run,
    // all within one bound; then whatever still runs gets the rest of it.
    let deadline = std::time::Instant::now() + SHUTDOWN_BOUND;
    let left = || deadline.saturating_duration_since(std::time::Instant::now());
    for feed in &feeds {
        feed.stop_taking();
    }
    if let Some(ingest) = &ingest {
        ingest.stop_taking();
    }
    let mut unfinished = 0;
    for feed in feeds {
        unfinished += usize::from(!feed.drain(deadline));
    }
    if let Some(ingest) = ingest {
        unfinished += usize::from(!ingest.drain(deadline));
    }
    if unfinished > 0 {
        eprintln!("{unfinished} subscription(s) not drained within {} s; their buffered messages are dropped", SHUTDOWN_BOUND.as_secs());
    }
    if let Some(conn) = nats {
        conn.shutdown(left().max(std::time::Duration::from_secs(1)));
    }
    drop(runtime);
    if let (Some(saver), Some(path)) = (snapshotter, &snapshot) {
        match saver.finish(&services_cache)? {
            Some(w) => println!("cache saved to {} ({} entries, {} value bytes)", path.display(), w.entries, w.bytes),
            None => println!("cache snapshot {} up to date", path.display()),
        }
    }
    Ok(())
}

/// Reads the cache snapshot at `path`, if there is one. One that cannot be used stops the start
/// with its reason: here a person is at the console to move it aside.
fn restore_cache(cache: &edgecell_kv_cache::Cache, path: &Path) -> Result<()> {
    match edgecell_kv_cache::snapshot::load(cache, path)? {
        None => println!("cache: no snapshot at {} yet", path.display()),
        Some(r) => println!(
            "cache: {} entries read from {} ({} expired meanwhile, {} over this cache's limits)",
            r.restored,
            path.display(),
            r.expired,
            r.refused
        ),
    }
    Ok(())
}
