//! The sensor-fusion actor: a thin adapter between `edgecell:fusion` (and NATS messages) and
//! the `edgecell-fusion` crate.
//!
//! - A localizer's complete state (filter state and covariance, times, per-sensor baselines,
//!   GNSS origin, counters, configuration) lives in the cache provider under
//!   `fusion`/`localizer/<filter>`, written after every measurement with compare-and-swap on the
//!   entry's version (read → apply → CAS; on a conflict re-read and re-apply, a bounded number of
//!   times, then a `store` error). A wasmCloud 1.x host runs every message in a fresh instance,
//!   possibly several at once: each continues the same filter. An instance that still holds the
//!   version it wrote itself (the embedded host keeps instances) skips the read and the decode.
//!   The state expires after `localizer.state_ttl_s` seconds without traffic (`wasi:config`,
//!   default 3600, `0` = never). Corrupt or oversize stored state is replaced by a fresh filter
//!   and counted in `fusion_state_resets_total`.
//! - Trackers (`tracker/<id>`) and IoT aggregators (`iot/<site>`) are written to the cache after
//!   every call with the same compare-and-swap, so a replacement instance continues exactly
//!   where the last one stopped and concurrent instances lose no update. A tracker created
//!   anew (first use, expiry, corrupt state) numbers its tracks from the wall clock, so it
//!   does not reuse the ids of the one it replaces. IoT state is per NATS site
//!   (`iot/site/<site>`), and `iot/call` for calls through `edgecell:fusion/iot`. Its settings
//!   (window shape, detector thresholds, limits) come from `wasi:config` `iot.<site>` or `iot`
//!   (TOML over the actor's defaults), read per message: a stored aggregator follows a changed
//!   configuration. Outputs over `max-publish-bytes` (default 900 KiB) go out as several JSON
//!   arrays.
//! - Filters not configured explicitly are created from `wasi:config` keys `filter.<id>` (a
//!   preset name or a TOML text).

// The generated guest glue is FFI with the component ABI and needs `unsafe`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "edgecell:actors/sensor-fusion",
        generate_all,
    });
}

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use bindings::edgecell::cache::store as cache;
use bindings::edgecell::metrics::recorder::{self, Label, MetricKind};
use bindings::exports::edgecell::fusion::estimator::{
    self, FusionError as WitError, ImuSample, Measurement as WitMeasurement, OdometrySample, SensorReading, StateEstimate, UpdateReport,
    Vector3,
};
use bindings::exports::edgecell::fusion::{iot as wit_iot, tracking as wit_tracking};
use bindings::exports::wasmcloud::messaging::handler::Guest as Handler;
use bindings::wasmcloud::messaging::consumer;
use bindings::wasmcloud::messaging::types::BrokerMessage;
use edgecell_fusion::iot::{Aggregator, IotConfig, Output, Reading, StateStore};
use edgecell_fusion::persist::{Persisted, update_stored};
use edgecell_fusion::localizer::{Header, ImuMessage, NavSatFixMessage, OdometryMessage};
use edgecell_fusion::persist::{CasOutcome, DEFAULT_STATE_TTL_S, PersistEvents, Versioned, VersionedStore};
use edgecell_fusion::tracker::{Tracker, TrackerConfig};
use edgecell_fusion::wire::{ScanMessage, SensorEnvelope, StateMessage, WireMessage};
use edgecell_fusion::{CachedLocalizer, FusionError, Localizer, LocalizerConfig, PersistOptions};

const NS: &str = "fusion";
/// How long tracker and aggregator state survives without traffic.
const STATE_TTL_S: u64 = 3600;
/// `wasi:config` key: seconds a localizer's state survives without traffic (`0`: no expiry).
const LOCALIZER_TTL_KEY: &str = "localizer.state_ttl_s";

struct Actor;

thread_local! {
    /// The localizers this instance holds, with the cache version each corresponds to.
    static FILTERS: RefCell<BTreeMap<String, CachedLocalizer>> = const { RefCell::new(BTreeMap::new()) };
    /// Persistence limits, resolved from `wasi:config` on first use.
    static PERSIST: Cell<Option<PersistOptions>> = const { Cell::new(None) };
    static NIS_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

fn err(e: FusionError) -> WitError {
    match e {
        FusionError::NonFinite(f) => WitError::NonFinite(f.to_owned()),
        FusionError::NotPositiveDefinite(f) => WitError::NotPositiveDefinite(f.to_owned()),
        FusionError::OutOfOrder { time, last } => WitError::OutOfOrder(secs_to_ns(last - time)),
        FusionError::DuplicateTimestamp { time, .. } => WitError::DuplicateTimestamp(secs_to_ns(time)),
        FusionError::UnknownFrame(f) => WitError::UnknownFrame(f),
        FusionError::UnknownSensor(s) => WitError::UnknownSensor(s),
        FusionError::Store(s) => WitError::Store(s),
        FusionError::Parse(s) => WitError::Parse(s),
        FusionError::UnknownFilter(f) => WitError::UnknownFilter(f),
        // a finite value the computation cannot take: the closest WIT case is bad input
        e @ FusionError::OutOfRange { .. } => WitError::Parse(e.to_string()),
        e @ (FusionError::CorruptState(_)
        | FusionError::StateTooLarge { .. }
        | FusionError::StateFormat { .. }
        | FusionError::StateConflict { .. }) => WitError::Store(e.to_string()),
        other => WitError::InvalidConfig(other.to_string()),
    }
}

fn secs_to_ns(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        // saturating float → int conversion is the intent
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ns = (s * 1e9) as u64;
        ns
    } else {
        0
    }
}

