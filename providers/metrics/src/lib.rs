//! The core of edgecell's metrics provider: a registry of counters, gauges and histograms with
//! labels, Prometheus text exposition (format 0.0.4), an HTTP endpoint serving it on a loopback
//! address, and a snapshot API for the CLI summary.
//!
//! No wasm or wasmCloud types: the embedded host links it in-process, the wasmCloud provider
//! wraps it.

#![forbid(unsafe_code)]

mod server;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

pub use server::{MetricsServer, ServerError};

/// A label pair.
pub type Label = (String, String);

/// What kind of metric a name is registered as.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum MetricKind {
    Counter,
    Gauge,
    /// Upper bounds of the buckets (strictly increasing, finite; +Inf implied).
    Histogram(Vec<f64>),
}

impl MetricKind {
    fn type_name(&self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram(_) => "histogram",
        }
    }
}

/// Why a metrics operation was refused. Mirrors the WIT `metrics-error` variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid metric name {0:?}")]
    InvalidName(String),
    #[error("invalid label: {0}")]
    InvalidLabel(String),
    #[error("kind mismatch: {0}")]
    KindMismatch(String),
    #[error("invalid buckets: {0}")]
    InvalidBuckets(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
    #[error("histogram {0:?} is not registered")]
    NotRegistered(String),
    #[error("more than {0} label combinations for one metric")]
    CardinalityExceeded(u32),
    /// The registry holds as many metrics as it may (WIT: `cardinality-exceeded`).
    #[error("more than {0} metrics")]
    TooManyMetrics(u32),
    #[error("more than {0} updates in one batch")]
    BatchTooLarge(u32),
}

/// The most updates one [`Registry::record_batch`] applies (the WIT `record-batch` limit).
pub const MAX_BATCH: usize = 1024;

/// One registry call, for [`Registry::record_batch`]. Mirrors the WIT `update` variant.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Register { name: String, help: String, kind: MetricKind },
    CounterAdd { name: String, labels: Vec<Label>, value: f64 },
    GaugeSet { name: String, labels: Vec<Label>, value: f64 },
    GaugeAdd { name: String, labels: Vec<Label>, value: f64 },
    HistogramObserve { name: String, labels: Vec<Label>, value: f64 },
}

/// Registry limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Most label combinations (series) one metric may have.
    pub max_series_per_metric: u32,
    /// Most metrics (names) the registry holds; counters and gauges come into being by use, so
    /// a component that builds names from data would otherwise grow it without end.
    pub max_metrics: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { max_series_per_metric: 10_000, max_metrics: 1_000 }
    }
}

/// Longest metric name or label key, in bytes.
pub const MAX_NAME_BYTES: usize = 200;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;
/// Most labels one update may carry.
pub const MAX_LABELS: usize = 32;
/// Longest help text, in bytes.
pub const MAX_HELP_BYTES: usize = 4096;
/// The sample names a histogram `h` writes besides its own: `h_bucket`, `h_sum`, `h_count`.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

#[derive(Debug, Clone, PartialEq)]
enum SeriesValue {
    Scalar(f64),
    Histogram { counts: Vec<u64>, sum: f64, count: u64 },
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: MetricKind,
    /// Sorted label sets → value.
    series: BTreeMap<Vec<Label>, SeriesValue>,
}

/// One series in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesSnapshot {
    pub labels: Vec<Label>,
    /// Counter/gauge value; for histograms the sum of observations.
    pub value: f64,
    /// Histograms: number of observations.
    pub count: Option<u64>,
    /// Histograms: cumulative counts per upper bound (last is +Inf).
    pub buckets: Vec<(f64, u64)>,
}

/// One metric in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricSnapshot {
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    pub series: Vec<SeriesSnapshot>,
}

/// Every metric at one instant, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Snapshot {
    pub metrics: Vec<MetricSnapshot>,
}

impl Snapshot {
    /// Sum of a counter or gauge across series whose labels include all of `filter`.
    #[must_use]
    pub fn total(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        let m = self.metrics.iter().find(|m| m.name == name)?;
        Some(
            m.series
                .iter()
                .filter(|s| filter.iter().all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v)))
                .map(|s| s.value)
                .sum(),
        )
    }
}

