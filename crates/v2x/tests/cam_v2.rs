//! CAM Release 2 (TS 103 900 V2.3.1): pycrate encodings of the ETSI ASN.1 decode to the values
//! pycrate reads back, re-encode bit for bit, and Release 1 CAMs decode as c-its-parser's own
//! V1.4.1 types read them; malformed Release 2 content gives typed errors.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use c_its_parser::standards::cdd_2_2_1::etsi_its_cdd as cdd;
use edgecell_v2x::V2xError;
use edgecell_v2x::cam_v2::{
    self, Cam, CamExtension, HighFrequencyContainer, LowFrequencyContainer,
    TwoWheelerTypeSpecificInformation,
};
use edgecell_v2x::cdd_v24::{self, LanePositionOptions, PolygonalLine, UsageIndication};
use edgecell_v2x::decode::{Framing, decode_its};
use pycrate::int;
use rasn::types::Enumerated;
use serde_json::{Value, json};

mod pycrate;

const EXPECTED: &str = include_str!("../testdata/pycrate-cam-v2-expected.json");
const V2: [(&str, &[u8]); 7] = [
    (
        "pycrate-cam-v2-a.uper",
        include_bytes!("../testdata/pycrate-cam-v2-a.uper"),
    ),
    (
        "pycrate-cam-v2-b.uper",
        include_bytes!("../testdata/pycrate-cam-v2-b.uper"),
    ),
    (
        "pycrate-cam-v2-c.uper",
        include_bytes!("../testdata/pycrate-cam-v2-c.uper"),
    ),
    (
        "pycrate-cam-v2-d.uper",
        include_bytes!("../testdata/pycrate-cam-v2-d.uper"),
    ),
    // CDD V2.4.1 forms c-its-parser's CDD V2.2.1 types misread (lane position with lateral
    // details) or refuse (usage indication `railroad`, `deltaTimeMidRange`): see cdd_v24
    (
        "pycrate-cam-v2-e.uper",
        include_bytes!("../testdata/pycrate-cam-v2-e.uper"),
    ),
    // e-horizon location sharing (2) and vehicle movement control (6) with every optional
    // component; then the other polygonal line alternatives and values in extension ranges
    (
        "pycrate-cam-v2-f.uper",
        include_bytes!("../testdata/pycrate-cam-v2-f.uper"),
    ),
    (
        "pycrate-cam-v2-g.uper",
        include_bytes!("../testdata/pycrate-cam-v2-g.uper"),
    ),
];
const V1: [&[u8]; 3] = [
    include_bytes!("../testdata/c-its-parser-cam.uper"),
    include_bytes!("../testdata/pycrate-cam-a.uper"),
    include_bytes!("../testdata/pycrate-cam-b.uper"),
];
const RCV_ITS_MS: u64 = 700_000_000_000;

fn expected(name: &str) -> Value {
    pycrate::entry(EXPECTED, name)
}