#[allow(clippy::cast_precision_loss)]
fn ns_to_secs(ns: u64) -> f64 {
    ns as f64 * 1e-9
}

fn count(name: &str, labels: &[(&str, &str)]) {
    count_n(name, labels, 1);
}

fn count_n(name: &str, labels: &[(&str, &str)], n: u32) {
    let labels: Vec<Label> = labels.iter().map(|(k, v)| Label { key: (*k).into(), value: (*v).into() }).collect();
    record(recorder::Update::CounterAdd(recorder::Sample { name: name.into(), labels, value: f64::from(n) }));
}

fn observe_nis(nis: f64) {
    if !NIS_REGISTERED.get() {
        let kind = MetricKind::Histogram(vec![0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0]);
        let help = "Normalised innovation squared per update".into();
        record(recorder::Update::Register(recorder::Registration { name: "fusion_nis".into(), help, kind }));
        NIS_REGISTERED.set(true);
    }
    record(recorder::Update::HistogramObserve(recorder::Sample { name: "fusion_nis".into(), labels: Vec::new(), value: nis }));
}

// Metrics are queued while an export runs and recorded with one `record-batch` call when its
// `FlushMetrics` guard drops (see edgecell-actor-metrics); best effort.
edgecell_actor_metrics::buffered_metrics!();

/// Counts the exceptional things keeping a localizer in the cache took: conflicts and resets.
/// (Not the decodes: on a wasmCloud host every message decodes, and a metric call per message
/// is a provider round trip there.)
fn record_persist_events(filter: &str, ev: &PersistEvents) {
    if ev.conflicts > 0 {
        count_n("fusion_state_conflicts_total", &[("filter", filter)], ev.conflicts);
    }
    for r in &ev.resets {
        count("fusion_state_resets_total", &[("filter", filter), ("reason", r.as_str())]);
    }
}

/// The cache as the fusion crate's state store.
struct CacheStore;

impl StateStore for CacheStore {
    fn get(&mut self, key: &str) -> edgecell_fusion::Result<Option<Vec<u8>>> {
        cache::get(NS, key).map(|e| e.map(|e| e.value)).map_err(|e| FusionError::Store(format!("{e:?}")))
    }

    fn set(&mut self, key: &str, value: &[u8], ttl_seconds: Option<u64>) -> edgecell_fusion::Result<()> {
        cache::set(NS, key, value, ttl_seconds.map(|s| s.saturating_mul(1000))).map(|_| ()).map_err(|e| FusionError::Store(format!("{e:?}")))
    }

    fn delete(&mut self, key: &str) -> edgecell_fusion::Result<()> {
        cache::delete(NS, key).map(|_| ()).map_err(|e| FusionError::Store(format!("{e:?}")))
    }
}

fn ttl_ms(ttl_seconds: Option<u64>) -> Option<u64> {
    ttl_seconds.map(|s| s.saturating_mul(1000))
}

impl VersionedStore for CacheStore {
    fn get_versioned(&mut self, key: &str) -> edgecell_fusion::Result<Option<Versioned>> {
        cache::get(NS, key)
            .map(|e| e.map(|e| Versioned { value: e.value, version: e.version }))
            .map_err(|e| FusionError::Store(format!("{e:?}")))
    }

    fn set_versioned(&mut self, key: &str, value: &[u8], ttl_seconds: Option<u64>) -> edgecell_fusion::Result<u64> {
        cache::set(NS, key, value, ttl_ms(ttl_seconds)).map_err(|e| FusionError::Store(format!("{e:?}")))
    }

    fn compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<u64>,
        value: &[u8],
        ttl_seconds: Option<u64>,
    ) -> edgecell_fusion::Result<CasOutcome> {
        match cache::compare_and_swap(NS, key, expected, value, ttl_ms(ttl_seconds)) {
            Ok(cache::CasOutcome::Swapped(v)) => Ok(CasOutcome::Swapped(v)),
            Ok(cache::CasOutcome::Conflict(v)) => Ok(CasOutcome::Conflict(v)),
            Err(e) => Err(FusionError::Store(format!("{e:?}"))),
        }
    }
}

