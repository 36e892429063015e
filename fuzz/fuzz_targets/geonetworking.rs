//! GeoNetworking + BTP framing and Radiotap + 802.11p + LLC + GN framing, unsecured and
//! secured (the 1609.2 data split off and its payload decoded as the rest of the packet).
#![no_main]
use edgecell_v2x::MessageFormat;
use edgecell_v2x::decode::{Framing, decode_its, secured_gn};
use edgecell_v2x::security::unverified_payload;
use libfuzzer_sys::fuzz_target;

const RCV_ITS_MS: u64 = 600_000_000_000;

fuzz_target!(|data: &[u8]| {
    for framing in [Framing::GeoNetworking, Framing::RadiotapFrame] {
        let _ = decode_its(data, framing, RCV_ITS_MS);
        if let Ok(Some(gn)) = secured_gn(data, framing)
            && let Some(inner) = unverified_payload(gn.secured)
        {
            let _ = decode_its(&gn.unsecured_packet(&inner), Framing::GeoNetworking, RCV_ITS_MS);
        }
    }
    // what the actor reads ahead before validating: the signer and the CAM's station id
    for format in [MessageFormat::GeoNetworking, MessageFormat::RadiotapFrame] {
        let _ = format.peek_signer(data);
        let _ = format.peek_cam_station_id(data);
        let _ = format.peek_sender(data);
    }
});
