//! One ONNX model ready to run: metadata, input validation, execution on the configured
//! engine (tract, or ONNX Runtime with the `onnxruntime` feature).

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::{
    DatumType, Framework, InferenceModelExt, IntoRunnable, IntoTValue, TValue, TVec,
    Tensor as TractTensor, TypedFact, TypedModel, TypedRunnableModel,
};

use crate::backend::Backend;
use crate::error::{InferenceError, LoadError};
use crate::tensor::{ModelInfo, Tensor, TensorData, TensorInfo, TensorType};

/// A loaded, optimised, runnable model. Cheap to share (`Arc` inside); runs are independent
/// and may happen on several threads at once.
#[derive(Clone)]
pub struct Model {
    info: ModelInfo,
    plan: Plan,
}

#[derive(Clone)]
enum Plan {
    Tract(Arc<TypedRunnableModel>),
    #[cfg(feature = "onnxruntime")]
    Ort(Arc<crate::ort_backend::OrtPlan>),
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn dtype_of(dt: DatumType) -> Option<TensorType> {
    match dt {
        DatumType::F32 => Some(TensorType::F32),
        DatumType::U8 => Some(TensorType::U8),
        DatumType::I64 => Some(TensorType::I64),
        _ => None,
    }
}

fn info_of(
    path: &Path,
    what: &str,
    name: String,
    fact: &TypedFact,
) -> Result<TensorInfo, LoadError> {
    let dtype = dtype_of(fact.datum_type).ok_or_else(|| LoadError::UnsupportedType {
        path: path.to_owned(),
        what: format!("{what} {name}"),
        dtype: format!("{:?}", fact.datum_type),
    })?;
    let shape = fact
        .shape
        .iter()
        .map(|d| d.to_i64().unwrap_or(-1))
        .collect();
    Ok(TensorInfo { name, dtype, shape })
}

/// FNV-1a 64 of the model bytes: a stable version when no sidecar version file exists.
fn content_version(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64-{h:016x}")
}

type Loaded = (Plan, Vec<TensorInfo>, Vec<TensorInfo>);

/// [`load_tract_unguarded`], with a panic inside tract (which asserts on some malformed
/// models, e.g. padding sizes that overflow its shape arithmetic) turned into a load error, so
/// a bad file in the model directory cannot take the provider down.
fn load_tract(path: &Path, bytes: &[u8]) -> Result<Loaded, LoadError> {
    std::panic::catch_unwind(|| load_tract_unguarded(path, bytes)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(LoadError::Model {
            path: path.to_owned(),
            message: format!("tract panicked while loading the model: {why}"),
        })
    })
}

fn load_tract_unguarded(path: &Path, bytes: &[u8]) -> Result<Loaded, LoadError> {
    let model_err = |e: tract_onnx::prelude::TractError| LoadError::Model {
        path: path.to_owned(),
        message: format!("{e:#}"),
    };
    let mut typed = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .and_then(InferenceModelExt::into_typed)
        .and_then(TypedModel::into_decluttered)
        .map_err(model_err)?;
    let fused = crate::tract_ops::fuse(&mut typed).map_err(model_err)?;
    tracing::debug!(path = %path.display(), ?fused, "tract nodes fused onto edgecell kernels");
    let mut typed = typed.into_optimized().map_err(model_err)?;
    let swapped = crate::tract_ops::accelerate(&mut typed).map_err(model_err)?;
    tracing::debug!(path = %path.display(), ?swapped, "tract nodes on edgecell kernels");
    let mut inputs = Vec::new();
    for (i, outlet) in typed.input_outlets().map_err(model_err)?.iter().enumerate() {
        let name = typed.node(outlet.node).name.clone();
        let fact = typed.input_fact(i).map_err(model_err)?;
        inputs.push(info_of(path, "input", name, fact)?);
    }
    let mut outputs = Vec::new();
    for outlet in typed.output_outlets().map_err(model_err)? {
        let name = typed
            .outlet_label(*outlet)
            .map_or_else(|| typed.node(outlet.node).name.clone(), str::to_owned);
        let fact = typed.outlet_fact(*outlet).map_err(model_err)?;
        outputs.push(info_of(path, "output", name, fact)?);
    }
    let plan = typed.into_runnable().map_err(model_err)?;
    Ok((Plan::Tract(plan), inputs, outputs))
}

