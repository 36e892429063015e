//! `fusion_message`: one test2.bag message through the sensor-fusion actor's messaging handler
//! in the embedded host, including the localizer state round trip through the cache
//! (read, update, compare-and-swap), with
//! - `one_instance`: the embedded host's way, one instance kept across messages,
//! - `new_instance`: wasmCloud 1.x's way, a fresh instance per message (instantiation included).
//!
//! The bag's 6121 messages are replayed in order; when a run needs more, the host starts over
//! with an empty cache (outside the timed part) so every timed message is an in-order update.

// A benchmark has nothing to recover to: a failed setup step aborts it with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::Criterion;
use edgecell::bindings::BrokerMessage;
use edgecell::{Actor, ActorSpec, Runtime, RuntimeConfig, Services};

fn component(file: &str) -> PathBuf {
    let dir = std::env::var("EDGECELL_COMPONENTS").map_or_else(
        |_| {
            let exe = std::env::current_exe().unwrap_or_default();
            exe.ancestors().nth(3).map(|t| t.join("wasm32-wasip2/component")).unwrap_or_default()
        },
        PathBuf::from,
    );
    let p = dir.join(file);
    assert!(p.exists(), "{} missing: run `make components`", p.display());
    p
}

fn test2_messages() -> Vec<BrokerMessage> {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/test2.bag")).unwrap();
    let cfg = edgecell_fusion::preset("robot-localization-test2").unwrap();
    edgecell::produce::sensor_messages(&bytes, &cfg, "jackal").unwrap()
}

/// A fresh host (empty cache) with the jackal-configured sensor-fusion actor.
fn jackal(path: &std::path::Path) -> (Runtime, Actor) {
    let (services, _bus) = Services::local(edgecell_kv_cache::CacheConfig::default());
    let rt = Runtime::new(RuntimeConfig::default(), services).expect("runtime");
    let mut config = std::collections::BTreeMap::new();
    config.insert("filter.jackal".to_owned(), "robot-localization-test2".to_owned());
    let actor = rt.load_actor(ActorSpec { name: "sensor-fusion".into(), path: path.to_owned(), sha256: None, config }).expect("load");
    (rt, actor)
}

/// The bag replayed in order through one host; starts over with a fresh host (empty cache,
/// outside the timed part) when the bag runs out, so every timed message is an in-order update.
struct Replay<'a> {
    path: &'a std::path::Path,
    msgs: &'a [BrokerMessage],
    host: (Runtime, Actor),
    inst: edgecell::ActorInstance,
    next: usize,
}

impl<'a> Replay<'a> {
    fn new(path: &'a std::path::Path, msgs: &'a [BrokerMessage]) -> Self {
        let host = jackal(path);
        let inst = host.1.instantiate().expect("instantiate");
        Self { path, msgs, host, inst, next: 0 }
    }

    /// Times `iters` messages, a new instance per message when `fresh`.
    fn time(&mut self, iters: u64, fresh: bool) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if self.next == self.msgs.len() {
                *self = Self::new(self.path, self.msgs);
            }
            let t = Instant::now();
            if fresh {
                self.inst = self.host.1.instantiate().expect("instantiate");
            }
            self.inst.handle_message(&self.msgs[self.next]).expect("no trap").expect("accepted");
            total += t.elapsed();
            self.next += 1;
        }
        total
    }
}

fn main() {
    let path = component("edgecell_sensor_fusion.wasm");
    let msgs = test2_messages();
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("fusion_message");
    let mut replay = Replay::new(&path, &msgs);
    g.bench_function("one_instance", |b| b.iter_custom(|iters| replay.time(iters, false)));
    let mut replay = Replay::new(&path, &msgs);
    g.bench_function("new_instance", |b| b.iter_custom(|iters| replay.time(iters, true)));
    g.finish();
    c.final_summary();
}
