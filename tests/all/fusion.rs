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
    let mut s = spec("sensor-fusion", common::component("edgecell_sensor_fusion.wasm"));
    s.config.insert("filter.jackal".into(), "robot-localization-test2".into());
    let a = h.runtime.load_actor(s).unwrap();
    let mut inst = a.instantiate().unwrap();
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/fusion/test2.bag")).unwrap();
    let cfg = edgecell_fusion::preset("robot-localization-test2").unwrap();
    let envelopes = edgecell_fusion::wire::envelopes_from_bag(&bytes, &cfg, "jackal").unwrap();
    for e in &envelopes {
        let msg = BrokerMessage { subject: "edgecell.sensors.in.jackal".into(), body: serde_json::to_vec(e).unwrap(), reply_to: None };
        inst.handle_message(&msg).unwrap().unwrap();
    }
    let published = h.bus.drain();
    assert_eq!(published.len(), envelopes.len());
    let last: edgecell_fusion::wire::StateMessage = serde_json::from_slice(&published.last().unwrap().body).unwrap();
    let p = last.state.pose;
    let err = ((p.x - 1.0206f64).powi(2) + (p.y - 3.4292f64).powi(2) + (p.z - 0.7419f64).powi(2)).sqrt();
    assert!(err <= 0.1383, "final ({}, {}, {}) is {err} m off", p.x, p.y, p.z);
    // a message that is not an envelope is refused with a reason; the instance keeps going
    let junk = BrokerMessage { subject: "edgecell.sensors.in.jackal".into(), body: b"{not json".to_vec(), reply_to: None };
    assert!(inst.handle_message(&junk).unwrap().unwrap_err().contains("not a sensor envelope"));
    let other = BrokerMessage { subject: "edgecell.video.in".into(), body: vec![], reply_to: None };
    assert!(inst.handle_message(&other).unwrap().is_err());
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
}
