//! edgecell's workspace-level integration tests: one binary, a module per area.
//!
//! They need the components built for wasm32-wasip2 (`make components`) and, for the NATS
//! module, a nats-server ≥ 2.10 (`make setup` installs one into tools/bin).

mod common;
mod host;
mod nats;
