//! ETSI-ITS-CDD data frames (TS 102 894-2 V2.4.1) whose c-its-parser 2.4.2 form (CDD V2.2.1)
//! does not read what a V2.4.1 sender writes. The CAM, DENM and CPM modules import CDD V2.4.1
//! ("WITH SUCCESSORS"), so [`crate::cam_v2`] and [`crate::denm_v2`] use these instead:
//!
//! - `LanePositionWithLateralDetails` starts with `COMPONENTS OF LanePositionAndType`
//!   (transversal position, lane type, direction) and then the two border distances;
//!   c-its-parser orders the border distances first. Both have the same bit count, so the
//!   generated type decodes without error into wrong values. Everything that contains it
//!   (`LanePositionOptions`, `GeneralizedLanePosition(s)`, `OccupiedLanesWithConfidence`) is
//!   redefined here.
//! - `UsageIndication` gained the extension values 3–7 (railroad … navigation) and
//!   `PathDeltaTimeChoice` the extension alternative `deltaTimeMidRange`; rasn refuses an
//!   extension value its type does not list, so a valid path prediction using them failed the
//!   whole message. `PathPointPredicted`, `PathPredicted`, `PathPredicted2` and
//!   `PathPredictedList` are redefined around them.
//!
//! Found by comparing the 327 CDD types both versions share and decoding random messages
//! encoded by pycrate from the V2.4.1 ASN.1; testdata/pycrate-cam-v2-e.uper carries both
//! forms, and tests/cam_v2.rs shows c-its-parser's V2.2.1 types misreading it.

#![allow(missing_docs)]

use c_its_parser::standards::cdd_2_2_1::etsi_its_cdd as cdd;
use rasn::prelude::*;

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct LanePositionWithLateralDetails {
    #[rasn(identifier = "transversalPosition")]
    pub transversal_position: cdd::LanePosition,
    #[rasn(identifier = "laneType", default = "lane_type_traffic")]
    pub lane_type: cdd::LaneType,
    #[rasn(default = "direction_same")]
    pub direction: cdd::Direction,
    #[rasn(identifier = "distanceToLeftBorder")]
    pub distance_to_left_border: cdd::StandardLength9b,
    #[rasn(identifier = "distanceToRightBorder")]
    pub distance_to_right_border: cdd::StandardLength9b,
}

/// `LaneType DEFAULT traffic`
fn lane_type_traffic() -> cdd::LaneType {
    cdd::LaneType(0)
}

/// `Direction DEFAULT sameDirection`
fn direction_same() -> cdd::Direction {
    cdd::Direction(0)
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum LanePositionOptions {
    #[rasn(identifier = "simplelanePosition")]
    SimpleLanePosition(cdd::LanePosition),
    #[rasn(identifier = "simpleLaneType")]
    SimpleLaneType(cdd::LaneType),
    #[rasn(identifier = "detailedlanePosition")]
    DetailedLanePosition(cdd::LanePositionAndType),
    #[rasn(identifier = "lanePositionWithLateralDetails")]
    LanePositionWithLateralDetails(LanePositionWithLateralDetails),
    #[rasn(identifier = "trafficIslandPosition")]
    TrafficIslandPosition(cdd::TrafficIslandPosition),
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct GeneralizedLanePosition {
    #[rasn(identifier = "lanePositionBased")]
    pub lane_position_based: LanePositionOptions,
    #[rasn(identifier = "mapBased")]
    pub map_based: Option<cdd::MapPosition>,
    pub confidence: cdd::MetaInformation,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("1..=4"))]
pub struct GeneralizedLanePositions(pub SequenceOf<GeneralizedLanePosition>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct OccupiedLanesWithConfidence {
    #[rasn(identifier = "lanePositionBased", size("1..=4"))]
    pub lane_position_based: SequenceOf<LanePositionOptions>,
    #[rasn(identifier = "mapBased", size("1..=4"))]
    pub map_based: Option<SequenceOf<cdd::MapPosition>>,
    pub confidence: cdd::MetaInformation,
}

#[derive(AsnType, Debug, Clone, Copy, Decode, Encode, PartialEq, Eq)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum UsageIndication {
    #[rasn(identifier = "noIndication")]
    NoIndication = 0,
    #[rasn(identifier = "specialUse")]
    SpecialUse = 1,
    #[rasn(identifier = "rescueOperation")]
    RescueOperation = 2,
    #[rasn(extension_addition, identifier = "railroad")]
    Railroad = 3,
    #[rasn(extension_addition, identifier = "fixedRoute")]
    FixedRoute = 4,
    #[rasn(extension_addition, identifier = "restrictedRoute")]
    RestrictedRoute = 5,
    #[rasn(extension_addition, identifier = "adasAd")]
    AdasAd = 6,
    #[rasn(extension_addition, identifier = "navigation")]
    Navigation = 7,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum PathDeltaTimeChoice {
    #[rasn(identifier = "deltaTimeHighPrecision")]
    HighPrecision(cdd::DeltaTimeTenthOfSecond),
    #[rasn(identifier = "deltaTimeBigRange")]
    BigRange(cdd::DeltaTimeTenSeconds),
    #[rasn(extension_addition, identifier = "deltaTimeMidRange")]
    MidRange(cdd::DeltaTimeSecond),
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct PathPointPredicted {
    #[rasn(identifier = "deltaLatitude")]
    pub delta_latitude: cdd::DeltaLatitude,
    #[rasn(identifier = "deltaLongitude")]
    pub delta_longitude: cdd::DeltaLongitude,
    #[rasn(identifier = "horizontalPositionConfidence")]
    pub horizontal_position_confidence: Option<cdd::PosConfidenceEllipse>,
    #[rasn(identifier = "deltaAltitude", default = "delta_altitude_unavailable")]
    pub delta_altitude: cdd::DeltaAltitude,
    #[rasn(identifier = "altitudeConfidence", default = "altitude_confidence_unavailable")]
    pub altitude_confidence: cdd::AltitudeConfidence,
    #[rasn(identifier = "pathDeltaTime")]
    pub path_delta_time: Option<PathDeltaTimeChoice>,
    #[rasn(identifier = "symmetricAreaOffset")]
    pub symmetric_area_offset: Option<cdd::StandardLength9b>,
    #[rasn(identifier = "asymmetricAreaOffset")]
    pub asymmetric_area_offset: Option<cdd::StandardLength9b>,
}

/// `DeltaAltitude DEFAULT unavailable` (12800)
fn delta_altitude_unavailable() -> cdd::DeltaAltitude {
    cdd::DeltaAltitude(12_800)
}

/// `AltitudeConfidence DEFAULT unavailable`
fn altitude_confidence_unavailable() -> cdd::AltitudeConfidence {
    cdd::AltitudeConfidence::unavailable
}

/// `SEQUENCE (SIZE(1..16,..., 17..40)) OF PathPointPredicted`
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("1..=16", extensible))]
pub struct PathPredicted(pub SequenceOf<PathPointPredicted>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct PathPredicted2 {
    #[rasn(identifier = "pathPredicted")]
    pub path_predicted: PathPredicted,
    #[rasn(identifier = "usageIndication")]
    pub usage_indication: UsageIndication,
    #[rasn(identifier = "confidenceLevel")]
    pub confidence_level: cdd::ConfidenceLevel,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("1..=16", extensible))]
pub struct PathPredictedList(pub SequenceOf<PathPredicted2>);
