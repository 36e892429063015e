//! Link settings of the component.

/// wasm-ld's shadow stack for this component, bytes. Rust's default (1 MiB) alone would put every
/// instance above the 1 MiB linear-memory target. Measured need (rustc 1.95, profile `component`):
/// the whole fusion test module and `edgecell run` pass with 80 KiB and trap with 72 KiB — the
/// EKF/UKF paths keep 15-state nalgebra matrices on the stack (frames of 11-17 KB in
/// `Localizer::new`/`fuse`/`from_snapshot`, `Ekf::correct`), and the flattened sensor envelope
/// buffers unknown JSON fields recursively up to serde_json's 128 levels
/// (tests/all/fusion.rs `the_deepest_json_serde_accepts_and_hostile_nesting_never_trap`).
/// 128 KiB keeps a 1.6x margin for compiler and dependency changes; an overflow is a trap, which
/// those tests would catch.
const STACK_SIZE: u32 = 128 * 1024;

fn main() {
    // only the wasm link takes it (the workspace's native builds of the crate do not)
    if std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size={STACK_SIZE}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
