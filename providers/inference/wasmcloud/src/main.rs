//! The inference capability provider for wasmCloud 1.9: serves `edgecell:inference/runner@0.1.0`
//! (ONNX models run by tract, or ONNX Runtime by config, on a worker pool) to linked components over wRPC.
#![forbid(unsafe_code)]

mod config;
mod provider;

/// mimalloc instead of glibc's malloc: tract allocates every intermediate tensor of a frame
/// afresh (several MB), and glibc hands such blocks back to the kernel and faults them in again
/// (0.3–10 ms of system time per NanoDet frame measured; 0.2–0.5 ms with mimalloc).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // logs to stderr (the host keeps them) and, when the host has an OTLP endpoint, spans
    wasmcloud_provider_sdk::initialize_observability!("edgecell-inference", None::<&str>);
    provider::InferenceProvider::run().await
}
