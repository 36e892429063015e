//! UPER CAM (Release 1 and 2, cam_v2) / DENM (denm_v2) / CPM (cpm_v2), directly and via decode_its.
#![no_main]
use edgecell_v2x::decode::{Framing, decode_its};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_its(data, Framing::Uper, 600_000_000_000);
    let _ = edgecell_v2x::cam_v2::decode(data);
    let _ = edgecell_v2x::denm_v2::decode(data);
    let _ = edgecell_v2x::cpm_v2::decode(data);
});
