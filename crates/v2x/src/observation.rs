//! The normalised observation every input form (CAM, DENM, CPM, VeReMi beacon) is mapped to.

use serde::{Deserialize, Serialize};

use crate::geo::{LocalFrame, Xy};

/// Unix time of the ITS epoch 2004-01-01T00:00:00Z, milliseconds.
pub const ITS_EPOCH_UNIX_MS: u64 = 1_072_915_200_000;
/// Leap seconds inserted between 2004 and now (TAI-UTC grew from 32 s to 37 s).
pub const ITS_LEAP_SECONDS: u64 = 5;

/// Converts Unix nanoseconds to ITS TimestampIts milliseconds (TAI since 2004).
#[must_use]
pub fn unix_ns_to_its_ms(unix_ns: u64) -> u64 {
    (unix_ns / 1_000_000).saturating_sub(ITS_EPOCH_UNIX_MS) + ITS_LEAP_SECONDS * 1000
}

/// Converts ITS milliseconds (TAI since 2004) to Unix nanoseconds.
#[must_use]
pub fn its_ms_to_unix_ns(its_ms: u64) -> u64 {
    (its_ms + ITS_EPOCH_UNIX_MS)
        .saturating_sub(ITS_LEAP_SECONDS * 1000)
        .saturating_mul(1_000_000)
}

/// Kind of message an observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Cooperative Awareness Message.
    Cam,
    /// Decentralized Environmental Notification Message.
    Denm,
    /// Collective Perception Message.
    Cpm,
    /// VeReMi-style JSON beacon.
    Beacon,
}

impl MessageKind {
    /// The name used in the WIT `validation.message-kind` field.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cam => "cam",
            Self::Denm => "denm",
            Self::Cpm => "cpm",
            Self::Beacon => "beacon",
        }
    }
    /// The ITS-AID / PSID of the message's service (CA 36, DEN 37, CP 639).
    #[must_use]
    pub const fn psid(self) -> Option<u64> {
        match self {
            Self::Cam => Some(36),
            Self::Denm => Some(37),
            Self::Cpm => Some(639),
            Self::Beacon => None,
        }
    }
}

/// A position as the sender reported it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "lowercase")]
pub enum Position {
    /// WGS84 degrees (ETSI messages).
    Geo {
        /// Latitude, degrees.
        lat: f64,
        /// Longitude, degrees.
        lon: f64,
        /// Altitude, metres, when known.
        alt: Option<f64>,
    },
    /// A local metric frame (VeReMi traces), metres.
    Local {
        /// East, metres.
        x: f64,
        /// North, metres.
        y: f64,
    },
}

impl Position {
    /// The position in a local frame (geo positions are projected with `frame`).
    #[must_use]
    pub fn to_xy(&self, frame: &LocalFrame) -> Xy {
        match *self {
            Self::Geo { lat, lon, .. } => frame.to_local(lat, lon),
            Self::Local { x, y } => Xy::new(x, y),
        }
    }
}

