//! Typed configuration of the inference provider (named config attached to the provider).

use std::collections::HashMap;
use std::path::PathBuf;

use edgecell_inference::{Backend, OrtConfig, PoolConfig, RegistryConfig};

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config `{key}`: `{value}` is not a valid {expected}")]
    Invalid { key: &'static str, value: String, expected: &'static str },
    #[error("config `model-dir` is required (a directory of *.onnx files, path or file:// URL)")]
    MissingModelDir,
    #[error("config `{0}` is not an inference provider setting (known: {known})", known = KEYS.join(", "))]
    UnknownKey(String),
    #[error("config `{key}` applies only with backend=onnxruntime")]
    NotThisBackend { key: &'static str },
    #[error("config: {0}")]
    OutOfRange(String),
}

/// Every key the provider reads.
pub const KEYS: [&str; 10] = [
    "model-dir",
    "models",
    "warmup",
    "workers",
    "queue-capacity",
    "max-request-bytes",
    "backend",
    "onnxruntime-library",
    "onnxruntime-threads",
    "onnxruntime-sessions",
];

/// | key                 | meaning                                                 | default    |
/// |---------------------|---------------------------------------------------------|------------|
/// | `model-dir`         | directory of `*.onnx` models (absolute path or file://) | required   |
/// | `models`            | comma-separated model names to load (empty = all)       | all        |
/// | `warmup`            | run each model once after loading                       | `true`     |
/// | `workers`           | inference threads (0 = one per core)                    | 0          |
/// | `queue-capacity`    | requests that may wait before `busy`                    | 64         |
/// | `max-request-bytes` | largest request (sum of input bytes)                    | 64 MiB     |
/// | `backend`           | `tract` or `onnxruntime`                                | `tract`    |
/// | `onnxruntime-library` | libonnxruntime.so (≥ 1.17), absolute path or file://  | `$ORT_DYLIB_PATH`, then the loader's path |
/// | `onnxruntime-threads` | threads one ONNX Runtime run may use                  | 1          |
/// | `onnxruntime-sessions` | ONNX Runtime sessions per model (0 = one per core)   | 0          |
///
/// Any other key is refused (a misspelt one would otherwise leave its default in force), as
/// are `onnxruntime-*` keys with the tract backend and values out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub registry: RegistryConfig,
    pub pool: PoolConfig,
}

fn invalid(key: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid { key, value: value.to_owned(), expected }
}

/// An absolute path or `file://` URL (relative paths would depend on the host's working directory).
fn abs_path(key: &'static str, v: &str) -> Result<PathBuf, ConfigError> {
    let v = v.trim();
    if v.starts_with("file:") {
        let url = url::Url::parse(v).map_err(|_| invalid(key, v, "file:// URL"))?;
        return url.to_file_path().map_err(|()| invalid(key, v, "absolute file:// URL"));
    }
    let p = PathBuf::from(v);
    if p.is_absolute() { Ok(p) } else { Err(invalid(key, v, "absolute path or file:// URL (relative paths depend on the host's working directory)")) }
}

