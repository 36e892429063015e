//! The validator: decode → (verify) → plausibility checks → verdict → risk.
//!
//! The output [`Validation`] is shaped after the WIT `validation` record; the actor maps it
//! field by field. [`MisbehaviourReport`] is shaped after ETSI TS 103 759.

use std::borrow::Cow;

use serde::Serialize;

use crate::checks::{CheckResult, Checks, Kinematics, names};
use crate::config::{Config, UnreadableReplay, VerdictPolicy};
use crate::decode::{Framing, SecuredGn, VeremiRecord, decode_its, secured_gn};
use crate::error::{SecurityError, V2xError};
use crate::geo::{LocalFrame, Xy};
use crate::history::{Footprint, HistoryStore, MemoryHistory, Track, Unreadable};
use crate::map::{MapFrame, ProjectedMap, RoadMap};
use crate::observation::{MessageKind, Observation, Position, unix_ns_to_its_ms};
use crate::risk::{MotionState, Risk, RiskConfig, assess};
use crate::security::{CertCache, MemoryCertCache, TrustStore, VerifiedData};

/// Input formats (the WIT `message-format`, plus a pcap frame form for tools).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageFormat {
    /// ETSI ITS message in UPER, no headers.
    Uper,
    /// GeoNetworking + BTP + ITS message; a secured packet's 1609.2 signature is verified.
    GeoNetworking,
    /// Radiotap + 802.11p + LLC + GeoNetworking + BTP + ITS message (secured or not).
    RadiotapFrame,
    /// IEEE 1609.2 signed data (COER) whose payload is an ITS message in UPER. (A secured
    /// GeoNetworking packet goes as `GeoNetworking` or `RadiotapFrame`.)
    Secured,
    /// One VeReMi-style JSON beacon (type 3).
    JsonBeacon,
}

impl MessageFormat {
    /// The form of a binary message from its first bytes, for inputs that do not say (NATS
    /// bodies, files): a radiotap header (version 0, pad 0), a GeoNetworking basic header
    /// (version 1, next header common or secured), IEEE 1609.2 data (protocol version 3, then
    /// a content CHOICE tag 0x80–0xbf, where an ITS PDU has its message id), else a UPER ITS
    /// PDU. JSON beacons are not binary: callers look for `{` first.
    #[must_use]
    pub fn of_binary(bytes: &[u8]) -> Self {
        match bytes {
            [0, 0, ..] => Self::RadiotapFrame,
            [b0, ..] if b0 >> 4 == 1 && matches!(b0 & 0x0f, 1 | 2) => Self::GeoNetworking,
            [3, 0x80..=0xbf, ..] => Self::Secured,
            _ => Self::Uper,
        }
    }

    /// The framing of a binary form's headers; `None` for 1609.2 data and JSON beacons.
    #[must_use]
    pub const fn framing(self) -> Option<Framing> {
        match self {
            Self::Uper => Some(Framing::Uper),
            Self::GeoNetworking => Some(Framing::GeoNetworking),
            Self::RadiotapFrame => Some(Framing::RadiotapFrame),
            Self::Secured | Self::JsonBeacon => None,
        }
    }

