//! Support shared by the integration tests (`all/`) and the lattice benchmark (`benches/`).
#![forbid(unsafe_code)]

pub mod support;
