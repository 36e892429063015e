//! CAM Release 2 (ETSI TS 103 900 V2.3.1, `CAM-PDU-Descriptions` camPduRelease2) in UPER.
//!
//! Release 2 keeps protocol version 2 and the Release 1 (EN 302 637-2 V1.4.1) root
//! unchanged on the wire; what it adds arrives as the extension addition
//! `extensionContainers` of `CamParameters`: up to 8 wrapped containers, each an id and an
//! open type. A Release 1 CAM is therefore a valid Release 2 CAM, and this one decoder reads
//! both, on native targets and inside the component.
//!
//! The data elements come from the ETSI-ITS-CDD V2.2.1 types of `c-its-parser` (which has
//! CAM V1.4.1 only) where V2.4.1 defines them the same, and from [`crate::cdd_v24`] where it
//! does not; the PDU-level types here follow the V2.3.1 module. All six extension containers
//! of V2.3.1 are decoded and checked: two-wheeler (1), e-horizon location sharing (2),
//! very-low-frequency (3, its three data elements defined below), path prediction (4),
//! generalized lane positions (5) and vehicle movement control (6); 2, 4, 5 and 6 use the
//! CDD V2.4.1 frames of [`crate::cdd_v24`] (c-its-parser's V2.2.1 lacks them or its forms
//! misread or refuse V2.4.1 senders). Containers with ids added after V2.3.1 are kept as
//! their open-type bytes, which PER delimits, so they never stop the rest of the message
//! from decoding. Encodings are cross-checked against pycrate compiling the ETSI ASN.1
//! (tools/gen_release2_pycrate.py).

// The derives generate code that triggers pedantic lints we cannot annotate field by field.
#![allow(missing_docs, clippy::module_name_repetitions)]

use c_its_parser::standards::cdd_2_2_1::etsi_its_cdd as cdd;
use rasn::prelude::*;

use crate::cdd_v24;
use crate::decode::{check_its_header, uper};
use crate::error::V2xError;

/// The fields of a CAM the validator uses, in ETSI units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct CamFields {
    pub protocol_version: u8,
    pub station_id: u32,
    pub generation_delta_time: u16,
    pub station_type: u8,
    pub latitude: i32,
    pub longitude: i32,
    pub semi_major: u16,
    pub altitude: i32,
    /// (heading, heading conf, speed, speed conf, length, width, long. accel, yaw rate)
    pub vehicle: Option<VehicleHf>,
}

/// Basic vehicle high-frequency container values (ETSI units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct VehicleHf {
    pub heading: u16,
    pub heading_conf: u8,
    pub speed: u16,
    pub speed_conf: u8,
    pub length: u16,
    pub width: u8,
    pub long_accel: i16,
    pub yaw_rate: i16,
}

