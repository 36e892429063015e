//! IoT filter-and-aggregate: per-sensor tumbling/sliding windows (count, mean, min, max, p95),
//! EWMA and robust (median/MAD) z-score anomaly flags, batching of outputs, and serialisable
//! state behind a small [`StateStore`] trait so an actor can keep it in a TTL cache and be
//! replaced without losing open windows.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::{FusionError, Result};

/// Largest accepted reading time (ms): keeps window arithmetic far from `u64` overflow.
pub const MAX_TIME_MS: u64 = 1 << 60;

/// Window shape (times in milliseconds). Tumbling = sliding with `slide == size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Window {
    /// back-to-back windows of `size_ms`
    Tumbling {
        /// window length
        size_ms: u64,
    },
    /// windows of `size_ms` starting every `slide_ms`
    Sliding {
        /// window length
        size_ms: u64,
        /// hop
        slide_ms: u64,
    },
}

impl Window {
    fn size_slide(self) -> (u64, u64) {
        match self {
            Self::Tumbling { size_ms } => (size_ms, size_ms),
            Self::Sliding { size_ms, slide_ms } => (size_ms, slide_ms),
        }
    }
}

/// Aggregator settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IotConfig {
    /// window shape
    pub window: Window,
    /// EWMA smoothing factor (0, 1]
    pub ewma_alpha: f64,
    /// flag when |x − ewma| > this many EWMA standard deviations
    pub ewma_threshold: f64,
    /// flag when the robust z-score exceeds this (Iglewicz–Hoaglin: 3.5)
    pub robust_threshold: f64,
    /// values kept per sensor for median/MAD
    pub robust_history: usize,
    /// readings per sensor before anomaly flags are raised
    pub warmup: u64,
    /// outputs per batch
    pub batch_size: usize,
    /// cap on samples kept per sensor for window statistics (memory bound)
    pub max_window_samples: usize,
}

impl Default for IotConfig {
    fn default() -> Self {
        Self {
            window: Window::Tumbling { size_ms: 10_000 },
            ewma_alpha: 0.1,
            ewma_threshold: 4.0,
            robust_threshold: 3.5,
            robust_history: 64,
            warmup: 10,
            batch_size: 32,
            max_window_samples: 10_000,
        }
    }
}

/// One sensor reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// sensor id
    pub sensor: String,
    /// time (ms since any epoch)
    pub time_ms: u64,
    /// value
    pub value: f64,
}

/// Statistics of one closed window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowAggregate {
    /// sensor id
    pub sensor: String,
    /// inclusive start (ms)
    pub start_ms: u64,
    /// exclusive end (ms)
    pub end_ms: u64,
    /// readings
    pub count: u64,
    /// mean
    pub mean: f64,
    /// minimum
    pub min: f64,
    /// maximum
    pub max: f64,
    /// 95th percentile (nearest rank)
    pub p95: f64,
}

/// Which detector raised an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// EWMA deviation
    Ewma,
    /// median/MAD robust z-score
    RobustZ,
}

/// An anomalous reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// sensor id
    pub sensor: String,
    /// time (ms)
    pub time_ms: u64,
    /// value
    pub value: f64,
    /// detector
    pub kind: AnomalyKind,
    /// its score
    pub score: f64,
}

/// One output item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// a closed window
    Aggregate(WindowAggregate),
    /// an anomaly flag
    Anomaly(Anomaly),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct SensorState {
    samples: VecDeque<(u64, f64)>,
    next_end: Option<u64>,
    last_time: Option<u64>,
    count: u64,
    ewma_mean: f64,
    ewma_var: f64,
    history: VecDeque<f64>,
}

/// Percentile by nearest rank of a sorted slice.
fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied().unwrap_or(f64::NAN)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let a = sorted.get((n - 1) / 2).copied().unwrap_or(0.0);
    let b = sorted.get(n / 2).copied().unwrap_or(0.0);
    0.5 * (a + b)
}

/// The aggregator: feed readings, receive batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregator {
    cfg: IotConfig,
    sensors: BTreeMap<String, SensorState>,
    pending: Vec<Output>,
}