/// Persistence limits: the TTL from `wasi:config` (read once per instance), the crate's defaults
/// for the rest.
fn persist_options() -> Result<PersistOptions, WitError> {
    if let Some(o) = PERSIST.get() {
        return Ok(o);
    }
    let ttl_seconds = match bindings::wasi::config::store::get(LOCALIZER_TTL_KEY) {
        Ok(Some(v)) => match v.trim().parse::<u64>() {
            Ok(0) => None,
            Ok(s) => Some(s),
            Err(_) => return Err(WitError::InvalidConfig(format!("{LOCALIZER_TTL_KEY} = {v:?}: expected whole seconds"))),
        },
        _ => Some(DEFAULT_STATE_TTL_S),
    };
    let o = PersistOptions { ttl_seconds, ..PersistOptions::default() };
    PERSIST.set(Some(o));
    Ok(o)
}

fn state_key(filter: &str) -> String {
    format!("localizer/{filter}")
}

fn parse_config(text: &str) -> Result<LocalizerConfig, FusionError> {
    if edgecell_fusion::PRESET_NAMES.contains(&text.trim()) {
        edgecell_fusion::preset(text.trim())
    } else {
        LocalizerConfig::from_toml(text)
    }
}

/// The filter's configuration: what `configure` stored, else `wasi:config` `filter.<id>`.
fn stored_config(filter: &str) -> Result<Option<String>, FusionError> {
    let key = format!("filter-config/{filter}");
    if let Some(v) = CacheStore.get(&key)? {
        return Ok(Some(String::from_utf8_lossy(&v).into_owned()));
    }
    Ok(bindings::wasi::config::store::get(&format!("filter.{filter}")).ok().flatten())
}

/// A fresh localizer from the filter's configuration (nothing stored yet, expired, or reset).
fn new_localizer(filter: &str) -> Result<Localizer, FusionError> {
    let Some(text) = stored_config(filter)? else {
        return Err(FusionError::UnknownFilter(filter.to_owned()));
    };
    Localizer::new(parse_config(&text)?)
}

/// Runs `f` on this instance's slot for `filter`; a slot left holding nothing is dropped again,
/// so junk filter ids do not accumulate.
fn with_slot<R>(filter: &str, f: impl FnOnce(&mut CachedLocalizer) -> R) -> R {
    FILTERS.with(|filters| {
        let mut filters = filters.borrow_mut();
        if let Some(slot) = filters.get_mut(filter) {
            let out = f(slot);
            if slot.held().is_none() {
                filters.remove(filter);
            }
            return out;
        }
        let mut slot = CachedLocalizer::new();
        let out = f(&mut slot);
        if slot.held().is_some() {
            filters.insert(filter.to_owned(), slot);
        }
        out
    })
}

/// Applies `op` to the filter's stored localizer and stores the result (read → apply →
/// compare-and-swap, retried on conflict). `op`'s own error is returned after the state is stored.
fn update_filter<R>(filter: &str, mut op: impl FnMut(&mut Localizer) -> Result<R, FusionError>) -> Result<R, WitError> {
    let opts = persist_options()?;
    let key = state_key(filter);
    match with_slot(filter, |slot| slot.update(&mut CacheStore, &key, &opts, || new_localizer(filter), &mut op)) {
        Ok((out, events)) => {
            record_persist_events(filter, &events);
            out.map_err(err)
        }
        Err(e) => {
            if let FusionError::StateConflict { attempts, .. } = &e {
                count_n("fusion_state_conflicts_total", &[("filter", filter)], *attempts);
            }
            Err(err(e))
        }
    }
}

/// Runs `f` on the filter's stored localizer without writing (decoded only if another
/// instance wrote since this one last saw it).
fn read_filter<R>(filter: &str, f: impl FnOnce(&Localizer) -> R) -> Result<R, WitError> {
    let opts = persist_options()?;
    let key = state_key(filter);
    let (out, events) = with_slot(filter, |slot| slot.read(&mut CacheStore, &key, &opts, || new_localizer(filter), f)).map_err(err)?;
    record_persist_events(filter, &events);
    Ok(out)
}

fn fixed<const N: usize>(field: &str, v: &[f64]) -> Result<[f64; N], WitError> {
    if v.is_empty() {
        return Ok([0.0; N]);
    }
    <[f64; N]>::try_from(v).map_err(|_| WitError::InvalidLength((field.to_owned(), N as u32, u32::try_from(v.len()).unwrap_or(u32::MAX))))
}

fn vec_or(v: Option<Vector3>) -> [f64; 3] {
    v.map_or([0.0; 3], |v| [v.x, v.y, v.z])
}

