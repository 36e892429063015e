//! wadm 0.21.1, the wasmCloud 1.9 application deployment manager, as a small binary: every flag
//! and `WADM_*` variable of upstream's `wadm` command (its `cli` feature), our own `main`.
#![forbid(unsafe_code)]

use anyhow::Context as _;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;
use wadm::config::WadmConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = WadmConfig::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    info!(nats = config.nats_server, "starting wadm");
    let mut tasks = wadm::start_wadm(config).await.context("failed to start wadm")?;
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    tokio::select! {
        res = tasks.join_next() => match res {
            Some(Ok(Ok(()))) | None => info!("wadm exited"),
            Some(Ok(Err(e))) => {
                error!(error = %e, "wadm task failed");
                return Err(e).context("wadm task failed");
            }
            Some(Err(e)) => return Err(e).context("wadm task panicked"),
        },
        _ = tokio::signal::ctrl_c() => info!("SIGINT, stopping wadm"),
        _ = term.recv() => info!("SIGTERM, stopping wadm"),
    }
    tasks.abort_all();
    Ok(())
}
