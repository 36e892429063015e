//! `edgecell::produce`: the messages built from the bundled data, the pacing schedule, and
//! production against a real nats-server with the embedded host's cache ingest answering the
//! frame puts.
//!
//! Expected counts were read independently of the crate's readers: ROS bag records with a
//! small Python bag parser (test2.bag: 3061 /imu/data, 3060 /jackal_velocity_controller/odom;
//! test1.bag: 11865 /imu/data, 3952 /husky_velocity_controller/odom, 989 /fix), the AVI's
//! `avih` header and `movi` chunks (20 JPEG frames at 10 fps, 1,119,235 bytes), and the
//! simulator numbers from `edgecell v2x simulate --attack ConstPosOffset --seed 42
//! --duration 30` (780 records, 750 beacons, 175 malicious).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecell::nats::NatsConnection;
use edgecell::produce::{
    AttackType, Item, Plan, ProduceError, ProduceOptions, Schedule, Source, SourceKind, build_items, produce,
};
use edgecell_fusion::localizer::{SensorConfig, SensorKind};
use edgecell_fusion::wire::{SensorEnvelope, WireMessage};
use edgecell_kv_cache::ingest::IngestPolicy;
use edgecell_kv_cache::{Cache, CacheConfig};
use edgecell_vision::MjpegAvi;
use edgecell_vision::wire::FrameRef;
use futures::StreamExt;

fn data(path: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data").join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn publish_body(item: &Item) -> &[u8] {
    match item {
        Item::Publish(m) => &m.body,
        Item::Frame { .. } => panic!("expected a plain publish, got a frame"),
    }
}

fn envelope(item: &Item) -> SensorEnvelope {
    serde_json::from_slice(publish_body(item)).expect("a sensor envelope")
}

fn stamp(e: &SensorEnvelope) -> f64 {
    match &e.message {
        WireMessage::Imu(m) => m.header.stamp,
        WireMessage::Odometry(m) => m.header.stamp,
        WireMessage::Gnss(m) => m.header.stamp,
    }
}

/// (imu, odometry, gnss) counts.
fn kinds(envs: &[SensorEnvelope]) -> (usize, usize, usize) {
    let imu = envs.iter().filter(|e| matches!(e.message, WireMessage::Imu(_))).count();
    let odom = envs.iter().filter(|e| matches!(e.message, WireMessage::Odometry(_))).count();
    let gnss = envs.iter().filter(|e| matches!(e.message, WireMessage::Gnss(_))).count();
    (imu, odom, gnss)
}

#[test]
fn test2_bag_gives_jackal_envelopes_in_time_order() {
    let plan = Plan::new(Source::sensors(data("fusion/test2.bag")), None).unwrap();
    assert_eq!(plan.label(), "sensors (preset robot-localization-test2)");
    assert_eq!(plan.subject(), "edgecell.sensors.in.jackal");
    assert_eq!(plan.kind(), SourceKind::Sensors);
    let items = plan.items().unwrap();
    assert_eq!(items.len(), 3061 + 3060);
    for item in &items {
        let Item::Publish(m) = item else { panic!("{item:?}") };
        assert_eq!(m.subject, "edgecell.sensors.in.jackal");
        assert!(m.headers.is_empty());
    }
    let envs: Vec<SensorEnvelope> = items.iter().map(envelope).collect();
    assert_eq!(kinds(&envs), (3061, 3060, 0));
    assert!(envs.iter().all(|e| e.filter == "jackal"));
    assert!(envs.iter().all(|e| match e.message {
        WireMessage::Imu(_) => e.sensor == "imu0",
        WireMessage::Odometry(_) => e.sensor == "odom0",
        WireMessage::Gnss(_) => false,
    }));
    let stamps: Vec<f64> = envs.iter().map(stamp).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "stamps out of order");
    // first and last header stamps of the bag (IMU 47.580 … 108.780 s; odometry from 47.584 s)
    assert!((stamps[0] - 47.58).abs() < 1e-6, "{}", stamps[0]);
    assert!(matches!(envs[0].message, WireMessage::Imu(_)));
    assert!((stamps[stamps.len() - 1] - 108.78).abs() < 1e-6, "{}", stamps[stamps.len() - 1]);
    // the body is exactly the wire form the actor parses (kind tag + message)
    let first: serde_json::Value = serde_json::from_slice(publish_body(&items[0])).unwrap();
    assert_eq!(first["kind"], "imu");
    assert_eq!(first["filter"], "jackal");
    assert_eq!(first["sensor"], "imu0");
}

