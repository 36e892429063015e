//! The message forms the sensor-fusion actor consumes and publishes on NATS (JSON bodies),
//! shared by the actor, the producers and the CLI so they cannot drift apart.
//!
//! Subjects: `edgecell.sensors.in.<site>` carries [`SensorEnvelope`]s; the actor publishes the
//! fused state ([`StateMessage`]) on `edgecell.fusion.state.<filter>` (or to the reply subject).
//! `edgecell.iot.in.<site>` carries a JSON array of [`crate::iot::Reading`]s and
//! `edgecell.tracks.in.<site>` a [`ScanMessage`].

use serde::{Deserialize, Serialize};

use crate::bag::Bag;
use crate::error::Result;
use crate::localizer::{FusedState, ImuMessage, LocalizerConfig, NavSatFixMessage, OdometryMessage};
use crate::replay::{SensorMessage, sensor_messages};

/// One sensor message for one filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorEnvelope {
    /// Filter (localizer) id.
    pub filter: String,
    /// Sensor name as configured (`imu0`, `odom0`, …).
    pub sensor: String,
    /// The message.
    #[serde(flatten)]
    pub message: WireMessage,
}

/// A sensor message, tagged by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "lowercase")]
pub enum WireMessage {
    /// `sensor_msgs/Imu`
    Imu(ImuMessage),
    /// `nav_msgs/Odometry`
    Odometry(OdometryMessage),
    /// `sensor_msgs/NavSatFix`
    Gnss(NavSatFixMessage),
}

impl From<SensorMessage> for WireMessage {
    fn from(m: SensorMessage) -> Self {
        match m {
            SensorMessage::Imu(m) => Self::Imu(m),
            SensorMessage::Odometry(m) => Self::Odometry(m),
            SensorMessage::NavSatFix(m) => Self::Gnss(m),
        }
    }
}

/// What the actor publishes after each accepted update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateMessage {
    /// Filter id.
    pub filter: String,
    /// Updates accepted so far by this filter instance.
    pub updates: u64,
    /// Updates rejected by the gate so far.
    pub gated: u64,
    /// The fused state with covariance.
    pub state: FusedState,
}

/// One scan for the multi-target tracker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanMessage {
    /// Tracker id.
    pub tracker: String,
    /// Scan time (s).
    pub time: f64,
    /// Detections `[x, y]` (m).
    pub detections: Vec<[f64; 2]>,
}

/// A bag's messages as envelopes for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct BagEnvelopes {
    /// The envelopes, in time order.
    pub envelopes: Vec<SensorEnvelope>,
    /// Messages left out because a value is NaN or infinite: JSON has no such numbers
    /// (serde_json would write `null`, which the actor cannot read back), with the first
    /// such field seen.
    pub non_finite: usize,
    /// The first field that held one.
    pub first_non_finite: Option<&'static str>,
}

impl WireMessage {
    /// The first field holding NaN or an infinity, if any.
    #[must_use]
    pub fn non_finite_field(&self) -> Option<&'static str> {
        let bad = |v: &[f64]| v.iter().any(|x| !x.is_finite());
        let fields: Vec<(&'static str, &[f64])> = match self {
            Self::Imu(m) => vec![
                ("header.stamp", std::slice::from_ref(&m.header.stamp)),
                ("orientation", &m.orientation),
                ("orientation_covariance", &m.orientation_covariance),
                ("angular_velocity", &m.angular_velocity),
                ("angular_velocity_covariance", &m.angular_velocity_covariance),
                ("linear_acceleration", &m.linear_acceleration),
                ("linear_acceleration_covariance", &m.linear_acceleration_covariance),
            ],
            Self::Odometry(m) => vec![
                ("header.stamp", std::slice::from_ref(&m.header.stamp)),
                ("position", &m.position),
                ("orientation", &m.orientation),
                ("pose_covariance", &m.pose_covariance),
                ("linear", &m.linear),
                ("angular", &m.angular),
                ("twist_covariance", &m.twist_covariance),
            ],
            Self::Gnss(m) => vec![
                ("header.stamp", std::slice::from_ref(&m.header.stamp)),
                ("latitude", std::slice::from_ref(&m.latitude)),
                ("longitude", std::slice::from_ref(&m.longitude)),
                ("altitude", std::slice::from_ref(&m.altitude)),
                ("position_covariance", &m.position_covariance),
            ],
        };
        fields.into_iter().find(|(_, v)| bad(v)).map(|(name, _)| name)
    }
}

