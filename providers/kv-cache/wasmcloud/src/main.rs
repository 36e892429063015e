//! The kv-cache capability provider for wasmCloud 1.9: started by the host, which passes its
//! setup data on stdin; serves `edgecell:cache/store@0.2.0` to linked components over wRPC.
#![forbid(unsafe_code)]

mod config;
mod ingest;
mod provider;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // logs to stderr (the host keeps them) and, when the host has an OTLP endpoint, spans
    wasmcloud_provider_sdk::initialize_observability!("edgecell-kv-cache", None::<&str>);
    provider::KvCacheProvider::run().await
}
