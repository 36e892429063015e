//! Validator configuration (TOML / serde): thresholds, verdict policy, security.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::V2xError;

/// Thresholds of the plausibility checks (DESIGN.md §4). Defaults are F2MD's legacy values;
/// [`Thresholds::veremi_nextgen`] gives the VeReMi NextGen ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Range plausibility: maximum sender–receiver distance, m.
    pub max_range_m: f64,
    /// Sudden appearance: a new pseudonym first heard closer than this fails, m.
    pub sudden_appearance_range_m: f64,
    /// Sudden appearance: a pseudonym unheard for longer than this counts as new, s
    /// (`None` = only the very first beacon).
    pub sudden_appearance_window_s: Option<f64>,
    /// Speed plausibility: maximum |v|, m/s.
    pub max_speed_mps: f64,
    /// Position consistency uses `max_speed_mps * dt` plus this slack, m.
    pub position_consistency_slack_m: f64,
    /// Speed consistency: maximum acceleration, m/s^2.
    pub max_accel_mps2: f64,
    /// Speed consistency: maximum deceleration, m/s^2.
    pub max_decel_mps2: f64,
    /// Position–speed consistency only when dt is below this, s.
    pub position_speed_max_dt_s: f64,
    /// Position–speed consistency tolerance, m.
    pub position_speed_tolerance_m: f64,
    /// Position–heading consistency: maximum angle, degrees.
    pub max_heading_angle_deg: f64,
    /// Position–heading consistency only when dt is below this, s.
    pub position_heading_max_dt_s: f64,
    /// Position–heading consistency skipped below this displacement, m.
    pub position_heading_min_dist_m: f64,
    /// Position–heading consistency skipped below this speed, m/s.
    pub position_heading_min_speed_mps: f64,
    /// Beacon frequency: minimum interval between beacons of one pseudonym, s.
    pub min_beacon_interval_s: f64,
    /// Map: maximum distance from a road, m.
    pub max_road_distance_m: f64,
    /// Intersection: overlap factor above which two vehicles intersect.
    pub max_intersection_factor: f64,
    /// Intersection: only neighbours heard within this time, s.
    pub intersection_window_s: f64,
    /// Default vehicle length when not reported, m.
    pub default_length_m: f64,
    /// Default vehicle width when not reported, m.
    pub default_width_m: f64,
    /// Freshness: maximum receive − generation delay, s.
    pub max_delay_s: f64,
    /// Freshness: maximum generation time ahead of the receive time, s.
    pub max_future_s: f64,
    /// Scale of the sender's reported uncertainty in the confidence ramps (0 = binary F2MD
    /// legacy checks, 1 = CaTCh-style uncertainty-aware confidences).
    pub uncertainty_factor: f64,
    /// Minimum ramp half-width, in units of each check (metres, m/s, degrees).
    pub min_soft: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_range_m: 417.0,
            sudden_appearance_range_m: 210.0,
            sudden_appearance_window_s: None,
            max_speed_mps: 62.3,
            position_consistency_slack_m: 3.0,
            max_accel_mps2: 5.42,
            max_decel_mps2: 5.01,
            position_speed_max_dt_s: 1.1,
            position_speed_tolerance_m: 3.0,
            max_heading_angle_deg: 90.0,
            position_heading_max_dt_s: 1.1,
            position_heading_min_dist_m: 1.0,
            position_heading_min_speed_mps: 1.0,
            min_beacon_interval_s: 0.99,
            max_road_distance_m: 2.0,
            max_intersection_factor: 0.25,
            intersection_window_s: 1.0,
            default_length_m: 4.5,
            default_width_m: 1.8,
            max_delay_s: 1.0,
            max_future_s: 0.5,
            uncertainty_factor: 1.0,
            min_soft: 0.0,
        }
    }
}

impl Thresholds {
    /// VeReMi NextGen defaults (DESIGN.md §4, values in brackets).
    #[must_use]
    pub fn veremi_nextgen() -> Self {
        Self {
            max_range_m: 418.1,
            sudden_appearance_range_m: 150.0,
            sudden_appearance_window_s: Some(2.1),
            position_speed_max_dt_s: 4.72,
            max_heading_angle_deg: 76.2,
            ..Self::default()
        }
    }
}

/// How check confidences combine into a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
#[derive(Default)]
pub enum VerdictPolicy {
    /// Reject when any applicable check has confidence below 0.5.
    #[default]
    AnyFail,
    /// Reject when the weighted mean confidence is below `threshold` (weights per check
    /// name; unlisted checks weigh 1).
    Weighted {
        /// Weight per check name.
        #[serde(default)]
        weights: BTreeMap<String, f64>,
        /// Acceptance threshold on the weighted mean.
        threshold: f64,
    },
    /// CaTCh-style: each confidence is compared with its own threshold (default 0.5) and the
    /// product of confidences with `min_product`; reject when either fails.
    Catch {
        /// Per check threshold (unlisted: 0.5).
        #[serde(default)]
        thresholds: BTreeMap<String, f64>,
        /// Minimum product of all confidences.
        min_product: f64,
    },
}

