//! CPM (ETSI TS 103 324 V2.1.1, `CPM-PDU-Descriptions` and its four container modules) in
//! UPER, on every target.
//!
//! As for [`crate::denm_v2`]: `c-its-parser` has these types only behind its message layer,
//! which does not build for wasm32-wasip2, so the PDU types are defined here over its
//! ETSI-ITS-CDD V2.2.1 data elements and both targets decode CPMs with them. The containers
//! are open types identified by `containerId`; ids 1–5 are decoded and must be valid, ids the
//! V2.1.1 object set does not know are kept as bytes. Cross-checked against c-its-parser's own
//! V2.1.1 types and pycrate (tools/gen_release2_pycrate.py).

#![allow(missing_docs)]

use c_its_parser::standards::cdd_2_2_1::etsi_its_cdd as cdd;
use rasn::prelude::*;

use crate::decode::{check_its_header, uper};
use crate::error::V2xError;

/// ITS message id of a CPM.
pub const MESSAGE_ID: u8 = 14;

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct CollectivePerceptionMessage {
    pub header: cdd::ItsPduHeader,
    pub payload: CpmPayload,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct CpmPayload {
    #[rasn(identifier = "managementContainer")]
    pub management_container: ManagementContainer,
    #[rasn(identifier = "cpmContainers")]
    pub cpm_containers: WrappedCpmContainers,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct ManagementContainer {
    #[rasn(identifier = "referenceTime")]
    pub reference_time: cdd::TimestampIts,
    #[rasn(identifier = "referencePosition")]
    pub reference_position: cdd::ReferencePosition,
    #[rasn(identifier = "segmentationInfo")]
    pub segmentation_info: Option<cdd::MessageSegmentationInfo>,
    #[rasn(identifier = "messageRateRange")]
    pub message_rate_range: Option<MessageRateRange>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct MessageRateRange {
    #[rasn(identifier = "messageRateMin")]
    pub message_rate_min: cdd::MessageRateHz,
    #[rasn(identifier = "messageRateMax")]
    pub message_rate_max: cdd::MessageRateHz,
}

/// `CpmContainerId ::= INTEGER (1..16)`
#[derive(AsnType, Debug, Clone, Copy, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, value("1..=16"))]
pub struct CpmContainerId(pub u8);

/// One container: its id and its encoding (the open type, read as an OCTET STRING: in UPER
/// both are a length determinant and the octets).
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
pub struct WrappedCpmContainer {
    #[rasn(identifier = "containerId")]
    pub container_id: CpmContainerId,
    #[rasn(identifier = "containerData")]
    pub container_data: OctetString,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("1..=8", extensible))]
pub struct WrappedCpmContainers(pub SequenceOf<WrappedCpmContainer>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct OriginatingVehicleContainer {
    #[rasn(identifier = "orientationAngle")]
    pub orientation_angle: cdd::Wgs84Angle,
    #[rasn(identifier = "pitchAngle")]
    pub pitch_angle: Option<cdd::CartesianAngle>,
    #[rasn(identifier = "rollAngle")]
    pub roll_angle: Option<cdd::CartesianAngle>,
    #[rasn(identifier = "trailerDataSet")]
    pub trailer_data_set: Option<TrailerDataSet>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("1..=8", extensible))]
pub struct TrailerDataSet(pub SequenceOf<cdd::TrailerData>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct OriginatingRsuContainer {
    #[rasn(identifier = "mapReference")]
    pub map_reference: Option<cdd::MapReference>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct SensorInformation {
    #[rasn(identifier = "sensorId")]
    pub sensor_id: cdd::Identifier1B,
    #[rasn(identifier = "sensorType")]
    pub sensor_type: cdd::SensorType,
    #[rasn(identifier = "perceptionRegionShape")]
    pub perception_region_shape: Option<cdd::Shape>,
    #[rasn(identifier = "perceptionRegionConfidence")]
    pub perception_region_confidence: Option<cdd::ConfidenceLevel>,
    #[rasn(identifier = "shadowingApplies")]
    pub shadowing_applies: bool,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("1..=128", extensible))]
pub struct SensorInformationContainer(pub SequenceOf<SensorInformation>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct PerceptionRegion {
    #[rasn(identifier = "measurementDeltaTime")]
    pub measurement_delta_time: cdd::DeltaTimeMilliSecondSigned,
    #[rasn(identifier = "perceptionRegionConfidence")]
    pub perception_region_confidence: cdd::ConfidenceLevel,
    #[rasn(identifier = "perceptionRegionShape")]
    pub perception_region_shape: cdd::Shape,
    #[rasn(identifier = "shadowingApplies")]
    pub shadowing_applies: bool,
    #[rasn(identifier = "sensorIdList")]
    pub sensor_id_list: Option<cdd::SequenceOfIdentifier1B>,
    #[rasn(identifier = "numberOfPerceivedObjects")]
    pub number_of_perceived_objects: Option<cdd::CardinalNumber1B>,
    #[rasn(identifier = "perceivedObjectIds")]
    pub perceived_object_ids: Option<PerceivedObjectIds>,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("0..=255", extensible))]
pub struct PerceivedObjectIds(pub SequenceOf<cdd::Identifier2B>);

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("1..=256", extensible))]
pub struct PerceptionRegionContainer(pub SequenceOf<PerceptionRegion>);

/// Every perceived object carries an `objectId` here (an inner-subtype constraint, checked by
/// [`decode`]).
#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(automatic_tags)]
#[non_exhaustive]
pub struct PerceivedObjectContainer {
    #[rasn(identifier = "numberOfPerceivedObjects")]
    pub number_of_perceived_objects: cdd::CardinalNumber1B,
    #[rasn(identifier = "perceivedObjects")]
    pub perceived_objects: PerceivedObjects,
}

#[derive(AsnType, Debug, Clone, Decode, Encode, PartialEq, Eq)]
#[rasn(delegate, size("0..=255", extensible))]
pub struct PerceivedObjects(pub SequenceOf<cdd::PerceivedObject>);

/// A decoded CPM container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpmContainer {
    /// id 1
    OriginatingVehicle(OriginatingVehicleContainer),
    /// id 2
    OriginatingRsu(OriginatingRsuContainer),
    /// id 3
    SensorInformation(SensorInformationContainer),
    /// id 4
    PerceptionRegion(PerceptionRegionContainer),
    /// id 5
    PerceivedObject(PerceivedObjectContainer),
    /// ids 6–16, which the V2.1.1 object set does not define: the bytes, undecoded.
    Other { id: u8, data: Vec<u8> },
}

