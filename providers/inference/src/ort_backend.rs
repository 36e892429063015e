//! The ONNX Runtime engine (feature `onnxruntime`): one model as a small set of ONNX Runtime
//! sessions. A session runs one request at a time (`ort`'s `Session::run` takes `&mut self`),
//! so a model keeps one session per pool worker and a run takes the first free one.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, TensorElementType, TensorRef, ValueType};

use crate::backend::OrtConfig;
use crate::error::{InferenceError, LoadError};
use crate::tensor::{Tensor, TensorData, TensorInfo, TensorType};

/// The process-wide ONNX Runtime environment (ONNX Runtime allows one per process). The library
/// of the first successful load ([`LIBRARY`]) wins; a later configuration naming another file
/// gets an error rather than silently running on the first library.
static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
/// The library `ort` loaded, set as soon as the load succeeds (the environment may still fail
/// after it; `ort` keeps the library either way).
static LIBRARY: OnceLock<std::path::PathBuf> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The library path as it will be compared and loaded: paths with a directory part made
/// absolute (so `x.so` and `./x.so` are one library); a bare file name is left to the dynamic
/// loader's search path.
fn normalised(p: &Path) -> Result<std::path::PathBuf, String> {
    if p.is_absolute() || p.components().count() <= 1 {
        // `ort` looks a relative name up next to the executable first and panics if the
        // executable's path is unknown: make sure it is known.
        std::env::current_exe().map_err(|e| {
            format!(
                "cannot locate this executable to resolve {}: {e}",
                p.display()
            )
        })?;
        return Ok(p.to_owned());
    }
    std::path::absolute(p).map_err(|e| format!("resolving {}: {e}", p.display()))
}

fn environment(cfg: &OrtConfig) -> Result<&'static ort::environment::Environment, String> {
    let wanted = normalised(&cfg.library_path())?;
    let _serial = INIT
        .lock()
        .map_err(|_| "onnxruntime initialisation poisoned".to_owned())?;
    if let Some(loaded) = LIBRARY.get()
        && *loaded != wanted
    {
        return Err(format!(
            "this process already runs ONNX Runtime from {}; it cannot also load {}",
            loaded.display(),
            wanted.display()
        ));
    }
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let builder = ort::init_from(&wanted).map_err(|e| format!("loading ONNX Runtime: {e}"))?;
    let _ = LIBRARY.set(wanted);
    let env = builder
        .with_name("edgecell-inference")
        .with_telemetry(false)
        .build()
        .map_err(|e| format!("creating the ONNX Runtime environment: {e}"))?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

fn dtype_of(t: TensorElementType) -> Option<TensorType> {
    match t {
        TensorElementType::Float32 => Some(TensorType::F32),
        TensorElementType::Uint8 => Some(TensorType::U8),
        TensorElementType::Int64 => Some(TensorType::I64),
        _ => None,
    }
}

fn info_of(path: &Path, what: &str, name: &str, ty: &ValueType) -> Result<TensorInfo, LoadError> {
    let unsupported = |dtype: String| LoadError::UnsupportedType {
        path: path.to_owned(),
        what: format!("{what} {name}"),
        dtype,
    };
    let ValueType::Tensor { ty, shape, .. } = ty else {
        return Err(unsupported(format!("{ty:?}")));
    };
    let dtype = dtype_of(*ty).ok_or_else(|| unsupported(format!("{ty:?}")))?;
    Ok(TensorInfo {
        name: name.to_owned(),
        dtype,
        shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
    })
}

/// A model's ONNX Runtime sessions.
pub(crate) struct OrtPlan {
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
}

