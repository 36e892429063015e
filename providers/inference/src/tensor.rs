//! Tensors and model metadata (mirrors `edgecell:inference/runner`).

use serde::{Deserialize, Serialize};

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorType {
    /// 32-bit float.
    F32,
    /// Unsigned byte.
    U8,
    /// 64-bit signed integer.
    I64,
}

impl TensorType {
    /// Bytes per element.
    #[must_use]
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::U8 => 1,
            Self::I64 => 8,
        }
    }
}

impl std::fmt::Display for TensorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::U8 => "u8",
            Self::I64 => "i64",
        })
    }
}

/// Tensor values, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TensorData {
    /// f32 values.
    F32(Vec<f32>),
    /// u8 values.
    U8(Vec<u8>),
    /// i64 values.
    I64(Vec<i64>),
}

impl TensorData {
    /// Element type.
    #[must_use]
    pub fn dtype(&self) -> TensorType {
        match self {
            Self::F32(_) => TensorType::F32,
            Self::U8(_) => TensorType::U8,
            Self::I64(_) => TensorType::I64,
        }
    }

    /// Number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::U8(v) => v.len(),
            Self::I64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Payload size in bytes.
    #[must_use]
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype().size()
    }

    /// The f32 values, if this is an f32 tensor.
    #[must_use]
    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            Self::F32(v) => Some(v),
            _ => None,
        }
    }
}

/// A named dense tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Input or output name as in the model.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<u32>,
    /// Values (`shape` product of them).
    pub data: TensorData,
}

impl Tensor {
    /// An f32 tensor.
    #[must_use]
    pub fn f32(name: impl Into<String>, shape: Vec<u32>, data: Vec<f32>) -> Self {
        Self {
            name: name.into(),
            shape,
            data: TensorData::F32(data),
        }
    }

    /// Shape as `usize` (for the vision crate's `TensorView`).
    #[must_use]
    pub fn shape_usize(&self) -> Vec<usize> {
        self.shape.iter().map(|&d| d as usize).collect()
    }

    /// Product of the shape; `None` when the product of its non-zero dimensions exceeds
    /// `isize::MAX` (an empty tensor's other dimensions still make strides, which must not
    /// overflow).
    #[must_use]
    pub fn shape_len(&self) -> Option<usize> {
        let nonzero = self
            .shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
            .filter(|&n| isize::try_from(n).is_ok())?;
        Some(if self.shape.contains(&0) { 0 } else { nonzero })
    }
}

/// Declared input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: TensorType,
    /// Dimensions; -1 where the model leaves a dimension free.
    pub shape: Vec<i64>,
}

/// Metadata of a loaded model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Registry name (file stem).
    pub name: String,
    /// Version (sidecar `<stem>.version` file, else a content hash).
    pub version: String,
    /// Backend running it (`"tract"`).
    pub backend: String,
    /// Inputs in model order.
    pub inputs: Vec<TensorInfo>,
    /// Outputs in model order.
    pub outputs: Vec<TensorInfo>,
}
