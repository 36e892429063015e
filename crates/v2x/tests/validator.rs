//! Validator end to end: unsigned and signed CAMs, VeReMi beacons, map, policies, risk.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_lossless
)]

use edgecell_v2x::checks::{CheckResult, names};
use edgecell_v2x::config::{Config, VerdictPolicy};
use edgecell_v2x::decode::VeremiRecord;
use edgecell_v2x::history::HistoryStore;
use edgecell_v2x::map::{MapFrame, RoadMap};
use edgecell_v2x::observation::{Position, its_ms_to_unix_ns};
use edgecell_v2x::security::build;
use edgecell_v2x::validator::{MessageFormat, ReceiveContext, ReceiverState, Validator, Verdict};

const CAM: &[u8] = include_bytes!("../testdata/c-its-parser-cam.uper");
const CAM_GDT: u64 = 51_136;

/// A receive time (ITS ms) 10 ms after the CAM's generationDeltaTime.
fn rcv_its_ms() -> u64 {
    let base = 700_000_000_000u64;
    base - base % 65_536 + CAM_GDT + 10
}

fn check<'a>(v: &'a edgecell_v2x::Validation, name: &str) -> &'a edgecell_v2x::checks::CheckResult {
    v.checks.iter().find(|c| c.name == name).expect(name)
}

#[test]
fn unsigned_cam_is_validated() {
    let mut v = Validator::new(Config::default()).expect("validator");
    let ctx = ReceiveContext {
        received_at_ns: its_ms_to_unix_ns(rcv_its_ms()),
        receiver: Some(ReceiverState {
            position: Position::Geo {
                lat: 53.5627,
                lon: 9.9761,
                alt: None,
            },
            speed_mps: Some(0.0),
            heading_deg: Some(0.0),
            yaw_rate_dps: None,
        }),
    };
    let r = v.validate(MessageFormat::Uper, CAM, &ctx).expect("valid");
    assert_eq!(r.station_id, 3_725_855_973);
    assert_eq!(r.message_kind.as_str(), "cam");
    assert_eq!(r.generation_delta_time, 51_136);
    assert!((r.latitude.expect("lat") - 53.562_651_8).abs() < 1e-9);
    assert!((r.speed_mps.expect("v") - 12.77).abs() < 1e-9);
    assert!((r.heading_deg.expect("h") - 199.4).abs() < 1e-9);
    assert!(!r.signed);
    assert_eq!(r.checks.len(), names::PLAUSIBILITY.len());
    // first beacon ~7 m from the receiver: sudden appearance fails, so it is rejected
    assert!(check(&r, names::SUDDEN_APPEARANCE).failed());
    assert!(!check(&r, names::RANGE).failed());
    assert!(check(&r, names::POSITION_CONSISTENCY).skipped);
    assert!(!check(&r, names::FRESHNESS).failed());
    assert_eq!(r.verdict, Verdict::Rejected);
    assert!(r.risk.is_some());
    let rep = r.report(1, 5).expect("report");
    assert_eq!(rep.reported_station_id, 3_725_855_973);
    assert_eq!(rep.failed_checks.len(), 1);
    // same CAM without a receiver: nothing fails
    let mut v2 = Validator::new(Config::default()).expect("validator");
    let r2 = v2
        .validate(
            MessageFormat::Uper,
            CAM,
            &ReceiveContext {
                received_at_ns: ctx.received_at_ns,
                receiver: None,
            },
        )
        .expect("ok");
    assert_eq!(r2.verdict, Verdict::Accepted, "{:?}", r2.failed_checks());
    assert!(r2.risk.is_none());
    // a late CAM (5 s after generation) fails freshness
    let mut v3 = Validator::new(Config::default()).expect("validator");
    let late = ReceiveContext {
        received_at_ns: its_ms_to_unix_ns(rcv_its_ms() + 5_000),
        receiver: None,
    };
    assert!(
        check(
            &v3.validate(MessageFormat::Uper, CAM, &late).expect("ok"),
            names::FRESHNESS
        )
        .failed()
    );
}

fn beacon(t: f64, pseudo: u64, x: f64, y: f64, vx: f64, vy: f64) -> Vec<u8> {
    let n = vx.hypot(vy).max(1e-9);
    format!(
        r#"{{"type":3,"rcvTime":{t},"sendTime":{t},"sender":5,"senderPseudo":{pseudo},"messageID":1,"pos":[{x},{y},0],"pos_noise":[0,0,0],"spd":[{vx},{vy},0],"spd_noise":[0,0,0],"acl":[0,0,0],"hed":[{},{},0]}}"#,
        vx / n,
        vy / n
    )
    .into_bytes()
}

fn ctx() -> ReceiveContext {
    ReceiveContext {
        received_at_ns: 0,
        receiver: Some(ReceiverState {
            position: Position::Local { x: 0.0, y: -300.0 },
            speed_mps: None,
            heading_deg: None,
            yaw_rate_dps: None,
        }),
    }
}

