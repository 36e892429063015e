//! Decoding real and independently encoded CAMs (c-its-parser test data, pycrate encodings),
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_lossless
)]
//! DENM, GeoNetworking frames, VeReMi beacons, and garbage.

use edgecell_v2x::V2xError;
use edgecell_v2x::decode::{Framing, VeremiRecord, decode_its, its_payload};
use edgecell_v2x::observation::{MessageKind, Position};

mod pycrate;

const EXPECTED: &str = include_str!("../testdata/pycrate-expected.json");
const RCV_ITS_MS: u64 = 700_000_000_000;

fn expected(name: &str) -> serde_json::Value {
    pycrate::entry(EXPECTED, name)
}

fn check(name: &str, bytes: &[u8], framing: Framing) {
    let e = expected(name);
    let o = decode_its(bytes, framing, RCV_ITS_MS).expect("decodes");
    let i = |k: &str| e.get(k).and_then(serde_json::Value::as_i64).expect(k);
    assert_eq!(o.kind, MessageKind::Cam);
    assert_eq!(i64::from(o.station_id), i("station_id"), "{name}");
    assert_eq!(
        i64::from(o.generation_delta_time),
        i("generation_delta_time"),
        "{name}"
    );
    let Position::Geo { lat, lon, .. } = o.position else {
        panic!("geo")
    };
    assert!(
        (lat - i("latitude_e7") as f64 * 1e-7).abs() < 1e-12,
        "{name}"
    );
    assert!(
        (lon - i("longitude_e7") as f64 * 1e-7).abs() < 1e-12,
        "{name}"
    );
    assert!((o.speed_mps.expect("speed") - i("speed_cms") as f64 / 100.0).abs() < 1e-12);
    assert!((o.heading_deg.expect("heading") - i("heading_ddeg") as f64 / 10.0).abs() < 1e-12);
    assert!((o.length_m.expect("length") - i("length_dm") as f64 / 10.0).abs() < 1e-12);
    assert!((o.width_m.expect("width") - i("width_dm") as f64 / 10.0).abs() < 1e-12);
    assert!((o.yaw_rate_dps.expect("yaw") - i("yaw_rate_cdegs") as f64 / 100.0).abs() < 1e-12);
    // generation time reconstructed from generationDeltaTime lies within 65.536 s before receipt
    let gen_ms = (o.generation_time_s * 1000.0).round() as u64;
    assert!(gen_ms <= RCV_ITS_MS && RCV_ITS_MS - gen_ms < 65_536);
    assert_eq!(gen_ms % 65_536, o.generation_delta_time as u64);
}

#[test]
fn real_cam_matches_pycrate() {
    check(
        "c-its-parser-cam.uper",
        include_bytes!("../testdata/c-its-parser-cam.uper"),
        Framing::Uper,
    );
}

#[test]
fn pycrate_encoded_cams_decode() {
    check(
        "pycrate-cam-a.uper",
        include_bytes!("../testdata/pycrate-cam-a.uper"),
        Framing::Uper,
    );
    check(
        "pycrate-cam-b.uper",
        include_bytes!("../testdata/pycrate-cam-b.uper"),
        Framing::Uper,
    );
}

fn radiotap() -> Vec<u8> {
    hex::decode(include_str!("../testdata/c-its-parser-cam-radiotap.hex").trim()).expect("hex")
}

#[test]
fn radiotap_geonetworking_cam_decodes() {
    check(
        "c-its-parser-cam-radiotap.hex",
        &radiotap(),
        Framing::RadiotapFrame,
    );
}

/// The radiotap `Flags` byte of the sample frame (present word 0x40000002: no TSFT before it).
const FLAGS_AT: usize = 8;

#[test]
fn radiotap_frame_check_sequence_is_checked_and_taken_off() {
    let frame = radiotap();
    assert_eq!(frame[FLAGS_AT], 0, "the sample does not flag its FCS");
    let payload = |f: &[u8]| its_payload(f, Framing::RadiotapFrame).map(<[u8]>::to_vec);
    let cam = payload(&frame).expect("cam");
    // flagged: the same CAM
    let mut flagged = frame.clone();
    flagged[FLAGS_AT] |= 0x10;
    assert_eq!(payload(&flagged).expect("flagged"), cam);
    // without an FCS, unflagged: the same CAM
    assert_eq!(payload(&frame[..frame.len() - 4]).expect("no fcs"), cam);
    // a flipped bit in the CAM: unflagged, the frame is taken as it came (the common header's
    // payload length still ends the CAM before the unmatched FCS); flagged, it is refused
    let mut hit = frame.clone();
    let at = frame.len() - 10;
    hit[at] ^= 0x01;
    let unflagged = payload(&hit).expect("unflagged");
    assert!(unflagged.len() == cam.len() && unflagged != cam);
    hit[FLAGS_AT] |= 0x10;
    let r = payload(&hit);
    assert!(
        matches!(&r, Err(V2xError::Decode(m)) if m.contains("frame check sequence")),
        "{r:?}"
    );
    // the receiver says the FCS failed: refused
    let mut failed = frame;
    failed[FLAGS_AT] |= 0x40;
    assert!(matches!(payload(&failed), Err(V2xError::Decode(_))));
}