/// A thread-safe metrics registry.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
    config: RegistryConfig,
}

fn valid_metric_name(name: &str) -> bool {
    if name.len() > MAX_NAME_BYTES {
        return false;
    }
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    if name.len() > MAX_NAME_BYTES {
        return false;
    }
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Label keys a caller may not set: `le` belongs to histograms, `component` to the host.
pub const RESERVED_LABELS: [&str; 2] = ["le", "component"];

fn finite(value: f64, what: &str) -> Result<f64, MetricsError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(MetricsError::InvalidValue(format!("{what} is {value}")))
    }
}

/// A new metric `name` of `kind` would write a sample name another metric writes too: a
/// histogram `h` owns `h_bucket`, `h_sum` and `h_count`. The exposition would then carry two
/// TYPE lines for one name, which strict parsers refuse for the whole page.
fn sample_name_clash(families: &BTreeMap<String, Family>, name: &str, kind: &MetricKind) -> Result<(), MetricsError> {
    for suffix in HISTOGRAM_SUFFIXES {
        if let Some(stem) = name.strip_suffix(suffix)
            && families.get(stem).is_some_and(|f| matches!(f.kind, MetricKind::Histogram(_)))
        {
            return Err(MetricsError::KindMismatch(format!("{name} is a sample name of the histogram {stem}")));
        }
        if matches!(kind, MetricKind::Histogram(_)) && families.contains_key(&format!("{name}{suffix}")) {
            return Err(MetricsError::KindMismatch(format!(
                "a histogram {name} would write the samples of the metric {name}{suffix}"
            )));
        }
    }
    Ok(())
}

