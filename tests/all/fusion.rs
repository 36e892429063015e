//! The sensor-fusion actor in the embedded host: WIT exports, NATS message forms, bad input,
//! state that survives an instance being replaced.

use std::sync::Arc;

use edgecell::bindings::BrokerMessage;
use edgecell::bindings::sensor_fusion::exports::edgecell::fusion::estimator::{
    FusionError, ImuSample, Measurement, OdometrySample, Quaternion, SensorReading, Vector3,
};
use edgecell::bindings::sensor_fusion::exports::edgecell::fusion::{iot, tracking};
use edgecell::{InstancePool, RuntimeConfig};

use crate::common::{self, host, spec};

fn actor(h: &common::Host) -> edgecell::Actor {
    h.runtime.load_actor(spec("sensor-fusion", common::component("edgecell_sensor_fusion.wasm"))).unwrap()
}

fn imu(filter: &str, t_ns: u64, accel_x: f64) -> SensorReading {
    let cov = vec![0.01, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.01];
    SensorReading {
        filter_id: filter.into(),
        sensor_id: "imu0".into(),
        frame_id: "base_link".into(),
        timestamp: t_ns,
        measurement: Measurement::Imu(ImuSample {
            orientation: Some(Quaternion { w: 1.0, x: 0.0, y: 0.0, z: 0.0 }),
            angular_velocity: Some(Vector3 { x: 0.0, y: 0.0, z: 0.0 }),
            linear_acceleration: Some(Vector3 { x: accel_x, y: 0.0, z: 9.80665 }),
            orientation_covariance: cov.clone(),
            angular_velocity_covariance: cov.clone(),
            linear_acceleration_covariance: cov,
        }),
    }
}

#[test]
fn bad_input_gets_typed_errors_and_the_filter_keeps_working() {
    let h = host(RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();
    let f = inst.sensor_fusion().unwrap();
    let est = |i: &mut edgecell::ActorInstance, r: SensorReading| i.call(|s, _| f.edgecell_fusion_estimator().call_ingest(s, &r)).unwrap();

    let unknown = est(&mut inst, imu("nope", 1, 0.0)).unwrap_err();
    assert_eq!(unknown, FusionError::UnknownFilter("nope".into()));
    inst.call(|s, _| f.edgecell_fusion_estimator().call_configure(s, "j", "robot-localization-test2")).unwrap().unwrap();
    let bad_cfg = inst.call(|s, _| f.edgecell_fusion_estimator().call_configure(s, "k", "frequency = \"fast\"")).unwrap().unwrap_err();
    assert!(matches!(bad_cfg, FusionError::InvalidConfig(_) | FusionError::Parse(_)), "{bad_cfg:?}");

    let ok = est(&mut inst, imu("j", 1_000_000_000, 0.0)).unwrap();
    assert!(ok.accepted, "{ok:?}");
    let nan = est(&mut inst, imu("j", 1_010_000_000, f64::NAN)).unwrap_err();
    assert!(matches!(nan, FusionError::NonFinite(_)), "{nan:?}");
    let dup = est(&mut inst, imu("j", 1_000_000_000, 0.0)).unwrap_err();
    assert!(matches!(dup, FusionError::DuplicateTimestamp(_) | FusionError::OutOfOrder(_)), "{dup:?}");
    let old = est(&mut inst, imu("j", 500_000_000, 0.0)).unwrap_err();
    assert!(matches!(old, FusionError::OutOfOrder(_)), "{old:?}");
    let mut frame = imu("j", 1_020_000_000, 0.0);
    frame.frame_id = "lidar_link".into();
    assert_eq!(est(&mut inst, frame).unwrap_err(), FusionError::UnknownFrame("lidar_link".into()));
    let mut sensor = imu("j", 1_020_000_000, 0.0);
    sensor.sensor_id = "imu9".into();
    assert!(matches!(est(&mut inst, sensor).unwrap_err(), FusionError::UnknownSensor(_)));
    let mut short = imu("j", 1_020_000_000, 0.0);
    if let Measurement::Imu(s) = &mut short.measurement {
        s.orientation_covariance = vec![1.0; 4];
    }
    assert_eq!(est(&mut inst, short).unwrap_err(), FusionError::InvalidLength(("orientation-covariance".into(), 9, 4)));
    // a non-PD odometry covariance
    let odom = SensorReading {
        filter_id: "j".into(),
        sensor_id: "odom0".into(),
        frame_id: "odom".into(),
        timestamp: 1_030_000_000,
        measurement: Measurement::Odometry(OdometrySample {
            position: None,
            orientation: None,
            linear_velocity: Some(Vector3 { x: 1.0, y: 0.0, z: 0.0 }),
            angular_velocity: Some(Vector3 { x: 0.0, y: 0.0, z: 0.0 }),
            pose_covariance: vec![],
            // symmetric but indefinite: var(vx) = var(vy) = 1, cov(vx, vy) = 5
            twist_covariance: (0..36).map(|i| match i { 0 | 7 | 14 | 21 | 28 | 35 => 1.0, 1 | 6 => 5.0, _ => 0.0 }).collect(),
        }),
    };
    let non_pd = est(&mut inst, odom).unwrap_err();
    assert!(matches!(non_pd, FusionError::NotPositiveDefinite(_)), "{non_pd:?}");

    // after all of that the instance is alive and the filter still takes good input
    assert!(est(&mut inst, imu("j", 1_040_000_000, 0.0)).unwrap().accepted);
    let state = inst.call(|s, _| f.edgecell_fusion_estimator().call_state(s, "j")).unwrap().unwrap();
    assert_eq!(state.covariance.len(), 225);
    assert!(state.position.x.is_finite());
    assert!(!inst.is_poisoned());
}

#[test]
fn test2_bag_through_the_message_handler_lands_within_the_published_tolerance() {
    let h = host(RuntimeConfig::default());
    let a = jackal_actor(&h, common::component("edgecell_sensor_fusion.wasm"));
    let mut inst = a.instantiate().unwrap();
    let msgs = test2_messages();
    for msg in &msgs {
        inst.handle_message(msg).unwrap().unwrap();
    }
    let published = h.bus.drain();
    assert_eq!(published.len(), msgs.len());
    let last: edgecell_fusion::wire::StateMessage = serde_json::from_slice(&published.last().unwrap().body).unwrap();
    let p = last.state.pose;
    let err = ((p.x - 1.0206f64).powi(2) + (p.y - 3.4292f64).powi(2) + (p.z - 0.7419f64).powi(2)).sqrt();
    assert!(err <= 0.1383, "final ({}, {}, {}) is {err} m off", p.x, p.y, p.z);
    // a message that is not an envelope is refused with a reason; the instance keeps going
    let junk = BrokerMessage { subject: "edgecell.sensors.in.jackal".into(), body: b"{not json".to_vec(), reply_to: None };
    assert!(inst.handle_message(&junk).unwrap().unwrap_err().contains("not a sensor envelope"));
    let other = BrokerMessage { subject: "edgecell.video.in".into(), body: vec![], reply_to: None };
    assert!(inst.handle_message(&other).unwrap().is_err());
    assert!(h.bus.drain().is_empty(), "no reply subject, nothing published");
    // a request gets its error as the reply instead of waiting for a timeout
    let asked = BrokerMessage { reply_to: Some("inbox.7".into()), ..junk };
    let err = inst.handle_message(&asked).unwrap().unwrap_err();
    let replies = h.bus.drain();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].subject, "inbox.7");
    let body: serde_json::Value = serde_json::from_slice(&replies[0].body).unwrap();
    assert_eq!(body["error"], err.as_str());
    // so does a repeated (already fused) measurement
    let again = BrokerMessage { reply_to: Some("inbox.8".into()), ..msgs.last().unwrap().clone() };
    let err = inst.handle_message(&again).unwrap().unwrap_err();
    let replies = h.bus.drain();
    assert_eq!((replies.len(), replies[0].subject.as_str()), (1, "inbox.8"), "{err}");
    assert!(!inst.is_poisoned());
}

