//! Host overheads with the probe component:
//! - `instantiate`: a fresh instance from `InstancePre` with the pooling allocator,
//! - `call`: a host→component round trip of a trivial export (`echo`),
//! - `cold_start`: from a precompiled `.cwasm` on disk to the first reply.
//!
//! After criterion's groups it prints p50/p99 from 10 000 timed samples of each, because the
//! targets are stated as percentiles.

// A benchmark has nothing to recover to: a failed setup step aborts it with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use edgecell::{ActorSpec, Runtime, RuntimeConfig, Services};

fn probe_path() -> PathBuf {
    if let Ok(d) = std::env::var("EDGECELL_COMPONENTS") {
        return PathBuf::from(d).join("edgecell_probe.wasm");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors().nth(3).map(|t| t.join("wasm32-wasip2/component/edgecell_probe.wasm")).unwrap_or_default()
}

fn runtime(cache_dir: Option<PathBuf>) -> Runtime {
    let (services, _bus) = Services::local(edgecell_kv_cache::CacheConfig::default());
    Runtime::new(RuntimeConfig { cache_dir, max_instances: 256, ..RuntimeConfig::default() }, services).expect("runtime")
}

fn spec(path: &std::path::Path) -> ActorSpec {
    ActorSpec { name: "probe".into(), path: path.to_owned(), sha256: None, config: Default::default() }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let path = probe_path();
    assert!(path.exists(), "{} missing: run `make components`", path.display());
    let cache = tempfile::tempdir().expect("tempdir");
    let rt = runtime(Some(cache.path().to_owned()));
    let actor = rt.load_actor(spec(&path)).expect("load probe");

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("instantiate", |b| b.iter(|| actor.instantiate().expect("instantiate")));

    let mut inst = actor.instantiate().expect("instantiate");
    let probe = inst.probe().expect("probe bindings");
    c.bench_function("call", |b| {
        b.iter(|| inst.call(|s, _| probe.edgecell_actors_probe_api().call_echo(s, 7)).expect("echo"));
    });

    let cold = || {
        // the engine exists (a host has one); everything about the component is loaded anew
        let a = rt.load_actor(spec(&path)).expect("load precompiled");
        assert_eq!(a.load_source(), edgecell::LoadSource::Precompiled);
        let mut i = a.instantiate().expect("instantiate");
        let p = i.probe().expect("probe");
        i.call(|s, _| p.edgecell_actors_probe_api().call_echo(s, 1)).expect("echo")
    };
    let mut g = c.benchmark_group("cold_start");
    g.sample_size(30);
    g.bench_function("cwasm_to_first_reply", |b| b.iter(cold));
    g.finish();
    c.final_summary();

    let n = 10_000;
    let inst_samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let i = actor.instantiate().expect("instantiate");
            let d = t.elapsed();
            drop(i);
            d
        })
        .collect();
    let call_samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            inst.call(|s, _| probe.edgecell_actors_probe_api().call_echo(s, 7)).expect("echo");
            t.elapsed()
        })
        .collect();
    let cold_samples: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            cold();
            t.elapsed()
        })
        .collect();
    let (i50, i99) = percentiles(inst_samples);
    let (c50, c99) = percentiles(call_samples);
    let (s50, s99) = percentiles(cold_samples);
    println!("percentiles (n = {n}, cold start n = 200):");
    println!("  instantiate           p50 {:>9.2} µs   p99 {:>9.2} µs   (target p50 ≤ 20 µs)", i50.as_secs_f64() * 1e6, i99.as_secs_f64() * 1e6);
    println!("  call (echo)           p50 {:>9.0} ns   p99 {:>9.0} ns", c50.as_secs_f64() * 1e9, c99.as_secs_f64() * 1e9);
    println!("  cold start (.cwasm)   p50 {:>9.3} ms   p99 {:>9.3} ms   (target ≤ 2 ms)", s50.as_secs_f64() * 1e3, s99.as_secs_f64() * 1e3);
    println!("  probe component size  {} bytes", std::fs::metadata(&path).map_or(0, |m| m.len()));
}
