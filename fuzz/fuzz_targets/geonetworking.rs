//! GeoNetworking + BTP framing and Radiotap + 802.11p + LLC + GN framing.
#![no_main]
use edgecell_v2x::decode::{Framing, decode_its};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_its(data, Framing::GeoNetworking, 600_000_000_000);
    let _ = decode_its(data, Framing::RadiotapFrame, 600_000_000_000);
});