#[test]
fn tracker_and_iot_state_survive_instance_replacement() {
    let h = host(RuntimeConfig::default());
    let a = Arc::new(actor(&h));
    // a target moving at 1 m/s along x, seen by one instance, then by a fresh one
    let scan = |i: &mut edgecell::ActorInstance, k: u64| {
        let f = i.sensor_fusion().unwrap();
        #[allow(clippy::cast_precision_loss)]
        let det = tracking::Detection { x: k as f64, y: 5.0 };
        i.call(|s, _| f.edgecell_fusion_tracking().call_track(s, "radar", k * 1_000_000_000, &[det])).unwrap().unwrap()
    };
    let mut first = a.instantiate().unwrap();
    let mut confirmed = Vec::new();
    for k in 0..6 {
        confirmed = scan(&mut first, k);
    }
    assert_eq!(confirmed.len(), 1);
    let id = confirmed[0].track_id;
    drop(first);
    let mut second = a.instantiate().unwrap();
    let next = scan(&mut second, 6);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].track_id, id, "the replacement instance keeps the track id");
    assert!((next[0].vx - 1.0).abs() < 0.2, "{:?}", next[0]);

    // IoT windows: half the readings through one instance, half through a new one
    let pool = InstancePool::new(Arc::clone(&a), 1);
    let batch = |from: u64, to: u64| -> Vec<iot::Reading> {
        #[allow(clippy::cast_precision_loss)]
        (from..to).map(|i| iot::Reading { sensor_id: "temp".into(), timestamp: i * 100_000_000, value: 20.0 + (i % 3) as f64 }).collect()
    };
    let run = |i: &mut edgecell::ActorInstance, r: Vec<iot::Reading>| {
        let f = i.sensor_fusion()?;
        i.call(|s, _| f.edgecell_fusion_iot().call_ingest_batch(s, &r))
    };
    let mut one = a.instantiate().unwrap();
    let out1 = run(&mut one, batch(0, 150)).unwrap().unwrap();
    drop(one);
    let out2 = pool.with_instance(|i| run(i, batch(150, 400))).unwrap().unwrap();
    let aggs: Vec<_> = out1.aggregates.iter().chain(&out2.aggregates).collect();
    // 10 s tumbling windows of 100 readings at 10 Hz: windows [0,10) [10,20) [20,30) closed
    assert!(aggs.len() >= 3, "{aggs:?}");
    assert!(aggs.iter().take(3).all(|a| a.count == 100), "{aggs:?}");
    let bad = pool
        .with_instance(|i| run(i, vec![iot::Reading { sensor_id: "temp".into(), timestamp: 50_000_000_000, value: f64::NAN }]))
        .unwrap()
        .unwrap_err();
    assert!(matches!(bad, FusionError::NonFinite(_)), "{bad:?}");

    // a bad reading after readings that closed windows: the call fails, and the windows it
    // closed come with the next call instead of being lost
    let mut closing = batch(400, 510);
    closing.push(iot::Reading { sensor_id: "temp".into(), timestamp: 51_500_000_000, value: f64::INFINITY });
    let bad = pool.with_instance(|i| run(i, closing)).unwrap().unwrap_err();
    assert!(matches!(bad, FusionError::NonFinite(_)), "{bad:?}");
    let next = pool.with_instance(|i| run(i, batch(520, 530))).unwrap().unwrap();
    let spans: Vec<_> = next.aggregates.iter().map(|a| (a.window_start / 1_000_000_000, a.count)).collect();
    assert_eq!(spans, vec![(30, 100), (40, 100)], "{next:?}");
}

