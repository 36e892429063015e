//! Model registry: every `*.onnx` in a directory, named by file stem.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::backend::{Backend, OrtConfig};
use crate::error::{InferenceError, LoadError};
use crate::model::Model;
use crate::tensor::ModelInfo;

/// How the registry loads models. In serialized form the engine is a `backend` name
/// (`tract` when absent) with the [`crate::OrtConfig`] fields beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRegistryConfig")]
pub struct RegistryConfig {
    /// Directory scanned for `*.onnx` files (not recursive). A `<stem>.version` text file
    /// next to a model sets its version; otherwise the version is a content hash.
    pub dir: PathBuf,
    /// Run each model once on zero inputs after loading.
    #[serde(default = "default_true")]
    pub warmup: bool,
    /// Load only these model names (empty = all).
    #[serde(default)]
    pub only: Vec<String>,
    /// The engine that runs the models (default tract).
    #[serde(flatten)]
    pub backend: Backend,
}

#[derive(Deserialize)]
struct RawRegistryConfig {
    dir: PathBuf,
    #[serde(default = "default_true")]
    warmup: bool,
    #[serde(default)]
    only: Vec<String>,
    #[serde(default)]
    backend: Option<String>,
    #[serde(flatten)]
    ort: OrtConfig,
}

impl TryFrom<RawRegistryConfig> for RegistryConfig {
    type Error = String;

    fn try_from(r: RawRegistryConfig) -> Result<Self, String> {
        let backend = Backend::from_name(r.backend.as_deref().unwrap_or("tract"), r.ort)
            .map_err(|name| format!("unknown inference backend {name:?} (tract, onnxruntime)"))?;
        Ok(Self {
            dir: r.dir,
            warmup: r.warmup,
            only: r.only,
            backend,
        })
    }
}

fn default_true() -> bool {
    true
}

impl RegistryConfig {
    /// All models in `dir`, warmed up.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            warmup: true,
            only: Vec::new(),
            backend: Backend::Tract,
        }
    }
}

/// Loaded models by name.
#[derive(Debug, Default, Clone)]
pub struct ModelRegistry {
    models: BTreeMap<String, Arc<Model>>,
}

impl ModelRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the models of `cfg.dir` (sorted by file name).
    ///
    /// # Errors
    /// [`LoadError`] for an unreadable directory or a model that fails to load;
    /// [`LoadError::NotFound`] when `cfg.only` names a model the directory lacks,
    /// [`LoadError::NoModels`] when there is nothing to load, [`LoadError::Duplicate`] for two
    /// files of one name.
    pub fn load(cfg: &RegistryConfig) -> Result<Self, LoadError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LoadError::Io { path, source }
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(&cfg.dir)
            .map_err(io(&cfg.dir))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
            })
            .collect();
        files.sort();
        let mut reg = Self::new();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
                continue;
            };
            if !cfg.only.is_empty() && !cfg.only.contains(&name) {
                continue;
            }
            if reg.models.contains_key(&name) {
                return Err(LoadError::Duplicate { dir: cfg.dir.clone(), name });
            }
            let version_file = path.with_extension("version");
            let version = match std::fs::read_to_string(&version_file) {
                Ok(v) => Some(v.trim().to_owned()).filter(|v| !v.is_empty()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    return Err(LoadError::Io {
                        path: version_file,
                        source: e,
                    });
                }
            };
            let start = Instant::now();
            let model = Model::load_with(&path, &name, version, cfg.warmup, &cfg.backend)?;
            info!(
                model = %name,
                version = %model.info().version,
                load_ms = start.elapsed().as_millis(),
                warmup = cfg.warmup,
                backend = cfg.backend.name(),
                "model loaded"
            );
            reg.insert(model);
        }
        let missing: Vec<String> = cfg.only.iter().filter(|n| !reg.models.contains_key(*n)).cloned().collect();
        if !missing.is_empty() {
            return Err(LoadError::NotFound { dir: cfg.dir.clone(), names: missing });
        }
        if reg.is_empty() {
            return Err(LoadError::NoModels { dir: cfg.dir.clone() });
        }
        Ok(reg)
    }

    /// Adds (or replaces) a model under its name.
    pub fn insert(&mut self, model: Model) {
        self.models
            .insert(model.info().name.clone(), Arc::new(model));
    }

    /// The model called `name`.
    ///
    /// # Errors
    /// [`InferenceError::UnknownModel`].
    pub fn get(&self, name: &str) -> Result<Arc<Model>, InferenceError> {
        self.models
            .get(name)
            .cloned()
            .ok_or_else(|| InferenceError::UnknownModel(name.to_owned()))
    }

    /// Metadata of every model, by name.
    #[must_use]
    pub fn list(&self) -> Vec<ModelInfo> {
        self.models.values().map(|m| m.info().clone()).collect()
    }

    /// Metadata of `name`.
    ///
    /// # Errors
    /// [`InferenceError::UnknownModel`].
    pub fn metadata(&self, name: &str) -> Result<ModelInfo, InferenceError> {
        self.get(name).map(|m| m.info().clone())
    }

    /// Number of models.
    #[must_use]
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// True when no model is loaded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}
