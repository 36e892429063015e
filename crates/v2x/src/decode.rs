//! Decoding: ETSI CAM/DENM/CPM in UPER (optionally inside GeoNetworking + BTP) through
//! [`crate::cam_v2`], [`crate::denm_v2`] and [`crate::cpm_v2`], and VeReMi-style JSON
//! beacons; both end in an [`Observation`].

use serde::{Deserialize, Serialize};

use crate::error::V2xError;
use crate::observation::{
    MessageKind, Observation, Position, delta_time_from_seconds, reconstruct_generation_ms,
};

/// Largest payload accepted by default (bytes); the WIT maps larger ones to `too-large`.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024;

/// Which headers precede the ITS PDU in a binary payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// The ITS PDU alone (UPER).
    Uper,
    /// GeoNetworking + BTP + ITS PDU.
    GeoNetworking,
    /// Radiotap + IEEE 802.11p + LLC + GeoNetworking + BTP + ITS PDU (a pcap frame).
    RadiotapFrame,
}

/// Decodes an ETSI ITS message, the same way on every target: CAM Release 1 and 2
/// (EN 302 637-2 V1.4.1, TS 103 900 V2.3.1; protocol versions 1–2) through [`crate::cam_v2`],
/// DENM (TS 103 831 up to V2.3.1) through [`crate::denm_v2`], CPM (TS 103 324 V2.1.1)
/// through [`crate::cpm_v2`]; optionally inside GeoNetworking + BTP.
///
/// `rcv_its_ms` is the receive time in ITS milliseconds (see
/// [`crate::observation::unix_ns_to_its_ms`]); it anchors generationDeltaTime.
///
/// # Errors
/// [`V2xError::Decode`] for bytes that are not a valid PDU, [`V2xError::Unsupported`] for
/// message types this crate does not handle, [`V2xError::TooLarge`] over the size limit.
pub fn decode_its(
    bytes: &[u8],
    framing: Framing,
    rcv_its_ms: u64,
) -> Result<Observation, V2xError> {
    if bytes.len() > DEFAULT_MAX_PAYLOAD {
        return Err(V2xError::TooLarge(bytes.len() as u64));
    }
    if bytes.is_empty() {
        return Err(V2xError::Decode("empty payload".into()));
    }
    let payload = its_payload(bytes, framing)?;
    // ItsPduHeader: protocolVersion, messageId (one octet each), stationId (four)
    if payload.len() < 6 {
        return Err(V2xError::Decode(format!(
            "ITS PDU of {} bytes is shorter than its header",
            payload.len()
        )));
    }
    // protocol versions 1 (EN 302 637 V1.3) to 3: anything else (text, other protocols) is not
    // an ITS PDU
    let version = payload.first().copied().unwrap_or(0);
    if !(1..=3).contains(&version) {
        return Err(V2xError::Decode(format!(
            "not an ETSI ITS PDU (protocol version {version})"
        )));
    }
    match payload.get(1).copied() {
        Some(crate::cam_v2::MESSAGE_ID) => {
            let (cam, extensions) = crate::cam_v2::decode(payload)?;
            let mut o = cam_fields_to_observation(&crate::cam_v2::fields(&cam), rcv_its_ms);
            o.cam_extensions = extensions
                .iter()
                .map(crate::cam_v2::CamExtension::id)
                .collect();
            o.permissions_needed = crate::ssp::cam_needs(&cam);
            Ok(o)
        }
        Some(crate::denm_v2::MESSAGE_ID) => {
            let d = crate::denm_v2::decode(payload)?;
            let m = &d.denm.management;
            let mut o = referenced_observation(
                MessageKind::Denm,
                d.header.station_id.0,
                m.reference_time.0,
                &m.event_position,
            );
            o.permissions_needed = crate::ssp::denm_needs(&d);
            Ok(o)
        }
        Some(crate::cpm_v2::MESSAGE_ID) => {
            let (c, _) = crate::cpm_v2::decode(payload)?;
            let m = &c.payload.management_container;
            Ok(referenced_observation(
                MessageKind::Cpm,
                c.header.station_id.0,
                m.reference_time.0,
                &m.reference_position,
            ))
        }
        id => Err(V2xError::Unsupported(format!(
            "ITS message id {} (CAM 2, DENM 1 and CPM 14 are decoded)",
            id.unwrap_or(0)
        ))),
    }
}