/// A tracker whose state expired starts again with ids past every id the old one issued (its
/// ids come from the wall clock);
/// IoT over NATS keeps one aggregator per site and reports refused readings in place while the
/// rest of the batch counts.
#[test]
fn track_ids_survive_expiry_and_iot_sites_are_separate() {
    let h = host(RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();
    let f = inst.sensor_fusion().unwrap();
    let mut ids = Vec::new();
    for k in 0..4u64 {
        #[allow(clippy::cast_precision_loss)]
        let det = tracking::Detection { x: k as f64, y: 5.0 };
        let tracks = inst.call(|s, _| f.edgecell_fusion_tracking().call_track(s, "lidar", k * 1_000_000_000, &[det])).unwrap().unwrap();
        ids.extend(tracks.iter().map(|t| t.track_id));
    }
    let first = *ids.first().expect("a confirmed track");
    // the state expires (as after its TTL without traffic)
    let cache = &h.runtime.services().cache;
    cache.delete("sensor-fusion", STATE_NS, "tracker/lidar").unwrap();
    let mut later = Vec::new();
    for k in 0..4u64 {
        #[allow(clippy::cast_precision_loss)]
        let det = tracking::Detection { x: 100.0 + k as f64, y: 5.0 };
        let tracks = inst.call(|s, _| f.edgecell_fusion_tracking().call_track(s, "lidar", (100 + k) * 1_000_000_000, &[det])).unwrap().unwrap();
        later.extend(tracks.iter().map(|t| t.track_id));
    }
    assert!(later.first().is_some_and(|id| *id > first), "{ids:?} then {later:?}");
    // a scan stamped in the year 2286 is refused; the tracker goes on with the next true one
    let e = inst.call(|s, _| f.edgecell_fusion_tracking().call_track(s, "lidar", 10_000_000_000 * 1_000_000_000, &[])).unwrap().unwrap_err();
    assert!(matches!(&e, FusionError::Parse(m) if m.contains("ahead of the clock")), "{e:?}");
    let det = tracking::Detection { x: 104.0, y: 5.0 };
    assert_eq!(inst.call(|s, _| f.edgecell_fusion_tracking().call_track(s, "lidar", 104 * 1_000_000_000, &[det])).unwrap().unwrap().len(), 1);

    // two sites, the same sensor name: separate aggregators. Over NATS outputs leave in
    // batches of 32: 331 readings 1 s apart close 33 windows of 10 s, one batch goes out
    let readings = |value: f64, from: u64, to: u64| -> Vec<serde_json::Value> {
        (from..=to).map(|i| serde_json::json!({"sensor": "t", "time_ms": i * 1000, "value": value})).collect()
    };
    let send = |inst: &mut edgecell::ActorInstance, site: &str, body: &[serde_json::Value]| -> Vec<edgecell_fusion::iot::Output> {
        let msg = BrokerMessage { subject: format!("edgecell.iot.in.{site}"), body: serde_json::to_vec(body).unwrap(), reply_to: Some(format!("inbox.{site}")) };
        inst.handle_message(&msg).unwrap().unwrap();
        let published = h.bus.drain();
        assert_eq!(published.len(), 1);
        serde_json::from_slice(&published[0].body).unwrap()
    };
    use edgecell_fusion::iot::Output;
    let means = |out: &[Output]| out.iter().filter_map(|o| if let Output::Aggregate(w) = o { Some(w.mean) } else { None }).collect::<Vec<_>>();
    assert_eq!(means(&send(&mut inst, "north", &readings(1.0, 0, 330))), vec![1.0; 32]);
    assert_eq!(means(&send(&mut inst, "south", &readings(5.0, 0, 330))), vec![5.0; 32]);
    // a resent, overlapping batch with an out-of-range value and a time in the year 2286 in it:
    // the old readings and those two come back as rejected, in place; the new reading counts
    let mut body = readings(1.0, 320, 330);
    body.push(serde_json::json!({"sensor": "t", "time_ms": 330_500, "value": 1e200}));
    body.push(serde_json::json!({"sensor": "t", "time_ms": 10_000_000_000_000_u64, "value": 3.0}));
    body.push(serde_json::json!({"sensor": "t", "time_ms": 331_000, "value": 3.0}));
    let out = send(&mut inst, "north", &body);
    let rejected: Vec<u64> = out.iter().filter_map(|o| if let Output::Rejected(r) = o { Some(r.time_ms) } else { None }).collect();
    assert_eq!(rejected, (320..=330).map(|i| i * 1000).chain([330_500, 10_000_000_000_000]).collect::<Vec<_>>(), "{out:?}");
    let stored = |site: &str| -> serde_json::Value {
        serde_json::from_slice(&cache.get("sensor-fusion", STATE_NS, &format!("iot/site/{site}")).unwrap().expect("aggregator state").value).unwrap()
    };
    // the open window [330 s, 340 s): 1.0 at 330 s and 3.0 at 331 s
    let open = &stored("north")["sensors"]["t"]["windows"]["340000"];
    assert_eq!((open["count"].as_u64(), open["sum"].as_f64()), (Some(2), Some(4.0)), "{open}");
    assert_eq!(stored("south")["sensors"]["t"]["windows"]["340000"]["sum"].as_f64(), Some(5.0));
}

/// IoT settings come from `wasi:config` `iot.<site>` or `iot` (TOML over the actor's defaults);
/// settings that do not parse, or whose state could outgrow what the actor stores, are refused
/// with a message naming the key; a stored aggregator follows a changed configuration.
#[test]
fn iot_settings_come_from_wasi_config_and_stored_aggregators_follow_changes() {
    use edgecell_fusion::iot::Output;
    let h = host(RuntimeConfig::default());
    let load = |pairs: &[(&str, &str)]| {
        let mut s = spec("sensor-fusion", common::component("edgecell_sensor_fusion.wasm"));
        for (k, v) in pairs {
            s.config.insert((*k).into(), (*v).into());
        }
        h.runtime.load_actor(s).unwrap()
    };
    let send = |a: &edgecell::Actor, site: &str, from: u64, to: u64| -> Result<Vec<Output>, String> {
        let body: Vec<serde_json::Value> = (from..to).map(|i| serde_json::json!({"sensor": "t", "time_ms": i * 1000, "value": 1.0})).collect();
        let msg = BrokerMessage { subject: format!("edgecell.iot.in.{site}"), body: serde_json::to_vec(&body).unwrap(), reply_to: Some(format!("inbox.{site}")) };
        if let Err(e) = a.instantiate().unwrap().handle_message(&msg).unwrap() {
            // the requester was told too
            let told = h.bus.drain();
            assert!(told.len() == 1 && told[0].body.starts_with(b"{\"error\""), "{told:?}");
            return Err(e);
        }
        // batches of one output each
        Ok(h.bus.drain().iter().flat_map(|m| serde_json::from_slice::<Vec<Output>>(&m.body).unwrap()).collect())
    };
    let spans = |out: &[Output]| -> Vec<(u64, u64, u64)> {
        out.iter().filter_map(|o| if let Output::Aggregate(w) = o { Some((w.start_ms / 1000, w.end_ms / 1000, w.count)) } else { None }).collect()
    };
    let a = load(&[
        ("iot", "window = { kind = \"sliding\", size_ms = 4000, slide_ms = 2000 }\nbatch_size = 1"),
        ("iot.east", "window = { kind = \"tumbling\", size_ms = 3000 }\nbatch_size = 1"),
        ("iot.typo", "windw = 3"),
        ("iot.huge", "max_sensors = 10000"),
        ("iot.fat", "robust_history = 200000"),
    ]);
    assert_eq!(spans(&send(&a, "west", 0, 7).unwrap()), vec![(0, 2, 2), (0, 4, 4), (2, 6, 4)]);
    assert_eq!(spans(&send(&a, "east", 0, 7).unwrap()), vec![(0, 3, 3), (3, 6, 3)]);
    let typo = send(&a, "typo", 0, 7).unwrap_err();
    assert!(typo.contains("iot.typo") && typo.contains("windw"), "{typo}");
    let huge = send(&a, "huge", 0, 7).unwrap_err();
    assert!(huge.contains("iot.huge") && huge.contains("lower max_sensors (at most"), "{huge}");
    let fat = send(&a, "fat", 0, 7).unwrap_err();
    assert!(fat.contains("iot.fat") && fat.contains("one sensor's state alone") && fat.contains("robust_history"), "{fat}");
    // the deployment changes east to 10 s windows: the open one is reported at once with what
    // it holds, the next readings go to the new windows; none is counted twice or lost
    let b = load(&[("iot.east", "window = { kind = \"tumbling\", size_ms = 10000 }\nbatch_size = 1")]);
    let out = send(&b, "east", 7, 25).unwrap();
    assert_eq!(spans(&out), vec![(6, 9, 1), (0, 10, 3), (10, 20, 10)]);
}

/// IoT outputs that would not fit one NATS message (`max-publish-bytes`, default 900 KiB under
/// NATS's 1 MiB `max_payload`) go out as several JSON arrays, in order, none over the limit and
/// none lost; a bad limit is refused before any reading is taken.
#[test]
fn iot_outputs_larger_than_one_message_go_out_in_pieces() {
    use edgecell_fusion::iot::Output;
    let h = host(RuntimeConfig::default());
    let load = |limit: &str| {
        let mut s = spec("sensor-fusion", common::component("edgecell_sensor_fusion.wasm"));
        s.config.insert("max-publish-bytes".into(), limit.into());
        s.config.insert("iot".into(), "window = { kind = \"tumbling\", size_ms = 1000 }\nbatch_size = 1".into());
        h.runtime.load_actor(s).unwrap()
    };
    // 200 readings of a sensor with a long name, one per window: 199 windows close
    let sensor = "s".repeat(200);
    let body: Vec<serde_json::Value> = (0..200).map(|i| serde_json::json!({"sensor": sensor, "time_ms": i * 1000, "value": i})).collect();
    let msg = BrokerMessage { subject: "edgecell.iot.in.big".into(), body: serde_json::to_vec(&body).unwrap(), reply_to: None };
    let bad = load("100");
    let e = bad.instantiate().unwrap().handle_message(&msg).unwrap().unwrap_err();
    assert!(e.contains("max-publish-bytes") && e.contains("at least 4096"), "{e}");
    assert!(h.bus.drain().is_empty());
    let a = load("8192");
    a.instantiate().unwrap().handle_message(&msg).unwrap().unwrap();
    let published = h.bus.drain();
    assert!(published.len() > 1, "{} message(s)", published.len());
    let mut starts = Vec::new();
    for m in &published {
        assert_eq!(m.subject, "edgecell.iot.out.big");
        assert!(m.body.len() <= 8192, "{} bytes", m.body.len());
        let outs: Vec<Output> = serde_json::from_slice(&m.body).unwrap();
        assert!(!outs.is_empty());
        starts.extend(outs.iter().filter_map(|o| if let Output::Aggregate(w) = o { Some(w.start_ms) } else { None }));
    }
    // the bad limit took nothing: every window from the first one is reported, once, in order
    assert_eq!(starts, (0..199).map(|i| i * 1000).collect::<Vec<u64>>());

    // a request gets one answer: where the pieces went; an answer that fits is the array itself
    let request = BrokerMessage { subject: "edgecell.iot.in.asked".into(), reply_to: Some("inbox.asked".into()), ..msg };
    a.instantiate().unwrap().handle_message(&request).unwrap().unwrap();
    let published = h.bus.drain();
    let replies: Vec<_> = published.iter().filter(|m| m.subject == "inbox.asked").collect();
    assert_eq!(replies.len(), 1);
    let answer: serde_json::Value = serde_json::from_slice(&replies[0].body).unwrap();
    let pieces = published.iter().filter(|m| m.subject == "edgecell.iot.out.asked").count();
    assert!(pieces > 1);
    assert_eq!(answer, serde_json::json!({"outputs": 199, "messages": pieces, "subject": "edgecell.iot.out.asked"}));
    let small = BrokerMessage { body: serde_json::to_vec(&body[..3]).unwrap(), subject: "edgecell.iot.in.few".into(), reply_to: Some("inbox.few".into()) };
    a.instantiate().unwrap().handle_message(&small).unwrap().unwrap();
    let published = h.bus.drain();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].subject, "inbox.few");
    assert_eq!(serde_json::from_slice::<Vec<Output>>(&published[0].body).unwrap().len(), 2);
}

