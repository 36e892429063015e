//! UPER CAM/DENM/CPM: c-its-parser path (via decode_its) and the crate's own CAM reader.
#![no_main]
use edgecell_v2x::decode::{Framing, decode_its};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_its(data, Framing::Uper, 600_000_000_000);
    let _ = edgecell_v2x::uper_cam::decode_cam(data);
});
