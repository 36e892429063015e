//! Cache operation cost: `set`, `get` (hit) and `increment` on a warm cache, and a V2X
//! message's read-then-write of its history (4 keys: track, replay mark, two cells) with a
//! plain `set_many` against the all-or-nothing `set_many_if` expecting the versions read, on a
//! cache built as the provider builds it (with producers' shards). And a snapshot of a full
//! default cache (64 MiB budget, 1 KiB values: about 48k entries) written and read back.
use criterion::{Criterion, criterion_group, criterion_main};
use edgecell_kv_cache::{BatchOutcome, Cache, CacheConfig, ConditionalWrite, Expect};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    // as the provider builds it: producers' namespaces apart (every key is routed by the policy)
    let cache = Cache::with_ingest(CacheConfig::default(), edgecell_kv_cache::ingest::IngestPolicy::default());
    for i in 0..10_000 {
        let _ = cache.set("bench", "ns", &format!("key-{i}"), vec![7; 64], Some(60_000));
    }
    let mut g = c.benchmark_group("cache");
    let mut i = 0u64;
    g.bench_function("set_64b", |b| {
        b.iter(|| {
            i = (i + 1) % 10_000;
            cache.set("bench", "ns", &format!("key-{i}"), vec![7; 64], Some(60_000))
        });
    });
    g.bench_function("get_hit_64b", |b| {
        b.iter(|| {
            i = (i + 1) % 10_000;
            black_box(cache.get("bench", "ns", &format!("key-{i}")))
        });
    });
    g.bench_function("increment", |b| b.iter(|| cache.increment("bench", "ns", "counter", 1, None)));
    g.finish();

    let mut g = c.benchmark_group("v2x_history_commit");
    let keys: Vec<String> = ["track/77", "sec/00000000000000aa", "cell/3/0", "cell/3/1"].map(str::to_owned).to_vec();
    let values: Vec<Vec<u8>> = [300usize, 20, 200, 200].map(|n| vec![5; n]).to_vec();
    g.bench_function("get_many+set_many", |b| {
        b.iter(|| {
            let read = cache.get_many("bench", "v2x", &keys).unwrap_or_default();
            black_box(read);
            let items = keys.iter().cloned().zip(values.iter().cloned()).collect();
            black_box(cache.set_many("bench", "v2x", items, Some(120_000)))
        });
    });
    g.bench_function("get_many+set_many_if", |b| {
        b.iter(|| {
            let read = cache.get_many("bench", "v2x", &keys).unwrap_or_default();
            let items = keys
                .iter()
                .zip(&values)
                .zip(&read)
                .enumerate()
                .map(|(n, ((key, value), entry))| {
                    // track and mark checked, cells written along, as the actor does
                    let expect = if n < 2 { Expect::read(entry.as_ref().map(|e| e.version)) } else { Expect::Any };
                    ConditionalWrite { key: key.clone(), expect, value: value.clone() }
                })
                .collect();
            let out = cache.set_many_if("bench", "v2x", items, Some(120_000));
            assert!(matches!(out, Ok(BatchOutcome::Written(_))), "no other writer here");
            black_box(out)
        });
    });
    g.finish();

    // a default cache filled to its budget with 1 KiB values (LRU eviction keeps it there)
    let full = Cache::with_ingest(CacheConfig::default(), edgecell_kv_cache::ingest::IngestPolicy::default());
    for i in 0..80_000 {
        let _ = full.set("bench", "ns", &format!("key-{i}"), vec![9; 1024], Some(600_000));
    }
    let (bytes, written) = full.snapshot();
    eprintln!("snapshot of a full default cache: {} entries, {} value bytes, {} file bytes", written.entries, written.bytes, bytes.len());
    let mut g = c.benchmark_group("snapshot_full_64mib");
    g.sample_size(10);
    g.bench_function("write", |b| b.iter(|| black_box(full.snapshot())));
    g.bench_function("restore", |b| {
        b.iter(|| {
            let fresh = Cache::with_ingest(CacheConfig::default(), edgecell_kv_cache::ingest::IngestPolicy::default());
            black_box(fresh.restore(&bytes))
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
