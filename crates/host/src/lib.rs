//! edgecell's embedded lattice: a wasmtime component host whose actors reach in-process
//! provider cores (cache, metrics, inference, messaging) through the WIT interfaces in `wit/`.
//!
//! The same actors run unchanged on a wasmCloud 1.9 lattice; this host is what a first run,
//! the tests and the benchmarks use.

pub mod bindings;
pub mod config;
pub mod inference;
pub mod inspect;
pub mod nats;
pub mod produce;
pub mod runtime;
pub mod services;
pub mod state;

pub use runtime::{Actor, ActorInstance, ActorSpec, HostError, InstancePool, LoadSource, Runtime, RuntimeConfig, sha256_hex};
pub use services::{Bus, InferenceBackend, LocalBus, NoModels, Published, Services};