fn imu_message(header: Header, s: &ImuSample) -> Result<ImuMessage, WitError> {
    let mut orientation_covariance = fixed::<9>("orientation-covariance", &s.orientation_covariance)?;
    if s.orientation.is_none() {
        orientation_covariance[0] = -1.0; // ROS: "no orientation"
    }
    let mut angular_velocity_covariance = fixed::<9>("angular-velocity-covariance", &s.angular_velocity_covariance)?;
    if s.angular_velocity.is_none() {
        angular_velocity_covariance[0] = -1.0;
    }
    let mut linear_acceleration_covariance = fixed::<9>("linear-acceleration-covariance", &s.linear_acceleration_covariance)?;
    if s.linear_acceleration.is_none() {
        linear_acceleration_covariance[0] = -1.0;
    }
    Ok(ImuMessage {
        header,
        orientation: s.orientation.map_or([0.0, 0.0, 0.0, 1.0], |q| [q.x, q.y, q.z, q.w]),
        orientation_covariance,
        angular_velocity: vec_or(s.angular_velocity),
        angular_velocity_covariance,
        linear_acceleration: vec_or(s.linear_acceleration),
        linear_acceleration_covariance,
    })
}

fn odometry_message(header: Header, s: &OdometrySample) -> Result<OdometryMessage, WitError> {
    Ok(OdometryMessage {
        header,
        child_frame_id: String::new(),
        position: s.position.map_or([0.0; 3], |p| [p.x, p.y, p.z]),
        orientation: s.orientation.map_or([0.0, 0.0, 0.0, 1.0], |q| [q.x, q.y, q.z, q.w]),
        pose_covariance: fixed::<36>("pose-covariance", &s.pose_covariance)?.to_vec(),
        linear: vec_or(s.linear_velocity),
        angular: vec_or(s.angular_velocity),
        twist_covariance: fixed::<36>("twist-covariance", &s.twist_covariance)?.to_vec(),
    })
}

/// Fuses one message; with `publish`, also returns the state to publish, taken from the same
/// version of the filter.
fn process(filter: &str, sensor: &str, message: &WireMessage, publish: bool) -> Result<(UpdateReport, Option<StateMessage>), WitError> {
    let outcome = update_filter(filter, |loc| {
        let idx = loc.sensor_index(sensor)?;
        let reports = match message {
            WireMessage::Imu(m) => loc.process_imu(idx, m),
            WireMessage::Odometry(m) => loc.process_odometry(idx, m),
            WireMessage::Gnss(m) => loc.process_navsat(idx, m),
        }?;
        let state = publish.then(|| {
            let st = loc.stats();
            StateMessage { filter: filter.to_owned(), updates: st.updates, gated: st.gated, state: loc.fused_state() }
        });
        Ok((reports, state))
    });
    let (reports, state) = match outcome {
        Ok(r) => r,
        Err(e) => {
            count("fusion_inputs_total", &[("filter", filter), ("outcome", "rejected")]);
            return Err(e);
        }
    };
    let accepted = reports.iter().all(|r| r.accepted);
    let nis = (!reports.is_empty()).then(|| reports.iter().map(|r| r.nis).sum::<f64>());
    if let Some(n) = nis {
        observe_nis(n);
    }
    count("fusion_inputs_total", &[("filter", filter), ("outcome", if accepted { "accepted" } else { "gated" })]);
    let gated: Vec<String> = reports.iter().filter(|r| !r.accepted).map(|r| format!("{}-d update gated (NIS {:.2})", r.dof, r.nis)).collect();
    Ok((UpdateReport { accepted, nis, rejected_reason: (!gated.is_empty()).then(|| gated.join("; ")) }, state))
}

fn state_estimate(filter: &str) -> Result<StateEstimate, WitError> {
    read_filter(filter, |loc| {
        let s = loc.fused_state();
        let v = |i: usize| s.state.get(i).copied().unwrap_or(0.0);
        StateEstimate {
            filter_id: filter.to_owned(),
            timestamp: secs_to_ns(s.time),
            position: bindings::edgecell::types::types::Point3 { x: s.pose.x, y: s.pose.y, z: s.pose.z },
            orientation_rpy: Vector3 { x: s.pose.roll, y: s.pose.pitch, z: s.pose.yaw },
            linear_velocity: Vector3 { x: v(6), y: v(7), z: v(8) },
            angular_velocity: Vector3 { x: v(9), y: v(10), z: v(11) },
            linear_acceleration: Vector3 { x: v(12), y: v(13), z: v(14) },
            covariance: s.covariance,
        }
    })
}