/// Decodes a CPM (protocol version 2) from UPER bytes without headers, and its containers.
///
/// # Errors
/// [`V2xError::Unsupported`] for another message id or protocol version,
/// [`V2xError::Decode`] for bytes that are not a valid CPM, including containers that do not
/// decode as their id says, both an originating-vehicle and an originating-RSU container,
/// and perceived objects without an object id.
pub fn decode(bytes: &[u8]) -> Result<(CollectivePerceptionMessage, Vec<CpmContainer>), V2xError> {
    check_its_header(bytes, MESSAGE_ID, "CPM", 2..=2, "2 is decoded")?;
    let cpm: CollectivePerceptionMessage = uper(bytes, "CPM message")?;
    let mut containers = Vec::with_capacity(cpm.payload.cpm_containers.0.len());
    for w in &cpm.payload.cpm_containers.0 {
        let data = &w.container_data[..];
        containers.push(match w.container_id.0 {
            1 => CpmContainer::OriginatingVehicle(uper(data, "CPM originatingVehicleContainer")?),
            2 => CpmContainer::OriginatingRsu(uper(data, "CPM originatingRsuContainer")?),
            3 => CpmContainer::SensorInformation(uper(data, "CPM sensorInformationContainer")?),
            4 => CpmContainer::PerceptionRegion(uper(data, "CPM perceptionRegionContainer")?),
            5 => {
                let c: PerceivedObjectContainer = uper(data, "CPM perceivedObjectContainer")?;
                if c.perceived_objects.0.iter().any(|o| o.object_id.is_none()) {
                    return Err(V2xError::Decode(
                        "UPER CPM: a perceived object without objectId".into(),
                    ));
                }
                CpmContainer::PerceivedObject(c)
            }
            id => CpmContainer::Other {
                id,
                data: data.to_vec(),
            },
        });
    }
    let has = |id: u8| {
        cpm.payload
            .cpm_containers
            .0
            .iter()
            .any(|w| w.container_id.0 == id)
    };
    if has(1) && has(2) {
        return Err(V2xError::Decode(
            "UPER CPM: both an originating-vehicle and an originating-RSU container".into(),
        ));
    }
    Ok((cpm, containers))
}