#[test]
fn release_2_cams_decode_to_what_pycrate_encoded() {
    for (name, bytes) in V2 {
        let e = expected(name);
        assert_eq!(
            hex::encode(bytes),
            e["hex"].as_str().expect("hex"),
            "{name}"
        );
        let (cam, ext) = cam_v2::decode(bytes).expect(name);
        let f = cam_v2::fields(&cam);
        assert_eq!(
            i64::from(f.protocol_version),
            int(&e, "protocol_version"),
            "{name}"
        );
        assert_eq!(i64::from(f.station_id), int(&e, "station_id"), "{name}");
        assert_eq!(i64::from(f.station_type), int(&e, "station_type"), "{name}");
        assert_eq!(
            i64::from(f.generation_delta_time),
            int(&e, "generation_delta_time")
        );
        assert_eq!(i64::from(f.latitude), int(&e, "latitude_e7"), "{name}");
        assert_eq!(i64::from(f.longitude), int(&e, "longitude_e7"), "{name}");
        assert_eq!(i64::from(f.altitude), int(&e, "altitude_cm"), "{name}");
        assert_eq!(i64::from(f.semi_major), int(&e, "semi_major_cm"), "{name}");
        let p = &cam.cam.cam_parameters;
        match &p.high_frequency_container {
            HighFrequencyContainer::BasicVehicle(_) => {
                assert_eq!(e["high_frequency"], "basicVehicleContainerHighFrequency");
                let v = f.vehicle.expect("vehicle");
                assert_eq!(i64::from(v.speed), int(&e, "speed_cms"), "{name}");
                assert_eq!(i64::from(v.heading), int(&e, "heading_ddeg"), "{name}");
                assert_eq!(i64::from(v.length), int(&e, "length_dm"), "{name}");
                assert_eq!(i64::from(v.width), int(&e, "width_dm"), "{name}");
                assert_eq!(i64::from(v.yaw_rate), int(&e, "yaw_rate_cdegs"), "{name}");
                assert_eq!(
                    i64::from(v.long_accel),
                    int(&e, "long_accel_dms2"),
                    "{name}"
                );
            }
            HighFrequencyContainer::Rsu(rsu) => {
                assert_eq!(e["high_frequency"], "rsuContainerHighFrequency");
                let zones = rsu
                    .protected_communication_zones_rsu
                    .as_ref()
                    .expect("zones");
                assert_eq!(zones.0.len(), 1);
                assert!(f.vehicle.is_none());
            }
            _ => panic!("{name}: extension alternative"),
        }
        assert_eq!(
            p.low_frequency_container.is_some(),
            e["low_frequency"].as_bool().expect("lf")
        );
        if let Some(LowFrequencyContainer::BasicVehicle(lf)) = &p.low_frequency_container {
            assert_eq!(
                lf.path_history.0.len() as i64,
                int(&e, "path_history_points")
            );
        }
        assert_eq!(
            p.special_vehicle_container
                .as_ref()
                .map(cam_v2::SpecialVehicleContainer::name),
            e["special_vehicle"].as_str(),
            "{name}"
        );
        let want = e["extensions"].as_array().expect("extensions");
        assert_eq!(ext.len(), want.len(), "{name}");
        for (got, w) in ext.iter().zip(want) {
            assert_eq!(i64::from(got.id()), int(w, "id"), "{name}");
            check_extension(got, w);
        }
        // the types and the extension framing give back pycrate's bits exactly
        assert_eq!(cam_v2::encode(&cam, &ext).expect("encode"), bytes, "{name}");
    }
}

