//! The inference capability provider for wasmCloud 1.9: serves `edgecell:inference/runner@0.1.0`
//! (ONNX models run by tract on a worker pool) to linked components over wRPC.
#![forbid(unsafe_code)]

mod config;
mod provider;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // logs to stderr (the host keeps them) and, when the host has an OTLP endpoint, spans
    wasmcloud_provider_sdk::initialize_observability!("edgecell-inference", None::<&str>);
    provider::InferenceProvider::run().await
}
