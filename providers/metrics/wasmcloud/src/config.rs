//! Typed configuration of the metrics provider (named config attached to the provider).

use std::collections::HashMap;
use std::net::SocketAddr;

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config `{key}`: `{value}` is not a valid {expected}")]
    Invalid { key: &'static str, value: String, expected: &'static str },
}

/// | key                     | meaning                                          | default          |
/// |-------------------------|--------------------------------------------------|------------------|
/// | `listen`                | address of `/metrics` (port 0 = any free port)   | `127.0.0.1:9464` |
/// | `allow-non-loopback`    | permit a non-loopback `listen` address           | `false`          |
/// | `max-series-per-metric` | label combinations one metric may have           | 10000            |
/// | `max-metrics`           | metric names the provider holds                  | 1000             |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub listen: SocketAddr,
    pub allow_non_loopback: bool,
    pub registry: edgecell_metrics::RegistryConfig,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

fn invalid(key: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid { key, value: value.to_owned(), expected }
}

impl ProviderConfig {
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let listen_s = map.get("listen").map_or(DEFAULT_LISTEN, |s| s.trim());
        let listen = listen_s.parse().map_err(|_| invalid("listen", listen_s, "socket address"))?;
        let allow_non_loopback = match map.get("allow-non-loopback").map(|s| s.trim()) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(invalid("allow-non-loopback", v, "boolean")),
        };
        let mut registry = edgecell_metrics::RegistryConfig::default();
        if let Some(v) = map.get("max-series-per-metric") {
            registry.max_series_per_metric = v.trim().parse().map_err(|_| invalid("max-series-per-metric", v, "count"))?;
        }
        if let Some(v) = map.get("max-metrics") {
            registry.max_metrics = v.trim().parse().map_err(|_| invalid("max-metrics", v, "count"))?;
        }
        Ok(Self { listen, allow_non_loopback, registry })
    }
}

/// The `component` label a linked component's series carry: link config `component`, else its id.
pub fn component_label(link_config: &HashMap<String, String>, source_id: &str) -> String {
    link_config.get("component").map(|s| s.trim()).filter(|s| !s.is_empty()).unwrap_or(source_id).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    use edgecell_provider_common::config_map as map;

    #[test]
    fn defaults_and_errors() {
        let c = ProviderConfig::from_map(&map(&[])).unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert!(!c.allow_non_loopback);
        let c = ProviderConfig::from_map(&map(&[("listen", "127.0.0.1:0"), ("max-series-per-metric", "5"), ("max-metrics", "7")])).unwrap();
        assert_eq!((c.listen.port(), c.registry.max_series_per_metric, c.registry.max_metrics), (0, 5, 7));
        assert!(ProviderConfig::from_map(&map(&[("max-metrics", "-1")])).is_err());
        assert_eq!(
            ProviderConfig::from_map(&map(&[("listen", "localhost")])),
            Err(ConfigError::Invalid { key: "listen", value: "localhost".into(), expected: "socket address" })
        );
        assert!(ProviderConfig::from_map(&map(&[("allow-non-loopback", "yes")])).is_err());
    }

    #[test]
    fn component_label_prefers_link_config() {
        assert_eq!(component_label(&map(&[("component", "v2x-validator")]), "edgecell-v2x_validator"), "v2x-validator");
        assert_eq!(component_label(&map(&[]), "edgecell-v2x_validator"), "edgecell-v2x_validator");
    }
}