/// Through `edgecell:fusion/iot`, the outputs closed before a bad reading are kept for the next
/// call; when they would not fit the stored state (4 MiB), nothing of the call is kept, and the
/// error says so and names the bad reading: the batch resent without it goes through whole.
#[test]
fn a_bad_reading_after_more_outputs_than_the_state_holds_is_still_the_error() {
    let h = host(RuntimeConfig::default());
    let mut s = spec("sensor-fusion", common::component("edgecell_sensor_fusion.wasm"));
    s.config.insert("iot".into(), "window = { kind = \"tumbling\", size_ms = 1000 }\nbatch_size = 1".into());
    let a = h.runtime.load_actor(s).unwrap();
    let mut inst = a.instantiate().unwrap();
    // one window closes per reading: about 14k aggregates of a 200-byte sensor id, over 4 MiB
    let sensor = "s".repeat(200);
    let mut readings: Vec<iot::Reading> =
        (0..14_000u64).map(|i| iot::Reading { sensor_id: sensor.clone(), timestamp: i * 1_000_000_000, value: 1.0 }).collect();
    readings.push(iot::Reading { sensor_id: sensor.clone(), timestamp: 14_000 * 1_000_000_000, value: f64::NAN });
    let f = inst.sensor_fusion().unwrap();
    let e = inst.call(|s, _| f.edgecell_fusion_iot().call_ingest_batch(s, &readings)).unwrap().unwrap_err();
    assert!(matches!(&e, FusionError::Store(m) if m.contains("reading 14000") && m.contains("non-finite") && m.contains("nothing of this call was kept")), "{e:?}");
    readings.pop();
    let out = inst.call(|s, _| f.edgecell_fusion_iot().call_ingest_batch(s, &readings)).unwrap().unwrap();
    assert_eq!(out.aggregates.len(), 13_999, "every window but the open one, each once");
    assert!(out.aggregates.iter().all(|w| w.count == 1));
}

