//! The metrics capability provider for wasmCloud 1.9: serves `edgecell:metrics/recorder@0.1.0`
//! to linked components over wRPC and exposes Prometheus text on a loopback `/metrics`.
#![forbid(unsafe_code)]

mod config;
mod provider;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // logs to stderr (the host keeps them) and, when the host has an OTLP endpoint, spans
    wasmcloud_provider_sdk::initialize_observability!("edgecell-metrics", None::<&str>);
    provider::MetricsProvider::run().await
}