/// Decodes one UPER value; a failure is a [`V2xError::Decode`] that names `what`.
pub(crate) fn uper<T: rasn::Decode>(bytes: &[u8], what: &str) -> Result<T, V2xError> {
    rasn::uper::decode::<T>(bytes).map_err(|e| V2xError::Decode(format!("UPER {what}: {e}")))
}

/// Checks the first two octets of an ITS PDU (protocol version, message id) before the
/// decoder of message `name` reads it: another message id or a version outside `versions`
/// is [`V2xError::Unsupported`] (`decoded` says which versions are), fewer than two octets
/// [`V2xError::Decode`].
pub(crate) fn check_its_header(
    bytes: &[u8],
    message_id: u8,
    name: &str,
    versions: std::ops::RangeInclusive<u8>,
    decoded: &str,
) -> Result<(), V2xError> {
    match bytes {
        [_, id, ..] if *id != message_id => Err(V2xError::Unsupported(format!(
            "ITS message id {id} is not a {name}"
        ))),
        [version, ..] if !versions.contains(version) => Err(V2xError::Unsupported(format!(
            "{name} protocol version {version} ({decoded})"
        ))),
        [_, _, ..] => Ok(()),
        _ => Err(V2xError::Decode(format!("UPER {name}: truncated header"))),
    }
}

/// The ITS PDU inside `bytes`: the bytes themselves for UPER, the BTP payload for the
/// GeoNetworking framings.
/// The ITS PDU inside an unsecured payload of the given framing, without decoding the PDU.
///
/// # Errors
/// As [`decode_its`] for the headers (a secured GeoNetworking packet is `Unsupported`).
pub fn its_payload(bytes: &[u8], framing: Framing) -> Result<&[u8], V2xError> {
    match framing {
        Framing::Uper => Ok(bytes),
        Framing::GeoNetworking => gn_btp_payload(bytes),
        Framing::RadiotapFrame => gn_btp_payload(gn_in_radiotap(bytes)?),
    }
}

/// A GeoNetworking decode error without the input bytes its `Debug` form carries.
fn gn_error(e: geonetworking::DecodeError<&[u8]>) -> String {
    use geonetworking::DecodeError as E;
    match e {
        E::IntegerError(m)
        | E::EnumError(m)
        | E::StringError(m)
        | E::ArrayError(m)
        | E::ParserError(m) => m,
        E::Nom(rest, kind) => format!("{kind:?} with {} bytes left", rest.len()),
    }
}

/// The ITS PDU after the GeoNetworking headers (geonetworking crate) and the 4-byte BTP-A/B
/// header of an unsecured packet.
fn gn_btp_payload(gn: &[u8]) -> Result<&[u8], V2xError> {
    use geonetworking::Decode as _;
    use geonetworking::en302636_4_1::NextAfterCommon;
    check_gn_basic_header(gn)?;
    let packet = geonetworking::Packet::decode(gn)
        .map_err(|e| V2xError::Decode(format!("GeoNetworking: {}", gn_error(e))))?
        .decoded;
    let payload = packet
        .payload()
        .ok_or_else(|| V2xError::Decode("GeoNetworking packet without payload".into()))?;
    match packet.common().next_header {
        NextAfterCommon::BTPA | NextAfterCommon::BTPB => payload
            .get(4..)
            .ok_or_else(|| V2xError::Decode("truncated BTP header".into())),
        other => Err(V2xError::Unsupported(format!(
            "GeoNetworking next header {other:?} (BTP-A and BTP-B are decoded)"
        ))),
    }
}

/// A DENM's or CPM's observation: its sender, reference time and reference position.
fn referenced_observation(
    kind: MessageKind,
    station_id: u32,
    reference_time_ms: u64,
    p: &c_its_parser::standards::cdd_2_2_1::etsi_its_cdd::ReferencePosition,
) -> Observation {
    let mut o = Observation::new(
        kind,
        station_id,
        geo_position(p.latitude.0, p.longitude.0, p.altitude.altitude_value.0),
        ms_to_s(reference_time_ms),
    );
    o.generation_delta_time = u32::try_from(reference_time_ms % 65_536).unwrap_or(0);
    o.pos_noise_m = confidence_cm(u32::from(
        p.position_confidence_ellipse.semi_major_confidence.0,
    ));
    o
}