/// Security settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// Reject unsigned ETSI messages.
    pub require_signature: bool,
    /// Trust anchors: hex of COER-encoded root certificates.
    pub trust_anchors_hex: Vec<String>,
    /// CA certificates below the anchors (authorization and enrolment authorities, as a
    /// certificate trust list gives them): hex of COER. Each is verified against its issuer
    /// the first time a certificate it issued is (an authorization ticket carried in a
    /// message), then cached.
    pub ca_certificates_hex: Vec<String>,
    /// Maximum message age from the 1609.2 generation time, ms.
    pub max_age_ms: u64,
    /// Maximum generation time in the future, ms.
    pub max_future_ms: u64,
    /// Check certificate validity periods against the receive time.
    pub check_validity: bool,
    /// Maximum chain length (excluding the anchor).
    pub max_chain_depth: usize,
    /// What the replay check does when a signer's replay marks cannot be read (the cache
    /// provider is down, or its entry does not parse): `"skip"` (default) or `"reject"`.
    pub replay_when_unreadable: UnreadableReplay,
}

/// The replay check's answer when a signer's replay marks cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnreadableReplay {
    /// Report the check skipped: the message is judged on its other checks, so an outage of
    /// the store does not silence every signed sender (it can let a replayed copy through
    /// while it lasts; the actor counts each unreadable read in `v2x_store_errors_total`).
    #[default]
    Skip,
    /// Fail the check: a message that cannot be shown not to be a replay is rejected (an
    /// outage of the store then rejects every signed message).
    Reject,
}

impl SecurityConfig {
    /// A digest of the trust anchors (hex SHA-256 over their hex, in order): a builder that
    /// verified these anchors can record it, and a later one with the same digest build with
    /// [`crate::validator::AnchorCheck::VerifiedBefore`]. `None` without anchors.
    #[must_use]
    pub fn anchors_digest(&self) -> Option<String> {
        use sha2::Digest as _;
        if self.trust_anchors_hex.is_empty() {
            return None;
        }
        let mut h = sha2::Sha256::new();
        for a in &self.trust_anchors_hex {
            h.update(a.trim().to_ascii_lowercase().as_bytes());
            h.update(b"\n");
        }
        Some(hex::encode(h.finalize()))
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            require_signature: false,
            trust_anchors_hex: Vec::new(),
            ca_certificates_hex: Vec::new(),
            max_age_ms: 2_000,
            max_future_ms: 500,
            check_validity: true,
            max_chain_depth: 4,
            replay_when_unreadable: UnreadableReplay::Skip,
        }
    }
}

/// The whole validator configuration (the WIT `configure` TOML).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `"legacy"` (F2MD) or `"nextgen"` (VeReMi NextGen) base preset; `thresholds` override.
    pub preset: Option<String>,
    /// Check thresholds.
    pub thresholds: Thresholds,
    /// Checks to switch off by name.
    pub disabled_checks: Vec<String>,
    /// Verdict policy.
    pub policy: VerdictPolicy,
    /// Security settings.
    pub security: SecurityConfig,
    /// Road map as a GeoJSON string (LineString / MultiLineString features).
    pub map_geojson: Option<String>,
    /// Frame of the map's coordinates (`wgs84` for ETSI input, `local` for VeReMi traces).
    pub map_frame: crate::map::MapFrame,
    /// Largest accepted payload, bytes.
    pub max_payload: Option<usize>,
}

