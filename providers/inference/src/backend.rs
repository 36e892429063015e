//! Which engine runs the models: tract (pure Rust, always built) or ONNX Runtime (the `ort`
//! crate, feature `onnxruntime`), loaded at run time from a shared library the operator points
//! at — the one shipped in the `onnxruntime` PyPI wheel works (`scripts/setup.sh` unpacks it
//! into `tools/onnxruntime/`). Nothing is downloaded at build time.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The engine and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "backend", rename_all = "kebab-case")]
pub enum Backend {
    /// tract-onnx, in process, pure Rust.
    #[default]
    Tract,
    /// ONNX Runtime through `ort`, from a shared library loaded at run time.
    Onnxruntime(OrtConfig),
}

impl Backend {
    /// The name reported in `model-info.backend` and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::Onnxruntime(_) => "onnxruntime",
        }
    }

    /// Parses a backend name (`tract`, `onnxruntime`/`ort`) with ONNX Runtime settings.
    ///
    /// # Errors
    /// The unknown name, for a typed configuration error upstream.
    pub fn from_name(name: &str, ort: OrtConfig) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "tract" => Ok(Self::Tract),
            "onnxruntime" | "ort" => Ok(Self::Onnxruntime(ort)),
            other => Err(other.to_owned()),
        }
    }
}

/// ONNX Runtime settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrtConfig {
    /// Path of `libonnxruntime.so` (or `.dylib`/`.dll`), version ≥ 1.17. `None`: the
    /// `ORT_DYLIB_PATH` environment variable, then the system's library search path.
    #[serde(default)]
    pub library: Option<PathBuf>,
    /// Threads one run may use (ONNX Runtime's intra-op pool). 1 keeps runs on the pool's
    /// worker threads, like tract.
    #[serde(default = "one")]
    pub intra_threads: usize,
    /// Sessions per model, so that this many runs of one model proceed at once (an ONNX
    /// Runtime session runs one request at a time here). 0 = one per available core.
    #[serde(default)]
    pub sessions: usize,
}

fn one() -> usize {
    1
}

impl Default for OrtConfig {
    fn default() -> Self {
        Self {
            library: None,
            intra_threads: 1,
            sessions: 0,
        }
    }
}

impl OrtConfig {
    /// Where scripts/setup.sh unpacks the library from the PyPI wheel, relative to the
    /// repository root.
    pub const BUNDLED_LIBRARY: &'static str = "tools/onnxruntime/libonnxruntime.so";

    /// `ORT_DYLIB_PATH` when set, else [`Self::BUNDLED_LIBRARY`] under `root` (a checkout).
    #[must_use]
    pub fn library_under(root: &Path) -> PathBuf {
        std::env::var_os("ORT_DYLIB_PATH")
            .filter(|p| !p.is_empty())
            .map_or_else(|| root.join(Self::BUNDLED_LIBRARY), PathBuf::from)
    }

    /// The library to load: the configured path, else `ORT_DYLIB_PATH`, else the plain file
    /// name for the dynamic loader's search path.
    #[must_use]
    pub fn library_path(&self) -> PathBuf {
        if let Some(p) = &self.library {
            return p.clone();
        }
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => PathBuf::from(format!(
                "{}onnxruntime{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )),
        }
    }

    /// Most sessions per model (each holds its own copy of the weights).
    pub const MAX_SESSIONS: usize = 64;

    /// Checks the counts: 1 ≤ `intra_threads` ≤ 4 × cores (and ≤ 256), `sessions` ≤
    /// [`Self::MAX_SESSIONS`].
    ///
    /// # Errors
    /// What is out of range, in words.
    pub fn check(&self) -> Result<(), String> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let max_threads = (4 * cores).min(256);
        if self.intra_threads == 0 || self.intra_threads > max_threads {
            return Err(format!(
                "onnxruntime intra_threads must be 1..={max_threads} on this machine, got {}",
                self.intra_threads
            ));
        }
        if self.sessions > Self::MAX_SESSIONS {
            return Err(format!(
                "onnxruntime sessions must be 0 (one per core) ..= {}, got {}",
                Self::MAX_SESSIONS,
                self.sessions
            ));
        }
        Ok(())
    }

    /// Sessions per model after resolving 0 (one per core, at most [`Self::MAX_SESSIONS`]).
    #[must_use]
    pub fn session_count(&self) -> usize {
        if self.sessions == 0 {
            std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(Self::MAX_SESSIONS)
        } else {
            self.sessions.min(Self::MAX_SESSIONS)
        }
    }
}