impl Aggregator {
    /// New aggregator.
    ///
    /// # Errors
    /// Invalid settings.
    pub fn new(cfg: IotConfig) -> Result<Self> {
        let (size, slide) = cfg.window.size_slide();
        if size == 0 || slide == 0 || slide > size || size > MAX_TIME_MS {
            return Err(FusionError::Config("window: need 0 < slide ≤ size".into()));
        }
        if !(cfg.ewma_alpha > 0.0 && cfg.ewma_alpha <= 1.0 && cfg.ewma_threshold.is_finite() && cfg.robust_threshold.is_finite()) {
            return Err(FusionError::Config("ewma_alpha in (0,1], finite thresholds".into()));
        }
        if cfg.batch_size == 0 || cfg.robust_history < 3 || cfg.max_window_samples == 0 {
            return Err(FusionError::Config("batch_size ≥ 1, robust_history ≥ 3, max_window_samples ≥ 1".into()));
        }
        Ok(Self { cfg, sensors: BTreeMap::new(), pending: Vec::new() })
    }

    /// Settings.
    #[must_use]
    pub fn config(&self) -> &IotConfig {
        &self.cfg
    }

    /// Outputs waiting for a full batch.
    #[must_use]
    pub fn pending(&self) -> &[Output] {
        &self.pending
    }

    /// Ingests one reading; returns zero or more full batches.
    ///
    /// # Errors
    /// Non-finite value or a time earlier than the sensor's previous reading (state unchanged).
    pub fn ingest(&mut self, r: &Reading) -> Result<Vec<Vec<Output>>> {
        if !r.value.is_finite() {
            return Err(FusionError::NonFinite("reading value"));
        }
        if r.time_ms > MAX_TIME_MS {
            return Err(FusionError::Parse(format!("reading time {} ms out of range", r.time_ms)));
        }
        let (size, slide) = self.cfg.window.size_slide();
        let cfg = self.cfg;
        let st = self.sensors.entry(r.sensor.clone()).or_default();
        if let Some(last) = st.last_time
            && r.time_ms < last
        {
            #[allow(clippy::cast_precision_loss)]
            return Err(FusionError::OutOfOrder { time: r.time_ms as f64, last: last as f64 });
        }
        st.last_time = Some(r.time_ms);
        // close every window that ends at or before this reading
        let first_end = (r.time_ms / slide + 1) * slide;
        let mut end = *st.next_end.get_or_insert(first_end);
        while end <= r.time_ms {
            let start = end.saturating_sub(size);
            let mut vals: Vec<f64> = st.samples.iter().filter(|(t, _)| *t >= start && *t < end).map(|(_, v)| *v).collect();
            if !vals.is_empty() {
                vals.sort_by(f64::total_cmp);
                #[allow(clippy::cast_precision_loss)]
                let n = vals.len() as f64;
                self.pending.push(Output::Aggregate(WindowAggregate {
                    sensor: r.sensor.clone(),
                    start_ms: start,
                    end_ms: end,
                    count: vals.len() as u64,
                    mean: vals.iter().sum::<f64>() / n,
                    min: vals.first().copied().unwrap_or(f64::NAN),
                    max: vals.last().copied().unwrap_or(f64::NAN),
                    p95: nearest_rank(&vals, 0.95),
                }));
            }
            end += slide;
            // skip empty stretches quickly: the window [end - size, end) and every later one
            // hold no sample once the newest is before end - size (one exactly at the start
            // is inside)
            if st.samples.back().is_none_or(|(t, _)| *t + size < end) && end + slide <= r.time_ms {
                end = (r.time_ms / slide + 1) * slide;
            }
            let keep_from = end.saturating_sub(size);
            while st.samples.front().is_some_and(|(t, _)| *t < keep_from) {
                st.samples.pop_front();
            }
        }
        st.next_end = Some(end);
        st.samples.push_back((r.time_ms, r.value));
        while st.samples.len() > cfg.max_window_samples {
            st.samples.pop_front();
        }
        // anomaly detectors (scored against the state before this reading)
        st.count += 1;
        if st.count > cfg.warmup {
            let sd = st.ewma_var.sqrt();
            if sd > 0.0 {
                let z = (r.value - st.ewma_mean) / sd;
                if z.abs() > cfg.ewma_threshold {
                    self.pending.push(Output::Anomaly(Anomaly { sensor: r.sensor.clone(), time_ms: r.time_ms, value: r.value, kind: AnomalyKind::Ewma, score: z }));
                }
            }
            let mut h: Vec<f64> = st.history.iter().copied().collect();
            h.sort_by(f64::total_cmp);
            let med = median(&h);
            let mut dev: Vec<f64> = h.iter().map(|v| (v - med).abs()).collect();
            dev.sort_by(f64::total_cmp);
            let mad = median(&dev);
            if mad > 0.0 {
                let z = 0.6745 * (r.value - med) / mad;
                if z.abs() > cfg.robust_threshold {
                    self.pending.push(Output::Anomaly(Anomaly { sensor: r.sensor.clone(), time_ms: r.time_ms, value: r.value, kind: AnomalyKind::RobustZ, score: z }));
                }
            }
        }
        if st.count == 1 {
            st.ewma_mean = r.value;
            st.ewma_var = 0.0;
        } else {
            let d = r.value - st.ewma_mean;
            st.ewma_mean += cfg.ewma_alpha * d;
            st.ewma_var = (1.0 - cfg.ewma_alpha) * (st.ewma_var + cfg.ewma_alpha * d * d);
        }
        st.history.push_back(r.value);
        while st.history.len() > cfg.robust_history {
            st.history.pop_front();
        }
        Ok(self.take_batches(false))
    }

