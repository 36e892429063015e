//! The embedded host driving the probe component: capabilities, limits, caching, inspection.

use std::sync::Arc;
use std::time::Duration;

use edgecell::bindings::BrokerMessage;
use edgecell::bindings::capabilities::edgecell::cache::store::{CacheError, CasOutcome};
use edgecell::{HostError, InstancePool, LoadSource, RuntimeConfig};

use crate::common::{self, host, probe, spec};

fn small_limits() -> RuntimeConfig {
    RuntimeConfig {
        memory_cap_bytes: 8 * 1024 * 1024,
        call_deadline: Some(Duration::from_millis(200)),
        ..RuntimeConfig::default()
    }
}

#[test]
fn cache_values_round_trip_through_the_component() {
    let h = host(RuntimeConfig::default());
    let actor = probe(&h);
    let mut inst = actor.instantiate().unwrap();
    let p = inst.probe().unwrap();
    let v1 = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_set(s, "greeting", "hello", None)).unwrap().unwrap();
    let got = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_get(s, "greeting")).unwrap().unwrap();
    assert_eq!(got.as_deref(), Some("hello"));
    // what the component wrote is in the host's cache, in the component's own keyspace
    let native = h.runtime.services().cache.get("probe", "probe", "greeting").unwrap().unwrap();
    assert_eq!(native.value, b"hello");
    assert_eq!(native.version, v1);
    assert_eq!(h.runtime.services().cache.get("other-actor", "probe", "greeting").unwrap(), None);

    // compare-and-swap: stale version conflicts, current version swaps
    let stale = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_cas(s, "greeting", Some(v1 + 99), "x")).unwrap().unwrap();
    assert_eq!(stale, CasOutcome::Conflict(Some(v1)));
    let swapped = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_cas(s, "greeting", Some(v1), "bonjour")).unwrap().unwrap();
    assert!(matches!(swapped, CasOutcome::Swapped(v) if v > v1));
    let got = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_get(s, "greeting")).unwrap().unwrap();
    assert_eq!(got.as_deref(), Some("bonjour"));

    // atomic increments
    for expected in [5, 10, 7] {
        let delta = if expected == 7 { -3 } else { 5 };
        let n = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_incr(s, "n", delta)).unwrap().unwrap();
        assert_eq!(n, expected);
    }
    // a typed error crosses the boundary as a typed error, and the instance keeps working
    let err = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_incr(s, "greeting", 1)).unwrap().unwrap_err();
    assert!(matches!(err, CacheError::NotACounter(_)), "{err:?}");
    let err = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_set(s, "", "v", None)).unwrap().unwrap_err();
    assert_eq!(err, CacheError::InvalidKey(1024));
    assert_eq!(inst.call(|s, _| p.edgecell_actors_probe_api().call_echo(s, 42)).unwrap(), 42);
}

#[test]
fn ttl_expiry_is_observed_by_the_component() {
    let h = host(RuntimeConfig::default());
    let actor = probe(&h);
    let mut inst = actor.instantiate().unwrap();
    let p = inst.probe().unwrap();
    inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_set(s, "short", "v", Some(50))).unwrap().unwrap();
    inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_set(s, "long", "v", Some(60_000))).unwrap().unwrap();
    let before = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_get(s, "short")).unwrap().unwrap();
    assert_eq!(before.as_deref(), Some("v"));
    std::thread::sleep(Duration::from_millis(120));
    let after = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_get(s, "short")).unwrap().unwrap();
    assert_eq!(after, None);
    let long = inst.call(|s, _| p.edgecell_actors_probe_api().call_cache_get(s, "long")).unwrap().unwrap();
    assert_eq!(long.as_deref(), Some("v"));
    assert_eq!(h.runtime.services().cache.stats().expirations, 1);
}

