//! Offline replay of ROS1 bags through the [`Localizer`], and the built-in presets that
//! reproduce robot_localization's own test configurations.

use serde::{Deserialize, Serialize};

use crate::bag::{Bag, decode_imu, decode_navsatfix, decode_odometry};
use crate::error::{FusionError, Result};
use crate::filter::FilterKind;
use crate::localizer::{
    FusedState, FusionStats, ImuMessage, Localizer, LocalizerConfig, NavSatFixMessage, OdometryMessage, SensorConfig,
    SensorKind, StaticTransform, STANDARD_GRAVITY,
};
use crate::state::{Mask, Pose, STATE_SIZE};

/// Names of the built-in presets.
pub const PRESET_NAMES: [&str; 2] = ["robot-localization-test1", "robot-localization-test2"];

/// The longest gap between two messages, in output ticks, that the trajectory fills with one
/// sample per tick (an hour at 50 Hz); a longer one gets one sample before it and is jumped.
pub const MAX_GAP_TICKS: f64 = 180_000.0;

fn mask_of(fields: &[usize]) -> Mask {
    let mut m = [false; STATE_SIZE];
    for &f in fields {
        if let Some(v) = m.get_mut(f) {
            *v = true;
        }
    }
    m
}

/// The configuration of a built-in preset.
///
/// * `robot-localization-test1`: `test_ekf_localization_node_bag1` (Husky, 30 Hz, 3D; odometry
///   vx vy vz; IMU roll pitch yaw vroll vpitch ax ay az with gravity removed; the IMU is mounted
///   at (0, −0.3, 0.52) rotated roll +90°, yaw −90°, as the test's static transform says).
/// * `robot-localization-test2`: `test_ekf_localization_node_bag2` (Jackal, 50 Hz; odometry
///   vx vy vz vyaw; IMU roll pitch yaw vroll vpitch vyaw ax ay az with gravity removed).
///
/// Both: initial covariance 1e-9 on the diagonal, sensor timeout 0.1 s, no gating.
///
/// # Errors
/// [`FusionError::UnknownPreset`].
pub fn preset(name: &str) -> Result<LocalizerConfig> {
    use crate::state::{AX, AY, AZ, PITCH, ROLL, VPITCH, VROLL, VX, VY, VYAW, VZ, YAW};
    let (frequency, odom_topic, odom_mask, imu_mask, q, transforms): (f64, &str, Mask, Mask, [f64; 15], Vec<StaticTransform>) =
        match name {
            "robot-localization-test1" => (
                30.0,
                "/husky_velocity_controller/odom",
                mask_of(&[VX, VY, VZ]),
                mask_of(&[ROLL, PITCH, YAW, VROLL, VPITCH, AX, AY, AZ]),
                [0.05, 0.05, 0.06, 0.03, 0.03, 0.06, 0.025, 0.025, 0.04, 0.01, 0.01, 0.02, 0.01, 0.01, 0.015],
                vec![StaticTransform {
                    child: "imu_link".into(),
                    translation: [0.0, -0.3, 0.52],
                    // static_transform_publisher args: yaw −1.570796327, pitch 0, roll 1.570796327
                    rpy: [std::f64::consts::FRAC_PI_2, 0.0, -std::f64::consts::FRAC_PI_2],
                }],
            ),
            "robot-localization-test2" => (
                50.0,
                "/jackal_velocity_controller/odom",
                mask_of(&[VX, VY, VZ, VYAW]),
                mask_of(&[ROLL, PITCH, YAW, VROLL, VPITCH, VYAW, AX, AY, AZ]),
                [0.03, 0.03, 0.04, 0.03, 0.03, 0.06, 0.025, 0.025, 0.05, 0.002, 0.002, 0.004, 0.01, 0.01, 0.01],
                Vec::new(),
            ),
            other => return Err(FusionError::UnknownPreset(other.into())),
        };
    Ok(LocalizerConfig {
        filter: FilterKind::Ekf,
        frequency,
        sensor_timeout: 0.1,
        two_d_mode: false,
        world_frame: "odom".into(),
        base_link_frame: "base_link".into(),
        process_noise: q.to_vec(),
        initial_covariance: vec![1e-9; STATE_SIZE],
        gravitational_acceleration: STANDARD_GRAVITY,
        transforms,
        sensors: vec![
            SensorConfig {
                name: "odom0".into(),
                topic: odom_topic.into(),
                kind: SensorKind::Odometry,
                mask: odom_mask,
                differential: false,
                relative: false,
                remove_gravitational_acceleration: false,
                rejection_threshold: None,
            },
            SensorConfig {
                name: "imu0".into(),
                topic: "/imu/data".into(),
                kind: SensorKind::Imu,
                mask: imu_mask,
                differential: false,
                relative: false,
                remove_gravitational_acceleration: true,
                rejection_threshold: None,
            },
        ],
        gnss_datum: None,
    })
}