    /// The ITS PDU a binary message of this form carries, taken out of its headers and any
    /// 1609.2 envelope without verifying anything (a signature is not checked): for reading
    /// ahead, never for a verdict. `None` when it cannot be taken out, or the message is over
    /// the payload limit.
    #[must_use]
    pub fn unverified_pdu(self, bytes: &[u8]) -> Option<Cow<'_, [u8]>> {
        self.read_ahead(bytes).0
    }

    /// The station id of the CAM a message of this form carries, read from the CAM's header
    /// without validating anything (see [`Self::unverified_pdu`]): for reading the sender's
    /// history ahead. `None` for anything else.
    #[must_use]
    pub fn peek_cam_station_id(self, bytes: &[u8]) -> Option<u32> {
        crate::cam_v2::peek_station_id(&self.unverified_pdu(bytes)?)
    }

    /// The HashedId8 of the signer of a secured message of this form (1609.2 data, or a
    /// secured GeoNetworking packet in any framing), read without verifying anything (see
    /// [`crate::security::UnverifiedData`]). `None` for unsecured messages.
    #[must_use]
    pub fn peek_signer(self, bytes: &[u8]) -> Option<crate::security::HashedId8> {
        self.read_ahead(bytes).1?.signer()
    }

    /// [`Self::peek_cam_station_id`] and [`Self::peek_signer`] at once, the 1609.2 data
    /// decoded once: what a new instance reads ahead for.
    #[must_use]
    pub fn peek_sender(self, bytes: &[u8]) -> (Option<u32>, Option<crate::security::HashedId8>) {
        let (pdu, data) = self.read_ahead(bytes);
        (
            pdu.and_then(|p| crate::cam_v2::peek_station_id(&p)),
            data.and_then(|d| d.signer()),
        )
    }

    /// The ITS PDU and, for a secured message, its decoded 1609.2 data, nothing verified.
    fn read_ahead(
        self,
        bytes: &[u8],
    ) -> (
        Option<Cow<'_, [u8]>>,
        Option<crate::security::UnverifiedData>,
    ) {
        use crate::decode::its_payload;
        use crate::security::UnverifiedData;
        if bytes.len() > crate::decode::DEFAULT_MAX_PAYLOAD {
            return (None, None); // validation refuses it as too large
        }
        let (data, unsecured_packet) = match self.framing() {
            None if self == Self::Secured => (UnverifiedData::decode(bytes), None),
            None => return (None, None),
            Some(framing) => match secured_gn(bytes, framing) {
                Ok(Some(gn)) => {
                    let data = UnverifiedData::decode(gn.secured);
                    let packet = data
                        .as_ref()
                        .and_then(UnverifiedData::payload)
                        .map(|inner| gn.unsecured_packet(&inner));
                    (data, packet)
                }
                Ok(None) => return (its_payload(bytes, framing).ok().map(Cow::Borrowed), None),
                Err(_) => return (None, None),
            },
        };
        let pdu = match unsecured_packet {
            Some(packet) => its_payload(&packet, Framing::GeoNetworking)
                .ok()
                .map(|p| Cow::Owned(p.to_vec())),
            None if self == Self::Secured => data
                .as_ref()
                .and_then(UnverifiedData::payload)
                .map(Cow::Owned),
            None => None,
        };
        (pdu, data)
    }
}

/// The receiver's own state.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReceiverState {
    /// Position (geo for ETSI input, local for VeReMi traces).
    pub position: Position,
    /// Speed, m/s.
    pub speed_mps: Option<f64>,
    /// Heading, degrees.
    pub heading_deg: Option<f64>,
    /// Yaw rate, degrees/s.
    pub yaw_rate_dps: Option<f64>,
}

/// Context of one received message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReceiveContext {
    /// Receive time as Unix nanoseconds (the WIT `received-at`). For JSON beacons the
    /// record's `rcvTime` is used instead (trace time base).
    pub received_at_ns: u64,
    /// The receiver's position and motion, for range, sudden appearance and risk.
    pub receiver: Option<ReceiverState>,
}

/// Accepted or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Plausible.
    Accepted,
    /// Implausible or not verifiable.
    Rejected,
}

/// The result of validating one message (the WIT `validation` record).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    /// Sender station id.
    pub station_id: u32,
    /// Pseudonym the history is keyed on.
    pub pseudonym: u64,
    /// "cam", "denm", "cpm" or "beacon".
    pub message_kind: MessageKind,
    /// generationDeltaTime.
    pub generation_delta_time: u32,
    /// Reported position.
    pub position: Position,
    /// Latitude, degrees (ETSI input; `None` for local positions).
    pub latitude: Option<f64>,
    /// Longitude, degrees.
    pub longitude: Option<f64>,
    /// Speed, m/s.
    pub speed_mps: Option<f64>,
    /// Heading, degrees.
    pub heading_deg: Option<f64>,
    /// Whether the message was signed and passed every security check (signature, chain,
    /// permissions, service permissions, freshness, replay, region).
    pub signed: bool,
    /// Verdict.
    pub verdict: Verdict,
    /// Every check, including skipped ones.
    pub checks: Vec<CheckResult>,
    /// Collision risk against the receiver, when both motions are known.
    pub risk: Option<Risk>,
    /// Weighted / product score of the policy (1.0 for any-fail when all pass).
    pub score: f64,
    /// The CAM Release 2 extension containers the message carried, by ASN.1 name
    /// (`container-<id>` for ids after TS 103 900 V2.3.1); omitted when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cam_extensions: Vec<String>,
    /// What the message said that its signer's service specific permissions do not grant
    /// (the `service_permissions` check failed); omitted when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_permissions: Vec<crate::ssp::Permission>,
    /// Rejected only for the receiver's own failure ([`names::REPLAY_UNVERIFIED`]): without it
    /// the policy would have accepted the message. No misbehaviour report is made for it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rejected_by_receiver: bool,
}