// ---- localizer state in the cache --------------------------------------------------------

const TEST2_EXPECTED: [f64; 3] = [1.0206, 3.4292, 0.7419];
const TEST2_TOLERANCE_M: f64 = 0.1383;

/// test2.bag's sensor messages as NATS messages for filter `jackal`.
fn test2_messages() -> Vec<BrokerMessage> {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/fusion/test2.bag")).unwrap();
    let cfg = edgecell_fusion::preset("robot-localization-test2").unwrap();
    edgecell::produce::sensor_messages(&bytes, &cfg, "jackal").unwrap()
}

/// The sensor-fusion actor with `filter.jackal = robot-localization-test2`, from `path`.
fn jackal_actor(h: &common::Host, path: std::path::PathBuf) -> edgecell::Actor {
    let mut s = spec("sensor-fusion", path);
    s.config.insert("filter.jackal".into(), "robot-localization-test2".into());
    h.runtime.load_actor(s).unwrap()
}

const STATE_NS: &str = "fusion";
const JACKAL_KEY: &str = "localizer/jackal";

/// The localizer state the actor stored for `jackal`, decoded, with its cache version.
fn stored_jackal(h: &common::Host) -> (edgecell_fusion::LocalizerSnapshot, u64) {
    let e = h.runtime.services().cache.get("sensor-fusion", STATE_NS, JACKAL_KEY).unwrap().expect("no stored localizer state");
    let max = edgecell_fusion::persist::DEFAULT_MAX_STATE_BYTES;
    (edgecell_fusion::Localizer::from_state_bytes(&e.value, max).unwrap().snapshot(), e.version)
}

fn last_state(h: &common::Host) -> edgecell_fusion::wire::StateMessage {
    serde_json::from_slice(&h.bus.drain().last().expect("nothing published").body).unwrap()
}

fn metric(h: &common::Host, name: &str, labels: &[(&str, &str)]) -> f64 {
    h.runtime.services().metrics.snapshot().total(name, labels).unwrap_or(0.0)
}

fn within_published_tolerance(p: &edgecell_fusion::Pose) -> f64 {
    let err = ((p.x - TEST2_EXPECTED[0]).powi(2) + (p.y - TEST2_EXPECTED[1]).powi(2) + (p.z - TEST2_EXPECTED[2]).powi(2)).sqrt();
    assert!(err <= TEST2_TOLERANCE_M, "final ({}, {}, {}) is {err} m off", p.x, p.y, p.z);
    err
}

/// wasmCloud 1.x runs every invocation in a fresh instance: the localizer must live in the cache.
#[test]
fn test2_bag_with_a_new_instance_per_message_ends_exactly_where_one_instance_does() {
    let msgs = test2_messages();

    let one = host(RuntimeConfig::default());
    let actor = jackal_actor(&one, common::component("edgecell_sensor_fusion.wasm"));
    let mut inst = actor.instantiate().unwrap();
    for m in &msgs {
        inst.handle_message(m).unwrap().unwrap();
    }
    let single = last_state(&one);

    let fresh = host(RuntimeConfig::default());
    let actor = jackal_actor(&fresh, common::component("edgecell_sensor_fusion.wasm"));
    for m in &msgs {
        actor.instantiate().unwrap().handle_message(m).unwrap().unwrap();
    }
    let published = fresh.bus.drain();
    assert_eq!(published.len(), msgs.len());
    let per_message: edgecell_fusion::wire::StateMessage = serde_json::from_slice(&published.last().unwrap().body).unwrap();

    within_published_tolerance(&per_message.state.pose);
    // the same filter, bit for bit: pose, full state, covariance, counters
    assert_eq!(per_message, single);
    assert_eq!(per_message.updates, single.updates);
    assert!(single.updates > 6000, "{}", single.updates);
    // the kept instance never read the state back (so never decoded it): its only reads are the
    // first message's misses (state, then configuration); every fresh instance read it once
    let n = msgs.len() as u64;
    let (s1, s2) = (one.runtime.services().cache.stats(), fresh.runtime.services().cache.stats());
    assert_eq!((s1.hits, s1.misses, s1.sets), (0, 2, n));
    assert_eq!((s2.hits, s2.misses, s2.sets), (n - 1, 2, n));
    // and the stored states are the same, bit for bit
    assert_eq!(stored_jackal(&one).0, stored_jackal(&fresh).0);
    for h in [&one, &fresh] {
        assert_eq!(metric(h, "fusion_state_conflicts_total", &[]), 0.0);
        assert_eq!(metric(h, "fusion_state_resets_total", &[]), 0.0);
    }
}

