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

// `deny`, not `forbid`: tract_ops::conv calls its AVX-512 and AVX2 kernels (see that module)
#![deny(unsafe_code)]

pub mod backend;
pub mod error;
pub mod model;
#[cfg(feature = "onnxruntime")]
pub mod ort_backend;
pub mod pool;
pub mod registry;
pub mod stats;
pub mod tensor;
pub mod tract_ops;

pub use backend::{Backend, OrtConfig};
pub use error::{InferenceError, LoadError};
pub use model::Model;
pub use pool::{InferencePool, Pending, PoolConfig};
pub use registry::{ModelRegistry, RegistryConfig};
pub use stats::{LATENCY_BOUNDS_US, LatencySnapshot, PoolStats};
pub use tensor::{ModelInfo, Tensor, TensorData, TensorInfo, TensorType};

/// Generates the conversions between this crate's types and the types a WIT binding generator
/// made for `edgecell:inference/runner` (the embedded host's wasmtime bindings and the wasmCloud
/// provider's wit-bindgen-wrpc bindings, where `list<u8>` is `Bytes`): `inference_error`,
/// `model_info`, `tensor_to_core` and `tensor_to_wit` in the calling module. `$wit` names the
/// generated `runner` module.
#[macro_export]
macro_rules! wit_conversions {
    ($wit:ident) => {
        fn tensor_type(t: $crate::TensorType) -> $wit::TensorType {
            match t {
                $crate::TensorType::F32 => $wit::TensorType::Float32,
                $crate::TensorType::U8 => $wit::TensorType::Uint8,
                $crate::TensorType::I64 => $wit::TensorType::Int64,
            }
        }

        fn model_info(m: $crate::ModelInfo) -> $wit::ModelInfo {
            let info = |i: $crate::TensorInfo| $wit::TensorInfo {
                name: i.name,
                dtype: tensor_type(i.dtype),
                shape: i.shape,
            };
            $wit::ModelInfo {
                name: m.name,
                version: m.version,
                backend: m.backend,
                inputs: m.inputs.into_iter().map(info).collect(),
                outputs: m.outputs.into_iter().map(info).collect(),
            }
        }

        fn inference_error(e: $crate::InferenceError) -> $wit::InferenceError {
            use $crate::InferenceError as E;
            match e {
                E::UnknownModel(m) => $wit::InferenceError::UnknownModel(m),
                E::MissingInput(m) => $wit::InferenceError::MissingInput(m),
                E::UnexpectedInput(m) => $wit::InferenceError::UnexpectedInput(m),
                E::WrongShape {
                    input,
                    expected,
                    actual,
                } => $wit::InferenceError::WrongShape($wit::ShapeMismatch {
                    input,
                    expected,
                    actual,
                }),
                E::WrongDtype {
                    input,
                    expected,
                    actual,
                } => $wit::InferenceError::WrongDtype($wit::DtypeMismatch {
                    input,
                    expected: tensor_type(expected),
                    actual: tensor_type(actual),
                }),
                E::InvalidTensor(m) => $wit::InferenceError::InvalidTensor(m),
                E::TooLarge(n) => $wit::InferenceError::TooLarge(n),
                E::Busy => $wit::InferenceError::Busy,
                E::Backend(m) => $wit::InferenceError::Backend(m),
            }
        }

        #[allow(clippy::useless_conversion)]
        fn tensor_to_core(t: $wit::Tensor) -> $crate::Tensor {
            let data = match t.data {
                $wit::TensorData::Float32(v) => $crate::TensorData::F32(v),
                $wit::TensorData::Uint8(v) => $crate::TensorData::U8(v.into()),
                $wit::TensorData::Int64(v) => $crate::TensorData::I64(v),
            };
            $crate::Tensor {
                name: t.name,
                shape: t.shape,
                data,
            }
        }

        #[allow(clippy::useless_conversion)]
        fn tensor_to_wit(t: $crate::Tensor) -> $wit::Tensor {
            let data = match t.data {
                $crate::TensorData::F32(v) => $wit::TensorData::Float32(v),
                $crate::TensorData::U8(v) => $wit::TensorData::Uint8(v.into()),
                $crate::TensorData::I64(v) => $wit::TensorData::Int64(v),
            };
            $wit::Tensor {
                name: t.name,
                shape: t.shape,
                data,
            }
        }
    };
}
