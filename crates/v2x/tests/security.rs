//! IEEE 1609.2 / TS 103 097 on real material (EU TLM certificate, European Certificate Trust
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_lossless
)]
//! List from the rasn-its test data) and on self-built P-256 chains.

use edgecell_v2x::SecurityError;
use edgecell_v2x::security::{
    CertCache, Curve, MemoryCertCache, TrustStore, build, parse_certificate,
};

const TLM: &[u8] = include_bytes!("../testdata/E7A4B2B045E7ACF9.oer");
const ECTL: &[u8] = include_bytes!("../testdata/CE4CF6C19BFED720.oer");

fn tlm_store() -> (TrustStore, u64) {
    let mut ts = TrustStore::new();
    let tlm = ts.add_anchor(TLM).expect("TLM self-signature verifies");
    (ts, tlm.valid_from_s + 86_400)
}

#[test]
fn tlm_certificate_verifies_and_has_expected_id() {
    let p = parse_certificate(TLM).expect("decodes");
    assert_eq!(hex::encode(p.id), "e7a4b2b045e7acf9");
    let mut ts = TrustStore::new();
    let v = ts.add_anchor(TLM).expect("verifies");
    assert_eq!(v.key.curve, Curve::BrainpoolP384r1);
    assert_eq!(v.name.as_deref(), Some("EU-TLM_L2"));
    assert!(v.issuer.is_none() && v.anchor);
    assert!(v.valid_until_s > v.valid_from_s);
}

#[test]
fn ectl_signed_by_tlm_verifies() {
    let (mut ts, now_s) = tlm_store();
    let mut cache = MemoryCertCache::default();
    let d = ts
        .verify_signed_data(ECTL, now_s * 1_000_000, &mut cache)
        .expect("ECTL verifies");
    assert_eq!(hex::encode(d.signer), "e7a4b2b045e7acf9");
    assert!(d.payload.len() > 1000, "payload {} bytes", d.payload.len());
    assert_eq!(d.signer_cert.key.curve, Curve::BrainpoolP384r1);
}

#[test]
fn ectl_without_anchor_is_unknown_signer() {
    let mut ts = TrustStore::new();
    let mut cache = MemoryCertCache::default();
    let e = ts
        .verify_signed_data(ECTL, 600_000_000 * 1_000_000, &mut cache)
        .err();
    assert!(matches!(e, Some(SecurityError::UnknownSigner(_))), "{e:?}");
}

#[test]
fn ectl_outside_validity_fails() {
    let (mut ts, _) = tlm_store();
    let mut cache = MemoryCertCache::default();
    let e = ts.verify_signed_data(ECTL, 1_000_000, &mut cache).err();
    assert!(matches!(e, Some(SecurityError::Validity(_))), "{e:?}");
}

fn flip(data: &[u8], i: usize) -> Vec<u8> {
    let mut b = data.to_vec();
    if let Some(x) = b.get_mut(i / 8) {
        *x ^= 1 << (i % 8);
    }
    b
}

/// Runs `check` on every single-bit flip of `data` in this process (the OER guard keeps rasn
/// from aborting on crafted SEQUENCE OF quantities, so no child processes are needed) and
/// returns (accepted flips, flips rejected by the guard for an over-large count, total).
fn all_flips(
    data: &[u8],
    mut check: impl FnMut(&[u8]) -> Result<(), SecurityError>,
) -> (Vec<usize>, Vec<usize>, usize) {
    let total = data.len() * 8;
    let (mut accepted, mut count_rejected) = (Vec::new(), Vec::new());
    for i in 0..total {
        let b = flip(data, i);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&b)));
        match r {
            Err(_) => panic!("bit {i}: panicked"),
            Ok(Ok(())) => accepted.push(i),
            Ok(Err(SecurityError::Malformed(m))) if m.contains("SEQUENCE OF quantity") => {
                count_rejected.push(i);
            }
            Ok(Err(_)) => {}
        }
    }
    (accepted, count_rejected, total)
}

#[test]
fn every_single_bit_flip_in_tlm_fails() {
    let (accepted, counts, total) = all_flips(TLM, |b| TrustStore::new().add_anchor(b).map(|_| ()));
    eprintln!(
        "TLM: {total} flips, {} rejected by the OER guard for an over-large SEQUENCE OF count: {counts:?}",
        counts.len()
    );
    assert!(accepted.is_empty(), "flipped bits accepted: {accepted:?}");
    assert_eq!(total, 1528);
    // also the plain parse never panics and rejects every flip
    for i in 0..total {
        let b = flip(TLM, i);
        if let Ok(p) = parse_certificate(&b) {
            assert!(p.verify(None).is_err(), "bit {i} verifies");
        }
    }
}

#[test]
fn every_single_bit_flip_in_ectl_fails() {
    let (ts, now_s) = tlm_store();
    let (accepted, counts, total) = all_flips(ECTL, |b| {
        let mut ts = ts.clone();
        ts.verify_signed_data(b, now_s * 1_000_000, &mut MemoryCertCache::default())
            .map(|_| ())
    });
    eprintln!(
        "ECTL: {total} flips, {} rejected by the OER guard for an over-large SEQUENCE OF count: {counts:?}",
        counts.len()
    );
    assert!(accepted.is_empty(), "flipped bits accepted: {accepted:?}");
    assert_eq!(total, 11_296);
    for i in 0..total {
        let _ = edgecell_v2x::security::unverified_payload(&flip(ECTL, i));
    }
}