    /// Puts outputs taken from [`Self::ingest`] back at the head of the pending queue, in their
    /// order, for a caller that could not deliver them (the next batch carries them).
    pub fn requeue(&mut self, outputs: Vec<Output>) {
        self.pending.splice(0..0, outputs);
    }

    /// Returns everything pending as a final (possibly short) batch.
    pub fn flush(&mut self) -> Vec<Vec<Output>> {
        self.take_batches(true)
    }

    fn take_batches(&mut self, all: bool) -> Vec<Vec<Output>> {
        let mut out = Vec::new();
        while self.pending.len() >= self.cfg.batch_size {
            let rest = self.pending.split_off(self.cfg.batch_size);
            out.push(std::mem::replace(&mut self.pending, rest));
        }
        if all && !self.pending.is_empty() {
            out.push(std::mem::take(&mut self.pending));
        }
        out
    }

    /// Serialises the whole state (JSON bytes).
    ///
    /// # Errors
    /// [`FusionError::Store`].
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| FusionError::Store(e.to_string()))
    }

    /// Restores a state written by [`Aggregator::to_bytes`].
    ///
    /// # Errors
    /// [`FusionError::Store`] on corrupt data.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let a: Self = serde_json::from_slice(b).map_err(|e| FusionError::Store(e.to_string()))?;
        Self::new(a.cfg)?;
        Ok(a)
    }

    /// Saves the state under `key` with a TTL.
    ///
    /// # Errors
    /// Serialisation or store errors.
    pub fn save(&self, store: &mut dyn StateStore, key: &str, ttl_seconds: Option<u64>) -> Result<()> {
        store.set(key, &self.to_bytes()?, ttl_seconds)
    }

    /// Loads the state under `key`, or a fresh aggregator with `cfg` if absent/expired.
    ///
    /// # Errors
    /// Store errors or corrupt data.
    pub fn load_or_new(store: &mut dyn StateStore, key: &str, cfg: IotConfig) -> Result<Self> {
        match store.get(key)? {
            Some(b) => Self::from_bytes(&b),
            None => Self::new(cfg),
        }
    }
}

/// Key-value persistence the actor implements over the kv-cache provider.
pub trait StateStore {
    /// Value under `key`, `None` if absent or expired.
    ///
    /// # Errors
    /// Store failures as [`FusionError::Store`].
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `value` under `key`, expiring after `ttl_seconds` if given.
    ///
    /// # Errors
    /// Store failures.
    fn set(&mut self, key: &str, value: &[u8], ttl_seconds: Option<u64>) -> Result<()>;
    /// Removes `key`.
    ///
    /// # Errors
    /// Store failures.
    fn delete(&mut self, key: &str) -> Result<()>;
}

/// In-memory [`StateStore`] with TTL on a caller-driven clock (tests, single-process runs).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    now_s: u64,
    entries: HashMap<String, (Vec<u8>, Option<u64>)>,
}

