//! The probe: a small component the host's integration tests and benchmarks drive.
//!
//! It exercises every host capability it imports (cache, metrics, messaging consumer) and has
//! hooks to misbehave on purpose (allocate past its memory cap, spin past its deadline).

// The generated guest glue is FFI with the component ABI and needs `unsafe`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "edgecell:actors/probe",
        generate_all,
    });
}

use bindings::edgecell::cache::store::{self, CacheError, CasOutcome};
use bindings::edgecell::metrics::recorder::{self, Label, MetricKind};
use bindings::exports::edgecell::actors::probe_api::Guest as ProbeApi;
use bindings::exports::wasmcloud::messaging::handler::Guest as Handler;
use bindings::wasmcloud::messaging::consumer;
use bindings::wasmcloud::messaging::types::BrokerMessage;

const NS: &str = "probe";

struct Probe;

/// Memory the probe holds on purpose (see `allocate`).
static HELD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

impl ProbeApi for Probe {
    fn config_get(key: String) -> Option<String> {
        bindings::wasi::config::store::get(&key).ok().flatten()
    }

    fn echo(x: u64) -> u64 {
        x
    }

    fn cache_set(key: String, value: String, ttl_ms: Option<u64>) -> Result<u64, CacheError> {
        store::set(NS, &key, value.as_bytes(), ttl_ms)
    }

    fn cache_get(key: String) -> Result<Option<String>, CacheError> {
        Ok(store::get(NS, &key)?.map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }

    fn cache_cas(key: String, expected: Option<u64>, value: String) -> Result<CasOutcome, CacheError> {
        store::compare_and_swap(NS, &key, expected, value.as_bytes(), None)
    }

    fn cache_incr(key: String, delta: i64) -> Result<i64, CacheError> {
        store::increment(NS, &key, delta, None)
    }

    fn record_metrics(op: String, value: f64) -> Result<(), String> {
        recorder::register("probe_values", "Values seen by the probe", &MetricKind::Histogram(vec![1.0, 10.0, 100.0]))
            .map_err(|e| format!("{e:?}"))?;
        let labels = [Label { key: "op".into(), value: op }];
        recorder::counter_add("probe_calls_total", &labels, 1.0).map_err(|e| format!("{e:?}"))?;
        recorder::histogram_observe("probe_values", &labels, value).map_err(|e| format!("{e:?}"))
    }

    fn allocate(bytes: u64) -> u64 {
        let mut held = HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = usize::try_from(bytes).unwrap_or(usize::MAX);
        // touch every page so the memory is really committed
        held.push(vec![1u8; n]);
        held.iter().map(|v| v.len() as u64).sum()
    }

    fn spin(iterations: u64) -> u64 {
        let mut acc: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..iterations {
            acc = acc.rotate_left(5) ^ i.wrapping_mul(0x100_0000_01B3);
        }
        acc
    }
}

impl Handler for Probe {
    /// Counts messages in the cache and answers requests with `<count>:<body>`.
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        // `edgecell.echo.*`: the body straight back to the reply subject, no provider call: the
        // host's own messaging round trip, the baseline latency figures are compared with.
        if msg.subject.starts_with("edgecell.echo.") {
            return match msg.reply_to {
                Some(reply_to) => consumer::publish(&BrokerMessage { subject: reply_to, body: msg.body, reply_to: None }),
                None => Ok(()),
            };
        }
        // `edgecell.probe.cache.<n>`: n cache reads, then the reply: (RTT(n) - RTT(echo)) / n is
        // one component -> cache provider call.
        if let Some(n) = msg.subject.strip_prefix("edgecell.probe.cache.") {
            let n: u32 = n.parse().map_err(|_| format!("not a call count: {n}"))?;
            for _ in 0..n {
                store::get(NS, "last-subject").map_err(|e| format!("cache: {e:?}"))?;
            }
            return match msg.reply_to {
                Some(reply_to) => consumer::publish(&BrokerMessage { subject: reply_to, body: msg.body, reply_to: None }),
                None => Ok(()),
            };
        }
        let count = store::increment(NS, "messages", 1, None).map_err(|e| format!("cache: {e:?}"))?;
        store::set(NS, "last-subject", msg.subject.as_bytes(), None).map_err(|e| format!("cache: {e:?}"))?;
        recorder::counter_add("probe_messages_total", &[], 1.0).map_err(|e| format!("metrics: {e:?}"))?;
        if let Some(reply_to) = msg.reply_to {
            let mut body = format!("{count}:").into_bytes();
            body.extend_from_slice(&msg.body);
            consumer::publish(&BrokerMessage { subject: reply_to, body, reply_to: None })?;
        }
        Ok(())
    }
}

// `export!` emits the ABI entry points, which are `unsafe extern` functions.
#[allow(unsafe_code)]
mod exports {
    use super::Probe;
    crate::bindings::export!(Probe with_types_in crate::bindings);
}