/// Two instances interleaved (as concurrent invocations on a lattice are), and another writer
/// that bumps the version after an instance's last write (so between what it holds — its "read"
/// — and its next write): each compare-and-swap conflict is retried on the newer state, and
/// every measurement ends up applied exactly once.
#[test]
fn compare_and_swap_conflicts_are_retried_and_every_measurement_is_applied() {
    let msgs = test2_messages();
    let msgs = &msgs[..40];

    let reference = host(RuntimeConfig::default());
    let actor = jackal_actor(&reference, common::component("edgecell_sensor_fusion.wasm"));
    let mut inst = actor.instantiate().unwrap();
    for m in msgs {
        inst.handle_message(m).unwrap().unwrap();
    }
    let expected = last_state(&reference);
    let (expected_snapshot, _) = stored_jackal(&reference);

    let h = host(RuntimeConfig::default());
    let actor = jackal_actor(&h, common::component("edgecell_sensor_fusion.wasm"));
    let (mut a, mut b) = (actor.instantiate().unwrap(), actor.instantiate().unwrap());
    let conflicts = || metric(&h, "fusion_state_conflicts_total", &[("filter", "jackal")]);
    for (k, m) in msgs.iter().enumerate() {
        let before = conflicts();
        // a, b, b, (bump) b, a, b, b, (bump) b, …
        let expected = match k % 4 {
            // a's copy is behind b's writes (except for the very first message)
            0 => {
                a.handle_message(m).unwrap().unwrap();
                u8::from(k > 0)
            }
            // b's copy is behind a's write (b's first message reads, nothing held yet)
            1 => {
                b.handle_message(m).unwrap().unwrap();
                u8::from(k > 1)
            }
            // b wrote last: its own copy is current, no conflict
            2 => {
                b.handle_message(m).unwrap().unwrap();
                0
            }
            // another writer rewrites the entry (same bytes, new version) after b's last write:
            // b's compare-and-swap with the version it holds fails, and it retries
            _ => {
                let cache = &h.runtime.services().cache;
                let e = cache.get("sensor-fusion", STATE_NS, JACKAL_KEY).unwrap().unwrap();
                let bumped = cache.set("sensor-fusion", STATE_NS, JACKAL_KEY, e.value, Some(3_600_000)).unwrap();
                assert!(bumped > e.version);
                b.handle_message(m).unwrap().unwrap();
                assert!(stored_jackal(&h).1 > bumped, "b's write landed after the bump");
                1
            }
        };
        assert_eq!(conflicts() - before, f64::from(expected), "message {k}");
    }
    let got = last_state(&h);
    assert_eq!(conflicts(), 1.0 + 9.0 * 3.0);
    // nothing lost, nothing applied twice: the same filter as one instance fed in order
    assert_eq!(got, expected);
    assert_eq!(stored_jackal(&h).0, expected_snapshot);
    assert_eq!(expected_snapshot.stats.updates + expected_snapshot.stats.gated, got.updates + got.gated);
    assert_eq!(expected_snapshot.stats.rejected_inputs, 0);
    assert!(!a.is_poisoned() && !b.is_poisoned());
}