impl Registry {
    #[must_use]
    pub fn new(config: RegistryConfig) -> Self {
        Self { families: Mutex::new(BTreeMap::new()), config }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Family>> {
        match self.families.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A metric `name` of `kind` may be added to `families`.
    fn may_add(&self, families: &BTreeMap<String, Family>, name: &str, kind: &MetricKind) -> Result<(), MetricsError> {
        if families.len() >= self.config.max_metrics as usize {
            return Err(MetricsError::TooManyMetrics(self.config.max_metrics));
        }
        sample_name_clash(families, name, kind)
    }

    /// Declare a metric; idempotent for the same kind (and buckets).
    pub fn register(&self, name: &str, help: &str, kind: MetricKind) -> Result<(), MetricsError> {
        if !valid_metric_name(name) {
            return Err(MetricsError::InvalidName(name.to_owned()));
        }
        if help.len() > MAX_HELP_BYTES {
            return Err(MetricsError::InvalidValue(format!("help text of {} bytes (at most {MAX_HELP_BYTES})", help.len())));
        }
        if let MetricKind::Histogram(b) = &kind {
            if b.is_empty() {
                return Err(MetricsError::InvalidBuckets("no buckets".into()));
            }
            if b.iter().any(|x| !x.is_finite()) {
                return Err(MetricsError::InvalidBuckets("bucket bounds must be finite".into()));
            }
            if b.windows(2).any(|w| w[0] >= w[1]) {
                return Err(MetricsError::InvalidBuckets("bucket bounds must increase strictly".into()));
            }
        }
        let mut families = self.lock();
        match families.get_mut(name) {
            Some(f) if f.kind == kind => {
                if f.help.is_empty() {
                    help.clone_into(&mut f.help);
                }
                Ok(())
            }
            Some(f) => Err(MetricsError::KindMismatch(format!(
                "{name} is a {}, not a {}",
                f.kind.type_name(),
                kind.type_name()
            ))),
            None => {
                self.may_add(&families, name, &kind)?;
                families.insert(name.to_owned(), Family { help: help.to_owned(), kind, series: BTreeMap::new() });
                Ok(())
            }
        }
    }

    /// Validate and sort caller labels, then add the host's own (e.g. `component`). A label
    /// with an empty value is left out: Prometheus takes `c{op=""}` and `c{}` for one series.
    fn label_set(labels: &[Label], host_labels: &[Label]) -> Result<Vec<Label>, MetricsError> {
        if labels.len() > MAX_LABELS {
            return Err(MetricsError::InvalidLabel(format!("{} labels (at most {MAX_LABELS})", labels.len())));
        }
        let mut out: Vec<Label> = Vec::with_capacity(labels.len() + host_labels.len());
        for (k, v) in labels {
            if !valid_label_name(k) || RESERVED_LABELS.contains(&k.as_str()) {
                return Err(MetricsError::InvalidLabel(format!("{k:?} is not a valid or allowed label name")));
            }
            if v.len() > MAX_LABEL_VALUE_BYTES {
                return Err(MetricsError::InvalidLabel(format!(
                    "the value of {k} has {} bytes (at most {MAX_LABEL_VALUE_BYTES})",
                    v.len()
                )));
            }
            out.push((k.clone(), v.clone()));
        }
        out.extend(host_labels.iter().cloned());
        out.sort();
        if out.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(MetricsError::InvalidLabel("a label key is repeated".into()));
        }
        // (an empty value's key is still checked, and counts towards a repeat)
        out.retain(|(_, v)| !v.is_empty());
        Ok(out)
    }

    /// Finds (or, for counters and gauges, declares) the metric `name`, checks that it is a
    /// `want`, then applies `update` to the series of `labels`. Nothing is created when the
    /// update is refused for its kind or a limit.
    fn with_series(
        &self,
        name: &str,
        want: &'static str,
        implicit: Option<MetricKind>,
        labels: &[Label],
        host_labels: &[Label],
        update: impl FnOnce(&MetricKind, &mut SeriesValue) -> Result<(), MetricsError>,
    ) -> Result<(), MetricsError> {
        let set = Self::label_set(labels, host_labels)?;
        if !valid_metric_name(name) {
            return Err(MetricsError::InvalidName(name.to_owned()));
        }
        let mut families = self.lock();
        if !families.contains_key(name) {
            match implicit {
                Some(kind) => {
                    self.may_add(&families, name, &kind)?;
                    families.insert(name.to_owned(), Family { help: String::new(), kind, series: BTreeMap::new() });
                }
                None => return Err(MetricsError::NotRegistered(name.to_owned())),
            }
        }
        let Some(family) = families.get_mut(name) else {
            return Err(MetricsError::NotRegistered(name.to_owned()));
        };
        Self::expect_kind(name, &family.kind, want)?;
        let max = self.config.max_series_per_metric;
        let len = family.series.len();
        let kind = family.kind.clone();
        let value = match family.series.get_mut(&set) {
            Some(v) => v,
            None => {
                if len >= max as usize {
                    return Err(MetricsError::CardinalityExceeded(max));
                }
                let fresh = match &kind {
                    MetricKind::Histogram(b) => SeriesValue::Histogram { counts: vec![0; b.len() + 1], sum: 0.0, count: 0 },
                    _ => SeriesValue::Scalar(0.0),
                };
                family.series.entry(set).or_insert(fresh)
            }
        };
        update(&kind, value)
    }

    fn expect_kind(name: &str, kind: &MetricKind, want: &str) -> Result<(), MetricsError> {
        if kind.type_name() == want {
            Ok(())
        } else {
            Err(MetricsError::KindMismatch(format!("{name} is a {}, not a {want}", kind.type_name())))
        }
    }

    /// Add a non-negative amount to a counter (declared implicitly on first use).
    pub fn counter_add(&self, name: &str, labels: &[Label], host_labels: &[Label], delta: f64) -> Result<(), MetricsError> {
        let delta = finite(delta, "counter increment")?;
        if delta < 0.0 {
            return Err(MetricsError::InvalidValue(format!("counter increment {delta} is negative")));
        }
        self.with_series(name, "counter", Some(MetricKind::Counter), labels, host_labels, |_, v| {
            if let SeriesValue::Scalar(x) = v {
                *x += delta;
            }
            Ok(())
        })
    }

    /// Set a gauge (declared implicitly on first use).
    pub fn gauge_set(&self, name: &str, labels: &[Label], host_labels: &[Label], value: f64) -> Result<(), MetricsError> {
        let value = finite(value, "gauge value")?;
        self.with_series(name, "gauge", Some(MetricKind::Gauge), labels, host_labels, |_, v| {
            if let SeriesValue::Scalar(x) = v {
                *x = value;
            }
            Ok(())
        })
    }

    /// Add to a gauge (may be negative).
    pub fn gauge_add(&self, name: &str, labels: &[Label], host_labels: &[Label], delta: f64) -> Result<(), MetricsError> {
        let delta = finite(delta, "gauge increment")?;
        self.with_series(name, "gauge", Some(MetricKind::Gauge), labels, host_labels, |_, v| {
            if let SeriesValue::Scalar(x) = v {
                *x += delta;
            }
            Ok(())
        })
    }

    /// Record one observation in a registered histogram.
    pub fn histogram_observe(&self, name: &str, labels: &[Label], host_labels: &[Label], value: f64) -> Result<(), MetricsError> {
        let value = finite(value, "observation")?;
        self.with_series(name, "histogram", None, labels, host_labels, |kind, v| {
            let MetricKind::Histogram(bounds) = kind else {
                return Ok(());
            };
            if let SeriesValue::Histogram { counts, sum, count } = v {
                let idx = bounds.iter().position(|b| value <= *b).unwrap_or(bounds.len());
                if let Some(c) = counts.get_mut(idx) {
                    *c += 1;
                }
                *sum += value;
                *count += 1;
            }
            Ok(())
        })
    }

    /// Applies one update as its own function would.
    ///
    /// # Errors
    /// That function's [`MetricsError`].
    pub fn apply(&self, update: &Update, host_labels: &[Label]) -> Result<(), MetricsError> {
        match update {
            Update::Register { name, help, kind } => self.register(name, help, kind.clone()),
            Update::CounterAdd { name, labels, value } => self.counter_add(name, labels, host_labels, *value),
            Update::GaugeSet { name, labels, value } => self.gauge_set(name, labels, host_labels, *value),
            Update::GaugeAdd { name, labels, value } => self.gauge_add(name, labels, host_labels, *value),
            Update::HistogramObserve { name, labels, value } => self.histogram_observe(name, labels, host_labels, *value),
        }
    }

    /// Applies `updates` in order, one result per update; those past [`MAX_BATCH`] are refused
    /// with [`MetricsError::BatchTooLarge`] and change nothing. A refused update does not stop
    /// the ones after it.
    #[must_use]
    pub fn record_batch(&self, updates: &[Update], host_labels: &[Label]) -> Vec<Result<(), MetricsError>> {
        updates
            .iter()
            .enumerate()
            .map(|(i, u)| {
                if i < MAX_BATCH {
                    self.apply(u, host_labels)
                } else {
                    Err(MetricsError::BatchTooLarge(u32::try_from(MAX_BATCH).unwrap_or(u32::MAX)))
                }
            })
            .collect()
    }

    /// Every metric now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        let families = self.lock();
        let metrics = families
            .iter()
            .map(|(name, f)| MetricSnapshot {
                name: name.clone(),
                help: f.help.clone(),
                kind: f.kind.clone(),
                series: f
                    .series
                    .iter()
                    .map(|(labels, v)| match v {
                        SeriesValue::Scalar(x) => SeriesSnapshot { labels: labels.clone(), value: *x, count: None, buckets: vec![] },
                        SeriesValue::Histogram { counts, sum, count } => {
                            let bounds = match &f.kind {
                                MetricKind::Histogram(b) => b.as_slice(),
                                _ => &[],
                            };
                            let mut cumulative = 0;
                            let buckets = counts
                                .iter()
                                .enumerate()
                                .map(|(i, c)| {
                                    cumulative += c;
                                    (bounds.get(i).copied().unwrap_or(f64::INFINITY), cumulative)
                                })
                                .collect();
                            SeriesSnapshot { labels: labels.clone(), value: *sum, count: Some(*count), buckets }
                        }
                    })
                    .collect(),
            })
            .collect();
        Snapshot { metrics }
    }