#[test]
fn counters_and_histograms_show_in_prometheus_output() {
    let h = host(RuntimeConfig::default());
    let actor = probe(&h);
    let mut inst = actor.instantiate().unwrap();
    let p = inst.probe().unwrap();
    for (op, v) in [("read", 0.5), ("read", 5.0), ("write", 500.0)] {
        inst.call(|s, _| p.edgecell_actors_probe_api().call_record_metrics(s, op, v)).unwrap().unwrap();
    }
    // a NaN observation is refused with a typed error, and nothing is recorded for it
    let err = inst.call(|s, _| p.edgecell_actors_probe_api().call_record_metrics(s, "read", f64::NAN)).unwrap().unwrap_err();
    assert!(err.contains("InvalidValue"), "{err}");

    let registry = Arc::clone(&h.runtime.services().metrics);
    let server = edgecell_metrics::MetricsServer::start("127.0.0.1:0".parse().unwrap(), registry, false).unwrap();
    let body = http_get(server.addr(), "/metrics");
    for line in [
        "# TYPE probe_calls_total counter",
        // the NaN call still counted the call (counter first), not the observation
        "probe_calls_total{component=\"probe\",op=\"read\"} 3",
        "probe_calls_total{component=\"probe\",op=\"write\"} 1",
        "# TYPE probe_values histogram",
        "probe_values_bucket{component=\"probe\",op=\"read\",le=\"1\"} 1",
        "probe_values_bucket{component=\"probe\",op=\"read\",le=\"10\"} 2",
        "probe_values_bucket{component=\"probe\",op=\"read\",le=\"+Inf\"} 2",
        "probe_values_count{component=\"probe\",op=\"read\"} 2",
        "probe_values_sum{component=\"probe\",op=\"write\"} 500",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in\n{body}");
    }
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn memory_cap_stops_one_instance_while_another_keeps_serving() {
    let h = host(small_limits());
    let actor = probe(&h);
    let mut greedy = actor.instantiate().unwrap();
    let mut healthy = actor.instantiate().unwrap();
    let pg = greedy.probe().unwrap();
    let ph = healthy.probe().unwrap();
    // 1 MiB fits in an 8 MiB cap
    let held = greedy.call(|s, _| pg.edgecell_actors_probe_api().call_allocate(s, 1 << 20)).unwrap();
    assert_eq!(held, 1 << 20);
    let err = greedy.call(|s, _| pg.edgecell_actors_probe_api().call_allocate(s, 32 << 20)).unwrap_err();
    assert!(matches!(err, HostError::MemoryLimitExceeded { limit_bytes, .. } if limit_bytes == 8 << 20), "{err}");
    assert!(greedy.is_poisoned());
    let again = greedy.call(|s, _| pg.edgecell_actors_probe_api().call_echo(s, 1)).unwrap_err();
    assert!(matches!(again, HostError::Poisoned { .. }), "{again}");
    // the other instance is untouched
    assert_eq!(healthy.call(|s, _| ph.edgecell_actors_probe_api().call_echo(s, 7)).unwrap(), 7);
    assert!(healthy.peak_memory_bytes() <= 8 << 20);
}

#[test]
fn deadline_stops_a_spinning_call_while_another_instance_keeps_serving() {
    let h = host(small_limits());
    let actor = probe(&h);
    let mut spinner = actor.instantiate().unwrap();
    let mut healthy = actor.instantiate().unwrap();
    let ps = spinner.probe().unwrap();
    let ph = healthy.probe().unwrap();
    // a bounded spin finishes
    spinner.call(|s, _| ps.edgecell_actors_probe_api().call_spin(s, 1000)).unwrap();
    let err = spinner.call(|s, _| ps.edgecell_actors_probe_api().call_spin(s, u64::MAX)).unwrap_err();
    assert!(matches!(err, HostError::DeadlineExceeded { deadline_ms: 200, .. }), "{err}");
    assert_eq!(healthy.call(|s, _| ph.edgecell_actors_probe_api().call_echo(s, 9)).unwrap(), 9);
}

#[test]
fn without_a_deadline_calls_run_on_an_engine_compiled_without_interruption_checks() {
    let free = host(RuntimeConfig { call_deadline: None, ..RuntimeConfig::default() });
    let bounded = host(RuntimeConfig::default());
    // interruption checks are part of the compiled code: one engine's .cwasm is not the other's
    assert_ne!(free.runtime.engine_hash(), bounded.runtime.engine_hash());
    let actor = probe(&free);
    let mut inst = actor.instantiate().unwrap();
    let p = inst.probe().unwrap();
    inst.call(|s, _| p.edgecell_actors_probe_api().call_spin(s, 100_000)).unwrap();
    assert_eq!(inst.call(|s, _| p.edgecell_actors_probe_api().call_echo(s, 7)).unwrap(), 7);
}

#[test]
fn a_pool_replaces_a_trapped_instance() {
    let h = host(small_limits());
    let pool = InstancePool::new(Arc::new(probe(&h)), 2);
    let err = pool
        .with_instance(|i| {
            let p = i.probe()?;
            i.call(|s, _| p.edgecell_actors_probe_api().call_spin(s, u64::MAX))
        })
        .unwrap_err();
    assert!(matches!(err, HostError::DeadlineExceeded { .. }));
    assert_eq!(pool.replaced(), 1);
    let v = pool
        .with_instance(|i| {
            let p = i.probe()?;
            i.call(|s, _| p.edgecell_actors_probe_api().call_echo(s, 3))
        })
        .unwrap();
    assert_eq!(v, 3);
}

#[test]
fn a_component_whose_digest_does_not_match_is_refused() {
    let h = host(RuntimeConfig::default());
    let mut s = spec("probe", common::probe_path());
    s.sha256 = Some("00".repeat(32));
    let err = h.runtime.load_actor(s).unwrap_err();
    assert!(matches!(err, HostError::DigestMismatch { ref expected, .. } if *expected == "00".repeat(32)), "{err}");
    assert!(err.to_string().contains("does not match the pinned"));
}

#[test]
fn garbage_bytes_are_a_compile_error_not_a_crash() {
    let h = host(RuntimeConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let err = h.runtime.load_actor(spec("junk", path)).unwrap_err();
    assert!(matches!(err, HostError::Compile { .. }), "{err}");
}

#[test]
fn precompiled_cache_is_used_and_a_corrupt_entry_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig { cache_dir: Some(dir.path().to_owned()), ..RuntimeConfig::default() };
    let h = host(cfg.clone());
    let first = probe(&h);
    assert_eq!(first.load_source(), LoadSource::CompiledAndCached);
    let second = probe(&h);
    assert_eq!(second.load_source(), LoadSource::Precompiled);
    let mut inst = second.instantiate().unwrap();
    let p = inst.probe().unwrap();
    assert_eq!(inst.call(|s, _| p.edgecell_actors_probe_api().call_echo(s, 11)).unwrap(), 11);

    // flip a byte in the cached artifact: it is refused (digest check) and rebuilt
    let cwasm = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(&cwasm).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&cwasm, bytes).unwrap();
    let third = probe(&h);
    assert_eq!(third.load_source(), LoadSource::CompiledAndCached);
    let mut inst = third.instantiate().unwrap();
    let p = inst.probe().unwrap();
    assert_eq!(inst.call(|s, _| p.edgecell_actors_probe_api().call_echo(s, 12)).unwrap(), 12);
}

