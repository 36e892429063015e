//! ETSI-ITS-CDD data frames (TS 102 894-2 V2.4.1) that c-its-parser 2.4.2 (CDD V2.2.1) lacks
//! or defines differently. The CAM, DENM and CPM modules import CDD V2.4.1 ("WITH
//! SUCCESSORS"), so [`crate::cam_v2`] and [`crate::denm_v2`] use these instead; a
//! c-its-parser type is used only where its ASN.1, and that of every type it contains, is the
//! same in V2.2.1 and V2.4.1.
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
//! forms, and tests/cam_v2.rs shows c-its-parser's V2.2.1 types misreading it. Comparing the
//! ASN.1 text of everything the CAM's e-horizon location sharing (2) and vehicle movement
//! control (6) containers contain added:
//!
//! - `SensorTypes` gained the named bit `rfid (14)` in V2.3.1. Named bits do not change the
//!   PER encoding of a `SIZE (16,...)` bit string, but the definition differs, so
//!   `SensorTypes` and `MetaInformation` are redefined (and used by the DENM too).
//! - V2.2.1 does not have `PolygonalLine` and its position lists (`DeltaPositions`,
//!   `DeltaReferencePositions`, `GeoPositionsWoAltitude`, `GeoPositionsWAltitude`),
//!   `ConfidenceLevels`, or `VehicleMovementControl` and its data elements.
//!
//! rasn 0.28.15's PER encoder writes the length of a `SEQUENCE OF` whose size lies outside an
//! extensible root (`SIZE (1..32,...)` with 33 elements) in the root's bit width, as if it
//! were inside it, after setting the extension bit; X.691 §20.4 wants the length without the
//! root's bounds there (an 8-bit 33), and rasn's decoder reads it so. The extensible
//! `SEQUENCE OF` types here therefore derive only `Decode` and encode through
//! `encode_sequence_of`; `BasicLaneConfiguration` (the same in V2.2.1) is redefined for that
//! reason alone.

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
    pub confidence: MetaInformation,
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
    pub confidence: MetaInformation,
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
    #[rasn(
        identifier = "altitudeConfidence",
        default = "altitude_confidence_unavailable"
    )]
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
#[derive(AsnType, Debug, Clone, Decode, PartialEq, Eq)]
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

#[derive(AsnType, Debug, Clone, Decode, PartialEq, Eq)]
#[rasn(delegate, size("1..=16", extensible))]
pub struct PathPredictedList(pub SequenceOf<PathPredicted2>);

/// A `SEQUENCE OF` whose size constraint is extensible, encoded as X.691 §20.4 says also when
/// its size lies outside the root (see the module comment); other codecs as rasn does.
fn encode_sequence_of<'b, E: Encoder<'b>, T: Encode>(
    encoder: &mut E,
    tag: Tag,
    values: &[T],
    constraints: Constraints,
    identifier: Identifier,
) -> Result<(), E::Error> {
    let outside_root = constraints
        .size()
        .is_some_and(|s| s.extensible.is_some() && !s.constraint.contains(&values.len()));
    if outside_root && matches!(encoder.codec(), rasn::Codec::Uper | rasn::Codec::Aper) {
        // the extension bit (a PER BOOLEAN is that one bit), then the elements as if the
        // type had no size constraint: a length determinant without the root's bounds
        encoder.encode_bool(Tag::BOOL, true, Identifier::EMPTY)?;
        encoder.encode_sequence_of(tag, values, Constraints::default(), identifier)?;
    } else {
        encoder.encode_sequence_of(tag, values, constraints, identifier)?;
    }
    Ok(())
}