impl ProviderConfig {
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(k) = map.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(ConfigError::UnknownKey(k.clone()));
        }
        let dir = abs_path("model-dir", map.get("model-dir").ok_or(ConfigError::MissingModelDir)?)?;
        let mut registry = RegistryConfig::new(dir);
        if let Some(m) = map.get("models") {
            registry.only = m.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        }
        registry.warmup = match map.get("warmup").map(|s| s.trim()) {
            None | Some("true") => true,
            Some("false") => false,
            Some(v) => return Err(invalid("warmup", v, "boolean")),
        };
        let d = PoolConfig::default();
        let num = |key: &'static str, default: u64| -> Result<u64, ConfigError> {
            map.get(key).map_or(Ok(default), |v| v.trim().parse().map_err(|_| invalid(key, v, "number")))
        };
        let ort = OrtConfig {
            library: map.get("onnxruntime-library").map(|v| abs_path("onnxruntime-library", v)).transpose()?,
            intra_threads: usize::try_from(num("onnxruntime-threads", 1)?)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| invalid("onnxruntime-threads", "0", "thread count ≥ 1"))?,
            sessions: usize::try_from(num("onnxruntime-sessions", 0)?).map_err(|_| invalid("onnxruntime-sessions", "", "number"))?,
        };
        ort.check().map_err(ConfigError::OutOfRange)?;
        registry.backend = Backend::from_name(map.get("backend").map_or("tract", String::as_str), ort)
            .map_err(|name| invalid("backend", &name, "backend (tract, onnxruntime)"))?;
        if registry.backend == Backend::Tract {
            if let Some(key) = ["onnxruntime-library", "onnxruntime-threads", "onnxruntime-sessions"].into_iter().find(|k| map.contains_key(*k)) {
                return Err(ConfigError::NotThisBackend { key });
            }
        }
        let pool = PoolConfig {
            workers: usize::try_from(num("workers", d.workers as u64)?).map_err(|_| invalid("workers", "", "number"))?,
            queue_capacity: usize::try_from(num("queue-capacity", d.queue_capacity as u64)?)
                .map_err(|_| invalid("queue-capacity", "", "number"))?,
            max_request_bytes: num("max-request-bytes", d.max_request_bytes)?,
        };
        pool.check().map_err(ConfigError::OutOfRange)?;
        Ok(Self { registry, pool })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use edgecell_provider_common::config_map as map;

    #[test]
    fn model_dir_is_required_and_absolute() {
        assert_eq!(ProviderConfig::from_map(&map(&[])), Err(ConfigError::MissingModelDir));
        assert!(matches!(ProviderConfig::from_map(&map(&[("model-dir", "models")])), Err(ConfigError::Invalid { key: "model-dir", .. })));
        let c = ProviderConfig::from_map(&map(&[("model-dir", "file:///srv/models"), ("workers", "2"), ("models", "a, b")])).unwrap();
        assert_eq!(c.registry.dir, PathBuf::from("/srv/models"));
        assert_eq!(c.registry.only, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(c.pool.workers, 2);
        assert!(c.registry.warmup);
    }

    #[test]
    fn the_engine_is_chosen_by_config() {
        let c = ProviderConfig::from_map(&map(&[("model-dir", "/m")])).unwrap();
        assert_eq!(c.registry.backend, Backend::Tract);
        let c = ProviderConfig::from_map(&map(&[
            ("model-dir", "/m"),
            ("backend", "onnxruntime"),
            ("onnxruntime-library", "/opt/ort/libonnxruntime.so"),
            ("onnxruntime-threads", "2"),
        ]))
        .unwrap();
        assert_eq!(
            c.registry.backend,
            Backend::Onnxruntime(OrtConfig { library: Some("/opt/ort/libonnxruntime.so".into()), intra_threads: 2, sessions: 0 })
        );
        let c = ProviderConfig::from_map(&map(&[("model-dir", "/m"), ("backend", "ort"), ("onnxruntime-library", "file:///opt/ort/libonnxruntime.so")])).unwrap();
        assert!(matches!(c.registry.backend, Backend::Onnxruntime(OrtConfig { library: Some(ref p), .. }) if p.as_path() == std::path::Path::new("/opt/ort/libonnxruntime.so")));
        for (key, value) in [("backend", "tensorrt"), ("onnxruntime-library", "lib/x.so"), ("onnxruntime-threads", "0")] {
            let err = ProviderConfig::from_map(&map(&[("model-dir", "/m"), ("backend", "onnxruntime"), (key, value)])).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid { key: k, .. } if k == key), "{key}: {err:?}");
        }
    }

    #[test]
    fn bad_numbers_are_typed_errors() {
        assert_eq!(
            ProviderConfig::from_map(&map(&[("model-dir", "/m"), ("queue-capacity", "many")])),
            Err(ConfigError::Invalid { key: "queue-capacity", value: "many".into(), expected: "number" })
        );
        // a queue's slots are allocated at start: a huge one would take the process down
        for (key, value) in [
            ("queue-capacity", "1000000000"),
            ("queue-capacity", "18446744073709551615"),
            ("queue-capacity", "0"),
            ("workers", "20000"),
            ("max-request-bytes", "0"),
        ] {
            let err = ProviderConfig::from_map(&map(&[("model-dir", "/m"), (key, value)])).unwrap_err();
            assert!(matches!(err, ConfigError::OutOfRange(_)), "{key}={value}: {err:?}");
        }
        let err = ProviderConfig::from_map(&map(&[("model-dir", "/m"), ("backend", "onnxruntime"), ("onnxruntime-sessions", "500")])).unwrap_err();
        assert!(matches!(err, ConfigError::OutOfRange(_)), "{err:?}");
    }

    #[test]
    fn unknown_keys_and_keys_of_the_other_backend_are_refused() {
        assert_eq!(
            ProviderConfig::from_map(&map(&[("model-dir", "/m"), ("queue_capacity", "8")])),
            Err(ConfigError::UnknownKey("queue_capacity".into()))
        );
        assert_eq!(
            ProviderConfig::from_map(&map(&[("model-dir", "/m"), ("onnxruntime-threads", "2")])),
            Err(ConfigError::NotThisBackend { key: "onnxruntime-threads" })
        );
    }
}
