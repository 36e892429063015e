//! The v2x-validator actor in the embedded host: WIT exports on real CAMs, typed errors for
//! bad input, misbehaviour checks on VeReMi beacons, history that survives an instance being
//! replaced, and the NATS message form.

use std::sync::Arc;

use edgecell::bindings::BrokerMessage;
use edgecell::bindings::v2x_validator::edgecell::types::types::GeoPosition;
use edgecell::bindings::v2x_validator::exports::edgecell::v2x::validator::{
    MessageFormat, Position, V2xError, V2xMessage, Validation, Verdict,
};

use crate::common::{self, host, spec};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/v2x/testdata");

fn actor(h: &common::Host) -> edgecell::Actor {
    h.runtime.load_actor(spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"))).unwrap()
}

fn testdata(file: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}/{file}")).unwrap()
}

/// Unix ns of an ITS time (ms since 2004, TAI) whose generationDeltaTime is `gdt` + `delay_ms`.
fn received_at(gdt: u64, delay_ms: u64) -> u64 {
    its_to_unix_ns(700_000 * 65_536 + gdt + delay_ms)
}

fn its_to_unix_ns(its_ms: u64) -> u64 {
    (its_ms + 1_072_915_200_000 - 5_000) * 1_000_000
}

fn msg(format: MessageFormat, payload: Vec<u8>, received_at: u64) -> V2xMessage {
    V2xMessage { format, payload, received_at, receiver: None }
}

fn validate(inst: &mut edgecell::ActorInstance, m: &V2xMessage) -> Result<Validation, V2xError> {
    let v = inst.v2x_validator().unwrap();
    inst.call(|s, _| v.edgecell_v2x_validator().call_validate(s, m)).unwrap()
}

/// The WGS84 position of a validated ETSI message.
fn geo(v: &Validation) -> &GeoPosition {
    match &v.position {
        Position::Geo(p) => p,
        Position::Local(l) => panic!("a local position {l:?} where WGS84 was expected"),
    }
}

fn failed(v: &Validation) -> Vec<&str> {
    v.checks.iter().filter(|c| !c.skipped && c.confidence < 0.5).map(|c| c.name.as_str()).collect()
}

