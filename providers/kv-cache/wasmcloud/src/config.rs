//! Typed configuration of the kv-cache provider: named config given to the provider (cache
//! sizing, NATS ingest) and link config given per component (keyspace).

use std::collections::HashMap;

use edgecell_kv_cache::CacheConfig;
use edgecell_kv_cache::ingest::{DEFAULT_OPEN, IngestPolicy};

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config `{key}`: `{value}` is not a valid {expected}")]
    Invalid { key: &'static str, value: String, expected: &'static str },
    #[error("config `keyspace`: {0}")]
    Keyspace(String),
}

/// The provider's own configuration (named config attached to the provider in the manifest).
///
/// | key               | meaning                                             | default              |
/// |-------------------|-----------------------------------------------------|----------------------|
/// | `max-bytes`       | memory budget of all entries, bytes                 | 64 MiB               |
/// | `max-value-bytes` | largest single value, bytes (and no more than its shard holds: about 6 MiB for components with the other defaults) | 8 MiB |
/// | `shards`          | independently locked shards of the components' entries | 8                 |
/// | `max-batch`       | items per `get-many`/`set-many`                     | 1024                 |
/// | `ingest-prefix`   | NATS subject prefix for producers' puts; `off` = no | `edgecell.cache.put` |
/// | `ingest-open`     | `<keyspace>/<namespace>` pairs, comma-separated, that take producers' puts | `video-analytics/frames` |
/// | `ingest-max-bytes` | of `max-bytes`, what producers' puts may hold (in shards of their own) | a quarter |
/// | `purge-interval-ms` | sweep for expired entries nobody reads; 0 = none, else ≥ 1000 | 30000     |
/// | `snapshot-path`   | absolute path of the file the cache is saved to and read back from at the next start (`edgecell_kv_cache::snapshot`) | none: nothing outlives the process |
/// | `snapshot-interval-ms` | with a path: save this often besides at shutdown; 0 = only at shutdown, else ≥ 1000 | 60000 |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub cache: CacheConfig,
    pub ingest_prefix: Option<String>,
    pub ingest_open: IngestPolicy,
    pub snapshot: Option<SnapshotConfig>,
}

/// Where and how often the cache is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    pub path: std::path::PathBuf,
    /// 0 = only at shutdown.
    pub interval_ms: u64,
}

pub const DEFAULT_SNAPSHOT_INTERVAL_MS: u64 = 60_000;

pub const DEFAULT_INGEST_PREFIX: &str = "edgecell.cache.put";

fn parse<T: std::str::FromStr>(
    map: &HashMap<String, String>,
    key: &'static str,
    expected: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match map.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid { key, value: v.clone(), expected }),
    }
}

impl ProviderConfig {
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let d = CacheConfig::default();
        let cache = CacheConfig {
            memory_budget_bytes: parse(map, "max-bytes", "byte count", d.memory_budget_bytes)?,
            max_value_bytes: parse(map, "max-value-bytes", "byte count", d.max_value_bytes)?,
            shards: parse(map, "shards", "shard count", d.shards)?,
            max_batch: parse(map, "max-batch", "item count", d.max_batch)?,
            ingest_budget_bytes: match map.get("ingest-max-bytes") {
                None => None,
                Some(_) => Some(parse(map, "ingest-max-bytes", "byte count", 0)?),
            },
            purge_interval_ms: parse(map, "purge-interval-ms", "number of milliseconds", d.purge_interval_ms)?,
            ..d
        };
        cache.validate().map_err(|e| ConfigError::Invalid {
            key: "max-bytes / max-value-bytes / shards / max-batch / ingest-max-bytes / purge-interval-ms",
            value: e,
            expected: "cache sizing",
        })?;
        let ingest_prefix = match map.get("ingest-prefix").map(|s| s.trim()) {
            None => Some(DEFAULT_INGEST_PREFIX.to_owned()),
            Some("off" | "") => None,
            Some(p) if valid_subject_prefix(p) => Some(p.to_owned()),
            Some(p) => {
                return Err(ConfigError::Invalid { key: "ingest-prefix", value: p.to_owned(), expected: "NATS subject prefix" });
            }
        };
        let ingest_open = IngestPolicy::parse(map.get("ingest-open").map_or(DEFAULT_OPEN, String::as_str))
            .map_err(|_| ConfigError::Invalid {
                key: "ingest-open",
                value: map.get("ingest-open").cloned().unwrap_or_default(),
                expected: "comma-separated list of <keyspace>/<namespace>",
            })?;
        let snapshot = match map.get("snapshot-path").map(|s| s.trim()) {
            None | Some("") => None,
            Some(path) if !std::path::Path::new(path).is_absolute() => {
                return Err(ConfigError::Invalid { key: "snapshot-path", value: path.to_owned(), expected: "absolute path" });
            }
            Some(path) => {
                let interval_ms = parse(map, "snapshot-interval-ms", "number of milliseconds", DEFAULT_SNAPSHOT_INTERVAL_MS)?;
                if interval_ms != 0 && interval_ms < 1000 {
                    return Err(ConfigError::Invalid {
                        key: "snapshot-interval-ms",
                        value: interval_ms.to_string(),
                        expected: "0 (only at shutdown) or at least 1000 ms",
                    });
                }
                Some(SnapshotConfig { path: path.into(), interval_ms })
            }
        };
        Ok(Self { cache, ingest_prefix, ingest_open, snapshot })
    }
}