/// `Encode` through `encode_sequence_of` for delegates of an extensible `SEQUENCE OF`.
macro_rules! encode_extensible_sequence_of {
    ($($name:ident),+ $(,)?) => {$(
        impl Encode for $name {
            fn encode_with_tag_and_constraints<'b, E: Encoder<'b>>(
                &self,
                encoder: &mut E,
                tag: Tag,
                constraints: Constraints,
                identifier: Identifier,
            ) -> Result<(), E::Error> {
                encode_sequence_of(encoder, tag, &self.0, constraints, identifier.or(Self::IDENTIFIER))
            }
        }
    )+};
}

encode_extensible_sequence_of!(
    PathPredicted,
    PathPredictedList,
    ConfidenceLevels,
    DeltaPositions,
    DeltaReferencePositions,
    GeoPositionsWoAltitude,
    GeoPositionsWAltitude,
    BasicLaneConfiguration,
);

/// `BasicLaneConfiguration ::= SEQUENCE (SIZE (1..16,...)) OF BasicLaneInformation`, as in
/// V2.2.1; redefined only to encode through `encode_sequence_of`.
#[derive(AsnType, Debug, Clone, Decode, PartialEq, Eq)]
#[rasn(delegate, size("1..=16", extensible))]
pub struct BasicLaneConfiguration(pub SequenceOf<cdd::BasicLaneInformation>);

/// `SensorTypes ::= BIT STRING { undefined (0), … itsAggregation (13), rfid (14) }
/// (SIZE (16,...))`; V2.2.1 lacks `rfid`.
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("16", extensible))]
pub struct SensorTypes(pub BitString);

/// Used with `confidenceValue ABSENT` by the CAM's e-horizon location sharing container
/// (an inner subtype constraint PER does not see; [`crate::cam_v2::decode`] checks it).
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct MetaInformation {
    #[rasn(identifier = "usedDetectionInformation")]
    pub used_detection_information: SensorTypes,
    #[rasn(identifier = "usedStoredInformation")]
    pub used_stored_information: cdd::StoredInformationType,
    #[rasn(identifier = "confidenceValue")]
    pub confidence_value: Option<cdd::ConfidenceLevel>,
}