/// c-its-parser's captured CAM as its radiotap + 802.11 frame, and the GeoNetworking packet in
/// it (from the LLC/SNAP header on, without the frame's 4-byte FCS).
pub fn radiotap_cam() -> (Vec<u8>, Vec<u8>) {
    let text = String::from_utf8(testdata("c-its-parser-cam-radiotap.hex")).unwrap();
    let text = text.trim();
    let frame: Vec<u8> = (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect();
    let llc = frame.windows(8).position(|w| w == [0xaa, 0xaa, 0x03, 0, 0, 0, 0x89, 0x47]).unwrap();
    let gn = frame[llc + 8..frame.len() - 4].to_vec();
    (frame, gn)
}

/// A VeReMi type 3 beacon moving east (heading vector (1, 0)) at `speed` m/s.
/// A VeReMi type-3 beacon of `pseudo` at (x, 0) moving along x.
pub fn beacon(pseudo: u64, t: f64, x: f64, speed: f64) -> Vec<u8> {
    serde_json::json!({
        "type": 3, "rcvTime": t, "sendTime": t - 0.01, "sender": 9, "senderPseudo": pseudo, "messageID": (t * 10.0) as u64,
        "pos": [x, 0.0, 0.0], "pos_noise": [0.5, 0.5, 0.0], "spd": [speed, 0.0, 0.0], "spd_noise": [0.1, 0.1, 0.0],
        "acl": [0.0, 0.0, 0.0], "hed": [1.0, 0.0, 0.0], "hed_noise": [0.02, 0.02, 0.0]
    })
    .to_string()
    .into_bytes()
}

#[test]
fn real_cams_validate_through_the_wit_export() {
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();

    // c-its-parser's real CAM (values cross-checked with pycrate in crates/v2x/testdata)
    let v = validate(&mut inst, &msg(MessageFormat::Uper, testdata("c-its-parser-cam.uper"), received_at(51_136, 120))).unwrap();
    assert_eq!(v.station_id, 3_725_855_973);
    assert_eq!(v.message_kind, "cam");
    assert_eq!(v.generation_delta_time, 51_136);
    assert!((geo(&v).latitude_deg - 53.562_651_8).abs() < 1e-9, "{:?}", v.position);
    assert!((geo(&v).longitude_deg - 9.976_148_5).abs() < 1e-9, "{:?}", v.position);
    assert!((v.speed_mps.unwrap() - 12.77).abs() < 1e-9);
    assert!((v.heading_deg.unwrap() - 199.4).abs() < 1e-9);
    assert!(!v.signed);
    assert_eq!(v.verdict, Verdict::Accepted, "failed: {:?}", failed(&v));
    let freshness = v.checks.iter().find(|c| c.name == "freshness").unwrap();
    assert!(!freshness.skipped && freshness.confidence >= 0.5, "{freshness:?}");
    assert!(v.checks.iter().any(|c| c.name == "position_consistency" && c.skipped), "first CAM of a station has no history");

    // an independently encoded CAM (pycrate), received 2.5 s late: freshness fails
    let late = validate(&mut inst, &msg(MessageFormat::Uper, testdata("pycrate-cam-a.uper"), received_at(41_000, 2_500))).unwrap();
    assert_eq!(late.station_id, 1_234_567);
    assert_eq!(late.generation_delta_time, 41_000);
    assert!((geo(&late).latitude_deg - 48.856_614).abs() < 1e-9);
    assert!((late.speed_mps.unwrap() - 13.89).abs() < 1e-9);
    assert!((late.heading_deg.unwrap() - 90.5).abs() < 1e-9);
    assert_eq!(late.verdict, Verdict::Rejected);
    assert_eq!(failed(&late), vec!["freshness"]);

    // a batch gives one result per message, in order
    let batch = vec![
        msg(MessageFormat::Uper, testdata("pycrate-cam-b.uper"), received_at(0, 10)),
        msg(MessageFormat::Uper, vec![0xff; 3], received_at(0, 10)),
    ];
    let v2 = inst.v2x_validator().unwrap();
    let out = inst.call(|s, _| v2.edgecell_v2x_validator().call_validate_batch(s, &batch)).unwrap();
    assert_eq!(out.len(), 2);
    let b = out[0].as_ref().unwrap();
    assert_eq!(b.station_id, 4_294_967_295);
    assert!((geo(b).latitude_deg + 33.9).abs() < 1e-9);
    assert!(matches!(out[1], Err(V2xError::Decode(_))), "{:?}", out[1]);
}

/// CAM Release 2 (TS 103 900 V2.3.1), DENMs (TS 103 831 V2.3.1) and CPMs (TS 103 324 V2.1.1),
/// encoded by pycrate from the ETSI ASN.1, and c-its-parser's real DENM decode inside the
/// component as natively: the
/// same fields and verdicts (the CAMs accepted), the actor's history against a native
/// validator that sees the same messages in the same order; a Release 2 container that does not
/// decode as its id says is a typed decode error, not a trap.
#[test]
fn release_2_cams_denms_and_cpms_validate_in_the_component_as_natively() {
    use edgecell_v2x::validator::{MessageFormat as Native, ReceiveContext, Validator};
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();
    let cams = [("cam-v2-a", 12_345), ("cam-v2-b", 65_535), ("cam-v2-c", 0), ("cam-v2-d", 40_000), ("cam-v2-e", 1_000)]
        .map(|(f, gdt)| (format!("pycrate-{f}.uper"), received_at(gdt, 80)));
    // a DENM's or CPM's generation time is its reference time (ITS ms)
    let denms = [
        ("pycrate-denm-v2-a.uper", 600_000_000_100),
        ("pycrate-denm-v2-b.uper", 600_000_000_900),
        ("pycrate-cpm-v2-a.uper", 600_000_002_000),
        ("pycrate-cpm-v2-b.uper", 600_000_009_000),
    ]
    .map(|(f, t)| (f.to_string(), its_to_unix_ns(t + 80)));
    let mut native_validator = Validator::new(edgecell_v2x::config::Config::default()).unwrap();
    for (file, at) in cams.into_iter().chain(denms) {
        let bytes = testdata(&file);
        let wasm = validate(&mut inst, &msg(MessageFormat::Uper, bytes.clone(), at)).unwrap();
        let ctx = ReceiveContext { received_at_ns: at, receiver: None };
        let native = native_validator.validate(Native::Uper, &bytes, &ctx).unwrap();
        assert_eq!(wasm.station_id, native.station_id, "{file}");
        assert_eq!(wasm.message_kind, native.message_kind.as_str(), "{file}");
        assert_eq!(wasm.generation_delta_time, native.generation_delta_time, "{file}");
        assert_eq!(Some(geo(&wasm).latitude_deg), native.latitude, "{file}");
        assert_eq!(Some(geo(&wasm).longitude_deg), native.longitude, "{file}");
        assert_eq!(wasm.speed_mps, native.speed_mps, "{file}");
        assert_eq!(wasm.heading_deg, native.heading_deg, "{file}");
        assert_eq!(failed(&wasm), native.failed_checks(), "{file}");
        assert_eq!(wasm.verdict == Verdict::Accepted, native.verdict == edgecell_v2x::validator::Verdict::Accepted);
        if file.contains("cam") {
            assert_eq!(wasm.verdict, Verdict::Accepted, "{file}: {:?}", failed(&wasm));
        }
    }
    let denm = validate(&mut inst, &msg(MessageFormat::Uper, testdata("c-its-parser-denm.uper"), received_at(0, 0))).unwrap();
    assert_eq!(denm.message_kind, "denm");
    // container 3 (very low frequency) holding bytes that are not one
    let (cam, _) = edgecell_v2x::cam_v2::decode(&testdata("pycrate-cam-v2-a.uper")).unwrap();
    let bad = edgecell_v2x::cam_v2::encode(&cam, &[edgecell_v2x::cam_v2::CamExtension::Opaque { id: 3, data: vec![0xff, 0xff] }]).unwrap();
    let err = validate(&mut inst, &msg(MessageFormat::Uper, bad, received_at(12_345, 80))).unwrap_err();
    assert!(matches!(&err, V2xError::Decode(m) if m.contains("veryLowFrequencyContainer")), "{err:?}");
    // every truncation of a Release 2 CAM is an error, never a trap
    let full = testdata("pycrate-cam-v2-c.uper");
    for n in 1..full.len() {
        assert!(validate(&mut inst, &msg(MessageFormat::Uper, full[..n].to_vec(), received_at(0, 80))).is_err(), "cut at {n}");
    }
}

/// A real GeoNetworking + BTP-B CAM (from c-its-parser's radiotap capture) validates inside
/// the component with the `geonetworking` format, as natively; a packet cut inside its GN
/// headers is a typed decode error.
#[test]
fn geonetworking_framed_cams_validate_in_the_component() {
    use edgecell_v2x::validator::{MessageFormat as Native, ReceiveContext, Validator};
    let (_, gn) = radiotap_cam();
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();
    let at = received_at(9_983, 50);
    let wasm = validate(&mut inst, &msg(MessageFormat::Geonetworking, gn.clone(), at)).unwrap();
    let native = Validator::new(edgecell_v2x::config::Config::default())
        .unwrap()
        .validate(Native::GeoNetworking, &gn, &ReceiveContext { received_at_ns: at, receiver: None })
        .unwrap();
    assert_eq!(wasm.station_id, 2_624_309_139);
    assert_eq!(wasm.station_id, native.station_id);
    assert_eq!(wasm.generation_delta_time, 9_983);
    assert_eq!(Some(geo(&wasm).latitude_deg), native.latitude);
    assert_eq!(wasm.speed_mps, native.speed_mps);
    for n in [1, 3, 8, 20, 30] {
        let r = validate(&mut inst, &msg(MessageFormat::Geonetworking, gn[..n].to_vec(), at));
        assert!(matches!(r, Err(V2xError::Decode(_))), "cut at {n}: {r:?}");
    }

    // the same packet secured (TS 103 097: basic header "secured", the rest of the packet
    // signed): verified in the component (RustCrypto P-256) as natively (ring), then decoded
    use edgecell_v2x::security::build;
    let at_its_ms = 700_000 * 65_536 + 9_983 + 50; // `at` in ITS time
    let chain = build::CamChain::new(u32::try_from(at_its_ms / 1000 - 3600).unwrap()).unwrap();
    configure(&mut inst, &chain.trust_toml_with_aa()).unwrap();
    let signed = build::signed_data(&chain.at, &gn[4..], 36, (at_its_ms - 10) * 1000, true).unwrap();
    let secured = [[0x12, gn[1], gn[2], gn[3]].as_slice(), &signed].concat();
    let wasm = validate(&mut inst, &msg(MessageFormat::Geonetworking, secured.clone(), at)).unwrap();
    let mut native_validator = Validator::from_toml(&chain.trust_toml_with_aa()).unwrap();
    let native = native_validator
        .validate(Native::GeoNetworking, &secured, &ReceiveContext { received_at_ns: at, receiver: None })
        .unwrap();
    assert!(wasm.signed && native.signed, "{:?} / {:?}", failed(&wasm), native.failed_checks());
    assert_eq!((wasm.station_id, wasm.generation_delta_time), (native.station_id, 9_983));
    let mut tampered = secured;
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let bad = validate(&mut inst, &msg(MessageFormat::Geonetworking, tampered, at)).unwrap();
    assert!(!bad.signed && failed(&bad).contains(&"signature"), "{bad:?}");
}

/// `edgecell:v2x@0.2.0`: what a signed message said without its signer's service specific
/// permission reaches WIT callers (a DENM of a cause its ticket's SSP does not grant), as do the
/// policy's score and the CAM extension containers.
#[test]
fn wit_validations_name_missing_permissions_and_the_policy_score() {
    use edgecell::bindings::v2x_validator::exports::edgecell::v2x::validator::{CamPermission, Permission};
    use edgecell_v2x::security::build;
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();
    let now_its_ms = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
        .saturating_sub(1_072_915_200_000)
        + 5_000;
    let start = u32::try_from(now_its_ms / 1000 - 3600).unwrap();
    let chain = build::CamChain::new(start).unwrap();
    configure(&mut inst, &chain.trust_toml_with_aa()).unwrap();
    // a ticket for CAMs and DENMs with no SSP: it grants no DENM cause
    let ticket = build::certificate("at", &build::key_from_seed([9; 32]).unwrap(), Some(&chain.aa), start, 100, &[36, 37]).unwrap();
    let denm_bytes = testdata("c-its-parser-denm.uper");
    let needs = edgecell_v2x::ssp::denm_needs(&edgecell_v2x::denm_v2::decode(&denm_bytes).unwrap());
    let [edgecell_v2x::ssp::Permission::DenmCause(cause)] = needs.as_slice() else { panic!("{needs:?}") };
    let signed = build::signed_data(&ticket, &denm_bytes, 37, (now_its_ms - 10) * 1000, true).unwrap();
    let denm = validate(&mut inst, &msg(MessageFormat::Secured, signed, its_to_unix_ns(now_its_ms))).unwrap();
    assert_eq!(denm.verdict, Verdict::Rejected);
    assert!(failed(&denm).contains(&"service_permissions"), "{:?}", failed(&denm));
    assert!(!denm.signed);
    assert_eq!(denm.missing_permissions, vec![Permission::DenmCause(*cause)]);
    // any-fail: the score is the lowest confidence of the checks that ran
    let lowest = denm.checks.iter().filter(|c| !c.skipped).map(|c| f64::from(c.confidence)).fold(1.0, f64::min);
    assert_eq!(denm.score, lowest);
    assert!(denm.score < 0.5);

    // an emergency vehicle's CAM (pycrate-cam-v2-c) signed by that ticket: the CAM cases
    let cam_c = testdata("pycrate-cam-v2-c.uper");
    let signed = build::signed_data(&ticket, &cam_c, 36, (now_its_ms - 10) * 1000, true).unwrap();
    let at = its_to_unix_ns(now_its_ms);
    let emergency = validate(&mut inst, &msg(MessageFormat::Secured, signed.clone(), at)).unwrap();
    let ctx = edgecell_v2x::validator::ReceiveContext { received_at_ns: at, receiver: None };
    let n = edgecell_v2x::validator::Validator::from_toml(&chain.trust_toml_with_aa())
        .unwrap()
        .validate(edgecell_v2x::validator::MessageFormat::Secured, &signed, &ctx)
        .unwrap();
    assert!(n.missing_permissions.contains(&edgecell_v2x::ssp::Permission::Emergency), "{:?}", n.missing_permissions);
    assert!(emergency.missing_permissions.contains(&Permission::Cam(CamPermission::Emergency)), "{:?}", emergency.missing_permissions);
    assert_eq!(emergency.missing_permissions.len(), n.missing_permissions.len());

    // Release 2 CAMs with extension containers name them, and a weighted policy's score
    // (received late, so freshness fails and the weighted mean lies strictly between 0 and 1)
    // is the native one
    let weighted = "[policy]\nkind = \"weighted\"\nthreshold = 0.5\n";
    configure(&mut inst, weighted).unwrap();
    let mut native = edgecell_v2x::validator::Validator::from_toml(weighted).unwrap();
    for (file, gdt) in [("pycrate-cam-v2-a.uper", 12_345), ("pycrate-cam-v2-b.uper", 65_535), ("pycrate-cam-v2-c.uper", 0)] {
        let bytes = testdata(file);
        let at = received_at(gdt, 2_500);
        let wasm = validate(&mut inst, &msg(MessageFormat::Uper, bytes.clone(), at)).unwrap();
        let ctx = edgecell_v2x::validator::ReceiveContext { received_at_ns: at, receiver: None };
        let n = native.validate(edgecell_v2x::validator::MessageFormat::Uper, &bytes, &ctx).unwrap();
        assert!(!wasm.cam_extensions.is_empty(), "{file}");
        assert_eq!(wasm.cam_extensions, n.cam_extensions, "{file}");
        assert!(wasm.score > 0.0 && wasm.score < 1.0, "{file}: {}", wasm.score);
        assert_eq!((wasm.score, wasm.pseudonym), (n.score, n.pseudonym), "{file}");
    }
}

#[test]
fn bad_input_gets_typed_errors_and_the_instance_keeps_working() {
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();
    let cam = testdata("c-its-parser-cam.uper");
    let t = received_at(51_136, 50);

    // (on wasm32 the crate's UPER reader stops after the high-frequency container, so a cut
    // inside the low-frequency container still decodes: cut into the basic container)
    for n in [0, 1, 5, 12, 24] {
        let e = validate(&mut inst, &msg(MessageFormat::Uper, cam[..n].to_vec(), t)).unwrap_err();
        assert!(matches!(e, V2xError::Decode(_)), "truncated to {n}: {e:?}");
    }
    let garbage: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let e = validate(&mut inst, &msg(MessageFormat::Uper, garbage, t)).unwrap_err();
    assert!(matches!(e, V2xError::Decode(_) | V2xError::Unsupported(_)), "{e:?}");
    let e = validate(&mut inst, &msg(MessageFormat::Uper, vec![0u8; 70_000], t)).unwrap_err();
    assert_eq!(e, V2xError::TooLarge(70_000));
    let e = validate(&mut inst, &msg(MessageFormat::Secured, vec![0x03, 0x81, 0x00, 0x40], t)).unwrap_err();
    assert!(matches!(e, V2xError::Decode(_) | V2xError::Unsupported(_)), "{e:?}");
    let e = validate(&mut inst, &msg(MessageFormat::JsonBeacon, b"{\"type\": 3, \"pos\": ".to_vec(), t)).unwrap_err();
    assert!(matches!(e, V2xError::Decode(_)), "{e:?}");
    let e = validate(&mut inst, &msg(MessageFormat::JsonBeacon, br#"{"type": 3, "rcvTime": 1.0, "pos": [1e999, 0, 0]}"#.to_vec(), t)).unwrap_err();
    assert!(matches!(e, V2xError::Decode(_)), "{e:?}");

    let v = inst.v2x_validator().unwrap();
    let bad = inst.call(|s, _| v.edgecell_v2x_validator().call_configure(s, "thresholds = 5")).unwrap().unwrap_err();
    assert!(matches!(bad, V2xError::InvalidConfig(_)), "{bad:?}");
    let unknown = inst.call(|s, _| v.edgecell_v2x_validator().call_configure(s, "[thresholds]\nmax_speed = 3.0")).unwrap().unwrap_err();
    assert!(matches!(unknown, V2xError::InvalidConfig(_)), "{unknown:?}");

    // after all of that the instance is alive and still validates
    let ok = validate(&mut inst, &msg(MessageFormat::Uper, cam, t)).unwrap();
    assert_eq!(ok.station_id, 3_725_855_973);
    assert!(!inst.is_poisoned());
    let snapshot = h.runtime.services().metrics.snapshot();
    assert_eq!(snapshot.total("v2x_messages_total", &[("verdict", "accepted")]), Some(1.0));
    assert!(snapshot.total("v2x_messages_total", &[("verdict", "error")]).unwrap() >= 9.0);
}

#[test]
fn a_position_jump_is_rejected_and_names_the_failing_check() {
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();
    let mut verdicts = Vec::new();
    for (t, x) in [(1.0, 0.0), (2.0, 10.0), (3.0, 20.0), (4.0, 520.0)] {
        verdicts.push(validate(&mut inst, &msg(MessageFormat::JsonBeacon, beacon(42, t, x, 10.0), 0)).unwrap());
    }
    for v in &verdicts[..3] {
        assert_eq!(v.verdict, Verdict::Accepted, "failed: {:?}", failed(v));
        assert_eq!(v.message_kind, "beacon");
        assert_eq!(v.station_id, 9);
    }
    assert!(verdicts[2].checks.iter().any(|c| c.name == "position_consistency" && !c.skipped && c.confidence >= 0.5));
    let jump = &verdicts[3];
    assert_eq!(jump.verdict, Verdict::Rejected);
    assert!(failed(jump).contains(&"position_consistency"), "{:?}", failed(jump));
    // a local-frame beacon's position is reported in its own frame, under its pseudonym
    assert!(matches!(jump.position, Position::Local(l) if l.east_m == 520.0 && l.north_m == 0.0), "{:?}", jump.position);
    assert_eq!(jump.pseudonym, 42);
    let snapshot = h.runtime.services().metrics.snapshot();
    assert_eq!(snapshot.total("v2x_check_failures_total", &[("check", "position_consistency")]), Some(1.0));
    assert_eq!(snapshot.total("v2x_messages_total", &[("verdict", "rejected")]), Some(1.0));
}

#[test]
fn history_survives_instance_replacement() {
    let h = host(edgecell::RuntimeConfig::default());
    let a = Arc::new(actor(&h));
    let mut first = a.instantiate().unwrap();
    for (t, x) in [(1.0, 0.0), (2.0, 10.0)] {
        let v = validate(&mut first, &msg(MessageFormat::JsonBeacon, beacon(77, t, x, 10.0), 0)).unwrap();
        assert_eq!(v.verdict, Verdict::Accepted, "{:?}", failed(&v));
    }
    drop(first);

    // a fresh instance sees pseudonym 77's earlier beacons: consistency checks run at once
    let mut second = a.instantiate().unwrap();
    let next = validate(&mut second, &msg(MessageFormat::JsonBeacon, beacon(77, 3.0, 20.0, 10.0), 0)).unwrap();
    assert_eq!(next.verdict, Verdict::Accepted, "{:?}", failed(&next));
    let pc = next.checks.iter().find(|c| c.name == "position_consistency").unwrap();
    assert!(!pc.skipped, "history was lost with the instance");
    drop(second);

    let mut third = a.instantiate().unwrap();
    let jump = validate(&mut third, &msg(MessageFormat::JsonBeacon, beacon(77, 4.0, 400.0, 10.0), 0)).unwrap();
    assert_eq!(jump.verdict, Verdict::Rejected);
    assert!(failed(&jump).contains(&"position_consistency"), "{:?}", failed(&jump));
    // an unseen pseudonym in the same instance has no history
    let fresh = validate(&mut third, &msg(MessageFormat::JsonBeacon, beacon(78, 4.0, 400.0, 10.0), 0)).unwrap();
    assert!(fresh.checks.iter().any(|c| c.name == "position_consistency" && c.skipped));
}

#[test]
fn the_message_handler_publishes_verdicts_and_reports() {
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();

    // a raw UPER CAM: a verdict on the region's subject (received now, so its age decides)
    let cam = BrokerMessage { subject: "edgecell.v2x.in.hamburg".into(), body: testdata("c-its-parser-cam.uper"), reply_to: None };
    inst.handle_message(&cam).unwrap().unwrap();
    let published = h.bus.drain();
    let verdict = published.iter().find(|p| p.subject == "edgecell.v2x.verdict.hamburg").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&verdict.body).unwrap();
    assert_eq!(v["station_id"], 3_725_855_973u64);
    assert_eq!(v["generation_delta_time"], 51_136);
    assert!((v["latitude"].as_f64().unwrap() - 53.562_651_8).abs() < 1e-9);
    assert!((v["longitude"].as_f64().unwrap() - 9.976_148_5).abs() < 1e-9);
    assert!((v["speed_mps"].as_f64().unwrap() - 12.77).abs() < 1e-9);
    assert!((v["heading_deg"].as_f64().unwrap() - 199.4).abs() < 1e-9);
    assert!(v["checks"].as_array().unwrap().len() >= 11);
    let rejected = v["verdict"] == "rejected";
    assert_eq!(published.iter().any(|p| p.subject == "edgecell.v2x.report.hamburg"), rejected);

    // a DENM and a CPM on the same subject (what `edgecell produce v2x` sends for hex lines)
    for (file, kind) in [("pycrate-denm-v2-a.uper", "denm"), ("pycrate-cpm-v2-a.uper", "cpm")] {
        let m = BrokerMessage { subject: "edgecell.v2x.in.hamburg".into(), body: testdata(file), reply_to: None };
        inst.handle_message(&m).unwrap().unwrap();
        let published = h.bus.drain();
        let verdict = published.iter().find(|p| p.subject == "edgecell.v2x.verdict.hamburg").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&verdict.body).unwrap();
        assert_eq!(v["message_kind"], kind, "{v}");
    }

    // VeReMi lines: the receiver's fix (type 2) publishes nothing; beacons are judged, a jump
    // is reported; a reply subject takes the verdict. A trace has its own time base, so it
    // gets its own cache namespace (an instance of the same actor configured for it).
    let mut s = spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"));
    s.config.insert("namespace".into(), "sim".into());
    let mut inst = h.runtime.load_actor(s).unwrap().instantiate().unwrap();
    let line = |body: Vec<u8>, reply: Option<&str>| BrokerMessage { subject: "edgecell.v2x.in.sim".into(), body, reply_to: reply.map(Into::into) };
    let ego = br#"{"type":2,"rcvTime":0.5,"pos":[0,0,0],"spd":[0,0,0],"hed":[1,0,0]}"#.to_vec();
    inst.handle_message(&line(ego, None)).unwrap().unwrap();
    assert!(h.bus.drain().is_empty());
    inst.handle_message(&line(beacon(5, 1.0, 300.0, 10.0), None)).unwrap().unwrap();
    inst.handle_message(&line(beacon(5, 2.0, 310.0, 10.0), Some("_INBOX.1"))).unwrap().unwrap();
    inst.handle_message(&line(beacon(5, 3.0, 900.0, 10.0), None)).unwrap().unwrap();
    let published = h.bus.drain();
    let subjects: Vec<&str> = published.iter().map(|p| p.subject.as_str()).collect();
    assert_eq!(subjects, vec!["edgecell.v2x.verdict.sim", "_INBOX.1", "edgecell.v2x.verdict.sim", "edgecell.v2x.report.sim"]);
    let replied: serde_json::Value = serde_json::from_slice(&published[1].body).unwrap();
    assert_eq!(replied["verdict"], "accepted", "{replied}");
    let jump: serde_json::Value = serde_json::from_slice(&published[2].body).unwrap();
    assert_eq!(jump["verdict"], "rejected");
    assert_eq!(jump["latitude"], serde_json::Value::Null);
    let report: serde_json::Value = serde_json::from_slice(&published[3].body).unwrap();
    assert_eq!(report["reported_pseudonym"], 5);
    let names: Vec<&str> = report["failed_checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"position_consistency"), "{names:?}");
    // the 900 m beacon is also out of the receiver's range
    assert!(names.contains(&"range_plausibility"), "{names:?}");

    // refusals with a reason; the instance keeps going
    let junk = BrokerMessage { subject: "edgecell.v2x.in.sim".into(), body: b"{not json".to_vec(), reply_to: None };
    assert!(inst.handle_message(&junk).unwrap().unwrap_err().starts_with("decode"));
    let empty = BrokerMessage { subject: "edgecell.v2x.in.sim".into(), body: vec![], reply_to: None };
    assert!(inst.handle_message(&empty).unwrap().is_err());
    let other = BrokerMessage { subject: "edgecell.video.in".into(), body: vec![1], reply_to: None };
    assert!(inst.handle_message(&other).unwrap().unwrap_err().contains("does not handle"));
    assert!(!inst.is_poisoned());
}

/// A NATS producer sends whatever its radio or capture gives it: the handler tells a UPER CAM,
/// a GeoNetworking packet, a radiotap frame, 1609.2 data and a secured GeoNetworking packet
/// apart by their first bytes, and each gives its CAM's verdict (signed where signed).
#[test]
fn the_handler_validates_every_binary_form_a_producer_sends() {
    use edgecell_v2x::security::build;
    let (frame, gn) = radiotap_cam();
    let h = host(edgecell::RuntimeConfig::default());
    let mut s = spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"));
    s.config.insert("namespace".into(), "forms".into());
    let a = h.runtime.load_actor(s).unwrap();
    let mut inst = a.instantiate().unwrap();
    // signatures are checked against a chain configured now, with generation times of now
    let now_its_ms = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
        .saturating_sub(1_072_915_200_000)
        + 5_000;
    let chain = build::CamChain::new(u32::try_from(now_its_ms / 1000 - 3600).unwrap()).unwrap();
    configure(&mut inst, &chain.trust_toml_with_aa()).unwrap();
    let gen_us = |ago_ms: u64| (now_its_ms - ago_ms) * 1000;
    let secured_gn = [[0x12, gn[1], gn[2], gn[3]].as_slice(), &build::signed_data(&chain.at, &gn[4..], 36, gen_us(30), true).unwrap()].concat();
    let secured_cam = build::signed_data(&chain.at, &testdata("c-its-parser-cam.uper"), 36, gen_us(20), true).unwrap();
    let forms: [(&str, Vec<u8>, u64, bool); 5] = [
        ("uper", testdata("c-its-parser-cam.uper"), 3_725_855_973, false),
        ("geonetworking", gn.clone(), 2_624_309_139, false),
        ("radiotap", frame.clone(), 2_624_309_139, false),
        ("secured geonetworking", secured_gn, 2_624_309_139, true),
        ("1609.2", secured_cam, 3_725_855_973, true),
    ];
    for (name, body, station, signed) in forms {
        let m = BrokerMessage { subject: "edgecell.v2x.in.forms".into(), body, reply_to: None };
        inst.handle_message(&m).unwrap().unwrap_or_else(|e| panic!("{name}: {e}"));
        let published = h.bus.drain();
        let verdict = published.iter().find(|p| p.subject == "edgecell.v2x.verdict.forms").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&verdict.body).unwrap();
        assert_eq!(v["station_id"], station, "{name}: {v}");
        assert_eq!(v["signed"], signed, "{name}: {v}");
    }
}

/// When the cache cannot give a signer's replay marks (here: an entry that does not parse),
/// the replay check is skipped by default; with `replay_when_unreadable = "reject"` the
/// message fails `replay_unverified` instead, counts as unsigned, and no misbehaviour report
/// blames its sender for the receiver's store.
#[test]
fn an_unreadable_replay_state_is_skipped_or_rejected_as_configured_and_blames_nobody() {
    use edgecell_v2x::security::build;
    let h = host(edgecell::RuntimeConfig::default());
    let now_its_ms = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
        .saturating_sub(1_072_915_200_000)
        + 5_000;
    let chain = build::CamChain::new(u32::try_from(now_its_ms / 1000 - 3600).unwrap()).unwrap();
    let reject = chain.trust_toml_with_aa().replace("[security]", "[security]\nreplay_when_unreadable = \"reject\"");
    for (ns, toml, rejects) in [("skip", chain.trust_toml_with_aa(), false), ("reject", reject, true)] {
        let mut s = spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"));
        s.config.insert("namespace".into(), ns.into());
        s.config.insert("config".into(), toml);
        let a = h.runtime.load_actor(s).unwrap();
        let mut inst = a.instantiate().unwrap();
        let signer = format!("sec/{:016x}", u64::from_be_bytes(chain.at.id));
        h.runtime.services().cache.set("v2x-validator", ns, &signer, b"not replay marks".to_vec(), None).unwrap();
        // signed now (loading the actor took a while)
        let now_its_ms = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
            .saturating_sub(1_072_915_200_000)
            + 5_000;
        let body = build::signed_data(&chain.at, &testdata("c-its-parser-cam.uper"), 36, (now_its_ms - 20) * 1000, true).unwrap();
        let m = BrokerMessage { subject: format!("edgecell.v2x.in.{ns}"), body, reply_to: None };
        inst.handle_message(&m).unwrap().unwrap();
        let published = h.bus.drain();
        let verdict = published.iter().find(|p| p.subject == format!("edgecell.v2x.verdict.{ns}")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&verdict.body).unwrap();
        let check = |name: &str| v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned();
        assert_eq!(check("signature").unwrap()["confidence"], 1.0, "{ns}: {v}");
        assert_eq!(check("secured_freshness").unwrap()["confidence"], 1.0, "{ns}: {v}");
        assert_eq!(check("replay").unwrap()["skipped"], true, "{ns}: {v}");
        assert_eq!(check("replay_unverified").map(|c| c["confidence"].as_f64().unwrap()), rejects.then_some(0.0), "{ns}: {v}");
        assert_eq!(v["signed"], !rejects, "{ns}: {v}");
        if rejects {
            assert_eq!(v["verdict"], "rejected", "{ns}: {v}");
        }
        // a report may name what the CAM itself got wrong (its age), never the store
        for report in published.iter().filter(|p| p.subject == format!("edgecell.v2x.report.{ns}")) {
            let r: serde_json::Value = serde_json::from_slice(&report.body).unwrap();
            assert!(r["failed_checks"].as_array().unwrap().iter().all(|c| c["name"] != "replay_unverified"), "{r}");
        }
        let failures = h.runtime.services().metrics.snapshot().total("v2x_store_errors_total", &[("op", "decode-sec")]);
        assert!(failures.is_some_and(|n| n >= 1.0), "{failures:?}");
    }
}

/// On a lattice every message meets a new instance, which reads the sender's history together
/// with its stored configuration. Through the handler, one instance per message: the history
/// still decides (a jump is rejected), and senders never see each other's tracks.
#[test]
fn the_handler_on_a_new_instance_per_message_keeps_each_senders_history() {
    let h = host(edgecell::RuntimeConfig::default());
    let mut s = spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"));
    s.config.insert("namespace".into(), "fresh".into());
    let a = h.runtime.load_actor(s).unwrap();
    let send = |body: Vec<u8>| {
        let m = BrokerMessage { subject: "edgecell.v2x.in.fresh".into(), body, reply_to: None };
        a.instantiate().unwrap().handle_message(&m).unwrap().unwrap();
        let published = h.bus.drain();
        let verdict = published.iter().find(|p| p.subject == "edgecell.v2x.verdict.fresh").unwrap();
        serde_json::from_slice::<serde_json::Value>(&verdict.body).unwrap()
    };
    let check = |v: &serde_json::Value, name: &str| -> serde_json::Value {
        v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).cloned().unwrap()
    };
    let first = send(beacon(41, 1.0, 100.0, 10.0));
    assert_eq!(check(&first, "position_consistency")["skipped"], true, "{first}");
    // sender 42 right where 41 is: no history of its own yet
    let other = send(beacon(42, 1.5, 100.0, 10.0));
    assert_eq!(check(&other, "position_consistency")["skipped"], true, "{other}");
    let second = send(beacon(41, 2.0, 110.0, 10.0));
    assert_eq!(second["verdict"], "accepted", "{second}");
    assert_eq!(check(&second, "position_consistency")["skipped"], false, "{second}");
    let jump = send(beacon(41, 3.0, 700.0, 10.0));
    assert_eq!(jump["verdict"], "rejected", "{jump}");
    assert_eq!(check(&jump, "position_consistency")["confidence"], 0.0, "{jump}");
}

