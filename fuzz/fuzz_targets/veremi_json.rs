//! One VeReMi JSON line through the validator (type 2 and type 3) and the JsonBeacon format.
#![no_main]
use edgecell_v2x::{MessageFormat, ReceiveContext, Validator};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut v) = Validator::from_toml("") {
        let _ = v.process_veremi_line(data);
        let ctx = ReceiveContext { received_at_ns: 1_000_000_000, receiver: None };
        let _ = v.validate(MessageFormat::JsonBeacon, data, &ctx);
    }
});
