//! NATS messaging for components on a wasmCloud 1.9 lattice, a drop-in for the host's
//! built-in `messaging-nats` (same link config keys) that keeps OpenTelemetry traces whole:
//! a producer's `traceparent` header becomes the parent of the component invocation, and the
//! messages a component publishes carry the trace on to their consumers.
#![forbid(unsafe_code)]

mod config;
mod provider;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // logs to stderr (the host keeps them) and, when the host has an OTLP endpoint, spans
    wasmcloud_provider_sdk::initialize_observability!("edgecell-messaging-nats", None::<&str>);
    provider::MessagingProvider::run().await
}