impl LocalizerConfig {
    /// Parses a TOML configuration (same fields as the struct).
    ///
    /// # Errors
    /// [`FusionError::Config`] with the TOML error text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| FusionError::Config(e.to_string()))
    }
}

/// A decoded sensor message.
#[derive(Debug, Clone, PartialEq)]
pub enum SensorMessage {
    /// IMU
    Imu(ImuMessage),
    /// odometry
    Odometry(OdometryMessage),
    /// GNSS fix
    NavSatFix(NavSatFixMessage),
}

impl SensorMessage {
    /// Header stamp (s).
    #[must_use]
    pub fn stamp(&self) -> f64 {
        match self {
            Self::Imu(m) => m.header.stamp,
            Self::Odometry(m) => m.header.stamp,
            Self::NavSatFix(m) => m.header.stamp,
        }
    }
}

/// One trajectory sample (published at the configured frequency).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrajectorySample {
    /// publication time (s, bag clock)
    pub time: f64,
    /// pose at that time
    pub pose: Pose,
}

/// Result of a replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayOutput {
    /// final pose (after the last message)
    pub final_pose: Pose,
    /// final state and covariance
    pub final_state: FusedState,
    /// trajectory at the filter frequency
    pub trajectory: Vec<TrajectorySample>,
    /// counters
    pub stats: FusionStats,
    /// messages fused (decoded and accepted)
    pub messages_used: usize,
    /// messages rejected as bad input: (stamp, reason)
    pub rejected: Vec<(f64, String)>,
}

impl ReplayOutput {
    /// The trajectory as CSV (`time,x,y,z,roll,pitch,yaw`).
    #[must_use]
    pub fn trajectory_csv(&self) -> String {
        let mut s = String::from("time,x,y,z,roll,pitch,yaw\n");
        for t in &self.trajectory {
            let p = t.pose;
            s.push_str(&format!("{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6}\n", t.time, p.x, p.y, p.z, p.roll, p.pitch, p.yaw));
        }
        s
    }
}

/// Decodes the messages of the configured sensor topics from a bag: (sensor index, message),
/// sorted by header stamp (stable).
///
/// # Errors
/// Bag parse errors; a topic whose type does not match the sensor kind.
pub fn sensor_messages(bag: &Bag, cfg: &LocalizerConfig) -> Result<Vec<(usize, SensorMessage)>> {
    let mut out = Vec::new();
    for m in &bag.messages {
        let Some(conn) = bag.connection(m.conn) else { continue };
        for (idx, s) in cfg.sensors.iter().enumerate() {
            if s.topic != conn.topic {
                continue;
            }
            let msg = match (s.kind, conn.msg_type.as_str()) {
                (SensorKind::Imu, "sensor_msgs/Imu") => SensorMessage::Imu(decode_imu(&m.data)?),
                (SensorKind::Odometry, "nav_msgs/Odometry") => SensorMessage::Odometry(decode_odometry(&m.data)?),
                (SensorKind::Gnss, "sensor_msgs/NavSatFix") => SensorMessage::NavSatFix(decode_navsatfix(&m.data)?),
                (_, t) => return Err(FusionError::Config(format!("topic {} has type {t}, sensor {} expects {:?}", conn.topic, s.name, s.kind))),
            };
            out.push((idx, msg));
        }
    }
    out.sort_by(|a, b| a.1.stamp().total_cmp(&b.1.stamp()));
    Ok(out)
}