    /// The Prometheus text exposition (version 0.0.4) of every metric.
    #[must_use]
    pub fn render_prometheus(&self) -> String {
        render_prometheus(&self.snapshot())
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn fmt_f64(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{v}")
    }
}

fn fmt_labels(labels: &[Label], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{}\"", escape_label_value(v)));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

/// Render a snapshot in the Prometheus text format.
#[must_use]
pub fn render_prometheus(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for m in &snapshot.metrics {
        if !m.help.is_empty() {
            let _ = writeln!(out, "# HELP {} {}", m.name, escape_help(&m.help));
        }
        let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind.type_name());
        for s in &m.series {
            match m.kind {
                MetricKind::Histogram(_) => {
                    for (bound, count) in &s.buckets {
                        let le = fmt_f64(*bound);
                        let _ = writeln!(out, "{}_bucket{} {count}", m.name, fmt_labels(&s.labels, Some(("le", &le))));
                    }
                    let _ = writeln!(out, "{}_sum{} {}", m.name, fmt_labels(&s.labels, None), fmt_f64(s.value));
                    let _ = writeln!(out, "{}_count{} {}", m.name, fmt_labels(&s.labels, None), s.count.unwrap_or(0));
                }
                _ => {
                    let _ = writeln!(out, "{}{} {}", m.name, fmt_labels(&s.labels, None), fmt_f64(s.value));
                }
            }
        }
    }
    out
}