/// Maps a CAM's fields (see [`crate::cam_v2::fields`]) to an observation.
#[must_use]
pub fn cam_fields_to_observation(f: &crate::cam_v2::CamFields, rcv_its_ms: u64) -> Observation {
    let gdt = u32::from(f.generation_delta_time);
    let gen_ms = reconstruct_generation_ms(gdt, rcv_its_ms, 0);
    let mut o = Observation::new(
        MessageKind::Cam,
        f.station_id,
        geo_position(f.latitude, f.longitude, f.altitude),
        ms_to_s(gen_ms),
    );
    o.generation_delta_time = gdt;
    o.pos_noise_m = confidence_cm(u32::from(f.semi_major));
    if let Some(hf) = f.vehicle {
        if hf.speed != 16_383 {
            o.speed_mps = Some(f64::from(hf.speed) / 100.0);
            o.speed_noise_mps = if hf.speed_conf >= 126 {
                0.0
            } else {
                f64::from(hf.speed_conf) / 100.0
            };
        }
        if hf.heading <= 3600 {
            o.heading_deg = Some(f64::from(hf.heading) / 10.0);
            o.heading_noise_deg = if hf.heading_conf >= 126 {
                0.0
            } else {
                f64::from(hf.heading_conf) / 10.0
            };
        }
        if hf.long_accel != 161 {
            o.accel_mps2 = Some(f64::from(hf.long_accel) / 10.0);
        }
        if hf.yaw_rate != 32_767 {
            o.yaw_rate_dps = Some(f64::from(hf.yaw_rate) / 100.0);
        }
        if hf.length != 1023 {
            o.length_m = Some(f64::from(hf.length) / 10.0);
        }
        if hf.width != 62 {
            o.width_m = Some(f64::from(hf.width) / 10.0);
        }
    }
    o
}

/// A secured GeoNetworking packet (EN 302 636-4-1 §9.4, TS 103 097): the basic header (next
/// header = secured packet), then IEEE 1609.2 data whose signed payload is the rest of an
/// unsecured packet — common header, extended header, BTP and the ITS PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecuredGn<'a> {
    /// The basic header as received (lifetime and hop limit are not signed).
    pub basic_header: [u8; 4],
    /// The IEEE 1609.2 data (COER).
    pub secured: &'a [u8],
}

impl SecuredGn<'_> {
    /// The unsecured packet the signed payload completes: the basic header with next header =
    /// common header, followed by `payload`; what [`decode_its`] with
    /// [`Framing::GeoNetworking`] reads.
    #[must_use]
    pub fn unsecured_packet(&self, payload: &[u8]) -> Vec<u8> {
        let mut packet = Vec::with_capacity(4 + payload.len());
        packet.push((self.basic_header[0] & 0xf0) | 1);
        packet.extend_from_slice(&self.basic_header[1..]);
        packet.extend_from_slice(payload);
        packet
    }
}

/// The secured GeoNetworking packet in a [`Framing::GeoNetworking`] or
/// [`Framing::RadiotapFrame`] payload; `None` for an unsecured packet or a bare PDU.
///
/// A radiotap frame's 802.11 frame check sequence is checked and taken off first (see
/// `gn_in_radiotap`); the 1609.2 data then ends the packet.
///
/// # Errors
/// [`V2xError::Decode`] for a radiotap frame without a GeoNetworking payload or with a bad
/// frame check sequence, a secured packet without 1609.2 data, or bytes after the 1609.2
/// data.
pub fn secured_gn(bytes: &[u8], framing: Framing) -> Result<Option<SecuredGn<'_>>, V2xError> {
    let gn = match framing {
        Framing::Uper => return Ok(None),
        Framing::GeoNetworking => bytes,
        Framing::RadiotapFrame => gn_in_radiotap(bytes)?,
    };
    let [b0, b1, b2, b3, rest @ ..] = gn else {
        return Ok(None);
    };
    if b0 >> 4 != 1 || b0 & 0x0f != 2 {
        return Ok(None);
    }
    if rest.is_empty() {
        return Err(V2xError::Decode(
            "secured GeoNetworking packet without 1609.2 data".into(),
        ));
    }
    // a length the guard cannot measure is left whole: verification names the fault
    let len = crate::oer_guard::ieee1609_dot2_data_len(rest).unwrap_or(rest.len());
    let after = rest.len().saturating_sub(len);
    if after > 0 {
        return Err(V2xError::Decode(format!(
            "{after} bytes after the 1609.2 data of a secured GeoNetworking packet"
        )));
    }
    let secured = rest.get(..len).unwrap_or(rest);
    Ok(Some(SecuredGn {
        basic_header: [*b0, *b1, *b2, *b3],
        secured,
    }))
}

