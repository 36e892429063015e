//! Certificate (COER) decode + self-signature / issuer verification.
#![no_main]
use edgecell_v2x::security::{TrustStore, parse_certificate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse_certificate(data) {
        let _ = p.issuer();
        if let Ok(v) = p.verify(None) {
            let _ = v.valid_at(v.valid_from_s);
        }
        let _ = p.info(None);
    }
    let mut ts = TrustStore::new();
    let _ = ts.add_anchor(data);
});