fn check_extension(got: &CamExtension, w: &Value) {
    match got {
        CamExtension::VeryLowFrequency(v) => {
            assert_eq!(
                i64::from(v.vehicle_height.expect("height").0),
                int(w, "vehicle_height")
            );
            assert_eq!(
                i64::from(v.wiper_status.expect("wiper").0),
                int(w, "wiper_status")
            );
            let bits = v.brake_control.as_ref().expect("brake");
            let as_int = bits
                .0
                .iter()
                .fold(0i64, |acc, b| (acc << 1) | i64::from(*b));
            assert_eq!(as_int, w["brake_control"][0].as_i64().expect("bits"));
            assert_eq!(
                bits.0.len() as i64,
                w["brake_control"][1].as_i64().expect("len")
            );
        }
        CamExtension::TwoWheeler(t) => {
            assert_eq!(
                i64::from(t.roll_angle.as_ref().expect("roll").value.0),
                int(w, "roll_angle")
            );
            assert_eq!(
                i64::from(t.orientation.as_ref().expect("orientation").value.0),
                int(w, "orientation")
            );
            let s = t.stability_change_indication.as_ref().expect("stability");
            assert_eq!(i64::from(s.loss_probability.0), int(w, "loss_probability"));
            let Some(TwoWheelerTypeSpecificInformation::Cyclist(c)) = &t.type_specific_information
            else {
                panic!("cyclist")
            };
            assert_eq!(
                i64::from(c.vru_sub_profile_bicyclist.as_ref().expect("profile").0),
                int(w, "sub_profile")
            );
        }
        CamExtension::PathPrediction(p) => {
            let counts: Vec<i64> = p
                .path_predicted_list
                .0
                .iter()
                .map(|pp| pp.path_predicted.0.len() as i64)
                .collect();
            let want: Vec<i64> = w["predicted_points"]
                .as_array()
                .expect("points")
                .iter()
                .filter_map(Value::as_i64)
                .collect();
            assert_eq!(counts, want);
            let usage: Vec<&str> = p
                .path_predicted_list
                .0
                .iter()
                .map(|pp| match pp.usage_indication {
                    UsageIndication::NoIndication => "noIndication",
                    UsageIndication::Railroad => "railroad",
                    other => panic!("{other:?}"),
                })
                .collect();
            let want: Vec<&str> = w["usage"]
                .as_array()
                .expect("usage")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(usage, want);
        }
        CamExtension::GeneralizedLanePositions(g) => {
            assert_eq!(
                g.generalized_lane_positions.0.len() as i64,
                int(w, "lane_positions")
            );
            if let Some(want) = w.get("lateral") {
                let LanePositionOptions::LanePositionWithLateralDetails(l) =
                    &g.generalized_lane_positions.0[0].lane_position_based
                else {
                    panic!("lateral details")
                };
                let got = [
                    i64::from(l.transversal_position.0),
                    i64::from(l.distance_to_left_border.0),
                    i64::from(l.distance_to_right_border.0),
                ];
                let want: Vec<i64> = want
                    .as_array()
                    .expect("lateral")
                    .iter()
                    .filter_map(Value::as_i64)
                    .collect();
                assert_eq!(got.to_vec(), want);
            }
        }
        CamExtension::EHorizonLocationSharing(h) => {
            assert_eq!(w["type"], "EHorizonLocationSharingContainer");
            assert_eq!(polygonal_line(&h.segment_ahead), w["segment_ahead"]);
            assert_eq!(polygonal_line(&h.segment_behind), w["segment_behind"]);
            let nodes = h
                .node_probabilities
                .as_ref()
                .map(|n| n.0.iter().map(|c| c.0).collect::<Vec<_>>());
            assert_eq!(json!(nodes), w["node_probabilities"]);
            let lanes = h.lane_level_details.as_ref().map(|l| {
                l.0.iter()
                    .map(|l| {
                        json!([
                            l.lane_number.0,
                            l.direction.0,
                            l.lane_width.as_ref().map(|w| w.0),
                            l.connecting_lane.as_ref().map(|c| c.0),
                            l.connecting_road_section
                                .as_ref()
                                .map(|r| i64::try_from(&r.0).expect("section")),
                        ])
                    })
                    .collect::<Vec<_>>()
            });
            assert_eq!(json!(lanes), w["lanes"]);
            let source = h.segment_source.as_ref().map(|m| {
                json!({
                    "detection": bits(&m.used_detection_information.0),
                    "stored": bits(&m.used_stored_information.0),
                    "confidence": m.confidence_value.as_ref().map(|c| c.0),
                })
            });
            assert_eq!(json!(source), w["segment_source"]);
        }
        CamExtension::VehicleMovementControl(v) => {
            assert_eq!(w["type"], "VehicleMovementControlContainer");
            let c = &v.vehicle_movement_control;
            assert_eq!(
                i64::from(c.acceleration_pedal_status.pedal_position_value.0),
                int(w, "acceleration_pedal")
            );
            assert_eq!(
                i64::from(c.brake_pedal_status.pedal_position_value.0),
                int(w, "brake_pedal")
            );
            assert_eq!(
                json!(c.sae_automation_level.map(|l| l.0)),
                w["sae_automation_level"]
            );
            assert_eq!(
                json!(c.automation_control.as_ref().map(|b| bits(&b.0))),
                w["automation_control"]
            );
            // c-its-parser's `FixedBitString<7>` is a 7-octet array; the first 7 bits are the value
            assert_eq!(
                json!(c.acceleration_control.as_ref().map(|b| bits(&b.0[..7]))),
                w["acceleration_control"]
            );
            assert_eq!(
                json!(
                    c.acceleration_control_extension
                        .as_ref()
                        .map(|b| bits(&b.0))
                ),
                w["acceleration_control_extension"]
            );
        }
        CamExtension::Opaque { id, .. } => panic!("container {id} left undecoded"),
    }
}

