//! Latency on the real wasmCloud 1.9 lattice (nats-server + wadm + wasmcloud-host 0.27.1 with the
//! edgecell providers), producer → actor → result, open loop at fixed rates, next to the host's
//! own echo round trip measured in the same run; plus the component → kv-cache provider call.
//!
//! Not a criterion bench: an open-loop load test needs a schedule, not iterations. Run with
//! `make bench-lattice` (needs `make lattice`); it prints a Markdown table for BENCHMARKS.md.
//! Environment: `EDGECELL_BENCH_SECS` (per rate, default 3), `EDGECELL_BENCH_RATES` (default
//! `1000,5000`), `EDGECELL_BENCH_SIGNED_RATES` (secured CAMs, default `250,1000`; empty = none),
//! `EDGECELL_BENCH_SIGNED_STATIONS` (signing vehicles taking turns, default 100).
//!
//! Secured CAMs: stations (each with its own AT, station id and place) sign a real CAM (P-256),
//! carrying their certificate on every tenth message and the digest otherwise, as ETSI TS 103
//! 097 stations do; the validator is configured
//! through the manifest's named config with the root as trust anchor and the AA as a CA
//! certificate.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::cast_precision_loss)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgecell_tests::support::{lattice_bin, Lattice};
use futures::StreamExt as _;

/// Beacon `i` of `pseudonyms` vehicles taking turns at 10 Hz of trace time: 50 lanes 4 m apart,
/// each vehicle in its own slot 30 m behind the next in its lane, all driving east at 10 m/s.
fn beacon(i: u64, pseudonyms: u64) -> Vec<u8> {
    let pseudo = 1000 + i % pseudonyms;
    let t = 1.0 + (i / pseudonyms) as f64 * 0.1;
    let x = 300.0 + 10.0 * t + 30.0 * ((i % pseudonyms) / 50) as f64;
    serde_json::json!({
        "type": 3, "rcvTime": t, "sendTime": t - 0.01, "sender": 9, "senderPseudo": pseudo, "messageID": i,
        "pos": [x, (pseudo % 50) as f64 * 4.0, 0.0], "pos_noise": [0.5, 0.5, 0.0], "spd": [10.0, 0.0, 0.0],
        "spd_noise": [0.1, 0.1, 0.0], "acl": [0.0, 0.0, 0.0], "hed": [1.0, 0.0, 0.0], "hed_noise": [0.02, 0.02, 0.0]
    })
    .to_string()
    .into_bytes()
}

#[derive(Debug)]
struct Run {
    sent: usize,
    latencies: Vec<Duration>,
    achieved_rate: f64,
}

impl Run {
    fn pct(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[idx]
    }
}

/// Publishes `n` messages at `rate`/s (absolute schedule), each with its own reply subject, and
/// measures send → reply for every one.
async fn open_loop(client: &async_nats::Client, subject: &str, rate: f64, n: usize, body: impl Fn(u64) -> Vec<u8>) -> Run {
    let inbox = format!("bench.{}.{}", std::process::id(), subject.replace('.', "-"));
    let mut sub = client.subscribe(format!("{inbox}.*")).await.unwrap();
    client.flush().await.unwrap();
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; n]));
    let recv = tokio::spawn({
        let sent_at = Arc::clone(&sent_at);
        async move {
            let mut lat = Vec::with_capacity(n);
            loop {
                let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), sub.next()).await else { break };
                let now = Instant::now();
                let Some(i) = m.subject.rsplit('.').next().and_then(|s| s.parse::<usize>().ok()) else { continue };
                if let Some(Some(t)) = sent_at.lock().unwrap().get(i) {
                    lat.push(now - *t);
                }
                if lat.len() == n {
                    break;
                }
            }
            lat
        }
    });
    let bodies: Vec<Vec<u8>> = (0..n as u64).map(&body).collect();
    let start = Instant::now();
    for (i, b) in bodies.into_iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        sent_at.lock().unwrap()[i] = Some(Instant::now());
        client.publish_with_reply(subject.to_owned(), format!("{inbox}.{i}"), b.into()).await.unwrap();
    }
    client.flush().await.unwrap();
    let elapsed = start.elapsed();
    let mut latencies = recv.await.unwrap();
    latencies.sort();
    Run { sent: n, latencies, achieved_rate: n as f64 / elapsed.as_secs_f64() }
}

