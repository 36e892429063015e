//! Tracing glue shared by edgecell's wasmCloud 1.9 providers.
//!
//! wasmCloud 1.9.2 carries W3C trace context in wRPC headers (`traceparent`), and the
//! provider SDK hands it to handlers in [`Context::tracing`]. The SDK's own
//! `propagate_trace_for_ctx!` sets the parent of the *current* span, which
//! tracing-opentelemetry 0.32 refuses once that span has been entered (its OpenTelemetry span
//! has already started), so the caller's trace is lost. Here the span is created, given its
//! parent, and only then entered: [`invocation_span`]. The same applies to NATS messages:
//! [`span_from_headers`] continues a producer's trace, [`inject_headers`] hands the current
//! trace on in the headers of a message this provider publishes.
//!
//! [`links`] recovers link puts a provider missed while starting, and [`run_and_serve!`] runs
//! a provider with those sweeps.
#![forbid(unsafe_code)]

pub mod links;

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use wasmcloud_provider_sdk::Context;

struct MapExtractor<'a>(&'a HashMap<String, String>);

impl Extractor for MapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

struct NatsExtractor<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

struct NatsInjector<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// Gives `span` the parent found by `extractor`, if it carries a valid trace context. Must be
/// called before the span is first entered.
fn adopt(span: &tracing::Span, extractor: &dyn Extractor) {
    let parent = TraceContextPropagator::new().extract(extractor);
    if opentelemetry::trace::TraceContextExt::span(&parent).span_context().is_valid() {
        // fails only when the span was entered already or no OpenTelemetry layer is installed
        // (tracing export off): then the span just stays where it is
        let _ = span.set_parent(parent);
    }
}

/// A span for one wRPC invocation of this provider, named `name`, child of the caller's span
/// when the invocation carried trace context. Enter it (or instrument the handler's future
/// with it) after this returns.
#[must_use]
pub fn invocation_span(name: &'static str, cx: Option<&Context>) -> tracing::Span {
    let component = cx.and_then(|c| c.component.as_deref()).unwrap_or_default();
    let span = tracing::info_span!("invocation", otel.name = name, otel.kind = "server", component);
    if let Some(cx) = cx {
        adopt(&span, &MapExtractor(&cx.tracing));
    }
    span
}

/// A span for handling one NATS message, child of the producer's span when the message's
/// headers carry a W3C `traceparent`.
#[must_use]
pub fn span_from_headers(name: &'static str, subject: &str, headers: Option<&async_nats::HeaderMap>) -> tracing::Span {
    let span = tracing::info_span!("message", otel.name = name, otel.kind = "consumer", subject);
    if let Some(h) = headers {
        adopt(&span, &NatsExtractor(h));
    }
    span
}

/// Adds the trace context of `span` (`traceparent`, `tracestate`) to `headers`; nothing when
/// the span is not recorded by OpenTelemetry.
pub fn inject_headers(span: &tracing::Span, headers: &mut async_nats::HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut NatsInjector(headers));
}

/// A config map as the host hands it to a provider (named or link config), from `pairs`: for
/// tests of the providers' typed configuration.
#[must_use]
pub fn config_map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Runs a provider to the end: the host handshake (`run_provider`), then its wRPC exports
/// until the host shuts it down. `$serve` is the `serve` function wit-bindgen-wrpc generated
/// for the provider's world; the optional `$connected` runs once, after initialisation, with
/// the provider and its lattice connection. The start-up link sweeps of
/// [`links::spawn_startup_sweeps`] run in the background. Expands to an `anyhow::Result<()>` expression, for
/// use inside an `async fn`.
#[macro_export]
macro_rules! run_and_serve {
    ($provider:expr, $name:expr, $serve:path) => {
        $crate::run_and_serve!($provider, $name, $serve, |_, _| {})
    };
    ($provider:expr, $name:expr, $serve:path, $connected:expr) => {
        async {
            use ::wasmcloud_provider_sdk::anyhow::Context as _;
            let provider = $provider;
            let shutdown =
                ::wasmcloud_provider_sdk::run_provider(provider.clone(), $name).await.context("failed to start provider")?;
            let connection = ::wasmcloud_provider_sdk::get_connection();
            ($connected)(&provider, connection);
            $crate::links::spawn_startup_sweeps(&provider, connection);
            let client = connection.get_wrpc_client(connection.provider_key()).await.context("failed to create wRPC client")?;
            ::wasmcloud_provider_sdk::serve_provider_exports(&client, provider, shutdown, $serve)
                .await
                .context("failed to serve exports")
        }
        .await
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use tracing_subscriber::layer::SubscriberExt as _;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_otel<R>(f: impl FnOnce() -> R) -> R {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f)
    }

    fn trace_of(span: &tracing::Span) -> String {
        format!("{:032x}", span.context().span().span_context().trace_id())
    }

    #[test]
    fn an_invocation_span_continues_the_callers_trace() {
        with_otel(|| {
            let cx = Context { component: Some("c".into()), tracing: HashMap::from([("traceparent".to_owned(), PARENT.to_owned())]) };
            let span = invocation_span("cache.get", Some(&cx));
            let _entered = span.enter();
            assert_eq!(trace_of(&span), "4bf92f3577b34da6a3ce929d0e0e4736");
        });
    }

    #[test]
    fn without_trace_context_a_new_trace_starts() {
        with_otel(|| {
            let span = invocation_span("cache.get", Some(&Context::default()));
            assert_ne!(trace_of(&span), "4bf92f3577b34da6a3ce929d0e0e4736");
            let garbage = Context { component: None, tracing: HashMap::from([("traceparent".to_owned(), "zz".to_owned())]) };
            let span = invocation_span("cache.get", Some(&garbage));
            assert!(span.context().span().span_context().is_valid());
        });
    }

    #[test]
    fn nats_headers_carry_the_trace_in_and_out() {
        with_otel(|| {
            let mut incoming = async_nats::HeaderMap::new();
            incoming.insert("traceparent", PARENT);
            let span = span_from_headers("handle", "a.b", Some(&incoming));
            let mut outgoing = async_nats::HeaderMap::new();
            inject_headers(&span, &mut outgoing);
            let out = outgoing.get("traceparent").map(|v| v.as_str().to_owned()).unwrap_or_default();
            assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{out}");
            assert!(!out.contains("00f067aa0ba902b7"), "the outgoing parent is this span, not the producer's: {out}");
        });
    }
}