/// A BIT STRING as the generator records it: `[value, length]`.
fn bits(b: &rasn::types::BitStr) -> Value {
    let value = b.iter().fold(0i64, |acc, bit| (acc << 1) | i64::from(*bit));
    json!([value, b.len()])
}

/// A polygonal line as the generator records it: the alternative and one row per point
/// (latitude, longitude[, altitude[, altitude confidence]]).
fn polygonal_line(line: &PolygonalLine) -> Value {
    let points: Vec<Value> = match line {
        PolygonalLine::DeltaPositions(p) => {
            p.0.iter()
                .map(|p| json!([p.delta_latitude.0, p.delta_longitude.0]))
                .collect()
        }
        PolygonalLine::DeltaPositionsWithAltitude(p) => {
            p.0.iter()
                .map(|p| json!([p.delta_latitude.0, p.delta_longitude.0, p.delta_altitude.0]))
                .collect()
        }
        PolygonalLine::AbsolutePositions(p) => {
            p.0.iter()
                .map(|p| json!([p.latitude.0, p.longitude.0]))
                .collect()
        }
        PolygonalLine::AbsolutePositionsWithAltitude(p) => {
            p.0.iter()
                .map(|p| {
                    let confidence = p.altitude.altitude_confidence;
                    let name = cdd::AltitudeConfidence::IDENTIFIERS[confidence.enumeration_index()];
                    json!([
                        p.latitude.0,
                        p.longitude.0,
                        p.altitude.altitude_value.0,
                        name
                    ])
                })
                .collect()
        }
        other => panic!("{other:?}"),
    };
    json!({ "kind": line.name(), "points": points })
}

/// Why `cdd_v24` exists: c-its-parser's CDD V2.2.1 `GeneralizedLanePositions` reads the lane
/// position with lateral details of vector e (transversal 1, borders 100 / 200 cm) as other
/// numbers without an error, and its `PathPredictedList` refuses the `railroad` usage.
#[test]
fn c_its_parser_cdd_2_2_1_misreads_what_cdd_v2_4_1_senders_write() {
    use c_its_parser::standards::cdd_2_2_1::etsi_its_cdd as old;
    let (_, ext) = cam_v2::decode(V2[4].1).expect("e");
    let [
        CamExtension::GeneralizedLanePositions(g),
        CamExtension::PathPrediction(p),
    ] = &ext[..]
    else {
        panic!("{ext:?}")
    };
    let lanes = rasn::uper::encode(&g.generalized_lane_positions).expect("encode");
    let theirs: old::GeneralizedLanePositions =
        rasn::uper::decode(&lanes).expect("decodes, wrongly");
    let old::LanePositionOptions::lanePositionWithLateralDetails(l) =
        &theirs.0[0].lane_position_based
    else {
        panic!("kind")
    };
    assert_ne!(
        (l.distance_to_left_border.0, l.distance_to_right_border.0),
        (100, 200),
        "c-its-parser now orders LanePositionWithLateralDetails as the spec: cdd_v24's copy can go"
    );
    let paths = rasn::uper::encode(&p.path_predicted_list).expect("encode");
    assert!(rasn::uper::decode::<old::PathPredictedList>(&paths).is_err());
}