#[test]
fn test1_bag_picks_the_husky_preset_and_a_gnss_sensor_adds_the_fixes() {
    let source = Source::Sensors { bag: data("fusion/test1.bag"), config: None, filter: "husky".into() };
    let plan = Plan::new(source, None).unwrap();
    assert_eq!(plan.label(), "sensors (preset robot-localization-test1)");
    assert_eq!(plan.subject(), "edgecell.sensors.in.husky");
    let envs: Vec<SensorEnvelope> = plan.items().unwrap().iter().map(envelope).collect();
    // the preset fuses IMU and odometry only
    assert_eq!(kinds(&envs), (11865, 3952, 0));

    let mut cfg = edgecell_fusion::preset("robot-localization-test1").unwrap();
    cfg.sensors.push(SensorConfig {
        name: "gnss0".into(),
        topic: "/fix".into(),
        kind: SensorKind::Gnss,
        mask: [false; 15],
        differential: false,
        relative: false,
        remove_gravitational_acceleration: false,
        rejection_threshold: None,
    });
    let source = Source::Sensors { bag: data("fusion/test1.bag"), config: Some(cfg), filter: "husky".into() };
    let items = build_items(source, Some("site.a.sensors")).unwrap();
    let envs: Vec<SensorEnvelope> = items.iter().map(envelope).collect();
    assert_eq!(kinds(&envs), (11865, 3952, 989));
    assert!(envs.iter().filter(|e| matches!(e.message, WireMessage::Gnss(_))).all(|e| e.sensor == "gnss0"));
    assert!(envs.windows(2).all(|w| stamp(&w[0]) <= stamp(&w[1])));
    assert!(matches!(&items[0], Item::Publish(m) if m.subject == "site.a.sensors"));
}

#[test]
fn v2x_simulation_matches_the_simulator_and_round_trips_through_a_trace_file() {
    let source =
        Source::V2xSimulated { attack: AttackType::ConstPosOffset, seed: 42, duration_s: 30.0, region: "local".into() };
    let plan = Plan::new(source, None).unwrap();
    assert_eq!(plan.subject(), "edgecell.v2x.in.local");
    let items = plan.items().unwrap();
    let records: Vec<serde_json::Value> = items.iter().map(|i| serde_json::from_slice(publish_body(i)).unwrap()).collect();
    // what `edgecell v2x simulate --attack ConstPosOffset --seed 42 --duration 30` reports
    assert_eq!(records.len(), 780);
    assert_eq!(records.iter().filter(|r| r["type"] == 3).count(), 750);
    assert_eq!(records.iter().filter(|r| r.get("attackType").is_some()).count(), 175);
    // the first message is the receiver's own fix at the origin, the second a beacon
    assert_eq!(records[0]["type"], 2);
    assert_eq!(records[0]["rcvTime"], 0.0);
    assert_eq!(records[0]["pos"], serde_json::json!([0.0, 0.0, 0.0]));
    assert_eq!(records[1]["type"], 3);
    assert!(records[1]["sender"].as_u64().is_some() && records[1]["senderPseudo"].as_u64().is_some());
    let times: Vec<f64> = records.iter().map(|r| r["rcvTime"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));

    // the same records as a JSON-lines file (what `v2x simulate --output` writes) give the same
    // messages, byte for byte; CRLF and blank lines are tolerated
    let mut file = Vec::new();
    for item in &items {
        file.extend_from_slice(publish_body(item));
        file.extend_from_slice(b"\r\n\n");
    }
    let from_file = build_items(Source::V2xTrace { trace: file, region: "rsu-7".into() }, None).unwrap();
    assert_eq!(from_file.len(), items.len());
    for (a, b) in from_file.iter().zip(&items) {
        let Item::Publish(m) = a else { panic!("{a:?}") };
        assert_eq!(m.subject, "edgecell.v2x.in.rsu-7");
        assert_eq!(m.body, publish_body(b));
    }
}