impl MemoryStore {
    /// Empty store at time 0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Advances the store's clock.
    pub fn advance(&mut self, seconds: u64) {
        self.now_s = self.now_s.saturating_add(seconds);
    }
}

impl StateStore for MemoryStore {
    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        let now = self.now_s;
        if let Some((_, Some(exp))) = self.entries.get(key)
            && *exp <= now
        {
            self.entries.remove(key);
            return Ok(None);
        }
        Ok(self.entries.get(key).map(|(v, _)| v.clone()))
    }
    fn set(&mut self, key: &str, value: &[u8], ttl_seconds: Option<u64>) -> Result<()> {
        let exp = ttl_seconds.map(|t| self.now_s.saturating_add(t));
        self.entries.insert(key.to_string(), (value.to_vec(), exp));
        Ok(())
    }
    fn delete(&mut self, key: &str) -> Result<()> {
        self.entries.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(s: &str, t: u64, v: f64) -> Reading {
        Reading { sensor: s.into(), time_ms: t, value: v }
    }

    fn aggregates(batches: &[Vec<Output>]) -> Vec<WindowAggregate> {
        batches
            .iter()
            .flatten()
            .filter_map(|o| match o {
                Output::Aggregate(a) => Some(a.clone()),
                Output::Anomaly(_) => None,
            })
            .collect()
    }

    #[test]
    fn tumbling_window_statistics() {
        let cfg = IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        let mut out = Vec::new();
        for i in 0..20u32 {
            out.extend(a.ingest(&rd("t1", u64::from(i) * 50, f64::from(i + 1))).unwrap());
        }
        assert!(aggregates(&out).is_empty());
        out.extend(a.ingest(&rd("t1", 1000, 100.0)).unwrap());
        let aggs = aggregates(&out);
        assert_eq!(aggs.len(), 1);
        let w = &aggs[0];
        assert_eq!((w.start_ms, w.end_ms, w.count), (0, 1000, 20));
        assert_eq!((w.min, w.max, w.mean, w.p95), (1.0, 20.0, 10.5, 19.0));
        // a gap: the next reading closes [1000, 2000) only; empty windows are not reported
        let more = a.ingest(&rd("t1", 5500, 1.0)).unwrap();
        let aggs = aggregates(&more);
        assert_eq!(aggs.len(), 1);
        assert_eq!((aggs[0].start_ms, aggs[0].count, aggs[0].mean), (1000, 1, 100.0));
    }

    #[test]
    fn sliding_windows_overlap() {
        let cfg = IotConfig { window: Window::Sliding { size_ms: 1000, slide_ms: 500 }, batch_size: 1, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        let mut out = Vec::new();
        for i in 0..=20u64 {
            out.extend(a.ingest(&rd("s", i * 100, i as f64)).unwrap());
        }
        let aggs = aggregates(&out);
        // windows ending at 500, 1000, 1500, 2000
        let spans: Vec<_> = aggs.iter().map(|w| (w.start_ms, w.end_ms, w.count)).collect();
        assert_eq!(spans, vec![(0, 500, 5), (0, 1000, 10), (500, 1500, 10), (1000, 2000, 10)]);
        assert_eq!(aggs[2].mean, 9.5);
        assert_eq!(aggs[2].min, 5.0);
        assert_eq!(aggs[2].max, 14.0);
    }

    /// After a gap, every sliding window that holds the last sample is reported, including
    /// one that starts exactly at it; windows the gap leaves empty are not.
    #[test]
    fn a_gap_skips_only_empty_sliding_windows() {
        let cfg = IotConfig { window: Window::Sliding { size_ms: 1000, slide_ms: 500 }, batch_size: 1, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        let mut out = a.ingest(&rd("s", 500, 7.0)).unwrap();
        out.extend(a.ingest(&rd("s", 5000, 1.0)).unwrap());
        let spans: Vec<_> = aggregates(&out).iter().map(|w| (w.start_ms, w.end_ms, w.count)).collect();
        assert_eq!(spans, vec![(0, 1000, 1), (500, 1500, 1)]);
        // and the stream goes on from the reading that ended the gap
        out = a.ingest(&rd("s", 5500, 2.0)).unwrap();
        let spans: Vec<_> = aggregates(&out).iter().map(|w| (w.start_ms, w.end_ms, w.count)).collect();
        assert_eq!(spans, vec![(4500, 5500, 1)]);
    }

    /// Outputs handed back go out first, before what was queued after them.
    #[test]
    fn requeued_outputs_lead_the_next_batch() {
        let cfg = IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        a.ingest(&rd("s", 0, 1.0)).unwrap();
        let taken: Vec<Output> = a.ingest(&rd("s", 1000, 2.0)).unwrap().into_iter().flatten().collect();
        assert_eq!(aggregates(std::slice::from_ref(&taken)).len(), 1);
        a.requeue(taken);
        let next: Vec<Output> = a.ingest(&rd("s", 2000, 3.0)).unwrap().into_iter().flatten().collect();
        let spans: Vec<_> = aggregates(&[next]).iter().map(|w| (w.start_ms, w.end_ms)).collect();
        assert_eq!(spans, vec![(0, 1000), (1000, 2000)]);
    }

    #[test]
    fn anomalies_flagged_by_both_detectors() {
        let cfg = IotConfig { batch_size: 1000, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        for i in 0..200u64 {
            let v = 20.0 + ((i * 37 % 11) as f64 - 5.0) * 0.1;
            a.ingest(&rd("temp", i * 100, v)).unwrap();
        }
        assert!(a.pending().iter().all(|o| matches!(o, Output::Aggregate(_))), "no false alarms on normal data");
        a.ingest(&rd("temp", 20_000, 35.0)).unwrap();
        let kinds: Vec<_> = a
            .pending()
            .iter()
            .filter_map(|o| if let Output::Anomaly(x) = o { Some(x.kind) } else { None })
            .collect();
        assert!(kinds.contains(&AnomalyKind::Ewma) && kinds.contains(&AnomalyKind::RobustZ), "{kinds:?}");
    }

    #[test]
    fn batching_and_bad_input() {
        let cfg = IotConfig { window: Window::Tumbling { size_ms: 10 }, batch_size: 3, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        let mut batches = Vec::new();
        for i in 0..100u64 {
            batches.extend(a.ingest(&rd("x", i * 10, 1.0)).unwrap());
        }
        assert!(batches.iter().all(|b| b.len() == 3));
        assert_eq!(batches.len(), 33); // 99 closed windows
        assert_eq!(a.flush().concat().len(), 0);
        assert!(matches!(a.ingest(&rd("x", 5, 1.0)), Err(FusionError::OutOfOrder { .. })));
        assert!(matches!(a.ingest(&rd("x", 2000, f64::NAN)), Err(FusionError::NonFinite(_))));
        assert!(Aggregator::new(IotConfig { window: Window::Sliding { size_ms: 10, slide_ms: 20 }, ..IotConfig::default() }).is_err());
        assert!(Aggregator::from_bytes(b"{not json").is_err());
        assert!(a.ingest(&rd("x", u64::MAX, 1.0)).is_err());
    }

    #[test]
    fn state_survives_actor_replacement_through_store() {
        let cfg = IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, ..IotConfig::default() };
        let mut store = MemoryStore::new();
        // instance 1 sees the first half of a window, saves, and goes away
        let mut a = Aggregator::load_or_new(&mut store, "agg", cfg).unwrap();
        for i in 0..5u64 {
            a.ingest(&rd("s", i * 100, 1.0)).unwrap();
        }
        a.save(&mut store, "agg", Some(60)).unwrap();
        drop(a);
        // instance 2 continues the same window
        let mut b = Aggregator::load_or_new(&mut store, "agg", cfg).unwrap();
        for i in 5..10u64 {
            b.ingest(&rd("s", i * 100, 3.0)).unwrap();
        }
        let out = b.ingest(&rd("s", 1000, 0.0)).unwrap();
        let w = &aggregates(&out)[0];
        assert_eq!((w.count, w.mean, w.min, w.max), (10, 2.0, 1.0, 3.0));
        // TTL expiry drops the state
        b.save(&mut store, "agg", Some(60)).unwrap();
        store.advance(61);
        let c = Aggregator::load_or_new(&mut store, "agg", cfg).unwrap();
        assert!(c.pending().is_empty());
        assert_eq!(c, Aggregator::new(cfg).unwrap());
        store.set("k", b"v", None).unwrap();
        store.delete("k").unwrap();
        assert_eq!(store.get("k").unwrap(), None);
    }
}