#[test]
fn release_2_cams_through_decode_its_carry_their_extension_ids() {
    for (name, bytes) in V2 {
        let o = decode_its(bytes, Framing::Uper, RCV_ITS_MS).expect(name);
        let want: Vec<u32> = expected(name)["extensions"]
            .as_array()
            .expect("extensions")
            .iter()
            .map(|w| u32::try_from(int(w, "id")).expect("id"))
            .collect();
        assert_eq!(o.cam_extensions, want, "{name}");
        assert_eq!(i64::from(o.station_id), int(&expected(name), "station_id"));
    }
    let names: Vec<_> = (1..=7).map(cam_v2::extension_name).collect();
    assert_eq!(names[0], Some("twoWheelerContainer"));
    assert_eq!(names[6], None);
}

/// c-its-parser's generated EN 302 637-2 V1.4.1 types and ours read every Release 1 CAM the
/// same way, and ours re-encode it bit for bit.
#[test]
fn release_1_cams_read_the_same_as_c_its_parser_v1_4_1() {
    use c_its_parser::standards::cam_1_4_1::cam_pdu_descriptions as v1;
    for bytes in V1 {
        let old: v1::CAM = rasn::uper::decode(bytes).expect("c-its-parser");
        let (cam, ext) = cam_v2::decode(bytes).expect("cam_v2");
        assert!(ext.is_empty());
        let f = cam_v2::fields(&cam);
        let rp = &old.cam.cam_parameters.basic_container.reference_position;
        assert_eq!(f.station_id, old.header.station_id.0);
        assert_eq!(f.generation_delta_time, old.cam.generation_delta_time.0);
        assert_eq!(
            f.station_type,
            old.cam.cam_parameters.basic_container.station_type.0
        );
        assert_eq!((f.latitude, f.longitude), (rp.latitude.0, rp.longitude.0));
        assert_eq!(f.altitude, rp.altitude.altitude_value.0);
        assert_eq!(
            f.semi_major,
            rp.position_confidence_ellipse.semi_major_confidence.0
        );
        let v1::HighFrequencyContainer::basicVehicleContainerHighFrequency(hf) =
            &old.cam.cam_parameters.high_frequency_container
        else {
            panic!("vehicle")
        };
        let v = f.vehicle.expect("vehicle");
        assert_eq!(v.speed, hf.speed.speed_value.0);
        assert_eq!(v.heading, hf.heading.heading_value.0);
        assert_eq!(v.yaw_rate, hf.yaw_rate.yaw_rate_value.0);
        assert_eq!(
            v.long_accel,
            hf.longitudinal_acceleration
                .longitudinal_acceleration_value
                .0
        );
        assert_eq!(v.length, hf.vehicle_length.vehicle_length_value.0);
        assert_eq!(v.width, hf.vehicle_width.0);
        assert_eq!(
            old.cam.cam_parameters.low_frequency_container.is_some(),
            cam.cam.cam_parameters.low_frequency_container.is_some()
        );
        assert_eq!(cam_v2::encode(&cam, &[]).expect("encode"), bytes);
    }
}

fn reencoded(extensions: &[CamExtension], mutate: impl FnOnce(&mut Cam)) -> Vec<u8> {
    let (mut cam, _) = cam_v2::decode(V2[0].1).expect("a");
    mutate(&mut cam);
    cam_v2::encode(&cam, extensions).expect("encode")
}

fn opaque(id: u32, data: &[u8]) -> CamExtension {
    CamExtension::Opaque {
        id,
        data: data.to_vec(),
    }
}

#[test]
fn a_container_that_does_not_decode_as_its_id_says_is_a_decode_error() {
    // 0xff.. is not a very-low-frequency container (vehicleHeight 1..62 in 6 bits overflows)
    // (Opaque writes any bytes under any id)
    let bytes = reencoded(&[opaque(cam_v2::VERY_LOW_FREQUENCY, &[0xff; 2])], |_| {});
    assert!(
        matches!(cam_v2::decode(&bytes), Err(V2xError::Decode(m)) if m.contains("veryLowFrequencyContainer"))
    );
    let bytes = reencoded(&[opaque(cam_v2::TWO_WHEELER, &[])], |_| {});
    assert!(matches!(cam_v2::decode(&bytes), Err(V2xError::Decode(_))));
    // and the validator reports it as such
    assert!(matches!(
        decode_its(&bytes, Framing::Uper, RCV_ITS_MS),
        Err(V2xError::Decode(_))
    ));
}