#[test]
fn geonetworking_btp_cam_decodes() {
    // strip radiotap (length at bytes 2..4), the 24-byte 802.11 QoS data header + 2 QoS bytes
    // are inside the frame; find the GN basic header (version 1, next header 1) before the
    // CAM's BTP-B header and drop the 4-byte FCS.
    let raw = radiotap();
    let body = raw.get(..raw.len() - 4).expect("fcs");
    let llc = body
        .windows(8)
        .position(|w| w == [0xaa, 0xaa, 0x03, 0, 0, 0, 0x89, 0x47])
        .expect("LLC/SNAP GN");
    let gn = body.get(llc + 8..).expect("gn");
    check("c-its-parser-cam-radiotap.hex", gn, Framing::GeoNetworking);
}

#[test]
fn denm_decodes() {
    let o = decode_its(
        include_bytes!("../testdata/c-its-parser-denm.uper"),
        Framing::Uper,
        RCV_ITS_MS,
    )
    .expect("denm");
    assert_eq!(o.kind, MessageKind::Denm);
    let Position::Geo { lat, lon, .. } = o.position else {
        panic!("geo")
    };
    assert!(lat.abs() <= 90.0 && lon.abs() <= 180.0);
    assert_eq!(
        o.generation_delta_time as u64,
        ((o.generation_time_s * 1000.0).round() as u64) % 65_536
    );
}

#[test]
fn truncated_and_garbage_give_typed_errors() {
    let cam = include_bytes!("../testdata/c-its-parser-cam.uper");
    for n in 0..cam.len() {
        let r = decode_its(cam.get(..n).expect("slice"), Framing::Uper, RCV_ITS_MS);
        assert!(
            matches!(r, Err(V2xError::Decode(_) | V2xError::Unsupported(_))) || r.is_ok(),
            "len {n}"
        );
    }
    assert!(matches!(
        decode_its(&[], Framing::Uper, 0),
        Err(V2xError::Decode(_))
    ));
    assert!(matches!(
        decode_its(b"{\"x\":1}", Framing::Uper, 0),
        Err(V2xError::Decode(_))
    ));
    let mut x = 0x1234_5678u32;
    for len in [1usize, 2, 5, 17, 100, 1000] {
        for _ in 0..50 {
            let g: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x & 0xff) as u8
                })
                .collect();
            for f in [
                Framing::Uper,
                Framing::GeoNetworking,
                Framing::RadiotapFrame,
            ] {
                let _ = decode_its(&g, f, RCV_ITS_MS);
            }
        }
    }
    assert!(matches!(
        decode_its(&vec![2u8; 70_000], Framing::Uper, 0),
        Err(V2xError::TooLarge(70_000))
    ));
}

#[test]
fn veremi_beacon_maps_to_observation() {
    let line = br#"{"type":3,"rcvTime":25207.02,"sendTime":25207.0,"sender":9,"senderPseudo":10009,"messageID":77,
        "pos":[3.0,4.0,0.0],"pos_noise":[3.0,4.0,0.0],"spd":[0.0,-10.0,0.0],"spd_noise":[0.3,0.4,0.0],
        "acl":[0.0,-1.0,0.0],"hed":[0.0,-1.0,0.0],"hed_noise":[0.0,0.0,0.0]}"#;
    let r = VeremiRecord::parse(line).expect("parse");
    let o = r.to_observation().expect("obs");
    assert_eq!(
        (o.station_id, o.pseudonym, o.message_id),
        (9, 10009, Some(77))
    );
    assert_eq!(o.position, Position::Local { x: 3.0, y: 4.0 });
    assert!((o.pos_noise_m - 5.0).abs() < 1e-12);
    assert!((o.speed_mps.expect("v") - 10.0).abs() < 1e-12);
    assert!((o.heading_deg.expect("h") - 180.0).abs() < 1e-9);
    assert!((o.accel_mps2.expect("a") - 1.0).abs() < 1e-12);
    assert_eq!(o.generation_delta_time, (25_207_000 % 65_536) as u32);
    assert!(matches!(
        VeremiRecord::parse(b"{\"type\":3}"),
        Err(V2xError::Decode(_))
    ));
    assert!(matches!(
        VeremiRecord::parse(b"{\"type\":4,\"rcvTime\":1,\"pos\":[0,0,0]}"),
        Err(V2xError::Unsupported(_))
    ));
    assert!(matches!(
        VeremiRecord::parse(b"\xff\x00"),
        Err(V2xError::Decode(_))
    ));
}

/// Regression (cargo-fuzz, target `geonetworking`): a GN single-hop broadcast whose position
/// vector speed is negative made geonetworking 0.4.2 panic (`i15::from_i16`); now a typed error.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn fuzz_gn_negative_speed_is_typed_error() {
    let b = include_bytes!("../testdata/fuzz-gn-negative-speed.bin");
    let r = std::panic::catch_unwind(|| decode_its(b, Framing::GeoNetworking, 600_000_000_000));
    assert!(matches!(r, Ok(Err(_))), "{r:?}");
}

/// A GeoNetworking packet whose ITS payload reads as JSON ending at `"messageId":` made
/// c-its-parser index past its end; it is a typed error (and UPER input with text in front too).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn fuzz_gn_payload_that_reads_as_json_is_typed_error() {
    let b = include_bytes!("../testdata/fuzz-gn-jer-message-id.bin");
    let r = std::panic::catch_unwind(|| decode_its(b, Framing::GeoNetworking, 600_000_000_000));
    assert!(
        matches!(r, Ok(Err(edgecell_v2x::V2xError::Decode(_)))),
        "{r:?}"
    );
    for text in [&b" {\"messageId\":"[..], b"\n<messageID>", b"{"] {
        let r = std::panic::catch_unwind(|| decode_its(text, Framing::Uper, 600_000_000_000));
        assert!(
            matches!(r, Ok(Err(edgecell_v2x::V2xError::Decode(_)))),
            "{r:?}"
        );
    }
}