/// Crafted SEQUENCE OF quantities that made rasn 0.28 abort (`Vec::with_capacity` on the
/// untrusted count) now give a typed error.
#[test]
fn crafted_sequence_of_counts_are_typed_errors() {
    let (mut ts, now_s) = tlm_store();
    let mut cache = MemoryCertCache::default();
    // Ieee1609Dot2Data { 3, signedData { sha256, tbs { payload { data: unsecured "x" },
    // header { psid 36 } }, signer: certificate SEQUENCE OF with quantity 2^64-1 ... } }
    let mut msg = vec![
        0x03, 0x81, 0x00, 0x40, 0x03, 0x80, 0x01, b'x', 0x00, 0x01, 0x24, 0x81, 0x08,
    ];
    msg.extend_from_slice(&[0xff; 8]);
    msg.extend_from_slice(&[0u8; 64]);
    for bytes in [msg.clone(), {
        let mut m = msg.clone();
        // quantity 2^40 with a 5-byte quantity field
        m.truncate(12);
        m.extend_from_slice(&[0x05, 0x01, 0, 0, 0, 0]);
        m.extend_from_slice(&[0u8; 64]);
        m
    }] {
        let e = ts
            .verify_signed_data(&bytes, now_s * 1_000_000, &mut cache)
            .err();
        assert!(
            matches!(&e, Some(SecurityError::Malformed(m)) if m.contains("SEQUENCE OF quantity")),
            "{e:?}"
        );
        assert!(edgecell_v2x::security::unverified_payload(&bytes).is_none());
    }
    // Certificate { explicit, self(sha256), tbs { id none, appPermissions: quantity 2^64-1 } }
    let mut cert = vec![
        0x00, 0x03, 0x00, 0x81, 0x00, 0x10, 0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 1, 0x08,
    ];
    cert.extend_from_slice(&[0xff; 8]);
    cert.extend_from_slice(&[0u8; 100]);
    let e = parse_certificate(&cert).err();
    assert!(
        matches!(&e, Some(SecurityError::Malformed(m)) if m.contains("SEQUENCE OF quantity")),
        "{e:?}"
    );
    assert!(TrustStore::new().add_anchor(&cert).is_err());
    // oversize input
    let huge = vec![0u8; edgecell_v2x::oer_guard::MAX_OER_INPUT + 1];
    assert!(matches!(
        parse_certificate(&huge),
        Err(SecurityError::Malformed(_))
    ));
    assert!(
        ts.verify_signed_data(&huge, now_s * 1_000_000, &mut cache)
            .is_err()
    );
}

/// The guard accepts every valid input the crate handles (no false rejections of the real
/// and self-built material).
#[test]
fn oer_guard_accepts_valid_material() {
    use edgecell_v2x::oer_guard::{check_certificate, check_ieee1609_dot2_data};
    check_certificate(TLM).expect("TLM");
    check_ieee1609_dot2_data(ECTL).expect("ECTL");
    let k = build::key_from_seed([3u8; 32]).expect("key");
    let root = build::certificate("r", &k, None, 600_000_000, 10, &[]).expect("root");
    let at = build::certificate("a", &k, Some(&root), 600_000_000, 10, &[36, 37, 639]).expect("at");
    check_certificate(&root.cert).expect("root");
    check_certificate(&at.cert).expect("at");
    for with_cert in [true, false] {
        let d = build::signed_data(&at, b"abc", 36, 1, with_cert).expect("sd");
        check_ieee1609_dot2_data(&d).expect("signed data");
    }
}

