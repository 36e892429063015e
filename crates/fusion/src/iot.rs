//! IoT filter-and-aggregate: per-sensor tumbling/sliding windows (count, mean, min, max, p95),
//! EWMA and robust (median/MAD) z-score anomaly flags, batching of outputs, and serialisable
//! state behind a small [`StateStore`] trait so an actor can keep it in a TTL cache and be
//! replaced without losing open windows.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::{FusionError, Result};

/// Largest accepted reading time (ms): keeps window arithmetic far from `u64` overflow.
pub const MAX_TIME_MS: u64 = 1 << 60;

/// Largest accepted |value|. Sums of up to 2^64 such values and squares of their differences
/// stay finite, so no aggregate or detector state can overflow to ±∞ (which JSON cannot carry:
/// the stored state would no longer load).
pub const MAX_ABS_VALUE: f64 = 1e150;

/// Longest sensor id accepted (bytes): ids are keys of the stored state. Ids with control
/// characters, `"` or `\\` are refused too, so an id is stored as it is, never escaped.
pub const MAX_SENSOR_ID_BYTES: usize = 256;

/// A sensor id as a rejection echoes it: at most [`MAX_SENSOR_ID_BYTES`] (an id refused for its
/// length is cut at a character boundary), so one output stays small however long the id was.
fn clipped_id(id: &str) -> String {
    id.get(..id.floor_char_boundary(MAX_SENSOR_ID_BYTES)).unwrap_or_default().to_owned()
}

/// Largest `batch_size`, `robust_history` and `max_window_samples` accepted: bounds what one
/// sensor or one batch can hold.
pub const MAX_SETTING_COUNT: usize = 1 << 20;

/// Values remembered per sensor for its latest millisecond: a reading repeating one of them
/// (same time, same value) is a redelivery.
pub const MAX_SAME_TIME_VALUES: usize = 64;

/// Most windows one reading can fall into (`size / slide`, rounded up).
pub const MAX_WINDOWS_PER_READING: u64 = 1000;

/// Window shape (times in milliseconds). Tumbling = sliding with `slide == size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
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
    /// samples kept per sensor for the p95 (memory bound). Count, mean, min and max are exact
    /// whatever this is; past it the p95 is taken over the newest samples of the window (the
    /// aggregate says over how many in `p95_samples`)
    pub max_window_samples: usize,
    /// smallest spread the detectors assume (sensor units; set it to the sensor's resolution):
    /// a sensor that has read one constant value is flagged when it leaves it, instead of never
    /// (a zero MAD or EWMA deviation would make every score undefined)
    #[serde(default = "default_min_spread")]
    pub min_spread: f64,
    /// sensors tracked at once; a reading from one more is refused ([`FusionError::Capacity`])
    #[serde(default = "default_max_sensors")]
    pub max_sensors: usize,
    /// once [`Aggregator::set_now`] gave the clock: readings further than this ahead of it are
    /// refused, so one bad timestamp cannot put a sensor's later readings out of order
    #[serde(default = "default_max_lead_ms")]
    pub max_lead_ms: u64,
    /// samples kept for the p95 over all sensors together; past it the sensor holding the most
    /// gives up its oldest (memory bound of the whole state)
    #[serde(default = "default_max_total_samples")]
    pub max_total_samples: usize,
    /// a window is closed once the aggregator's newest reading time (any sensor) is this far
    /// past its end, even if its own sensor sent nothing newer: a sensor that stops still gets
    /// its last windows reported (looked at once per `slide` of that time). Its readings older
    /// than the end of a window so closed are refused as out of order.
    #[serde(default = "default_close_after_ms")]
    pub close_after_ms: u64,
    /// a sensor with no open window and no reading for this long (in the aggregator's newest
    /// reading time) is forgotten, detector history included, freeing its place
    #[serde(default = "default_idle_after_ms")]
    pub idle_after_ms: u64,
}

fn default_max_total_samples() -> usize {
    100_000
}

fn default_close_after_ms() -> u64 {
    5 * 60 * 1000
}

fn default_idle_after_ms() -> u64 {
    60 * 60 * 1000
}

fn default_max_lead_ms() -> u64 {
    5 * 60 * 1000
}

fn default_min_spread() -> f64 {
    1e-6
}

fn default_max_sensors() -> usize {
    10_000
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
            min_spread: default_min_spread(),
            max_sensors: default_max_sensors(),
            max_lead_ms: default_max_lead_ms(),
            max_total_samples: default_max_total_samples(),
            close_after_ms: default_close_after_ms(),
            idle_after_ms: default_idle_after_ms(),
        }
    }
}