/// Only unsecured GeoNetworking (basic header next header = common header) is passed to the
/// GN decoder: its secured-packet path (geonetworking 0.4.2) panics on some inputs
/// (`unimplemented!` in its OER tag decoder). A secured packet is split by [`secured_gn`] and
/// its signature verified by the validator, which then decodes the unsecured packet it
/// carries.
fn check_gn_basic_header(gn: &[u8]) -> Result<(), V2xError> {
    let b0 = *gn
        .first()
        .ok_or_else(|| V2xError::Decode("empty GeoNetworking packet".into()))?;
    if gn.len() < 4 {
        return Err(V2xError::Decode(
            "truncated GeoNetworking basic header".into(),
        ));
    }
    match (b0 >> 4, b0 & 0x0f) {
        (1, 1) => check_gn_speed(gn),
        (1, 2) => Err(V2xError::Unsupported(
            "secured GeoNetworking packet: its signature is verified first (validate it; see `secured_gn`)".into(),
        )),
        (v, n) => Err(V2xError::Decode(format!(
            "GeoNetworking basic header version {v}, next header {n}"
        ))),
    }
}

/// geonetworking 0.4.2 panics (`i15::from_i16` assertion) when the 15-bit speed of the source
/// long position vector is negative (bit 14 set). Found by `fuzz/` (target `geonetworking`);
/// such packets are refused with a typed error before they reach the decoder.
fn check_gn_speed(gn: &[u8]) -> Result<(), V2xError> {
    // basic header (4) + common header (8); HT/HST in the common header's second byte.
    let Some(&ht_hst) = gn.get(5) else {
        return Ok(()); // truncated: the decoder returns an error
    };
    let (ht, hst) = (ht_hst >> 4, ht_hst & 0x0f);
    // offset of the source long position vector in the extended header
    let so_pv = match (ht, hst) {
        (0, _) => return Ok(()), // ANY: no extended header
        (1, _) | (5, 0) => 0,    // beacon, single-hop broadcast
        _ => 4,                  // GUC/GAC/GBC/TSB/LS: sequence number + reserved first
    };
    // long position vector: address 8, timestamp 4, lat 4, lon 4, PAI|speed 2, heading 2
    match gn.get(4 + 8 + so_pv + 20) {
        Some(b) if b & 0x40 != 0 => Err(V2xError::Unsupported(
            "GeoNetworking position vector with negative speed".into(),
        )),
        _ => Ok(()),
    }
}

/// Radiotap `Flags` bits: the frame ends with its FCS; the FCS failed its check.
const RADIOTAP_FCS_AT_END: u8 = 0x10;
const RADIOTAP_BAD_FCS: u8 = 0x40;

/// The radiotap `Flags` field (present bit 1), if the header carries it. Fields follow the
/// chain of present words (bit 31 = another word follows), each aligned to its size; only
/// `TSFT` (bit 0, 8 bytes) can come before `Flags`.
fn radiotap_flags(frame: &[u8], rt_len: usize) -> Option<u8> {
    let present = u32::from_le_bytes(frame.get(4..8)?.try_into().ok()?);
    let mut at = 8;
    let mut word = present;
    while word & (1 << 31) != 0 {
        word = u32::from_le_bytes(frame.get(at..at + 4)?.try_into().ok()?);
        at += 4;
    }
    if present & 0b10 == 0 {
        return None;
    }
    if present & 1 != 0 {
        at = at.next_multiple_of(8) + 8;
    }
    if at >= rt_len {
        return None;
    }
    frame.get(at).copied()
}