#[test]
fn truncated_and_garbage_inputs_give_typed_errors() {
    let (mut ts, now_s) = tlm_store();
    let mut cache = MemoryCertCache::default();
    for n in [0, 1, 2, 3, 10, 100, ECTL.len() - 1] {
        let e = ts
            .verify_signed_data(
                ECTL.get(..n).unwrap_or_default(),
                now_s * 1_000_000,
                &mut cache,
            )
            .err();
        assert!(
            matches!(
                e,
                Some(SecurityError::Malformed(_) | SecurityError::NonCanonical)
            ),
            "len {n}: {e:?}"
        );
    }
    for n in [0, 5, 50, TLM.len() - 1] {
        assert!(matches!(
            parse_certificate(TLM.get(..n).unwrap_or_default()),
            Err(SecurityError::Malformed(_) | SecurityError::NonCanonical)
        ));
    }
    let garbage: Vec<u8> = (0..2000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for n in [1, 7, 64, 500, 2000] {
        assert!(
            ts.verify_signed_data(
                garbage.get(..n).unwrap_or_default(),
                now_s * 1_000_000,
                &mut cache
            )
            .is_err()
        );
        assert!(parse_certificate(garbage.get(..n).unwrap_or_default()).is_err());
    }
    // trailing byte after valid data is non-canonical / rejected
    let mut extra = ECTL.to_vec();
    extra.push(0);
    assert!(
        ts.verify_signed_data(&extra, now_s * 1_000_000, &mut cache)
            .is_err()
    );
}

/// Root -> AA -> AT chain with P-256 keys; signed CAM payloads with signer as certificate
/// and as digest.
#[test]
fn p256_chain_and_signed_payloads() {
    let root_key = build::key_from_seed([7u8; 32]).expect("key");
    let aa_key = build::key_from_seed([8u8; 32]).expect("key");
    let at_key = build::key_from_seed([9u8; 32]).expect("key");
    let start = 600_000_000u32;
    let root = build::certificate("root", &root_key, None, start, 1000, &[]).expect("root");
    let aa = build::certificate("aa", &aa_key, Some(&root), start, 1000, &[]).expect("aa");
    let at = build::certificate("at", &at_key, Some(&aa), start, 100, &[36, 37]).expect("at");

    let mut ts = TrustStore::new();
    ts.add_anchor(&root.cert).expect("root verifies");
    let mut cache = MemoryCertCache::default();
    let now_s = u64::from(start) + 60;
    let now_us = now_s * 1_000_000;
    // the AT cannot be verified before its AA is known
    assert!(matches!(
        ts.add_certificate(&at.cert, now_s, &mut cache),
        Err(SecurityError::UnknownSigner(_))
    ));
    ts.add_certificate(&aa.cert, now_s, &mut cache)
        .expect("aa verifies");
    assert_eq!(cache.len(), 1);

    let payload = b"\x02\x02hello cam";
    let with_cert = build::signed_data(&at, payload, 36, now_us - 1000, true).expect("sign");
    let d = ts
        .verify_signed_data(&with_cert, now_us, &mut cache)
        .expect("verifies");
    assert_eq!(d.payload, payload);
    assert_eq!(d.psid, 36);
    assert_eq!(d.generation_time_us, Some(now_us - 1000));
    assert_eq!(d.signer, at.id);
    // the AT is now cached: a digest-signed message verifies
    assert!(cache.get(&at.id).is_some());
    let with_digest = build::signed_data(&at, payload, 36, now_us - 500, false).expect("sign");
    assert!(
        ts.verify_signed_data(&with_digest, now_us, &mut cache)
            .is_ok()
    );
    // psid not in the AT's permissions
    let cpm = build::signed_data(&at, payload, 639, now_us, false).expect("sign");
    assert_eq!(
        ts.verify_signed_data(&cpm, now_us, &mut cache).err(),
        Some(SecurityError::Permission(639))
    );
    // every bit flip in the digest-signed message fails
    for i in 0..with_digest.len() * 8 {
        let mut b = with_digest.clone();
        if let Some(x) = b.get_mut(i / 8) {
            *x ^= 1 << (i % 8);
        }
        assert!(
            ts.verify_signed_data(&b, now_us, &mut cache).is_err(),
            "bit {i}"
        );
    }
    // an expired AT fails
    let late = (u64::from(start) + 101 * 3600) * 1_000_000;
    let mut fresh_cache = MemoryCertCache::default();
    ts.add_certificate(&aa.cert, now_s, &mut fresh_cache)
        .expect("aa");
    assert!(matches!(
        ts.verify_signed_data(&with_cert, late, &mut fresh_cache),
        Err(SecurityError::Validity(_))
    ));
}

#[test]
fn verify_cert_cli_contract() {
    use edgecell_v2x::security::verify_certificate;
    assert!(verify_certificate(TLM, None).is_ok());
    let root_key = build::key_from_seed([4u8; 32]).expect("key");
    let aa_key = build::key_from_seed([5u8; 32]).expect("key");
    let root = build::certificate("root", &root_key, None, 600_000_000, 100, &[]).expect("root");
    let aa = build::certificate("aa", &aa_key, Some(&root), 600_000_000, 100, &[]).expect("aa");
    let v = verify_certificate(&aa.cert, Some(&root.cert)).expect("aa by root");
    assert_eq!(v.issuer, Some(root.id));
    assert!(matches!(
        verify_certificate(&aa.cert, Some(TLM)),
        Err(SecurityError::UnknownSigner(_))
    ));
    assert!(matches!(
        verify_certificate(&aa.cert, None),
        Err(SecurityError::UnknownSigner(_))
    ));
    assert!(verify_certificate(&[0x80, 0x03], None).is_err());
}

/// Natively P-256 and P-384 verify through ring, the component through the RustCrypto curves:
/// both must accept and refuse the same signatures with the same error.
#[test]
fn ring_and_rustcrypto_agree_on_every_signature() {
    use p256::ecdsa::signature::hazmat::PrehashSigner;

    for seed in 1u8..=4 {
        let tbs = vec![seed; 40 + usize::from(seed)];
        let sk = build::key_from_seed([seed; 32]).expect("key");
        let sec1 = sk
            .verifying_key()
            .to_sec1_point(seed % 2 == 0)
            .as_bytes()
            .to_vec();
        let sign = |digest: &[u8]| -> Vec<u8> {
            let s: p256::ecdsa::Signature = sk.sign_prehash(digest).expect("sign");
            s.to_bytes().to_vec()
        };
        agree_on(Curve::NistP256, &tbs, sign, sec1);

        let sk = p384::ecdsa::SigningKey::from_slice(&[seed; 48]).expect("key");
        let sec1 = sk
            .verifying_key()
            .to_sec1_point(seed % 2 == 1)
            .as_bytes()
            .to_vec();
        let sign = |digest: &[u8]| -> Vec<u8> {
            let s: p384::ecdsa::Signature = sk.sign_prehash(digest).expect("sign");
            s.to_bytes().to_vec()
        };
        agree_on(Curve::NistP384, &tbs, sign, sec1);
    }
}

/// Signs the 1609.2 input of `tbs` with the curve's hash (`sign` takes the digest, returns
/// `r || s`) and checks both verification paths on it and on its corruptions.
fn agree_on(curve: Curve, tbs: &[u8], sign: impl Fn(&[u8]) -> Vec<u8>, sec1: Vec<u8>) {
    use edgecell_v2x::security::{PublicKey, RawSignature, signature_input};
    let hash = curve.hash();
    let input = signature_input(hash, tbs, &hash.digest(b"signer"));
    let rs = sign(&hash.digest(&input));
    let (r, s) = rs.split_at(rs.len() / 2);
    let sig = RawSignature {
        curve,
        r: r.to_vec(),
        s: s.to_vec(),
    };
    let key = PublicKey { curve, sec1 }.parse().expect("point");
    check_flips(&key, &input, &sig);
}

/// Both paths on one signature: the same result, and that result is returned.
fn both(
    key: &edgecell_v2x::security::VerifyingKey,
    input: &[u8],
    sig: &edgecell_v2x::security::RawSignature,
) -> Result<(), SecurityError> {
    let fast = key.verify_input(input, sig);
    let portable = key.verify_prehash(&key.curve().hash().digest(input), sig);
    assert_eq!(
        format!("{fast:?}"),
        format!("{portable:?}"),
        "input {} sig {sig:?}",
        hex::encode(input)
    );
    fast
}

fn check_flips(
    key: &edgecell_v2x::security::VerifyingKey,
    input: &[u8],
    sig: &edgecell_v2x::security::RawSignature,
) {
    use edgecell_v2x::security::RawSignature;
    assert_eq!(both(key, input, sig), Ok(()));
    for bit in (0..input.len() * 8).step_by(7) {
        let mut i = input.to_vec();
        i[bit / 8] ^= 1 << (bit % 8);
        assert_eq!(both(key, &i, sig), Err(SecurityError::BadSignature));
    }
    for bit in (0..sig.r.len() * 8).step_by(5) {
        let mut r = sig.r.clone();
        r[bit / 8] ^= 1 << (bit % 8);
        let mut s = sig.s.clone();
        s[bit / 8] ^= 1 << (bit % 8);
        // a flipped top bit may leave [1, n): InvalidSignature, else BadSignature; both agree
        assert!(both(key, input, &RawSignature { r, ..sig.clone() }).is_err());
        assert!(both(key, input, &RawSignature { s, ..sig.clone() }).is_err());
    }
    let zero = vec![0u8; sig.r.len()];
    assert_eq!(
        both(
            key,
            input,
            &RawSignature {
                r: zero.clone(),
                ..sig.clone()
            }
        ),
        Err(SecurityError::InvalidSignature)
    );
    assert_eq!(
        both(
            key,
            input,
            &RawSignature {
                s: zero,
                ..sig.clone()
            }
        ),
        Err(SecurityError::InvalidSignature)
    );
    let other = if sig.curve == Curve::NistP256 {
        Curve::NistP384
    } else {
        Curve::NistP256
    };
    assert!(matches!(
        both(
            key,
            input,
            &RawSignature {
                curve: other,
                ..sig.clone()
            }
        ),
        Err(SecurityError::AlgorithmMismatch(_))
    ));
}

/// 1609.2: a certificate's own region must lie within its issuer's; without one it inherits
/// the issuer's. Data signed with a generation location outside the signer's region is refused.
#[test]
fn certificate_regions_nest_and_bound_generation_locations() {
    let key = |n: u8| build::key_from_seed([n; 32]).expect("key");
    let start = 600_000_000u32;
    let now_s = u64::from(start) + 60;
    let now_us = now_s * 1_000_000;
    let root = build::certificate("root", &key(31), None, start, 1000, &[]).expect("root");
    let munich = build::circle(48.137, 11.575, 50_000).expect("circle");
    let aa = build::certificate_in("aa", &key(32), Some(&root), start, 1000, &[], Some(munich)).expect("aa");
    let mut ts = TrustStore::new();
    ts.add_anchor(&root.cert).expect("root");
    let mut cache = MemoryCertCache::default();
    ts.add_certificate(&aa.cert, now_s, &mut cache).expect("aa");
    // inside: 10 km around a point 20 km away (20 + 10 ≤ 50)
    let inner = build::certificate_in("in", &key(33), Some(&aa), start, 100, &[36], Some(build::circle(48.317, 11.575, 10_000).expect("c"))).expect("in");
    ts.add_certificate(&inner.cert, now_s, &mut cache).expect("inner region accepted");
    // crossing the edge: 10 km around a point 45 km away
    let crossing = build::certificate_in("x", &key(34), Some(&aa), start, 100, &[36], Some(build::circle(48.542, 11.575, 10_000).expect("c"))).expect("x");
    assert!(matches!(ts.add_certificate(&crossing.cert, now_s, &mut cache), Err(SecurityError::Issuance(m)) if m.contains("region")));
    assert!(matches!(edgecell_v2x::security::verify_certificate(&crossing.cert, Some(&aa.cert)), Err(SecurityError::Issuance(_))));
    // a country list under a circle cannot be shown to lie inside it: refused
    let by_country = build::certificate_in("c", &key(36), Some(&aa), start, 100, &[36], Some(build::countries(&[276]))).expect("c");
    assert!(matches!(ts.add_certificate(&by_country.cert, now_s, &mut cache), Err(SecurityError::Issuance(m)) if m.contains("cannot be shown")));
    // no region of its own: the issuer's
    let plain = build::certificate("plain", &key(35), Some(&aa), start, 100, &[36]).expect("plain");
    let v = ts.add_certificate(&plain.cert, now_s, &mut cache).expect("plain");
    assert_eq!(v.region, ts.add_certificate(&aa.cert, now_s, &mut cache).expect("aa").region);
    // generation locations: inside and outside the signer's (inherited) region
    let d = build::signed_data_at(&plain, b"\x02\x02cam", 36, now_us - 1000, true, Some((48.2, 11.6))).expect("sign");
    let got = ts.verify_signed_data(&d, now_us, &mut cache).expect("inside");
    assert_eq!(got.generation_location.map(|(la, lo)| ((la * 10.0).round(), (lo * 10.0).round())), Some((482.0, 116.0)));
    let d = build::signed_data_at(&plain, b"\x02\x02cam", 36, now_us - 900, true, Some((52.52, 13.40))).expect("sign");
    assert_eq!(ts.verify_signed_data(&d, now_us, &mut cache).err(), Some(SecurityError::Region));
}

/// `Region::within` on the shapes 1609.2 has: exact for circles, rectangle unions (gaps
/// included) and polygons (concave ones included, shared boundaries allowed), across the
/// antimeridian; identified regions by country, undecided where parts of countries or
/// geometry meet them.
#[test]
fn region_containment() {
    use edgecell_v2x::security::Region;
    let big = Region::Circle { lat: 48.0, lon: 11.0, radius_m: 100_000.0 };
    let small = Region::Circle { lat: 48.1, lon: 11.0, radius_m: 10_000.0 };
    assert_eq!(small.within(&big), Some(true));
    assert_eq!(big.within(&small), Some(false));
    let rect = Region::Rectangles(vec![(48.2, 10.8, 47.8, 11.2)]);
    assert_eq!(rect.within(&big), Some(true));
    assert_eq!(Region::Rectangles(vec![(49.5, 10.8, 47.8, 11.2)]).within(&big), Some(false));
    assert_eq!(small.within(&rect), Some(true));
    // a union with a gap: corners inside, middle not
    let two = Region::Rectangles(vec![(50.0, 0.0, 40.0, 10.0), (50.0, 20.0, 40.0, 30.0)]);
    assert_eq!(Region::Rectangles(vec![(50.0, 0.0, 40.0, 30.0)]).within(&two), Some(false));
    assert_eq!(Region::Rectangles(vec![(45.0, 2.0, 41.0, 8.0), (49.0, 21.0, 41.0, 29.0)]).within(&two), Some(true));
    // touching rectangles cover what they cover together
    let halves = Region::Rectangles(vec![(50.0, 0.0, 40.0, 10.0), (50.0, 10.0, 40.0, 20.0)]);
    assert_eq!(Region::Rectangles(vec![(45.0, 5.0, 42.0, 15.0)]).within(&halves), Some(true));
    // across the antimeridian
    let pacific = Region::Rectangles(vec![(10.0, 170.0, -10.0, -170.0)]);
    assert_eq!(pacific.contains(0.0, 179.9), Some(true));
    assert_eq!(pacific.contains(0.0, -175.0), Some(true));
    assert_eq!(pacific.contains(0.0, 160.0), Some(false));
    assert_eq!(Region::Circle { lat: 0.0, lon: 179.95, radius_m: 20_000.0 }.within(&pacific), Some(true));
    assert_eq!(Region::Rectangles(vec![(5.0, 175.0, -5.0, -175.0)]).within(&pacific), Some(true));
    // a concave outer polygon (a U): a rectangle over its notch is not inside, one in an arm is;
    // the polygon itself, listed from another vertex, is
    let u = vec![(0.0, 0.0), (0.0, 30.0), (30.0, 30.0), (30.0, 20.0), (10.0, 20.0), (10.0, 10.0), (30.0, 10.0), (30.0, 0.0)];
    let outer = Region::Polygon(u.clone());
    assert_eq!(Region::Rectangles(vec![(25.0, 5.0, 5.0, 25.0)]).within(&outer), Some(false));
    assert_eq!(Region::Rectangles(vec![(25.0, 2.0, 5.0, 8.0)]).within(&outer), Some(true));
    let mut rotated = u.clone();
    rotated.rotate_left(3);
    assert_eq!(Region::Polygon(rotated).within(&outer), Some(true));
    assert_eq!(Region::Polygon(vec![(20.0, 5.0), (20.0, 25.0), (25.0, 15.0)]).within(&outer), Some(false));
    // identified: whole countries in whole countries; a part of a country in that country
    let id = |countries: Vec<u16>, partial: Vec<u16>| Region::Identified { countries, partial, unknown: false };
    assert_eq!(id(vec![276], vec![]).within(&id(vec![276, 40], vec![])), Some(true));
    assert_eq!(id(vec![276, 40], vec![]).within(&id(vec![276], vec![])), Some(false));
    assert_eq!(id(vec![], vec![250]).within(&id(vec![250], vec![])), Some(true));
    assert_eq!(id(vec![], vec![250]).within(&id(vec![276], vec![])), Some(false));
    assert_eq!(id(vec![], vec![250]).within(&id(vec![], vec![250])), None);
    assert_eq!(Region::Identified { countries: vec![276], partial: vec![], unknown: true }.within(&id(vec![276], vec![])), None);
    assert_eq!(id(vec![276], vec![]).within(&big), None);
    assert_eq!(big.within(&id(vec![276], vec![])), None);
    // a position reported as unavailable is not judged
    assert_eq!(big.contains(f64::NAN, 11.0), None);
}

/// 1609.2's issuer rules: only a certificate with issue permissions may issue (an
/// authorization ticket cannot mint pseudonyms), a CA signs no data, a certificate is valid
/// only inside its issuer's validity period, and a cached certificate counts only while the
/// anchor its chain ends at is configured.
#[test]
fn issuance_rules_are_enforced() {
    let key = |n: u8| build::key_from_seed([n; 32]).expect("key");
    let start = 600_000_000u32;
    let root = build::certificate("root", &key(11), None, start, 1000, &[]).expect("root");
    let aa = build::certificate("aa", &key(12), Some(&root), start, 1000, &[]).expect("aa");
    let at = build::certificate("at", &key(13), Some(&aa), start, 100, &[36]).expect("at");
    let mut ts = TrustStore::new();
    ts.add_anchor(&root.cert).expect("root");
    let mut cache = MemoryCertCache::default();
    let now_s = u64::from(start) + 60;
    let now_us = now_s * 1_000_000;
    ts.add_certificate(&aa.cert, now_s, &mut cache).expect("aa");
    ts.add_certificate(&at.cert, now_s, &mut cache).expect("at");

    // an AT that signs a certificate of its own: refused, and the minted one is not cached
    let minted = build::certificate("at2", &key(14), Some(&at), start, 50, &[36]).expect("minted");
    assert!(matches!(ts.add_certificate(&minted.cert, now_s, &mut cache), Err(SecurityError::Issuance(_))));
    assert!(cache.get(&minted.id).is_none());
    // `verify-cert --issuer` applies the same rules: the signature is good, the issuance is not
    let cli = edgecell_v2x::security::verify_certificate(&minted.cert, Some(&at.cert));
    assert!(matches!(cli, Err(SecurityError::Issuance(_))), "{cli:?}");
    assert!(edgecell_v2x::security::verify_certificate(&at.cert, Some(&aa.cert)).is_ok());
    let from_minted = build::signed_data(&minted, b"\x02\x02cam", 36, now_us - 1000, true).expect("sign");
    assert!(matches!(ts.verify_signed_data(&from_minted, now_us, &mut cache), Err(SecurityError::Issuance(_))));

    // CAs sign no data, whatever the PSID
    for ca in [&root, &aa] {
        let d = build::signed_data(ca, b"\x02\x02cam", 36, now_us - 1000, false).expect("sign");
        assert_eq!(ts.verify_signed_data(&d, now_us, &mut cache).err(), Some(SecurityError::Permission(36)));
    }

    // validity reaching outside the issuer's, at either end
    let long = build::certificate("long", &key(15), Some(&aa), start, 1001, &[36]).expect("long");
    let early = build::certificate("early", &key(16), Some(&aa), start - 1, 10, &[36]).expect("early");
    for c in [&long, &early] {
        assert!(matches!(ts.add_certificate(&c.cert, now_s, &mut cache), Err(SecurityError::Issuance(_))), "{}", hex::encode(c.id));
    }

    // the AT verifies by digest from the cache while its root is an anchor, and not once the
    // store trusts another root instead (the same cache, as a restarted actor would have)
    let by_digest = build::signed_data(&at, b"\x02\x02cam", 36, now_us - 500, false).expect("sign");
    assert!(ts.verify_signed_data(&by_digest, now_us, &mut cache).is_ok());
    let other = build::certificate("other-root", &key(17), None, start, 1000, &[]).expect("other");
    let mut rotated = TrustStore::new();
    rotated.add_anchor(&other.cert).expect("other root");
    assert!(matches!(rotated.verify_signed_data(&by_digest, now_us, &mut cache), Err(SecurityError::UnknownSigner(_))));
}

/// An authority whose issue permissions give a bitmap SSP range for CAMs (version 1, no
/// emergency or right-of-way bits) may issue ordinary tickets but not an emergency vehicle's;
/// one that names CAMs without a range may issue any SSP.
#[test]
fn ssp_ranges_bound_what_an_authority_may_grant() {
    use edgecell_v2x::security::{build, verify_certificate};
    let key = |n: u8| build::key_from_seed([n; 32]).expect("key");
    let root = build::certificate("root", &key(41), None, 1000, 1000, &[]).expect("root");
    let plain_aa = build::authority_with_ranges("aa", &key(42), Some(&root), 1000, 1000, &[(36, Some((&[1, 0, 0], &[0xff, 0x02, 0x40])))], (1, 0)).expect("aa");
    let any_aa = build::authority_with_ranges("aa-any", &key(43), Some(&root), 1000, 1000, &[(36, None)], (1, 0)).expect("aa");
    let at = |aa: &build::P256Identity, ssp: Option<&[u8]>| {
        build::certificate_with_ssp("at", &key(44), Some(aa), 1000, 10, &[(36, ssp)], None).expect("at")
    };
    let verdict = |aa: &build::P256Identity, ssp: Option<&[u8]>| verify_certificate(&at(aa, ssp).cert, Some(&aa.cert));
    assert!(verify_certificate(&plain_aa.cert, Some(&root.cert)).is_ok());
    for ssp in [Some(&[1u8, 0, 0][..]), Some(&[1, 0x01, 0x04][..]), None] {
        let v = verdict(&plain_aa, ssp).unwrap_or_else(|e| panic!("{ssp:?}: {e}"));
        assert_eq!(v.app_ssps, ssp.map(|s| (36, edgecell_v2x::security::Ssp::Bitmap(s.to_vec()))).into_iter().collect::<Vec<_>>());
    }
    for ssp in [&[1u8, 0x02, 0][..], &[1, 0, 0x40], &[2, 0, 0], &[1]] {
        assert!(matches!(verdict(&plain_aa, Some(ssp)), Err(SecurityError::Issuance(_))), "{ssp:?}");
        assert!(verdict(&any_aa, Some(ssp)).is_ok(), "{ssp:?}");
    }
    // a PSID the authority does not name is refused whatever the SSP
    let denm = build::certificate_with_ssp("at", &key(45), Some(&plain_aa), 1000, 10, &[(37, None)], None).expect("at");
    assert!(matches!(verify_certificate(&denm.cert, Some(&plain_aa.cert)), Err(SecurityError::Issuance(_))));
}

/// 1609.2 chain lengths: a root allowing tickets exactly two certificates below it verifies
/// root → AA → AT, and refuses a ticket issued by the root itself or three levels down; an
/// authority whose minChainLength is 0 is invalid.
#[test]
fn chain_length_rules_hold_at_every_level() {
    use edgecell_v2x::security::{CertCache, MemoryCertCache, build};
    let key = |n: u8| build::key_from_seed([n; 32]).expect("key");
    let start = 1000;
    let root = build::authority_with_ranges("root", &key(51), None, start, 1000, &[(36, None)], (2, 0)).expect("root");
    let aa = build::authority_with_ranges("aa", &key(52), Some(&root), start, 1000, &[(36, None)], (1, -1)).expect("aa");
    let sub = build::authority_with_ranges("sub", &key(53), Some(&aa), start, 1000, &[(36, None)], (1, 0)).expect("sub");
    let at = |n: u8, issuer: &build::P256Identity| build::certificate("at", &key(n), Some(issuer), start, 10, &[36]).expect("at");
    let mut ts = TrustStore::new();
    ts.add_anchor(&root.cert).expect("anchor");
    let now = u64::from(start) + 60;
    let mut cache = MemoryCertCache::default();
    ts.add_certificate(&aa.cert, now, &mut cache).expect("aa");
    ts.add_certificate(&at(54, &aa).cert, now, &mut cache).expect("root -> aa -> at: two below the root");
    assert!(matches!(ts.add_certificate(&at(55, &root).cert, now, &mut cache), Err(SecurityError::Issuance(_))), "one below the root");
    ts.add_certificate(&sub.cert, now, &mut cache).expect("an authority below the AA");
    let deep = at(56, &sub);
    let e = ts.add_certificate(&deep.cert, now, &mut cache).expect_err("three below the root");
    assert!(matches!(&e, SecurityError::Issuance(m) if m.contains("length")), "{e}");
    assert!(cache.get(&edgecell_v2x::security::parse_certificate(&deep.cert).expect("parses").id).is_none(), "not cached");
    let zero = build::authority_with_ranges("zero", &key(57), Some(&root), start, 1000, &[(36, None)], (0, 0)).expect("builds");
    assert!(matches!(ts.add_certificate(&zero.cert, now, &mut cache), Err(SecurityError::Issuance(_))));
    // at most one authority between a certificate and the root: the ticket under sub is too
    // deep, whatever the cache still holds
    let mut shallow = TrustStore::new();
    shallow.max_chain_depth = 1;
    shallow.add_anchor(&root.cert).expect("anchor");
    let open_root = build::certificate("open-root", &key(58), None, start, 1000, &[]).expect("root");
    shallow.add_anchor(&open_root.cert).expect("anchor");
    let a1 = build::certificate("a1", &key(59), Some(&open_root), start, 1000, &[]).expect("a1");
    let a2 = build::certificate("a2", &key(60), Some(&a1), start, 1000, &[]).expect("a2");
    let mut cache = MemoryCertCache::default();
    shallow.add_certificate(&a1.cert, now, &mut cache).expect("no authority above a1");
    shallow.add_certificate(&at(61, &a1).cert, now, &mut cache).expect("one authority above");
    shallow.add_certificate(&a2.cert, now, &mut cache).expect("one authority above a2");
    assert!(matches!(shallow.add_certificate(&at(62, &a2).cert, now, &mut cache), Err(SecurityError::ChainTooDeep)));
    // three authorities above a ticket, the limit two, and the cache holding only the lowest
    // authority (the others evicted): a walk through the cache would count two
    let a3 = build::certificate("a3", &key(63), Some(&a2), start, 1000, &[]).expect("a3");
    let mut deep = TrustStore::new();
    deep.max_chain_depth = 3;
    deep.add_anchor(&open_root.cert).expect("anchor");
    let mut full = MemoryCertCache::default();
    for ca in [&a1, &a2, &a3] {
        deep.add_certificate(&ca.cert, now, &mut full).expect("within three");
    }
    let a3_id = edgecell_v2x::security::parse_certificate(&a3.cert).expect("parses").id;
    let mut evicted = MemoryCertCache::default();
    evicted.put(full.get(&a3_id).expect("cached"));
    deep.max_chain_depth = 2;
    assert!(matches!(deep.add_certificate(&at(64, &a3).cert, now, &mut evicted), Err(SecurityError::ChainTooDeep)));
}

/// A ticket is checked against every issuer above it, with one group allowing its PSID, its
/// SSP and its chain length together: a sub-authority that may issue anything cannot hand out
/// emergency rights its ranged parent withholds; two groups cannot lend one the SSP and the
/// other the chain length; an enrolment-only group allows no ticket; of two groups naming the
/// same PSID, either may allow it. What is cached round-trips through JSON, as the actor
/// stores it.
#[test]
fn every_level_above_a_ticket_allows_its_ssp_and_chain_length_with_one_group() {
    use edgecell_v2x::security::build::{self, Group};
    use edgecell_v2x::security::{CertCache, MemoryCertCache, VerifiedCert};
    let key = |n: u8| build::key_from_seed([n; 32]).expect("key");
    let start = 1000;
    let now = u64::from(start) + 60;
    let ordinary: &[u8] = &[1, 0, 0];
    let emergency: &[u8] = &[1, 0x02, 0x40];
    let cam_plain: &[(u64, Option<build::BitmapRange<'_>>)] = &[(36, Some((&[1, 0, 0], &[0xff, 0x02, 0x40])))];
    let cam_any: &[(u64, Option<build::BitmapRange<'_>>)] = &[(36, None)];
    let at = |n: u8, issuer: &build::P256Identity, ssp: &[u8]| build::certificate_with_ssp("at", &key(n), Some(issuer), start, 10, &[(36, Some(ssp))], None).expect("at");
    let root_with = |n: u8, groups: &[Group<'_>]| build::authority_with_groups("root", &key(n), None, start, 1000, groups, &[]).expect("root");
    let store = |anchor: &build::P256Identity| {
        let mut ts = TrustStore::new();
        ts.add_anchor(&anchor.cert).expect("anchor");
        ts
    };

    // root (ordinary CAMs only, two levels down) -> sub-authority (CAMs with any SSP, any
    // depth) -> AT
    let root = build::authority_with_ranges("root", &key(61), None, start, 1000, cam_plain, (2, 0)).expect("root");
    let sub = build::authority_with_groups("sub", &key(62), Some(&root), start, 1000, &[Group { psids: Some(cam_any), chain: (1, -1), app: true }], &[]).expect("sub");
    let ts = store(&root);
    let mut cache = MemoryCertCache::default();
    ts.add_certificate(&sub.cert, now, &mut cache).expect("sub");
    ts.add_certificate(&at(63, &sub, ordinary).cert, now, &mut cache).expect("ordinary ticket");
    let e = ts.add_certificate(&at(64, &sub, emergency).cert, now, &mut cache).expect_err("emergency ticket");
    assert!(matches!(&e, SecurityError::Issuance(m) if m.contains("1 level")), "{e}");
    // what the cache holds reads back whole from JSON
    let cached = cache.get(&edgecell_v2x::security::parse_certificate(&sub.cert).expect("parses").id).expect("cached");
    let back: VerifiedCert = serde_json::from_str(&serde_json::to_string(&cached).expect("json")).expect("reads back");
    assert_eq!(back, cached);
    assert_eq!(back.issue_levels.len(), 2);

    // one group with the SSP range but chain length 1, another with any SSP but length 2: an
    // emergency ticket issued directly fits neither alone
    let split = root_with(65, &[Group { psids: Some(cam_plain), chain: (1, 0), app: true }, Group { psids: Some(cam_any), chain: (2, 0), app: true }]);
    let ts = store(&split);
    let mut cache = MemoryCertCache::default();
    ts.add_certificate(&at(66, &split, ordinary).cert, now, &mut cache).expect("the first group allows it");
    assert!(matches!(ts.add_certificate(&at(67, &split, emergency).cert, now, &mut cache), Err(SecurityError::Issuance(_))));

    // two groups naming CAMs with other chain lengths: either may allow a ticket
    let two = root_with(68, &[Group { psids: Some(cam_any), chain: (2, 0), app: true }, Group { psids: Some(cam_any), chain: (1, 0), app: true }]);
    let ts = store(&two);
    ts.add_certificate(&at(69, &two, emergency).cert, now, &mut MemoryCertCache::default()).expect("the second group");

    // a root whose single `all` group reaches two levels down (a common PKI profile) issues
    // an authority that itself signs certificate requests (623): the authority's own app
    // permission is not held to the ticket chain length; its tickets are
    let pki = root_with(72, &[Group { psids: None, chain: (2, 0), app: true }]);
    let aa623 = build::authority_with_groups("aa623", &key(73), Some(&pki), start, 1000, &[Group { psids: None, chain: (1, 0), app: true }], &[623]).expect("aa");
    let ts = store(&pki);
    let mut cache = MemoryCertCache::default();
    ts.add_certificate(&aa623.cert, now, &mut cache).expect("an authority with app permission 623");
    ts.add_certificate(&at(74, &aa623, emergency).cert, now, &mut cache).expect("two levels below the root");
    assert!(matches!(ts.add_certificate(&at(75, &pki, ordinary).cert, now, &mut cache), Err(SecurityError::Issuance(_))), "one level below");

    // an enrolment-only group allows no ticket
    let enrol = root_with(70, &[Group { psids: Some(cam_any), chain: (1, 0), app: false }]);
    let ts = store(&enrol);
    assert!(matches!(ts.add_certificate(&at(71, &enrol, ordinary).cert, now, &mut MemoryCertCache::default()), Err(SecurityError::Issuance(_))));
}
