//! Link settings of the component.

/// wasm-ld's shadow stack for this component, bytes. Rust's default (1 MiB) alone would put every
/// instance above the 1 MiB linear-memory target. Measured need (rustc 1.95, profile `component`):
/// the whole v2x test module and `edgecell run` pass with 56 KiB and trap with 48 KiB. The
/// deepest input is a road map of feature collections nested to serde_json's 128-level limit
/// (read recursively); everything else — 1609.2 data nested as deep as the OER guard admits
/// (recursive rasn decoding), P-256 and brainpoolP384r1 verification, the simulated traces —
/// passes with 40 KiB (tests/all/v2x.rs `..._never_trap`). 96 KiB keeps a 1.7x margin for
/// compiler and dependency changes; an overflow is a trap, which those tests would catch.
const STACK_SIZE: u32 = 96 * 1024;

fn main() {
    // only the wasm link takes it (the workspace's native builds of the crate do not)
    if std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size={STACK_SIZE}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