impl estimator::Guest for Actor {
    fn configure(filter_id: String, config_toml: String) -> Result<(), WitError> {
        let _flush = FlushMetrics;
        let cfg = parse_config(&config_toml).map_err(err)?;
        let loc = Localizer::new(cfg).map_err(err)?;
        let opts = persist_options()?;
        CacheStore.set(&format!("filter-config/{filter_id}"), config_toml.as_bytes(), None).map_err(err)?;
        // a new configuration restarts the filter, in every instance: the stored state is
        // replaced, so their next compare-and-swap conflicts and they re-read it
        with_slot(&filter_id, |slot| slot.replace(&mut CacheStore, &state_key(&filter_id), &opts, loc)).map_err(err)
    }

    fn ingest(reading: SensorReading) -> Result<UpdateReport, WitError> {
        let _flush = FlushMetrics;
        let header = Header { stamp: ns_to_secs(reading.timestamp), frame_id: reading.frame_id };
        let message = match &reading.measurement {
            WitMeasurement::Imu(s) => WireMessage::Imu(imu_message(header, s)?),
            WitMeasurement::Odometry(s) => WireMessage::Odometry(odometry_message(header, s)?),
            WitMeasurement::Gnss(g) => WireMessage::Gnss(NavSatFixMessage {
                header,
                status: 0,
                latitude: g.position.latitude_deg,
                longitude: g.position.longitude_deg,
                altitude: g.position.altitude_m.unwrap_or(0.0),
                position_covariance: fixed::<9>("covariance", &g.covariance)?,
                position_covariance_type: if g.covariance.is_empty() { 0 } else { 3 },
            }),
        };
        process(&reading.filter_id, &reading.sensor_id, &message, false).map(|(report, _)| report)
    }

    fn state(filter_id: String) -> Result<StateEstimate, WitError> {
        let _flush = FlushMetrics;
        state_estimate(&filter_id)
    }
}

/// Persistence of trackers and IoT aggregators: a fixed TTL, up to 4 MiB of state.
fn shared_state_options() -> PersistOptions {
    PersistOptions { ttl_seconds: Some(STATE_TTL_S), max_bytes: 4 * 1024 * 1024, ..PersistOptions::default() }
}

/// Read-modify-write of a tracker's or aggregator's stored state (compare-and-swap, retried on
/// conflict): concurrent instances never overwrite each other's changes.
fn update_shared<T: Persisted, R>(
    key: &str,
    create: impl FnMut() -> Result<T, FusionError>,
    op: impl FnMut(&mut T) -> Result<R, FusionError>,
) -> Result<R, FusionError> {
    match update_stored(&mut CacheStore, key, &shared_state_options(), create, op) {
        Ok((out, events)) => {
            record_persist_events(key, &events);
            out
        }
        Err(e) => {
            if let FusionError::StateConflict { attempts, .. } = &e {
                count_n("fusion_state_conflicts_total", &[("filter", key)], *attempts);
            }
            Err(e)
        }
    }
}

/// A new tracker (first use, expiry, reset of corrupt state) numbers its tracks from the wall
/// clock in microseconds: ids stay unique across the trackers of one name as long as each
/// issued fewer ids than microseconds passed before it was replaced (an expired tracker waited
/// an hour), and stay below 2^53, exact for JSON consumers, until the year 2255. Within a
/// tracker they count up one by one.
fn new_tracker() -> Result<Tracker, FusionError> {
    let mut t = Tracker::new(TrackerConfig::default())?;
    if let Some(us) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().and_then(|d| u64::try_from(d.as_micros()).ok()) {
        t.skip_ids_to(us);
    }
    Ok(t)
}

fn tracker_step(tracker_id: &str, time: f64, detections: &[[f64; 2]]) -> Result<Vec<wit_tracking::TargetTrack>, FusionError> {
    #[allow(clippy::cast_precision_loss)]
    if let Some(now) = now_ms().map(|ms| ms as f64 / 1000.0)
        && time > now + MAX_SCAN_LEAD_S
    {
        return Err(FusionError::OutOfRange { what: "scan time ahead of the clock (s)", value: time - now, limit: MAX_SCAN_LEAD_S });
    }
    let (tracks, refused) = update_shared(&format!("tracker/{tracker_id}"), new_tracker, |tracker| {
        let before = tracker.births_refused();
        tracker.step(time, detections)?;
        let tracks = tracker
            .confirmed()
            .map(|t| {
                let [x, y] = t.position();
                let [vx, vy] = t.velocity();
                wit_tracking::TargetTrack { track_id: t.id, confirmed: true, x, y, vx, vy }
            })
            .collect();
        Ok((tracks, tracker.births_refused() - before))
    })?;
    if refused > 0 {
        count_n("fusion_track_births_refused_total", &[("tracker", tracker_id)], u32::try_from(refused).unwrap_or(u32::MAX));
    }
    Ok(tracks)
}

impl wit_tracking::Guest for Actor {
    fn track(tracker_id: String, timestamp: u64, detections: Vec<wit_tracking::Detection>) -> Result<Vec<wit_tracking::TargetTrack>, WitError> {
        let _flush = FlushMetrics;
        let dets: Vec<[f64; 2]> = detections.iter().map(|d| [d.x, d.y]).collect();
        tracker_step(&tracker_id, ns_to_secs(timestamp), &dets).map_err(err)
    }
}