/// What loading produced: the sessions and the declared inputs/outputs.
pub(crate) struct Loaded {
    pub plan: OrtPlan,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

/// Builds `cfg.session_count()` sessions of the model in `bytes`.
pub(crate) fn load(path: &Path, bytes: &[u8], cfg: &OrtConfig) -> Result<Loaded, LoadError> {
    let model_err = |message: String| LoadError::Model {
        path: path.to_owned(),
        message,
    };
    cfg.check().map_err(model_err)?;
    let env = environment(cfg).map_err(model_err)?;
    let count = cfg.session_count();
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        let ort_err = |e: &dyn std::fmt::Display| model_err(format!("onnxruntime: {e}"));
        let mut builder = Session::builder(env)
            .map_err(|e| ort_err(&e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| ort_err(&e))?
            .with_intra_threads(cfg.intra_threads)
            .map_err(|e| ort_err(&e))?
            .with_inter_threads(1)
            .map_err(|e| ort_err(&e))?;
        let session = builder.commit_from_memory(bytes).map_err(|e| ort_err(&e))?;
        sessions.push(Mutex::new(session));
    }
    let Some(first) = sessions.first() else {
        return Err(model_err("onnxruntime: no session".into()));
    };
    let first = first
        .lock()
        .map_err(|_| model_err("onnxruntime session poisoned".into()))?;
    let inputs = first
        .inputs()
        .iter()
        .map(|o| info_of(path, "input", o.name(), o.dtype()))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = first
        .outputs()
        .iter()
        .map(|o| info_of(path, "output", o.name(), o.dtype()))
        .collect::<Result<Vec<_>, _>>()?;
    drop(first);
    Ok(Loaded {
        plan: OrtPlan {
            sessions,
            next: AtomicUsize::new(0),
        },
        inputs,
        outputs,
    })
}

fn backend(e: impl std::fmt::Display) -> InferenceError {
    InferenceError::Backend(format!("onnxruntime: {e}"))
}

fn output(name: &str, value: &DynValue) -> Result<Tensor, InferenceError> {
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(backend(format!("output {name} is not a tensor")));
    };
    let (shape, data) = match ty {
        TensorElementType::Float32 => {
            let (s, d) = value.try_extract_tensor::<f32>().map_err(backend)?;
            (s.to_vec(), TensorData::F32(d.to_vec()))
        }
        TensorElementType::Uint8 => {
            let (s, d) = value.try_extract_tensor::<u8>().map_err(backend)?;
            (s.to_vec(), TensorData::U8(d.to_vec()))
        }
        TensorElementType::Int64 => {
            let (s, d) = value.try_extract_tensor::<i64>().map_err(backend)?;
            (s.to_vec(), TensorData::I64(d.to_vec()))
        }
        other => return Err(backend(format!("unsupported output type {other:?}"))),
    };
    let shape = shape
        .into_iter()
        .map(|d| u32::try_from(d).map_err(|_| backend("output dimension out of range")))
        .collect::<Result<Vec<u32>, _>>()?;
    Ok(Tensor {
        name: name.to_owned(),
        shape,
        data,
    })
}

impl OrtPlan {
    /// Runs validated inputs (model order) on a free session, or waits for one.
    pub(crate) fn run(
        &self,
        ordered: &[Tensor],
        outputs: &[TensorInfo],
    ) -> Result<Vec<Tensor>, InferenceError> {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut guard = None;
        for i in 0..n {
            if let Some(s) = self.sessions.get((start + i) % n)
                && let Ok(g) = s.try_lock()
            {
                guard = Some(g);
                break;
            }
        }
        let mut session = match guard {
            Some(g) => g,
            None => self
                .sessions
                .get(start % n.max(1))
                .ok_or_else(|| backend("no session"))?
                .lock()
                .map_err(|_| backend("session poisoned by an earlier panic"))?,
        };
        let mut values: Vec<(String, SessionInputValue<'_>)> = Vec::with_capacity(ordered.len());
        for t in ordered {
            let shape: Vec<i64> = t.shape.iter().map(|&d| i64::from(d)).collect();
            let value: SessionInputValue<'_> = match &t.data {
                TensorData::F32(v) => TensorRef::from_array_view((shape, v.as_slice()))
                    .map_err(backend)?
                    .into(),
                TensorData::U8(v) => TensorRef::from_array_view((shape, v.as_slice()))
                    .map_err(backend)?
                    .into(),
                TensorData::I64(v) => TensorRef::from_array_view((shape, v.as_slice()))
                    .map_err(backend)?
                    .into(),
            };
            values.push((t.name.clone(), value));
        }
        let outs = session.run(values).map_err(backend)?;
        outputs
            .iter()
            .map(|decl| {
                let value = outs
                    .get(&decl.name)
                    .ok_or_else(|| backend(format!("missing output {}", decl.name)))?;
                output(&decl.name, value)
            })
            .collect()
    }
}
