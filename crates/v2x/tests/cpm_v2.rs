//! CPM (TS 103 324 V2.1.1): pycrate encodings of the ETSI ASN.1 decode with `cpm_v2` to what
//! pycrate and c-its-parser's own V2.1.1 types read, re-encode bit for bit, and malformed
//! CPMs give typed errors.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use edgecell_v2x::V2xError;
use edgecell_v2x::cpm_v2::{self, CpmContainer, CpmContainerId, WrappedCpmContainer};
use edgecell_v2x::decode::{Framing, decode_its};
use edgecell_v2x::observation::{MessageKind, Position};
use pycrate::int;
use serde_json::Value;

mod pycrate;

const EXPECTED: &str = include_str!("../testdata/pycrate-cpm-v2-expected.json");
const PYCRATE: [(&str, &[u8]); 2] = [
    (
        "pycrate-cpm-v2-a.uper",
        include_bytes!("../testdata/pycrate-cpm-v2-a.uper"),
    ),
    (
        "pycrate-cpm-v2-b.uper",
        include_bytes!("../testdata/pycrate-cpm-v2-b.uper"),
    ),
];

fn expected(name: &str) -> Value {
    pycrate::entry(EXPECTED, name)
}

#[test]
fn pycrate_cpms_decode_to_what_pycrate_encoded() {
    for (name, bytes) in PYCRATE {
        let e = expected(name);
        assert_eq!(
            hex::encode(bytes),
            e["hex"].as_str().expect("hex"),
            "{name}"
        );
        let (cpm, containers) = cpm_v2::decode(bytes).expect(name);
        let m = &cpm.payload.management_container;
        assert_eq!(i64::from(cpm.header.station_id.0), int(&e, "station_id"));
        assert_eq!(
            i64::try_from(m.reference_time.0).expect("time"),
            int(&e, "reference_time")
        );
        assert_eq!(
            i64::from(m.reference_position.latitude.0),
            int(&e, "latitude_e7")
        );
        assert_eq!(
            i64::from(m.reference_position.longitude.0),
            int(&e, "longitude_e7")
        );
        let ids: Vec<i64> = cpm
            .payload
            .cpm_containers
            .0
            .iter()
            .map(|w| i64::from(w.container_id.0))
            .collect();
        let want: Vec<i64> = e["container_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        assert_eq!(ids, want, "{name}");
        let objects: Vec<Vec<i64>> = containers
            .iter()
            .filter_map(|c| match c {
                CpmContainer::PerceivedObject(p) => Some(p),
                _ => None,
            })
            .flat_map(|p| p.perceived_objects.0.iter())
            .map(|o| {
                vec![
                    i64::from(o.object_id.as_ref().expect("id").0),
                    i64::from(o.position.x_coordinate.value.0),
                    i64::from(o.position.y_coordinate.value.0),
                ]
            })
            .collect();
        let want: Vec<Vec<i64>> = serde_json::from_value(e["objects"].clone()).expect("objects");
        assert_eq!(objects, want, "{name}");
        assert!(
            !containers
                .iter()
                .any(|c| matches!(c, CpmContainer::Other { .. }))
        );
        assert_eq!(rasn::uper::encode(&cpm).expect("encode"), bytes, "{name}");

        let o = decode_its(bytes, Framing::Uper, 700_000_000_000).expect(name);
        assert_eq!(o.kind, MessageKind::Cpm);
        assert_eq!(
            u64::from(o.generation_delta_time),
            m.reference_time.0 % 65_536
        );
        let Position::Geo { lat, .. } = o.position else {
            panic!("geo")
        };
        assert!((lat - int(&e, "latitude_e7") as f64 * 1e-7).abs() < 1e-12);
    }
}

/// c-its-parser's generated CPM V2.1.1 types read every CPM the same way.
#[test]
fn cpms_read_the_same_as_c_its_parser_v2_1_1() {
    use c_its_parser::standards::cpm_2_1_1::cpm_pdu_descriptions as theirs;
    for (name, bytes) in PYCRATE {
        let old: theirs::CollectivePerceptionMessage =
            rasn::uper::decode(bytes).expect("c-its-parser");
        let (new, _) = cpm_v2::decode(bytes).expect("cpm_v2");
        let (a, b) = (
            &old.payload.management_container,
            &new.payload.management_container,
        );
        assert_eq!(a.reference_time, b.reference_time, "{name}");
        assert_eq!(a.reference_position, b.reference_position, "{name}");
        let theirs: Vec<(u8, Vec<u8>)> = old
            .payload
            .cpm_containers
            .0
            .0
            .iter()
            .map(|w| (w.container_id.0, w.container_data.as_bytes().to_vec()))
            .collect();
        let ours: Vec<(u8, Vec<u8>)> = new
            .payload
            .cpm_containers
            .0
            .iter()
            .map(|w| (w.container_id.0, w.container_data.to_vec()))
            .collect();
        assert_eq!(theirs, ours, "{name}");
    }
}

fn reencoded(mutate: impl FnOnce(&mut cpm_v2::CollectivePerceptionMessage)) -> Vec<u8> {
    let (mut c, _) = cpm_v2::decode(PYCRATE[0].1).expect("a");
    mutate(&mut c);
    rasn::uper::encode(&c).expect("encode")
}

fn wrapped(id: u8, data: Vec<u8>) -> WrappedCpmContainer {
    WrappedCpmContainer {
        container_id: CpmContainerId(id),
        container_data: data.into(),
    }
}

#[test]
fn malformed_containers_are_decode_errors_and_unknown_ids_are_kept() {
    // perceived-object container holding bytes that are not one
    let bytes = reencoded(|c| c.payload.cpm_containers.0.push(wrapped(5, vec![0xff; 3])));
    assert!(
        matches!(cpm_v2::decode(&bytes), Err(V2xError::Decode(m)) if m.contains("perceivedObjectContainer"))
    );
    // an originating-RSU container next to the originating-vehicle one
    let (rsu, _) = cpm_v2::decode(PYCRATE[1].1).expect("b");
    let rsu_container = rsu.payload.cpm_containers.0[0].clone();
    let bytes = reencoded(|c| c.payload.cpm_containers.0.push(rsu_container));
    assert!(matches!(cpm_v2::decode(&bytes), Err(V2xError::Decode(m)) if m.contains("both")));
    // a perceived object without objectId
    let bytes = {
        let (c, containers) = cpm_v2::decode(PYCRATE[0].1).expect("a");
        let Some(CpmContainer::PerceivedObject(mut p)) = containers
            .into_iter()
            .find(|c| matches!(c, CpmContainer::PerceivedObject(_)))
        else {
            panic!("objects")
        };
        p.perceived_objects.0[0].object_id = None;
        let data = rasn::uper::encode(&p).expect("encode");
        let mut c = c;
        c.payload.cpm_containers.0.retain(|w| w.container_id.0 != 5);
        c.payload.cpm_containers.0.push(wrapped(5, data));
        rasn::uper::encode(&c).expect("encode")
    };
    assert!(
        matches!(decode_its(&bytes, Framing::Uper, 0), Err(V2xError::Decode(m)) if m.contains("objectId"))
    );
    // an id the V2.1.1 object set does not define
    let bytes = reencoded(|c| c.payload.cpm_containers.0.push(wrapped(9, vec![1, 2])));
    let (_, containers) = cpm_v2::decode(&bytes).expect("decodes");
    assert_eq!(
        containers.last(),
        Some(&CpmContainer::Other {
            id: 9,
            data: vec![1, 2]
        })
    );
}

#[test]
fn other_versions_truncations_and_bit_flips_are_typed_errors() {
    let mut v1 = PYCRATE[0].1.to_vec();
    v1[0] = 1;
    assert!(
        matches!(cpm_v2::decode(&v1), Err(V2xError::Unsupported(m)) if m.contains("version 1"))
    );
    assert!(matches!(cpm_v2::decode(&[2]), Err(V2xError::Decode(_))));
    for (name, bytes) in PYCRATE {
        for n in 0..bytes.len() {
            assert!(cpm_v2::decode(&bytes[..n]).is_err(), "{name} cut at {n}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.to_vec();
            b[bit / 8] ^= 0x80 >> (bit % 8);
            let _ = decode_its(&b, Framing::Uper, 700_000_000_000);
        }
    }
}