/// The bag's messages for the sensors of `cfg`, in time order, as envelopes for `filter`;
/// messages with NaN or infinite values are counted and left out (see [`BagEnvelopes`]).
///
/// # Errors
/// Bag parse errors; a topic whose type does not match the sensor kind.
pub fn envelopes_from_bag(bytes: &[u8], cfg: &LocalizerConfig, filter: &str) -> Result<BagEnvelopes> {
    bag_envelopes(&Bag::parse(bytes)?, cfg, filter)
}

fn bag_envelopes(bag: &Bag, cfg: &LocalizerConfig, filter: &str) -> Result<BagEnvelopes> {
    let mut out = BagEnvelopes { envelopes: Vec::new(), non_finite: 0, first_non_finite: None };
    for (idx, m) in sensor_messages(bag, cfg)? {
        let Some(sensor) = cfg.sensors.get(idx) else { continue };
        let mut message = WireMessage::from(m);
        // sensor_msgs/Imu: orientation_covariance[0] = -1 says there is no orientation, and
        // some drivers then fill it with NaN; the localizer never reads it, so it goes out as
        // zeros rather than costing the message its angular velocity and acceleration
        if let WireMessage::Imu(imu) = &mut message
            && imu.orientation_covariance[0] == -1.0
            && imu.orientation.iter().any(|v| !v.is_finite())
        {
            imu.orientation = [0.0; 4];
        }
        if let Some(field) = message.non_finite_field() {
            out.non_finite += 1;
            out.first_non_finite.get_or_insert(field);
            continue;
        }
        out.envelopes.push(SensorEnvelope { filter: filter.to_owned(), sensor: sensor.name.clone(), message });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bag_envelopes_round_trip_through_json() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/test2.bag")).unwrap();
        let cfg = crate::preset("robot-localization-test2").unwrap();
        let out = envelopes_from_bag(&bytes, &cfg, "jackal").unwrap();
        assert_eq!(out.non_finite, 0);
        let envs = out.envelopes;
        assert!(envs.len() > 1000);
        assert!(envs.iter().any(|e| e.sensor == "imu0" && matches!(e.message, WireMessage::Imu(_))));
        assert!(envs.iter().any(|e| e.sensor == "odom0" && matches!(e.message, WireMessage::Odometry(_))));
        let json = serde_json::to_string(&envs[0]).unwrap();
        assert!(json.contains("\"kind\":"), "{json}");
        let back: SensorEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, envs[0]);
    }

    #[test]
    fn messages_with_values_json_cannot_carry_are_counted_and_left_out() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/test2.bag")).unwrap();
        let cfg = crate::preset("robot-localization-test2").unwrap();
        let mut bag = Bag::parse(&bytes).unwrap();
        let all = bag_envelopes(&bag, &cfg, "jackal").unwrap().envelopes.len();
        let imu_conn = bag.connections.iter().find(|c| c.topic == "/imu/data").unwrap().id;
        // where an IMU message's orientation starts: after seq, stamp and the frame id string
        let orientation_at = |data: &[u8]| 16 + u32::from_le_bytes(data[12..16].try_into().unwrap()) as usize;
        // orientation x of two IMU messages
        let mut patched = 0;
        for (m, value) in bag.messages.iter_mut().filter(|m| m.conn == imu_conn).take(2).zip([f64::NAN, f64::INFINITY]) {
            let at = orientation_at(&m.data);
            m.data[at..at + 8].copy_from_slice(&value.to_le_bytes());
            patched += 1;
        }
        assert_eq!(patched, 2);
        let out = bag_envelopes(&bag, &cfg, "jackal").unwrap();
        assert_eq!((out.envelopes.len(), out.non_finite, out.first_non_finite), (all - 2, 2, Some("orientation")));
        // what is left carries no null
        assert!(out.envelopes.iter().all(|e| !serde_json::to_string(e).unwrap().contains("null")));

        // an orientation marked absent (covariance[0] = -1), NaN as some drivers leave it, is
        // not a reason to leave the message out: the localizer does not read it
        let first = bag.messages.iter_mut().find(|m| m.conn == imu_conn).unwrap();
        // (orientation_covariance[0] follows the four orientation values)
        let cov = orientation_at(&first.data) + 32;
        first.data[cov..cov + 8].copy_from_slice(&(-1.0_f64).to_le_bytes());
        let out = bag_envelopes(&bag, &cfg, "jackal").unwrap();
        assert_eq!((out.envelopes.len(), out.non_finite), (all - 1, 1));
        let WireMessage::Imu(imu) = &out.envelopes.iter().find(|e| e.sensor == "imu0").unwrap().message else { panic!("an IMU message") };
        assert_eq!((imu.orientation, imu.orientation_covariance[0]), ([0.0; 4], -1.0));
    }
}
