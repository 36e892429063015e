//! DENM (TS 103 831): pycrate encodings of the ETSI V2.3.1 ASN.1 and c-its-parser's real DENM
//! decode with `denm_v2` to what pycrate and c-its-parser's own V2.2.1 types read, re-encode
//! bit for bit, and malformed DENMs give typed errors.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use edgecell_v2x::V2xError;
use edgecell_v2x::decode::{Framing, decode_its};
use edgecell_v2x::denm_v2::{self, Termination};
use edgecell_v2x::observation::{MessageKind, Position};
use pycrate::int;
use serde_json::Value;

mod pycrate;

const EXPECTED: &str = include_str!("../testdata/pycrate-denm-v2-expected.json");
const PYCRATE: [(&str, &[u8]); 3] = [
    (
        "pycrate-denm-v2-a.uper",
        include_bytes!("../testdata/pycrate-denm-v2-a.uper"),
    ),
    (
        "pycrate-denm-v2-b.uper",
        include_bytes!("../testdata/pycrate-denm-v2-b.uper"),
    ),
    (
        "pycrate-denm-v2-c.uper",
        include_bytes!("../testdata/pycrate-denm-v2-c.uper"),
    ),
];
const REAL: &[u8] = include_bytes!("../testdata/c-its-parser-denm.uper");

fn expected(name: &str) -> Value {
    pycrate::entry(EXPECTED, name)
}

#[test]
fn pycrate_denms_decode_to_what_pycrate_encoded() {
    for (name, bytes) in PYCRATE {
        let e = expected(name);
        assert_eq!(
            hex::encode(bytes),
            e["hex"].as_str().expect("hex"),
            "{name}"
        );
        let d = denm_v2::decode(bytes).expect(name);
        let m = &d.denm.management;
        let p = &m.event_position;
        assert_eq!(
            i64::from(d.header.station_id.0),
            int(&e, "station_id"),
            "{name}"
        );
        assert_eq!(
            i64::try_from(m.reference_time.0).expect("time"),
            int(&e, "reference_time")
        );
        assert_eq!(i64::from(p.latitude.0), int(&e, "latitude_e7"), "{name}");
        assert_eq!(i64::from(p.longitude.0), int(&e, "longitude_e7"), "{name}");
        assert_eq!(
            i64::from(p.altitude.altitude_value.0),
            int(&e, "altitude_cm"),
            "{name}"
        );
        assert_eq!(
            i64::from(p.position_confidence_ellipse.semi_major_confidence.0),
            int(&e, "semi_major_cm")
        );
        let termination = m.termination.map(|t| match t {
            Termination::IsCancellation => "isCancellation",
            Termination::IsNegation => "isNegation",
        });
        assert_eq!(termination, e["termination"].as_str(), "{name}");
        assert_eq!(
            d.denm.situation.is_some(),
            e["situation"].as_bool().expect("situation")
        );
        let linked = d
            .denm
            .situation
            .as_ref()
            .and_then(|s| s.minor_version_2.as_ref())
            .and_then(|g| g.linked_denms.as_ref())
            .map_or(0, |l| l.0.len() as i64);
        assert_eq!(linked, int(&e, "linked_denms"), "{name}");
        assert_eq!(
            d.denm.alacarte.is_some(),
            e["alacarte"].as_bool().expect("alacarte")
        );
        // validityDuration absent on the wire reads as its default
        assert_eq!(m.validity_duration.0, 600);
        assert_eq!(rasn::uper::encode(&d).expect("encode"), bytes, "{name}");

        let o = decode_its(bytes, Framing::Uper, 700_000_000_000).expect(name);
        assert_eq!(o.kind, MessageKind::Denm);
        assert_eq!(
            u64::from(o.generation_delta_time),
            m.reference_time.0 % 65_536
        );
        let Position::Geo { lat, lon, .. } = o.position else {
            panic!("geo")
        };
        assert!((lat - int(&e, "latitude_e7") as f64 * 1e-7).abs() < 1e-12);
        assert!((lon - int(&e, "longitude_e7") as f64 * 1e-7).abs() < 1e-12);
    }
}