impl Validation {
    /// Names of failed checks.
    #[must_use]
    pub fn failed_checks(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|c| c.failed())
            .map(|c| c.name)
            .collect()
    }
    /// A misbehaviour report (TS 103 759 shape) when rejected for something the sender did:
    /// none when the policy would have accepted the message but for the receiver's own failure
    /// ([`Self::rejected_by_receiver`]).
    #[must_use]
    pub fn report(&self, reporter_id: u32, detection_time_ns: u64) -> Option<MisbehaviourReport> {
        (self.verdict == Verdict::Rejected && !self.rejected_by_receiver).then(|| MisbehaviourReport {
            version: 2,
            reporter_id,
            detection_time_ns,
            reported_station_id: self.station_id,
            reported_pseudonym: self.pseudonym,
            message_kind: self.message_kind,
            generation_delta_time: self.generation_delta_time,
            failed_checks: self.checks.iter().filter(|c| c.failed() && !is_receiver_side(c.name)).copied().collect(),
            evidence: Evidence {
                position: self.position,
                speed_mps: self.speed_mps,
                heading_deg: self.heading_deg,
                missing_permissions: self.missing_permissions.clone(),
            },
        })
    }
}

/// Evidence attached to a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// Reported position.
    pub position: Position,
    /// Reported speed.
    pub speed_mps: Option<f64>,
    /// Reported heading.
    pub heading_deg: Option<f64>,
    /// What the message said without the permission (service specific permissions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_permissions: Vec<crate::ssp::Permission>,
}

/// A misbehaviour report shaped after ETSI TS 103 759 (reporter, reported station, the
/// message, failed detectors, evidence).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MisbehaviourReport {
    /// Report format version.
    pub version: u8,
    /// Reporting station.
    pub reporter_id: u32,
    /// Detection time, Unix ns.
    pub detection_time_ns: u64,
    /// Reported station id.
    pub reported_station_id: u32,
    /// Reported pseudonym.
    pub reported_pseudonym: u64,
    /// Kind of the reported message.
    pub message_kind: MessageKind,
    /// Its generationDeltaTime.
    pub generation_delta_time: u32,
    /// Failed checks with confidences.
    pub failed_checks: Vec<CheckResult>,
    /// Evidence.
    pub evidence: Evidence,
}

/// Validator with its history store `H` and certificate cache `C` (in memory by default;
/// the actor plugs in kv-cache backed implementations with [`Validator::with_stores`]).
#[derive(Debug)]
pub struct Validator<H: HistoryStore = MemoryHistory, C: CertCache = MemoryCertCache> {
    config: Config,
    frame: Option<LocalFrame>,
    road: Option<RoadMap>,
    projected: Option<ProjectedMap>,
    trust: TrustStore,
    history: H,
    certs: C,
    ego: Option<ReceiverState>,
    risk: RiskConfig,
    scratch: Vec<Footprint>,
    disabled: Vec<String>,
}

impl Validator {
    /// A validator with in-memory stores.
    ///
    /// # Errors
    /// [`V2xError::InvalidConfig`] for bad thresholds, map or trust anchors.
    pub fn new(config: Config) -> Result<Self, V2xError> {
        Self::with_stores(config, MemoryHistory::default(), MemoryCertCache::default())
    }

    /// A validator from a TOML configuration (the WIT `configure`).
    ///
    /// # Errors
    /// [`V2xError::InvalidConfig`].
    pub fn from_toml(toml: &str) -> Result<Self, V2xError> {
        Self::new(Config::from_toml(toml)?)
    }
}

/// Whether building a validator checks its trust anchors' self-signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorCheck {
    /// Verify each anchor's self-signature (one ECDSA verification per anchor).
    Verify,
    /// The same anchors were verified before (see [`crate::config::SecurityConfig::anchors_digest`]):
    /// parse them only. For a validator built per message, as on a lattice.
    VerifiedBefore,
}

impl<H: HistoryStore, C: CertCache> Validator<H, C> {
    /// A validator over the given stores.
    ///
    /// # Errors
    /// [`V2xError::InvalidConfig`] for bad thresholds, map or trust anchors.
    pub fn with_stores(config: Config, history: H, certs: C) -> Result<Self, V2xError> {
        Self::with_stores_checking(config, history, certs, AnchorCheck::Verify)
    }