#[test]
fn veremi_beacons_consistent_then_jump() {
    let mut v = Validator::new(Config::default()).expect("validator");
    let a = v
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(10.0, 1, 0.0, 0.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("a");
    assert_eq!(a.verdict, Verdict::Accepted, "{:?}", a.failed_checks());
    let b = v
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(11.0, 1, 10.0, 0.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("b");
    assert_eq!(b.verdict, Verdict::Accepted, "{:?}", b.failed_checks());
    for n in [
        names::POSITION_CONSISTENCY,
        names::SPEED_CONSISTENCY,
        names::POSITION_SPEED,
        names::POSITION_HEADING,
        names::BEACON_FREQUENCY,
    ] {
        assert!(!check(&b, n).skipped && !check(&b, n).failed(), "{n}");
    }
    // 80 m jump in one second at a claimed 10 m/s
    let c = v
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(12.0, 1, 90.0, 0.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("c");
    assert_eq!(c.verdict, Verdict::Rejected);
    assert!(check(&c, names::POSITION_CONSISTENCY).failed());
    assert!(check(&c, names::POSITION_SPEED).failed());
    // a second pseudonym on top of the first one: intersection
    let d = v
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(12.2, 2, 90.5, 0.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("d");
    assert!(check(&d, names::INTERSECTION).failed(), "{:?}", d.checks);
    // too fast and too frequent
    let e = v
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(12.5, 1, 95.0, 0.0, 70.0, 0.0),
            &ctx(),
        )
        .expect("e");
    assert!(check(&e, names::SPEED).failed());
    assert!(check(&e, names::BEACON_FREQUENCY).failed());
}

#[test]
fn map_check_and_policies() {
    let map = RoadMap::from_geojson(r#"{"type":"LineString","coordinates":[[-1000,0],[1000,0]]}"#)
        .expect("map");
    let mut v = Validator::new(Config::default()).expect("validator");
    v.set_map(map, MapFrame::Local);
    let on = v
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(1.0, 1, 0.0, 1.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("on");
    assert!(!check(&on, names::MAP).failed() && !check(&on, names::MAP).skipped);
    let off = v
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(1.0, 2, 50.0, 30.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("off");
    assert!(check(&off, names::MAP).failed());
    assert_eq!(off.verdict, Verdict::Rejected);

    // weighted policy: the map failure alone (weight 0.1 of 11) does not reject
    let toml = "[policy]\nkind = \"weighted\"\nthreshold = 0.8\nweights = { map = 0.1 }\n";
    let mut w = Validator::from_toml(toml).expect("weighted");
    let map = RoadMap::from_geojson(r#"{"type":"LineString","coordinates":[[-1000,0],[1000,0]]}"#)
        .expect("map");
    w.set_map(map, MapFrame::Local);
    let off = w
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(1.0, 2, 50.0, 30.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("off");
    assert!(check(&off, names::MAP).failed());
    assert_eq!(off.verdict, Verdict::Accepted);
    assert!(off.score > 0.8 && off.score < 1.0);
    // catch policy with a product floor
    let c = Config {
        policy: VerdictPolicy::Catch {
            thresholds: Default::default(),
            min_product: 0.99,
        },
        ..Config::default()
    };
    let mut cv = Validator::new(c).expect("catch");
    let ok = cv
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(1.0, 1, 0.0, 0.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("ok");
    assert_eq!(ok.verdict, Verdict::Accepted);
    // disabled checks are reported skipped
    let mut dv = Validator::from_toml("disabled_checks = [\"range_plausibility\"]\n").expect("dv");
    let r = dv
        .validate(
            MessageFormat::JsonBeacon,
            &beacon(1.0, 1, 0.0, 0.0, 10.0, 0.0),
            &ctx(),
        )
        .expect("r");
    assert!(check(&r, names::RANGE).skipped);
}

#[test]
fn a_message_failing_a_security_check_leaves_no_history() {
    let mut v = Validator::new(Config::default()).expect("validator");
    let rec = VeremiRecord::parse(&beacon(10.0, 7, 0.0, 0.0, 10.0, 0.0)).expect("line");
    let obs = rec.to_observation().expect("observation");
    let forged = vec![CheckResult::ran(names::SIGNATURE, 0.0)];
    let r = v.validate_observation(&obs, 10.0, None, false, forged);
    assert_eq!(r.verdict, Verdict::Rejected);
    assert!(
        v.history().load(7, 10.0).is_none(),
        "a forged beacon moved the track"
    );
    let honest = vec![CheckResult::ran(names::SIGNATURE, 1.0)];
    v.validate_observation(&obs, 10.0, None, true, honest);
    assert!(v.history().load(7, 10.0).is_some());
}

#[test]
fn one_far_future_receive_time_does_not_age_other_senders() {
    let mut v = Validator::new(Config::default()).expect("validator");
    let line = |t, p, x| beacon(t, p, x, 0.0, 10.0, 0.0);
    v.validate(MessageFormat::JsonBeacon, &line(10.0, 1, 0.0), &ctx())
        .expect("first");
    // another sender's line stamped ~30 years ahead, then the first sender again
    v.validate(MessageFormat::JsonBeacon, &line(1e9, 2, 500.0), &ctx())
        .expect("far");
    let b = v
        .validate(MessageFormat::JsonBeacon, &line(11.0, 1, 10.0), &ctx())
        .expect("second");
    assert!(
        !check(&b, names::POSITION_CONSISTENCY).skipped,
        "history was forgotten"
    );
    assert_eq!(b.verdict, Verdict::Accepted, "{:?}", b.failed_checks());
    // a trace replayed from its start: the old track (later times) is not its history
    let again = v
        .validate(MessageFormat::JsonBeacon, &line(-100.0, 1, 0.0), &ctx())
        .expect("again");
    assert!(check(&again, names::POSITION_CONSISTENCY).skipped);
}

#[test]
fn signed_cam_verify_replay_and_tamper() {
    let now_ms = rcv_its_ms();
    let start = u32::try_from(now_ms / 1000 - 3600).expect("u32");
    let chain = build::CamChain::new(start).expect("chain");
    let cfg = format!("{}require_signature = true\n", chain.trust_toml());
    let build::CamChain { aa, at, .. } = chain;
    let mut v = Validator::from_toml(&cfg).expect("validator");
    let now_ns = its_ms_to_unix_ns(now_ms);
    v.add_certificate(&aa.cert, now_ns).expect("aa");
    let ctx = ReceiveContext {
        received_at_ns: now_ns,
        receiver: None,
    };

    let msg = build::signed_data(&at, CAM, 36, (now_ms - 10) * 1000, true).expect("sign");
    let r = v
        .validate(MessageFormat::Secured, &msg, &ctx)
        .expect("secured");
    assert!(r.signed);
    assert_eq!(r.station_id, 3_725_855_973);
    assert!(
        !check(&r, names::SIGNATURE).failed()
            && !check(&r, names::REPLAY).failed()
            && !check(&r, names::PERMISSION).failed()
    );
    assert_eq!(r.verdict, Verdict::Accepted, "{:?}", r.failed_checks());
    // replayed: same generation time again
    let again = v
        .validate(MessageFormat::Secured, &msg, &ctx)
        .expect("again");
    assert!(check(&again, names::REPLAY).failed());
    assert_eq!(again.verdict, Verdict::Rejected);
    // digest signer, newer generation time: signature and replay pass (certificate cached);
    // the plausibility checks still see the same CAM content again (beacon frequency fails)
    let next = build::signed_data(&at, CAM, 36, (now_ms - 5) * 1000, false).expect("sign");
    let n = v
        .validate(MessageFormat::Secured, &next, &ctx)
        .expect("next");
    assert!(
        n.signed && !check(&n, names::REPLAY).failed() && !check(&n, names::SIGNATURE).failed()
    );
    assert_eq!(n.failed_checks(), vec![names::BEACON_FREQUENCY]);
    // stale generation time
    let stale = build::signed_data(&at, CAM, 36, (now_ms - 10_000) * 1000, false).expect("sign");
    let s = v
        .validate(MessageFormat::Secured, &stale, &ctx)
        .expect("stale");
    assert!(check(&s, names::SECURED_FRESHNESS).failed());
    // tampered signature byte: rejected with the signature check failed
    let mut bad = build::signed_data(&at, CAM, 36, now_ms * 1000, false).expect("sign");
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let b = v.validate(MessageFormat::Secured, &bad, &ctx).expect("bad");
    assert!(check(&b, names::SIGNATURE).failed());
    assert!(!b.signed);
    assert_eq!(b.verdict, Verdict::Rejected);
    // signed an hour ahead: not fresh, and it does not become the replay mark, so the signer's
    // next message in time still passes the replay check
    let ahead = build::signed_data(&at, CAM, 36, (now_ms + 3_600_000) * 1000, false).expect("sign");
    let a = v
        .validate(MessageFormat::Secured, &ahead, &ctx)
        .expect("ahead");
    assert!(check(&a, names::SECURED_FRESHNESS).failed());
    let on_time = build::signed_data(&at, CAM, 36, (now_ms + 1) * 1000, false).expect("sign");
    let o = v
        .validate(MessageFormat::Secured, &on_time, &ctx)
        .expect("on time");
    assert!(!check(&o, names::REPLAY).failed() && !check(&o, names::SECURED_FRESHNESS).failed());
    // unsigned CAM when signatures are required
    let u = v.validate(MessageFormat::Uper, CAM, &ctx).expect("u");
    assert_eq!(u.verdict, Verdict::Rejected);
    // garbage as secured: typed error
    assert!(
        v.validate(MessageFormat::Secured, &[3, 0x81, 0, 1, 2], &ctx)
            .is_err()
    );
}

/// A CAM signed under a certificate whose region does not hold the CAM's position fails the
/// `certificate_region` check and is rejected; under one whose region holds it, it passes.
/// Signed with a generation location outside the region: refused as 1609.2 says, with the
/// signature itself reported good.
#[test]
fn certificate_regions_hold_the_positions_signed_under_them() {
    let now_ms = rcv_its_ms();
    let start = u32::try_from(now_ms / 1000 - 3600).expect("u32");
    let key = |n: u8| build::key_from_seed([n; 32]).expect("key");
    let root = build::certificate("root", &key(21), None, start, 1000, &[]).expect("root");
    let probe = Validator::new(Config::default())
        .expect("validator")
        .validate(MessageFormat::Uper, CAM, &ReceiveContext { received_at_ns: its_ms_to_unix_ns(now_ms), receiver: None })
        .expect("unsigned");
    let (lat, lon) = (probe.latitude.expect("lat"), probe.longitude.expect("lon"));
    // the AA covers 60 km around the CAM; one AT 10 km around it, another 10 km around a point
    // 30 km north (inside the AA's region, but not holding the CAM)
    let aa = build::certificate_in("aa", &key(22), Some(&root), start, 1000, &[], Some(build::circle(lat, lon, 60_000).expect("circle"))).expect("aa");
    let here = build::certificate_in("at-here", &key(23), Some(&aa), start, 100, &[36], Some(build::circle(lat, lon, 10_000).expect("circle"))).expect("at");
    let north = build::certificate_in("at-north", &key(24), Some(&aa), start, 100, &[36], Some(build::circle(lat + 0.27, lon, 10_000).expect("circle"))).expect("at");
    let cfg = build::trust_toml(&root, &[&aa]);
    let ctx = ReceiveContext { received_at_ns: its_ms_to_unix_ns(now_ms), receiver: None };

    let mut v = Validator::from_toml(&cfg).expect("validator");
    let ok = build::signed_data(&here, CAM, 36, (now_ms - 10) * 1000, true).expect("sign");
    let r = v.validate(MessageFormat::Secured, &ok, &ctx).expect("here");
    assert!(r.signed && !check(&r, names::CERT_REGION).failed() && !check(&r, names::CERT_REGION).skipped, "{r:?}");
    assert_eq!(r.verdict, Verdict::Accepted, "{:?}", r.failed_checks());

    let mut v = Validator::from_toml(&cfg).expect("validator");
    let away = build::signed_data(&north, CAM, 36, (now_ms - 10) * 1000, true).expect("sign");
    let r = v.validate(MessageFormat::Secured, &away, &ctx).expect("north");
    assert!(!check(&r, names::SIGNATURE).failed());
    assert_eq!(r.failed_checks(), vec![names::CERT_REGION]);
    assert_eq!(r.verdict, Verdict::Rejected);

    // generation location in the header, 30 km north of the signer's region's centre
    let mut v = Validator::from_toml(&cfg).expect("validator");
    let far = build::signed_data_at(&here, CAM, 36, (now_ms - 10) * 1000, true, Some((lat + 0.27, lon))).expect("sign");
    let r = v.validate(MessageFormat::Secured, &far, &ctx).expect("far");
    assert!(!check(&r, names::SIGNATURE).failed());
    assert!(check(&r, names::CERT_REGION).failed());
    assert_eq!(r.verdict, Verdict::Rejected);
    let near = build::signed_data_at(&here, CAM, 36, (now_ms - 5) * 1000, true, Some((lat + 0.01, lon))).expect("sign");
    let r = v.validate(MessageFormat::Secured, &near, &ctx).expect("near");
    assert!(!check(&r, names::CERT_REGION).failed(), "{r:?}");
}

/// An AA given as a CA certificate in the configuration (as a certificate trust list would
/// give it) lets a validator verify an AT it has never seen, from configuration alone; the AA
/// is verified against the root when first used, then cached. Without it, or with a forged
/// one, the AT's signer is unknown.
#[test]
fn ca_certificates_from_the_configuration_complete_the_chain() {
    let now_ms = rcv_its_ms();
    let start = u32::try_from(now_ms / 1000 - 3600).expect("u32");
    let chain = build::CamChain::new(start).expect("chain");
    let ctx = ReceiveContext {
        received_at_ns: its_ms_to_unix_ns(now_ms),
        receiver: None,
    };
    let msg = build::signed_data(&chain.at, CAM, 36, (now_ms - 10) * 1000, true).expect("sign");
    // the signer is read ahead (certificate or digest) without verifying anything
    let at_id =
        edgecell_v2x::security::hashed_id8(edgecell_v2x::security::HashAlg::Sha256, &chain.at.cert);
    assert_eq!(MessageFormat::Secured.peek_signer(&msg), Some(at_id));
    let by_digest =
        build::signed_data(&chain.at, CAM, 36, (now_ms - 5) * 1000, false).expect("sign");
    assert_eq!(MessageFormat::Secured.peek_signer(&by_digest), Some(at_id));
    assert_eq!(MessageFormat::Uper.peek_signer(CAM), None);
    // both at once, as the actor reads ahead: the same answers
    assert_eq!(
        MessageFormat::Secured.peek_sender(&msg),
        (
            MessageFormat::Secured.peek_cam_station_id(&msg),
            Some(at_id)
        )
    );
    assert!(MessageFormat::Secured.peek_cam_station_id(&msg).is_some());
    assert_eq!(
        MessageFormat::Secured.peek_signer(&msg[..msg.len() / 2]),
        None
    );
    let mut v = Validator::from_toml(&chain.trust_toml_with_aa()).expect("validator");
    let r = v
        .validate(MessageFormat::Secured, &msg, &ctx)
        .expect("secured");
    assert!(
        r.signed && !check(&r, names::SIGNATURE).failed(),
        "{:?}",
        r.failed_checks()
    );
    // the anchor alone: the AT's issuer is unknown
    let mut bare = Validator::from_toml(&chain.trust_toml()).expect("validator");
    let b = bare
        .validate(MessageFormat::Secured, &msg, &ctx)
        .expect("secured");
    assert!(!b.signed && check(&b, names::SIGNATURE).failed());
    // an "AA" whose signature by the root does not hold: configured, but never trusted
    let mut forged_aa = chain.aa.cert.clone();
    let last = forged_aa.len() - 1;
    forged_aa[last] ^= 1;
    let cfg = format!(
        "{}ca_certificates_hex = [\"{}\"]\n",
        chain.trust_toml(),
        hex::encode(&forged_aa)
    );
    let mut forged = Validator::from_toml(&cfg).expect("validator");
    let f = forged
        .validate(MessageFormat::Secured, &msg, &ctx)
        .expect("secured");
    assert!(!f.signed && check(&f, names::SIGNATURE).failed());
    // a root given as a CA certificate, and hex that is not a certificate: configuration errors
    let root_as_ca = format!(
        "{}ca_certificates_hex = [\"{}\"]\n",
        chain.trust_toml(),
        hex::encode(&chain.root.cert)
    );
    assert!(matches!(
        Validator::from_toml(&root_as_ca),
        Err(edgecell_v2x::V2xError::InvalidConfig(_))
    ));
    let garbage = format!("{}ca_certificates_hex = [\"00ff\"]\n", chain.trust_toml());
    assert!(matches!(
        Validator::from_toml(&garbage),
        Err(edgecell_v2x::V2xError::InvalidConfig(_))
    ));
}

/// A validator built per message (a lattice instance) need not verify its anchors again:
/// `VerifiedBefore` only parses them, `Verify` checks the self-signature, and the digest that
/// tells the two apart changes with the anchors.
#[test]
fn anchors_verified_before_are_only_parsed() {
    use edgecell_v2x::config::Config;
    use edgecell_v2x::history::MemoryHistory;
    use edgecell_v2x::security::MemoryCertCache;
    use edgecell_v2x::validator::AnchorCheck;
    let chain = build::CamChain::new(600_000_000).expect("chain");
    let mut bad_root = chain.root.cert.clone();
    let last = bad_root.len() - 1;
    bad_root[last] ^= 1;
    let cfg = |root: &[u8]| {
        Config::from_toml(&format!(
            "[security]\ntrust_anchors_hex = [\"{}\"]\n",
            hex::encode(root)
        ))
        .expect("toml")
    };
    let build = |c: Config, check| {
        Validator::with_stores_checking(
            c,
            MemoryHistory::default(),
            MemoryCertCache::default(),
            check,
        )
    };
    assert!(build(cfg(&bad_root), AnchorCheck::Verify).is_err());
    assert!(build(cfg(&bad_root), AnchorCheck::VerifiedBefore).is_ok());
    assert!(build(cfg(&chain.root.cert), AnchorCheck::Verify).is_ok());
    let (good, bad) = (
        cfg(&chain.root.cert).security.anchors_digest(),
        cfg(&bad_root).security.anchors_digest(),
    );
    assert!(good.is_some() && bad.is_some() && good != bad);
    assert_eq!(Config::default().security.anchors_digest(), None);
}

/// The GeoNetworking packet (basic header onwards, FCS dropped) of the c-its-parser radiotap
/// CAM, and the offset where it starts in the frame.
fn gn_of_radiotap_cam() -> (Vec<u8>, Vec<u8>, usize) {
    let frame =
        hex::decode(include_str!("../testdata/c-its-parser-cam-radiotap.hex").trim()).expect("hex");
    let llc = frame
        .windows(8)
        .position(|w| w == [0xaa, 0xaa, 0x03, 0, 0, 0, 0x89, 0x47])
        .expect("LLC/SNAP GN");
    let gn = frame[llc + 8..frame.len() - 4].to_vec();
    (frame, gn, llc + 8)
}

/// A secured GeoNetworking packet as TS 103 097 builds it: the basic header says "secured
/// packet" and the 1609.2 signed data carries the rest of the packet (common header, extended
/// header, BTP, CAM). It validates as `GeoNetworking` and inside a radiotap frame with the
/// signature checked; what is signed cannot change, the hop limit (not signed) can.
#[test]
fn secured_geonetworking_packets_are_verified_and_decoded() {
    let now_ms = rcv_its_ms();
    let start = u32::try_from(now_ms / 1000 - 3600).expect("u32");
    let chain = build::CamChain::new(start).expect("chain");
    let cfg = format!("{}require_signature = true\n", chain.trust_toml());
    let build::CamChain { aa, at, .. } = chain;
    let now_ns = its_ms_to_unix_ns(now_ms);
    let ctx = ReceiveContext {
        received_at_ns: now_ns,
        receiver: None,
    };
    let (frame, gn, gn_at) = gn_of_radiotap_cam();
    assert_eq!(gn[0], 0x11, "version 1, next header = common header");
    let secured_gn = |gen_ms: u64| {
        let signed = build::signed_data(&at, &gn[4..], 36, gen_ms * 1000, true).expect("sign");
        let mut p = vec![0x12, gn[1], gn[2], gn[3]];
        p.extend_from_slice(&signed);
        p
    };
    let validator = || {
        let mut v = Validator::from_toml(&cfg).expect("validator");
        v.add_certificate(&aa.cert, now_ns).expect("aa");
        v
    };

    // the unsecured packet, for comparison: decodes, but fails the required signature
    let mut v = validator();
    let plain = v
        .validate(MessageFormat::GeoNetworking, &gn, &ctx)
        .expect("unsecured");
    assert!(!plain.signed && check(&plain, names::SIGNATURE).failed());

    let mut v = validator();
    let packet = secured_gn(now_ms - 10);
    let r = v
        .validate(MessageFormat::GeoNetworking, &packet, &ctx)
        .expect("secured GN");
    assert!(r.signed, "{:?}", r.failed_checks());
    assert!(!check(&r, names::SIGNATURE).failed() && !check(&r, names::PERMISSION).failed());
    assert_eq!(
        (r.station_id, r.generation_delta_time),
        (plain.station_id, plain.generation_delta_time)
    );
    assert_eq!((r.latitude, r.longitude), (plain.latitude, plain.longitude));

    // inside the radiotap frame it came in, with the frame check sequence of the new frame
    let mut v = validator();
    let mut secured_frame = frame[..gn_at].to_vec();
    secured_frame.extend_from_slice(&secured_gn(now_ms - 10));
    let rt_len = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
    let fcs = crc32fast::hash(&secured_frame[rt_len..]).to_le_bytes();
    let stale_fcs = [secured_frame.as_slice(), &frame[frame.len() - 4..]].concat();
    secured_frame.extend_from_slice(&fcs);
    let f = v
        .validate(MessageFormat::RadiotapFrame, &secured_frame, &ctx)
        .expect("secured radiotap");
    assert!(
        f.signed && f.station_id == plain.station_id,
        "{:?}",
        f.failed_checks()
    );
    // the old frame's FCS after the new packet is four bytes the signature does not cover
    let r = v.validate(MessageFormat::RadiotapFrame, &stale_fcs, &ctx);
    assert!(
        matches!(&r, Err(edgecell_v2x::V2xError::Decode(m)) if m.contains("bytes after the 1609.2 data")),
        "{r:?}"
    );

    // the remaining hop limit is not signed: a forwarder may lower it
    let mut v = validator();
    let mut forwarded = secured_gn(now_ms - 5);
    forwarded[3] = forwarded[3].saturating_sub(1);
    assert!(
        v.validate(MessageFormat::GeoNetworking, &forwarded, &ctx)
            .expect("forwarded")
            .signed
    );

    // any flipped bit in the signed part: decoded (or refused) but never accepted as signed
    let mut v = validator();
    let base = secured_gn(now_ms - 1);
    let mut flipped = 0;
    for i in (4..base.len()).step_by(7) {
        let mut bad = base.clone();
        bad[i] ^= 0x10;
        if let Ok(b) = v.validate(MessageFormat::GeoNetworking, &bad, &ctx) {
            assert!(!b.signed && b.verdict == Verdict::Rejected, "byte {i}");
            flipped += 1;
        }
    }
    assert!(flipped > 10, "{flipped}");

    // anything after the 1609.2 data is not signed: refused, by name
    let trailing = [base.as_slice(), &[0]].concat();
    let r = v.validate(MessageFormat::GeoNetworking, &trailing, &ctx);
    assert!(
        matches!(&r, Err(edgecell_v2x::V2xError::Decode(m)) if m.contains("bytes after the 1609.2 data")),
        "{r:?}"
    );
    // truncated: typed errors
    for cut in [4, 5, 20, base.len() / 2, base.len() - 1] {
        let r = v.validate(MessageFormat::GeoNetworking, &base[..cut], &ctx);
        assert!(r.is_err() || r.is_ok_and(|r| !r.signed), "cut at {cut}");
    }
}

#[test]
fn binary_forms_are_told_apart_by_their_first_bytes() {
    let (frame, gn, _) = gn_of_radiotap_cam();
    assert_eq!(MessageFormat::of_binary(CAM), MessageFormat::Uper);
    assert_eq!(MessageFormat::of_binary(&gn), MessageFormat::GeoNetworking);
    assert_eq!(
        MessageFormat::of_binary(&frame),
        MessageFormat::RadiotapFrame
    );
    let mut secured_gn = gn.clone();
    secured_gn[0] = 0x12;
    assert_eq!(
        MessageFormat::of_binary(&secured_gn),
        MessageFormat::GeoNetworking
    );
    // 1609.2 (version 3, content tag 0x80 unsecured / 0x81 signed) versus an ITS PDU of
    // protocol version 3 (message id next)
    assert_eq!(
        MessageFormat::of_binary(&[3, 0x81, 0, 1]),
        MessageFormat::Secured
    );
    assert_eq!(
        MessageFormat::of_binary(&[3, 0x80, 5]),
        MessageFormat::Secured
    );
    assert_eq!(
        MessageFormat::of_binary(&[3, 2, 0, 0, 0, 1]),
        MessageFormat::Uper
    );
    assert_eq!(MessageFormat::of_binary(&[]), MessageFormat::Uper);
    assert_eq!(MessageFormat::of_binary(&[0]), MessageFormat::Uper);
}

/// What a new actor instance reads ahead with: the CAM's station id in every form it travels
/// in, without verifying anything; nothing for other messages or garbage.
#[test]
fn the_cam_station_id_is_read_ahead_in_every_framing() {
    let (frame, gn, _) = gn_of_radiotap_cam();
    let chain = build::CamChain::new(600_000_000).expect("chain");
    let signed_gn =
        build::signed_data(&chain.root, &gn[4..], 36, 600_000_000_000_000, false).expect("sign");
    let secured_gn = [[0x12, gn[1], gn[2], gn[3]].as_slice(), &signed_gn].concat();
    let secured_cam =
        build::signed_data(&chain.root, CAM, 36, 600_000_000_000_000, false).expect("sign");
    let radio = 2_624_309_139;
    for (format, bytes, want) in [
        (MessageFormat::Uper, CAM.to_vec(), Some(3_725_855_973)),
        (MessageFormat::GeoNetworking, gn.clone(), Some(radio)),
        (MessageFormat::RadiotapFrame, frame, Some(radio)),
        (MessageFormat::GeoNetworking, secured_gn, Some(radio)),
        (MessageFormat::Secured, secured_cam, Some(3_725_855_973)),
        (
            MessageFormat::Uper,
            include_bytes!("../testdata/c-its-parser-denm.uper").to_vec(),
            None,
        ),
        (MessageFormat::GeoNetworking, gn[..10].to_vec(), None),
        (MessageFormat::Secured, vec![3, 0x81, 1], None),
        (MessageFormat::JsonBeacon, b"{}".to_vec(), None),
    ] {
        assert_eq!(
            format.peek_cam_station_id(&bytes),
            want,
            "{format:?} {} bytes",
            bytes.len()
        );
    }
}

/// A history whose replay marks cannot be read (a cache provider that is down).
struct NoReplayState {
    inner: edgecell_v2x::history::MemoryHistory,
    marks_set: usize,
}

impl HistoryStore for NoReplayState {
    fn load(&self, pseudonym: u64, now_s: f64) -> Option<edgecell_v2x::history::Track> {
        self.inner.load(pseudonym, now_s)
    }
    fn store(&mut self, track: edgecell_v2x::history::Track) {
        self.inner.store(track);
    }
    fn nearby(&self, around: &edgecell_v2x::history::Footprint, since_s: f64, out: &mut Vec<edgecell_v2x::history::Footprint>) -> bool {
        self.inner.nearby(around, since_s, out)
    }
    fn replay_marks(&self, _signer: u64) -> Result<edgecell_v2x::history::ReplayMarks, edgecell_v2x::history::Unreadable> {
        Err(edgecell_v2x::history::Unreadable)
    }
    fn set_replay_marks(&mut self, _signer: u64, _marks: edgecell_v2x::history::ReplayMarks) {
        self.marks_set += 1;
    }
}

/// When the replay mark cannot be read, the replay check is skipped (not passed) by default,
/// or fails with `replay_when_unreadable = "reject"`; either way no new mark is written over
/// the one that could not be read.
#[test]
fn an_unreadable_replay_mark_skips_or_fails_the_replay_check_as_configured() {
    let now_ms = rcv_its_ms();
    let chain = build::CamChain::new(u32::try_from(now_ms / 1000 - 3600).expect("u32")).expect("chain");
    let ctx = ReceiveContext { received_at_ns: its_ms_to_unix_ns(now_ms), receiver: None };
    let msg = build::signed_data(&chain.at, CAM, 36, (now_ms - 10) * 1000, true).expect("sign");
    let reject = chain.trust_toml_with_aa().replace("[security]", "[security]\nreplay_when_unreadable = \"reject\"");
    assert_ne!(reject, chain.trust_toml_with_aa());
    for (toml, fails) in [(chain.trust_toml_with_aa(), false), (reject, true)] {
        let cfg = Config::from_toml(&toml).expect("config");
        let history = NoReplayState { inner: edgecell_v2x::history::MemoryHistory::default(), marks_set: 0 };
        let mut v = Validator::with_stores(cfg, history, edgecell_v2x::security::MemoryCertCache::default()).expect("validator");
        for copy in 0..2 {
            let r = v.validate(MessageFormat::Secured, &msg, &ctx).expect("secured");
            assert!(!check(&r, names::SIGNATURE).failed(), "{r:?}");
            assert!(check(&r, names::REPLAY).skipped, "{r:?}");
            let unverified = r.checks.iter().find(|c| c.name == names::REPLAY_UNVERIFIED);
            assert_eq!(unverified.map(edgecell_v2x::checks::CheckResult::failed), fails.then_some(true), "{r:?}");
            assert_eq!(r.signed, !fails);
            // (the second copy also fails the beacon frequency check: same time, same sender)
            if copy == 0 {
                assert_eq!(r.verdict == Verdict::Rejected, fails, "{:?}", r.failed_checks());
                // the receiver's store failed, not the sender: nobody is reported
                assert!(r.report(1, 0).is_none());
            }
        }
        assert_eq!(v.history().marks_set, 0);
    }

    // a mark that passed but could not be stored afterwards (`replay_unknown`): skipped, or
    // failing `replay_unverified`; the verdict, score and `signed` follow, under any policy
    let weighted = "[policy]\nkind = \"weighted\"\nthreshold = 0.9\n[policy.weights]\nreplay = 3.0\n";
    for (extra, fails) in [("", false), ("\nreplay_when_unreadable = \"reject\"", true)] {
        let toml = format!("{weighted}{}", chain.trust_toml_with_aa().replace("[security]", &format!("[security]{extra}")));
        let mut v = Validator::from_toml(&toml).expect("validator");
        let mut r = v.validate(MessageFormat::Secured, &msg, &ctx).expect("secured");
        assert!(r.signed && !check(&r, names::REPLAY).skipped && r.verdict == Verdict::Accepted, "{r:?}");
        assert_eq!(r.score, 1.0);
        v.replay_unknown(&mut r);
        assert!(check(&r, names::REPLAY).skipped);
        assert_eq!(r.signed, !fails);
        assert_eq!(r.verdict == Verdict::Rejected, fails, "{:?}", r.failed_checks());
        // every check that ran passed (weight 1) but replay_unverified: the weighted mean
        #[allow(clippy::cast_precision_loss)]
        let ran = r.checks.iter().filter(|c| !c.skipped).count() as f64;
        assert_eq!(r.score, if fails { (ran - 1.0) / ran } else { 1.0 }, "{r:?}");
        assert_eq!(r.rejected_by_receiver, fails);
        assert!(r.report(1, 0).is_none(), "{r:?}");
    }

    // a sender-side failure the policy tolerates (the receiver 50 km away: range), then the
    // receiver's store fails: rejected, but the sender is not reported for it
    let far = ReceiveContext {
        receiver: Some(ReceiverState { position: Position::Geo { lat: 54.0, lon: 9.9761, alt: None }, speed_mps: None, heading_deg: None, yaw_rate_dps: None }),
        ..ctx
    };
    let tolerant = "[policy]\nkind = \"weighted\"\nthreshold = 0.5\n";
    for (extra, fails) in [("", false), ("\nreplay_when_unreadable = \"reject\"", true)] {
        let toml = format!("{tolerant}{}", chain.trust_toml_with_aa().replace("[security]", &format!("[security]{extra}")));
        let history = NoReplayState { inner: edgecell_v2x::history::MemoryHistory::default(), marks_set: 0 };
        let mut v = Validator::with_stores(Config::from_toml(&toml).expect("config"), history, edgecell_v2x::security::MemoryCertCache::default())
            .expect("validator");
        let r = v.validate(MessageFormat::Secured, &msg, &far).expect("secured");
        assert!(check(&r, names::RANGE).failed(), "{r:?}");
        assert_eq!(r.verdict == Verdict::Rejected, fails, "{:?}", r.failed_checks());
        assert_eq!(r.rejected_by_receiver, fails);
        assert!(r.report(1, 0).is_none(), "{r:?}");
    }
    let e = Config::from_toml("[security]\nreplay_when_unreadable = \"maybe\"").unwrap_err();
    assert!(e.to_string().contains("replay_when_unreadable") || e.to_string().contains("maybe"), "{e}");
}

/// Replay detection keeps the generation times accepted within the freshness window: a
/// message signed before the newest one but not seen before (reordered on the way, or handled
/// a moment later by another instance) is not a replay; a second copy of any of them is.
#[test]
fn reordered_signed_messages_are_not_replays_but_copies_are() {
    let now_ms = rcv_its_ms();
    let chain = build::CamChain::new(u32::try_from(now_ms / 1000 - 3600).expect("u32")).expect("chain");
    let mut v = Validator::from_toml(&chain.trust_toml_with_aa()).expect("validator");
    let ctx = ReceiveContext { received_at_ns: its_ms_to_unix_ns(now_ms), receiver: None };
    let signed = |ms_ago: u64| build::signed_data(&chain.at, CAM, 36, (now_ms - ms_ago) * 1000, true).expect("sign");
    let replay = |v: &mut Validator, msg: &[u8]| {
        let r = v.validate(MessageFormat::Secured, msg, &ctx).expect("secured");
        assert!(!check(&r, names::SIGNATURE).failed());
        check(&r, names::REPLAY).failed()
    };
    let (newer, older, oldest) = (signed(100), signed(200), signed(1_900));
    assert!(!replay(&mut v, &newer));
    assert!(!replay(&mut v, &older), "reordered: signed before the newest, not seen before");
    assert!(!replay(&mut v, &oldest), "still within the window (max age 2 s + max future 0.5 s)");
    for copy in [&newer, &older, &oldest] {
        assert!(replay(&mut v, copy), "a copy of an accepted message");
    }
    // the window is max age + max future: a newest mark signed 0.4 s ahead (still fresh) and a
    // message 1.9 s old are 2.3 s apart, more than the max age, and neither is a replay
    let mut v = Validator::from_toml(&chain.trust_toml_with_aa()).expect("validator");
    let ahead = build::signed_data(&chain.at, CAM, 36, (now_ms + 400) * 1000, true).expect("sign");
    assert!(!replay(&mut v, &ahead));
    assert!(!replay(&mut v, &signed(1_900)));
}

/// Service specific permissions: a CAM with an emergency container asking for right of way
/// passes only under a ticket whose CAM SSP grants both; an ordinary CAM needs nothing; a
/// DENM needs its cause code's bit. Data past its 1609.2 expiry time, or whose expiry is not
/// after its generation time, fails `secured_freshness`.
#[test]
fn service_specific_permissions_and_expiry_time_bound_what_a_ticket_may_say() {
    use edgecell_v2x::cam_v2::{self, EmergencyContainer, SpecialVehicleContainer};
    use edgecell_v2x::ssp::Permission;
    let now_ms = rcv_its_ms();
    let start = u32::try_from(now_ms / 1000 - 3600).expect("u32");
    let key = |n: u8| build::key_from_seed([n; 32]).expect("key");
    let root = build::certificate("root", &key(31), None, start, 1000, &[]).expect("root");
    let aa = build::certificate("aa", &key(32), Some(&root), start, 1000, &[]).expect("aa");
    let ticket = |n: u8, cam_ssp: Option<&[u8]>, denm_ssp: Option<&[u8]>| {
        build::certificate_with_ssp("at", &key(n), Some(&aa), start, 100, &[(36, cam_ssp), (37, denm_ssp)], None).expect("at")
    };
    let car = ticket(33, Some(&[1, 0, 0]), Some(&[1, 0, 0, 0]));
    let ambulance = ticket(34, Some(&[1, 0x02, 0x40]), None);
    let bare = ticket(35, None, None);
    let cfg = build::trust_toml(&root, &[&aa]);
    let ctx = ReceiveContext { received_at_ns: its_ms_to_unix_ns(now_ms), receiver: None };
    let gen_us = (now_ms - 10) * 1000;
    let validate = |bytes: &[u8]| Validator::from_toml(&cfg).expect("validator").validate(MessageFormat::Secured, bytes, &ctx).expect("decodes");

    // the bundled CAM as an emergency vehicle's, asking for right of way
    let (mut cam, ext) = cam_v2::decode(CAM).expect("cam");
    let mut siren = rasn::types::FixedBitString::<2>::default();
    siren.set(0, true);
    let mut priority = siren;
    priority.set(1, false);
    cam.cam.cam_parameters.special_vehicle_container = Some(SpecialVehicleContainer::Emergency(EmergencyContainer {
        light_bar_siren_in_use: c_its_parser::standards::cdd_2_2_1::etsi_its_cdd::LightBarSirenInUse(siren),
        incident_indication: None,
        emergency_priority: Some(c_its_parser::standards::cdd_2_2_1::etsi_its_cdd::EmergencyPriority(priority)),
    }));
    let emergency = cam_v2::encode(&cam, &ext).expect("encode");

    for (who, signer, cam_bytes, missing) in [
        ("car", &car, CAM, vec![]),
        ("bare", &bare, CAM, vec![]),
        ("ambulance", &ambulance, emergency.as_slice(), vec![]),
        ("car", &car, emergency.as_slice(), vec![Permission::Emergency, Permission::RequestForRightOfWay]),
        ("bare", &bare, emergency.as_slice(), vec![Permission::Emergency, Permission::RequestForRightOfWay]),
    ] {
        let r = validate(&build::signed_data(signer, cam_bytes, 36, gen_us, true).expect("sign"));
        assert!(r.signed || !missing.is_empty(), "{who}: {r:?}");
        assert_eq!(check(&r, names::SERVICE_PERMISSIONS).failed(), !missing.is_empty(), "{who}");
        assert_eq!(r.missing_permissions, missing, "{who}");
        if missing.is_empty() {
            assert_eq!(r.verdict, Verdict::Accepted, "{who}: {:?}", r.failed_checks());
        } else {
            assert_eq!(r.verdict, Verdict::Rejected, "{who}");
            let report = r.report(1, 0).expect("a report");
            assert_eq!(report.evidence.missing_permissions, missing);
        }
    }

    // the real DENM: granted by a DENM SSP with its cause's bit, refused by one without
    const DENM: &[u8] = include_bytes!("../testdata/c-its-parser-denm.uper");
    let needs = edgecell_v2x::ssp::denm_needs(&edgecell_v2x::denm_v2::decode(DENM).expect("denm"));
    let [Permission::DenmCause(cause)] = needs.as_slice() else { panic!("{needs:?}") };
    let mut granted = vec![1u8, 0, 0, 0];
    let (octet, mask) = Permission::DenmCause(*cause).bit().expect("a cause with a bit");
    granted[octet] |= mask;
    let warner = ticket(36, None, Some(&granted));
    let r = validate(&build::signed_data(&warner, DENM, 37, gen_us, true).expect("sign"));
    assert!(!check(&r, names::SERVICE_PERMISSIONS).failed(), "{r:?}");
    let r = validate(&build::signed_data(&car, DENM, 37, gen_us, true).expect("sign"));
    assert!(check(&r, names::SERVICE_PERMISSIONS).failed());
    assert_eq!(r.missing_permissions, needs);

    // expiry time: after now passes; already past, or not after the generation time, fails
    for (expiry_us, fresh) in [(gen_us + 60_000_000, true), (gen_us + 5_000, false), (gen_us, false)] {
        let bytes = build::signed_data_with(&car, CAM, 36, gen_us, true, None, Some(expiry_us)).expect("sign");
        let r = validate(&bytes);
        assert_eq!(!check(&r, names::SECURED_FRESHNESS).failed(), fresh, "expiry {expiry_us}: {r:?}");
    }
}
