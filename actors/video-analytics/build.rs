//! Link settings of the component.

/// wasm-ld's shadow stack for this component, bytes. Rust's default (1 MiB) alone would put every
/// instance above the 1 MiB linear-memory target. Measured need (rustc 1.95, profile `component`):
/// the whole video test module and `edgecell run` pass with 56 KiB and trap with 52 KiB; the
/// `image` decoders keep large frames on the stack (`ImageReader::make_decoder` 32 KB, the JPEG
/// decoder's `read_image_boxed` 29 KB), JPEG and PNG frames both pass (tests/all/video.rs
/// `png_frames_and_the_deepest_json_frame_reference_never_trap`). 128 KiB (2.3x) because those
/// frames belong to a third-party decoder whose updates can grow them, and the frames
/// themselves (MiBs) dwarf it; an overflow is a trap, which the tests would catch.
const STACK_SIZE: u32 = 128 * 1024;

fn main() {
    // only the wasm link takes it (the workspace's native builds of the crate do not)
    if std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size={STACK_SIZE}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
