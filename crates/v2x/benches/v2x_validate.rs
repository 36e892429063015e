//! `v2x_validate`: unsigned CAM validation and signed (P-256, certificate cached) CAM
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_lossless
)]
//! validation, native. Messages/s = 1 / time per iteration.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgecell_v2x::config::Config;
use edgecell_v2x::decode::{Framing, decode_its};
use edgecell_v2x::history::MemoryHistory;
use edgecell_v2x::observation::its_ms_to_unix_ns;
use edgecell_v2x::security::{MemoryCertCache, build};
use edgecell_v2x::validator::{AnchorCheck, MessageFormat, ReceiveContext, Validator};

const CAM: &[u8] = include_bytes!("../testdata/c-its-parser-cam.uper");

fn rcv_its_ms() -> u64 {
    let base = 700_000_000_000u64;
    base - base % 65_536 + 51_136 + 10
}

fn bench(c: &mut Criterion) {
    let now_ms = rcv_its_ms();
    let ctx = ReceiveContext {
        received_at_ns: its_ms_to_unix_ns(now_ms),
        receiver: None,
    };
    let mut g = c.benchmark_group("v2x_validate");
    g.throughput(Throughput::Elements(1));

    g.bench_function("decode_cam_uper", |b| {
        b.iter(|| decode_its(std::hint::black_box(CAM), Framing::Uper, now_ms));
    });

    let mut v = Validator::new(Config::default()).expect("validator");
    g.bench_function("unsigned_cam", |b| {
        b.iter(|| v.validate(MessageFormat::Uper, std::hint::black_box(CAM), &ctx));
    });

    let start = u32::try_from(now_ms / 1000 - 3600).expect("u32");
    let chain = build::CamChain::new(start).expect("chain");
    let mut sv = Validator::from_toml(&chain.trust_toml()).expect("validator");
    sv.add_certificate(&chain.aa.cert, ctx.received_at_ns)
        .expect("aa");
    // first message carries the AT certificate (verified once, then cached)
    let first = build::signed_data(&chain.at, CAM, 36, (now_ms - 20) * 1000, true).expect("sign");
    let r = sv
        .validate(MessageFormat::Secured, &first, &ctx)
        .expect("first");
    assert!(r.signed);
    let msg = build::signed_data(&chain.at, CAM, 36, (now_ms - 10) * 1000, false).expect("sign");
    // breakdown: the raw ECDSA P-256 prehash verification alone
    {
        use ecdsa_breakdown::*;
        let (vk, digest, sig) = setup(&chain.at.key);
        // RustCrypto p256 (the component's path) and the native path (ring), same signature
        g.bench_function("p256_verify_prehash_only", |b| {
            b.iter(|| verify(&vk, std::hint::black_box(&digest), &sig));
        });
        let input = [5u8; 64];
        let sig_in = sign_input(&chain.at.key, &input);
        g.bench_function("p256_verify_input_native", |b| {
            b.iter(|| {
                vk.verify_input(std::hint::black_box(&input), &sig_in)
                    .is_ok()
            });
        });
    }
    g.bench_function("signed_p256_cam_cached_cert", |b| {
        b.iter(|| sv.validate(MessageFormat::Secured, std::hint::black_box(&msg), &ctx));
    });
    // as it comes off the air: a secured GeoNetworking packet (TS 103 097), the signed part
    // being the rest of a captured GN packet (common + extended header, BTP, CAM)
    let frame =
        hex::decode(include_str!("../testdata/c-its-parser-cam-radiotap.hex").trim()).expect("hex");
    let llc = frame
        .windows(8)
        .position(|w| w == [0xaa, 0xaa, 0x03, 0, 0, 0, 0x89, 0x47])
        .expect("GN");
    let gn = &frame[llc + 8..frame.len() - 4];
    let signed =
        build::signed_data(&chain.at, &gn[4..], 36, (now_ms - 10) * 1000, false).expect("sign");
    let secured_gn = [[0x12, gn[1], gn[2], gn[3]].as_slice(), &signed].concat();
    assert!(
        sv.validate(MessageFormat::GeoNetworking, &secured_gn, &ctx)
            .expect("gn")
            .signed
    );
    g.bench_function("secured_gn_p256_cam_cached_cert", |b| {
        b.iter(|| {
            sv.validate(
                MessageFormat::GeoNetworking,
                std::hint::black_box(&secured_gn),
                &ctx,
            )
        });
    });
    // what each lattice invocation pays before its first check: a validator from the TOML
    // (root anchor and AA as CA certificate), with the anchor's self-signature verified (the
    // first instance) or only parsed (the others, `AnchorCheck::VerifiedBefore`)
    let toml = chain.trust_toml_with_aa();
    for (name, check) in [
        ("build_validator_anchor_verified", AnchorCheck::Verify),
        (
            "build_validator_anchor_verified_before",
            AnchorCheck::VerifiedBefore,
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let cfg = Config::from_toml(std::hint::black_box(&toml)).expect("toml");
                Validator::with_stores_checking(
                    cfg,
                    MemoryHistory::default(),
                    MemoryCertCache::default(),
                    check,
                )
                .is_ok()
            });
        });
    }
    g.bench_function("build_validator_default_config", |b| {
        b.iter(|| Validator::from_toml(std::hint::black_box("")).is_ok());
    });
    g.finish();
}

mod ecdsa_breakdown {
    use edgecell_v2x::security::{Curve, PublicKey, RawSignature, VerifyingKey};
    use p256::ecdsa::signature::hazmat::PrehashSigner;

    pub fn setup(key: &p256::ecdsa::SigningKey) -> (VerifyingKey, Vec<u8>, RawSignature) {
        let digest = [7u8; 32].to_vec();
        let sig: p256::ecdsa::Signature = key.sign_prehash(&digest).expect("sign");
        let bytes = sig.to_bytes();
        let raw = RawSignature {
            curve: Curve::NistP256,
            r: bytes[..32].to_vec(),
            s: bytes[32..].to_vec(),
        };
        let pk = PublicKey {
            curve: Curve::NistP256,
            sec1: key.verifying_key().to_sec1_point(true).as_bytes().to_vec(),
        };
        (pk.parse().expect("key"), digest, raw)
    }

    /// Signs a 1609.2 signature input (hashed once more by ECDSA with SHA-256).
    pub fn sign_input(key: &p256::ecdsa::SigningKey, input: &[u8]) -> RawSignature {
        let digest = edgecell_v2x::security::HashAlg::Sha256.digest(input);
        let sig: p256::ecdsa::Signature = key.sign_prehash(&digest).expect("sign");
        let bytes = sig.to_bytes();
        RawSignature {
            curve: Curve::NistP256,
            r: bytes[..32].to_vec(),
            s: bytes[32..].to_vec(),
        }
    }

    pub fn verify(vk: &VerifyingKey, digest: &[u8], sig: &RawSignature) -> bool {
        vk.verify_prehash(digest, sig).is_ok()
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
