//! Typed errors (run-time errors mirror `edgecell:inference/runner.inference-error`).

use std::path::PathBuf;

use thiserror::Error;

use crate::tensor::TensorType;

/// Errors of a run request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InferenceError {
    /// No model of that name is loaded.
    #[error("unknown model {0:?}")]
    UnknownModel(String),
    /// A declared input was not supplied.
    #[error("missing input {0:?}")]
    MissingInput(String),
    /// An input the model does not declare (or supplied twice).
    #[error("unexpected input {0:?}")]
    UnexpectedInput(String),
    /// The input's shape does not match the declared one.
    #[error("input {input:?} has shape {actual:?}, model expects {expected:?}")]
    WrongShape {
        /// Input name.
        input: String,
        /// Declared shape (-1 = free).
        expected: Vec<i64>,
        /// Supplied shape.
        actual: Vec<u32>,
    },
    /// The input's element type does not match the declared one.
    #[error("input {input:?} is {actual}, model expects {expected}")]
    WrongDtype {
        /// Input name.
        input: String,
        /// Declared type.
        expected: TensorType,
        /// Supplied type.
        actual: TensorType,
    },
    /// Data length does not match the product of the shape.
    #[error("invalid tensor: {0}")]
    InvalidTensor(String),
    /// The request is larger than the provider accepts (bytes).
    #[error("request too large: {0} bytes")]
    TooLarge(u64),
    /// The queue is full; retry later.
    #[error("inference queue is full")]
    Busy,
    /// The backend failed while running the model.
    #[error("backend error: {0}")]
    Backend(String),
}

/// Errors loading models into the registry.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Reading the directory or a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// Path concerned.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The model could not be parsed, optimised or warmed up.
    #[error("loading model {path}: {message}")]
    Model {
        /// Model file.
        path: PathBuf,
        /// Backend message.
        message: String,
    },
    /// The model declares an input or output type the runner does not carry.
    #[error("model {path}: {what} has unsupported element type {dtype}")]
    UnsupportedType {
        /// Model file.
        path: PathBuf,
        /// Input/output concerned.
        what: String,
        /// tract's type name.
        dtype: String,
    },
    /// No model was found to load: the directory holds no `*.onnx` file, or none that
    /// `only` names.
    #[error("no model to load in {dir}")]
    NoModels {
        /// Directory scanned.
        dir: PathBuf,
    },
    /// `only` names models the directory does not hold (a typo would otherwise surface only
    /// as `unknown-model` on every run).
    #[error("no such model in {dir}: {names:?}")]
    NotFound {
        /// Directory scanned.
        dir: PathBuf,
        /// The names without a file.
        names: Vec<String>,
    },
    /// Two files give one model name (`a.onnx` and `a.ONNX`).
    #[error("two files in {dir} are both model {name:?}")]
    Duplicate {
        /// Directory scanned.
        dir: PathBuf,
        /// The model name.
        name: String,
    },
    /// The configured engine is not compiled into this build.
    #[error("inference backend {backend:?} is not in this build (cargo feature `{feature}`)")]
    BackendUnavailable {
        /// Engine name.
        backend: &'static str,
        /// The cargo feature that adds it.
        feature: &'static str,
    },
}