/// The GeoNetworking packet inside a radiotap + 802.11 + LLC/SNAP (ethertype 0x8947) frame,
/// without the 802.11 frame check sequence.
///
/// The FCS is checked (CRC-32 of the 802.11 frame) when the radiotap flags say the frame ends
/// with one, and taken off; a mismatch, or the flag that the receiver's own check failed, is a
/// decode error. Captures do not always set that flag (the c-its-parser sample frame carries a
/// valid FCS with flags 0), so four trailing bytes that are the frame's CRC-32 are taken off
/// too: any other four bytes match by chance once in 2³².
fn gn_in_radiotap(frame: &[u8]) -> Result<&[u8], V2xError> {
    let rt_len = match frame.get(2..4) {
        Some([a, b]) => usize::from(u16::from_le_bytes([*a, *b])),
        _ => return Err(V2xError::Decode("truncated radiotap header".into())),
    };
    let flags = radiotap_flags(frame, rt_len).unwrap_or(0);
    if flags & RADIOTAP_BAD_FCS != 0 {
        return Err(V2xError::Decode(
            "radiotap: the receiver's frame check failed".into(),
        ));
    }
    let mac = frame
        .get(rt_len..)
        .ok_or_else(|| V2xError::Decode("truncated radiotap header".into()))?;
    let fcs_ok = mac.len() >= 4 && {
        let (body, fcs) = mac.split_at(mac.len() - 4);
        fcs == crc32fast::hash(body).to_le_bytes()
    };
    let mac = if fcs_ok {
        mac.get(..mac.len() - 4).unwrap_or(mac)
    } else if flags & RADIOTAP_FCS_AT_END != 0 {
        return Err(V2xError::Decode(
            "802.11 frame check sequence does not match the frame".into(),
        ));
    } else {
        mac
    };
    const SNAP: [u8; 8] = [0xaa, 0xaa, 0x03, 0, 0, 0, 0x89, 0x47];
    for hdr in [24usize, 26, 30, 32] {
        if mac.get(hdr..hdr + 8) == Some(&SNAP[..]) {
            return mac
                .get(hdr + 8..)
                .ok_or_else(|| V2xError::Decode("truncated frame".into()));
        }
    }
    Err(V2xError::Decode(
        "no LLC/SNAP GeoNetworking payload in frame".into(),
    ))
}

fn ms_to_s(ms: u64) -> f64 {
    // ms since 2004 fit f64's 53-bit mantissa exactly.
    #[allow(clippy::cast_precision_loss)]
    let s = ms as f64 / 1000.0;
    s
}

fn geo_position(lat_e7: i32, lon_e7: i32, alt_cm: i32) -> Position {
    let lat = if lat_e7 == 900_000_001 {
        f64::NAN
    } else {
        f64::from(lat_e7) * 1e-7
    };
    let lon = if lon_e7 == 1_800_000_001 {
        f64::NAN
    } else {
        f64::from(lon_e7) * 1e-7
    };
    let alt = if alt_cm == 800_001 {
        None
    } else {
        Some(f64::from(alt_cm) / 100.0)
    };
    Position::Geo { lat, lon, alt }
}

/// Semi-major axis confidence in cm (4095 unavailable, 4094 out of range) to metres.
fn confidence_cm(v: u32) -> f64 {
    if v >= 4094 { 0.0 } else { f64::from(v) / 100.0 }
}

/// One line of a VeReMi trace (type 2 = own GPS, type 3 = received beacon) or a single JSON
/// beacon. Vectors are `[x, y, z]` in a local metric frame. Extra fields are ignored, except
/// the simulator's ground-truth label `attackType` (0 / absent = honest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VeremiRecord {
    /// 2 = own GPS fix, 3 = received beacon.
    #[serde(rename = "type")]
    pub kind: u8,
    /// Receive (or fix) time, seconds.
    pub rcv_time: f64,
    /// Send time, seconds (type 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_time: Option<f64>,
    /// True sender id (type 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<u32>,
    /// Sender pseudonym (type 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_pseudo: Option<u64>,
    /// Message id (type 3).
    #[serde(default, rename = "messageID", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<u64>,
    /// Position `[x, y, z]`, metres.
    pub pos: Vec<f64>,
    /// Position noise `[x, y, z]`, metres.
    #[serde(default, rename = "pos_noise")]
    pub pos_noise: Vec<f64>,
    /// Speed vector `[vx, vy, vz]`, m/s.
    #[serde(default)]
    pub spd: Vec<f64>,
    /// Speed noise, m/s.
    #[serde(default, rename = "spd_noise")]
    pub spd_noise: Vec<f64>,
    /// Acceleration vector, m/s^2.
    #[serde(default)]
    pub acl: Vec<f64>,
    /// Heading unit vector `[hx, hy, hz]`.
    #[serde(default)]
    pub hed: Vec<f64>,
    /// Heading noise vector.
    #[serde(default, rename = "hed_noise", skip_serializing_if = "Vec::is_empty")]
    pub hed_noise: Vec<f64>,
    /// Ground truth: attack type label of this beacon (simulator output), 0 / absent = honest.
    #[serde(
        default,
        rename = "attackType",
        skip_serializing_if = "Option::is_none"
    )]
    pub attack_type: Option<String>,
}

