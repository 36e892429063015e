//! DENM Release 2 (ETSI TS 103 831 V2.3.1, `DENM-PDU-Description`) in UPER, on every target.
//!
//! `c-its-parser` has DENM V2.2.1, but only behind its message layer, which does not build for
//! wasm32-wasip2 (it assumes wasm-bindgen on every wasm32 target). Its ETSI-ITS-CDD V2.2.1
//! data elements do build there, so the PDU-level types are defined here over them, as for
//! [`crate::cam_v2`], and the validator decodes DENMs with the same code natively and inside
//! the component. The V2.3.1 extension group of the situation container (`eventEndFactor`,
//! `perceivedEvent`) is included; `MultiplicativeFactor` is not in CDD V2.2.1 and is defined
//! below; the CDD V2.4.1 lane-position and path-prediction frames come from
//! [`crate::cdd_v24`]. Cross-checked against pycrate compiling the ETSI ASN.1
//! (tools/gen_release2_pycrate.py) and against c-its-parser's own V2.2.1 types.

#![allow(missing_docs)]

use c_its_parser::standards::cdd_2_2_1::etsi_its_cdd as cdd;
use rasn::prelude::*;

use crate::decode::{check_its_header, uper};
use crate::error::V2xError;

/// ITS message id of a DENM.
pub const MESSAGE_ID: u8 = 1;

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct Denm {
    pub header: cdd::ItsPduHeader,
    pub denm: DenmPayload,
}