#[test]
fn a_bad_trace_line_is_reported_by_number() {
    let trace = b"{\"type\":2,\"rcvTime\":0.0,\"pos\":[0,0,0]}\n\n{\"type\":3,\"rcvTime\":1.0}\n".to_vec();
    match Plan::new(Source::v2x_trace(trace), None) {
        Err(ProduceError::V2xLine { line, message }) => {
            assert_eq!(line, 3);
            assert!(message.contains("pos"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(Plan::new(Source::v2x_trace(b"not json\n".to_vec()), None), Err(ProduceError::V2xLine { line: 1, .. })));
    assert!(matches!(Plan::new(Source::v2x_trace(b"\n \n".to_vec()), None), Err(ProduceError::Empty(_))));
}

/// A looped trace whose clock span is near the largest number: the second pass would move its
/// times to infinity, which JSON writes as null. It is refused instead.
#[test]
fn a_loop_that_would_move_the_clock_past_any_number_is_refused() {
    let trace = b"{\"type\":2,\"rcvTime\":1.7e308,\"pos\":[0,0,0]}\n{\"type\":2,\"rcvTime\":0.0,\"pos\":[0,0,0]}\n".to_vec();
    let plan = Plan::new(Source::v2x_trace(trace), None).unwrap();
    assert!(plan.item(0).is_ok() && plan.item(1).is_ok(), "the first pass goes out as it is");
    assert!(matches!(plan.item(2), Err(ProduceError::Encode { .. })), "{:?}", plan.item(2).map(|_| ()));
}

/// The AVI's JPEGs read with the vision crate's reader.
fn avi_frames() -> Vec<Vec<u8>> {
    let avi = data("video/vtest_2s_mjpeg.avi");
    let parsed = MjpegAvi::parse(&avi).unwrap();
    parsed.frames().map(|f| f.unwrap().data.to_vec()).collect()
}

#[test]
fn video_frames_go_by_cache_handle() {
    let plan = Plan::new(Source::video(data("video/vtest_2s_mjpeg.avi")), None).unwrap();
    assert_eq!(plan.subject(), "edgecell.video.frames.vtest");
    assert_eq!(plan.fps(), Some(10.0));
    let items = plan.items().unwrap();
    assert_eq!(items.len(), 20);
    let jpegs = avi_frames();
    let mut total = 0;
    for (i, item) in items.iter().enumerate() {
        let Item::Frame { put, frame_ref } = item else { panic!("{item:?}") };
        assert_eq!(put.subject, "edgecell.cache.put.video-analytics");
        let key = format!("vtest/{i}");
        assert_eq!(
            put.headers,
            vec![
                ("edgecell-namespace".to_owned(), "frames".to_owned()),
                ("edgecell-key".to_owned(), key.clone()),
                ("edgecell-ttl-ms".to_owned(), "60000".to_owned()),
            ]
        );
        assert_eq!(put.body[..2], [0xFF, 0xD8], "JPEG SOI");
        assert_eq!(put.body[put.body.len() - 2..], [0xFF, 0xD9], "JPEG EOI");
        assert_eq!(put.body, jpegs[i]);
        total += put.body.len();
        assert_eq!(frame_ref.subject, "edgecell.video.frames.vtest");
        let r: FrameRef = serde_json::from_slice(&frame_ref.body).unwrap();
        assert_eq!((r.stream.as_str(), r.sequence, r.namespace.as_str(), r.key.as_str()), ("vtest", i as u64, "frames", key.as_str()));
        assert_eq!(r.timestamp_ns, i as u64 * 100_000_000, "10 fps");
        assert_eq!((r.format, r.width, r.height), (edgecell_vision::PixelFormat::Jpeg, 0, 0));
        let raw: serde_json::Value = serde_json::from_slice(&frame_ref.body).unwrap();
        assert_eq!(raw["format"], "jpeg");
    }
    assert_eq!(total, 1_119_235);

    // no TTL header when frames are kept until evicted; another stream and keyspace
    let source = Source::Video { avi: data("video/vtest_2s_mjpeg.avi"), stream: "cam2".into(), keyspace: "ks".into(), ttl_ms: None };
    let Item::Frame { put, frame_ref } = &build_items(source, None).unwrap()[3] else { panic!() };
    assert_eq!(put.subject, "edgecell.cache.put.ks");
    assert_eq!(put.header("edgecell-key"), Some("cam2/3"));
    assert_eq!(put.header("edgecell-ttl-ms"), None);
    assert_eq!(frame_ref.subject, "edgecell.video.frames.cam2");
}

#[test]
fn later_passes_shift_the_data_clock() {
    let plan = Plan::new(Source::video(data("video/vtest_2s_mjpeg.avi")), None).unwrap();
    let (Item::Frame { put: p0, .. }, Item::Frame { put: p20, frame_ref: r20 }) = (plan.item(0).unwrap(), plan.item(21).unwrap()) else {
        panic!()
    };
    let r: FrameRef = serde_json::from_slice(&r20.body).unwrap();
    assert_eq!((r.sequence, r.timestamp_ns, r.key.as_str()), (21, 2_100_000_000, "vtest/21"));
    assert_eq!(p20.body, avi_frames()[1]);
    assert_eq!(p0.body, avi_frames()[0]);

    let plan = Plan::new(Source::sensors(data("fusion/test2.bag")), None).unwrap();
    let n = plan.len();
    let first = envelope(&plan.item(0).unwrap());
    let again = envelope(&plan.item(n).unwrap());
    let last = envelope(&plan.item(n - 1).unwrap());
    // shifted by the span (61.2 s) plus the mean interval, so time keeps moving forward
    let span = stamp(&last) - stamp(&first);
    let gap = span / (n - 1) as f64;
    assert!((stamp(&again) - stamp(&first) - (span + gap)).abs() < 1e-9);
    assert!(stamp(&again) > stamp(&last));
    assert_eq!((again.filter.as_str(), again.sensor.as_str()), (first.filter.as_str(), first.sensor.as_str()));

    let source = Source::V2xSimulated { attack: AttackType::Sybil, seed: 1, duration_s: 10.0, region: "local".into() };
    let plan = Plan::new(source, None).unwrap();
    let n = plan.len();
    let rcv = |i: u64| -> f64 {
        let v: serde_json::Value = serde_json::from_slice(publish_body(&plan.item(i).unwrap())).unwrap();
        v["rcvTime"].as_f64().unwrap()
    };
    let span = (0..n).map(rcv).fold(f64::NEG_INFINITY, f64::max) - (0..n).map(rcv).fold(f64::INFINITY, f64::min);
    assert!((rcv(n + 1) - rcv(1) - (span + 1.0)).abs() < 1e-6, "span {span}");
}

#[test]
fn the_schedule_is_absolute() {
    let start = Instant::now();
    let s = Schedule::new(start, 50.0).unwrap();
    assert_eq!(s.offset(0), Some(Duration::ZERO));
    assert_eq!(s.offset(100), Some(Duration::from_secs(2)));
    assert_eq!(s.due(100).unwrap(), Some(start + Duration::from_secs(2)));
    // item i is due at i / rate, however many came before: a million items at 3/s do not
    // drift by the rounding of a million 333.33 ms sleeps
    let s = Schedule::new(start, 3.0).unwrap();
    assert_eq!(s.offset(3), Some(Duration::from_secs(1)));
    let off = s.offset(1_000_000).unwrap();
    assert!((off.as_secs_f64() - 1_000_000.0 / 3.0).abs() < 1e-6, "{off:?}");
    // fractional rates
    assert_eq!(Schedule::new(start, 0.5).unwrap().offset(3), Some(Duration::from_secs(6)));
    // rate 0: as fast as possible
    let s = Schedule::new(start, 0.0).unwrap();
    assert_eq!((s.offset(5), s.due(5).unwrap()), (None, None));
    for bad in [-1.0, f64::NAN, f64::INFINITY, 1e-9] {
        assert!(matches!(Schedule::new(start, bad), Err(ProduceError::InvalidRate(_))), "{bad}");
    }
}

#[test]
fn bad_names_are_refused_before_anything_is_sent() {
    let bad_filter = Source::Sensors { bag: data("fusion/test2.bag"), config: None, filter: "a.b".into() };
    assert!(matches!(Plan::new(bad_filter, None), Err(ProduceError::InvalidToken { what: "filter", .. })));
    let bad_keyspace = Source::Video { avi: data("video/vtest_2s_mjpeg.avi"), stream: "vtest".into(), keyspace: "video.*".into(), ttl_ms: None };
    assert!(matches!(Plan::new(bad_keyspace, None), Err(ProduceError::InvalidToken { what: "keyspace", .. })));
    assert!(matches!(Plan::new(Source::video(data("video/vtest_2s_mjpeg.avi")), Some("a.>.b")), Err(ProduceError::InvalidSubject(_))));
    assert!(matches!(Plan::new(Source::sensors(b"not a bag".to_vec()), None), Err(ProduceError::Bag(_))));
    assert!(matches!(Plan::new(Source::video(b"RIFF".to_vec()), None), Err(ProduceError::Avi(_))));
}

// ---- against a real nats-server ------------------------------------------------------------

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Receive `n` messages (5 s at most).
async fn take(sub: &mut async_nats::Subscriber, n: usize) -> Vec<async_nats::Message> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let msg = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("message within 5 s").expect("subscription open");
        out.push(msg);
    }
    out
}

async fn put(client: &async_nats::Client, subject: &str, headers: &[(&str, &str)], body: Vec<u8>) -> String {
    let mut map = async_nats::HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, *v);
    }
    let reply = tokio::time::timeout(Duration::from_secs(5), client.request_with_headers(subject.to_owned(), map, body.into()))
        .await
        .expect("reply within 5 s")
        .unwrap();
    String::from_utf8(reply.payload.to_vec()).unwrap()
}