/// The aggregator of one NATS site (the last token of `edgecell.iot.in.<site>`).
fn site_key(site: &str) -> String {
    format!("iot/site/{site}")
}

/// The aggregator of calls through `edgecell:fusion/iot` (a key no site can have).
const CALL_KEY: &str = "iot/call";

/// One aggregator's state is rewritten on every message, so it is bounded well inside the
/// 4 MiB the actor stores. The actor's defaults: at most 500 sensors and 40,000 samples for the
/// p95 over all of them (worst case about 3.9 MB, see `IotConfig::worst_case_state_bytes`).
fn iot_base_config() -> IotConfig {
    IotConfig { max_sensors: 500, max_total_samples: 40_000, ..IotConfig::default() }
}

/// Settings of one aggregator: `wasi:config` `iot.<site>` (NATS sites), else `iot`, as TOML
/// over the actor's defaults (e.g. `window = { kind = "sliding", size_ms = 60000, slide_ms =
/// 5000 }`). Read on every message, so a changed deployment configuration applies to stored
/// aggregators too (`Aggregator::reconfigure`).
///
/// # Errors
/// [`FusionError::Config`] for settings that do not parse or whose worst-case state would not
/// fit the 4 MiB the actor stores (the message says which limit to lower).
fn iot_config(site: Option<&str>) -> Result<IotConfig, FusionError> {
    // a failed read is an error, not "unset": falling back to the defaults would close every
    // open window of another shape, and again when the read recovers
    let get = |key: &str| match bindings::wasi::config::store::get(key) {
        Ok(v) => Ok(v.filter(|v| !v.trim().is_empty())),
        Err(e) => Err(FusionError::Config(format!("wasi:config {key}: {e:?}"))),
    };
    let site_key = site.map(|s| format!("iot.{s}"));
    let site_text = match &site_key {
        Some(k) => get(k)?,
        None => None,
    };
    let (key, text) = match (site_key, site_text) {
        (Some(k), Some(t)) => (k, t),
        _ => match get("iot")? {
            Some(t) => ("iot".to_owned(), t),
            None => return Ok(iot_base_config()),
        },
    };
    let cfg = IotConfig::from_toml_over(&iot_base_config(), &text).map_err(|e| FusionError::Config(format!("wasi:config {key}: {e}")))?;
    let limit = shared_state_options().max_bytes as u64;
    let worst = cfg.worst_case_state_bytes();
    if worst > limit {
        let without_sensors = IotConfig { max_sensors: 0, ..cfg }.worst_case_state_bytes();
        let per_sensor = IotConfig { max_sensors: 1, ..cfg }.worst_case_state_bytes().saturating_sub(without_sensors).max(1);
        let fitting = limit.saturating_sub(without_sensors) / per_sensor;
        let advice = if without_sensors >= limit {
            "lower max_total_samples or batch_size: they alone leave no room for a sensor".to_owned()
        } else if fitting == 0 {
            format!("one sensor's state alone could reach {per_sensor} bytes: lower robust_history or the windows open at once (size_ms / slide_ms)")
        } else {
            format!("lower max_sensors (at most {fitting} with these settings), max_total_samples, robust_history, batch_size or size_ms / slide_ms")
        };
        return Err(FusionError::Config(format!("wasi:config {key}: state could reach {worst} bytes, over the {limit} the actor stores; {advice}")));
    }
    Ok(cfg)
}

/// This host's wall clock (ms since the Unix epoch, the epoch of WIT timestamps).
fn now_ms() -> Option<u64> {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_millis()).ok()
}

/// How far ahead of this host's clock a scan time may be (s): a scan stamped further ahead
/// would put every later scan of its tracker out of order until the state expired.
const MAX_SCAN_LEAD_S: f64 = 300.0;

