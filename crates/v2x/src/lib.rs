//! edgecell v2x domain crate: decoding of ETSI ITS messages (CAM/DENM/CPM, GeoNetworking) and
//! VeReMi beacons, IEEE 1609.2 security, misbehaviour (plausibility) checks, risk assessment,
//! and a seeded F2MD attack simulator with an evaluator.
//!
//! Entry point for the CLI and the actor: [`validator::Validator`].

#![forbid(unsafe_code)]

pub mod cam_v2;
pub mod cdd_v24;
pub mod checks;
pub mod config;
pub mod cpm_v2;
pub mod decode;
pub mod denm_v2;
pub mod error;
pub mod geo;
pub mod history;
pub mod map;
pub mod observation;
pub mod oer_guard;
pub mod risk;
pub mod security;
pub mod sim;
pub mod ssp;
pub mod validator;

pub use validator::{MessageFormat, ReceiveContext, ReceiverState, Validation, Validator, Verdict};

pub use error::{SecurityError, V2xError};