#[test]
fn produced_frames_are_read_back_from_the_cache_with_the_exact_bytes() {
    let server = crate::nats::NatsServer::start();
    let conn = NatsConnection::connect(&server.url).unwrap();
    let cache = Arc::new(Cache::with_ingest(CacheConfig { max_value_bytes: 100_000, ..CacheConfig::default() }, IngestPolicy::default()));
    let rt = runtime();
    let client = rt.block_on(async_nats::connect(&server.url)).unwrap();
    let avi = data("video/vtest_2s_mjpeg.avi");
    let jpegs = avi_frames();

    // nobody answers the puts yet: a typed error, and no frame reference was published
    let opts = ProduceOptions { limit: Some(1), ..ProduceOptions::default() };
    match rt.block_on(produce(&client, Source::video(avi.clone()), &opts, None)) {
        Err(ProduceError::CachePut { subject, key, message }) => {
            assert_eq!((subject.as_str(), key.as_str()), ("edgecell.cache.put.video-analytics", "vtest/0"));
            assert!(message.contains("no responders"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let ingest = conn.cache_ingest(Arc::clone(&cache)).unwrap();
    let mut refs = rt.block_on(async {
        let sub = client.subscribe("edgecell.video.frames.vtest").await.unwrap();
        client.flush().await.unwrap();
        sub
    });
    // one pass and two frames of the next, as fast as possible
    let opts = ProduceOptions { limit: Some(22), looped: true, ..ProduceOptions::default() };
    let stats = rt.block_on(produce(&client, Source::video(avi.clone()), &opts, None)).unwrap();
    assert_eq!((stats.kind, stats.items, stats.cache_puts, stats.messages, stats.stopped), (SourceKind::Video, 22, 22, 44, false));
    let refs: Vec<FrameRef> = rt.block_on(take(&mut refs, 22)).iter().map(|m| serde_json::from_slice(&m.payload).unwrap()).collect();
    let mut jpeg_bytes = 0;
    for (i, r) in refs.iter().enumerate() {
        assert_eq!((r.sequence, r.key.clone()), (i as u64, format!("vtest/{i}")));
        let entry = cache.get("video-analytics", &r.namespace, &r.key).unwrap().expect("frame in the cache");
        assert_eq!(entry.value, jpegs[i % 20], "frame {i}");
        assert!(entry.ttl_remaining.is_some_and(|t| t <= Duration::from_secs(60) && t > Duration::from_secs(50)));
        jpeg_bytes += entry.value.len() as u64;
    }
    assert!(stats.bytes > jpeg_bytes && stats.bytes < jpeg_bytes + 22 * 300, "{} vs {jpeg_bytes}", stats.bytes);
    assert_eq!(ingest.stats().stored.load(std::sync::atomic::Ordering::Relaxed), 22);
    assert_eq!(cache.stats().entries, 22);

    // bad requests get error replies, never a panic, and store nothing
    let replies = rt.block_on(async {
        let ok = [("edgecell-namespace", "frames"), ("edgecell-key", "k1")];
        vec![
            put(&client, "edgecell.cache.put.video-analytics", &[("edgecell-key", "k1")], vec![1]).await,
            put(&client, "edgecell.cache.put.video-analytics", &[("edgecell-namespace", "frames"), ("edgecell-key", "")], vec![1]).await,
            put(&client, "edgecell.cache.put.video-analytics", &ok, vec![0; 100_001]).await,
            put(&client, "edgecell.cache.put.video-analytics", &[("edgecell-namespace", "frames"), ("edgecell-key", "k1"), ("edgecell-ttl-ms", "soon")], vec![1]).await,
            put(&client, "edgecell.cache.put.video.analytics", &ok, vec![1]).await,
            put(&client, "edgecell.cache.put.video-analytics", &ok, b"fine".to_vec()).await,
            // a namespace not opened to producers (the actor's own state)
            put(&client, "edgecell.cache.put.video-analytics", &[("edgecell-namespace", "state"), ("edgecell-key", "vtest")], vec![1]).await,
        ]
    });
    assert_eq!(replies[0], r#"{"error":"missing header `edgecell-namespace`"}"#);
    assert!(replies[1].starts_with(r#"{"error":"invalid key"#), "{}", replies[1]);
    assert_eq!(replies[2], r#"{"error":"value larger than the per-entry limit of 100000 bytes"}"#);
    assert_eq!(replies[3], r#"{"error":"header `edgecell-ttl-ms`: `soon` is not a number of milliseconds"}"#);
    assert!(replies[4].starts_with(r#"{"error":"subject `edgecell.cache.put.video.analytics`"#), "{}", replies[4]);
    let version: serde_json::Value = serde_json::from_str(&replies[5]).unwrap();
    let version = version["version"].as_u64().expect("a version");
    assert_eq!(cache.get("video-analytics", "frames", "k1").unwrap().map(|e| (e.version, e.value)), Some((version, b"fine".to_vec())));
    assert_eq!(replies[6], r#"{"error":"namespace `state` of keyspace `video-analytics` is not open to producers' puts"}"#);
    assert_eq!(ingest.stats().refused.load(std::sync::atomic::Ordering::Relaxed), 6);
    assert_eq!(cache.stats().entries, 23);

    // the producer turns a refusal into a typed error and stops (a key over the cache's limit)
    let long = "s".repeat(1100);
    let source = Source::Video { avi, stream: long.clone(), keyspace: "video-analytics".into(), ttl_ms: None };
    match rt.block_on(produce(&client, source, &ProduceOptions::default(), None)) {
        Err(ProduceError::CacheRejected { key, message }) => {
            assert_eq!(key, format!("{long}/0"));
            assert_eq!(message, "invalid key: empty or longer than 1024 bytes");
        }
        other => panic!("{other:?}"),
    }
    drop(ingest);
}

#[test]
fn messages_arrive_in_order_on_the_paced_schedule() {
    let server = crate::nats::NatsServer::start();
    let rt = runtime();
    let client = rt.block_on(async_nats::connect(&server.url)).unwrap();
    let plan_items = build_items(Source::sensors(data("fusion/test2.bag")), None).unwrap();

    let mut sub = rt.block_on(async {
        let sub = client.subscribe("edgecell.sensors.in.jackal").await.unwrap();
        client.flush().await.unwrap();
        sub
    });
    // 11 items at 100/s: the last is due 100 ms after the first
    let opts = ProduceOptions { rate: 100.0, limit: Some(11), ..ProduceOptions::default() };
    let stats = rt.block_on(produce(&client, Source::sensors(data("fusion/test2.bag")), &opts, None)).unwrap();
    assert_eq!((stats.items, stats.messages, stats.cache_puts), (11, 11, 0));
    assert!(stats.elapsed >= Duration::from_millis(100), "{:?}", stats.elapsed);
    let got = rt.block_on(take(&mut sub, 11));
    for (m, want) in got.iter().zip(&plan_items) {
        assert_eq!(m.payload.as_ref(), publish_body(want));
    }
    let expected_bytes: usize = plan_items[..11].iter().map(|i| publish_body(i).len()).sum();
    assert_eq!(stats.bytes, expected_bytes as u64);
    let line = stats.to_string();
    assert!(line.starts_with("produced 11 messages, "), "{line}");

    // V2X, full speed, a custom subject
    let mut sub = rt.block_on(async {
        let sub = client.subscribe("lab.v2x").await.unwrap();
        client.flush().await.unwrap();
        sub
    });
    let source = Source::V2xSimulated { attack: AttackType::ConstPosOffset, seed: 42, duration_s: 30.0, region: "local".into() };
    let opts = ProduceOptions { subject: Some("lab.v2x".into()), trace: true, ..ProduceOptions::default() };
    let stats = rt.block_on(produce(&client, source, &opts, None)).unwrap();
    assert_eq!(stats.items, 780);
    let got = rt.block_on(take(&mut sub, 780));
    let first: serde_json::Value = serde_json::from_slice(&got[0].payload).unwrap();
    assert_eq!((first["type"].as_u64(), first["rcvTime"].as_f64()), (Some(2), Some(0.0)));
    // --trace: every message starts its own sampled W3C trace; the first is in the stats
    assert_eq!(stats.traced, 780);
    let parents: Vec<String> = got
        .iter()
        .map(|m| m.headers.as_ref().and_then(|h| h.get("traceparent")).map(|v| v.as_str().to_owned()).unwrap_or_default())
        .collect();
    for p in &parents {
        let parts: Vec<&str> = p.split('-').collect();
        assert_eq!(parts.len(), 4, "{p}");
        assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3]), ("00", 32, 16, "01"), "{p}");
        assert!(parts[1].chars().chain(parts[2].chars()).all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{p}");
    }
    assert_eq!(parents[0], stats.first_trace.unwrap().traceparent());
    let distinct: std::collections::BTreeSet<&str> = parents.iter().map(|p| &p[3..35]).collect();
    assert_eq!(distinct.len(), 780, "one trace per message");
}

#[test]
fn a_frame_over_the_servers_max_payload_is_refused_before_sending() {
    let server = crate::nats::NatsServer::start_with_config(&format!("max_payload: {}\n", 16 * 1024));
    let conn = NatsConnection::connect(&server.url).unwrap();
    let cache = Arc::new(Cache::with_ingest(CacheConfig::default(), IngestPolicy::default()));
    let ingest = conn.cache_ingest(Arc::clone(&cache)).unwrap();
    let rt = runtime();
    let client = rt.block_on(async_nats::connect(&server.url)).unwrap();
    let result = rt.block_on(produce(&client, Source::video(data("video/vtest_2s_mjpeg.avi")), &ProduceOptions::default(), None));
    match result {
        Err(ProduceError::TooLarge { what, size, max_payload }) => {
            assert_eq!(max_payload, 16 * 1024);
            assert_eq!(what, "frame vtest/0 (cache put on edgecell.cache.put.video-analytics)");
            // the first JPEG plus the three headers
            assert_eq!(size, avi_frames()[0].len() + "NATS/1.0\r\n\r\n".len() + "edgecell-namespace: frames\r\n".len() + "edgecell-key: vtest/0\r\n".len() + "edgecell-ttl-ms: 60000\r\n".len());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ingest.stats().stored.load(std::sync::atomic::Ordering::Relaxed) + ingest.stats().refused.load(std::sync::atomic::Ordering::Relaxed), 0);
    // small messages still go through that server
    let stats = rt.block_on(produce(&client, Source::sensors(data("fusion/test2.bag")), &ProduceOptions { limit: Some(5), ..ProduceOptions::default() }, None)).unwrap();
    assert_eq!(stats.items, 5);
}