impl IotConfig {
    /// Settings from TOML over `base`: the keys given replace `base`'s (a `window` table
    /// replaces the whole window), the others keep `base`'s values. Unknown keys are refused.
    ///
    /// # Errors
    /// [`FusionError::Config`] for TOML that does not parse, unknown keys, or settings
    /// [`Aggregator::new`] refuses.
    pub fn from_toml_over(base: &Self, text: &str) -> Result<Self> {
        // merged as JSON values: the component already carries serde_json, and toml's
        // serializer would add about 150 KB to it
        let bad = |e: &dyn std::fmt::Display| FusionError::Config(format!("IoT settings: {e}"));
        let given: toml::Table = toml::from_str(text).map_err(|e| bad(&e))?;
        let serde_json::Value::Object(mut merged) = serde_json::to_value(base).map_err(|e| bad(&e))? else {
            return Err(bad(&"settings are not a table"));
        };
        for (key, value) in given {
            if !merged.contains_key(&key) {
                return Err(bad(&format_args!("unknown key {key:?}")));
            }
            merged.insert(key, toml_to_json(value));
        }
        let cfg: Self = serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| bad(&e))?;
        Aggregator::new(cfg)?;
        Ok(cfg)
    }

    /// Open windows one sensor can hold at once: those a reading falls into, and the ones
    /// after them a newer reading opens before the older close.
    #[must_use]
    pub fn max_open_windows(&self) -> u64 {
        let (size, slide) = self.window.size_slide();
        size.div_ceil(slide.max(1)) + 1
    }

    /// An upper bound of the stored state's size (JSON bytes) with every limit reached:
    /// `max_sensors` sensors with ids of [`MAX_SENSOR_ID_BYTES`], full detector histories and
    /// open windows, `max_total_samples` samples, and `batch_size - 1` outputs waiting for a
    /// batch (what [`Aggregator::ingest_each`] leaves; a caller of [`Aggregator::ingest`] that
    /// requeues more has more).
    #[must_use]
    pub fn worst_case_state_bytes(&self) -> u64 {
        // longest JSON forms: an f64 24 bytes, a u64 20, plus names and separators
        const FIXED_PER_SENSOR: u64 = MAX_SENSOR_ID_BYTES as u64 + 400;
        const PER_VALUE: u64 = 25;
        const PER_WINDOW: u64 = 21 + 120;
        const PER_SAMPLE: u64 = 48;
        // an aggregate: type, the id, 4 times and counts, 5 floats, field names
        const PER_OUTPUT: u64 = MAX_SENSOR_ID_BYTES as u64 + 400;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let per_sensor = FIXED_PER_SENSOR
            .saturating_add(PER_VALUE.saturating_mul(count(self.robust_history).saturating_add(MAX_SAME_TIME_VALUES as u64)))
            .saturating_add(PER_WINDOW.saturating_mul(self.max_open_windows()));
        count(self.max_sensors)
            .saturating_mul(per_sensor)
            .saturating_add(PER_SAMPLE.saturating_mul(count(self.max_total_samples)))
            // outputs short of a full batch wait in the state
            .saturating_add(PER_OUTPUT.saturating_mul(count(self.batch_size).saturating_sub(1)))
            .saturating_add(1024)
    }
}

/// A TOML value as the JSON value serde reads the same way (dates as their text).
fn toml_to_json(v: toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        toml::Value::String(s) => J::String(s),
        toml::Value::Integer(i) => J::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(J::Null, J::Number),
        toml::Value::Boolean(b) => J::Bool(b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => J::Object(t.into_iter().map(|(k, v)| (k, toml_to_json(v))).collect()),
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
    /// samples the p95 was taken over: `count`, or fewer when the window held more than
    /// `max_window_samples` (then the newest ones)
    #[serde(default)]
    pub p95_samples: u64,
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

/// A reading [`Aggregator::ingest_each`] refused (the others in its batch were ingested).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// sensor id
    pub sensor: String,
    /// time (ms)
    pub time_ms: u64,
    /// why ([`FusionError`]'s text)
    pub reason: String,
}

/// One output item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// a closed window
    Aggregate(WindowAggregate),
    /// an anomaly flag
    Anomaly(Anomaly),
    /// a refused reading (only from [`Aggregator::ingest_each`], never queued)
    Rejected(Rejected),
}