/// Really concurrent invocations (four instances on four threads, one filter): no update is
/// lost or applied twice. Messages may now be applied out of arrival order; one older than what
/// the filter already fused is rejected as out of order, as the filter always did.
#[test]
fn concurrent_instances_lose_no_update() {
    let msgs = test2_messages();
    let msgs = &msgs[..400];
    let h = host(RuntimeConfig::default());
    let actor = jackal_actor(&h, common::component("edgecell_sensor_fusion.wasm"));
    let next = std::sync::Mutex::new(msgs.iter());
    let results: Vec<(usize, Result<(), String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut inst = actor.instantiate().unwrap();
                    let mut out = Vec::new();
                    loop {
                        let Some(m) = next.lock().unwrap().next() else { break };
                        let env: edgecell_fusion::wire::SensorEnvelope = serde_json::from_slice(&m.body).unwrap();
                        // measurement parts: IMU orientation + angular velocity + acceleration; odometry twist
                        let parts = if env.sensor == "imu0" { 3 } else { 1 };
                        out.push((parts, inst.handle_message(m).unwrap()));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(results.len(), msgs.len());
    // out of order: fused into the stored filter's counters; a message that lost the
    // compare-and-swap race on every attempt: a typed error, nothing stored
    let errors: Vec<&String> = results.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    let (conflicted, rejected): (Vec<&String>, Vec<&String>) = errors.iter().partition(|e| e.contains("compare-and-swap attempts conflicted"));
    for e in &rejected {
        assert!(e.contains("OutOfOrder(") || e.contains("DuplicateTimestamp("), "{e}");
    }
    let applied_parts: usize = results.iter().filter(|(_, r)| r.is_ok()).map(|(parts, _)| parts).sum();
    let (stored, _) = stored_jackal(&h);
    // every accepted message's parts are in the filter exactly once (the very first part
    // initialises the state and is not an update); every rejected one is counted as rejected
    assert_eq!(stored.stats.updates + stored.stats.gated, applied_parts as u64 - 1);
    assert_eq!(stored.stats.rejected_inputs, rejected.len() as u64);
    assert!(applied_parts > msgs.len() / 4, "{applied_parts}");
    eprintln!(
        "{} messages on 4 instances: {} rejected as out of order, {} given up after conflicts, {} compare-and-swap conflicts",
        msgs.len(),
        rejected.len(),
        conflicted.len(),
        metric(&h, "fusion_state_conflicts_total", &[]),
    );
}

/// Garbage, oversize or foreign stored state never traps the actor: it is reset (and counted), or
/// reported as a typed error when it must not be overwritten.
#[test]
fn bad_or_oversize_stored_state_is_reset_with_a_metric_or_a_typed_error() {
    let msgs = test2_messages();
    let h = host(RuntimeConfig::default());
    let actor = jackal_actor(&h, common::component("edgecell_sensor_fusion.wasm"));
    let cache = &h.runtime.services().cache;
    let put = |value: Vec<u8>| cache.set("sensor-fusion", STATE_NS, JACKAL_KEY, value, None).unwrap();
    let resets = |reason: &str| metric(&h, "fusion_state_resets_total", &[("filter", "jackal"), ("reason", reason)]);

    // a few good messages first
    let mut inst = actor.instantiate().unwrap();
    for m in &msgs[..10] {
        inst.handle_message(m).unwrap().unwrap();
    }
    let before = last_state(&h);
    assert!(before.updates > 0);

    let oversize = vec![b' '; edgecell_fusion::persist::DEFAULT_MAX_STATE_BYTES + 1];
    let mut truncated = cache.get("sensor-fusion", STATE_NS, JACKAL_KEY).unwrap().unwrap().value;
    truncated.truncate(truncated.len() / 2);
    let cases: [(&str, Vec<u8>); 4] = [
        ("corrupt", b"{definitely not a localizer".to_vec()),
        ("corrupt", truncated),
        ("corrupt", vec![0xff; 4096]),
        ("too_large", oversize),
    ];
    for (k, (reason, bad)) in cases.into_iter().enumerate() {
        let was = resets(reason);
        // a fresh instance (no copy of its own) and the kept one (its copy is stale) both reset
        for i in [&mut actor.instantiate().unwrap(), &mut inst] {
            put(bad.clone());
            i.handle_message(&msgs[10 + k]).unwrap().unwrap();
            assert!(!i.is_poisoned());
        }
        assert_eq!(resets(reason), was + 2.0, "{reason}");
        // the filter restarted from its configuration with the message that found the damage
        let (stored, _) = stored_jackal(&h);
        assert!(stored.stats.updates < before.updates, "{:?}", stored.stats);
        h.bus.drain();
    }

    // state written by a newer actor is left alone: a typed error, no trap, no overwrite
    let newer = [b"ECLS".as_slice(), &99u32.to_le_bytes(), b"whatever format 99 is"].concat();
    put(newer.clone());
    let f = inst.sensor_fusion().unwrap();
    let reading = imu("jackal", 5_000_000_000_000, 0.0);
    let e = inst.call(|s, _| f.edgecell_fusion_estimator().call_ingest(s, &reading)).unwrap().unwrap_err();
    assert!(matches!(&e, FusionError::Store(m) if m.contains("format 99")), "{e:?}");
    let e = inst.call(|s, _| f.edgecell_fusion_estimator().call_state(s, "jackal")).unwrap().unwrap_err();
    assert!(matches!(&e, FusionError::Store(m) if m.contains("format 99")), "{e:?}");
    assert!(inst.handle_message(&msgs[20]).unwrap().unwrap_err().contains("format 99"));
    assert_eq!(cache.get("sensor-fusion", STATE_NS, JACKAL_KEY).unwrap().unwrap().value, newer);
    // a corrupt entry read through `state` is a typed error too (only updates reset)
    put(b"garbage".to_vec());
    let e = inst.call(|s, _| f.edgecell_fusion_estimator().call_state(s, "jackal")).unwrap().unwrap_err();
    assert!(matches!(&e, FusionError::Store(m) if m.contains("corrupt")), "{e:?}");
    assert!(!inst.is_poisoned());
    // `configure` replaces whatever is stored
    inst.call(|s, _| f.edgecell_fusion_estimator().call_configure(s, "jackal", "robot-localization-test2")).unwrap().unwrap();
    let st = inst.call(|s, _| f.edgecell_fusion_estimator().call_state(s, "jackal")).unwrap().unwrap();
    assert_eq!((st.timestamp, st.position.x), (0, 0.0));
    assert_eq!(stored_jackal(&h).0.stats.updates, 0);
}

/// The state's TTL comes from `wasi:config` `localizer.state_ttl_s` (default one hour, 0 = none).
#[test]
fn stored_localizer_state_has_the_configured_ttl() {
    let msgs = test2_messages();
    for (setting, expected_max_s) in [(None, Some(3600)), (Some("120"), Some(120)), (Some("0"), None)] {
        let h = host(RuntimeConfig::default());
        let mut s = spec("sensor-fusion", common::component("edgecell_sensor_fusion.wasm"));
        s.config.insert("filter.jackal".into(), "robot-localization-test2".into());
        if let Some(v) = setting {
            s.config.insert("localizer.state_ttl_s".into(), v.into());
        }
        let mut inst = h.runtime.load_actor(s).unwrap().instantiate().unwrap();
        inst.handle_message(&msgs[0]).unwrap().unwrap();
        let e = h.runtime.services().cache.get("sensor-fusion", STATE_NS, JACKAL_KEY).unwrap().unwrap();
        let secs = std::time::Duration::from_secs;
        match expected_max_s {
            // (bounds that hold however long the test takes, short of an hour)
            Some(3600) => assert!(e.ttl_remaining.is_some_and(|left| left <= secs(3600) && left > secs(120)), "{:?}", e.ttl_remaining),
            Some(max) => assert!(e.ttl_remaining.is_some_and(|left| left <= secs(max)), "{setting:?}: {:?}", e.ttl_remaining),
            None => assert_eq!(e.ttl_remaining, None, "{setting:?}"),
        }
    }
    let h = host(RuntimeConfig::default());
    let mut s = spec("sensor-fusion", common::component("edgecell_sensor_fusion.wasm"));
    s.config.insert("filter.jackal".into(), "robot-localization-test2".into());
    s.config.insert("localizer.state_ttl_s".into(), "an hour".into());
    let mut inst = h.runtime.load_actor(s).unwrap().instantiate().unwrap();
    let err = inst.handle_message(&msgs[0]).unwrap().unwrap_err();
    assert!(err.contains("InvalidConfig") && err.contains("localizer.state_ttl_s"), "{err}");
    assert!(!inst.is_poisoned());
}

// ---- deep input: the component's small shadow stack must hold it --------------------------

/// `depth` nested JSON arrays, `[[…]]`.
pub fn nested_json(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// The deepest nesting serde_json accepts: its recursion limit is 128 levels.
pub const JSON_MAX_DEPTH: usize = 127;

/// `json` (an object) with one more field `pad` holding `depth` nested arrays.
pub fn with_pad(json: &[u8], depth: usize) -> Vec<u8> {
    let text = std::str::from_utf8(json).unwrap().trim_end();
    let open = text.strip_suffix('}').unwrap();
    format!("{open},\"pad\":{}}}", nested_json(depth)).into_bytes()
}

/// The nesting level (1 = top) of the first object whose `key` is a string (the tag of an
/// internally tagged enum), and that object.
fn object_with<'a>(v: &'a mut serde_json::Value, key: &str, level: usize) -> Option<(usize, &'a mut serde_json::Map<String, serde_json::Value>)> {
    match v {
        serde_json::Value::Object(m) => {
            if m.get(key).is_some_and(serde_json::Value::is_string) {
                return Some((level, m));
            }
            m.values_mut().find_map(|v| object_with(v, key, level + 1))
        }
        serde_json::Value::Array(a) => a.iter_mut().find_map(|v| object_with(v, key, level + 1)),
        _ => None,
    }
}

/// Deep JSON reaches the actor from NATS and from its stored state. The sensor envelope
/// (`#[serde(flatten)]`) and the tracker's internally tagged motion model buffer unknown fields
/// recursively, as deep as serde_json allows: the deepest such input is handled, deeper input
/// is a refusal with a reason. A shadow-stack overflow would be a trap and fail the `unwrap`s on
/// the host side.
#[test]
fn the_deepest_json_serde_accepts_and_hostile_nesting_never_trap() {
    assert!(serde_json::from_str::<serde_json::Value>(&nested_json(JSON_MAX_DEPTH)).is_ok());
    assert!(serde_json::from_str::<serde_json::Value>(&nested_json(JSON_MAX_DEPTH + 1)).is_err());
    let msgs = test2_messages();
    let h = host(RuntimeConfig::default());
    let a = jackal_actor(&h, common::component("edgecell_sensor_fusion.wasm"));
    let mut inst = a.instantiate().unwrap();

    // the envelope is level 1: its extra field may nest 126 levels more
    let deepest = with_pad(&msgs[0].body, JSON_MAX_DEPTH - 1);
    assert!(serde_json::from_slice::<edgecell_fusion::wire::SensorEnvelope>(&deepest).is_ok());
    let too_deep = with_pad(&msgs[1].body, JSON_MAX_DEPTH);
    assert!(serde_json::from_slice::<edgecell_fusion::wire::SensorEnvelope>(&too_deep).is_err());
    inst.handle_message(&BrokerMessage { body: deepest, ..msgs[0].clone() }).unwrap().unwrap();
    let first = last_state(&h);
    assert!(first.filter == "jackal" && first.updates > 0, "{first:?}");
    // (the flattened envelope buffers every field it does not know: recursively)
    let hostile = ["{\"pad\":".as_bytes(), "[".repeat(200_000).as_bytes()].concat();
    for body in [too_deep, hostile] {
        let e = inst.handle_message(&BrokerMessage { body, ..msgs[1].clone() }).unwrap().unwrap_err();
        assert!(e.contains("not a sensor envelope") && e.contains("recursion limit exceeded"), "{e}");
    }
    // IoT readings and scans skip unknown fields
    let iot = BrokerMessage {
        subject: "edgecell.iot.in.site".into(),
        body: format!("[{}]", String::from_utf8(with_pad(br#"{"sensor":"t","time_ms":1,"value":1.5}"#, JSON_MAX_DEPTH - 2)).unwrap()).into_bytes(),
        reply_to: Some("inbox.iot".into()),
    };
    inst.handle_message(&iot).unwrap().unwrap();
    assert_eq!(h.bus.drain().len(), 1);
    let scan = |body: Vec<u8>| BrokerMessage { subject: "edgecell.tracks.in.radar".into(), body, reply_to: None };
    let first_scan = with_pad(br#"{"tracker":"radar","time":1.0,"detections":[[1.0,5.0]]}"#, JSON_MAX_DEPTH - 1);
    inst.handle_message(&scan(first_scan)).unwrap().unwrap();

    // stored tracker state whose motion model (internally tagged) carries the deepest extra field
    let cache = &h.runtime.services().cache;
    let stored = cache.get("sensor-fusion", STATE_NS, "tracker/radar").unwrap().expect("tracker state");
    let mut v: serde_json::Value = serde_json::from_slice(&stored.value).unwrap();
    let (level, model) = object_with(&mut v, "model", 1).expect("a motion model object");
    model.insert("pad".into(), serde_json::from_str(&nested_json(JSON_MAX_DEPTH - level)).unwrap());
    let deep_state = serde_json::to_vec(&v).unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&deep_state).is_ok());
    cache.set("sensor-fusion", STATE_NS, "tracker/radar", deep_state, None).unwrap();
    inst.handle_message(&scan(br#"{"tracker":"radar","time":2.0,"detections":[[2.0,5.0]]}"#.to_vec())).unwrap().unwrap();
    // and one level deeper is corrupt state: replaced by a fresh tracker (counted), whose ids
    // continue past those the old one held
    let (level, model) = object_with(&mut v, "model", 1).unwrap();
    model.insert("pad".into(), serde_json::from_str(&nested_json(JSON_MAX_DEPTH + 1 - level)).unwrap());
    let deeper = serde_json::to_vec(&v).unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&deeper).is_err(), "{level} {}", String::from_utf8_lossy(&deeper[..300]));
    cache.set("sensor-fusion", STATE_NS, "tracker/radar", deeper, None).unwrap();
    let f = inst.sensor_fusion().unwrap();
    let tracks = inst.call(|s, _| f.edgecell_fusion_tracking().call_track(s, "radar", 3_000_000_000, &[])).unwrap().unwrap();
    assert!(tracks.is_empty());
    assert_eq!(metric(&h, "fusion_state_resets_total", &[("filter", "tracker/radar"), ("reason", "corrupt")]), 1.0);
    let fresh: serde_json::Value = serde_json::from_slice(&cache.get("sensor-fusion", STATE_NS, "tracker/radar").unwrap().unwrap().value).unwrap();
    assert!(fresh["next_id"].as_u64().unwrap() > 1, "{fresh}");

    // TOML nesting: toml refuses more than 80 levels; the deepest it parses is refused as config
    for depth in [79, 80, 81, 100_000] {
        let text = format!("frequency = 30.0\nx = {}", nested_json(depth));
        let e = inst.call(|s, _| f.edgecell_fusion_estimator().call_configure(s, "deep", &text)).unwrap().unwrap_err();
        assert!(matches!(e, FusionError::InvalidConfig(_) | FusionError::Parse(_)), "{depth}: {e:?}");
    }
    assert!(!inst.is_poisoned());
    h.bus.drain();
    inst.handle_message(&msgs[2]).unwrap().unwrap();
    assert!(last_state(&h).updates > first.updates);
}
