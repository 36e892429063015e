//! Domain kernels native vs inside a component, in one run: `wasm ÷ native` per kernel.
//!
//! The same source (`crates/kernels`) runs natively and in the `kernels` test component; both
//! return a checksum that must agree, so neither side can skip work. Criterion records each
//! side; the ratio printed at the end is of medians of 31 alternating timed runs.
//!
//! The component runs twice: on the default engine, whose per-call deadline makes wasmtime put
//! an epoch check at every loop back-edge and function entry, and on one without a deadline
//! (`RuntimeConfig::call_deadline = None`, host config `interrupt_calls = false`).

// A benchmark has nothing to recover to: a failed setup step aborts it with its message.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use edgecell::{ActorSpec, Runtime, RuntimeConfig, Services};

fn component_path() -> PathBuf {
    let dir = std::env::var("EDGECELL_COMPONENTS").map_or_else(
        |_| {
            let exe = std::env::current_exe().unwrap_or_default();
            exe.ancestors().nth(3).map(|t| t.join("wasm32-wasip2/component")).unwrap_or_default()
        },
        PathBuf::from,
    );
    dir.join("edgecell_kernels_component.wasm")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let path = component_path();
    assert!(path.exists(), "{} missing: run `make components`", path.display());
    let mut wasm = kernel_runner(&path, RuntimeConfig::default());
    let mut free = kernel_runner(&path, RuntimeConfig { call_deadline: None, ..RuntimeConfig::default() });

    let mut c = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    // EDGECELL_KERNELS=v2x runs only the kernels whose name contains "v2x"
    let only = std::env::var("EDGECELL_KERNELS").unwrap_or_default();
    for name in edgecell_kernels::KERNELS.into_iter().filter(|n| n.contains(only.as_str())) {
        let steps = edgecell_kernels::bench_steps(name);
        let native_sum = edgecell_kernels::run(name, steps).expect("native kernel");
        for wasm_sum in [wasm(name), free(name)] {
            assert!(
                (native_sum - wasm_sum).abs() <= 1e-9 * native_sum.abs().max(1.0),
                "{name}: native checksum {native_sum} != wasm {wasm_sum}"
            );
        }
        let mut g = c.benchmark_group(name);
        g.sample_size(20);
        g.bench_function("native", |b| b.iter(|| edgecell_kernels::run(name, steps).expect("native")));
        g.bench_function("wasm", |b| b.iter(|| wasm(name)));
        g.bench_function("wasm-no-deadline", |b| b.iter(|| free(name)));
        g.finish();
        let (mut n, mut w, mut f) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..31 {
            let t = Instant::now();
            edgecell_kernels::run(name, steps).expect("native");
            n.push(t.elapsed());
            let t = Instant::now();
            wasm(name);
            w.push(t.elapsed());
            let t = Instant::now();
            free(name);
            f.push(t.elapsed());
        }
        rows.push((name, steps, median(n), median(w), median(f)));
    }
    c.final_summary();
    println!("kernel medians over 31 alternating runs (steps per run in brackets):");
    for (name, steps, n, w, f) in rows {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(steps);
        println!(
            "  {name:<16} [{steps:>4}] native {:>8.3} µs/step   wasm {:>8.3} µs/step   wasm/native {:.3}  (target ≤ 1.15)   no deadline {:>8.3} µs/step {:.3}",
            per(n),
            per(w),
            w.as_secs_f64() / n.as_secs_f64(),
            per(f),
            f.as_secs_f64() / n.as_secs_f64()
        );
    }
}

/// Runs kernels in the kernels component on a runtime of its own with `config`.
fn kernel_runner(path: &std::path::Path, config: RuntimeConfig) -> impl FnMut(&str) -> f64 {
    let (services, bus) = Services::local(edgecell_kv_cache::CacheConfig::default());
    let rt = Runtime::new(config, services).expect("runtime");
    let actor = rt
        .load_actor(ActorSpec { name: "kernels".into(), path: path.to_owned(), sha256: None, config: Default::default() })
        .expect("load kernels component");
    let mut inst = actor.instantiate().expect("instantiate");
    let k = inst.kernels().expect("kernels bindings");
    move |name: &str| -> f64 {
        let _keep = (&rt, &bus);
        let steps = edgecell_kernels::bench_steps(name);
        inst.call(|s, _| k.edgecell_actors_kernel_api().call_run(s, name, steps)).expect("call").expect("kernel")
    }
}