fn valid_subject_prefix(p: &str) -> bool {
    !p.is_empty() && p.split('.').all(|t| !t.is_empty() && !t.contains(['*', '>', ' ', '\t']))
}

/// The keyspace of one linked component: link target config `keyspace`, else the component id.
/// Sharing a keyspace by name is what lets a NATS producer put frames where an actor reads them.
pub fn keyspace(link_config: &HashMap<String, String>, source_id: &str) -> Result<String, ConfigError> {
    match link_config.get("keyspace").map(|s| s.trim()) {
        None | Some("") => Ok(source_id.to_owned()),
        Some(k) if k.len() <= 128 && !k.contains(['*', '>', '.', ' ']) && !k.chars().any(char::is_control) => Ok(k.to_owned()),
        Some(k) => Err(ConfigError::Keyspace(format!("`{k}` must be 1-128 characters without '.', '*', '>', spaces or control characters"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use edgecell_provider_common::config_map as map;

    #[test]
    fn defaults_and_overrides() {
        let c = ProviderConfig::from_map(&map(&[])).unwrap();
        assert_eq!(c.cache, CacheConfig::default());
        assert_eq!(c.ingest_prefix.as_deref(), Some(DEFAULT_INGEST_PREFIX));
        assert_eq!(c.ingest_open, IngestPolicy::default());
        assert!(ProviderConfig::from_map(&map(&[("ingest-open", "cam-1/frames,cam-2/frames")])).unwrap().ingest_open.allows("cam-2", "frames"));
        let c = ProviderConfig::from_map(&map(&[("max-bytes", "1048576"), ("shards", "4"), ("ingest-prefix", "off")])).unwrap();
        assert_eq!(c.cache.memory_budget_bytes, 1_048_576);
        assert_eq!(c.cache.shards, 4);
        assert_eq!(c.ingest_prefix, None);
        let c = ProviderConfig::from_map(&map(&[("ingest-max-bytes", "1048576"), ("purge-interval-ms", "0")])).unwrap();
        assert_eq!((c.cache.ingest_budget_bytes, c.cache.purge_interval_ms), (Some(1_048_576), 0));
        assert_eq!(c.snapshot, None);
        let c = ProviderConfig::from_map(&map(&[("snapshot-path", "/var/lib/edgecell/cache.snapshot")])).unwrap();
        assert_eq!(c.snapshot, Some(SnapshotConfig { path: "/var/lib/edgecell/cache.snapshot".into(), interval_ms: DEFAULT_SNAPSHOT_INTERVAL_MS }));
        let c = ProviderConfig::from_map(&map(&[("snapshot-path", "/c.snap"), ("snapshot-interval-ms", "0")])).unwrap();
        assert_eq!(c.snapshot.map(|s| s.interval_ms), Some(0));
        assert!(matches!(
            ProviderConfig::from_map(&map(&[("snapshot-path", "/c.snap"), ("snapshot-interval-ms", "10")])),
            Err(ConfigError::Invalid { key: "snapshot-interval-ms", .. })
        ));
        // (relative to what? the provider's working directory is the host's business)
        assert!(matches!(ProviderConfig::from_map(&map(&[("snapshot-path", "c.snap")])), Err(ConfigError::Invalid { key: "snapshot-path", .. })));
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert_eq!(
            ProviderConfig::from_map(&map(&[("max-bytes", "lots")])),
            Err(ConfigError::Invalid { key: "max-bytes", value: "lots".into(), expected: "byte count" })
        );
        assert!(matches!(ProviderConfig::from_map(&map(&[("ingest-prefix", "a.*")])), Err(ConfigError::Invalid { .. })));
        assert!(matches!(ProviderConfig::from_map(&map(&[("ingest-open", "frames")])), Err(ConfigError::Invalid { key: "ingest-open", .. })));
        // sizes a cache cannot work with (a huge shard count used to overflow and panic in init)
        let all = ProviderConfig::from_map(&map(&[("ingest-max-bytes", "67108864")])).unwrap_err();
        assert!(matches!(&all, ConfigError::Invalid { value, .. } if value.contains("ingest budget")), "{all}");
        for bad in [[("shards", "18446744073709551615"), ("max-bytes", "1048576")], [("shards", "0"), ("max-bytes", "1048576")], [("shards", "4"), ("max-bytes", "3")]] {
            let e = ProviderConfig::from_map(&map(&bad)).unwrap_err();
            assert!(matches!(&e, ConfigError::Invalid { value, .. } if value.contains("shard")), "{bad:?}: {e}");
        }
    }

    #[test]
    fn keyspace_from_link_or_component() {
        assert_eq!(keyspace(&map(&[]), "edgecell-video_analytics").unwrap(), "edgecell-video_analytics");
        assert_eq!(keyspace(&map(&[("keyspace", "video-analytics")]), "x").unwrap(), "video-analytics");
        assert!(keyspace(&map(&[("keyspace", "a.b")]), "x").is_err());
    }
}