#[test]
fn containers_added_after_v2_3_1_are_kept_undecoded() {
    let want = vec![opaque(9, &[1, 2, 3]), opaque(7, &[0x40])];
    let bytes = reencoded(&want, |_| {});
    let (_, ext) = cam_v2::decode(&bytes).expect("decodes");
    assert_eq!(ext, want);
    // ids past the root of (1..16,...) are valid extension values: kept, undecoded
    let (cam, _) = cam_v2::decode(V2[0].1).expect("a");
    let mut bytes = cam_v2::encode(&cam, &[opaque(300, &[0])]).expect("encode");
    assert_eq!(
        cam_v2::decode(&bytes).expect("300").1,
        vec![opaque(300, &[0])]
    );
    // nine containers are over SIZE(1..8) for the encoder
    assert!(cam_v2::encode(&cam, &vec![opaque(9, &[0]); 9]).is_err());
    // a truncated extension part is a decode error
    bytes.pop();
    assert!(matches!(cam_v2::decode(&bytes), Err(V2xError::Decode(_))));
}

/// The e-horizon (2) and vehicle movement control (6) containers of vector f, as their ids
/// and open-type bytes.
fn f_containers() -> Vec<(u32, Vec<u8>)> {
    let (_, ext) = cam_v2::decode(V2[5].1).expect("f");
    ext.iter()
        .map(|e| {
            let data = match e {
                CamExtension::EHorizonLocationSharing(c) => rasn::uper::encode(c),
                CamExtension::VehicleMovementControl(c) => rasn::uper::encode(c),
                other => panic!("{other:?}"),
            };
            (e.id(), data.expect("encode"))
        })
        .collect()
}

#[test]
fn malformed_e_horizon_and_vehicle_movement_control_containers_are_decode_errors() {
    let containers = f_containers();
    assert_eq!(
        containers.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [2, 6]
    );
    for (id, data) in &containers {
        let name = cam_v2::extension_name(*id).expect("name");
        // the bytes as they are decode: the opaque form writes the same message
        let (_, ext) = cam_v2::decode(&reencoded(&[opaque(*id, data)], |_| {})).expect(name);
        assert_eq!(ext[0].id(), *id);
        // every truncation of the container, and none at all, is a decode error naming it
        for n in 0..data.len() {
            let bytes = reencoded(&[opaque(*id, &data[..n])], |_| {});
            assert!(
                matches!(cam_v2::decode(&bytes), Err(V2xError::Decode(m)) if m.contains(name)),
                "{name} cut at {n}"
            );
            assert!(matches!(
                decode_its(&bytes, Framing::Uper, RCV_ITS_MS),
                Err(V2xError::Decode(_))
            ));
        }
        // every single-bit flip gives a container or a decode error, never a panic
        for bit in 0..data.len() * 8 {
            let mut d = data.clone();
            d[bit / 8] ^= 0x80 >> (bit % 8);
            match cam_v2::decode(&reencoded(&[opaque(*id, &d)], |_| {})) {
                Ok((_, ext)) => assert_eq!(ext[0].id(), *id),
                Err(e) => assert!(matches!(e, V2xError::Decode(_)), "{e:?}"),
            }
        }
    }
    // a pedal position of 12 (0..11) and an SAE level of 6 (0..5) are out of range
    let (_, ext) = cam_v2::decode(V2[5].1).expect("f");
    let CamExtension::VehicleMovementControl(mut vmc) = ext[1].clone() else {
        panic!("vmc")
    };
    vmc.vehicle_movement_control.sae_automation_level = Some(cdd_v24::SaeAutomationLevel(6));
    assert!(
        cam_v2::encode(
            &decoded_cam(5),
            &[CamExtension::VehicleMovementControl(vmc)]
        )
        .is_err()
    );
    let bytes = reencoded(&[opaque(cam_v2::VEHICLE_MOVEMENT_CONTROL, &[0xc0])], |_| {});
    assert!(
        matches!(cam_v2::decode(&bytes), Err(V2xError::Decode(m)) if m.contains("vehicleMovementControlContainer"))
    );
}