    /// As [`Self::with_stores`], checking the anchors' self-signatures as `anchors` says.
    ///
    /// # Errors
    /// [`V2xError::InvalidConfig`] for bad thresholds, map or trust anchors.
    pub fn with_stores_checking(
        config: Config,
        history: H,
        certs: C,
        anchors: AnchorCheck,
    ) -> Result<Self, V2xError> {
        config.validate()?;
        let mut trust = TrustStore::new();
        trust.check_validity = config.security.check_validity;
        trust.max_chain_depth = config.security.max_chain_depth;
        for a in &config.security.trust_anchors_hex {
            let bytes = hex::decode(a.trim())
                .map_err(|e| V2xError::InvalidConfig(format!("trust anchor hex: {e}")))?;
            match anchors {
                AnchorCheck::Verify => trust.add_anchor(&bytes),
                AnchorCheck::VerifiedBefore => trust.add_anchor_verified_before(&bytes),
            }
            .map_err(|e| V2xError::InvalidConfig(format!("trust anchor: {e}")))?;
        }
        for c in &config.security.ca_certificates_hex {
            let bytes = hex::decode(c.trim())
                .map_err(|e| V2xError::InvalidConfig(format!("CA certificate hex: {e}")))?;
            trust
                .add_known_ca(&bytes)
                .map_err(|e| V2xError::InvalidConfig(format!("CA certificate: {e}")))?;
        }
        let mut v = Self {
            disabled: config.disabled_checks.clone(),
            config,
            frame: None,
            road: None,
            projected: None,
            trust,
            history,
            certs,
            ego: None,
            risk: RiskConfig::default(),
            scratch: Vec::new(),
        };
        if let Some(g) = v.config.map_geojson.clone() {
            v.set_map(RoadMap::from_geojson(&g)?, v.config.map_frame);
        }
        Ok(v)
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Sets the road map (replacing any configured one).
    pub fn set_map(&mut self, map: RoadMap, frame: MapFrame) {
        self.config.map_frame = frame;
        if frame == MapFrame::Wgs84
            && self.frame.is_none()
            && let Some((lon, lat)) = map.first_vertex()
        {
            self.frame = Some(LocalFrame::new(lat, lon));
        }
        self.projected = None;
        self.road = Some(map);
        self.reproject();
    }

    fn reproject(&mut self) {
        if let Some(road) = &self.road {
            let frame = self.frame.unwrap_or_else(|| LocalFrame::new(0.0, 0.0));
            if self.config.map_frame == MapFrame::Local || self.frame.is_some() {
                self.projected = Some(road.project(self.config.map_frame, &frame));
            }
        }
    }

    /// Sets the local frame origin used for geo positions (default: the map's first vertex or
    /// the first geo position seen).
    pub fn set_origin(&mut self, lat: f64, lon: f64) {
        self.frame = Some(LocalFrame::new(lat, lon));
        self.reproject();
    }

    /// Sets the risk configuration.
    pub const fn set_risk_config(&mut self, risk: RiskConfig) {
        self.risk = risk;
    }

    /// The trust store (add anchors or intermediate certificates).
    pub const fn trust_store(&mut self) -> &mut TrustStore {
        &mut self.trust
    }

    /// Adds an (intermediate) certificate, verified against the anchors, to the cache.
    ///
    /// # Errors
    /// [`V2xError::Security`].
    pub fn add_certificate(&mut self, cert: &[u8], now_unix_ns: u64) -> Result<(), V2xError> {
        let now_s = unix_ns_to_its_ms(now_unix_ns) / 1000;
        self.trust.add_certificate(cert, now_s, &mut self.certs)?;
        Ok(())
    }

    /// For a validation whose replay check passed but whose new replay mark the history store
    /// then failed to keep (so a copy could pass later): the replay check becomes skipped and,
    /// with `replay_when_unreadable = "reject"`, [`names::REPLAY_UNVERIFIED`] fails; the
    /// verdict, score and `signed` follow. A store that writes what it is given never needs it.
    pub fn replay_unknown(&self, v: &mut Validation) {
        let Some(i) = v.checks.iter().position(|c| c.name == names::REPLAY && !c.skipped && !c.failed()) else {
            return;
        };
        v.checks[i] = CheckResult::skipped(names::REPLAY);
        if let Some(unverified) = self.replay_unverified() {
            v.checks.insert(i + 1, unverified);
            v.signed = false;
        }
        (v.verdict, v.score, v.rejected_by_receiver) = judge(&self.config.policy, &v.checks);
    }

    /// The failing [`names::REPLAY_UNVERIFIED`] check that goes beside a skipped replay check
    /// whose answer is not known, when the configuration says to reject then.
    fn replay_unverified(&self) -> Option<CheckResult> {
        (self.config.security.replay_when_unreadable == UnreadableReplay::Reject)
            .then(|| CheckResult::ran(names::REPLAY_UNVERIFIED, 0.0))
    }

    /// The history store.
    pub const fn history(&mut self) -> &mut H {
        &mut self.history
    }

    /// Sets the receiver (ego) state used when a context carries none.
    pub const fn set_ego(&mut self, ego: Option<ReceiverState>) {
        self.ego = ego;
    }

    /// Validates one message.
    ///
    /// # Errors
    /// [`V2xError::Decode`], [`V2xError::Unsupported`], [`V2xError::TooLarge`] for inputs that
    /// cannot be decoded; security failures are not errors but failed checks (`signature`,
    /// `secured_freshness`, `replay`, `permission`) with a rejected verdict, unless the secured
    /// envelope itself does not decode.
    pub fn validate(
        &mut self,
        format: MessageFormat,
        payload: &[u8],
        ctx: &ReceiveContext,
    ) -> Result<Validation, V2xError> {
        let limit = self
            .config
            .max_payload
            .unwrap_or(crate::decode::DEFAULT_MAX_PAYLOAD);
        if payload.len() > limit {
            return Err(V2xError::TooLarge(payload.len() as u64));
        }
        let rcv_its_ms = unix_ns_to_its_ms(ctx.received_at_ns);
        match format {
            MessageFormat::Uper | MessageFormat::GeoNetworking | MessageFormat::RadiotapFrame => {
                let framing = format.framing().unwrap_or(Framing::Uper);
                if let Some(gn) = secured_gn(payload, framing)? {
                    return self.validate_secured(gn.secured, Some(&gn), rcv_its_ms, ctx);
                }
                let obs = decode_its(payload, framing, rcv_its_ms)?;
                let mut sec = Vec::new();
                if self.config.security.require_signature {
                    sec.push(CheckResult::ran(names::SIGNATURE, 0.0));
                }
                // an unsigned message cannot show the permissions what it says needs
                if !obs.permissions_needed.is_empty() {
                    sec.push(CheckResult::skipped(names::SERVICE_PERMISSIONS));
                }
                Ok(self.validate_observation(&obs, ms_to_s(rcv_its_ms), ctx.receiver, false, sec))
            }
            MessageFormat::Secured => self.validate_secured(payload, None, rcv_its_ms, ctx),
            MessageFormat::JsonBeacon => {
                let rec = VeremiRecord::parse(payload)?;
                let obs = rec.to_observation()?;
                Ok(self.validate_observation(&obs, rec.rcv_time, ctx.receiver, false, Vec::new()))
            }
        }
    }

    /// Verifies 1609.2 signed data and validates what it carries: a UPER ITS PDU, or (inside
    /// a secured GeoNetworking packet, `gn`) the rest of the GeoNetworking packet.
    fn validate_secured(
        &mut self,
        payload: &[u8],
        gn: Option<&SecuredGn<'_>>,
        rcv_its_ms: u64,
        ctx: &ReceiveContext,
    ) -> Result<Validation, V2xError> {
        let decode_inner = |inner: &[u8]| match gn {
            Some(gn) => decode_its(
                &gn.unsecured_packet(inner),
                Framing::GeoNetworking,
                rcv_its_ms,
            ),
            None => decode_its(inner, Framing::Uper, rcv_its_ms),
        };
        let now_us = rcv_its_ms.saturating_mul(1000);
        match self
            .trust
            .verify_signed_data(payload, now_us, &mut self.certs)
        {
            Ok(d) => {
                let obs = decode_inner(&d.payload)?;
                let mut sec = self.secured_checks(&d, obs.kind, now_us);
                // a CAM or CPM reports where its station is; a DENM reports an event, which may
                // lie outside its sender's region (its generation location is checked instead)
                if matches!(obs.kind, MessageKind::Cam | MessageKind::Cpm) {
                    sec.push(region_check(d.signer_cert.region.as_ref(), &obs.position));
                }
                // special vehicle containers and DENM causes need the signer's SSP
                let missing = crate::ssp::missing(&obs.permissions_needed, &d.signer_cert.app_ssps);
                if matches!(obs.kind, MessageKind::Cam | MessageKind::Denm) {
                    sec.push(CheckResult::ran(names::SERVICE_PERMISSIONS, if missing.is_empty() { 1.0 } else { 0.0 }));
                }
                let signed = sec.iter().all(|c| !c.failed());
                let mut v = self.validate_observation(&obs, ms_to_s(rcv_its_ms), ctx.receiver, signed, sec);
                v.missing_permissions = missing;
                Ok(v)
            }
            Err(SecurityError::Malformed(m)) => Err(V2xError::Decode(format!("1609.2: {m}"))),
            Err(SecurityError::NonCanonical) => {
                Err(V2xError::Decode("1609.2: non-canonical encoding".into()))
            }
            Err(SecurityError::NotSigned) => Err(V2xError::Unsupported(
                "1609.2 content other than signed data".into(),
            )),
            Err(e) => {
                // Not verifiable: still decode the inner message when possible so the verdict
                // and report name the station; otherwise surface the security error. Signed
                // where its certificate is not valid: the signature held, the region did not.
                let region = matches!(e, SecurityError::Region);
                let inner =
                    crate::security::unverified_payload(payload).ok_or(V2xError::Security(e))?;
                let obs = decode_inner(&inner)?;
                let sec = if region {
                    vec![CheckResult::ran(names::SIGNATURE, 1.0), CheckResult::ran(names::CERT_REGION, 0.0)]
                } else {
                    vec![CheckResult::ran(names::SIGNATURE, 0.0)]
                };
                Ok(self.validate_observation(&obs, ms_to_s(rcv_its_ms), ctx.receiver, false, sec))
            }
        }
    }

    fn secured_checks(
        &mut self,
        d: &VerifiedData,
        kind: MessageKind,
        now_us: u64,
    ) -> Vec<CheckResult> {
        let psid_ok = kind.psid() == Some(d.psid);
        let mut out = vec![
            CheckResult::ran(names::SIGNATURE, 1.0),
            CheckResult::ran(names::PERMISSION, if psid_ok { 1.0 } else { 0.0 }),
        ];
        match d.generation_time_us {
            Some(g) => {
                let age_us = i128::from(now_us) - i128::from(g);
                let max_age = i128::from(self.config.security.max_age_ms) * 1000;
                let max_future = i128::from(self.config.security.max_future_ms) * 1000;
                // 1609.2: data past its expiry time is no longer relevant, and an expiry not
                // after the generation time makes it invalid
                let expired = d.expiry_time_us.is_some_and(|e| e <= g || now_us > e);
                let fresh = age_us <= max_age && -age_us <= max_future && !expired;
                out.push(CheckResult::ran(
                    names::SECURED_FRESHNESS,
                    if fresh { 1.0 } else { 0.0 },
                ));
                let key = u64::from_be_bytes(d.signer);
                // fresh messages are at most max_age + max_future apart: every one that could
                // pass freshness is within the window of the newest mark
                let window_us = self.config.security.max_age_ms.saturating_add(self.config.security.max_future_ms).saturating_mul(1000);
                match self.history.replay_marks(key) {
                    Ok(mut marks) => {
                        let replay = marks.is_replay(g, window_us);
                        out.push(CheckResult::ran(
                            names::REPLAY,
                            if replay { 0.0 } else { 1.0 },
                        ));
                        // only a fresh generation time becomes a mark: one signed far in the
                        // future would otherwise push every later message of that signer out
                        // of the window
                        if fresh && !replay {
                            marks.add(g, window_us);
                            self.history.set_replay_marks(key, marks);
                        }
                    }
                    Err(Unreadable) => {
                        out.push(CheckResult::skipped(names::REPLAY));
                        out.extend(self.replay_unverified());
                    }
                }
            }
            None => {
                out.push(CheckResult::ran(names::SECURED_FRESHNESS, 0.0));
                out.push(CheckResult::skipped(names::REPLAY));
            }
        }
        out
    }

    /// Processes one VeReMi trace line: type 2 updates the ego state (returns `None`), type 3
    /// is validated against it.
    ///
    /// # Errors
    /// [`V2xError::Decode`] for invalid lines.
    pub fn process_veremi_line(&mut self, line: &[u8]) -> Result<Option<Validation>, V2xError> {
        let rec = VeremiRecord::parse(line)?;
        self.process_veremi(&rec)
    }

    /// As [`Self::process_veremi_line`] on a parsed record.
    ///
    /// # Errors
    /// [`V2xError::Decode`] for a type 3 record without sender.
    pub fn process_veremi(&mut self, rec: &VeremiRecord) -> Result<Option<Validation>, V2xError> {
        if rec.kind == 2 {
            let (x, y) = rec.xy();
            let spd = match rec.spd.as_slice() {
                [vx, vy, ..] => Some(vx.hypot(*vy)),
                _ => None,
            };
            let hed = match rec.hed.as_slice() {
                [hx, hy, ..] if hx.hypot(*hy) > 1e-9 => {
                    Some(crate::geo::vector_heading(Xy::new(*hx, *hy)))
                }
                _ => None,
            };
            self.ego = Some(ReceiverState {
                position: Position::Local { x, y },
                speed_mps: spd,
                heading_deg: hed,
                yaw_rate_dps: None,
            });
            return Ok(None);
        }
        let obs = rec.to_observation()?;
        Ok(Some(self.validate_observation(
            &obs,
            rec.rcv_time,
            None,
            false,
            Vec::new(),
        )))
    }

    /// Runs the plausibility checks on an observation received at `rcv_s` (same time base as
    /// the observation's generation time), appends `security` results, applies the policy and
    /// updates the history (unless a security check failed: see below).
    pub fn validate_observation(
        &mut self,
        obs: &Observation,
        rcv_s: f64,
        receiver: Option<ReceiverState>,
        signed: bool,
        security: Vec<CheckResult>,
    ) -> Validation {
        if self.frame.is_none()
            && let Position::Geo { lat, lon, .. } = obs.position
            && lat.is_finite()
            && lon.is_finite()
        {
            self.frame = Some(LocalFrame::new(lat, lon));
            self.reproject();
        }
        let frame = self.frame.unwrap_or_else(|| LocalFrame::new(0.0, 0.0));
        let receiver = receiver.or(self.ego);
        let t = &self.config.thresholds;
        let k = Kinematics {
            t_gen: obs.generation_time_s,
            t_rcv: rcv_s,
            pos: obs.position.to_xy(&frame),
            pos_noise: obs.pos_noise_m,
            speed: obs.speed_mps,
            speed_noise: obs.speed_noise_mps,
            heading: obs.heading_deg,
            heading_noise: obs.heading_noise_deg,
            length: obs.length_m.unwrap_or(t.default_length_m),
            width: obs.width_m.unwrap_or(t.default_width_m),
        };
        let rx = receiver.map(|r| r.position.to_xy(&frame));
        let prev = self.history.load(obs.pseudonym, rcv_s);
        let around = Footprint {
            pseudonym: obs.pseudonym,
            generation_s: k.t_gen,
            receive_s: rcv_s,
            pos: k.pos,
            heading_deg: k.heading,
            length_m: k.length,
            width_m: k.width,
        };
        self.scratch.clear();
        let searched =
            self.history
                .nearby(&around, rcv_s - t.intersection_window_s, &mut self.scratch);
        let c = Checks { t };
        let road = self.projected.as_ref().map(|m| m.distance_to_road(k.pos));
        let mut checks = Vec::with_capacity(names::PLAUSIBILITY.len() + security.len());
        let position_valid = k.pos.x.is_finite() && k.pos.y.is_finite();
        checks.push(c.range(&k, rx));
        checks.push(c.sudden_appearance(&k, prev.as_ref(), rx));
        checks.push(c.speed(&k));
        match &prev {
            Some(p) => {
                checks.push(c.position_consistency(&k, p));
                checks.push(c.speed_consistency(&k, p));
                checks.push(c.position_speed(&k, p));
                checks.push(c.position_heading(&k, p));
                checks.push(c.beacon_frequency(&k, p));
            }
            None => {
                for n in [
                    names::POSITION_CONSISTENCY,
                    names::SPEED_CONSISTENCY,
                    names::POSITION_SPEED,
                    names::POSITION_HEADING,
                    names::BEACON_FREQUENCY,
                ] {
                    checks.push(CheckResult::skipped(n));
                }
            }
        }
        checks.push(c.map(&k, road));
        checks.push(c.intersection(&k, obs.pseudonym, &self.scratch, searched));
        checks.push(c.freshness(&k));
        if !position_valid {
            checks.push(CheckResult::ran("position_available", 0.0));
        }
        for ch in &mut checks {
            if self.disabled.iter().any(|d| d == ch.name) {
                *ch = CheckResult::skipped(ch.name);
            }
        }
        // what a message that fails a security check says about its sender is not kept: an
        // unauthenticated message must not move a pseudonym's track or take a place in the
        // neighbour index, or anyone could make an honest sender's next beacon look wrong
        let authentic = security.iter().all(|c| !c.failed());
        checks.extend(security);
        let (verdict, score, rejected_by_receiver) = judge(&self.config.policy, &checks);

        // Risk against the receiver.
        let risk = match (receiver, obs.speed_mps, obs.heading_deg, rx) {
            (Some(r), Some(v), Some(h), Some(rxy)) => {
                let ego = MotionState {
                    pos: rxy,
                    speed_mps: r.speed_mps.unwrap_or(0.0),
                    heading_deg: r.heading_deg.unwrap_or(0.0),
                    yaw_rate_dps: r.yaw_rate_dps.unwrap_or(0.0),
                };
                let remote = MotionState {
                    pos: k.pos,
                    speed_mps: v,
                    heading_deg: h,
                    yaw_rate_dps: obs.yaw_rate_dps.unwrap_or(0.0),
                };
                Some(assess(&ego, &remote, &self.risk))
            }
            _ => None,
        };

        if position_valid && authentic {
            self.history.store(Track {
                pseudonym: obs.pseudonym,
                station_id: obs.station_id,
                last_generation_s: k.t_gen,
                last_receive_s: rcv_s,
                pos: k.pos,
                speed_mps: obs.speed_mps,
                heading_deg: obs.heading_deg,
                length_m: k.length,
                width_m: k.width,
                first_receive_s: prev.as_ref().map_or(rcv_s, |p| p.first_receive_s),
                count: prev.as_ref().map_or(1, |p| p.count + 1),
            });
        }
        let (latitude, longitude) = match obs.position {
            Position::Geo { lat, lon, .. } => (Some(lat), Some(lon)),
            Position::Local { .. } => (None, None),
        };
        Validation {
            station_id: obs.station_id,
            pseudonym: obs.pseudonym,
            message_kind: obs.kind,
            generation_delta_time: obs.generation_delta_time,
            position: obs.position,
            latitude,
            longitude,
            speed_mps: obs.speed_mps,
            heading_deg: obs.heading_deg,
            signed,
            verdict,
            checks,
            risk,
            score,
            cam_extensions: obs
                .cam_extensions
                .iter()
                .map(|&id| {
                    crate::cam_v2::extension_name(id)
                        .map_or_else(|| format!("container-{id}"), str::to_owned)
                })
                .collect(),
            missing_permissions: Vec::new(),
            rejected_by_receiver,
        }
    }
}

/// The reported position against the signing certificate's region: failed outside it, skipped
/// when that cannot be decided (identified regions, a position in a local frame or reported
/// as unavailable); a certificate without a region is valid everywhere.
fn region_check(region: Option<&crate::security::Region>, position: &crate::observation::Position) -> CheckResult {
    let Some(region) = region else {
        return CheckResult::ran(names::CERT_REGION, 1.0);
    };
    let crate::observation::Position::Geo { lat, lon, .. } = *position else {
        return CheckResult::skipped(names::CERT_REGION);
    };
    match region.contains(lat, lon) {
        Some(inside) => CheckResult::ran(names::CERT_REGION, if inside { 1.0 } else { 0.0 }),
        None => CheckResult::skipped(names::CERT_REGION),
    }
}

fn ms_to_s(ms: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let s = ms as f64 / 1000.0;
    s
}

fn is_security(name: &str) -> bool {
    matches!(name, n if n == names::SIGNATURE || n == names::PERMISSION || n == names::SECURED_FRESHNESS || n == names::REPLAY || n == names::REPLAY_UNVERIFIED || n == names::CERT_REGION || n == names::SERVICE_PERMISSIONS)
}

/// A check whose failure is the receiver's (its store failed), not evidence against the sender.
fn is_receiver_side(name: &str) -> bool {
    name == names::REPLAY_UNVERIFIED
}

/// [`apply_policy`], and whether a rejection is the receiver's alone: the checks without the
/// receiver-side ones would be accepted.
fn judge(policy: &VerdictPolicy, checks: &[CheckResult]) -> (Verdict, f64, bool) {
    let (verdict, score) = apply_policy(policy, checks);
    let receiver_only = verdict == Verdict::Rejected
        && checks.iter().any(|c| is_receiver_side(c.name) && c.failed())
        && {
            let senders: Vec<CheckResult> = checks.iter().filter(|c| !is_receiver_side(c.name)).copied().collect();
            apply_policy(policy, &senders).0 == Verdict::Accepted
        };
    (verdict, score, receiver_only)
}

/// Applies a verdict policy; security checks always reject when they fail.
#[must_use]
pub fn apply_policy(policy: &VerdictPolicy, checks: &[CheckResult]) -> (Verdict, f64) {
    let security_failed = checks.iter().any(|c| is_security(c.name) && c.failed());
    let ran = || checks.iter().filter(|c| !c.skipped);
    let (ok, score) = match policy {
        VerdictPolicy::AnyFail => {
            let min = ran().map(|c| f64::from(c.confidence)).fold(1.0, f64::min);
            (ran().all(|c| c.confidence >= 0.5), min)
        }
        VerdictPolicy::Weighted { weights, threshold } => {
            let (mut num, mut den) = (0.0, 0.0);
            for c in ran() {
                let w = weights.get(c.name).copied().unwrap_or(1.0);
                num += w * f64::from(c.confidence);
                den += w;
            }
            let s = if den > 0.0 { num / den } else { 1.0 };
            (s >= *threshold, s)
        }
        VerdictPolicy::Catch {
            thresholds,
            min_product,
        } => {
            let mut product = 1.0;
            let mut each = true;
            for c in ran() {
                let conf = f64::from(c.confidence);
                product *= conf;
                if conf < thresholds.get(c.name).copied().unwrap_or(0.5) {
                    each = false;
                }
            }
            (each && product >= *min_product, product)
        }
    };
    let verdict = if ok && !security_failed {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    };
    (verdict, score)
}