/// `CAM ::= SEQUENCE { header ItsPduHeader, cam CamPayload }`, its root: the Release 2
/// extension containers are returned beside it by [`decode`].
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct Cam {
    pub header: cdd::ItsPduHeader,
    pub cam: CamPayload,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct CamPayload {
    #[rasn(identifier = "generationDeltaTime")]
    pub generation_delta_time: cdd::GenerationDeltaTime,
    #[rasn(identifier = "camParameters")]
    pub cam_parameters: CamParameters,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct CamParameters {
    #[rasn(identifier = "basicContainer")]
    pub basic_container: cdd::BasicContainer,
    #[rasn(identifier = "highFrequencyContainer")]
    pub high_frequency_container: HighFrequencyContainer,
    #[rasn(identifier = "lowFrequencyContainer")]
    pub low_frequency_container: Option<LowFrequencyContainer>,
    #[rasn(identifier = "specialVehicleContainer")]
    pub special_vehicle_container: Option<SpecialVehicleContainer>,
    // `..., extensionContainers WrappedExtensionContainers OPTIONAL`: read and written by
    // [`decode`] and [`encode`], see there.
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum HighFrequencyContainer {
    #[rasn(identifier = "basicVehicleContainerHighFrequency")]
    BasicVehicle(BasicVehicleContainerHighFrequency),
    #[rasn(identifier = "rsuContainerHighFrequency")]
    Rsu(RsuContainerHighFrequency),
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum LowFrequencyContainer {
    #[rasn(identifier = "basicVehicleContainerLowFrequency")]
    BasicVehicle(BasicVehicleContainerLowFrequency),
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum SpecialVehicleContainer {
    #[rasn(identifier = "publicTransportContainer")]
    PublicTransport(PublicTransportContainer),
    #[rasn(identifier = "specialTransportContainer")]
    SpecialTransport(SpecialTransportContainer),
    #[rasn(identifier = "dangerousGoodsContainer")]
    DangerousGoods(DangerousGoodsContainer),
    #[rasn(identifier = "roadWorksContainerBasic")]
    RoadWorks(RoadWorksContainerBasic),
    #[rasn(identifier = "rescueContainer")]
    Rescue(RescueContainer),
    #[rasn(identifier = "emergencyContainer")]
    Emergency(EmergencyContainer),
    #[rasn(identifier = "safetyCarContainer")]
    SafetyCar(SafetyCarContainer),
}

impl SpecialVehicleContainer {
    /// The ASN.1 name of the alternative.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::PublicTransport(_) => "publicTransportContainer",
            Self::SpecialTransport(_) => "specialTransportContainer",
            Self::DangerousGoods(_) => "dangerousGoodsContainer",
            Self::RoadWorks(_) => "roadWorksContainerBasic",
            Self::Rescue(_) => "rescueContainer",
            Self::Emergency(_) => "emergencyContainer",
            Self::SafetyCar(_) => "safetyCarContainer",
        }
    }
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct BasicVehicleContainerHighFrequency {
    pub heading: cdd::Heading,
    pub speed: cdd::Speed,
    #[rasn(identifier = "driveDirection")]
    pub drive_direction: cdd::DriveDirection,
    #[rasn(identifier = "vehicleLength")]
    pub vehicle_length: cdd::VehicleLength,
    #[rasn(identifier = "vehicleWidth")]
    pub vehicle_width: cdd::VehicleWidth,
    #[rasn(identifier = "longitudinalAcceleration")]
    pub longitudinal_acceleration: cdd::AccelerationComponent,
    pub curvature: cdd::Curvature,
    #[rasn(identifier = "curvatureCalculationMode")]
    pub curvature_calculation_mode: cdd::CurvatureCalculationMode,
    #[rasn(identifier = "yawRate")]
    pub yaw_rate: cdd::YawRate,
    #[rasn(identifier = "accelerationControl")]
    pub acceleration_control: Option<cdd::AccelerationControl>,
    #[rasn(identifier = "lanePosition")]
    pub lane_position: Option<cdd::LanePosition>,
    #[rasn(identifier = "steeringWheelAngle")]
    pub steering_wheel_angle: Option<cdd::SteeringWheelAngle>,
    #[rasn(identifier = "lateralAcceleration")]
    pub lateral_acceleration: Option<cdd::AccelerationComponent>,
    #[rasn(identifier = "verticalAcceleration")]
    pub vertical_acceleration: Option<cdd::AccelerationComponent>,
    #[rasn(identifier = "performanceClass")]
    pub performance_class: Option<cdd::PerformanceClass>,
    #[rasn(identifier = "cenDsrcTollingZone")]
    pub cen_dsrc_tolling_zone: Option<cdd::CenDsrcTollingZone>,
}

/// `pathHistory` is limited to 23 points by an inner subtype constraint, which PER does not
/// see; [`decode`] checks it.
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct BasicVehicleContainerLowFrequency {
    #[rasn(identifier = "vehicleRole")]
    pub vehicle_role: cdd::VehicleRole,
    #[rasn(identifier = "exteriorLights")]
    pub exterior_lights: cdd::ExteriorLights,
    #[rasn(identifier = "pathHistory")]
    pub path_history: cdd::Path,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct PublicTransportContainer {
    #[rasn(identifier = "embarkationStatus")]
    pub embarkation_status: cdd::EmbarkationStatus,
    #[rasn(identifier = "ptActivation")]
    pub pt_activation: Option<cdd::PtActivation>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct SpecialTransportContainer {
    #[rasn(identifier = "specialTransportType")]
    pub special_transport_type: cdd::SpecialTransportType,
    #[rasn(identifier = "lightBarSirenInUse")]
    pub light_bar_siren_in_use: cdd::LightBarSirenInUse,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct DangerousGoodsContainer {
    #[rasn(identifier = "dangerousGoodsBasic")]
    pub dangerous_goods_basic: cdd::DangerousGoodsBasic,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct RoadWorksContainerBasic {
    #[rasn(identifier = "roadworksSubCauseCode")]
    pub roadworks_sub_cause_code: Option<cdd::RoadworksSubCauseCode>,
    #[rasn(identifier = "lightBarSirenInUse")]
    pub light_bar_siren_in_use: cdd::LightBarSirenInUse,
    #[rasn(identifier = "closedLanes")]
    pub closed_lanes: Option<cdd::ClosedLanes>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct RescueContainer {
    #[rasn(identifier = "lightBarSirenInUse")]
    pub light_bar_siren_in_use: cdd::LightBarSirenInUse,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct EmergencyContainer {
    #[rasn(identifier = "lightBarSirenInUse")]
    pub light_bar_siren_in_use: cdd::LightBarSirenInUse,
    #[rasn(identifier = "incidentIndication")]
    pub incident_indication: Option<cdd::CauseCodeV2>,
    #[rasn(identifier = "emergencyPriority")]
    pub emergency_priority: Option<cdd::EmergencyPriority>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct SafetyCarContainer {
    #[rasn(identifier = "lightBarSirenInUse")]
    pub light_bar_siren_in_use: cdd::LightBarSirenInUse,
    #[rasn(identifier = "incidentIndication")]
    pub incident_indication: Option<cdd::CauseCodeV2>,
    #[rasn(identifier = "trafficRule")]
    pub traffic_rule: Option<cdd::TrafficRule>,
    #[rasn(identifier = "speedLimit")]
    pub speed_limit: Option<cdd::SpeedLimit>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct RsuContainerHighFrequency {
    #[rasn(identifier = "protectedCommunicationZonesRSU")]
    pub protected_communication_zones_rsu: Option<cdd::ProtectedCommunicationZonesRSU>,
}

/// `ExtensionContainerId ::= INTEGER (1..16,...)`
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, value("1..=16", extensible))]
pub struct ExtensionContainerId(pub Integer);

/// One entry of `extensionContainers`: the id and the container as an open type.
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct WrappedExtensionContainer {
    #[rasn(identifier = "containerId")]
    pub container_id: ExtensionContainerId,
    #[rasn(identifier = "containerData")]
    pub container_data: OctetString,
}

/// `WrappedExtensionContainers ::= SEQUENCE SIZE(1..8,...) OF WrappedExtensionContainer`
/// (the open type of `containerData` as an OCTET STRING: in UPER both are a length
/// determinant and the octets)
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("1..=8", extensible))]
pub struct WrappedExtensionContainers(pub SequenceOf<WrappedExtensionContainer>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct TwoWheelerContainer {
    #[rasn(identifier = "typeSpecificInformation")]
    pub type_specific_information: Option<TwoWheelerTypeSpecificInformation>,
    #[rasn(identifier = "rollAngle")]
    pub roll_angle: Option<cdd::CartesianAngle>,
    pub orientation: Option<cdd::Wgs84Angle>,
    #[rasn(identifier = "stabilityChangeIndication")]
    pub stability_change_indication: Option<cdd::StabilityChangeIndication>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum TwoWheelerTypeSpecificInformation {
    #[rasn(identifier = "cyclist")]
    Cyclist(CyclistTypeSpecificInformation),
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct CyclistTypeSpecificInformation {
    #[rasn(identifier = "vruSubProfileBicyclist")]
    pub vru_sub_profile_bicyclist: Option<cdd::VruSubProfileBicyclist>,
    #[rasn(identifier = "vruMovementControl")]
    pub vru_movement_control: Option<cdd::VruMovementControl>,
}

/// `VehicleHeight2 ::= INTEGER (1..62)`, 5 cm steps (61 out of range, 62 unavailable); CDD V2.4.
#[derive(AsnType, Debug, Clone, Copy, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, value("1..=62"))]
pub struct VehicleHeight2(pub u8);

/// `WiperStatus ::= INTEGER (0..7)` (0 unavailable, 1 off, 2 intermittent, 3 low, 4 high); CDD V2.4.
#[derive(AsnType, Debug, Clone, Copy, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, value("0..=7"))]
pub struct WiperStatus(pub u8);

/// `BrakeControl ::= BIT STRING { abs(0), tcs(1), esc(2) } (SIZE(3, ...))`; CDD V2.4.
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("3", extensible))]
pub struct BrakeControl(pub BitString);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct VeryLowFrequencyContainer {
    #[rasn(identifier = "vehicleHeight")]
    pub vehicle_height: Option<VehicleHeight2>,
    #[rasn(identifier = "wiperStatus")]
    pub wiper_status: Option<WiperStatus>,
    #[rasn(identifier = "brakeControl")]
    pub brake_control: Option<BrakeControl>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct PathPredictionContainer {
    #[rasn(identifier = "pathPredictedList")]
    pub path_predicted_list: crate::cdd_v24::PathPredictedList,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct GeneralizedLanePositionsContainer {
    #[rasn(identifier = "generalizedLanePositions")]
    pub generalized_lane_positions: crate::cdd_v24::GeneralizedLanePositions,
}

/// `segmentSource` is `MetaInformation (WITH COMPONENTS {..., confidenceValue ABSENT})` and
/// each `BasicLaneInformation` of `laneLevelDetails` may name a connecting road section only
/// with a connecting lane: inner subtype constraints, which PER does not see; [`decode`]
/// checks them, as it checks that a polygonal line of delta positions has at most
/// [`cdd_v24::MAX_DELTA_POSITIONS`] points (the extension additions of their size constraint).
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct EHorizonLocationSharingContainer {
    #[rasn(identifier = "segmentAhead")]
    pub segment_ahead: cdd_v24::PolygonalLine,
    #[rasn(identifier = "nodeProbabilities")]
    pub node_probabilities: Option<cdd_v24::ConfidenceLevels>,
    #[rasn(identifier = "segmentBehind")]
    pub segment_behind: cdd_v24::PolygonalLine,
    #[rasn(identifier = "laneLevelDetails")]
    pub lane_level_details: Option<cdd_v24::BasicLaneConfiguration>,
    #[rasn(identifier = "segmentSource")]
    pub segment_source: Option<cdd_v24::MetaInformation>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct VehicleMovementControlContainer {
    #[rasn(identifier = "vehicleMovementControl")]
    pub vehicle_movement_control: cdd_v24::VehicleMovementControl,
}

/// A decoded extension container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CamExtension {
    /// id 1
    TwoWheeler(TwoWheelerContainer),
    /// id 2
    EHorizonLocationSharing(EHorizonLocationSharingContainer),
    /// id 3
    VeryLowFrequency(VeryLowFrequencyContainer),
    /// id 4
    PathPrediction(PathPredictionContainer),
    /// id 5
    GeneralizedLanePositions(GeneralizedLanePositionsContainer),
    /// id 6
    VehicleMovementControl(VehicleMovementControlContainer),
    /// ids added after V2.3.1 (7 and up): the open-type bytes, undecoded. [`encode`] writes
    /// the bytes under any id, [`decode`] returns this only for ids it does not know.
    Opaque { id: u32, data: Vec<u8> },
}

impl CamExtension {
    /// The container id.
    #[must_use]
    pub fn id(&self) -> u32 {
        match self {
            Self::TwoWheeler(_) => TWO_WHEELER,
            Self::EHorizonLocationSharing(_) => E_HORIZON_LOCATION_SHARING,
            Self::VeryLowFrequency(_) => VERY_LOW_FREQUENCY,
            Self::PathPrediction(_) => PATH_PREDICTION,
            Self::GeneralizedLanePositions(_) => GENERALIZED_LANE_POSITIONS,
            Self::VehicleMovementControl(_) => VEHICLE_MOVEMENT_CONTROL,
            Self::Opaque { id, .. } => *id,
        }
    }
}

/// Container ids of TS 103 900 V2.3.1.
pub const TWO_WHEELER: u32 = 1;
/// e-horizon location sharing
pub const E_HORIZON_LOCATION_SHARING: u32 = 2;
/// very low frequency
pub const VERY_LOW_FREQUENCY: u32 = 3;
/// path prediction
pub const PATH_PREDICTION: u32 = 4;
/// generalized lane positions
pub const GENERALIZED_LANE_POSITIONS: u32 = 5;
/// vehicle movement control
pub const VEHICLE_MOVEMENT_CONTROL: u32 = 6;

/// The ASN.1 name of an extension container id (`None` for ids after V2.3.1).
#[must_use]
pub fn extension_name(id: u32) -> Option<&'static str> {
    Some(match id {
        TWO_WHEELER => "twoWheelerContainer",
        E_HORIZON_LOCATION_SHARING => "eHorizonLocationSharingContainer",
        VERY_LOW_FREQUENCY => "veryLowFrequencyContainer",
        PATH_PREDICTION => "pathPredictionContainer",
        GENERALIZED_LANE_POSITIONS => "generalizedLanePositionsContainer",
        VEHICLE_MOVEMENT_CONTROL => "vehicleMovementControlContainer",
        _ => return None,
    })
}

/// ITS message id of a CAM.
pub const MESSAGE_ID: u8 = 2;
/// Points a Release 2 low-frequency container's path history may hold.
pub const MAX_PATH_HISTORY: usize = 23;

/// Reads a UPER CAM component by component. rasn 0.28.15 mis-reads (and mis-writes) an open
/// type nested inside a SEQUENCE extension addition — the `containerData` inside
/// `extensionContainers` — while it reads the same bytes correctly at top level, so the
/// root components are decoded one at a time with rasn, and the extension-addition framing
/// (X.691 §19.7–19.9: a presence bitmap, then each addition as an open type) is read here.
struct Reader<'a> {
    bits: &'a rasn::types::BitStr,
    pos: usize,
}

impl Reader<'_> {
    fn bit(&mut self) -> Result<bool, V2xError> {
        let b = self.bits.get(self.pos).map(|b| *b).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn uint(&mut self, n: usize) -> Result<usize, V2xError> {
        let mut v = 0usize;
        for _ in 0..n {
            v = (v << 1) | usize::from(self.bit()?);
        }
        Ok(v)
    }

    fn field<T: Decode>(&mut self, what: &str) -> Result<T, V2xError> {
        let rest = self.bits.get(self.pos..).ok_or_else(truncated)?;
        let mut d =
            rasn::uper::de::Decoder::<0, 0>::new(rest, rasn::uper::de::DecoderOptions::unaligned());
        let v = T::decode(&mut d).map_err(|e| V2xError::Decode(format!("UPER CAM {what}: {e}")))?;
        self.pos += rest.len() - d.input().len();
        Ok(v)
    }

    /// An unfragmented length determinant (X.691 §11.9.3.6–7).
    fn length(&mut self) -> Result<usize, V2xError> {
        if !self.bit()? {
            return self.uint(7);
        }
        if !self.bit()? {
            return self.uint(14);
        }
        Err(V2xError::Unsupported(
            "UPER CAM: fragmented extension (16K octets or more)".into(),
        ))
    }

    /// The open types of a SEQUENCE's present extension additions, by addition index.
    fn extension_additions(&mut self) -> Result<Vec<(usize, Vec<u8>)>, V2xError> {
        // normally small length (X.691 §11.6): the bitmap's size
        let count = if self.bit()? {
            self.length()?
        } else {
            self.uint(6)? + 1
        };
        let mut present = Vec::new();
        for index in 0..count {
            if self.bit()? {
                present.push(index);
            }
        }
        let mut out = Vec::with_capacity(present.len());
        for index in present {
            let len = self.length()?;
            let end = self.pos + len * 8;
            // UPER does not align an open type: copy its bits into fresh octets (a BitVec
            // made with `from_bitslice` would keep the slice's offset into its first octet)
            let slice = self.bits.get(self.pos..end).ok_or_else(truncated)?;
            self.pos = end;
            let mut octets = rasn::types::BitString::with_capacity(len * 8);
            octets.extend_from_bitslice(slice);
            out.push((index, octets.into_vec()));
        }
        Ok(out)
    }
}

fn truncated() -> V2xError {
    V2xError::Decode("UPER CAM: truncated".into())
}

/// Decodes a CAM (Release 1 or 2) from UPER bytes without headers.
///
/// # Errors
/// [`V2xError::Unsupported`] for another message id or protocol version 3 and later,
/// [`V2xError::Decode`] for bytes that are not a valid CAM, including a path history over
/// [`MAX_PATH_HISTORY`] points, extension containers that do not decode as their id says and
/// an e-horizon container outside the constraints PER does not see (see
/// [`EHorizonLocationSharingContainer`]).
pub fn decode(bytes: &[u8]) -> Result<(Cam, Vec<CamExtension>), V2xError> {
    check_its_header(bytes, MESSAGE_ID, "CAM", 1..=2, "1 and 2 are decoded")?;
    let Root {
        cam,
        extension_containers,
        ..
    } = decode_root(bytes)?;
    let mut extensions = Vec::new();
    if let Some(bytes) = extension_containers {
        let wrapped: WrappedExtensionContainers = uper(&bytes, "CAM extensionContainers")?;
        for w in wrapped.0 {
            extensions.push(extension(&w)?);
        }
    }
    Ok((cam, extensions))
}

/// What [`decode_root`] reads: the root, and what [`encode`] needs to append extensions.
struct Root {
    cam: Cam,
    /// The octets of `extensionContainers`, if present.
    extension_containers: Option<Vec<u8>>,
    /// Bit position of `CamParameters`' extension bit.
    extension_bit: usize,
    /// Bit position where the root ends.
    end: usize,
}

fn decode_root(bytes: &[u8]) -> Result<Root, V2xError> {
    let mut r = Reader {
        bits: rasn::types::BitStr::from_slice(bytes),
        pos: 0,
    };
    let header = r.field("header")?;
    let generation_delta_time = r.field("generationDeltaTime")?;
    let extension_bit = r.pos;
    let extended = r.bit()?;
    let (has_lf, has_special) = (r.bit()?, r.bit()?);
    let basic_container = r.field("basicContainer")?;
    let high_frequency_container = r.field("highFrequencyContainer")?;
    let low_frequency_container = if has_lf {
        let lf: LowFrequencyContainer = r.field("lowFrequencyContainer")?;
        let LowFrequencyContainer::BasicVehicle(b) = &lf;
        if b.path_history.0.len() > MAX_PATH_HISTORY {
            return Err(V2xError::Decode(format!(
                "UPER CAM: path history of {} points (at most {MAX_PATH_HISTORY})",
                b.path_history.0.len()
            )));
        }
        Some(lf)
    } else {
        None
    };
    let special_vehicle_container = if has_special {
        Some(r.field("specialVehicleContainer")?)
    } else {
        None
    };
    let root_end = r.pos;
    // index 0 is extensionContainers; later additions (a future release) are skipped
    let extension_containers = if extended {
        r.extension_additions()?
            .into_iter()
            .find_map(|(index, bytes)| (index == 0).then_some(bytes))
    } else {
        None
    };
    let cam = Cam {
        header,
        cam: CamPayload {
            generation_delta_time,
            cam_parameters: CamParameters {
                basic_container,
                high_frequency_container,
                low_frequency_container,
                special_vehicle_container,
            },
        },
    };
    Ok(Root {
        cam,
        extension_containers,
        extension_bit,
        end: root_end,
    })
}

fn extension(w: &WrappedExtensionContainer) -> Result<CamExtension, V2xError> {
    // `(1..16,...)`: ids past the root are valid; past u32 they are not worth keeping
    let id = u32::try_from(&w.container_id.0).map_err(|_| {
        V2xError::Decode(format!(
            "UPER CAM: extension container id {}",
            w.container_id.0
        ))
    })?;
    let data = &w.container_data[..];
    Ok(match id {
        TWO_WHEELER => CamExtension::TwoWheeler(uper(data, "twoWheelerContainer")?),
        E_HORIZON_LOCATION_SHARING => {
            let c = uper(data, "eHorizonLocationSharingContainer")?;
            check_e_horizon(&c)?;
            CamExtension::EHorizonLocationSharing(c)
        }
        VERY_LOW_FREQUENCY => {
            CamExtension::VeryLowFrequency(uper(data, "veryLowFrequencyContainer")?)
        }
        PATH_PREDICTION => CamExtension::PathPrediction(uper(data, "pathPredictionContainer")?),
        GENERALIZED_LANE_POSITIONS => {
            CamExtension::GeneralizedLanePositions(uper(data, "generalizedLanePositionsContainer")?)
        }
        VEHICLE_MOVEMENT_CONTROL => {
            CamExtension::VehicleMovementControl(uper(data, "vehicleMovementControlContainer")?)
        }
        _ => CamExtension::Opaque {
            id,
            data: data.to_vec(),
        },
    })
}

/// The constraints of an e-horizon location sharing container that PER does not see: the
/// extension range `33..100` of the delta position lists and two inner subtype constraints.
fn check_e_horizon(c: &EHorizonLocationSharingContainer) -> Result<(), V2xError> {
    let refuse = |what: String| {
        Err(V2xError::Decode(format!(
            "UPER CAM eHorizonLocationSharingContainer: {what}"
        )))
    };
    for (name, line) in [
        ("segmentAhead", &c.segment_ahead),
        ("segmentBehind", &c.segment_behind),
    ] {
        // `SIZE (1..32,...,33..100)`; the absolute position lists are `SIZE (1..8,...)`
        let delta = matches!(
            line,
            cdd_v24::PolygonalLine::DeltaPositions(_)
                | cdd_v24::PolygonalLine::DeltaPositionsWithAltitude(_)
        );
        if delta && line.len() > cdd_v24::MAX_DELTA_POSITIONS {
            return refuse(format!(
                "{name} of {} points (at most {})",
                line.len(),
                cdd_v24::MAX_DELTA_POSITIONS
            ));
        }
    }
    if c.lane_level_details.as_ref().is_some_and(|lanes| {
        lanes
            .0
            .iter()
            .any(|l| l.connecting_lane.is_none() && l.connecting_road_section.is_some())
    }) {
        return refuse("connectingRoadSection without connectingLane".into());
    }
    if c.segment_source
        .as_ref()
        .is_some_and(|m| m.confidence_value.is_some())
    {
        return refuse("segmentSource with a confidenceValue".into());
    }
    Ok(())
}

/// Encodes a CAM with the given extension containers (none: a Release 1 CAM), the inverse
/// of [`decode`]; used by producers and tests.
///
/// # Errors
/// [`V2xError::Decode`] when a value is outside its PER-visible ASN.1 constraints, or more
/// than 8 containers are given. Constraints PER does not see (a path history's 23 points,
/// those of [`EHorizonLocationSharingContainer`]) are left to [`decode`], so tests and
/// simulators can write such messages.
pub fn encode(cam: &Cam, extensions: &[CamExtension]) -> Result<Vec<u8>, V2xError> {
    let enc = |e: rasn::error::EncodeError| V2xError::Decode(format!("UPER CAM encode: {e}"));
    let root = rasn::uper::encode(cam).map_err(enc)?;
    if extensions.is_empty() {
        return Ok(root);
    }
    if extensions.len() > 8 {
        return Err(V2xError::Decode(
            "UPER CAM encode: more than 8 extension containers".into(),
        ));
    }
    let mut wrapped = Vec::with_capacity(extensions.len());
    for e in extensions {
        let data = match e {
            CamExtension::TwoWheeler(c) => rasn::uper::encode(c),
            CamExtension::EHorizonLocationSharing(c) => rasn::uper::encode(c),
            CamExtension::VeryLowFrequency(c) => rasn::uper::encode(c),
            CamExtension::PathPrediction(c) => rasn::uper::encode(c),
            CamExtension::GeneralizedLanePositions(c) => rasn::uper::encode(c),
            CamExtension::VehicleMovementControl(c) => rasn::uper::encode(c),
            CamExtension::Opaque { data, .. } => Ok(data.clone()),
        }
        .map_err(enc)?;
        wrapped.push(WrappedExtensionContainer {
            container_id: ExtensionContainerId(Integer::from(i64::from(e.id()))),
            container_data: data.into(),
        });
    }
    let open = rasn::uper::encode(&WrappedExtensionContainers(wrapped)).map_err(enc)?;
    let Root {
        extension_bit, end, ..
    } = decode_root(&root)?;
    let mut bits = rasn::types::BitString::from_slice(&root);
    bits.truncate(end);
    bits.set(extension_bit, true);
    let mut push = |value: usize, n: usize| {
        for i in (0..n).rev() {
            bits.push((value >> i) & 1 == 1);
        }
    };
    push(0, 1); // normally small length: one addition in the bitmap
    push(0, 6);
    push(1, 1); // extensionContainers present
    if open.len() < 128 {
        push(open.len(), 8);
    } else if open.len() < 16_384 {
        push(0b10, 2);
        push(open.len(), 14);
    } else {
        return Err(V2xError::Decode(
            "UPER CAM encode: extension containers over 16K octets".into(),
        ));
    }
    for byte in open {
        push(usize::from(byte), 8);
    }
    bits.set_uninitialized(false);
    Ok(bits.into_vec())
}

/// The fields the validator uses, in ETSI units.
#[must_use]
pub fn fields(cam: &Cam) -> CamFields {
    let p = &cam.cam.cam_parameters;
    let rp = &p.basic_container.reference_position;
    let vehicle = match &p.high_frequency_container {
        HighFrequencyContainer::BasicVehicle(hf) => Some(VehicleHf {
            heading: hf.heading.heading_value.0,
            heading_conf: hf.heading.heading_confidence.0,
            speed: hf.speed.speed_value.0,
            speed_conf: hf.speed.speed_confidence.0,
            length: hf.vehicle_length.vehicle_length_value.0,
            width: hf.vehicle_width.0,
            long_accel: hf.longitudinal_acceleration.value.0,
            yaw_rate: hf.yaw_rate.yaw_rate_value.0,
        }),
        _ => None,
    };
    CamFields {
        protocol_version: cam.header.protocol_version.0,
        station_id: cam.header.station_id.0,
        generation_delta_time: cam.cam.generation_delta_time.0,
        station_type: p.basic_container.station_type.0,
        latitude: rp.latitude.0,
        longitude: rp.longitude.0,
        semi_major: rp.position_confidence_ellipse.semi_major_axis_length.0,
        altitude: rp.altitude.altitude_value.0,
        vehicle,
    }
}

/// The sender's station id from the first six bytes of a UPER CAM (the header is octet
/// aligned: version, message id, station id), without decoding the rest.
#[must_use]
pub fn peek_station_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [_, MESSAGE_ID, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}