/// Runs messages through a localizer the way robot_localization's node does: measurements in
/// time order, each predicted to and corrected; state published at `frequency`; if no
/// measurement arrived for `sensor_timeout`, the filter predicts to the publication time.
/// Bad messages are rejected (listed in the output) without stopping the replay.
///
/// # Errors
/// Invalid configuration.
pub fn replay_messages(messages: &[(usize, SensorMessage)], cfg: &LocalizerConfig) -> Result<ReplayOutput> {
    let mut loc = Localizer::new(cfg.clone())?;
    let period = 1.0 / cfg.frequency;
    let mut trajectory = Vec::new();
    let mut rejected = Vec::new();
    let mut used = 0usize;
    let start = messages.first().map_or(0.0, |m| m.1.stamp());
    let mut tick = 0u64;
    let mut measured_since_tick = false;
    #[allow(clippy::cast_precision_loss)]
    let tick_time = |k: u64| start + k as f64 * period;
    let publish = |loc: &mut Localizer, t: f64, measured: bool, traj: &mut Vec<TrajectorySample>| {
        if !loc.is_initialized() {
            return;
        }
        if !measured
            && let Some(last) = loc.time()
            && t - last >= cfg.sensor_timeout
        {
            let _ = loc.predict_to(t);
        }
        traj.push(TrajectorySample { time: t, pose: loc.pose() });
    };
    for (idx, msg) in messages {
        let stamp = msg.stamp();
        if !stamp.is_finite() {
            rejected.push((stamp, "non-finite stamp".to_string()));
            continue;
        }
        // a gap in the data: one sample per tick, but a gap of more than MAX_GAP_TICKS is
        // jumped after one sample (a bag stamped 0 s and 4e9 s would otherwise publish ~2e11)
        if (stamp - tick_time(tick)) / period > MAX_GAP_TICKS {
            publish(&mut loc, tick_time(tick), measured_since_tick, &mut trajectory);
            measured_since_tick = false;
            // (finite and positive here; `as` saturates far beyond any bag)
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let to = ((stamp - start) / period).floor() as u64;
            tick = to.max(tick + 1);
        }
        while tick_time(tick) < stamp {
            publish(&mut loc, tick_time(tick), measured_since_tick, &mut trajectory);
            measured_since_tick = false;
            tick += 1;
        }
        let r = match msg {
            SensorMessage::Imu(m) => loc.process_imu(*idx, m),
            SensorMessage::Odometry(m) => loc.process_odometry(*idx, m),
            SensorMessage::NavSatFix(m) => loc.process_navsat(*idx, m),
        };
        match r {
            Ok(_) => {
                used += 1;
                measured_since_tick = true;
            }
            Err(e) => rejected.push((stamp, e.to_string())),
        }
    }
    publish(&mut loc, tick_time(tick), measured_since_tick, &mut trajectory);
    Ok(ReplayOutput {
        final_pose: loc.pose(),
        final_state: loc.fused_state(),
        trajectory,
        stats: loc.stats().clone(),
        messages_used: used,
        rejected,
    })
}