/// c-its-parser's generated DENM V2.2.1 types read every DENM the same way.
#[test]
fn denms_read_the_same_as_c_its_parser_v2_2_1() {
    use c_its_parser::standards::denm_2_2_1::denm_pdu_description as theirs;
    for bytes in PYCRATE.iter().map(|(_, b)| *b).chain([REAL]) {
        let old: theirs::DENM = rasn::uper::decode(bytes).expect("c-its-parser");
        let new = denm_v2::decode(bytes).expect("denm_v2");
        let (a, b) = (&old.denm.management, &new.denm.management);
        assert_eq!(old.header.station_id.0, new.header.station_id.0);
        assert_eq!(a.action_id, b.action_id);
        assert_eq!(a.reference_time, b.reference_time);
        assert_eq!(a.detection_time, b.detection_time);
        assert_eq!(a.event_position, b.event_position);
        assert_eq!(a.validity_duration, b.validity_duration);
        assert_eq!(a.station_type, b.station_type);
        assert_eq!(a.termination.is_some(), b.termination.is_some());
        assert_eq!(old.denm.situation.is_some(), new.denm.situation.is_some());
        assert_eq!(old.denm.location.is_some(), new.denm.location.is_some());
        assert_eq!(old.denm.alacarte.is_some(), new.denm.alacarte.is_some());
        if let (Some(x), Some(y)) = (&old.denm.situation, &new.denm.situation) {
            assert_eq!(x.event_type, y.event_type);
            assert_eq!(x.information_quality, y.information_quality);
        }
        assert_eq!(rasn::uper::encode(&new).expect("encode"), bytes);
    }
}

fn reencoded(name: usize, mutate: impl FnOnce(&mut denm_v2::Denm)) -> Vec<u8> {
    let mut d = denm_v2::decode(PYCRATE[name].1).expect("decodes");
    mutate(&mut d);
    rasn::uper::encode(&d).expect("encode")
}

#[test]
fn a_termination_with_a_situation_or_an_event_without_location_is_refused() {
    let bytes = reencoded(0, |d| {
        d.denm.management.termination = Some(Termination::IsNegation);
    });
    assert!(
        matches!(denm_v2::decode(&bytes), Err(V2xError::Decode(m)) if m.contains("termination"))
    );
    let bytes = reencoded(0, |d| d.denm.location = None);
    assert!(matches!(denm_v2::decode(&bytes), Err(V2xError::Decode(_))));
    let bytes = reencoded(2, |d| d.denm.management.termination = None);
    assert!(matches!(
        decode_its(&bytes, Framing::Uper, 0),
        Err(V2xError::Decode(_))
    ));
}

#[test]
fn other_versions_truncations_and_bit_flips_are_typed_errors() {
    let mut v1 = PYCRATE[0].1.to_vec();
    v1[0] = 1;
    assert!(
        matches!(denm_v2::decode(&v1), Err(V2xError::Unsupported(m)) if m.contains("version 1"))
    );
    assert!(matches!(denm_v2::decode(&[2]), Err(V2xError::Decode(_))));
    assert!(matches!(
        denm_v2::decode(include_bytes!("../testdata/c-its-parser-cam.uper")),
        Err(V2xError::Unsupported(_))
    ));
    for bytes in PYCRATE.iter().map(|(_, b)| *b).chain([REAL]) {
        for n in 0..bytes.len() {
            assert!(denm_v2::decode(&bytes[..n]).is_err(), "cut at {n}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.to_vec();
            b[bit / 8] ^= 0x80 >> (bit % 8);
            let _ = decode_its(&b, Framing::Uper, 700_000_000_000);
        }
    }
}