fn v2(v: &[f64]) -> Option<(f64, f64)> {
    match v {
        [x, y, ..] if x.is_finite() && y.is_finite() => Some((*x, *y)),
        _ => None,
    }
}

impl VeremiRecord {
    /// Parses one JSON object.
    ///
    /// # Errors
    /// [`V2xError::Decode`] on invalid JSON, missing fields or non-finite positions.
    pub fn parse(json: &[u8]) -> Result<Self, V2xError> {
        if json.len() > DEFAULT_MAX_PAYLOAD {
            return Err(V2xError::TooLarge(json.len() as u64));
        }
        let r: Self = serde_json::from_slice(json).map_err(|e| V2xError::Decode(e.to_string()))?;
        if v2(&r.pos).is_none() {
            return Err(V2xError::Decode(
                "pos must be [x, y, z] with finite values".into(),
            ));
        }
        if !r.rcv_time.is_finite() {
            return Err(V2xError::Decode("rcvTime must be finite".into()));
        }
        if r.kind != 2 && r.kind != 3 {
            return Err(V2xError::Unsupported(format!(
                "VeReMi record type {}",
                r.kind
            )));
        }
        Ok(r)
    }

    /// Local position `(x, y)`.
    #[must_use]
    pub fn xy(&self) -> (f64, f64) {
        v2(&self.pos).unwrap_or((0.0, 0.0))
    }

    /// Converts a type 3 beacon into an observation.
    ///
    /// # Errors
    /// [`V2xError::Decode`] when this is not a beacon (type 2) or lacks its sender fields.
    pub fn to_observation(&self) -> Result<Observation, V2xError> {
        if self.kind != 3 {
            return Err(V2xError::Decode("not a received beacon (type 3)".into()));
        }
        let sender = self
            .sender
            .ok_or_else(|| V2xError::Decode("missing sender".into()))?;
        let send = self.send_time.unwrap_or(self.rcv_time);
        let (x, y) = self.xy();
        let mut o = Observation::new(MessageKind::Beacon, sender, Position::Local { x, y }, send);
        o.pseudonym = self.sender_pseudo.unwrap_or(u64::from(sender));
        o.message_id = self.message_id;
        o.generation_delta_time = delta_time_from_seconds(send);
        o.pos_noise_m = v2(&self.pos_noise).map_or(0.0, |(a, b)| a.hypot(b));
        if let Some((vx, vy)) = v2(&self.spd) {
            o.speed_mps = Some(vx.hypot(vy));
        }
        o.speed_noise_mps = v2(&self.spd_noise).map_or(0.0, |(a, b)| a.hypot(b));
        if let Some((hx, hy)) = v2(&self.hed)
            && hx.hypot(hy) > 1e-9
        {
            o.heading_deg = Some(crate::geo::vector_heading(crate::geo::Xy::new(hx, hy)));
        }
        if let (Some((hx, hy)), Some((ax, ay))) = (v2(&self.hed), v2(&self.acl)) {
            let n = hx.hypot(hy);
            o.accel_mps2 = Some(if n > 1e-9 {
                (ax * hx + ay * hy) / n
            } else {
                ax.hypot(ay)
            });
        }
        o.heading_noise_deg =
            v2(&self.hed_noise).map_or(0.0, |(a, b)| a.hypot(b).min(1.0).asin().to_degrees());
        Ok(o)
    }
}