fn decoded_cam(index: usize) -> Cam {
    cam_v2::decode(V2[index].1).expect("cam").0
}

/// The e-horizon container of vector f changed by `mutate`, written by `encode` (which leaves
/// the constraints PER does not see to the decoder) and decoded.
fn e_horizon_changed(
    mutate: impl FnOnce(&mut cam_v2::EHorizonLocationSharingContainer),
) -> Result<(), V2xError> {
    let (cam, ext) = cam_v2::decode(V2[5].1).expect("f");
    let CamExtension::EHorizonLocationSharing(mut h) = ext[0].clone() else {
        panic!("e-horizon")
    };
    mutate(&mut h);
    let bytes =
        cam_v2::encode(&cam, &[CamExtension::EHorizonLocationSharing(h.clone())]).expect("encode");
    let (_, back) = cam_v2::decode(&bytes)?;
    assert_eq!(back, [CamExtension::EHorizonLocationSharing(h)]);
    Ok(())
}

#[test]
fn e_horizon_constraints_per_does_not_see_are_checked() {
    let refused = |r: Result<(), V2xError>, what: &str| {
        assert!(
            matches!(&r, Err(V2xError::Decode(m)) if m.contains(what)),
            "{r:?}"
        );
    };
    // segmentSource: MetaInformation (WITH COMPONENTS {..., confidenceValue ABSENT})
    let r = e_horizon_changed(|h| {
        let source = h.segment_source.as_mut().expect("source");
        source.confidence_value = Some(cdd::ConfidenceLevel(50));
    });
    refused(r, "confidenceValue");
    // BasicLaneInformation: a connecting road section only with a connecting lane
    let r = e_horizon_changed(|h| {
        let lanes = h.lane_level_details.as_mut().expect("lanes");
        lanes.0[0].connecting_lane = None;
    });
    refused(r, "connectingRoadSection");
    // DeltaPositions SIZE (1..32,...,33..100): 100 points are fine, 101 are not
    let point = cdd_v24::DeltaPosition {
        delta_latitude: cdd::DeltaLatitude(5),
        delta_longitude: cdd::DeltaLongitude(-5),
    };
    let points = |n| PolygonalLine::DeltaPositions(cdd_v24::DeltaPositions(vec![point.clone(); n]));
    e_horizon_changed(|h| h.segment_ahead = points(100)).expect("100 points");
    let r = e_horizon_changed(|h| h.segment_behind = points(101));
    refused(r, "segmentBehind of 101 points");
    // the absolute position lists are SIZE (1..8,...): no bound past the root
    let geo = cdd_v24::GeoPositionWoAltitude {
        latitude: cdd::Latitude(484_000_000),
        longitude: cdd::Longitude(91_000_000),
    };
    e_horizon_changed(|h| {
        h.segment_ahead =
            PolygonalLine::AbsolutePositions(cdd_v24::GeoPositionsWoAltitude(vec![geo; 101]));
    })
    .expect("101 absolute positions");
    // without any optional component
    e_horizon_changed(|h| {
        h.node_probabilities = None;
        h.lane_level_details = None;
        h.segment_source = None;
    })
    .expect("no optional components");
}