/// `ConfidenceLevels ::= SEQUENCE (SIZE (1..32,...)) OF ConfidenceLevel`
#[derive(AsnType, Debug, Clone, Decode, PartialEq, Eq)]
#[rasn(delegate, size("1..=32", extensible))]
pub struct ConfidenceLevels(pub SequenceOf<cdd::ConfidenceLevel>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct DeltaPosition {
    #[rasn(identifier = "deltaLatitude")]
    pub delta_latitude: cdd::DeltaLatitude,
    #[rasn(identifier = "deltaLongitude")]
    pub delta_longitude: cdd::DeltaLongitude,
}

/// Most points a `DeltaPositions` or `DeltaReferencePositions` may hold: the extension
/// addition `33..100` of their size constraint, which rasn cannot express; decoders check it.
pub const MAX_DELTA_POSITIONS: usize = 100;

/// `DeltaPositions ::= SEQUENCE (SIZE (1..32,...,33..100)) OF DeltaPosition`
#[derive(AsnType, Debug, Clone, Decode, PartialEq, Eq)]
#[rasn(delegate, size("1..=32", extensible))]
pub struct DeltaPositions(pub SequenceOf<DeltaPosition>);

/// `DeltaReferencePositions ::= SEQUENCE (SIZE (1..32,...,33..100)) OF DeltaReferencePosition`
#[derive(AsnType, Debug, Clone, Decode, PartialEq, Eq)]
#[rasn(delegate, size("1..=32", extensible))]
pub struct DeltaReferencePositions(pub SequenceOf<cdd::DeltaReferencePosition>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct GeoPositionWoAltitude {
    pub latitude: cdd::Latitude,
    pub longitude: cdd::Longitude,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct GeoPositionWAltitude {
    pub latitude: cdd::Latitude,
    pub longitude: cdd::Longitude,
    pub altitude: cdd::Altitude,
}

/// `GeoPositionsWoAltitude ::= SEQUENCE (SIZE (1..8,...)) OF GeoPositionWoAltitude`
#[derive(AsnType, Debug, Clone, Decode, PartialEq, Eq)]
#[rasn(delegate, size("1..=8", extensible))]
pub struct GeoPositionsWoAltitude(pub SequenceOf<GeoPositionWoAltitude>);

/// `GeoPositionsWAltitude ::= SEQUENCE (SIZE (1..8,...)) OF GeoPositionWAltitude`
#[derive(AsnType, Debug, Clone, Decode, PartialEq, Eq)]
#[rasn(delegate, size("1..=8", extensible))]
pub struct GeoPositionsWAltitude(pub SequenceOf<GeoPositionWAltitude>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(choice, automatic_tags)]
#[non_exhaustive]
pub enum PolygonalLine {
    #[rasn(identifier = "deltaPositions")]
    DeltaPositions(DeltaPositions),
    #[rasn(identifier = "deltaPositionsWithAltitude")]
    DeltaPositionsWithAltitude(DeltaReferencePositions),
    #[rasn(identifier = "absolutePositions")]
    AbsolutePositions(GeoPositionsWoAltitude),
    #[rasn(identifier = "absolutePositionsWithAltitude")]
    AbsolutePositionsWithAltitude(GeoPositionsWAltitude),
}

impl PolygonalLine {
    /// The ASN.1 name of the alternative.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::DeltaPositions(_) => "deltaPositions",
            Self::DeltaPositionsWithAltitude(_) => "deltaPositionsWithAltitude",
            Self::AbsolutePositions(_) => "absolutePositions",
            Self::AbsolutePositionsWithAltitude(_) => "absolutePositionsWithAltitude",
        }
    }

    /// The number of points.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::DeltaPositions(p) => p.0.len(),
            Self::DeltaPositionsWithAltitude(p) => p.0.len(),
            Self::AbsolutePositions(p) => p.0.len(),
            Self::AbsolutePositionsWithAltitude(p) => p.0.len(),
        }
    }

    /// No points (which the size constraints of every alternative rule out).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `PedalPositionValue ::= INTEGER { notPressed (0), fullyPressed (10), unavailable (11) } (0..11)`
#[derive(AsnType, Debug, Clone, Copy, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, value("0..=11"))]
pub struct PedalPositionValue(pub u8);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct PedalStatus {
    #[rasn(identifier = "pedalPositionValue")]
    pub pedal_position_value: PedalPositionValue,
}

/// `SaeAutomationLevel ::= INTEGER (0..5)`
#[derive(AsnType, Debug, Clone, Copy, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, value("0..=5"))]
pub struct SaeAutomationLevel(pub u8);

/// `AutomationControl ::= BIT STRING { emergencySteeringSystemEngaged (0), …,
/// emergencyAssistEngaged (5) } (SIZE(6,...))`
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("6", extensible))]
pub struct AutomationControl(pub BitString);

/// `AccelerationControlExtension ::= BIT STRING { rearCrossTrafficAlertEngaged (0),
/// emergencyBrakeRearEngaged (1), assistedParkingLongitudinalEngaged (2) } (SIZE(3,...))`
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("3", extensible))]
pub struct AccelerationControlExtension(pub BitString);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct VehicleMovementControl {
    #[rasn(identifier = "accelerationPedalStatus")]
    pub acceleration_pedal_status: PedalStatus,
    #[rasn(identifier = "brakePedalStatus")]
    pub brake_pedal_status: PedalStatus,
    #[rasn(identifier = "saeAutomationLevel")]
    pub sae_automation_level: Option<SaeAutomationLevel>,
    #[rasn(identifier = "automationControl")]
    pub automation_control: Option<AutomationControl>,
    #[rasn(identifier = "accelerationControl")]
    pub acceleration_control: Option<cdd::AccelerationControl>,
    #[rasn(identifier = "accelerationControlExtension")]
    pub acceleration_control_extension: Option<AccelerationControlExtension>,
}