/// What the checks see of a message, independent of its encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Message kind.
    pub kind: MessageKind,
    /// Station id of the sender (ITS header stationID; VeReMi `sender`).
    pub station_id: u32,
    /// Pseudonym the checks key their history on (CAM: station id; VeReMi `senderPseudo`).
    pub pseudonym: u64,
    /// VeReMi `messageID`, when given.
    pub message_id: Option<u64>,
    /// Generation time in the sender's time base, seconds (VeReMi `sendTime`; ETSI: ITS time
    /// reconstructed from generationDeltaTime and the receive time).
    pub generation_time_s: f64,
    /// ETSI generationDeltaTime (ms mod 65536); for beacons derived from `sendTime`.
    pub generation_delta_time: u32,
    /// Reported position.
    pub position: Position,
    /// Position uncertainty radius, metres (0 when unknown).
    pub pos_noise_m: f64,
    /// Reported speed, m/s.
    pub speed_mps: Option<f64>,
    /// Speed uncertainty, m/s.
    pub speed_noise_mps: f64,
    /// Reported heading, degrees clockwise from north.
    pub heading_deg: Option<f64>,
    /// Heading uncertainty, degrees.
    pub heading_noise_deg: f64,
    /// Longitudinal acceleration, m/s^2.
    pub accel_mps2: Option<f64>,
    /// Yaw rate, degrees per second (positive = counter-clockwise as in ETSI).
    pub yaw_rate_dps: Option<f64>,
    /// Vehicle length, metres.
    pub length_m: Option<f64>,
    /// Vehicle width, metres.
    pub width_m: Option<f64>,
    /// Ids of the CAM Release 2 extension containers the message carried, in order (see
    /// [`crate::cam_v2::extension_name`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cam_extensions: Vec<u32>,
    /// What the message says that its signer's service specific permissions must grant
    /// (special vehicle containers, DENM cause codes; see [`crate::ssp`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions_needed: Vec<crate::ssp::Permission>,
}

impl Observation {
    /// A minimal observation (tests, simulators).
    #[must_use]
    pub fn new(
        kind: MessageKind,
        station_id: u32,
        position: Position,
        generation_time_s: f64,
    ) -> Self {
        Self {
            kind,
            station_id,
            pseudonym: u64::from(station_id),
            message_id: None,
            generation_time_s,
            generation_delta_time: delta_time_from_seconds(generation_time_s),
            position,
            pos_noise_m: 0.0,
            speed_mps: None,
            speed_noise_mps: 0.0,
            heading_deg: None,
            heading_noise_deg: 0.0,
            accel_mps2: None,
            yaw_rate_dps: None,
            length_m: None,
            width_m: None,
            cam_extensions: Vec::new(),
            permissions_needed: Vec::new(),
        }
    }
}

/// generationDeltaTime (ms mod 65536) of a time in seconds.
#[must_use]
pub fn delta_time_from_seconds(t_s: f64) -> u32 {
    if !t_s.is_finite() || t_s < 0.0 {
        return 0;
    }
    // Truncation to whole milliseconds is intended.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = (t_s * 1000.0).round() as u64;
    (ms % 65_536) as u32
}

/// Reconstructs the full ITS generation time (ms) of a generationDeltaTime received at
/// `rcv_its_ms`, assuming the message was generated at most 65.5 s before it arrived (and
/// tolerating `future_tolerance_ms` of sender clock lead).
#[must_use]
pub fn reconstruct_generation_ms(gdt: u32, rcv_its_ms: u64, future_tolerance_ms: u64) -> u64 {
    let base = rcv_its_ms + future_tolerance_ms;
    let delta = (base.wrapping_sub(u64::from(gdt))) % 65_536;
    base.saturating_sub(delta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_time_conversion() {
        // 2004-01-01T00:00:00Z in unix ns -> 5 s of leap seconds.
        assert_eq!(unix_ns_to_its_ms(ITS_EPOCH_UNIX_MS * 1_000_000), 5000);
        let t = 1_700_000_000_123_000_000u64;
        assert_eq!(
            its_ms_to_unix_ns(unix_ns_to_its_ms(t)),
            1_700_000_000_123_000_000
        );
    }

    #[test]
    fn gdt_reconstruction() {
        let rcv = 1_000_000_000u64;
        let gen_ms = rcv - 120;
        let gdt = u32::try_from(gen_ms % 65_536).unwrap_or(0);
        assert_eq!(reconstruct_generation_ms(gdt, rcv, 0), gen_ms);
        // slightly in the future (sender clock ahead by 50 ms) with tolerance 500 ms
        let gdt2 = u32::try_from((rcv + 50) % 65_536).unwrap_or(0);
        assert_eq!(reconstruct_generation_ms(gdt2, rcv, 500), rcv + 50);
        assert_eq!(delta_time_from_seconds(65.536), 0);
        assert_eq!(delta_time_from_seconds(1.5), 1500);
    }
}