/// Parses a bag and replays it with `cfg` (the CLI's `edgecell fusion replay-bag`).
///
/// # Errors
/// Bag parse errors, invalid configuration.
pub fn replay_bag(bytes: &[u8], cfg: &LocalizerConfig) -> Result<ReplayOutput> {
    let bag = Bag::parse(bytes)?;
    let msgs = sensor_messages(&bag, cfg)?;
    replay_messages(&msgs, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/test1.bag");
    const TEST2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/test2.bag");

    #[test]
    fn test2_bag_ends_within_published_tolerance() {
        let cfg = preset("robot-localization-test2").unwrap();
        let out = replay_bag(&std::fs::read(TEST2).unwrap(), &cfg).unwrap();
        let expected = Pose { x: 1.0206, y: 3.4292, z: 0.7419, ..Pose::default() };
        let err = out.final_pose.distance(&expected);
        eprintln!("test2 final pose {:?} error {err:.4} m stats {:?}", out.final_pose, out.stats);
        assert!(err < 0.1383, "final {:?} is {err} m from the published pose", out.final_pose);
        assert!(out.rejected.is_empty(), "{:?}", &out.rejected[..out.rejected.len().min(5)]);
        assert_eq!(out.messages_used, 6121);
        // 61 s at 50 Hz
        assert!((3000..3150).contains(&out.trajectory.len()), "{}", out.trajectory.len());
    }

    #[test]
    fn test1_bag_runs() {
        let cfg = preset("robot-localization-test1").unwrap();
        let out = replay_bag(&std::fs::read(TEST1).unwrap(), &cfg).unwrap();
        eprintln!("test1 final pose {:?} stats {:?} rejected {}", out.final_pose, out.stats, out.rejected.len());
        // robot_localization's ROS 1 launch file expects (-40.0454, -76.9988, -2.6974) ± 1.0452
        let expected = Pose { x: -40.0454, y: -76.9988, z: -2.6974, ..Pose::default() };
        let err = out.final_pose.distance(&expected);
        eprintln!("test1 distance to the ROS 1 expected pose: {err:.4} m");
        assert!(out.rejected.is_empty());
        assert_eq!(out.messages_used, 11_865 + 3_952);
        assert!(err < 1.0452, "{:?} is {err} m away", out.final_pose);
    }

    #[test]
    fn ukf_on_test2_bag() {
        let mut cfg = preset("robot-localization-test2").unwrap();
        cfg.filter = FilterKind::Ukf;
        let out = replay_bag(&std::fs::read(TEST2).unwrap(), &cfg).unwrap();
        let expected = Pose { x: 1.0206, y: 3.4292, z: 0.7419, ..Pose::default() };
        let err = out.final_pose.distance(&expected);
        eprintln!("test2 UKF final pose {:?} error {err:.4} m", out.final_pose);
        assert!(err < 0.1383, "{:?}", out.final_pose);
    }

    #[test]
    fn two_d_mode_keeps_the_plane() {
        let mut cfg = preset("robot-localization-test2").unwrap();
        cfg.two_d_mode = true;
        let out = replay_bag(&std::fs::read(TEST2).unwrap(), &cfg).unwrap();
        assert_eq!(out.final_pose.z, 0.0);
        assert_eq!(out.final_pose.roll, 0.0);
        assert_eq!(out.final_pose.pitch, 0.0);
        // the planar track still ends near the 3D one in x/y
        let planar = ((out.final_pose.x - 1.0206).powi(2) + (out.final_pose.y - 3.4292).powi(2)).sqrt();
        eprintln!("test2 2D final pose {:?}", out.final_pose);
        assert!(planar < 0.5, "{:?}", out.final_pose);
    }

    #[test]
    fn replay_rejects_injected_bad_messages_and_carries_on() {
        let cfg = preset("robot-localization-test2").unwrap();
        let bag = Bag::parse(&std::fs::read(TEST2).unwrap()).unwrap();
        let mut msgs = sensor_messages(&bag, &cfg).unwrap();
        // duplicate of an IMU message, a NaN odometry message, an IMU message in an unknown frame
        let dup = msgs.iter().find(|m| matches!(m.1, SensorMessage::Imu(_))).cloned().unwrap();
        let pos = msgs.iter().position(|m| m == &dup).unwrap();
        msgs.insert(pos + 1, dup);
        if let Some((_, SensorMessage::Odometry(o))) = msgs.get_mut(500) {
            o.linear[0] = f64::NAN;
        } else if let Some((_, SensorMessage::Odometry(o))) = msgs.get_mut(501) {
            o.linear[0] = f64::NAN;
        }
        if let Some((_, SensorMessage::Imu(m))) = msgs.iter_mut().skip(1000).find(|m| matches!(m.1, SensorMessage::Imu(_))) {
            m.header.frame_id = "camera".into();
        }
        let out = replay_messages(&msgs, &cfg).unwrap();
        assert_eq!(out.rejected.len(), 3, "{:?}", out.rejected);
        assert!(out.rejected[0].1.contains("duplicate"));
        assert!(out.rejected.iter().any(|r| r.1.contains("non-finite")));
        assert!(out.rejected.iter().any(|r| r.1.contains("unknown frame")));
        let expected = Pose { x: 1.0206, y: 3.4292, z: 0.7419, ..Pose::default() };
        assert!(out.final_pose.distance(&expected) < 0.1383);
    }

    /// A message stamped 4e9 s after the rest: the trajectory gets one sample before the gap
    /// and goes on after it (one sample per 20 ms tick across it would be ~2e11 samples).
    #[test]
    fn a_gap_of_years_is_jumped_not_filled() {
        let cfg = preset("robot-localization-test2").unwrap();
        let bag = Bag::parse(&std::fs::read(TEST2).unwrap()).unwrap();
        let mut msgs = sensor_messages(&bag, &cfg).unwrap();
        if let Some((_, SensorMessage::Imu(m))) = msgs.iter_mut().rev().find(|m| matches!(m.1, SensorMessage::Imu(_))) {
            m.header.stamp += 4e9;
        }
        let out = replay_messages(&msgs, &cfg).unwrap();
        assert!((3000..3200).contains(&out.trajectory.len()), "{}", out.trajectory.len());
    }

    #[test]
    fn presets_and_toml() {
        assert!(matches!(preset("nope"), Err(FusionError::UnknownPreset(_))));
        for name in PRESET_NAMES {
            let cfg = preset(name).unwrap();
            let text = toml::to_string(&cfg).unwrap();
            assert_eq!(LocalizerConfig::from_toml(&text).unwrap(), cfg);
        }
        assert!(LocalizerConfig::from_toml("frequency = 'x'").is_err());
    }
}
