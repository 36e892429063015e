//! `edgecell-lattice`: the project's own small lattice tool for the wasmCloud 1.9 line.
//!
//! - `package`: a provider binary → a signed provider archive (`.par.gz`), the same bytes from
//!   the same binary, keys and issue time (`par`)
//! - `deploy`: a wadm manifest → put + deploy through wadm's NATS API, resolving relative
//!   `file://` references against the manifest's directory (what `wash app deploy` does for
//!   local manifests), then wait until wadm reports `deployed`
//! - `status`, `undeploy`
//! - `otlp-sink`: receive OTLP/HTTP traces on loopback and write one JSON line per span
#![forbid(unsafe_code)]

mod manifest;
mod otlp_sink;
mod par;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use wadm_client::{Client, ClientConnectOptions};
use wadm_types::api::StatusType;

#[derive(Debug, Parser)]
#[command(name = "edgecell-lattice", version, about = "package providers and deploy edgecell onto a wasmCloud 1.9 lattice")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Lattice {
    /// NATS URL of the lattice
    #[arg(long, env = "WASMCLOUD_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Lattice name
    #[arg(long, env = "WASMCLOUD_LATTICE", default_value = "default")]
    lattice: String,
}

impl Lattice {
    async fn client(&self) -> anyhow::Result<Client> {
        let opts = ClientConnectOptions { url: Some(self.nats.clone()), ..ClientConnectOptions::default() };
        Client::new(&self.lattice, None, opts).await.with_context(|| format!("failed to connect to NATS at {}", self.nats))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Package a provider binary for this machine's target as a provider archive (.par.gz)
    Package {
        /// The provider executable
        #[arg(long)]
        binary: PathBuf,
        /// Provider name recorded in the archive's claims
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "edgecell")]
        vendor: String,
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
        /// Output file (.par.gz)
        #[arg(long)]
        out: PathBuf,
        /// Directory of signing keys (`issuer.nk`, `<name>.nk`; made there when missing). Without
        /// it the archive is signed with keys made for it alone and cannot be rebuilt
        #[arg(long)]
        keys: Option<PathBuf>,
        /// Issue time recorded in the claims, in seconds since the epoch (default: now)
        #[arg(long, env = "SOURCE_DATE_EPOCH")]
        issued_at: Option<u64>,
    },
    /// Put and deploy a wadm manifest, then wait until it is deployed
    Deploy {
        manifest: PathBuf,
        #[command(flatten)]
        lattice: Lattice,
        /// Replace text in the manifest before deploying: `FROM=TO` (repeatable), e.g. to point
        /// a copy at another NATS port
        #[arg(long = "replace", value_parser = parse_replace)]
        replace: Vec<(String, String)>,
        /// Seconds to wait for `deployed` (0 = do not wait)
        #[arg(long, default_value_t = 180)]
        wait_secs: u64,
    },
    /// Print an application's status as JSON
    Status {
        name: String,
        #[command(flatten)]
        lattice: Lattice,
    },
    /// Undeploy an application and delete its manifest versions
    Undeploy {
        name: String,
        #[command(flatten)]
        lattice: Lattice,
    },
    /// Receive OTLP/HTTP trace exports (protobuf) on loopback; append one JSON line per span
    OtlpSink {
        /// Address to listen on (loopback; port 0 picks a free one, printed as `listening=`)
        #[arg(long, default_value = "127.0.0.1:4318")]
        listen: std::net::SocketAddr,
        /// File the spans are appended to
        #[arg(long)]
        out: PathBuf,
    },
}

fn parse_replace(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(a, b)| (a.to_owned(), b.to_owned())).filter(|(a, _)| !a.is_empty()).ok_or_else(|| format!("`{s}` is not FROM=TO"))
}

async fn package(binary: PathBuf, name: &str, vendor: &str, version: &str, out: PathBuf, keys: Option<PathBuf>, issued_at: Option<u64>) -> anyhow::Result<()> {
    let bytes = tokio::fs::read(&binary).await.with_context(|| format!("failed to read {}", binary.display()))?;
    let target = format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS);
    // the host checks the archive's signed claims; the provider's lattice id comes from the manifest
    let keys = match &keys {
        Some(dir) => par::Keys::in_dir(dir, name)?,
        None => par::Keys::fresh(),
    };
    let issued_at = match issued_at {
        Some(t) => t,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("the clock is before 1970")?.as_secs(),
    };
    let package = par::Package { name, vendor, version, target: &target, binary: &bytes, issued_at };
    let archive = par::archive(&package, &keys)?;
    par::write_checked(&out, &archive, &package, &keys).await?;
    println!("{} ({target}, {} bytes binary) -> {} ({} bytes)", name, bytes.len(), out.display(), archive.len());
    Ok(())
}