/// The intersection check on the actor reads the vehicles around the sender from the cache by
/// place (cells of 32 m): two cars overlapping across a cell border are seen, and a car that
/// moves on is taken out of the cells it left, so a third car parking where it was is not
/// flagged. Same on one long-lived instance and on a new instance per message (the lattice),
/// and the same result as the native validator, whose in-memory store returns every vehicle
/// heard (far ones included).
#[test]
fn the_intersection_check_finds_neighbours_by_place_and_forgets_where_they_left() {
    use edgecell_v2x::decode::VeremiRecord;
    let h = host(edgecell::RuntimeConfig::default());
    for fresh_per_message in [false, true] {
        let ns = if fresh_per_message { "cells-fresh" } else { "cells-kept" };
        let mut s = spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"));
        s.config.insert("namespace".into(), ns.into());
        let a = h.runtime.load_actor(s).unwrap();
        let mut kept = a.instantiate().unwrap();
        let mut native = edgecell_v2x::Validator::new(edgecell_v2x::config::Config::default()).unwrap();
        let subject = format!("edgecell.v2x.in.{ns}");
        let mut send = |pseudo: u64, t: f64, x: f64| {
            let body = serde_json::json!({
                "type": 3, "rcvTime": t, "sendTime": t, "sender": pseudo, "senderPseudo": pseudo, "messageID": 1,
                "pos": [x, 0.0, 0.0], "pos_noise": [0.5, 0.5, 0.0], "spd": [0.5, 0.0, 0.0], "spd_noise": [0.1, 0.1, 0.0],
                "acl": [0.0, 0.0, 0.0], "hed": [1.0, 0.0, 0.0], "hed_noise": [0.02, 0.02, 0.0]
            })
            .to_string()
            .into_bytes();
            let expected = native.process_veremi(&VeremiRecord::parse(&body).unwrap()).unwrap().unwrap();
            let expected = *expected.checks.iter().find(|c| c.name == "intersection").unwrap();
            let m = BrokerMessage { subject: subject.clone(), body, reply_to: None };
            if fresh_per_message {
                a.instantiate().unwrap().handle_message(&m).unwrap().unwrap();
            } else {
                kept.handle_message(&m).unwrap().unwrap();
            }
            let published = h.bus.drain();
            let verdict = published.iter().find(|p| p.subject.starts_with("edgecell.v2x.verdict.")).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&verdict.body).unwrap();
            let got = v["checks"].as_array().unwrap().iter().find(|c| c["name"] == "intersection").cloned().unwrap();
            assert_eq!(got["skipped"], expected.skipped, "{ns} {pseudo}@{x}: actor {got}, native {expected:?}");
            let confidence = got["confidence"].as_f64().unwrap();
            assert!((confidence - f64::from(expected.confidence)).abs() < 1e-6, "{ns} {pseudo}@{x}: actor {got}, native {expected:?}");
            got
        };
        let failed = |c: &serde_json::Value| c["skipped"] == false && c["confidence"].as_f64().unwrap() < 0.5;
        // 4.5 m cars (the default) heading east; x = 32 is a cell border
        let first = send(51, 1.0, 30.5);
        assert!(first["skipped"] == false && !failed(&first), "{ns}: nobody around, nothing overlaps: {first}");
        let overlapping = send(52, 1.0, 33.0);
        assert!(failed(&overlapping), "{ns}: 2 m of overlap across the border: {overlapping}");
        // 51 drives on (a jump, judged and stored all the same)
        send(51, 1.1, 80.0);
        // 53 stops where 51 was, clear of 52: 51's old footprint must be gone
        let after = send(53, 1.15, 28.0);
        assert!(!failed(&after), "{ns}: 51 left this place: {after}");
        // and 54 right on top of 51's new place is flagged
        let on_top = send(54, 1.2, 80.5);
        assert!(failed(&on_top), "{ns}: {on_top}");
        // far from everyone: passes, as natively where the store returns every vehicle
        let far = send(55, 1.3, 500.0);
        assert!(far["skipped"] == false && !failed(&far), "{ns}: {far}");
    }
}