/// A termination (cancellation or negation) carries the management container alone; any
/// other DENM has situation and location containers (the payload's inner-subtype constraint,
/// invisible to PER, checked by [`decode`]).
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct DenmPayload {
    pub management: ManagementContainer,
    pub situation: Option<SituationContainer>,
    pub location: Option<LocationContainer>,
    pub alacarte: Option<AlacarteContainer>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct ManagementContainer {
    #[rasn(identifier = "actionId")]
    pub action_id: cdd::ActionId,
    #[rasn(identifier = "detectionTime")]
    pub detection_time: cdd::TimestampIts,
    #[rasn(identifier = "referenceTime")]
    pub reference_time: cdd::TimestampIts,
    pub termination: Option<Termination>,
    #[rasn(identifier = "eventPosition")]
    pub event_position: cdd::ReferencePosition,
    #[rasn(identifier = "awarenessDistance")]
    pub awareness_distance: Option<cdd::StandardLength3b>,
    #[rasn(identifier = "trafficDirection")]
    pub traffic_direction: Option<cdd::TrafficDirection>,
    #[rasn(identifier = "validityDuration", default = "default_validity")]
    pub validity_duration: cdd::DeltaTimeSecond,
    #[rasn(identifier = "transmissionInterval")]
    pub transmission_interval: Option<cdd::DeltaTimeMilliSecondPositive>,
    #[rasn(identifier = "stationType")]
    pub station_type: cdd::StationType,
}

/// `defaultValidity INTEGER ::= 600` (seconds).
fn default_validity() -> cdd::DeltaTimeSecond {
    cdd::DeltaTimeSecond(600)
}

#[derive(AsnType, Debug, Clone, Copy, Decode, Encode, PartialEq, Eq)]
#[rasn(enumerated)]
pub enum Termination {
    #[rasn(identifier = "isCancellation")]
    IsCancellation = 0,
    #[rasn(identifier = "isNegation")]
    IsNegation = 1,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct SituationContainer {
    #[rasn(identifier = "informationQuality")]
    pub information_quality: cdd::InformationQuality,
    #[rasn(identifier = "eventType")]
    pub event_type: cdd::CauseCodeV2,
    #[rasn(identifier = "linkedCause")]
    pub linked_cause: Option<cdd::CauseCodeV2>,
    #[rasn(identifier = "eventZone")]
    pub event_zone: Option<cdd::EventZone>,
    #[rasn(extension_addition_group, identifier = "SEQUENCE")]
    pub minor_version_2: Option<SituationV2>,
    #[rasn(extension_addition_group, identifier = "SEQUENCE")]
    pub minor_version_3: Option<SituationV3>,
}

/// `[[ linkedDenms, eventEnd ]]`, added in V2.2.1.
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct SituationV2 {
    #[rasn(identifier = "linkedDenms")]
    pub linked_denms: Option<cdd::ActionIdList>,
    #[rasn(identifier = "eventEnd")]
    pub event_end: Option<cdd::Position1d>,
}

/// `[[ eventEndFactor, perceivedEvent ]]`, added in V2.3.1.
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct SituationV3 {
    #[rasn(identifier = "eventEndFactor")]
    pub event_end_factor: Option<MultiplicativeFactor>,
    #[rasn(identifier = "perceivedEvent")]
    pub perceived_event: Option<bool>,
}

/// `MultiplicativeFactor ::= ENUMERATED { tenth, half, two, three, five, ten, fifty, hundred, ... }`
/// (CDD V2.4).
#[derive(AsnType, Debug, Clone, Copy, Decode, Encode, PartialEq, Eq)]
#[rasn(enumerated)]
#[non_exhaustive]
pub enum MultiplicativeFactor {
    #[rasn(identifier = "tenth")]
    Tenth = 0,
    #[rasn(identifier = "half")]
    Half = 1,
    #[rasn(identifier = "two")]
    Two = 2,
    #[rasn(identifier = "three")]
    Three = 3,
    #[rasn(identifier = "five")]
    Five = 4,
    #[rasn(identifier = "ten")]
    Ten = 5,
    #[rasn(identifier = "fifty")]
    Fifty = 6,
    #[rasn(identifier = "hundred")]
    Hundred = 7,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct LocationContainer {
    #[rasn(identifier = "eventSpeed")]
    pub event_speed: Option<cdd::Speed>,
    #[rasn(identifier = "eventPositionHeading")]
    pub event_position_heading: Option<cdd::Wgs84Angle>,
    #[rasn(identifier = "detectionZonesToEventPosition")]
    pub detection_zones_to_event_position: cdd::Traces,
    #[rasn(identifier = "roadType")]
    pub road_type: Option<cdd::RoadType>,
    #[rasn(extension_addition_group, identifier = "SEQUENCE")]
    pub minor_version_2: Option<LocationV2>,
}

/// `[[ lanePositions … predictedPaths ]]`, added in V2.2.1.
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct LocationV2 {
    #[rasn(identifier = "lanePositions")]
    pub lane_positions: Option<crate::cdd_v24::GeneralizedLanePositions>,
    #[rasn(identifier = "occupiedLanes")]
    pub occupied_lanes: Option<crate::cdd_v24::OccupiedLanesWithConfidence>,
    #[rasn(identifier = "linkedIvims")]
    pub linked_ivims: Option<cdd::IvimReferences>,
    #[rasn(identifier = "linkedMapems")]
    pub linked_mapems: Option<cdd::MapReferences>,
    #[rasn(identifier = "detectionZonesToSpecifiedEventPoint")]
    pub detection_zones_to_specified_event_point: Option<cdd::TracesExtended>,
    #[rasn(identifier = "predictedPaths")]
    pub predicted_paths: Option<crate::cdd_v24::PathPredictedList>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct ImpactReductionContainer {
    #[rasn(identifier = "heightLonCarrLeft")]
    pub height_lon_carr_left: cdd::HeightLonCarr,
    #[rasn(identifier = "heightLonCarrRight")]
    pub height_lon_carr_right: cdd::HeightLonCarr,
    #[rasn(identifier = "posLonCarrLeft")]
    pub pos_lon_carr_left: cdd::PosLonCarr,
    #[rasn(identifier = "posLonCarrRight")]
    pub pos_lon_carr_right: cdd::PosLonCarr,
    #[rasn(identifier = "positionOfPillars")]
    pub position_of_pillars: cdd::PositionOfPillars,
    #[rasn(identifier = "posCentMass")]
    pub pos_cent_mass: cdd::PosCentMass,
    #[rasn(identifier = "wheelBaseVehicle")]
    pub wheel_base_vehicle: cdd::WheelBaseVehicle,
    #[rasn(identifier = "turningRadius")]
    pub turning_radius: cdd::TurningRadius,
    #[rasn(identifier = "posFrontAx")]
    pub pos_front_ax: cdd::PosFrontAx,
    #[rasn(identifier = "positionOfOccupants")]
    pub position_of_occupants: cdd::PositionOfOccupants,
    #[rasn(identifier = "vehicleMass")]
    pub vehicle_mass: cdd::VehicleMass,
    #[rasn(identifier = "requestResponseIndication")]
    pub request_response_indication: cdd::RequestResponseIndication,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct PreCrashContainer {
    #[rasn(identifier = "perceivedPreCrashObject")]
    pub perceived_pre_crash_object: cdd::PerceivedObject,
    #[rasn(identifier = "objectStationId")]
    pub object_station_id: Option<cdd::StationId>,
    #[rasn(identifier = "timeToCollision")]
    pub time_to_collision: Option<cdd::DeltaTimeMilliSecondPositive>,
    #[rasn(identifier = "impactSection")]
    pub impact_section: Option<cdd::ObjectFace>,
    #[rasn(identifier = "estimatedBrakingDistance")]
    pub estimated_braking_distance: Option<cdd::StandardLength12b>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct RoadConfigurationContainer {
    #[rasn(identifier = "roadConfigurationConfidence")]
    pub road_configuration_confidence: crate::cdd_v24::MetaInformation,
    #[rasn(identifier = "roadConfigurationSectionList")]
    pub road_configuration_section_list: cdd::RoadConfigurationSectionList,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct RoadWorksContainerExtended {
    #[rasn(identifier = "lightBarSirenInUse")]
    pub light_bar_siren_in_use: Option<cdd::LightBarSirenInUse>,
    #[rasn(identifier = "closedLanes")]
    pub closed_lanes: Option<cdd::ClosedLanes>,
    pub restriction: Option<cdd::RestrictedTypes>,
    #[rasn(identifier = "speedLimit")]
    pub speed_limit: Option<cdd::SpeedLimit>,
    #[rasn(identifier = "incidentIndication")]
    pub incident_indication: Option<cdd::CauseCodeV2>,
    #[rasn(identifier = "recommendedPath")]
    pub recommended_path: Option<cdd::ItineraryPath>,
    #[rasn(identifier = "startingPointSpeedLimit")]
    pub starting_point_speed_limit: Option<cdd::DeltaReferencePosition>,
    #[rasn(identifier = "trafficFlowRule")]
    pub traffic_flow_rule: Option<cdd::TrafficRule>,
    #[rasn(identifier = "referenceDenms")]
    pub reference_denms: Option<cdd::ActionIdList>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct StationaryVehicleContainer {
    #[rasn(identifier = "stationarySince")]
    pub stationary_since: Option<cdd::StationarySince>,
    #[rasn(identifier = "stationaryCause")]
    pub stationary_cause: Option<cdd::CauseCodeV2>,
    #[rasn(identifier = "carryingDangerousGoods")]
    pub carrying_dangerous_goods: Option<cdd::DangerousGoodsExtended>,
    #[rasn(identifier = "numberOfOccupants")]
    pub number_of_occupants: Option<cdd::NumberOfOccupants>,
    #[rasn(identifier = "vehicleIdentification")]
    pub vehicle_identification: Option<cdd::VehicleIdentification>,
    #[rasn(identifier = "energyStorageType")]
    pub energy_storage_type: Option<cdd::EnergyStorageType>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct AlacarteContainer {
    #[rasn(identifier = "lanePosition")]
    pub lane_position: Option<cdd::LanePosition>,
    #[rasn(identifier = "impactReduction")]
    pub impact_reduction: Option<ImpactReductionContainer>,
    #[rasn(identifier = "externalTemperature")]
    pub external_temperature: Option<cdd::Temperature>,
    #[rasn(identifier = "roadWorks")]
    pub road_works: Option<RoadWorksContainerExtended>,
    #[rasn(identifier = "positioningSolution")]
    pub positioning_solution: Option<cdd::PositioningSolutionType>,
    #[rasn(identifier = "stationaryVehicle")]
    pub stationary_vehicle: Option<StationaryVehicleContainer>,
    #[rasn(extension_addition_group, identifier = "SEQUENCE")]
    pub minor_version_2: Option<AlacarteV2>,
}

/// `[[ roadConfiguration, preCrash ]]`, added in V2.2.1.
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct AlacarteV2 {
    #[rasn(identifier = "roadConfiguration")]
    pub road_configuration: Option<RoadConfigurationContainer>,
    #[rasn(identifier = "preCrash")]
    pub pre_crash: Option<PreCrashContainer>,
}

/// Decodes a DENM (protocol version 2) from UPER bytes without headers.
///
/// # Errors
/// [`V2xError::Unsupported`] for another message id or protocol version,
/// [`V2xError::Decode`] for bytes that are not a valid DENM, including a termination DENM
/// with situation, location or à-la-carte containers and a non-termination DENM without
/// situation or location.
pub fn decode(bytes: &[u8]) -> Result<Denm, V2xError> {
    check_its_header(bytes, MESSAGE_ID, "DENM", 2..=2, "2 is decoded")?;
    let denm: Denm = uper(bytes, "DENM")?;
    let p = &denm.denm;
    let shape_ok = if p.management.termination.is_some() {
        p.situation.is_none() && p.location.is_none() && p.alacarte.is_none()
    } else {
        p.situation.is_some() && p.location.is_some()
    };
    if !shape_ok {
        return Err(V2xError::Decode(
            "UPER DENM: a termination carries only the management container, any other DENM \
             needs situation and location"
                .into(),
        ));
    }
    Ok(denm)
}
