//! The inference capability backed by the tract model registry and worker pool of the
//! inference provider core.

use edgecell_inference::{InferenceError as E, InferencePool, ModelInfo, Tensor, TensorData, TensorInfo, TensorType};

use crate::bindings::capabilities::edgecell::inference::runner as wit;
use crate::services::InferenceBackend;

fn dtype(t: TensorType) -> wit::TensorType {
    match t {
        TensorType::F32 => wit::TensorType::Float32,
        TensorType::U8 => wit::TensorType::Uint8,
        TensorType::I64 => wit::TensorType::Int64,
    }
}

fn info(i: TensorInfo) -> wit::TensorInfo {
    wit::TensorInfo { name: i.name, dtype: dtype(i.dtype), shape: i.shape }
}

fn model_info(m: ModelInfo) -> wit::ModelInfo {
    wit::ModelInfo {
        name: m.name,
        version: m.version,
        backend: m.backend,
        inputs: m.inputs.into_iter().map(info).collect(),
        outputs: m.outputs.into_iter().map(info).collect(),
    }
}

fn error(e: E) -> wit::InferenceError {
    match e {
        E::UnknownModel(m) => wit::InferenceError::UnknownModel(m),
        E::MissingInput(m) => wit::InferenceError::MissingInput(m),
        E::UnexpectedInput(m) => wit::InferenceError::UnexpectedInput(m),
        E::WrongShape { input, expected, actual } => wit::InferenceError::WrongShape(wit::ShapeMismatch { input, expected, actual }),
        E::WrongDtype { input, expected, actual } => {
            wit::InferenceError::WrongDtype(wit::DtypeMismatch { input, expected: dtype(expected), actual: dtype(actual) })
        }
        E::InvalidTensor(m) => wit::InferenceError::InvalidTensor(m),
        E::TooLarge(n) => wit::InferenceError::TooLarge(n),
        E::Busy => wit::InferenceError::Busy,
        E::Backend(m) => wit::InferenceError::Backend(m),
    }
}

fn to_core(t: wit::Tensor) -> Tensor {
    let data = match t.data {
        wit::TensorData::Float32(v) => TensorData::F32(v),
        wit::TensorData::Uint8(v) => TensorData::U8(v),
        wit::TensorData::Int64(v) => TensorData::I64(v),
    };
    Tensor { name: t.name, shape: t.shape, data }
}

fn to_wit(t: Tensor) -> wit::Tensor {
    let data = match t.data {
        TensorData::F32(v) => wit::TensorData::Float32(v),
        TensorData::U8(v) => wit::TensorData::Uint8(v),
        TensorData::I64(v) => wit::TensorData::Int64(v),
    };
    wit::Tensor { name: t.name, shape: t.shape, data }
}

impl InferenceBackend for InferencePool {
    fn list_models(&self) -> Vec<wit::ModelInfo> {
        InferencePool::list_models(self).into_iter().map(model_info).collect()
    }

    fn model_metadata(&self, name: &str) -> Result<wit::ModelInfo, wit::InferenceError> {
        InferencePool::model_metadata(self, name).map(model_info).map_err(error)
    }

    fn run(&self, model: &str, inputs: Vec<wit::Tensor>) -> Result<Vec<wit::Tensor>, wit::InferenceError> {
        InferencePool::run(self, model, inputs.into_iter().map(to_core).collect())
            .map(|out| out.into_iter().map(to_wit).collect())
            .map_err(error)
    }
}