/// `edgecell:fusion/iot`: every reading or none. A bad reading ends the call with its error;
/// the readings before it stay ingested and the outputs they closed are queued again, so the
/// next call delivers them. When those outputs would not fit the stored state, nothing of the
/// call is kept: the error is then a `store` error that says so and names the bad reading and
/// its error (resent without it, the batch goes through whole).
fn iot_ingest_all(readings: &[Reading]) -> Result<Vec<Output>, FusionError> {
    let now = now_ms();
    let cfg = iot_config(None)?;
    let bad_reading = RefCell::new(None);
    let outcome = update_shared(CALL_KEY, || Aggregator::new(cfg), |agg| {
        // (an attempt after a write conflict starts over)
        *bad_reading.borrow_mut() = None;
        agg.reconfigure(cfg)?;
        if let Some(now) = now {
            agg.set_now(now);
        }
        let mut out = Vec::new();
        for (i, r) in readings.iter().enumerate() {
            match agg.ingest(r) {
                Ok(batches) => out.extend(batches.into_iter().flatten()),
                Err(e) => {
                    agg.requeue(out);
                    *bad_reading.borrow_mut() = Some((i, e.clone()));
                    return Err(e);
                }
            }
        }
        out.extend(agg.flush().into_iter().flatten());
        Ok(out)
    });
    match (outcome, bad_reading.into_inner()) {
        (Err(FusionError::StateTooLarge { .. }), Some((i, e))) => Err(FusionError::Store(format!(
            "reading {i} was refused ({e}), and the outputs of the readings before it would not fit the stored state: \
             nothing of this call was kept; send it again without reading {i}"
        ))),
        (outcome, _) => outcome,
    }
}

/// NATS: every good reading is ingested; a bad one comes back as a `rejected` output in its
/// place, and the readings after it still count (a producer resending an overlapping batch
/// loses nothing and double-counts nothing).
fn iot_ingest_each(site: &str, readings: &[Reading]) -> Result<Vec<Output>, FusionError> {
    let now = now_ms();
    let cfg = iot_config(Some(site))?;
    update_shared(&site_key(site), || Aggregator::new(cfg), |agg| {
        agg.reconfigure(cfg)?;
        if let Some(now) = now {
            agg.set_now(now);
        }
        Ok(agg.ingest_each(readings))
    })
}

impl wit_iot::Guest for Actor {
    fn ingest_batch(readings: Vec<wit_iot::Reading>) -> Result<wit_iot::IotOutput, WitError> {
        let _flush = FlushMetrics;
        let readings: Vec<Reading> =
            readings.into_iter().map(|r| Reading { sensor: r.sensor_id, time_ms: r.timestamp / 1_000_000, value: r.value }).collect();
        let outputs = iot_ingest_all(&readings).map_err(err)?;
        let ms_to_ns = |ms: u64| ms.saturating_mul(1_000_000);
        let mut result = wit_iot::IotOutput { aggregates: Vec::new(), anomalies: Vec::new() };
        for o in outputs {
            match o {
                Output::Aggregate(a) => result.aggregates.push(wit_iot::Aggregate {
                    sensor_id: a.sensor,
                    window_start: ms_to_ns(a.start_ms),
                    window_end: ms_to_ns(a.end_ms),
                    count: a.count,
                    mean: a.mean,
                    min: a.min,
                    max: a.max,
                    p95: a.p95,
                }),
                Output::Anomaly(a) => result.anomalies.push(wit_iot::Anomaly {
                    sensor_id: a.sensor,
                    timestamp: ms_to_ns(a.time_ms),
                    value: a.value,
                    detector: match a.kind {
                        edgecell_fusion::iot::AnomalyKind::Ewma => "ewma".into(),
                        edgecell_fusion::iot::AnomalyKind::RobustZ => "robust-z".into(),
                    },
                    score: a.score,
                }),
                // only `ingest_each` (NATS) reports refusals this way
                Output::Rejected(_) => {}
            }
        }
        Ok(result)
    }
}

/// `wasi:config` key: the largest body the actor publishes, in bytes (at least
/// [`MIN_PUBLISH_BYTES`]). IoT outputs that do not fit go out as several JSON arrays, in order
/// (see [`publish_outputs`]).
const MAX_PUBLISH_KEY: &str = "max-publish-bytes";
/// Under NATS's default 1 MiB `max_payload`, with room for headers.
const DEFAULT_MAX_PUBLISH_BYTES: usize = 900 * 1024;
/// Room for the largest single output (a rejection echoes at most 256 bytes of a sensor id).
const MIN_PUBLISH_BYTES: usize = 4096;

fn max_publish_bytes() -> Result<usize, String> {
    match bindings::wasi::config::store::get(MAX_PUBLISH_KEY) {
        Ok(None) => Ok(DEFAULT_MAX_PUBLISH_BYTES),
        Ok(Some(v)) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= MIN_PUBLISH_BYTES)
            .ok_or_else(|| format!("{MAX_PUBLISH_KEY} = {v:?}: expected a number of bytes, at least {MIN_PUBLISH_BYTES}")),
        Err(e) => Err(format!("{MAX_PUBLISH_KEY}: wasi:config read failed: {e:?}")),
    }
}

/// `items` as JSON arrays of at most `max_bytes` each, in order (one array when they fit, `[]`
/// when there are none; a single item is never split).
fn json_arrays(items: &[Output], max_bytes: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut bodies = Vec::new();
    let mut body = vec![b'['];
    for item in items {
        let one = serde_json::to_vec(item).map_err(|e| e.to_string())?;
        if body.len() > 1 && body.len() + one.len() + 2 > max_bytes {
            body.push(b']');
            bodies.push(std::mem::replace(&mut body, vec![b'[']));
        }
        if body.len() > 1 {
            body.push(b',');
        }
        body.extend_from_slice(&one);
    }
    body.push(b']');
    bodies.push(body);
    Ok(bodies)
}