/// Running statistics of one open window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct WindowAcc {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl WindowAcc {
    fn new(v: f64) -> Self {
        Self { count: 1, sum: v, min: v, max: v }
    }

    fn add(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct SensorState {
    /// newest samples of the open windows, oldest first (for the p95; capped)
    samples: VecDeque<(u64, f64)>,
    /// open windows that hold at least one reading, by end time
    #[serde(default)]
    windows: BTreeMap<u64, WindowAcc>,
    /// end of the first window not yet closed (state written before `windows` existed)
    #[serde(default, skip_serializing)]
    next_end: Option<u64>,
    last_time: Option<u64>,
    /// windows ending at or before this were closed by the aggregator's time: earlier readings
    /// are late
    #[serde(default)]
    closed_until: u64,
    /// values read at `last_time` (up to [`MAX_SAME_TIME_VALUES`]), to tell a redelivery from
    /// a second reading in the same millisecond
    #[serde(default)]
    last_values: Vec<f64>,
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

/// Adds a reading at `t` to every window that holds it and ends at or after `min_end`: the
/// windows `[end - size, end)` with `end` a multiple of `slide` in `(t, t + size]`.
fn add_to_windows(windows: &mut BTreeMap<u64, WindowAcc>, t: u64, v: f64, size: u64, slide: u64, min_end: u64) {
    let mut end = (t / slide + 1) * slide;
    while end <= t + size {
        if end >= min_end {
            windows.entry(end).and_modify(|a| a.add(v)).or_insert_with(|| WindowAcc::new(v));
        }
        end += slide;
    }
}

/// Closes the sensor's windows that end at or before `until`, oldest first, into `pending`, and
/// drops the samples no open window needs. Returns the end of the last window closed.
fn close_windows(sensor: &str, st: &mut SensorState, until: u64, size: u64, pending: &mut Vec<Output>) -> Option<u64> {
    let mut last = None;
    while let Some(entry) = st.windows.first_entry() {
        if *entry.key() > until {
            break;
        }
        let (end, acc) = entry.remove_entry();
        last = Some(end);
        let start = end.saturating_sub(size);
        let mut vals: Vec<f64> = st.samples.iter().filter(|(t, _)| *t >= start && *t < end).map(|(_, v)| *v).collect();
        vals.sort_by(f64::total_cmp);
        #[allow(clippy::cast_precision_loss)]
        let mean = acc.sum / acc.count as f64;
        pending.push(Output::Aggregate(WindowAggregate {
            sensor: sensor.to_owned(),
            start_ms: start,
            end_ms: end,
            count: acc.count,
            mean,
            min: acc.min,
            max: acc.max,
            // none of the window's samples kept (a tiny cap): its max bounds the p95
            p95: if vals.is_empty() { acc.max } else { nearest_rank(&vals, 0.95) },
            p95_samples: vals.len() as u64,
        }));
    }
    // samples before the oldest open window's start serve no window any more (none open: the
    // reading about to be added opens its own)
    let keep_from = st.windows.first_key_value().map_or(until, |(end, _)| end.saturating_sub(size));
    while st.samples.front().is_some_and(|(t, _)| *t < keep_from) {
        st.samples.pop_front();
    }
    last
}

/// The aggregator: feed readings, receive batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregator {
    cfg: IotConfig,
    sensors: BTreeMap<String, SensorState>,
    pending: Vec<Output>,
    /// newest reading time seen from any sensor (ms)
    #[serde(default)]
    watermark: u64,
    /// the watermark at which windows of quiet sensors are next looked at
    #[serde(default)]
    next_sweep: u64,
    /// samples held over all sensors (derived; recounted on load)
    #[serde(skip)]
    total_samples: usize,
    /// the caller's clock (ms, the readings' epoch); not stored
    #[serde(skip)]
    now_ms: Option<u64>,
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
        if size.div_ceil(slide) > MAX_WINDOWS_PER_READING {
            return Err(FusionError::Config(format!("window: size / slide must be at most {MAX_WINDOWS_PER_READING}")));
        }
        if cfg.batch_size == 0 || cfg.robust_history < 3 || cfg.max_window_samples == 0 || cfg.max_sensors == 0 {
            return Err(FusionError::Config("batch_size ≥ 1, robust_history ≥ 3, max_window_samples ≥ 1, max_sensors ≥ 1".into()));
        }
        if cfg.batch_size.max(cfg.robust_history).max(cfg.max_window_samples) > MAX_SETTING_COUNT {
            return Err(FusionError::Config(format!("batch_size, robust_history and max_window_samples: at most {MAX_SETTING_COUNT}")));
        }
        if !(cfg.min_spread.is_finite() && cfg.min_spread >= 1e-100) {
            return Err(FusionError::Config("min_spread: finite and at least 1e-100".into()));
        }
        if cfg.max_total_samples == 0 {
            return Err(FusionError::Config("max_total_samples ≥ 1".into()));
        }
        Ok(Self { cfg, sensors: BTreeMap::new(), pending: Vec::new(), watermark: 0, next_sweep: 0, total_samples: 0, now_ms: None })
    }

    /// Tells the aggregator the time now, in the readings' epoch (ms): until the next call,
    /// readings more than `max_lead_ms` after it are refused. Without it the aggregator takes
    /// every time as it comes (it has no clock of its own).
    pub fn set_now(&mut self, now_ms: u64) {
        self.now_ms = Some(now_ms);
    }

    /// Settings.
    #[must_use]
    pub fn config(&self) -> &IotConfig {
        &self.cfg
    }

    /// Switches to new settings (a changed deployment configuration). Same window shape: the
    /// open windows stay open and the new limits apply from now on (samples and detector
    /// histories are trimmed to them; past a lower `max_sensors` the least recently heard
    /// sensors are reported and forgotten). A new window shape closes every open window now,
    /// reporting what it holds so far (its `end_ms` may lie after its last reading), and the
    /// readings from here on go to windows of the new shape; none is counted twice. The first
    /// new windows may span times before the switch (they are aligned to the new slide), but
    /// they hold only readings from after it.
    ///
    /// # Errors
    /// Settings [`Aggregator::new`] refuses; the aggregator is then unchanged.
    pub fn reconfigure(&mut self, cfg: IotConfig) -> Result<()> {
        if cfg == self.cfg {
            return Ok(());
        }
        Self::new(cfg)?;
        let (size, _) = self.cfg.window.size_slide();
        // (a tumbling window and a sliding one of one slide are the same shape)
        if cfg.window.size_slide() != self.cfg.window.size_slide() {
            for (name, st) in &mut self.sensors {
                let _ = close_windows(name, st, u64::MAX, size, &mut self.pending);
                // (`closed_until` stays: the windows closed here end after the sensor's last
                // reading, and its next readings belong to windows of the new shape)
                st.samples.clear();
            }
            // the old shape's sweep time means nothing to the new one
            self.next_sweep = 0;
        }
        self.cfg = cfg;
        // fewer sensors allowed: the least recently heard are reported and forgotten
        let extra = self.sensors.len().saturating_sub(cfg.max_sensors);
        if extra > 0 {
            let (size, _) = cfg.window.size_slide();
            let mut by_age: Vec<(u64, String)> = self.sensors.iter().map(|(n, st)| (st.last_time.unwrap_or(0), n.clone())).collect();
            by_age.sort_unstable();
            for (_, name) in by_age.into_iter().take(extra) {
                if let Some(mut st) = self.sensors.remove(&name) {
                    let _ = close_windows(&name, &mut st, u64::MAX, size, &mut self.pending);
                }
            }
        }
        let mut total = 0;
        for st in self.sensors.values_mut() {
            while st.samples.len() > cfg.max_window_samples {
                st.samples.pop_front();
            }
            while st.history.len() > cfg.robust_history {
                st.history.pop_front();
            }
            total += st.samples.len();
        }
        self.total_samples = total;
        self.shed_samples();
        Ok(())
    }

    /// Outputs waiting for a full batch.
    #[must_use]
    pub fn pending(&self) -> &[Output] {
        &self.pending
    }

    /// Ingests one reading; returns zero or more full batches.
    ///
    /// # Errors
    /// The reading is refused and the state is unchanged when its value is non-finite or beyond
    /// ±[`MAX_ABS_VALUE`], its time is beyond [`MAX_TIME_MS`] or earlier than the sensor's
    /// previous reading ([`FusionError::OutOfOrder`]), it repeats the sensor's previous reading
    /// exactly, time and value (a redelivery: [`FusionError::DuplicateTimestamp`]), or it comes
    /// from a new sensor when `max_sensors` are tracked ([`FusionError::Capacity`]). Two
    /// different values in the same millisecond are both counted.
    pub fn ingest(&mut self, r: &Reading) -> Result<Vec<Vec<Output>>> {
        self.ingest_one(r)?;
        Ok(self.take_batches(false))
    }

    /// Ingests every reading it can, in order: one that [`Self::ingest`] would refuse is
    /// reported as an [`Output::Rejected`] at its place among the outputs, and the readings
    /// after it are still ingested. Returns the outputs of every batch filled on the way.
    pub fn ingest_each(&mut self, readings: &[Reading]) -> Vec<Output> {
        // full batches left by `reconfigure` or `requeue` leave first
        let mut out: Vec<Output> = self.take_batches(false).into_iter().flatten().collect();
        for r in readings {
            match self.ingest_one(r) {
                Ok(()) => out.extend(self.take_batches(false).into_iter().flatten()),
                Err(e) => out.push(Output::Rejected(Rejected { sensor: clipped_id(&r.sensor), time_ms: r.time_ms, reason: e.to_string() })),
            }
        }
        out
    }

    fn ingest_one(&mut self, r: &Reading) -> Result<()> {
        if !r.value.is_finite() {
            return Err(FusionError::NonFinite("reading value"));
        }
        if r.value.abs() > MAX_ABS_VALUE {
            return Err(FusionError::OutOfRange { what: "reading value", value: r.value, limit: MAX_ABS_VALUE });
        }
        if r.time_ms > MAX_TIME_MS {
            return Err(FusionError::Parse(format!("reading time {} ms out of range", r.time_ms)));
        }
        if r.sensor.len() > MAX_SENSOR_ID_BYTES {
            #[allow(clippy::cast_precision_loss)]
            return Err(FusionError::OutOfRange { what: "sensor id length (bytes)", value: r.sensor.len() as f64, limit: MAX_SENSOR_ID_BYTES as f64 });
        }
        if r.sensor.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
            return Err(FusionError::Parse(format!("sensor id {:?}: control characters, quotes and backslashes are not allowed", r.sensor)));
        }
        let (size, slide) = self.cfg.window.size_slide();
        let cfg = self.cfg;
        if let Some(now) = self.now_ms
            && r.time_ms > now.saturating_add(cfg.max_lead_ms)
        {
            #[allow(clippy::cast_precision_loss)]
            return Err(FusionError::OutOfRange { what: "reading time ahead of the clock (ms)", value: (r.time_ms - now) as f64, limit: cfg.max_lead_ms as f64 });
        }
        if !self.sensors.contains_key(&r.sensor) && self.sensors.len() >= cfg.max_sensors {
            return Err(FusionError::Capacity(format!("{} sensors tracked (max_sensors); {:?} refused", self.sensors.len(), r.sensor)));
        }
        let st = self.sensors.entry(r.sensor.clone()).or_default();
        #[allow(clippy::cast_precision_loss)]
        let secs = |ms: u64| ms as f64 / 1000.0;
        if r.time_ms < st.closed_until {
            return Err(FusionError::OutOfOrder { time: secs(r.time_ms), last: secs(st.closed_until) });
        }
        if let Some(last) = st.last_time {
            if r.time_ms < last {
                return Err(FusionError::OutOfOrder { time: secs(r.time_ms), last: secs(last) });
            }
            if r.time_ms == last && st.last_values.contains(&r.value) {
                return Err(FusionError::DuplicateTimestamp { sensor: r.sensor.clone(), time: secs(r.time_ms) });
            }
        }
        if st.last_time != Some(r.time_ms) {
            st.last_values.clear();
        }
        if st.last_values.len() < MAX_SAME_TIME_VALUES {
            st.last_values.push(r.value);
        }
        st.last_time = Some(r.time_ms);
        let held = st.samples.len();
        // close every window that ends at or before this reading, oldest first
        let _ = close_windows(&r.sensor, st, r.time_ms, size, &mut self.pending);
        add_to_windows(&mut st.windows, r.time_ms, r.value, size, slide, 0);
        st.samples.push_back((r.time_ms, r.value));
        while st.samples.len() > cfg.max_window_samples {
            st.samples.pop_front();
        }
        self.total_samples = (self.total_samples + st.samples.len()).saturating_sub(held);
        // anomaly detectors, scored against the state before this reading (none for a sensor's
        // first). A MAD of zero (over half the history one value) falls back to the mean
        // absolute deviation, as Iglewicz and Hoaglin advise; spreads below `min_spread` count as
        // `min_spread`, so a sensor that read one value all along is flagged when it leaves it
        // and every score is finite
        st.count += 1;
        if st.count > cfg.warmup && st.count > 1 {
            let sd = st.ewma_var.sqrt().max(cfg.min_spread);
            let z = (r.value - st.ewma_mean) / sd;
            if z.abs() > cfg.ewma_threshold {
                self.pending.push(Output::Anomaly(Anomaly { sensor: r.sensor.clone(), time_ms: r.time_ms, value: r.value, kind: AnomalyKind::Ewma, score: z }));
            }
            let mut h: Vec<f64> = st.history.iter().copied().collect();
            h.sort_by(f64::total_cmp);
            if !h.is_empty() {
                let med = median(&h);
                let mut dev: Vec<f64> = h.iter().map(|v| (v - med).abs()).collect();
                dev.sort_by(f64::total_cmp);
                let mad = median(&dev);
                #[allow(clippy::cast_precision_loss)]
                let z = if mad > 0.0 {
                    0.6745 * (r.value - med) / mad
                } else {
                    let mean_ad = dev.iter().sum::<f64>() / dev.len() as f64;
                    (r.value - med) / (1.253_314 * mean_ad).max(cfg.min_spread)
                };
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
        self.watermark = self.watermark.max(r.time_ms);
        if self.watermark >= self.next_sweep {
            self.sweep();
        }
        self.shed_samples();
        Ok(())
    }

    /// Closes the windows of every sensor that ended `close_after_ms` before the watermark and
    /// forgets sensors idle for `idle_after_ms`; runs once per `slide` of watermark.
    fn sweep(&mut self) {
        let (size, slide) = self.cfg.window.size_slide();
        let wm = self.watermark;
        let close_to = wm.saturating_sub(self.cfg.close_after_ms);
        let idle_to = wm.saturating_sub(self.cfg.idle_after_ms);
        let mut total = 0;
        for (name, st) in &mut self.sensors {
            if let Some(end) = close_windows(name, st, close_to, size, &mut self.pending) {
                st.closed_until = st.closed_until.max(end);
            }
            total += st.samples.len();
        }
        self.sensors.retain(|_, st| !st.windows.is_empty() || st.last_time.is_some_and(|t| t > idle_to));
        self.total_samples = if self.sensors.is_empty() { 0 } else { total };
        self.next_sweep = wm.saturating_add(slide);
    }

    /// Keeps the samples of all sensors within `max_total_samples`: the sensor holding the most
    /// gives up its oldest (its next p95 is then over fewer, as the aggregate says).
    fn shed_samples(&mut self) {
        while self.total_samples > self.cfg.max_total_samples {
            let Some(st) = self.sensors.values_mut().max_by_key(|st| st.samples.len()) else { break };
            if st.samples.pop_front().is_none() {
                break;
            }
            self.total_samples -= 1;
        }
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
        let mut a: Self = serde_json::from_slice(b).map_err(|e| FusionError::Store(e.to_string()))?;
        Self::new(a.cfg)?;
        // state written before windows kept running statistics: rebuild the open windows from
        // the samples (those before `next_end` had been reported)
        let (size, slide) = a.cfg.window.size_slide();
        for st in a.sensors.values_mut() {
            if let Some(next_end) = st.next_end.take()
                && st.windows.is_empty()
            {
                for &(t, v) in &st.samples {
                    add_to_windows(&mut st.windows, t, v, size, slide, next_end);
                }
            }
        }
        a.total_samples = a.sensors.values().map(|st| st.samples.len()).sum();
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

impl crate::persist::Persisted for Aggregator {
    fn from_stored(bytes: &[u8], max_bytes: usize) -> Result<Self> {
        if bytes.len() > max_bytes {
            return Err(FusionError::StateTooLarge { bytes: bytes.len(), limit: max_bytes });
        }
        Self::from_bytes(bytes).map_err(|e| FusionError::CorruptState(format!("aggregator state: {e}")))
    }

    fn to_stored(&self, max_bytes: usize) -> Result<Vec<u8>> {
        crate::persist::to_json_limited(self, max_bytes, "aggregator state")
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
                Output::Anomaly(_) | Output::Rejected(_) => None,
            })
            .collect()
    }

    #[test]
    fn settings_from_toml_keep_the_base_where_silent_and_refuse_unknown_keys() {
        let base = IotConfig { max_sensors: 500, max_total_samples: 40_000, ..IotConfig::default() };
        let cfg = IotConfig::from_toml_over(&base, "ewma_threshold = 5.0\nwindow = { kind = \"sliding\", size_ms = 60000, slide_ms = 5000 }").expect("valid");
        assert_eq!(cfg.window, Window::Sliding { size_ms: 60_000, slide_ms: 5_000 });
        assert!((cfg.ewma_threshold - 5.0).abs() < f64::EPSILON);
        assert_eq!((cfg.max_sensors, cfg.max_total_samples), (500, 40_000));
        assert_eq!(IotConfig::from_toml_over(&base, "").expect("empty"), base);
        for bad in ["max_sensor = 3", "window = { kind = \"sliding\", size_ms = 10, slide_ms = 20 }", "ewma_alpha = 0.0", "max_sensors = \"many\"", "window ="] {
            assert!(matches!(IotConfig::from_toml_over(&base, bad), Err(FusionError::Config(_))), "{bad}");
        }
    }

    #[test]
    fn worst_case_size_bounds_a_state_with_every_limit_reached() {
        let cfg = IotConfig {
            window: Window::Sliding { size_ms: 1000, slide_ms: 100 },
            robust_history: 12,
            max_sensors: 6,
            max_total_samples: 90,
            max_window_samples: 40,
            batch_size: 50,
            warmup: 0,
            ewma_threshold: 0.0,
            robust_threshold: 0.0,
            close_after_ms: u64::MAX / 4,
            ..IotConfig::default()
        };
        let mut agg = Aggregator::new(cfg).expect("valid");
        // the longest ids (two-byte characters, which JSON keeps unescaped), times near the
        // limit, 64 values in one millisecond, every detector firing so outputs wait
        let ids: Vec<String> = (0..6).map(|i| format!("{i}{}", "é".repeat((MAX_SENSOR_ID_BYTES - 1) / 2))).collect();
        assert!(ids.iter().all(|id| id.len() <= MAX_SENSOR_ID_BYTES));
        let base = MAX_TIME_MS - 1_000_000;
        let mut largest = 0;
        for k in 0..40_u64 {
            let mut batch = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let t = base + k * 37 + i as u64;
                for j in 0..=MAX_SAME_TIME_VALUES as u64 {
                    batch.push(rd(id, t, -1.234_567_890_123_456_7e-149 * (k * 100 + j + 1) as f64));
                }
            }
            let _ = agg.ingest_each(&batch);
            assert!(agg.pending().len() < cfg.batch_size);
            largest = largest.max(agg.to_bytes().expect("encodes").len() as u64);
        }
        assert!(agg.sensors.values().all(|st| st.last_values.len() == MAX_SAME_TIME_VALUES));
        assert!(largest <= cfg.worst_case_state_bytes(), "{largest} > {}", cfg.worst_case_state_bytes());
        assert!(largest * 2 > cfg.worst_case_state_bytes(), "a loose bound: {largest} vs {}", cfg.worst_case_state_bytes());
        // ids that would be escaped, or too long, are refused
        let long = "y".repeat(MAX_SENSOR_ID_BYTES + 1);
        assert!(matches!(agg.ingest(&rd(&long, base + 5000, 1.0)), Err(FusionError::OutOfRange { .. })));
        // a refusal echoes at most MAX_SENSOR_ID_BYTES of the id, cut at a character boundary
        let huge = "é".repeat(100_000);
        let out = agg.ingest_each(&[rd(&huge, base + 5000, 1.0)]);
        let [Output::Rejected(r)] = out.as_slice() else { panic!("{out:?}") };
        assert_eq!(r.sensor, "é".repeat(MAX_SENSOR_ID_BYTES / 2));
        assert!(r.reason.len() < 200, "{}", r.reason);
        for id in ["a\"b", "a\\b", "a\nb", "a\u{7f}"] {
            assert!(matches!(agg.ingest(&rd(id, base + 5000, 1.0)), Err(FusionError::Parse(_))), "{id:?}");
        }
        // settings whose bound would overflow are refused
        for bad in ["robust_history = 737869762948382001", "batch_size = 2000000", "window = { kind = \"tumbling\", size_ms = 10, slide_ms = 5 }"] {
            assert!(IotConfig::from_toml_over(&cfg, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reconfiguring_the_window_reports_open_windows_once_and_counts_every_reading() {
        let mut agg = Aggregator::new(IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, ..IotConfig::default() }).expect("valid");
        let mut out = Vec::new();
        for t in (0..2500).step_by(100) {
            out.extend(agg.ingest(&rd("a", t, 1.0)).expect("in order"));
        }
        let before = aggregates(&out).len();
        assert_eq!(before, 2, "[0,1000) and [1000,2000) closed");
        // same shape, lower limits: nothing closes, samples are trimmed
        agg.reconfigure(IotConfig { max_window_samples: 2, ..*agg.config() }).expect("valid");
        assert!(agg.pending().is_empty());
        assert!(agg.sensors.values().all(|st| st.samples.len() <= 2));
        // the same shape written as a sliding window that slides by its length: nothing closes
        agg.reconfigure(IotConfig { window: Window::Sliding { size_ms: 1000, slide_ms: 1000 }, ..*agg.config() }).expect("valid");
        assert!(agg.pending().is_empty());
        assert!(agg.sensors.values().all(|st| !st.samples.is_empty()));
        agg.reconfigure(IotConfig { window: Window::Tumbling { size_ms: 1000 }, ..*agg.config() }).expect("valid");
        agg.reconfigure(IotConfig { window: Window::Sliding { size_ms: 0, slide_ms: 0 }, ..*agg.config() }).expect_err("refused");
        assert_eq!(agg.config().window, Window::Tumbling { size_ms: 1000 });
        // a new shape: [2000,3000) is reported with its 5 readings, later ones go to 500 ms windows
        agg.reconfigure(IotConfig { window: Window::Tumbling { size_ms: 500 }, ..*agg.config() }).expect("valid");
        // the old shape's samples go with its windows (the new windows' p95 is their own)
        assert!(agg.sensors.values().all(|st| st.samples.is_empty()) && agg.total_samples == 0);
        out.extend(agg.flush());
        for t in (2500..4000).step_by(100) {
            out.extend(agg.ingest(&rd("a", t, 1.0)).expect("not late"));
        }
        out.extend(agg.ingest(&rd("a", 10_000, 1.0)).expect("closes the rest"));
        let all = aggregates(&out);
        let spans: Vec<(u64, u64, u64)> = all.iter().map(|a| (a.start_ms, a.end_ms, a.count)).collect();
        assert_eq!(spans, vec![(0, 1000, 10), (1000, 2000, 10), (2000, 3000, 5), (2500, 3000, 5), (3000, 3500, 5), (3500, 4000, 5)]);
        assert_eq!(all.iter().map(|a| a.count).sum::<u64>(), 40, "every reading before t = 10 s counted once");
        // fewer sensors allowed: the least recently heard is reported and forgotten
        agg.ingest(&rd("b", 10_100, 2.0)).expect("a second sensor");
        agg.ingest(&rd("c", 10_200, 3.0)).expect("a third");
        agg.reconfigure(IotConfig { max_sensors: 2, ..*agg.config() }).expect("valid");
        let left: Vec<&String> = agg.sensors.keys().collect();
        assert_eq!(left, ["b", "c"]);
        let reported = aggregates(&agg.flush());
        assert_eq!(reported.iter().map(|a| (a.sensor.as_str(), a.count)).collect::<Vec<_>>(), vec![("a", 1)]);
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

    /// Count, mean, min and max stay exact when the window holds more readings than samples are
    /// kept; the p95 says how many samples it saw.
    #[test]
    fn window_statistics_are_exact_past_the_sample_cap() {
        let cfg = IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, max_window_samples: 10, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        for i in 0..100u64 {
            a.ingest(&rd("s", i * 10, i as f64)).unwrap();
        }
        let w = aggregates(&a.ingest(&rd("s", 1000, 0.0)).unwrap())[0].clone();
        assert_eq!((w.count, w.min, w.max, w.mean), (100, 0.0, 99.0, 49.5));
        // over the newest ten (90..=99): nearest rank 10 of 10
        assert_eq!((w.p95_samples, w.p95), (10, 99.0));
    }

    /// A sensor that has read one value all along is flagged when it leaves it, by both
    /// detectors, with finite scores; the value it keeps reading is not.
    #[test]
    fn a_constant_sensor_is_flagged_when_it_changes() {
        let mut a = Aggregator::new(IotConfig { batch_size: 1000, ..IotConfig::default() }).unwrap();
        for i in 0..50u64 {
            a.ingest(&rd("door", i * 100, 0.0)).unwrap();
        }
        assert!(a.pending().is_empty());
        a.ingest(&rd("door", 5000, 1.0)).unwrap();
        let flags: Vec<&Anomaly> = a.pending().iter().filter_map(|o| if let Output::Anomaly(x) = o { Some(x) } else { None }).collect();
        assert_eq!(flags.len(), 2, "{flags:?}");
        assert!(flags.iter().all(|f| f.score.is_finite() && f.score > 0.0));
        assert!(Aggregator::new(IotConfig { min_spread: 0.0, ..IotConfig::default() }).is_err());
    }

    /// A coarse sensor that mostly reads one value (MAD zero) is not flagged for its usual
    /// other value; with no warm-up the first reading is not scored against nothing.
    #[test]
    fn a_coarse_sensor_raises_no_false_alarms() {
        let mut a = Aggregator::new(IotConfig { batch_size: 1000, warmup: 0, ..IotConfig::default() }).unwrap();
        a.ingest(&rd("t", 0, 20.0)).unwrap();
        assert!(a.pending().is_empty(), "first reading flagged: {:?}", a.pending());
        for i in 1..200u64 {
            // 20.0 five times out of eight, 20.1 otherwise
            let v = if i % 8 < 5 { 20.0 } else { 20.1 };
            a.ingest(&rd("t", i * 100, v)).unwrap();
        }
        // (while the history is still all 20.0, the first 20.1s are news; past that, none is)
        let robust: Vec<&Output> =
            a.pending().iter().filter(|o| matches!(o, Output::Anomaly(x) if x.kind == AnomalyKind::RobustZ && x.time_ms >= 2_000)).collect();
        assert!(robust.is_empty(), "{robust:?}");
        a.ingest(&rd("t", 20_000, 25.0)).unwrap();
        assert!(a.pending().iter().any(|o| matches!(o, Output::Anomaly(x) if x.kind == AnomalyKind::RobustZ && x.value == 25.0)));
    }

    /// Values whose sums or squares could overflow are refused, so stored state always loads.
    #[test]
    fn huge_values_are_refused_and_state_stays_loadable() {
        let mut a = Aggregator::new(IotConfig { batch_size: 1000, warmup: 0, ..IotConfig::default() }).unwrap();
        a.ingest(&rd("s", 0, 1.0)).unwrap();
        let before = a.clone();
        assert!(matches!(a.ingest(&rd("s", 1, 1e200)), Err(FusionError::OutOfRange { .. })));
        assert_eq!(a, before);
        // the largest accepted values, both signs, then a window close: all finite
        a.ingest(&rd("s", 2, MAX_ABS_VALUE)).unwrap();
        a.ingest(&rd("s", 3, -MAX_ABS_VALUE)).unwrap();
        a.ingest(&rd("s", 10_000, MAX_ABS_VALUE)).unwrap();
        let back = Aggregator::from_bytes(&a.to_bytes().unwrap()).unwrap();
        assert_eq!(back, a);
    }

    /// A redelivered reading (same time and value as the sensor's last) is refused; another
    /// value in the same millisecond counts.
    #[test]
    fn redelivered_readings_are_not_counted_twice() {
        let mut a = Aggregator::new(IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, ..IotConfig::default() }).unwrap();
        a.ingest(&rd("s", 100, 1.0)).unwrap();
        assert!(matches!(a.ingest(&rd("s", 100, 1.0)), Err(FusionError::DuplicateTimestamp { .. })));
        a.ingest(&rd("s", 100, 2.0)).unwrap();
        // the pair resent: both refused
        assert!(matches!(a.ingest(&rd("s", 100, 1.0)), Err(FusionError::DuplicateTimestamp { .. })));
        assert!(matches!(a.ingest(&rd("s", 100, 2.0)), Err(FusionError::DuplicateTimestamp { .. })));
        let w = aggregates(&a.ingest(&rd("s", 1000, 0.0)).unwrap())[0].clone();
        assert_eq!((w.count, w.mean), (2, 1.5));
    }

    /// `ingest_each` refuses the bad readings of a batch in place and ingests the rest; a
    /// resent overlapping batch adds only what is new.
    #[test]
    fn ingest_each_keeps_the_good_readings_of_a_batch() {
        let mut a = Aggregator::new(IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, ..IotConfig::default() }).unwrap();
        let first: Vec<Reading> = (0..5).map(|i| rd("s", i * 100, 1.0)).collect();
        assert!(a.ingest_each(&first).is_empty());
        // resent with two more, one of them NaN
        let mut second = first.clone();
        second.push(rd("s", 500, f64::NAN));
        second.push(rd("s", 600, 3.0));
        let out = a.ingest_each(&second);
        let rejected: Vec<u64> = out.iter().filter_map(|o| if let Output::Rejected(r) = o { Some(r.time_ms) } else { None }).collect();
        assert_eq!(rejected, vec![0, 100, 200, 300, 400, 500]);
        let out = a.ingest_each(&[rd("s", 1000, 0.0)]);
        let w = &aggregates(&[out])[0];
        assert_eq!((w.count, w.mean), (6, 8.0 / 6.0));
    }

    #[test]
    fn sensors_beyond_the_limit_are_refused() {
        let mut a = Aggregator::new(IotConfig { max_sensors: 2, ..IotConfig::default() }).unwrap();
        a.ingest(&rd("a", 0, 1.0)).unwrap();
        a.ingest(&rd("b", 0, 1.0)).unwrap();
        assert!(matches!(a.ingest(&rd("c", 0, 1.0)), Err(FusionError::Capacity(_))));
        a.ingest(&rd("a", 1, 1.0)).unwrap();
        assert!(Aggregator::new(IotConfig { window: Window::Sliding { size_ms: 10_000, slide_ms: 1 }, ..IotConfig::default() }).is_err());
    }

    /// State stored before windows kept running statistics (samples + `next_end`) loads with
    /// its open window rebuilt from the samples.
    #[test]
    fn state_of_the_previous_format_loads() {
        let cfg = IotConfig { window: Window::Sliding { size_ms: 1000, slide_ms: 500 }, batch_size: 1, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        for i in 0..8u64 {
            a.ingest(&rd("s", i * 100, i as f64)).unwrap();
        }
        // windows ending at 500 are closed; open: [0, 1000) and [500, 1500)
        let mut v: serde_json::Value = serde_json::from_slice(&a.to_bytes().unwrap()).unwrap();
        let st = v["sensors"]["s"].as_object_mut().unwrap();
        st.remove("windows");
        st.remove("last_values");
        st.insert("next_end".into(), serde_json::json!(1000));
        let mut old = Aggregator::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap();
        let spans = |agg: &mut Aggregator| {
            agg.ingest_each(&[rd("s", 2000, 0.0)])
                .into_iter()
                .filter_map(|o| if let Output::Aggregate(w) = o { Some((w.start_ms, w.end_ms, w.count, w.mean)) } else { None })
                .collect::<Vec<_>>()
        };
        assert_eq!(spans(&mut old), spans(&mut a));
        assert_eq!(spans(&mut a.clone()).len(), 0);
    }

    /// Two instances updating one stored aggregator through compare-and-swap: the second
    /// writer's update is re-applied on top of the first's, so both readings count.
    #[test]
    fn concurrent_updates_through_compare_and_swap_lose_nothing() {
        use crate::persist::{CasOutcome, MemoryVersionedStore, PersistOptions, Persisted, Versioned, VersionedStore, update_stored};
        /// Lets another instance write once, between this one's read and its swap.
        struct Racy {
            inner: MemoryVersionedStore,
            other: Option<Reading>,
        }
        impl VersionedStore for Racy {
            fn get_versioned(&mut self, key: &str) -> Result<Option<Versioned>> {
                self.inner.get_versioned(key)
            }
            fn set_versioned(&mut self, key: &str, value: &[u8], ttl: Option<u64>) -> Result<u64> {
                self.inner.set_versioned(key, value, ttl)
            }
            fn compare_and_swap(&mut self, key: &str, expected: Option<u64>, value: &[u8], ttl: Option<u64>) -> Result<CasOutcome> {
                if let Some(r) = self.other.take() {
                    let opts = PersistOptions::default();
                    update_stored(&mut self.inner, key, &opts, || Aggregator::new(cfg()), |a| a.ingest(&r))?.0?;
                }
                self.inner.compare_and_swap(key, expected, value, ttl)
            }
        }
        fn cfg() -> IotConfig {
            IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, ..IotConfig::default() }
        }
        let mut store = Racy { inner: MemoryVersionedStore::new(), other: Some(rd("s", 100, 10.0)) };
        let opts = PersistOptions::default();
        let (res, events) = update_stored(&mut store, "iot/x", &opts, || Aggregator::new(cfg()), |a| a.ingest(&rd("s", 200, 20.0))).unwrap();
        res.unwrap();
        assert_eq!(events.conflicts, 1);
        let (out, _) = update_stored(&mut store, "iot/x", &opts, || Aggregator::new(cfg()), |a| a.ingest(&rd("s", 1000, 0.0))).unwrap();
        let w = &aggregates(&out.unwrap())[0];
        assert_eq!((w.count, w.mean), (2, 15.0));
        // oversize and corrupt state: typed errors from the codec
        let a = Aggregator::new(cfg()).unwrap();
        assert!(matches!(a.to_stored(10), Err(FusionError::StateTooLarge { .. })));
        assert!(matches!(Aggregator::from_stored(b"{}", 100), Err(FusionError::CorruptState(_))));
    }

    /// With a clock, a reading far ahead of it is refused and the sensor goes on normally.
    #[test]
    fn a_reading_from_the_future_does_not_block_its_sensor() {
        let mut a = Aggregator::new(IotConfig { window: Window::Tumbling { size_ms: 1000 }, batch_size: 1, ..IotConfig::default() }).unwrap();
        a.set_now(10_000);
        a.ingest(&rd("s", 9_000, 1.0)).unwrap();
        assert!(matches!(a.ingest(&rd("s", 10_000 + 300_001, 1.0)), Err(FusionError::OutOfRange { .. })));
        a.ingest(&rd("s", 10_000 + 300_000, 2.0)).unwrap();
        // the clock is not part of the stored state
        let back = Aggregator::from_bytes(&a.to_bytes().unwrap()).unwrap();
        assert!(back.now_ms.is_none());
    }

    /// A sensor that stops still gets its last window reported once the other sensors' time is
    /// `close_after_ms` past its end; its later reading into that window is refused; after
    /// `idle_after_ms` it is forgotten and its place is free.
    #[test]
    fn quiet_sensors_get_their_windows_closed_and_are_forgotten() {
        let cfg = IotConfig {
            window: Window::Tumbling { size_ms: 1000 },
            batch_size: 1,
            close_after_ms: 5000,
            idle_after_ms: 20_000,
            max_sensors: 2,
            ..IotConfig::default()
        };
        let mut a = Aggregator::new(cfg).unwrap();
        let mut out = a.ingest(&rd("quiet", 100, 7.0)).unwrap();
        // (looked at once per slide of that time: by 6500 at the latest)
        for t in (0..=6500).step_by(500) {
            out.extend(a.ingest(&rd("busy", t, 1.0)).unwrap());
        }
        let quiet: Vec<_> = aggregates(&out).into_iter().filter(|w| w.sensor == "quiet").map(|w| (w.start_ms, w.end_ms, w.count, w.mean)).collect();
        assert_eq!(quiet, vec![(0, 1000, 1, 7.0)]);
        assert!(matches!(a.ingest(&rd("quiet", 900, 1.0)), Err(FusionError::OutOfOrder { .. })));
        a.ingest(&rd("quiet", 1200, 1.0)).unwrap();
        // both places taken; once "quiet" is idle long enough a third sensor gets its place
        assert!(matches!(a.ingest(&rd("third", 6000, 1.0)), Err(FusionError::Capacity(_))));
        for t in (7000..=30_000).step_by(500) {
            a.ingest(&rd("busy", t, 1.0)).unwrap();
        }
        a.ingest(&rd("third", 30_000, 1.0)).unwrap();
        // the stored form round-trips, sample count included
        let back = Aggregator::from_bytes(&a.to_bytes().unwrap()).unwrap();
        assert_eq!(back, a);
    }

    /// Past `max_total_samples` the sensor holding the most samples gives up its oldest; counts
    /// and means stay exact.
    #[test]
    fn the_sample_budget_is_shared_and_counts_stay_exact() {
        let cfg = IotConfig { window: Window::Tumbling { size_ms: 10_000 }, batch_size: 1, max_total_samples: 30, ..IotConfig::default() };
        let mut a = Aggregator::new(cfg).unwrap();
        for i in 0..5u64 {
            a.ingest(&rd("slow", i * 1000, 2.0)).unwrap();
        }
        for i in 0..100u64 {
            a.ingest(&rd("fast", i * 10, f64::from(u32::try_from(i).unwrap()))).unwrap();
        }
        assert_eq!(a.total_samples, 30);
        let mut out = a.ingest(&rd("slow", 10_000, 0.0)).unwrap();
        out.extend(a.ingest(&rd("fast", 10_000, 0.0)).unwrap());
        let w: Vec<_> = aggregates(&out).into_iter().map(|w| (w.sensor, w.count, w.mean, w.p95_samples)).collect();
        assert_eq!(w, vec![("slow".to_owned(), 5, 2.0, 5), ("fast".to_owned(), 100, 49.5, 25)]);
    }
}
