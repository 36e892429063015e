//! The host's TOML configuration: limits, provider settings and which actors to load.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use edgecell_kv_cache::CacheConfig;
use serde::Deserialize;

use crate::runtime::{ActorSpec, RuntimeConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// `[host]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostSection {
    pub max_instances: u32,
    pub memory_cap_mib: u32,
    pub call_deadline_ms: u64,
    /// false: no call deadline, and components are compiled without interruption checks
    /// (faster loops; meant for trusted, digest-pinned actors). `call_deadline_ms` is then not
    /// used, though it must still be greater than zero.
    pub interrupt_calls: bool,
    pub epoch_tick_ms: u64,
    /// Directory for precompiled `.cwasm` files (relative to the config file).
    pub cache_dir: Option<PathBuf>,
    /// NATS server to subscribe actors' subjects on; none = no NATS.
    pub nats_url: Option<String>,
    /// The `<keyspace>/<namespace>` pairs (comma-separated) producers' cache puts may write
    /// (see `edgecell_kv_cache::ingest::IngestPolicy`); others are refused.
    pub ingest_open: String,
    /// `edgecell serve` saves the kv-cache here (relative to the config file) at Ctrl-C and
    /// every `cache_snapshot_interval_ms`, and reads it back at start
    /// (`edgecell_kv_cache::snapshot`); none = the cache starts empty every time.
    pub cache_snapshot: Option<PathBuf>,
    /// 0 = only at Ctrl-C, else at least 1000.
    pub cache_snapshot_interval_ms: u64,
}

impl Default for HostSection {
    fn default() -> Self {
        let d = RuntimeConfig::default();
        Self {
            max_instances: d.max_instances,
            memory_cap_mib: u32::try_from(d.memory_cap_bytes / (1024 * 1024)).unwrap_or(64),
            call_deadline_ms: d.call_deadline.and_then(|t| u64::try_from(t.as_millis()).ok()).unwrap_or(5000),
            interrupt_calls: true,
            epoch_tick_ms: 1,
            cache_dir: None,
            nats_url: None,
            ingest_open: edgecell_kv_cache::ingest::DEFAULT_OPEN.to_owned(),
            cache_snapshot: None,
            cache_snapshot_interval_ms: 60_000,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve `/metrics` here (port 0 = a free port); none = no endpoint.
    pub listen: Option<SocketAddr>,
    pub allow_non_loopback: bool,
}

/// `[inference]`: the in-process inference provider (absent = no models; `run` answers
/// `unknown-model`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceSection {
    /// Directory of `*.onnx` models (relative to the config file).
    pub models: PathBuf,
    /// `tract` (default) or `onnxruntime`.
    #[serde(default = "tract")]
    pub backend: String,
    /// `libonnxruntime.so` for `backend = "onnxruntime"` (relative to the config file); default
    /// `$ORT_DYLIB_PATH`, then the system's library path.
    #[serde(default)]
    pub onnxruntime_library: Option<PathBuf>,
    /// Threads one ONNX Runtime run may use.
    #[serde(default = "one")]
    pub onnxruntime_threads: usize,
    /// ONNX Runtime sessions per model (0 = one per core).
    #[serde(default)]
    pub onnxruntime_sessions: usize,
    /// Load only these model names (empty = all).
    #[serde(default)]
    pub only: Vec<String>,
    /// Run each model once after loading.
    #[serde(default = "yes")]
    pub warmup: bool,
    /// Inference threads (0 = one per core).
    #[serde(default)]
    pub workers: usize,
    /// Requests that may wait before `busy`.
    #[serde(default = "queue_capacity")]
    pub queue_capacity: usize,
    /// Largest request (sum of input bytes).
    #[serde(default = "max_request_bytes")]
    pub max_request_bytes: u64,
}

impl InferenceSection {
    /// The pool settings.
    #[must_use]
    pub fn pool_config(&self) -> edgecell_inference::PoolConfig {
        edgecell_inference::PoolConfig { workers: self.workers, queue_capacity: self.queue_capacity, max_request_bytes: self.max_request_bytes }
    }