impl Config {
    /// Parses a TOML configuration. When `preset = "nextgen"` the thresholds not given in the
    /// TOML take the VeReMi NextGen values.
    ///
    /// # Errors
    /// [`V2xError::InvalidConfig`] on TOML errors or invalid values.
    pub fn from_toml(s: &str) -> Result<Self, V2xError> {
        let mut cfg: Self =
            toml::from_str(s).map_err(|e| V2xError::InvalidConfig(e.to_string()))?;
        if cfg.preset.as_deref() == Some("nextgen") {
            // Re-read thresholds over the NextGen base.
            let value: toml::Table =
                toml::from_str(s).map_err(|e| V2xError::InvalidConfig(e.to_string()))?;
            let mut base = toml::Table::try_from(Thresholds::veremi_nextgen())
                .map_err(|e| V2xError::InvalidConfig(e.to_string()))?;
            if let Some(toml::Value::Table(t)) = value.get("thresholds") {
                for (k, v) in t {
                    base.insert(k.clone(), v.clone());
                }
            }
            cfg.thresholds = toml::Value::Table(base)
                .try_into()
                .map_err(|e: toml::de::Error| V2xError::InvalidConfig(e.to_string()))?;
        } else if let Some(p) = cfg.preset.as_deref()
            && p != "legacy"
        {
            return Err(V2xError::InvalidConfig(format!("unknown preset {p:?}")));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks value ranges.
    ///
    /// # Errors
    /// [`V2xError::InvalidConfig`] naming the first bad value.
    pub fn validate(&self) -> Result<(), V2xError> {
        let t = &self.thresholds;
        let positive = [
            ("max_range_m", t.max_range_m),
            ("max_speed_mps", t.max_speed_mps),
            ("max_accel_mps2", t.max_accel_mps2),
            ("max_decel_mps2", t.max_decel_mps2),
            ("position_speed_max_dt_s", t.position_speed_max_dt_s),
            ("position_heading_max_dt_s", t.position_heading_max_dt_s),
            ("default_length_m", t.default_length_m),
            ("default_width_m", t.default_width_m),
            ("intersection_window_s", t.intersection_window_s),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(V2xError::InvalidConfig(format!(
                    "thresholds.{name} must be > 0, got {v}"
                )));
            }
        }
        let non_negative = [
            ("sudden_appearance_range_m", t.sudden_appearance_range_m),
            (
                "position_consistency_slack_m",
                t.position_consistency_slack_m,
            ),
            ("position_speed_tolerance_m", t.position_speed_tolerance_m),
            ("max_heading_angle_deg", t.max_heading_angle_deg),
            ("min_beacon_interval_s", t.min_beacon_interval_s),
            ("max_road_distance_m", t.max_road_distance_m),
            ("max_intersection_factor", t.max_intersection_factor),
            ("max_delay_s", t.max_delay_s),
            ("max_future_s", t.max_future_s),
            ("uncertainty_factor", t.uncertainty_factor),
            ("min_soft", t.min_soft),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(V2xError::InvalidConfig(format!(
                    "thresholds.{name} must be >= 0, got {v}"
                )));
            }
        }
        match &self.policy {
            VerdictPolicy::AnyFail => {}
            VerdictPolicy::Weighted { weights, threshold } => {
                if !(0.0..=1.0).contains(threshold)
                    || weights.values().any(|w| !(w.is_finite() && *w >= 0.0))
                {
                    return Err(V2xError::InvalidConfig(
                        "weighted policy: threshold in [0,1], weights >= 0".into(),
                    ));
                }
            }
            VerdictPolicy::Catch {
                thresholds,
                min_product,
            } => {
                if !(0.0..=1.0).contains(min_product)
                    || thresholds.values().any(|w| !(0.0..=1.0).contains(w))
                {
                    return Err(V2xError::InvalidConfig(
                        "catch policy: thresholds in [0,1]".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_toml_with_overrides_and_presets() {
        let c = Config::from_toml("[thresholds]\nmax_range_m = 300.0\n[policy]\nkind = \"weighted\"\nthreshold = 0.6\nweights = { map = 0.5 }\n")
            .unwrap_or_default();
        assert!((c.thresholds.max_range_m - 300.0).abs() < 1e-12);
        assert!((c.thresholds.max_speed_mps - 62.3).abs() < 1e-12);
        assert!(
            matches!(c.policy, VerdictPolicy::Weighted { threshold, .. } if (threshold - 0.6).abs() < 1e-12)
        );

        let n = Config::from_toml("preset = \"nextgen\"\n[thresholds]\nmax_speed_mps = 40.0\n")
            .unwrap_or_default();
        assert!((n.thresholds.max_range_m - 418.1).abs() < 1e-12);
        assert!((n.thresholds.sudden_appearance_range_m - 150.0).abs() < 1e-12);
        assert!((n.thresholds.max_speed_mps - 40.0).abs() < 1e-12);
        assert_eq!(n.thresholds.sudden_appearance_window_s, Some(2.1));
    }

    #[test]
    fn rejects_bad_config() {
        assert!(matches!(
            Config::from_toml("[thresholds]\nmax_range_m = -1.0\n"),
            Err(V2xError::InvalidConfig(_))
        ));
        assert!(matches!(
            Config::from_toml("bogus = 1\n"),
            Err(V2xError::InvalidConfig(_))
        ));
        assert!(matches!(
            Config::from_toml("preset = \"x\"\n"),
            Err(V2xError::InvalidConfig(_))
        ));
        assert!(matches!(
            Config::from_toml("[policy]\nkind = \"weighted\"\nthreshold = 2.0\n"),
            Err(V2xError::InvalidConfig(_))
        ));
    }
}
