//! edgecell inference provider core: a registry of ONNX models run by tract, and a worker
//! pool with admission control and metrics. The wasmCloud provider (and the embedded host)
//! map `edgecell:inference/runner` onto [`InferencePool`]:
//!
//! | WIT                | here                              |
//! |--------------------|-----------------------------------|
//! | `list-models`      | [`InferencePool::list_models`]    |
//! | `model-metadata`   | [`InferencePool::model_metadata`] |
//! | `run`              | [`InferencePool::run`]            |
//! | `run-batch`        | [`InferencePool::run_batch`]      |
//! | `inference-error`  | [`InferenceError`]                |
//!
//! Metrics for the metrics provider: [`InferencePool::stats`] ([`PoolStats`]).

#![forbid(unsafe_code)]

pub mod error;
pub mod model;
pub mod pool;
pub mod registry;
pub mod stats;
pub mod tensor;

pub use error::{InferenceError, LoadError};
pub use model::Model;
pub use pool::{InferencePool, Pending, PoolConfig};
pub use registry::{ModelRegistry, RegistryConfig};
pub use stats::{LATENCY_BOUNDS_US, LatencySnapshot, PoolStats};
pub use tensor::{ModelInfo, Tensor, TensorData, TensorInfo, TensorType};