impl Model {
    /// Loads `path` (ONNX) into tract, optimises it and, if `warmup`, runs it once on zero
    /// inputs. `version` overrides the content-hash version.
    ///
    /// # Errors
    /// [`LoadError`] when the file cannot be read, parsed, optimised or run.
    pub fn load(
        path: &Path,
        name: &str,
        version: Option<String>,
        warmup: bool,
    ) -> Result<Self, LoadError> {
        Self::load_with(path, name, version, warmup, &Backend::Tract)
    }

    /// As [`Self::load`], on the given engine.
    ///
    /// # Errors
    /// [`LoadError`] when the file cannot be read, parsed, optimised or run, when ONNX Runtime
    /// cannot be loaded, or [`LoadError::BackendUnavailable`] when this build lacks the engine.
    pub fn load_with(
        path: &Path,
        name: &str,
        version: Option<String>,
        warmup: bool,
        backend: &Backend,
    ) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
            path: path.to_owned(),
            source,
        })?;
        let (plan, inputs, outputs) = match backend {
            Backend::Tract => load_tract(path, &bytes)?,
            #[cfg(feature = "onnxruntime")]
            Backend::Onnxruntime(cfg) => {
                let l = crate::ort_backend::load(path, &bytes, cfg)?;
                (Plan::Ort(Arc::new(l.plan)), l.inputs, l.outputs)
            }
            #[cfg(not(feature = "onnxruntime"))]
            Backend::Onnxruntime(_) => {
                return Err(LoadError::BackendUnavailable {
                    backend: backend.name(),
                    feature: "onnxruntime",
                });
            }
        };
        let info = ModelInfo {
            name: name.to_owned(),
            version: version.unwrap_or_else(|| content_version(&bytes)),
            backend: backend.name().into(),
            inputs,
            outputs,
        };
        let model = Self { info, plan };
        // A model with free dimensions has no one size to warm up at: ones may not even be
        // legal for it (an upsampled branch added to a lateral one), so it is not warmed up.
        let concrete = model.info.inputs.iter().all(|i| i.shape.iter().all(|&d| d > 0));
        if !concrete && warmup {
            tracing::info!(model = name, "model has free input dimensions: not warmed up");
        }
        if warmup && concrete {
            let zeros = model.zero_inputs();
            model.run(zeros).map_err(|e| LoadError::Model {
                path: path.to_owned(),
                message: format!("warm-up run: {e}"),
            })?;
        }
        Ok(model)
    }

    /// Metadata.
    #[must_use]
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Zero-filled inputs of the declared shapes (free dimensions as 1; a model that has them
    /// may refuse such inputs).
    #[must_use]
    pub fn zero_inputs(&self) -> Vec<Tensor> {
        self.info
            .inputs
            .iter()
            .map(|i| {
                let shape: Vec<u32> = i
                    .shape
                    .iter()
                    .map(|&d| u32::try_from(d).unwrap_or(1).max(1))
                    .collect();
                let n = shape.iter().map(|&d| d as usize).product();
                let data = match i.dtype {
                    TensorType::F32 => TensorData::F32(vec![0.0; n]),
                    TensorType::U8 => TensorData::U8(vec![0; n]),
                    TensorType::I64 => TensorData::I64(vec![0; n]),
                };
                Tensor {
                    name: i.name.clone(),
                    shape,
                    data,
                }
            })
            .collect()
    }

    /// Checks names, element types, shapes and lengths; returns the inputs in model order.
    ///
    /// # Errors
    /// [`InferenceError::MissingInput`], [`InferenceError::UnexpectedInput`],
    /// [`InferenceError::WrongDtype`], [`InferenceError::WrongShape`],
    /// [`InferenceError::InvalidTensor`].
    pub fn validate(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferenceError> {
        let mut slots: Vec<Option<Tensor>> = vec![None; self.info.inputs.len()];
        for t in inputs {
            let pos = self.info.inputs.iter().position(|i| i.name == t.name);
            // A single-input model also accepts an unnamed tensor.
            let pos =
                pos.or_else(|| (t.name.is_empty() && self.info.inputs.len() == 1).then_some(0));
            let Some(slot) = pos.and_then(|p| slots.get_mut(p)) else {
                return Err(InferenceError::UnexpectedInput(t.name));
            };
            if slot.is_some() {
                return Err(InferenceError::UnexpectedInput(t.name));
            }
            *slot = Some(t);
        }
        let mut ordered = Vec::with_capacity(slots.len());
        for (decl, slot) in self.info.inputs.iter().zip(slots) {
            let t = slot.ok_or_else(|| InferenceError::MissingInput(decl.name.clone()))?;
            if t.data.dtype() != decl.dtype {
                return Err(InferenceError::WrongDtype {
                    input: decl.name.clone(),
                    expected: decl.dtype,
                    actual: t.data.dtype(),
                });
            }
            let shape_ok = t.shape.len() == decl.shape.len()
                && t.shape
                    .iter()
                    .zip(&decl.shape)
                    .all(|(&a, &e)| e < 0 || i64::from(a) == e);
            if !shape_ok {
                return Err(InferenceError::WrongShape {
                    input: decl.name.clone(),
                    expected: decl.shape.clone(),
                    actual: t.shape.clone(),
                });
            }
            let want = t.shape_len().ok_or_else(|| {
                InferenceError::InvalidTensor(format!("{}: shape overflows", decl.name))
            })?;
            if want != t.data.len() {
                return Err(InferenceError::InvalidTensor(format!(
                    "{}: shape {:?} needs {want} values, got {}",
                    decl.name,
                    t.shape,
                    t.data.len()
                )));
            }
            ordered.push(Tensor {
                name: decl.name.clone(),
                ..t
            });
        }
        Ok(ordered)
    }

    /// Validates and runs one request on the calling thread.
    ///
    /// # Errors
    /// Validation errors as in [`Self::validate`]; [`InferenceError::Backend`] when tract fails.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferenceError> {
        let ordered = self.validate(inputs)?;
        self.run_validated(ordered)
    }

    /// Runs inputs already returned by [`Self::validate`].
    ///
    /// # Errors
    /// [`InferenceError::Backend`].
    pub fn run_validated(&self, ordered: Vec<Tensor>) -> Result<Vec<Tensor>, InferenceError> {
        match &self.plan {
            Plan::Tract(plan) => self.run_tract(plan, ordered),
            #[cfg(feature = "onnxruntime")]
            Plan::Ort(plan) => plan.run(&ordered, &self.info.outputs),
        }
    }

    fn run_tract(
        &self,
        plan: &Arc<TypedRunnableModel>,
        ordered: Vec<Tensor>,
    ) -> Result<Vec<Tensor>, InferenceError> {
        let backend =
            |e: tract_onnx::prelude::TractError| InferenceError::Backend(format!("{e:#}"));
        let mut values: TVec<TValue> = TVec::new();
        for t in ordered {
            let shape = t.shape_usize();
            let tensor = match &t.data {
                TensorData::F32(v) => TractTensor::from_shape(&shape, v),
                TensorData::U8(v) => TractTensor::from_shape(&shape, v),
                TensorData::I64(v) => TractTensor::from_shape(&shape, v),
            }
            .map_err(backend)?;
            values.push(tensor.into_tvalue());
        }
        let outs = plan.run(values).map_err(backend)?;
        let mut result = Vec::with_capacity(outs.len());
        for (value, decl) in outs.iter().zip(&self.info.outputs) {
            let shape = value
                .shape()
                .iter()
                .map(|&d| {
                    u32::try_from(d).map_err(|_| {
                        InferenceError::Backend("output dimension overflows u32".into())
                    })
                })
                .collect::<Result<Vec<u32>, _>>()?;
            let view = value.try_as_plain_ram().map_err(backend)?;
            let data = match value.datum_type() {
                DatumType::F32 => {
                    TensorData::F32(view.as_slice::<f32>().map_err(backend)?.to_vec())
                }
                DatumType::U8 => TensorData::U8(view.as_slice::<u8>().map_err(backend)?.to_vec()),
                DatumType::I64 => {
                    TensorData::I64(view.as_slice::<i64>().map_err(backend)?.to_vec())
                }
                other => {
                    return Err(InferenceError::Backend(format!(
                        "unsupported output type {other:?}"
                    )));
                }
            };
            result.push(Tensor {
                name: decl.name.clone(),
                shape,
                data,
            });
        }
        Ok(result)
    }
}