/// rasn 0.28.15 writes the length of an extensible SEQUENCE OF outside its root in the root's
/// width; cdd_v24 writes it as X.691 says. Vector g checks two of them against pycrate; the
/// others read back what they wrote, past their roots too.
#[test]
fn extensible_lists_past_their_root_encode_as_x691_says() {
    fn round_trip<T: rasn::Encode + rasn::Decode + PartialEq + std::fmt::Debug>(
        value: &T,
    ) -> Vec<u8> {
        let bytes = rasn::uper::encode(value).expect("encode");
        assert_eq!(&rasn::uper::decode::<T>(&bytes).expect("decode"), value);
        bytes
    }
    let (_, ext) = cam_v2::decode(V2[6].1).expect("g");
    let CamExtension::EHorizonLocationSharing(g) = &ext[1] else {
        panic!("e-horizon")
    };
    let PolygonalLine::DeltaPositionsWithAltitude(ahead) = &g.segment_ahead else {
        panic!("ahead")
    };
    assert_eq!(ahead.0.len(), 33);
    // extension bit, then an 8-bit length of 33
    let bytes = round_trip(ahead);
    assert_eq!((bytes[0], bytes[1] & 0x80), (0x90, 0x80));
    let geo = cdd_v24::GeoPositionWoAltitude {
        latitude: cdd::Latitude(1),
        longitude: cdd::Longitude(2),
    };
    let bytes = round_trip(&cdd_v24::GeoPositionsWoAltitude(vec![geo; 9]));
    assert_eq!(bytes[0], 0x84); // 1, then 0000 1001 for 9
    let (_, f) = cam_v2::decode(V2[5].1).expect("f");
    let CamExtension::EHorizonLocationSharing(f) = &f[0] else {
        panic!("e-horizon")
    };
    let lanes = f
        .lane_level_details
        .as_ref()
        .expect("lanes")
        .0
        .iter()
        .cycle()
        .take(18)
        .cloned()
        .collect();
    assert_eq!(round_trip(&cdd_v24::BasicLaneConfiguration(lanes))[0], 0x89); // 1, then 18
    let (_, a) = cam_v2::decode(V2[0].1).expect("a");
    let CamExtension::PathPrediction(p) = &a[1] else {
        panic!("path prediction")
    };
    let mut list = p.path_predicted_list.clone();
    let points = &list.0[0].path_predicted.0;
    list.0[0].path_predicted.0 = points.iter().cycle().take(20).cloned().collect();
    list.0 = list.0.iter().cycle().take(17).cloned().collect();
    round_trip(&list);
    // inside the root, the derive's encoding
    assert_eq!(
        round_trip(&p.path_predicted_list),
        rasn::uper::encode(&p.path_predicted_list).expect("encode")
    );
}

#[test]
fn a_path_history_over_23_points_is_refused() {
    let bytes = reencoded(&[], |c| {
        let Some(LowFrequencyContainer::BasicVehicle(lf)) =
            &mut c.cam.cam_parameters.low_frequency_container
        else {
            panic!("lf")
        };
        let p = lf.path_history.0[0].clone();
        lf.path_history = cdd::Path(vec![p; 24]);
    });
    assert!(matches!(cam_v2::decode(&bytes), Err(V2xError::Decode(m)) if m.contains("24 points")));
}

#[test]
fn other_messages_versions_and_garbage_are_typed_errors() {
    let denm = include_bytes!("../testdata/c-its-parser-denm.uper");
    assert!(matches!(
        cam_v2::decode(denm),
        Err(V2xError::Unsupported(_))
    ));
    let mut v3 = V2[0].1.to_vec();
    v3[0] = 3;
    assert!(
        matches!(cam_v2::decode(&v3), Err(V2xError::Unsupported(m)) if m.contains("version 3"))
    );
    assert!(matches!(cam_v2::decode(&[]), Err(V2xError::Decode(_))));
    assert!(matches!(cam_v2::decode(&[2]), Err(V2xError::Decode(_))));
    for (name, bytes) in V2 {
        for n in 0..bytes.len() {
            assert!(cam_v2::decode(&bytes[..n]).is_err(), "{name} cut at {n}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.to_vec();
            b[bit / 8] ^= 0x80 >> (bit % 8);
            let _ = cam_v2::decode(&b);
            let _ = decode_its(&b, Framing::Uper, RCV_ITS_MS);
        }
    }
    assert_eq!(cam_v2::peek_station_id(V2[1].1), Some(77));
    assert_eq!(cam_v2::peek_station_id(denm), None);
}