    /// The ONNX Runtime settings, with `library` (the section's, resolved).
    #[must_use]
    pub fn ort_config(&self, library: Option<PathBuf>) -> edgecell_inference::OrtConfig {
        edgecell_inference::OrtConfig { library, intra_threads: self.onnxruntime_threads, sessions: self.onnxruntime_sessions }
    }
}

fn tract() -> String {
    "tract".into()
}

fn yes() -> bool {
    true
}

fn queue_capacity() -> usize {
    edgecell_inference::PoolConfig::default().queue_capacity
}

fn max_request_bytes() -> u64 {
    edgecell_inference::PoolConfig::default().max_request_bytes
}

/// `[[actor]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSection {
    pub name: String,
    /// The component (relative to the config file).
    pub path: PathBuf,
    /// Pinned digest; required unless `allow_unpinned` is set on the host.
    pub sha256: Option<String>,
    /// NATS subjects that feed the actor's `wasmcloud:messaging/handler`.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Instances kept for concurrent deliveries.
    #[serde(default = "one")]
    pub instances: usize,
    /// Delivered to the actor through `wasi:config/store`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

fn one() -> usize {
    1
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    pub host: HostSection,
    pub cache: CacheConfig,
    pub metrics: MetricsSection,
    pub inference: Option<InferenceSection>,
    /// Accept actors without a pinned sha256 (development only).
    pub allow_unpinned: bool,
    #[serde(rename = "actor")]
    pub actors: Vec<ActorSection>,
    /// The directory relative paths are resolved against (the config file's).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl HostConfig {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &base).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_owned(), message },
            other => other,
        })
    }

    /// Parse and validate config text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let mut cfg: HostConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        cfg.base_dir = base_dir.to_owned();
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.cache.validate().map_err(|e| ConfigError::Invalid(format!("[cache] {e}")))?;
        if (1..1000).contains(&self.host.cache_snapshot_interval_ms) {
            return Err(ConfigError::Invalid(format!(
                "[host] cache_snapshot_interval_ms = {}: 0 (only at Ctrl-C) or at least 1000",
                self.host.cache_snapshot_interval_ms
            )));
        }
        edgecell_kv_cache::ingest::IngestPolicy::parse(&self.host.ingest_open)
            .map_err(|e| ConfigError::Invalid(format!("[host] ingest_open: {e}")))?;
        let h = &self.host;
        if h.max_instances == 0 || h.memory_cap_mib == 0 || h.call_deadline_ms == 0 || h.epoch_tick_ms == 0 {
            return Err(ConfigError::Invalid("host limits must be greater than zero".into()));
        }
        // the deadline is counted in ticks: a tick longer than it stretches it to ticks
        if h.epoch_tick_ms > h.call_deadline_ms {
            return Err(ConfigError::Invalid(format!(
                "[host] epoch_tick_ms ({}) must not exceed call_deadline_ms ({}): deadlines are counted in ticks",
                h.epoch_tick_ms, h.call_deadline_ms
            )));
        }
        // every actor keeps up to `instances` live instances, all from the host's pool
        let wanted: u64 = self.actors.iter().map(|a| a.instances as u64).fold(0, u64::saturating_add);
        if wanted > u64::from(h.max_instances) {
            return Err(ConfigError::Invalid(format!(
                "the actors' instances add up to {wanted}, more than [host] max_instances ({}): deliveries would fail with the pool exhausted",
                h.max_instances
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.actors {
            if a.name.is_empty() || !a.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(ConfigError::Invalid(format!("actor name {:?}: use letters, digits, '-' or '_'", a.name)));
            }
            if !seen.insert(&a.name) {
                return Err(ConfigError::Invalid(format!("actor {} is declared twice", a.name)));
            }
            match &a.sha256 {
                Some(d) if d.len() != 64 || !d.chars().all(|c| c.is_ascii_hexdigit()) => {
                    return Err(ConfigError::Invalid(format!("actor {}: sha256 must be 64 hex digits", a.name)));
                }
                None if !self.allow_unpinned => {
                    return Err(ConfigError::Invalid(format!(
                        "actor {} has no sha256 pin (set allow_unpinned = true for development)",
                        a.name
                    )));
                }
                _ => {}
            }
            if a.instances == 0 {
                return Err(ConfigError::Invalid(format!("actor {}: instances must be at least 1", a.name)));
            }
            if a.subjects.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
                return Err(ConfigError::Invalid(format!("actor {}: NATS subjects may not be empty or contain spaces", a.name)));
            }
        }
        if let Some(i) = &self.inference {
            if i.onnxruntime_threads == 0 {
                return Err(ConfigError::Invalid("inference: onnxruntime_threads must be at least 1".into()));
            }
            edgecell_inference::Backend::from_name(&i.backend, edgecell_inference::OrtConfig::default())
                .map_err(|name| ConfigError::Invalid(format!("inference: unknown backend {name:?} (tract, onnxruntime)")))?;
            i.pool_config().check().map_err(|e| ConfigError::Invalid(format!("inference: {e}")))?;
            i.ort_config(None).check().map_err(|e| ConfigError::Invalid(format!("inference: {e}")))?;
        }
        Ok(())
    }

    /// The inference provider's registry and pool settings, paths resolved (`None` without an
    /// `[inference]` section).
    #[must_use]
    pub fn inference_config(&self) -> Option<(edgecell_inference::RegistryConfig, edgecell_inference::PoolConfig)> {
        let i = self.inference.as_ref()?;
        let ort = i.ort_config(i.onnxruntime_library.as_deref().map(|p| self.resolve(p)));
        // validated in `parse`; an unknown name cannot get here
        let backend = edgecell_inference::Backend::from_name(&i.backend, ort).unwrap_or_default();
        let registry = edgecell_inference::RegistryConfig {
            dir: self.resolve(&i.models),
            warmup: i.warmup,
            only: i.only.clone(),
            backend,
        };
        Some((registry, i.pool_config()))
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_owned() } else { self.base_dir.join(p) }
    }

    /// Where the kv-cache snapshot lives, resolved against the config file's directory.
    #[must_use]
    pub fn cache_snapshot(&self) -> Option<PathBuf> {
        self.host.cache_snapshot.as_deref().map(|p| self.resolve(p))
    }

    /// The runtime limits.
    #[must_use]
    pub fn runtime_config(&self) -> RuntimeConfig {
        RuntimeConfig {
            max_instances: self.host.max_instances,
            memory_cap_bytes: self.host.memory_cap_mib as usize * 1024 * 1024,
            call_deadline: self.host.interrupt_calls.then(|| Duration::from_millis(self.host.call_deadline_ms)),
            epoch_tick: Duration::from_millis(self.host.epoch_tick_ms),
            cache_dir: self.host.cache_dir.as_deref().map(|p| self.resolve(p)),
        }
    }

    /// What to load for each actor.
    #[must_use]
    pub fn actor_specs(&self) -> Vec<ActorSpec> {
        self.actors
            .iter()
            .map(|a| ActorSpec { name: a.name.clone(), path: self.resolve(&a.path), sha256: a.sha256.clone(), config: a.config.clone() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn parses_a_full_file_and_resolves_paths() {
        let text = format!(
            r#"
[host]
memory_cap_mib = 32
call_deadline_ms = 250
cache_dir = "cache"
nats_url = "nats://127.0.0.1:4222"

[cache]
memory_budget_bytes = 1048576

[metrics]
listen = "127.0.0.1:0"

[[actor]]
name = "probe"
path = "probe.wasm"
sha256 = "{PIN}"
subjects = ["edgecell.probe.in"]
instances = 2
config = {{ greeting = "hi" }}
"#
        );
        let cfg = HostConfig::parse(&text, Path::new("/etc/edgecell")).unwrap();
        let rt = cfg.runtime_config();
        assert_eq!(rt.memory_cap_bytes, 32 * 1024 * 1024);
        assert_eq!(rt.call_deadline, Some(Duration::from_millis(250)));
        assert_eq!(rt.cache_dir, Some(PathBuf::from("/etc/edgecell/cache")));
        assert_eq!(cfg.cache.memory_budget_bytes, 1_048_576);
        let specs = cfg.actor_specs();
        assert_eq!(specs[0].path, PathBuf::from("/etc/edgecell/probe.wasm"));
        assert_eq!(specs[0].config.get("greeting").map(String::as_str), Some("hi"));
        assert_eq!(cfg.actors[0].subjects, vec!["edgecell.probe.in"]);
        assert_eq!(cfg.actors[0].instances, 2);
        let free = HostConfig::parse("[host]\ninterrupt_calls = false\n", Path::new("/")).unwrap();
        assert_eq!(free.runtime_config().call_deadline, None);
    }

    #[test]
    fn the_inference_section_selects_models_and_engine() {
        let cfg = HostConfig::parse("", Path::new("/etc/edgecell")).unwrap();
        assert!(cfg.inference_config().is_none());
        let text = "[inference]\nmodels = \"models\"\nbackend = \"onnxruntime\"\nonnxruntime_library = \"lib/libonnxruntime.so\"\nworkers = 2\n";
        let (reg, pool) = HostConfig::parse(text, Path::new("/etc/edgecell")).unwrap().inference_config().unwrap();
        assert_eq!(reg.dir, PathBuf::from("/etc/edgecell/models"));
        assert_eq!(
            reg.backend,
            edgecell_inference::Backend::Onnxruntime(edgecell_inference::OrtConfig {
                library: Some(PathBuf::from("/etc/edgecell/lib/libonnxruntime.so")),
                intra_threads: 1,
                sessions: 0
            })
        );
        assert_eq!(pool.workers, 2);
        assert!(reg.warmup);
        let (reg, _) = HostConfig::parse("[inference]\nmodels = \"/m\"\n", Path::new(".")).unwrap().inference_config().unwrap();
        assert_eq!(reg.backend, edgecell_inference::Backend::Tract);
    }

    #[test]
    fn rejects_bad_files_with_clear_errors() {
        let cases = [
            ("[host]\nmemory_cap_mib = 0\n", "greater than zero"),
            ("[[actor]]\nname = \"a\"\npath = \"a.wasm\"\n", "no sha256 pin"),
            (&format!("[[actor]]\nname = \"a b\"\npath = \"a.wasm\"\nsha256 = \"{PIN}\"\n"), "actor name"),
            ("[[actor]]\nname = \"a\"\npath = \"a.wasm\"\nsha256 = \"abc\"\n", "64 hex digits"),
            (&format!("[[actor]]\nname = \"a\"\npath = \"x\"\nsha256 = \"{PIN}\"\n[[actor]]\nname = \"a\"\npath = \"y\"\nsha256 = \"{PIN}\"\n"), "declared twice"),
            ("[host]\nbogus = 1\n", "unknown field"),
            ("[inference]\nmodels = \"m\"\nbackend = \"tensorrt\"\n", "unknown backend"),
            ("[inference]\nmodels = \"m\"\nonnxruntime_threads = 0\n", "at least 1"),
            ("[inference]\nbackend = \"tract\"\n", "missing field `models`"),
            ("[host]\ningest_open = \"frames\"\n", "ingest_open"),
            ("[cache]\nshards = 18446744073709551615\n", "[cache] shards"),
            ("[cache]\nshards = 0\n", "[cache] shards"),
            ("[cache]\nmemory_budget_bytes = 3\nshards = 4\n", "one byte per shard"),
            ("[cache]\nmax_batch = 0\n", "greater than zero"),
            ("[host]\ncache_snapshot = \"c.snap\"\ncache_snapshot_interval_ms = 5\n", "cache_snapshot_interval_ms"),
            ("[host]\ncall_deadline_ms = 250\nepoch_tick_ms = 10000\n", "counted in ticks"),
            (&format!("[host]\nmax_instances = 2\n[[actor]]\nname = \"a\"\npath = \"a.wasm\"\nsha256 = \"{PIN}\"\ninstances = 2\n[[actor]]\nname = \"b\"\npath = \"b.wasm\"\nsha256 = \"{PIN}\"\ninstances = 1\n"), "add up to 3"),
            (&format!("[[actor]]\nname = \"a\"\npath = \"a.wasm\"\nsha256 = \"{PIN}\"\ninstances = 4611686018427387904\n"), "max_instances"),
            ("[inference]\nmodels = \"m\"\nqueue_capacity = 1000000000\n", "queue capacity"),
        ];
        let open = HostConfig::parse("[host]\ningest_open = \"cam-1/frames, cam-2/frames\"\n", Path::new(".")).unwrap();
        assert_eq!(open.host.ingest_open, "cam-1/frames, cam-2/frames");
        assert_eq!(HostConfig::parse("", Path::new(".")).unwrap().host.ingest_open, "video-analytics/frames");
        for (text, want) in cases {
            let err = HostConfig::parse(text, Path::new(".")).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