/// Generates the conversions between this crate's types and the types a WIT binding generator
/// made for `edgecell:metrics/recorder` (the embedded host's wasmtime bindings and the wasmCloud
/// provider's wit-bindgen-wrpc bindings): `metrics_error`, `metric_kind` and `metric_labels` in
/// the calling module. `$wit` names the generated `recorder` module.
#[macro_export]
macro_rules! wit_conversions {
    ($wit:ident) => {
        fn metrics_error(e: $crate::MetricsError) -> $wit::MetricsError {
            match e {
                $crate::MetricsError::InvalidName(m) => $wit::MetricsError::InvalidName(m),
                $crate::MetricsError::InvalidLabel(m) => $wit::MetricsError::InvalidLabel(m),
                $crate::MetricsError::KindMismatch(m) => $wit::MetricsError::KindMismatch(m),
                $crate::MetricsError::InvalidBuckets(m) => $wit::MetricsError::InvalidBuckets(m),
                $crate::MetricsError::InvalidValue(m) => $wit::MetricsError::InvalidValue(m),
                $crate::MetricsError::NotRegistered(m) => $wit::MetricsError::NotRegistered(m),
                $crate::MetricsError::CardinalityExceeded(n) | $crate::MetricsError::TooManyMetrics(n) => {
                    $wit::MetricsError::CardinalityExceeded(n)
                }
                $crate::MetricsError::BatchTooLarge(n) => $wit::MetricsError::BatchTooLarge(n),
            }
        }

        fn metric_update(u: $wit::Update) -> $crate::Update {
            match u {
                $wit::Update::Register(r) => $crate::Update::Register { name: r.name, help: r.help, kind: metric_kind(r.kind) },
                $wit::Update::CounterAdd(s) => $crate::Update::CounterAdd { name: s.name, labels: metric_labels(s.labels), value: s.value },
                $wit::Update::GaugeSet(s) => $crate::Update::GaugeSet { name: s.name, labels: metric_labels(s.labels), value: s.value },
                $wit::Update::GaugeAdd(s) => $crate::Update::GaugeAdd { name: s.name, labels: metric_labels(s.labels), value: s.value },
                $wit::Update::HistogramObserve(s) => {
                    $crate::Update::HistogramObserve { name: s.name, labels: metric_labels(s.labels), value: s.value }
                }
            }
        }

        /// The WIT `record-batch` over a registry, with the caller's own labels.
        fn record_batch(
            registry: &$crate::Registry,
            updates: Vec<$wit::Update>,
            host_labels: &[$crate::Label],
        ) -> Vec<Result<(), $wit::MetricsError>> {
            let updates: Vec<$crate::Update> = updates.into_iter().map(metric_update).collect();
            registry.record_batch(&updates, host_labels).into_iter().map(|r| r.map_err(metrics_error)).collect()
        }

        fn metric_kind(k: $wit::MetricKind) -> $crate::MetricKind {
            match k {
                $wit::MetricKind::Counter => $crate::MetricKind::Counter,
                $wit::MetricKind::Gauge => $crate::MetricKind::Gauge,
                $wit::MetricKind::Histogram(b) => $crate::MetricKind::Histogram(b),
            }
        }

        fn metric_labels(l: Vec<$wit::Label>) -> Vec<$crate::Label> {
            l.into_iter().map(|l| (l.key, l.value)).collect()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(k: &str, v: &str) -> Label {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn a_batch_applies_in_order_with_one_result_per_update_and_a_limit() {
        let r = Registry::default();
        let own = [l("component", "probe")];
        let sample = |name: &str, value: f64| (name.to_owned(), vec![l("op", "get")], value);
        let (n, labels, v) = sample("requests_total", 2.0);
        let mut batch = vec![
            // observed before registered: refused, the rest still applied
            Update::HistogramObserve { name: "latency_seconds".into(), labels: vec![], value: 0.5 },
            Update::Register { name: "latency_seconds".into(), help: "Latency".into(), kind: MetricKind::Histogram(vec![0.1, 1.0]) },
            Update::HistogramObserve { name: "latency_seconds".into(), labels: vec![], value: 0.5 },
            Update::CounterAdd { name: n, labels, value: v },
            Update::CounterAdd { name: "requests_total".into(), labels: vec![], value: f64::NAN },
            Update::GaugeSet { name: "depth".into(), labels: vec![], value: 4.0 },
            Update::GaugeAdd { name: "depth".into(), labels: vec![], value: -1.0 },
        ];
        let out = r.record_batch(&batch, &own);
        assert_eq!(out.len(), batch.len());
        assert!(matches!(out[0], Err(MetricsError::NotRegistered(_))), "{out:?}");
        assert!(matches!(out[4], Err(MetricsError::InvalidValue(_))), "{out:?}");
        assert!(out.iter().enumerate().all(|(i, o)| i == 0 || i == 4 || o.is_ok()), "{out:?}");
        let text = r.render_prometheus();
        assert!(text.contains("latency_seconds_count{component=\"probe\"} 1"), "{text}");
        assert!(text.contains("requests_total{component=\"probe\",op=\"get\"} 2"), "{text}");
        assert!(text.contains("depth{component=\"probe\"} 3"), "{text}");

        // past the limit: refused one by one, nothing applied
        batch = (0..MAX_BATCH + 3).map(|_| Update::CounterAdd { name: "big_total".into(), labels: vec![], value: 1.0 }).collect();
        let out = r.record_batch(&batch, &[]);
        assert_eq!(out.iter().filter(|o| o.is_ok()).count(), MAX_BATCH);
        assert!(out[MAX_BATCH..].iter().all(|o| *o == Err(MetricsError::BatchTooLarge(1024))));
        assert!(r.render_prometheus().contains(&format!("big_total {MAX_BATCH}")));
    }

    #[test]
    fn actors_split_their_batches_at_the_providers_limit() {
        assert_eq!(edgecell_actor_metrics::MAX_BATCH, MAX_BATCH);
    }

    #[test]
    fn counters_gauges_and_histograms_render() {
        let r = Registry::default();
        r.register("requests_total", "Requests handled", MetricKind::Counter).unwrap();
        r.counter_add("requests_total", &[l("op", "get")], &[l("component", "probe")], 2.0).unwrap();
        r.counter_add("requests_total", &[l("op", "get")], &[l("component", "probe")], 1.0).unwrap();
        r.gauge_set("queue_depth", &[], &[], 4.0).unwrap();
        r.gauge_add("queue_depth", &[], &[], -1.5).unwrap();
        r.register("latency_seconds", "Latency", MetricKind::Histogram(vec![0.001, 0.01, 0.1])).unwrap();
        for v in [0.0005, 0.005, 0.005, 0.5] {
            r.histogram_observe("latency_seconds", &[], &[], v).unwrap();
        }
        let text = r.render_prometheus();
        let expected = "\
# HELP latency_seconds Latency
# TYPE latency_seconds histogram
latency_seconds_bucket{le=\"0.001\"} 1
latency_seconds_bucket{le=\"0.01\"} 3
latency_seconds_bucket{le=\"0.1\"} 3
latency_seconds_bucket{le=\"+Inf\"} 4
latency_seconds_sum 0.5105
latency_seconds_count 4
# TYPE queue_depth gauge
queue_depth 2.5
# HELP requests_total Requests handled
# TYPE requests_total counter
requests_total{component=\"probe\",op=\"get\"} 3
";
        assert_eq!(text, expected);
        assert_eq!(r.snapshot().total("requests_total", &[("op", "get")]), Some(3.0));
    }

    #[test]
    fn label_values_are_escaped() {
        let r = Registry::default();
        r.counter_add("c", &[l("path", "a\"b\\c\nd")], &[], 1.0).unwrap();
        assert!(r.render_prometheus().contains(r#"c{path="a\"b\\c\nd"} 1"#));
    }

    #[test]
    fn bad_input_gets_typed_errors_and_changes_nothing() {
        let r = Registry::default();
        assert!(matches!(r.counter_add("9bad", &[], &[], 1.0), Err(MetricsError::InvalidName(_))));
        assert!(matches!(r.counter_add("c", &[l("le", "1")], &[], 1.0), Err(MetricsError::InvalidLabel(_))));
        assert!(matches!(r.counter_add("c", &[l("__x", "1")], &[], 1.0), Err(MetricsError::InvalidLabel(_))));
        assert!(matches!(r.counter_add("c", &[l("a", "1"), l("a", "2")], &[], 1.0), Err(MetricsError::InvalidLabel(_))));
        assert!(matches!(r.counter_add("c", &[], &[], -1.0), Err(MetricsError::InvalidValue(_))));
        assert!(matches!(r.counter_add("c", &[], &[], f64::NAN), Err(MetricsError::InvalidValue(_))));
        assert!(matches!(r.gauge_set("g", &[], &[], f64::INFINITY), Err(MetricsError::InvalidValue(_))));
        assert!(matches!(r.histogram_observe("h", &[], &[], 1.0), Err(MetricsError::NotRegistered(_))));
        assert!(matches!(r.register("h", "", MetricKind::Histogram(vec![])), Err(MetricsError::InvalidBuckets(_))));
        assert!(matches!(r.register("h", "", MetricKind::Histogram(vec![2.0, 1.0])), Err(MetricsError::InvalidBuckets(_))));
        assert!(matches!(r.register("h", "", MetricKind::Histogram(vec![1.0, f64::NAN])), Err(MetricsError::InvalidBuckets(_))));
        assert_eq!(r.render_prometheus(), "");
        r.counter_add("c", &[], &[], 1.0).unwrap();
        assert!(matches!(r.gauge_set("c", &[], &[], 1.0), Err(MetricsError::KindMismatch(_))));
        assert!(matches!(r.register("c", "", MetricKind::Gauge), Err(MetricsError::KindMismatch(_))));
        r.register("c", "now with help", MetricKind::Counter).unwrap();
        assert_eq!(r.render_prometheus(), "# HELP c now with help\n# TYPE c counter\nc 1\n");
    }

    #[test]
    fn no_two_metrics_write_one_sample_name() {
        let r = Registry::default();
        r.register("req", "", MetricKind::Histogram(vec![1.0])).unwrap();
        for name in ["req_count", "req_sum", "req_bucket"] {
            assert!(matches!(r.counter_add(name, &[], &[], 1.0), Err(MetricsError::KindMismatch(_))), "{name}");
            assert!(matches!(r.register(name, "", MetricKind::Gauge), Err(MetricsError::KindMismatch(_))), "{name}");
        }
        // the other way round: a histogram whose samples an existing metric already writes
        r.gauge_set("lat_sum", &[], &[], 1.0).unwrap();
        assert!(matches!(r.register("lat", "", MetricKind::Histogram(vec![1.0])), Err(MetricsError::KindMismatch(_))));
        // names that only look alike are fine
        r.counter_add("req_counts", &[], &[], 1.0).unwrap();
        r.counter_add("other_count", &[], &[], 1.0).unwrap();
        r.histogram_observe("req", &[], &[], 0.5).unwrap();
        let text = r.render_prometheus();
        let mut samples: Vec<&str> =
            text.lines().filter(|l| !l.starts_with('#')).map(|l| l.split(['{', ' ']).next().unwrap_or("")).collect();
        let n = samples.len();
        samples.sort_unstable();
        samples.dedup();
        assert_eq!(samples.len(), n - 1, "only the histogram's bucket lines share a name: {text}");
        assert_eq!(text.matches("# TYPE ").count(), 4, "{text}");
    }

    #[test]
    fn a_refused_update_creates_no_series() {
        let r = Registry::new(RegistryConfig { max_series_per_metric: 2, ..RegistryConfig::default() });
        r.register("h", "", MetricKind::Histogram(vec![1.0])).unwrap();
        r.counter_add("c", &[], &[], 1.0).unwrap();
        for i in 0..10 {
            let labels = [l("id", &i.to_string())];
            assert!(matches!(r.gauge_set("h", &labels, &[], 1.0), Err(MetricsError::KindMismatch(_))));
            assert!(matches!(r.histogram_observe("c", &labels, &[], 1.0), Err(MetricsError::KindMismatch(_))));
        }
        assert!(r.snapshot().metrics.iter().all(|m| m.series.len() <= 1), "{:?}", r.snapshot());
        r.histogram_observe("h", &[l("id", "a")], &[], 1.0).unwrap();
        r.histogram_observe("h", &[l("id", "b")], &[], 1.0).unwrap();
    }

    #[test]
    fn names_labels_and_help_are_bounded() {
        let r = Registry::new(RegistryConfig { max_metrics: 2, ..RegistryConfig::default() });
        r.counter_add("a", &[], &[], 1.0).unwrap();
        r.register("b", "", MetricKind::Gauge).unwrap();
        assert_eq!(r.counter_add("c", &[], &[], 1.0), Err(MetricsError::TooManyMetrics(2)));
        assert_eq!(r.register("c", "", MetricKind::Counter), Err(MetricsError::TooManyMetrics(2)));
        r.counter_add("a", &[l("more", "series")], &[], 1.0).unwrap();
        let long = "n".repeat(MAX_NAME_BYTES + 1);
        assert!(matches!(r.counter_add(&long, &[], &[], 1.0), Err(MetricsError::InvalidName(_))));
        assert!(matches!(r.counter_add("a", &[l(&long, "v")], &[], 1.0), Err(MetricsError::InvalidLabel(_))));
        let value = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        assert!(matches!(r.counter_add("a", &[l("k", &value)], &[], 1.0), Err(MetricsError::InvalidLabel(_))));
        let many: Vec<Label> = (0..=MAX_LABELS).map(|i| l(&format!("k{i}"), "v")).collect();
        assert!(matches!(r.counter_add("a", &many, &[], 1.0), Err(MetricsError::InvalidLabel(_))));
        assert!(matches!(r.register("a", &"h".repeat(MAX_HELP_BYTES + 1), MetricKind::Counter), Err(MetricsError::InvalidValue(_))));
        assert_eq!(r.snapshot().total("a", &[]), Some(2.0));
    }

    #[test]
    fn an_empty_label_value_is_the_label_left_out() {
        let r = Registry::default();
        r.counter_add("c", &[l("op", "")], &[], 1.0).unwrap();
        r.counter_add("c", &[], &[], 1.0).unwrap();
        assert_eq!(r.render_prometheus(), "# TYPE c counter\nc 2\n");
        assert!(matches!(r.counter_add("c", &[l("op", ""), l("op", "x")], &[], 1.0), Err(MetricsError::InvalidLabel(_))));
    }

    #[test]
    fn cardinality_is_bounded() {
        let r = Registry::new(RegistryConfig { max_series_per_metric: 3, ..RegistryConfig::default() });
        for i in 0..3 {
            r.counter_add("c", &[l("i", &i.to_string())], &[], 1.0).unwrap();
        }
        assert_eq!(r.counter_add("c", &[l("i", "99")], &[], 1.0), Err(MetricsError::CardinalityExceeded(3)));
        // existing series still accept updates
        r.counter_add("c", &[l("i", "0")], &[], 1.0).unwrap();
        assert_eq!(r.snapshot().total("c", &[]), Some(4.0));
    }
}
