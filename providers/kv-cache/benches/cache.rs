//! Cache operation cost: `set`, `get` (hit) and `increment` on a warm cache.
use criterion::{Criterion, criterion_group, criterion_main};
use edgecell_kv_cache::{Cache, CacheConfig};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let cache = Cache::new(CacheConfig::default());
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