// ---- deep input: the component's small shadow stack must hold it --------------------------

use crate::fusion::{JSON_MAX_DEPTH, nested_json, with_pad};

fn configure(inst: &mut edgecell::ActorInstance, toml: &str) -> Result<(), V2xError> {
    let v = inst.v2x_validator().unwrap();
    inst.call(|s, _| v.edgecell_v2x_validator().call_configure(s, toml)).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deep JSON and TOML through every door: the road map (GeoJSON, read recursively), the
/// configuration TOML, JSON beacons and VeReMi lines. The deepest
/// input each parser accepts is handled; deeper input gets a typed error, never a trap.
#[test]
fn the_deepest_json_and_toml_the_parsers_accept_and_hostile_nesting_never_trap() {
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();

    let map = |geojson: &str| format!("map_frame = \"local\"\nmap_geojson = '''{geojson}'''\n");
    // feature collections in feature collections, as deep as serde_json allows (two levels
    // each, the innermost object the 127th): read recursively, then refused by the map's own
    // nesting limit; one level more is refused by serde_json
    let collections = |k: usize, inner: &str| format!("{}{inner}{}", r#"{"type":"FeatureCollection","features":["#.repeat(k), "]}".repeat(k));
    let e = configure(&mut inst, &map(&collections(JSON_MAX_DEPTH / 2, "{}"))).unwrap_err();
    assert!(matches!(&e, V2xError::InvalidConfig(m) if m.contains("nesting too deep")), "{e:?}");
    let e = configure(&mut inst, &map(&collections(JSON_MAX_DEPTH / 2, r#"{"type":{}}"#))).unwrap_err();
    assert!(matches!(&e, V2xError::InvalidConfig(m) if m.contains("recursion limit exceeded")), "{e:?}");
    // arrays of any depth where no geometry can be are skipped without recursion
    for depth in [JSON_MAX_DEPTH, 200_000] {
        let e = configure(&mut inst, &map(&nested_json(depth))).unwrap_err();
        assert!(matches!(&e, V2xError::InvalidConfig(m) if m.contains("no LineString")), "{e:?}");
    }
    // a real map whose feature carries the deepest extra member still loads
    let feature = br#"{"type":"Feature","properties":{},"geometry":{"type":"LineString","coordinates":[[-50.0,0.0],[5000.0,0.0]]}}"#;
    let padded = String::from_utf8(with_pad(feature, JSON_MAX_DEPTH - 1)).unwrap();
    configure(&mut inst, &map(&padded)).unwrap();
    for depth in [79, 80, 81, 100_000] {
        let e = configure(&mut inst, &format!("disabled_checks = {}", nested_json(depth))).unwrap_err();
        assert!(matches!(e, V2xError::InvalidConfig(_)), "{depth}: {e:?}");
    }

    // beacons with the deepest extra field are judged (on the map: accepted)
    let v = validate(&mut inst, &msg(MessageFormat::JsonBeacon, with_pad(&beacon(7, 1.0, 0.0, 10.0), JSON_MAX_DEPTH - 1), 0)).unwrap();
    assert_eq!(v.verdict, Verdict::Accepted, "{:?}", failed(&v));
    // an unknown field is skipped without recursion (serde_json's `ignore_value` loops), so
    // any depth of it is fine; a known field is typed (no recursion either)
    let v = validate(&mut inst, &msg(MessageFormat::JsonBeacon, with_pad(&beacon(7, 1.5, 5.0, 10.0), 30_000), 0)).unwrap();
    assert_eq!(v.station_id, 9);
    let mut deep_pos = String::from_utf8(beacon(7, 1.6, 6.0, 10.0)).unwrap();
    deep_pos = deep_pos.replacen("\"pos\":[", &format!("\"pos\":[{},", nested_json(JSON_MAX_DEPTH)), 1);
    let e = validate(&mut inst, &msg(MessageFormat::JsonBeacon, deep_pos.into_bytes(), 0)).unwrap_err();
    assert!(matches!(&e, V2xError::Decode(m) if m.contains("invalid type")), "{e:?}");
    let line = |body: Vec<u8>| BrokerMessage { subject: "edgecell.v2x.in.deep".into(), body, reply_to: None };
    inst.handle_message(&line(with_pad(&beacon(7, 2.0, 10.0, 10.0), JSON_MAX_DEPTH - 1))).unwrap().unwrap();
    let e = inst.handle_message(&line(["{\"type\":".as_bytes(), "[".repeat(60_000).as_bytes()].concat())).unwrap().unwrap_err();
    assert!(e.starts_with("decode") && e.contains("invalid type"), "{e}");

    assert!(!inst.is_poisoned());
}

/// Unix ns of `its_s` (seconds since 2004, TAI).
fn unix_ns(its_s: u64) -> u64 {
    (its_s * 1000 + 1_072_915_200_000 - 5_000) * 1_000_000
}

/// Signed data nested in signed data `levels` times around an unsecured payload (the outer
/// signatures do not cover what was spliced in, so they fail: decoding happens first).
fn nested_secured(signer: &edgecell_v2x::security::build::P256Identity, levels: usize, gen_us: u64) -> Vec<u8> {
    let marker = [0xa5u8; 16];
    let unsecured = [[0x03, 0x80, 0x10].as_slice(), &marker].concat();
    let sign = || edgecell_v2x::security::build::signed_data(signer, &marker, 36, gen_us, false).unwrap();
    let mut data = sign();
    for _ in 0..levels {
        let outer = sign();
        let at = outer.windows(unsecured.len()).position(|w| w == unsecured).unwrap();
        data = [&outer[..at], &data[..], &outer[at + unsecured.len()..]].concat();
    }
    data
}

/// The secured path: P-256 and brainpoolP384r1 verification (a real EU TLM certificate and the
/// trust list it signs) and 1609.2 data nested as deep as the OER guard lets rasn decode it
/// (recursive decoding), then deeper. Typed errors or verdicts, never a trap.
#[test]
fn signatures_and_the_deepest_nested_secured_data_never_trap() {
    use edgecell_v2x::oer_guard::{MAX_NESTING, check_ieee1609_dot2_data};
    use edgecell_v2x::security::{TrustStore, build};
    let tlm = testdata("E7A4B2B045E7ACF9.oer");
    let ectl = testdata("CE4CF6C19BFED720.oer");
    let h = host(edgecell::RuntimeConfig::default());
    let a = actor(&h);
    let mut inst = a.instantiate().unwrap();

    // brainpoolP384r1: the anchor's self-signature is verified by `configure`, the ECTL with it
    configure(&mut inst, &format!("[security]\ntrust_anchors_hex = [\"{}\"]\n", hex(&tlm))).unwrap();
    let tlm_from = TrustStore::new().add_anchor(&tlm).unwrap().valid_from_s;
    let r = validate(&mut inst, &msg(MessageFormat::Secured, ectl, unix_ns(tlm_from + 86_400)));
    // verified, but its payload is a trust list, not an ITS message
    assert!(matches!(&r, Err(V2xError::Decode(m) | V2xError::Unsupported(m)) if !m.contains("signature")), "{r:?}");

    // P-256: a CAM signed by the AT of a root → AA → AT chain, the AT certificate attached
    let now_s = 700_000_000;
    let chain = build::CamChain::new(u32::try_from(now_s - 3600).unwrap()).unwrap();
    configure(&mut inst, &chain.trust_toml()).unwrap();
    let cam = testdata("c-its-parser-cam.uper");
    let signed = build::signed_data(&chain.at, &cam, 36, now_s * 1_000_000 - 10_000, true).unwrap();
    let v = validate(&mut inst, &msg(MessageFormat::Secured, signed, unix_ns(now_s))).unwrap();
    // the AA is not known to this validator: the AT certificate cannot be chained
    assert!(!v.signed && failed(&v).contains(&"signature"), "{v:?}");
    // the root signs certificates, not data (1609.2: no app permissions, no PSID)
    let by_root = build::signed_data(&chain.root, &cam, 36, now_s * 1_000_000 - 10_000, false).unwrap();
    let v = validate(&mut inst, &msg(MessageFormat::Secured, by_root, unix_ns(now_s))).unwrap();
    assert!(!v.signed && failed(&v).contains(&"signature"), "{v:?}");
    // with the AA configured the AT's certificate chains
    configure(&mut inst, &chain.trust_toml_with_aa()).unwrap();
    let signed = build::signed_data(&chain.at, &cam, 36, now_s * 1_000_000 - 10_000, true).unwrap();
    let v = validate(&mut inst, &msg(MessageFormat::Secured, signed, unix_ns(now_s))).unwrap();
    assert!(v.signed && v.station_id == 3_725_855_973, "{v:?}");

    // nesting: the guard lets MAX_NESTING levels of data below the top one through to rasn
    // (signed data in signed data …, the innermost unsecured), refuses more
    let levels = usize::try_from(MAX_NESTING).unwrap() - 1;
    let deepest = nested_secured(&chain.root, levels, now_s * 1_000_000 - 5_000);
    assert!(check_ieee1609_dot2_data(&deepest).is_ok());
    let r = validate(&mut inst, &msg(MessageFormat::Secured, deepest, unix_ns(now_s)));
    assert!(matches!(&r, Err(V2xError::Decode(m)) if m.starts_with("security")), "{r:?}");
    for levels in [levels + 1, 200] {
        let deeper = nested_secured(&chain.root, levels, now_s * 1_000_000 - 5_000);
        assert!(check_ieee1609_dot2_data(&deeper).is_err());
        let r = validate(&mut inst, &msg(MessageFormat::Secured, deeper, unix_ns(now_s)));
        assert!(matches!(&r, Err(V2xError::Decode(m)) if m.contains("nested too deeply")), "{levels}: {r:?}");
    }
    assert!(!inst.is_poisoned());
}


/// Concurrent instances (on a lattice, one per message) handling beacons of one sender at once
/// lose no track update: every message counts in its sender's track (a track write expects the
/// version its message read; on a conflict the message is judged again). Cells are last
/// writer wins: after one more beacon from each vehicle, each one's newest footprint is filed.
#[test]
fn concurrent_instances_lose_no_history() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 25;
    let h = host(edgecell::RuntimeConfig::default());
    let mut s = spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"));
    s.config.insert("namespace".into(), "race".into());
    let a = h.runtime.load_actor(s).unwrap();
    let send = |body: Vec<u8>| -> Result<(), String> {
        let m = BrokerMessage { subject: "edgecell.v2x.in.race".into(), body, reply_to: None };
        let mut inst = a.instantiate().map_err(|e| e.to_string())?;
        inst.handle_message(&m).map_err(|e| e.to_string())?
    };
    let start = std::sync::Barrier::new(usize::try_from(THREADS).unwrap());
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (send, start) = (&send, &start);
                scope.spawn(move || {
                    // a failure is collected, not raised: a thread that stopped would leave the
                    // others waiting at the barrier
                    let mut failures = Vec::new();
                    for r in 0..ROUNDS {
                        // rounds in step, as beacons heard at one time are (a cell keeps only
                        // footprints within its time window of the newest)
                        start.wait();
                        let time = 1.0 + ((r * THREADS + t) as f64) * 0.05;
                        // one sender heard by every instance, and one vehicle per thread beside it
                        failures.extend(send(beacon(77, time, 100.0, 0.0)).err());
                        failures.extend(send(beacon(100 + t, time, 102.0 + 3.0 * t as f64, 0.0)).err());
                    }
                    failures
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{failures:?}");
    h.bus.drain();
    let conflicts = h.runtime.services().metrics.snapshot().total("v2x_store_conflicts_total", &[]).unwrap_or(0.0);
    // not asserted: on a loaded machine (the whole suite on 2 cores) the threads can run one
    // after another; run alone, this test sees conflicts, and it fails with the cache's
    // version check disabled
    eprintln!("{conflicts} conflicting writes judged again");
    let cache = &h.runtime.services().cache;
    let track = |p: u64| -> edgecell_v2x::history::Track {
        let e = cache.get("v2x-validator", "race", &format!("track/{p}")).unwrap().unwrap();
        serde_json::from_slice(&e.value).unwrap()
    };
    assert_eq!(track(77).count, THREADS * ROUNDS, "every message of the shared sender counted once ({conflicts} conflicts)");
    for t in 0..THREADS {
        assert_eq!(track(100 + t).count, ROUNDS);
    }
    // one more beacon each, one at a time
    let time = 1.0 + ((ROUNDS * THREADS) as f64) * 0.05;
    for (p, x) in (0..THREADS).map(|t| (100 + t, 102.0 + 3.0 * t as f64)).chain([(77, 100.0)]) {
        send(beacon(p, time, x, 0.0)).unwrap();
    }
    h.bus.drain();
    let mut filed = std::collections::HashMap::new();
    for c in edgecell_v2x::history::grid::cells_touching(edgecell_v2x::geo::Xy::new(105.0, 0.0), 20.0) {
        if let Some(e) = cache.get("v2x-validator", "race", &edgecell_v2x::history::grid::key(c)).unwrap() {
            for fp in edgecell_v2x::history::grid::decode(&e.value).unwrap() {
                let newest: &mut f64 = filed.entry(fp.pseudonym).or_insert(f64::MIN);
                *newest = newest.max(fp.receive_s);
            }
        }
    }
    for p in (100..100 + THREADS).chain([77]) {
        assert_eq!(filed.get(&p).copied(), Some(track(p).last_receive_s), "vehicle {p}: its newest footprint is filed");
    }
}

/// Copies of one signed CAM handled by concurrent instances at once: exactly one passes the
/// replay check, whatever the interleaving (the replay mark is committed with `set-many-if`).
/// Copies often run one after another here (the window between reading the mark and writing
/// it is short after the signature check), so this asserts the outcome, not that a conflict
/// happened; with the cache's check disabled, two copies passed in most runs.
#[test]
fn concurrent_copies_of_a_signed_message_pass_the_replay_check_once() {
    use edgecell_v2x::security::build;
    const THREADS: usize = 4;
    let h = host(edgecell::RuntimeConfig::default());
    let now_s = 700_000_000;
    let chain = build::CamChain::new(u32::try_from(now_s - 3600).unwrap()).unwrap();
    let cam = testdata("c-its-parser-cam.uper");
    let start = std::sync::Barrier::new(THREADS);
    // judged up to 8 times (the default), and once: a conflict then gives the message up, and
    // its replay mark, tried alone, fails too, so its replay check is skipped (not passed)
    let actors: Vec<_> = ["8", "1"]
        .into_iter()
        .map(|attempts| {
            let mut s = spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"));
            s.config.insert("namespace".into(), format!("copies-{attempts}"));
            s.config.insert("history-attempts".into(), attempts.into());
            let a = h.runtime.load_actor(s).unwrap();
            configure(&mut a.instantiate().unwrap(), &chain.trust_toml_with_aa()).unwrap();
            (attempts, a)
        })
        .collect();
    for (attempts, a, round) in actors.iter().flat_map(|(n, a)| (0..8u64).map(move |r| (n, a, r))) {
        let signed = build::signed_data(&chain.at, &cam, 36, now_s * 1_000_000 - 10_000 + round * 1000, true).unwrap();
        let m = msg(MessageFormat::Secured, signed, unix_ns(now_s));
        // instances made first: nothing that can fail stands before the barrier
        let instances: Vec<_> = (0..THREADS).map(|_| a.instantiate().unwrap()).collect();
        let verdicts: Vec<Result<Validation, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = instances
                .into_iter()
                .map(|mut inst| {
                    let (m, start) = (&m, &start);
                    scope.spawn(move || {
                        start.wait();
                        let v = inst.v2x_validator().map_err(|e| e.to_string())?;
                        inst.call(|s, _| v.edgecell_v2x_validator().call_validate(s, m))
                            .map_err(|e| e.to_string())?
                            .map_err(|e| format!("{e:?}"))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let verdicts: Vec<Validation> = verdicts.into_iter().collect::<Result<_, _>>().unwrap();
        for v in &verdicts {
            assert!(!failed(v).contains(&"signature"), "{v:?}");
        }
        let passed = verdicts.iter().filter(|v| v.checks.iter().any(|c| c.name == "replay" && !c.skipped && c.confidence >= 0.5)).count();
        assert_eq!(passed, 1, "attempts {attempts}, round {round}: {:?}", verdicts.iter().map(failed).collect::<Vec<_>>());
    }
}

/// `history-attempts` outside 1–64 is a typed configuration error, not a default.
#[test]
fn history_attempts_out_of_range_is_a_config_error() {
    let h = host(edgecell::RuntimeConfig::default());
    for bad in ["0", "65", "many"] {
        let mut s = spec("v2x-validator", common::component("edgecell_v2x_validator.wasm"));
        s.config.insert("history-attempts".into(), bad.into());
        let a = h.runtime.load_actor(s).unwrap();
        let mut inst = a.instantiate().unwrap();
        let r = validate(&mut inst, &msg(MessageFormat::JsonBeacon, beacon(5, 1.0, 0.0, 10.0), 0));
        assert!(matches!(&r, Err(V2xError::InvalidConfig(m)) if m.contains("history-attempts")), "{bad}: {r:?}");
        assert!(!inst.is_poisoned());
    }
}