#[test]
fn runtime_config_reaches_the_component_through_wasi_config() {
    let h = host(RuntimeConfig::default());
    let mut s = spec("probe", common::probe_path());
    s.config.insert("region".into(), "eu-west".into());
    let actor = h.runtime.load_actor(s).unwrap();
    let mut inst = actor.instantiate().unwrap();
    let p = inst.probe().unwrap();
    let v = inst.call(|s, _| p.edgecell_actors_probe_api().call_config_get(s, "region")).unwrap();
    assert_eq!(v.as_deref(), Some("eu-west"));
    let missing = inst.call(|s, _| p.edgecell_actors_probe_api().call_config_get(s, "nope")).unwrap();
    assert_eq!(missing, None);
}

#[test]
fn messages_are_handled_and_replies_published() {
    let h = host(RuntimeConfig::default());
    let pool = InstancePool::new(Arc::new(probe(&h)), 1);
    for i in 1..=3 {
        let msg = BrokerMessage { subject: "edgecell.probe.in".into(), body: format!("m{i}").into_bytes(), reply_to: Some("reply.1".into()) };
        pool.with_instance(|inst| inst.handle_message(&msg)).unwrap().unwrap();
    }
    let published = h.bus.drain();
    let bodies: Vec<String> = published.iter().map(|p| String::from_utf8(p.body.clone()).unwrap()).collect();
    assert_eq!(bodies, ["1:m1", "2:m2", "3:m3"]);
    assert!(published.iter().all(|p| p.subject == "reply.1" && p.from == "probe"));
    let snapshot = h.runtime.services().metrics.snapshot();
    assert_eq!(snapshot.total("probe_messages_total", &[("component", "probe")]), Some(3.0));
}

#[test]
fn inspect_lists_only_the_imports_the_probe_uses() {
    let h = host(RuntimeConfig::default());
    let bytes = std::fs::read(common::probe_path()).unwrap();
    let (component, _) = h.runtime.load_component("probe", &bytes).unwrap();
    let report = edgecell::inspect::report(h.runtime.engine(), &component, &bytes);
    let imports: Vec<&str> = report.imports.iter().map(|i| i.name.as_str()).collect();
    for wanted in [
        "edgecell:cache/store@0.2.0",
        "edgecell:metrics/recorder@0.1.0",
        "wasi:config/store@0.2.0-draft",
        "wasmcloud:messaging/consumer@0.2.0",
    ] {
        assert!(imports.contains(&wanted), "{wanted} not in {imports:?}");
    }
    assert!(!imports.iter().any(|i| i.starts_with("edgecell:inference")), "{imports:?}");
    assert!(!imports.iter().any(|i| i.starts_with("wasi:sockets") || i.starts_with("wasi:http")), "{imports:?}");
    let exports: Vec<&str> = report.exports.iter().map(|i| i.name.as_str()).collect();
    assert!(exports.contains(&"edgecell:actors/probe-api@0.1.0"), "{exports:?}");
    assert!(exports.contains(&"wasmcloud:messaging/handler@0.2.0"), "{exports:?}");
    let cache = report.imports.iter().find(|i| i.name == "edgecell:cache/store@0.2.0").unwrap();
    assert!(cache.functions.contains(&"compare-and-swap(namespace, key, expected, value, ttl-ms)".to_owned()), "{:?}", cache.functions);
    assert_eq!(report.sha256, edgecell::sha256_hex(&bytes));
}
