//! Typed configuration of the inference provider (named config attached to the provider).

use std::collections::HashMap;
use std::path::PathBuf;

use edgecell_inference::{PoolConfig, RegistryConfig};

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config `{key}`: `{value}` is not a valid {expected}")]
    Invalid { key: &'static str, value: String, expected: &'static str },
    #[error("config `model-dir` is required (a directory of *.onnx files, path or file:// URL)")]
    MissingModelDir,
}

/// | key                 | meaning                                                 | default    |
/// |---------------------|---------------------------------------------------------|------------|
/// | `model-dir`         | directory of `*.onnx` models (absolute path or file://) | required   |
/// | `models`            | comma-separated model names to load (empty = all)       | all        |
/// | `warmup`            | run each model once after loading                       | `true`     |
/// | `workers`           | inference threads (0 = one per core)                    | 0          |
/// | `queue-capacity`    | requests that may wait before `busy`                    | 64         |
/// | `max-request-bytes` | largest request (sum of input bytes)                    | 64 MiB     |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub registry: RegistryConfig,
    pub pool: PoolConfig,
}

fn invalid(key: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid { key, value: value.to_owned(), expected }
}

fn model_dir(v: &str) -> Result<PathBuf, ConfigError> {
    let v = v.trim();
    if v.starts_with("file:") {
        let url = url::Url::parse(v).map_err(|_| invalid("model-dir", v, "file:// URL"))?;
        return url.to_file_path().map_err(|()| invalid("model-dir", v, "absolute file:// URL"));
    }
    let p = PathBuf::from(v);
    if p.is_absolute() { Ok(p) } else { Err(invalid("model-dir", v, "absolute path (relative paths depend on the host's working directory)")) }
}

impl ProviderConfig {
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let dir = model_dir(map.get("model-dir").ok_or(ConfigError::MissingModelDir)?)?;
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
        let pool = PoolConfig {
            workers: usize::try_from(num("workers", d.workers as u64)?).map_err(|_| invalid("workers", "", "number"))?,
            queue_capacity: usize::try_from(num("queue-capacity", d.queue_capacity as u64)?)
                .map_err(|_| invalid("queue-capacity", "", "number"))?,
            max_request_bytes: num("max-request-bytes", d.max_request_bytes)?,
        };
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
    fn bad_numbers_are_typed_errors() {
        assert_eq!(
            ProviderConfig::from_map(&map(&[("model-dir", "/m"), ("queue-capacity", "many")])),
            Err(ConfigError::Invalid { key: "queue-capacity", value: "many".into(), expected: "number" })
        );
    }
}
