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

/// The bag's messages for the sensors of `cfg`, in time order, as envelopes for `filter`.
///
/// # Errors
/// Bag parse errors; a topic whose type does not match the sensor kind.
pub fn envelopes_from_bag(bytes: &[u8], cfg: &LocalizerConfig, filter: &str) -> Result<Vec<SensorEnvelope>> {
    let bag = Bag::parse(bytes)?;
    Ok(sensor_messages(&bag, cfg)?
        .into_iter()
        .filter_map(|(idx, m)| {
            cfg.sensors.get(idx).map(|s| SensorEnvelope { filter: filter.to_owned(), sensor: s.name.clone(), message: m.into() })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bag_envelopes_round_trip_through_json() {
        let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/test2.bag")).unwrap();
        let cfg = crate::preset("robot-localization-test2").unwrap();
        let envs = envelopes_from_bag(&bytes, &cfg, "jackal").unwrap();
        assert!(envs.len() > 1000);
        assert!(envs.iter().any(|e| e.sensor == "imu0" && matches!(e.message, WireMessage::Imu(_))));
        assert!(envs.iter().any(|e| e.sensor == "odom0" && matches!(e.message, WireMessage::Odometry(_))));
        let json = serde_json::to_string(&envs[0]).unwrap();
        assert!(json.contains("\"kind\":"), "{json}");
        let back: SensorEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, envs[0]);
    }
}