/// One line per scaler of an application's status, for error messages.
fn scaler_lines(status: &wadm_types::api::Status) -> Vec<String> {
    status.scalers.iter().map(|s| format!("{} {:?} {}", s.name, s.info.status_type, s.info.message)).collect()
}

async fn deploy(path: PathBuf, lattice: &Lattice, replace: &[(String, String)], wait: Duration) -> anyhow::Result<()> {
    let text = tokio::fs::read_to_string(&path).await.with_context(|| format!("failed to read {}", path.display()))?;
    let text = replace.iter().fold(text, |t, (from, to)| t.replace(from, to));
    let base = path.canonicalize().with_context(|| format!("failed to resolve {}", path.display()))?;
    let base = base.parent().context("manifest has no parent directory")?;
    let resolved = manifest::resolve_file_refs(&text, base)?;
    let manifest = wadm_client::loader::parse_yaml_or_json(resolved.as_bytes()).context("wadm rejects the manifest")?;
    let client = lattice.client().await?;
    // wadm answers its API only once it has subscribed: right after it starts, retry "no responders"
    let put_start = Instant::now();
    let (name, version) = loop {
        match client.put_and_deploy_manifest(manifest.clone()).await {
            Ok(done) => break done,
            Err(e) if e.to_string().contains("no responders") && put_start.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e).context("failed to put and deploy the manifest"),
        }
    };
    println!("deploying {name} {version}");
    if wait.is_zero() {
        return Ok(());
    }
    let start = Instant::now();
    let mut last = String::new();
    let mut redeploy_at = Duration::from_secs(5);
    loop {
        let status = client.get_manifest_status(&name).await.context("failed to read the application's status")?;
        let line = format!("{:?} {}", status.info.status_type, status.info.message);
        if line != last {
            println!("[{:>5.1}s] {line}", start.elapsed().as_secs_f64());
            last.clone_from(&line);
        }
        match status.info.status_type {
            // wadm can miss a deploy command it received while its consumers were still being
            // set up (seen right after start): deploying again is idempotent
            StatusType::Undeployed if start.elapsed() > redeploy_at => {
                println!("[{:>5.1}s] still undeployed: deploying again", start.elapsed().as_secs_f64());
                client.deploy_manifest(&name, Some(&version)).await.context("failed to deploy the manifest")?;
                redeploy_at = start.elapsed() + Duration::from_secs(5);
            }
            StatusType::Deployed => {
                println!("deployed {name} {version} in {:.1} s", start.elapsed().as_secs_f64());
                return Ok(());
            }
            StatusType::Failed if start.elapsed() > Duration::from_secs(30) => {
                bail!("{name} failed: {}; scalers: {:?}", status.info.message, scaler_lines(&status))
            }
            _ => {}
        }
        if start.elapsed() > wait {
            bail!("{name} not deployed after {} s: {line}; scalers: {:?}", wait.as_secs(), scaler_lines(&status));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
    ).init();
    match Cli::parse().command {
        Command::Package { binary, name, vendor, version, out, keys, issued_at } => {
            package(binary, &name, &vendor, &version, out, keys, issued_at).await
        }
        Command::Deploy { manifest, lattice, replace, wait_secs } => {
            deploy(manifest, &lattice, &replace, Duration::from_secs(wait_secs)).await
        }
        Command::Status { name, lattice } => {
            let status = lattice.client().await?.get_manifest_status(&name).await.context("failed to read status")?;
            println!("{}", serde_json::to_string_pretty(&status).context("failed to encode status")?);
            Ok(())
        }
        Command::Undeploy { name, lattice } => {
            let client = lattice.client().await?;
            client.undeploy_manifest(&name).await.context("failed to undeploy")?;
            client.delete_manifest(&name, None).await.context("failed to delete the manifest")?;
            println!("undeployed {name}");
            Ok(())
        }
        Command::OtlpSink { listen, out } => tokio::task::spawn_blocking(move || otlp_sink::run(listen, &out)).await.context("the sink stopped")?,
    }
}
