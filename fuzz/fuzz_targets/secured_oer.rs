//! IEEE 1609.2 secured data (COER): decode + verify against the EU TLM anchor, the
//! unverified-payload helper, and the full validator path.
#![no_main]
use edgecell_v2x::security::{MemoryCertCache, TrustStore, unverified_payload, unverified_signer};
use edgecell_v2x::{MessageFormat, ReceiveContext, Validator};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const TLM: &[u8] = include_bytes!("../../crates/v2x/testdata/E7A4B2B045E7ACF9.oer");

fn store() -> &'static (TrustStore, u64) {
    static S: OnceLock<(TrustStore, u64)> = OnceLock::new();
    S.get_or_init(|| {
        let mut ts = TrustStore::new();
        let t = ts.add_anchor(TLM).expect("TLM anchor");
        (ts, t.valid_from_s + 86_400)
    })
}

fuzz_target!(|data: &[u8]| {
    let (ts, now_s) = store();
    let mut ts = ts.clone();
    let mut cache = MemoryCertCache::default();
    let _ = ts.verify_signed_data(data, now_s * 1_000_000, &mut cache);
    let _ = unverified_payload(data);
    let _ = unverified_signer(data);
    if let Ok(mut v) = Validator::from_toml("") {
        let ctx = ReceiveContext { received_at_ns: now_s * 1_000_000_000, receiver: None };
        let _ = v.validate(MessageFormat::Secured, data, &ctx);
    }
});
