//! edgecell's workspace-level integration tests: one binary, a module per area.
//!
//! They need the components built for wasm32-wasip2 (`make components`) and, for the NATS
//! module, a nats-server ≥ 2.10 (`make setup` installs one into tools/bin).

// Test helpers abort with a message on a failed setup step, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;
mod v2x;
mod fusion;
mod video;
mod host;
mod nats;
mod produce;
mod lattice;