/// Sequential request/reply round trips.
async fn closed_loop(client: &async_nats::Client, subject: &str, n: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        client.request(subject.to_owned(), "x".into()).await.unwrap();
        out.push(t.elapsed());
    }
    out.sort();
    out
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn main() {
    let Some(bin) = lattice_bin() else { return };
    let secs: f64 = std::env::var("EDGECELL_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let rates_from = |var: &str, default: &str| -> Vec<f64> {
        std::env::var(var).unwrap_or_else(|_| default.into()).split(',').filter_map(|s| s.trim().parse().ok()).collect()
    };
    let rates = rates_from("EDGECELL_BENCH_RATES", "1000,5000");
    let signed_rates = rates_from("EDGECELL_BENCH_SIGNED_RATES", "250,1000");
    let its_now = || {
        let unix_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        edgecell_v2x::observation::unix_ns_to_its_ms(u64::try_from(unix_ns).unwrap())
    };
    let chain = edgecell_v2x::security::build::CamChain::new(u32::try_from(its_now() / 1000 - 3600).unwrap()).unwrap();
    let config = serde_json::to_string(&chain.trust_toml_with_aa()).unwrap();
    let cam: &[u8] = include_bytes!("../../crates/v2x/testdata/c-its-parser-cam.uper");
    // secured CAMs come from `stations` vehicles taking turns, each with its own AT (issued by
    // the chain's AA) and station id: one signer at 1k msg/s is no vehicle, and a signer's
    // replay mark and track are written by one message at a time (set-many-if)
    let stations: u64 = std::env::var("EDGECELL_BENCH_SIGNED_STATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(100).max(1);
    let at_start = u32::try_from(its_now() / 1000 - 3600).unwrap();
    let ats: Vec<_> = (0..stations)
        .map(|k| {
            let mut seed = [3u8; 32];
            seed[24..].copy_from_slice(&k.to_be_bytes());
            let key = edgecell_v2x::security::build::key_from_seed(seed).unwrap();
            edgecell_v2x::security::build::certificate("at", &key, Some(&chain.aa), at_start, 100, &[36]).unwrap()
        })
        .collect();
    // each station's CAM: the captured one with its own station id, 10 m north of the last
    let cams: Vec<Vec<u8>> = (0..stations)
        .map(|k| {
            let (mut c, ext) = edgecell_v2x::cam_v2::decode(cam).unwrap();
            c.header.station_id.0 = u32::try_from(1000 + k).unwrap();
            c.cam.cam_parameters.basic_container.reference_position.latitude.0 += i32::try_from(k * 900).unwrap();
            edgecell_v2x::cam_v2::encode(&c, &ext).unwrap()
        })
        .collect();
    // message i of a run at `rate`/s: generated when it is due by station i % stations, with
    // the AT certificate on the station's first message and then on every tenth
    let signed_cam = |start_ms: u64, rate: f64, i: u64| {
        let due_ms = start_ms + (i as f64 * 1000.0 / rate) as u64;
        let (k, nth) = (i % stations, i / stations);
        edgecell_v2x::security::build::signed_data(&ats[k as usize], &cams[k as usize], 36, due_ms * 1000, nth.is_multiple_of(10)).unwrap()
    };
    let lattice = Lattice::start(&bin, &["tier=edge", "region=bench"]);
    lattice.deploy_with("tests/lattice/bench.wadm.yaml", &[("reporter-id: \"1001\"", &format!("reporter-id: \"1001\"\n              config: {config}"))]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut rows = Vec::new();
    let mut provider_rt = None;
    rt.block_on(async {
        let client = async_nats::connect(&lattice.nats.url).await.unwrap();
        // warm up: instances, wRPC connections, the cache
        open_loop(&client, "edgecell.echo.bench", 500.0, 500, |_| b"warm".to_vec()).await;
        open_loop(&client, "edgecell.v2x.in.bench", 500.0, 500, |i| beacon(i, 500)).await;
        // component -> kv-cache provider: 10 calls vs none, closed loop
        let zero = closed_loop(&client, "edgecell.probe.cache.0", 300).await;
        let ten = closed_loop(&client, "edgecell.probe.cache.10", 300).await;
        let per_call = (ten[ten.len() / 2].saturating_sub(zero[zero.len() / 2])) / 10;
        provider_rt = Some((zero[zero.len() / 2], ten[ten.len() / 2], per_call));
        for &rate in &rates {
            let n = (rate * secs) as usize;
            // echo and the actor in the same run, interleaved per rate
            let echo = open_loop(&client, "edgecell.echo.bench", rate, n, |_| vec![b'e'; 256]).await;
            let v2x = open_loop(&client, "edgecell.v2x.in.bench", rate, n, |i| beacon(i + 10_000, 500)).await;
            rows.push((rate, echo, v2x, "v2x-validator"));
        }
        for &rate in &signed_rates {
            let n = (rate * secs) as usize;
            let echo = open_loop(&client, "edgecell.echo.bench", rate, n, |_| vec![b'e'; 256]).await;
            let start_ms = its_now();
            let signed = open_loop(&client, "edgecell.v2x.in.bench", rate, n, |i| signed_cam(start_ms, rate, i)).await;
            rows.push((rate, echo, signed, "v2x-validator, secured CAM (P-256)"));
        }
    });
    println!("\n| rate (msg/s) | path | sent | answered | achieved rate | p50 µs | p99 µs | max µs | p50 ÷ echo p50 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (rate, echo, v2x, path) in &rows {
        for (name, r) in [("echo (probe, no provider call)", echo), (*path, v2x)] {
            println!(
                "| {rate:.0} | {name} | {} | {} | {:.0} | {} | {} | {} | {:.2} |",
                r.sent,
                r.latencies.len(),
                r.achieved_rate,
                us(r.pct(0.5)),
                us(r.pct(0.99)),
                us(r.latencies.last().copied().unwrap_or_default()),
                r.pct(0.5).as_secs_f64() / echo.pct(0.5).as_secs_f64().max(1e-9)
            );
        }
    }
    if let Some((zero, ten, per_call)) = provider_rt {
        println!(
            "\ncomponent -> kv-cache provider call (closed loop, 300 requests each): p50 with 0 calls {} µs, with 10 calls {} µs: {} µs per call",
            us(zero),
            us(ten),
            us(per_call)
        );
    }
    lattice.undeploy("edgecell-bench");
    lattice.shutdown();
}