/// Publishes IoT outputs so that no message exceeds `max_bytes` (a NATS server refuses one over
/// its `max_payload`, and the outputs, already taken out of the stored state, would be lost):
/// - when they fit one message: that JSON array, to the reply subject if there is one, else to
///   `stream` (`edgecell.iot.out.<site>`);
/// - otherwise: the arrays to `stream`, in order, and a requester gets one reply saying where
///   they went, `{"outputs": n, "messages": k, "subject": "…"}` (a request gets one answer).
fn publish_outputs(msg: &BrokerMessage, stream: &str, items: &[Output], max_bytes: usize) -> Result<(), String> {
    let mut bodies = json_arrays(items, max_bytes)?;
    if bodies.len() == 1 {
        return reply(msg, stream.to_owned(), bodies.remove(0));
    }
    let messages = bodies.len();
    for body in bodies {
        consumer::publish(&BrokerMessage { subject: stream.to_owned(), body, reply_to: None })?;
    }
    match &msg.reply_to {
        Some(subject) => {
            let body = serde_json::json!({ "outputs": items.len(), "messages": messages, "subject": stream }).to_string().into_bytes();
            consumer::publish(&BrokerMessage { subject: subject.clone(), body, reply_to: None })
        }
        None => Ok(()),
    }
}

fn reply(msg: &BrokerMessage, default_subject: String, body: Vec<u8>) -> Result<(), String> {
    let subject = msg.reply_to.clone().unwrap_or(default_subject);
    consumer::publish(&BrokerMessage { subject, body, reply_to: None })
}

fn site(subject: &str) -> &str {
    subject.rsplit('.').next().unwrap_or("default")
}

/// A requester gets a failure as `{"error": "…"}` on its reply subject instead of waiting
/// for its timeout; the error is still returned, for the host to log.
fn answer_errors(reply_to: Option<String>, outcome: Result<(), String>) -> Result<(), String> {
    if let (Err(e), Some(subject)) = (&outcome, reply_to) {
        let body = serde_json::json!({ "error": e }).to_string().into_bytes();
        let _ = consumer::publish(&BrokerMessage { subject, body, reply_to: None });
    }
    outcome
}

impl Handler for Actor {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let _flush = FlushMetrics;
        let reply_to = msg.reply_to.clone();
        answer_errors(reply_to, handle(&msg))
    }
}

fn handle(msg: &BrokerMessage) -> Result<(), String> {
    let s = msg.subject.as_str();
    if s.starts_with("edgecell.sensors.in.") {
        let env: SensorEnvelope = serde_json::from_slice(&msg.body).map_err(|e| format!("not a sensor envelope: {e}"))?;
        let (_, state) = process(&env.filter, &env.sensor, &env.message, true).map_err(|e| format!("{e:?}"))?;
        let state = state.ok_or_else(|| "no state to publish".to_owned())?;
        let body = serde_json::to_vec(&state).map_err(|e| e.to_string())?;
        reply(msg, format!("edgecell.fusion.state.{}", env.filter), body)
    } else if s.starts_with("edgecell.iot.in.") {
        let readings: Vec<Reading> = serde_json::from_slice(&msg.body).map_err(|e| format!("not a list of readings: {e}"))?;
        // read before the state changes: a bad setting must not cost the outputs
        let max_bytes = max_publish_bytes()?;
        let out = iot_ingest_each(site(s), &readings).map_err(|e| e.to_string())?;
        if out.is_empty() && msg.reply_to.is_none() {
            return Ok(());
        }
        publish_outputs(msg, &format!("edgecell.iot.out.{}", site(s)), &out, max_bytes)
    } else if s.starts_with("edgecell.tracks.in.") {
        let scan: ScanMessage = serde_json::from_slice(&msg.body).map_err(|e| format!("not a scan: {e}"))?;
        let tracks = tracker_step(&scan.tracker, scan.time, &scan.detections).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(
            &tracks.iter().map(|t| serde_json::json!({"id": t.track_id, "x": t.x, "y": t.y, "vx": t.vx, "vy": t.vy})).collect::<Vec<_>>(),
        )
        .map_err(|e| e.to_string())?;
        reply(msg, format!("edgecell.tracks.out.{}", scan.tracker), body)
    } else {
        Err(format!("sensor-fusion does not handle subject {s}"))
    }
}

// `export!` emits the ABI entry points, which are `unsafe extern` functions.
#[allow(unsafe_code)]
mod exports {
    use super::Actor;
    crate::bindings::export!(Actor with_types_in crate::bindings);
}
