//! A [`Localizer`] kept in a versioned key-value store (the kv-cache provider), so that any
//! instance of the actor — a fresh one per message on a wasmCloud 1.x host, several at once —
//! continues the same filter.
//!
//! * [`LocalizerSnapshot`]: the complete running state (configuration, filter state and
//!   covariance, times, per-sensor baselines, GNSS ENU origin, counters), a serde type.
//! * [`Localizer::to_state_bytes`]: its stored form, a small container: magic `ECLS`, format
//!   (u32 LE), JSON length (u32 LE), the snapshot as JSON without the filter's state vector and
//!   covariance, then those 240 values as raw little-endian IEEE-754 bits. Exact by construction
//!   (the JSON floats are read back exactly too: `serde_json` with `float_roundtrip`), and the
//!   bulk of it is copied rather than printed and parsed as decimal (see the `localizer_state`
//!   benchmark).
//! * [`CachedLocalizer::update`]: read (entry + version) → apply → compare-and-swap with the version
//!   read; on a conflict re-read and re-apply, a bounded number of times, then
//!   [`FusionError::StateConflict`]. An instance that wrote the current version keeps the decoded
//!   localizer and skips the read and the decode: its compare-and-swap succeeds only if nobody
//!   wrote in between, and otherwise it falls back to a re-read.
//! * Corrupt or oversize stored state is replaced by a fresh localizer (reported in
//!   [`PersistEvents::resets`] so the actor can count it); state written by a newer format is
//!   never overwritten ([`FusionError::StateFormat`]).

use serde::{Deserialize, Serialize};

use crate::error::{FusionError, Result};
use crate::filter::{FilterKind, FilterSnapshot};
use crate::localizer::{FusionStats, Localizer, LocalizerConfig};
use crate::state::STATE_SIZE;

/// Format of [`LocalizerSnapshot`] this build writes and reads.
pub const STATE_FORMAT: u32 = 1;
/// Default limit for one encoded localizer state (a two-sensor state is about 3 KiB).
pub const DEFAULT_MAX_STATE_BYTES: usize = 256 * 1024;
/// Default number of compare-and-swap attempts per update.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Default time-to-live of a stored localizer state (s).
pub const DEFAULT_STATE_TTL_S: u64 = 3600;

/// The complete running state of a [`Localizer`]; see [`Localizer::snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalizerSnapshot {
    /// [`STATE_FORMAT`] of the writer.
    pub format: u32,
    /// The configuration the localizer runs with.
    pub config: LocalizerConfig,
    /// Filter state, covariance and flags.
    pub filter: FilterSnapshot,
    /// Whether a first measurement has initialised the state.
    pub initialized: bool,
    /// Time of the current estimate (s).
    pub last_time: Option<f64>,
    /// Per-sensor state, in configuration order.
    pub sensors: Vec<SensorSnapshot>,
    /// Counters.
    pub stats: FusionStats,
    /// GNSS ENU frame, once fixed (configured datum or first fix).
    pub enu: Option<EnuSnapshot>,
}

/// Per-sensor running state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorSnapshot {
    /// Sensor name (checked against the configuration on restore).
    pub name: String,
    /// Stamp of the sensor's last message (s).
    pub last_stamp: Option<f64>,
    /// Relative mode: the sensor's first pose.
    pub relative_origin: Option<FrameSnapshot>,
    /// Differential mode: the sensor's previous pose.
    pub previous_pose: Option<PoseSnapshot>,
}

/// A position and a rotation matrix (column-major).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameSnapshot {
    /// x, y, z (m)
    pub position: [f64; 3],
    /// 3 × 3 rotation, column-major
    pub rotation: [f64; 9],
}

/// A timed pose with its 6 × 6 covariance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoseSnapshot {
    /// stamp (s)
    pub time: f64,
    /// x, y, z (m)
    pub position: [f64; 3],
    /// 3 × 3 rotation, column-major
    pub rotation: [f64; 9],
    /// 6 × 6 covariance, column-major (36 values)
    pub covariance: Vec<f64>,
}

/// The local ENU frame: ECEF origin and ECEF → ENU rotation (column-major).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnuSnapshot {
    /// ECEF origin (m)
    pub origin: [f64; 3],
    /// ECEF → ENU rotation, column-major
    pub rotation: [f64; 9],
}

/// First bytes of a stored localizer state.
const MAGIC: [u8; 4] = *b"ECLS";
/// Magic, format, JSON length.
const HEADER_LEN: usize = 12;
/// State vector and covariance, stored as raw bits after the JSON.
const RAW_FLOATS: usize = STATE_SIZE + STATE_SIZE * STATE_SIZE;

/// The JSON part of the stored form, borrowed for writing: a [`LocalizerSnapshot`] without the
/// format (in the header) and without the filter's state and covariance (raw, after the JSON).
#[derive(Serialize)]
struct StoredRef<'a> {
    config: &'a LocalizerConfig,
    filter: FilterKind,
    p_symmetric: bool,
    initialized: bool,
    last_time: Option<f64>,
    sensors: &'a [SensorSnapshot],
    stats: &'a FusionStats,
    enu: &'a Option<EnuSnapshot>,
}

/// [`StoredRef`], owned, for reading.
#[derive(Deserialize)]
struct Stored {
    config: LocalizerConfig,
    filter: FilterKind,
    p_symmetric: bool,
    initialized: bool,
    last_time: Option<f64>,
    sensors: Vec<SensorSnapshot>,
    stats: FusionStats,
    enu: Option<EnuSnapshot>,
}

fn corrupt(what: impl std::fmt::Display) -> FusionError {
    FusionError::CorruptState(what.to_string())
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

impl Localizer {
    /// The localizer's [`snapshot`](Localizer::snapshot) in its stored form (see the module
    /// documentation).
    ///
    /// # Errors
    /// [`FusionError::StateTooLarge`] above `max_bytes`; [`FusionError::Store`] if encoding fails.
    pub fn to_state_bytes(&self, max_bytes: usize) -> Result<Vec<u8>> {
        let s = self.snapshot();
        let mut out = Vec::with_capacity(HEADER_LEN + 2048 + RAW_FLOATS * 8);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&s.format.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let json = StoredRef {
            config: &s.config,
            filter: s.filter.kind,
            p_symmetric: s.filter.p_symmetric,
            initialized: s.initialized,
            last_time: s.last_time,
            sensors: &s.sensors,
            stats: &s.stats,
            enu: &s.enu,
        };
        serde_json::to_writer(&mut out, &json).map_err(|e| FusionError::Store(format!("encoding localizer state: {e}")))?;
        let json_len = u32::try_from(out.len() - HEADER_LEN).map_err(|_| FusionError::StateTooLarge { bytes: out.len(), limit: max_bytes })?;
        if let Some(len) = out.get_mut(8..HEADER_LEN) {
            len.copy_from_slice(&json_len.to_le_bytes());
        }
        for v in s.filter.x.iter().chain(&s.filter.p) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if out.len() > max_bytes {
            return Err(FusionError::StateTooLarge { bytes: out.len(), limit: max_bytes });
        }
        Ok(out)
    }

    /// Decodes [`Localizer::to_state_bytes`].
    ///
    /// # Errors
    /// [`FusionError::StateTooLarge`] above `max_bytes` (checked before decoding);
    /// [`FusionError::StateFormat`] for a newer format; [`FusionError::CorruptState`] otherwise.
    pub fn from_state_bytes(bytes: &[u8], max_bytes: usize) -> Result<Self> {
        if bytes.len() > max_bytes {
            return Err(FusionError::StateTooLarge { bytes: bytes.len(), limit: max_bytes });
        }
        if bytes.get(..4) != Some(MAGIC.as_slice()) {
            return Err(corrupt("not a stored localizer state"));
        }
        let format = u32_at(bytes, 4).ok_or_else(|| corrupt("truncated header"))?;
        if format > STATE_FORMAT {
            return Err(FusionError::StateFormat { found: format, supported: STATE_FORMAT });
        }
        let json_len = u32_at(bytes, 8).ok_or_else(|| corrupt("truncated header"))?;
        let json_end = usize::try_from(json_len).ok().and_then(|n| n.checked_add(HEADER_LEN)).unwrap_or(usize::MAX);
        let (Some(json), Some(raw)) = (bytes.get(HEADER_LEN..json_end), bytes.get(json_end..)) else {
            return Err(corrupt("JSON part runs past the end"));
        };
        if raw.len() != RAW_FLOATS * 8 {
            return Err(corrupt(format!("{} bytes of filter state, expected {}", raw.len(), RAW_FLOATS * 8)));
        }
        let st: Stored = serde_json::from_slice(json).map_err(corrupt)?;
        let mut floats = raw.chunks_exact(8).map(|c| c.try_into().map_or(f64::NAN, f64::from_le_bytes));
        let x: Vec<f64> = floats.by_ref().take(STATE_SIZE).collect();
        let p: Vec<f64> = floats.collect();
        Self::from_snapshot(LocalizerSnapshot {
            format,
            config: st.config,
            filter: FilterSnapshot { kind: st.filter, x, p, p_symmetric: st.p_symmetric },
            initialized: st.initialized,
            last_time: st.last_time,
            sensors: st.sensors,
            stats: st.stats,
            enu: st.enu,
        })
    }
}

/// A stored value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// the bytes
    pub value: Vec<u8>,
    /// changes on every write
    pub version: u64,
}

/// Result of [`VersionedStore::compare_and_swap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the new version.
    Swapped(u64),
    /// Not written: the version found (`None`: no entry).
    Conflict(Option<u64>),
}

/// A key-value store with versions and compare-and-swap (the `edgecell:cache/store` interface).
pub trait VersionedStore {
    /// Entry under `key` with its version; `None` if absent or expired.
    ///
    /// # Errors
    /// Store failures as [`FusionError::Store`].
    fn get_versioned(&mut self, key: &str) -> Result<Option<Versioned>>;
    /// Unconditional write; the new version.
    ///
    /// # Errors
    /// Store failures.
    fn set_versioned(&mut self, key: &str, value: &[u8], ttl_seconds: Option<u64>) -> Result<u64>;
    /// Writes only if the entry's version is `expected` (`None`: only if there is no entry).
    ///
    /// # Errors
    /// Store failures.
    fn compare_and_swap(&mut self, key: &str, expected: Option<u64>, value: &[u8], ttl_seconds: Option<u64>) -> Result<CasOutcome>;
}

/// A value kept in a [`VersionedStore`] as bytes and changed by [`update_stored`] (the
/// localizer, the IoT aggregator, the tracker).
pub trait Persisted: Sized {
    /// Decodes a stored value.
    ///
    /// # Errors
    /// [`FusionError::StateTooLarge`] above `max_bytes`, [`FusionError::StateFormat`] for a
    /// newer format, [`FusionError::CorruptState`] otherwise.
    fn from_stored(bytes: &[u8], max_bytes: usize) -> Result<Self>;
    /// Encodes it for storing.
    ///
    /// # Errors
    /// [`FusionError::StateTooLarge`] above `max_bytes`, or an encoding failure.
    fn to_stored(&self, max_bytes: usize) -> Result<Vec<u8>>;
}

impl Persisted for Localizer {
    fn from_stored(bytes: &[u8], max_bytes: usize) -> Result<Self> {
        Self::from_state_bytes(bytes, max_bytes)
    }

    fn to_stored(&self, max_bytes: usize) -> Result<Vec<u8>> {
        self.to_state_bytes(max_bytes)
    }
}

/// Decodes a value stored as JSON by [`to_json_limited`].
///
/// # Errors
/// [`FusionError::StateTooLarge`] above `max_bytes` (checked first), [`FusionError::CorruptState`].
pub fn from_json_limited<T: serde::de::DeserializeOwned>(bytes: &[u8], max_bytes: usize, what: &str) -> Result<T> {
    if bytes.len() > max_bytes {
        return Err(FusionError::StateTooLarge { bytes: bytes.len(), limit: max_bytes });
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Encodes a value as JSON of at most `max_bytes`.
///
/// # Errors
/// [`FusionError::StateTooLarge`], [`FusionError::Store`] if encoding fails.
pub fn to_json_limited<T: Serialize>(value: &T, max_bytes: usize, what: &str) -> Result<Vec<u8>> {
    let bytes = serde_json::to_vec(value).map_err(|e| FusionError::Store(format!("encoding {what}: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(FusionError::StateTooLarge { bytes: bytes.len(), limit: max_bytes });
    }
    Ok(bytes)
}

/// Read-modify-write of the value under `key` by compare-and-swap: read (entry + version) →
/// `op` → write only if the version is still the one read. On a conflict the value is read
/// again and `op` applied again to it, at most `opts.max_attempts` times in all, so concurrent
/// instances never overwrite each other's changes. Nothing stored: `create` makes the value.
/// Corrupt or oversize stored state is replaced by `create`'s value (reported in the events).
/// The value is written whatever `op` returns; an `op` that can fail leaves it consistent.
///
/// # Errors
/// `create`'s errors, [`FusionError::StateFormat`] (the stored value is left alone),
/// [`FusionError::StateTooLarge`] for a result too large to store,
/// [`FusionError::StateConflict`] after `max_attempts` conflicts, store failures.
pub fn update_stored<T: Persisted, R>(
    store: &mut (impl VersionedStore + ?Sized),
    key: &str,
    opts: &PersistOptions,
    create: impl FnMut() -> Result<T>,
    op: impl FnMut(&mut T) -> R,
) -> Result<(R, PersistEvents)> {
    compare_and_swap_loop(store, key, opts, &mut None, create, op)
}

/// The loop behind [`update_stored`] and [`CachedLocalizer::update`]. `held`: a decoded value and
/// the version it was last written or read as; the first attempt uses it without reading (the
/// compare-and-swap then fails if anyone wrote since, and the next attempt reads). On success
/// it holds the value written and its new version; on a conflict it is left empty.
fn compare_and_swap_loop<T: Persisted, R>(
    store: &mut (impl VersionedStore + ?Sized),
    key: &str,
    opts: &PersistOptions,
    held: &mut Option<(T, u64)>,
    mut create: impl FnMut() -> Result<T>,
    mut op: impl FnMut(&mut T) -> R,
) -> Result<(R, PersistEvents)> {
    let mut events = PersistEvents::default();
    let attempts = opts.max_attempts.max(1);
    for _ in 0..attempts {
        let (mut value, expected) = match held.take() {
            Some((value, version)) => (value, Some(version)),
            None => load(store, key, opts, &mut create, &mut events)?,
        };
        let out = op(&mut value);
        let bytes = value.to_stored(opts.max_bytes)?;
        match store.compare_and_swap(key, expected, &bytes, opts.ttl_seconds)? {
            CasOutcome::Swapped(version) => {
                *held = Some((value, version));
                return Ok((out, events));
            }
            // someone else wrote (or the entry expired): `held` stays empty, so the next attempt
            // re-reads
            CasOutcome::Conflict(_) => events.conflicts += 1,
        }
    }
    Err(FusionError::StateConflict { key: key.to_owned(), attempts })
}

/// Limits of [`CachedLocalizer`] and [`update_stored`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistOptions {
    /// Time-to-live of the stored state (s); `None`: no expiry.
    pub ttl_seconds: Option<u64>,
    /// Compare-and-swap attempts per update before [`FusionError::StateConflict`] (at least 1).
    pub max_attempts: u32,
    /// Largest encoded state read or written.
    pub max_bytes: usize,
}

impl Default for PersistOptions {
    fn default() -> Self {
        Self { ttl_seconds: Some(DEFAULT_STATE_TTL_S), max_attempts: DEFAULT_MAX_ATTEMPTS, max_bytes: DEFAULT_MAX_STATE_BYTES }
    }
}

/// Why stored state was replaced by a fresh localizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// It did not decode or did not validate.
    Corrupt,
    /// It was larger than [`PersistOptions::max_bytes`].
    TooLarge,
}

impl ResetReason {
    /// Metric label.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Corrupt => "corrupt",
            Self::TooLarge => "too_large",
        }
    }
}

/// What an update or read had to do besides applying the operation (for metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersistEvents {
    /// Stored states decoded (0 when this instance's copy was current).
    pub decoded: u32,
    /// Compare-and-swap conflicts (each followed by a re-read and a re-apply, or the final error).
    pub conflicts: u32,
    /// Stored states replaced by a fresh localizer, and why.
    pub resets: Vec<ResetReason>,
    /// Fresh localizers created because nothing was stored (first use, expiry, eviction).
    pub created: u32,
}

/// One filter's localizer as held by an instance: the decoded localizer and the version of the
/// stored state it corresponds to.
#[derive(Debug, Default)]
pub struct CachedLocalizer {
    held: Option<(Localizer, u64)>,
}

impl CachedLocalizer {
    /// Nothing held yet: the first access reads the store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The localizer held and the stored version it was last written or read as.
    #[must_use]
    pub fn held(&self) -> Option<(&Localizer, u64)> {
        self.held.as_ref().map(|(l, v)| (l, *v))
    }

    /// Forgets the held localizer (the next access reads the store).
    pub fn clear(&mut self) {
        self.held = None;
    }

    /// Writes `loc` unconditionally (a new configuration) and holds it.
    ///
    /// # Errors
    /// Encoding (too large) and store failures.
    pub fn replace(&mut self, store: &mut (impl VersionedStore + ?Sized), key: &str, opts: &PersistOptions, loc: Localizer) -> Result<()> {
        self.held = None;
        let bytes = loc.to_state_bytes(opts.max_bytes)?;
        let version = store.set_versioned(key, &bytes, opts.ttl_seconds)?;
        self.held = Some((loc, version));
        Ok(())
    }

    /// Applies `op` to the stored localizer and stores the result: read (entry + version) →
    /// `op` → compare-and-swap with the version read. On a conflict the state is re-read and
    /// `op` applied again to it, at most `opts.max_attempts` times in all.
    ///
    /// If this instance holds the version it last wrote, the first attempt uses it without
    /// reading or decoding; the compare-and-swap then fails if anyone wrote since, and the next
    /// attempt reads. Nothing stored: `create` builds a fresh localizer (from the configuration).
    /// Corrupt or oversize stored state: replaced by `create`'s localizer (a reset, reported in
    /// the events). The state is stored even when `op` reports an error, because a rejected
    /// measurement still moves counters and per-sensor stamps, as it does in memory.
    ///
    /// # Errors
    /// `create`'s errors (e.g. [`FusionError::UnknownFilter`]), [`FusionError::StateFormat`] (the
    /// stored state is left alone), [`FusionError::StateTooLarge`] for a result too large to
    /// store, [`FusionError::StateConflict`] after `max_attempts` conflicts, store failures.
    pub fn update<R>(
        &mut self,
        store: &mut (impl VersionedStore + ?Sized),
        key: &str,
        opts: &PersistOptions,
        create: impl FnMut() -> Result<Localizer>,
        op: impl FnMut(&mut Localizer) -> R,
    ) -> Result<(R, PersistEvents)> {
        compare_and_swap_loop(store, key, opts, &mut self.held, create, op)
    }

    /// Runs `f` on the stored localizer without writing. Reads the entry; decodes it only if
    /// its version is not the one held. Nothing stored: `f` sees a fresh localizer from `create`.
    ///
    /// # Errors
    /// `create`'s errors, store failures, and the decoding errors
    /// ([`FusionError::CorruptState`], [`FusionError::StateTooLarge`],
    /// [`FusionError::StateFormat`]); a read never resets stored state.
    pub fn read<R>(
        &mut self,
        store: &mut (impl VersionedStore + ?Sized),
        key: &str,
        opts: &PersistOptions,
        create: impl FnOnce() -> Result<Localizer>,
        f: impl FnOnce(&Localizer) -> R,
    ) -> Result<(R, PersistEvents)> {
        let mut events = PersistEvents::default();
        let Some(entry) = store.get_versioned(key)? else {
            self.held = None;
            events.created += 1;
            return Ok((f(&create()?), events));
        };
        match &self.held {
            Some((loc, version)) if *version == entry.version => Ok((f(loc), events)),
            _ => {
                self.held = None;
                let loc = Localizer::from_state_bytes(&entry.value, opts.max_bytes)?;
                events.decoded += 1;
                let out = f(&loc);
                self.held = Some((loc, entry.version));
                Ok((out, events))
            }
        }
    }
}

/// Reads the stored value and its version, or makes a fresh one (nothing stored, or a reset).
fn load<T: Persisted>(
    store: &mut (impl VersionedStore + ?Sized),
    key: &str,
    opts: &PersistOptions,
    create: &mut impl FnMut() -> Result<T>,
    events: &mut PersistEvents,
) -> Result<(T, Option<u64>)> {
    let Some(entry) = store.get_versioned(key)? else {
        events.created += 1;
        return Ok((create()?, None));
    };
    match T::from_stored(&entry.value, opts.max_bytes) {
        Ok(loc) => {
            events.decoded += 1;
            Ok((loc, Some(entry.version)))
        }
        Err(e @ FusionError::StateFormat { .. }) => Err(e),
        Err(e) => {
            events.resets.push(if matches!(e, FusionError::StateTooLarge { .. }) { ResetReason::TooLarge } else { ResetReason::Corrupt });
            // replace it, but only if nobody replaced it meanwhile: compare-and-swap on its version
            Ok((create()?, Some(entry.version)))
        }
    }
}

/// An in-memory [`VersionedStore`] (no expiry) for tests and single-process tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryVersionedStore {
    entries: std::collections::BTreeMap<String, Versioned>,
    next_version: u64,
}

impl MemoryVersionedStore {
    /// Empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn bump(&mut self) -> u64 {
        self.next_version += 1;
        self.next_version
    }
}

impl VersionedStore for MemoryVersionedStore {
    fn get_versioned(&mut self, key: &str) -> Result<Option<Versioned>> {
        Ok(self.entries.get(key).cloned())
    }

    fn set_versioned(&mut self, key: &str, value: &[u8], _ttl_seconds: Option<u64>) -> Result<u64> {
        let version = self.bump();
        self.entries.insert(key.to_owned(), Versioned { value: value.to_vec(), version });
        Ok(version)
    }

    fn compare_and_swap(&mut self, key: &str, expected: Option<u64>, value: &[u8], ttl_seconds: Option<u64>) -> Result<CasOutcome> {
        let current = self.entries.get(key).map(|e| e.version);
        if current != expected {
            return Ok(CasOutcome::Conflict(current));
        }
        Ok(CasOutcome::Swapped(self.set_versioned(key, value, ttl_seconds)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bag::Bag;
    use crate::filter::FilterKind;
    use crate::geo::Geodetic;
    use crate::localizer::{Header, NavSatFixMessage, OdometryMessage, SensorConfig, SensorKind};
    use crate::replay::{SensorMessage, preset, sensor_messages};
    use crate::state::{STATE_SIZE, VX, VYAW, X, Y, YAW, Z};

    const TEST2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/test2.bag");
    const MAX: usize = DEFAULT_MAX_STATE_BYTES;

    fn test2(kind: FilterKind) -> (LocalizerConfig, Vec<(usize, SensorMessage)>) {
        let mut cfg = preset("robot-localization-test2").unwrap();
        cfg.filter = kind;
        let bag = Bag::parse(&std::fs::read(TEST2).unwrap()).unwrap();
        let msgs = sensor_messages(&bag, &cfg).unwrap();
        (cfg, msgs)
    }

    fn apply(loc: &mut Localizer, (idx, msg): &(usize, SensorMessage)) -> Result<Vec<crate::UpdateReport>> {
        match msg {
            SensorMessage::Imu(m) => loc.process_imu(*idx, m),
            SensorMessage::Odometry(m) => loc.process_odometry(*idx, m),
            SensorMessage::NavSatFix(m) => loc.process_navsat(*idx, m),
        }
    }

    fn round_trip(loc: &Localizer) -> Localizer {
        Localizer::from_state_bytes(&loc.to_state_bytes(MAX).unwrap(), MAX).unwrap()
    }

    /// Everything observable is identical: the snapshot covers every field of the localizer.
    fn assert_same(a: &Localizer, b: &Localizer) {
        assert_eq!(a.snapshot(), b.snapshot());
        assert_eq!(a.fused_state(), b.fused_state());
    }

    #[test]
    fn test2_interrupted_half_way_ends_exactly_where_the_uninterrupted_run_does() {
        for kind in [FilterKind::Ekf, FilterKind::Ukf] {
            let (cfg, msgs) = test2(kind);
            let mut whole = Localizer::new(cfg.clone()).unwrap();
            for m in &msgs {
                apply(&mut whole, m).unwrap();
            }
            let half = msgs.len() / 2;
            let mut first = Localizer::new(cfg).unwrap();
            for m in &msgs[..half] {
                apply(&mut first, m).unwrap();
            }
            let bytes = first.to_state_bytes(MAX).unwrap();
            drop(first);
            let mut second = Localizer::from_state_bytes(&bytes, MAX).unwrap();
            for m in &msgs[half..] {
                apply(&mut second, m).unwrap();
            }
            let (p, q) = (whole.pose(), second.pose());
            eprintln!("{kind:?}: {} bytes of state half way; final {p:?}", bytes.len());
            assert_eq!(p, q, "{kind:?}");
            assert_same(&whole, &second);
            assert_eq!(second.stats().updates, whole.stats().updates);
            // still robot_localization's published result
            let err = ((p.x - 1.0206f64).powi(2) + (p.y - 3.4292f64).powi(2) + (p.z - 0.7419f64).powi(2)).sqrt();
            assert!(err <= 0.1383, "{kind:?}: {p:?} is {err} m off");
        }
    }

    #[test]
    fn test2_through_the_store_after_every_message_is_bit_identical() {
        let (cfg, msgs) = test2(FilterKind::Ekf);
        let mut whole = Localizer::new(cfg.clone()).unwrap();
        let mut bytes = Localizer::new(cfg).unwrap().to_state_bytes(MAX).unwrap();
        for m in &msgs {
            apply(&mut whole, m).unwrap();
            let mut loc = Localizer::from_state_bytes(&bytes, MAX).unwrap();
            apply(&mut loc, m).unwrap();
            bytes = loc.to_state_bytes(MAX).unwrap();
        }
        assert_same(&whole, &Localizer::from_state_bytes(&bytes, MAX).unwrap());
    }

    fn diag6(v: f64) -> Vec<f64> {
        (0..36).map(|i| if i % 7 == 0 { v } else { 0.0 }).collect()
    }

    fn odom(t: f64, x: f64, y: f64, yaw: f64) -> OdometryMessage {
        let (s, c) = (yaw / 2.0).sin_cos();
        OdometryMessage {
            header: Header { stamp: t, frame_id: "odom".into() },
            child_frame_id: "base_link".into(),
            position: [x, y, 0.0],
            orientation: [0.0, 0.0, s, c],
            pose_covariance: diag6(1e-3),
            linear: [1.0, 0.0, 0.0],
            angular: [0.0, 0.0, 0.1],
            twist_covariance: diag6(1e-3),
        }
    }

    fn fix(t: f64, lat: f64, lon: f64) -> NavSatFixMessage {
        NavSatFixMessage {
            header: Header { stamp: t, frame_id: "gps".into() },
            status: 0,
            latitude: lat,
            longitude: lon,
            altitude: 10.0,
            position_covariance: [0.25, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 1.0],
            position_covariance_type: 2,
        }
    }

    /// Differential and relative odometry and GNSS (ENU origin at the first fix): every kind of
    /// per-sensor baseline the localizer keeps.
    fn baselines_config(kind: FilterKind) -> LocalizerConfig {
        let mask = |fields: &[usize]| {
            let mut m = [false; STATE_SIZE];
            for &f in fields {
                m[f] = true;
            }
            m
        };
        let sensor = |name: &str, kind, fields: &[usize]| SensorConfig {
            name: name.into(),
            topic: String::new(),
            kind,
            mask: mask(fields),
            differential: false,
            relative: false,
            remove_gravitational_acceleration: false,
            rejection_threshold: None,
        };
        let mut cfg = preset("robot-localization-test2").unwrap();
        cfg.filter = kind;
        let mut diff = sensor("odom_diff", SensorKind::Odometry, &[X, Y, YAW]);
        diff.differential = true;
        let mut rel = sensor("odom_rel", SensorKind::Odometry, &[X, Y, YAW]);
        rel.relative = true;
        let mut gps = sensor("gps", SensorKind::Gnss, &[X, Y, Z]);
        gps.rejection_threshold = Some(10.0);
        cfg.sensors = vec![sensor("odom_twist", SensorKind::Odometry, &[VX, VYAW]), diff, rel, gps];
        cfg
    }

    fn baselines_messages() -> Vec<(usize, SensorMessage)> {
        let mut out = Vec::new();
        for k in 0..200 {
            let t = 100.0 + f64::from(k) * 0.02;
            let (x, y, yaw) = (f64::from(k) * 0.02, f64::from(k) * 0.001, f64::from(k) * 0.002);
            out.push((k as usize % 3, SensorMessage::Odometry(odom(t, x + 3.0, y - 2.0, yaw + 0.5))));
            if k % 10 == 5 {
                out.push((3, SensorMessage::NavSatFix(fix(t + 0.001, 42.0 + y * 9e-6, -71.0 + x * 1.2e-5))));
            }
        }
        out
    }

    #[test]
    fn differential_relative_and_gnss_baselines_survive_a_round_trip() {
        for kind in [FilterKind::Ekf, FilterKind::Ukf] {
            let cfg = baselines_config(kind);
            let msgs = baselines_messages();
            let mut whole = Localizer::new(cfg.clone()).unwrap();
            let mut resumed = Localizer::new(cfg).unwrap();
            for (i, m) in msgs.iter().enumerate() {
                apply(&mut whole, m).unwrap();
                apply(&mut resumed, m).unwrap();
                if i % 37 == 0 {
                    resumed = round_trip(&resumed);
                }
            }
            let snap = whole.snapshot();
            assert!(snap.sensors[1].previous_pose.is_some() && snap.sensors[2].relative_origin.is_some() && snap.enu.is_some());
            assert!(whole.stats().updates > 200, "{:?}", whole.stats());
            assert_same(&whole, &resumed);
        }
        // a configured datum is part of the configuration and round-trips too
        let mut cfg = baselines_config(FilterKind::Ekf);
        cfg.gnss_datum = Some(Geodetic::new(42.0, -71.0, 5.0).unwrap());
        let loc = Localizer::new(cfg).unwrap();
        assert_same(&loc, &round_trip(&loc));
    }

    fn running_test2_localizer() -> Localizer {
        let (cfg, msgs) = test2(FilterKind::Ekf);
        let mut loc = Localizer::new(cfg).unwrap();
        for m in &msgs[..50] {
            apply(&mut loc, m).unwrap();
        }
        loc
    }

    #[test]
    fn bad_stored_state_is_a_typed_error() {
        let loc = running_test2_localizer();
        let good = loc.to_state_bytes(MAX).unwrap();
        assert_eq!(&good[..4], b"ECLS");
        let corrupt = |b: &[u8]| matches!(Localizer::from_state_bytes(b, MAX), Err(FusionError::CorruptState(_)));
        assert!(corrupt(b""));
        assert!(corrupt(b"{not json"));
        assert!(corrupt(b"ECLS"));
        assert!(corrupt(b"ECLS\x01\0\0\0"));
        assert!(corrupt(&good[..good.len() / 2]));
        assert!(corrupt(&good[..good.len() - 1]));
        assert!(corrupt(&[good.as_slice(), &[0]].concat()));
        assert!(corrupt(&[0xff; 64]));
        // the JSON length pointing past the end, or short of the JSON's end
        let mut long = good.clone();
        long[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(corrupt(&long));
        let mut short = good.clone();
        short[8] = short[8].wrapping_sub(1);
        assert!(corrupt(&short));
        // edit the JSON part and the raw floats
        let json_end = HEADER_LEN + u32_at(&good, 8).unwrap() as usize;
        let json_text = String::from_utf8(good[HEADER_LEN..json_end].to_vec()).unwrap();
        let raw: Vec<f64> = good[json_end..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        let rebuild = |json: &[u8], floats: &[f64]| {
            let mut out = good[..8].to_vec();
            out.extend_from_slice(&u32::try_from(json.len()).unwrap().to_le_bytes());
            out.extend_from_slice(json);
            out.extend(floats.iter().flat_map(|x| x.to_le_bytes()));
            out
        };
        let edit = |f: &dyn Fn(&mut serde_json::Value, &mut Vec<f64>)| {
            let mut v: serde_json::Value = serde_json::from_str(&json_text).unwrap();
            let mut floats = raw.clone();
            f(&mut v, &mut floats);
            rebuild(&serde_json::to_vec(&v).unwrap(), &floats)
        };
        assert_eq!(rebuild(json_text.as_bytes(), &raw), good);
        assert_same(&loc, &Localizer::from_state_bytes(&edit(&|_, _| ()), MAX).unwrap());
        // non-finite values: in the raw part, as null (how JSON writes a NaN), as an overflowing literal
        assert!(corrupt(&edit(&|_, f| f[3] = f64::NAN)));
        assert!(corrupt(&edit(&|_, f| f[20] = f64::INFINITY)));
        assert!(corrupt(&edit(&|v, _| v["stats"]["last_nis"] = serde_json::Value::Null)));
        assert!(corrupt(&edit(&|v, _| v["config"]["frequency"] = serde_json::Value::Null)));
        let overflow = json_text.replacen("\"last_time\":", "\"last_time\":1e999,\"unused\":", 1);
        assert_ne!(overflow, json_text);
        assert!(corrupt(&rebuild(overflow.as_bytes(), &raw)));
        // wrong sizes, another filter kind, a broken symmetry flag
        assert!(corrupt(&edit(&|_, f| f.truncate(100))));
        assert!(corrupt(&edit(&|_, f| f.push(0.0))));
        assert!(corrupt(&edit(&|v, _| v["filter"] = "ukf".into())));
        assert!(corrupt(&edit(&|v, _| v["filter"] = "kalman".into())));
        assert!(corrupt(&edit(&|_, f| f[STATE_SIZE + 1] += 0.5)), "covariance flagged symmetric is not");
        assert!(corrupt(&edit(&|v, _| v["sensors"].as_array_mut().unwrap().truncate(1))));
        assert!(corrupt(&edit(&|v, _| v["sensors"][0]["name"] = "imu9".into())));
        assert!(corrupt(&edit(&|v, _| v["sensors"][0]["previous_pose"] = serde_json::json!({"time": 1.0, "position": [0.0, 0.0, 0.0], "rotation": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0], "covariance": [1.0]}))));
        assert!(corrupt(&edit(&|v, _| v["config"]["frequency"] = (-1.0).into())));
        assert!(corrupt(&edit(&|v, _| v["config"]["sensors"].as_array_mut().unwrap().truncate(1))));
        assert!(corrupt(&edit(&|v, _| v["enu"] = serde_json::json!({"origin": [1.0, 2.0], "rotation": []}))));
        let mut old = good.clone();
        old[4..8].copy_from_slice(&0u32.to_le_bytes());
        assert!(corrupt(&old));
        // written by a newer build: its own error, whatever follows the header, so a caller leaves it alone
        let mut newer = good.clone();
        newer[4..8].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(Localizer::from_state_bytes(&newer, MAX).unwrap_err(), FusionError::StateFormat { found: 2, supported: 1 });
        assert_eq!(
            Localizer::from_state_bytes(b"ECLS\x07\0\0\0anything", MAX).unwrap_err(),
            FusionError::StateFormat { found: 7, supported: 1 }
        );
        // size limits on both sides
        assert_eq!(Localizer::from_state_bytes(&good, 100).unwrap_err(), FusionError::StateTooLarge { bytes: good.len(), limit: 100 });
        assert_eq!(loc.to_state_bytes(100).unwrap_err(), FusionError::StateTooLarge { bytes: good.len(), limit: 100 });
        // and the good bytes still decode to the same localizer
        assert_same(&loc, &Localizer::from_state_bytes(&good, MAX).unwrap());
    }

    #[test]
    fn the_raw_part_keeps_every_bit() {
        // -0.0, a subnormal and a state flagged not exactly symmetric survive as they are
        let mut loc = running_test2_localizer();
        let mut snap = loc.snapshot();
        snap.filter.x[0] = -0.0;
        snap.filter.x[1] = f64::MIN_POSITIVE / 3.0;
        snap.filter.p_symmetric = false;
        snap.filter.p[1] = 1e-300;
        loc = Localizer::from_snapshot(snap.clone()).unwrap();
        let back = Localizer::from_state_bytes(&loc.to_state_bytes(MAX).unwrap(), MAX).unwrap().snapshot();
        assert_eq!(back.filter.x[0].to_bits(), (-0.0f64).to_bits());
        assert_eq!(back, snap);
    }

    // ---- the compare-and-swap loop --------------------------------------------------------

    const KEY: &str = "localizer/jackal";

    fn fresh() -> Result<Localizer> {
        Localizer::new(preset("robot-localization-test2").unwrap())
    }

    #[test]
    fn interleaved_instances_retry_on_conflict_and_apply_every_measurement() {
        let (cfg, msgs) = test2(FilterKind::Ekf);
        let opts = PersistOptions::default();
        let mut store = MemoryVersionedStore::new();
        let (mut a, mut b) = (CachedLocalizer::new(), CachedLocalizer::new());
        let mut sequential = Localizer::new(cfg).unwrap();
        let mut log = Vec::new();
        for (k, m) in msgs[..300].iter().enumerate() {
            apply(&mut sequential, m).unwrap();
            // a, a, b, a, a, b, …: every b write makes a's held copy stale
            let who = if k % 3 == 2 { &mut b } else { &mut a };
            let (r, ev) = who.update(&mut store, KEY, &opts, fresh, |loc| apply(loc, m)).unwrap();
            r.unwrap();
            log.push(ev);
        }
        assert_eq!(log[0], PersistEvents { created: 1, ..PersistEvents::default() });
        // a's second message: its own copy is current, nothing read or decoded
        assert_eq!(log[1], PersistEvents::default());
        // b's first: reads a's state
        assert_eq!(log[2], PersistEvents { decoded: 1, ..PersistEvents::default() });
        // a after b: a conflict, a re-read, a re-apply
        assert_eq!(log[3], PersistEvents { decoded: 1, conflicts: 1, ..PersistEvents::default() });
        assert_eq!(log.iter().map(|e| e.conflicts).sum::<u32>(), 99 + 99);
        let (stored, _) = a.read(&mut store, KEY, &opts, fresh, Localizer::snapshot).unwrap();
        assert_eq!(stored, sequential.snapshot());
        assert_eq!(stored.stats.updates + stored.stats.gated, sequential.stats().updates + sequential.stats().gated);
    }

    /// A store where another writer bumps the version before every compare-and-swap.
    struct Contended(MemoryVersionedStore, u32);

    impl VersionedStore for Contended {
        fn get_versioned(&mut self, key: &str) -> Result<Option<Versioned>> {
            self.0.get_versioned(key)
        }
        fn set_versioned(&mut self, key: &str, value: &[u8], ttl: Option<u64>) -> Result<u64> {
            self.0.set_versioned(key, value, ttl)
        }
        fn compare_and_swap(&mut self, key: &str, expected: Option<u64>, value: &[u8], ttl: Option<u64>) -> Result<CasOutcome> {
            if self.1 > 0 {
                self.1 -= 1;
                let current = self.0.get_versioned(key)?.map(|e| e.value).unwrap_or_default();
                self.0.set_versioned(key, &current, ttl)?;
            }
            self.0.compare_and_swap(key, expected, value, ttl)
        }
    }

    #[test]
    fn conflicts_are_retried_a_bounded_number_of_times_then_a_typed_error() {
        let (_, msgs) = test2(FilterKind::Ekf);
        let opts = PersistOptions { max_attempts: 4, ..PersistOptions::default() };
        let mut store = Contended(MemoryVersionedStore::new(), 0);
        let mut c = CachedLocalizer::new();
        c.update(&mut store, KEY, &opts, fresh, |loc| apply(loc, &msgs[0])).unwrap().0.unwrap();
        // three interfering writes: the fourth attempt goes through
        store.1 = 3;
        let mut calls = 0;
        let (_, ev) = c
            .update(&mut store, KEY, &opts, fresh, |loc| {
                calls += 1;
                apply(loc, &msgs[1])
            })
            .unwrap();
        assert_eq!((calls, ev.conflicts, ev.decoded), (4, 3, 3));
        let (updates, _) = c.read(&mut store, KEY, &opts, fresh, |l| l.stats().updates).unwrap();
        assert_eq!(updates, 3, "the imu message's three parts, applied once");
        // interference on every attempt: a typed error, the stored state untouched
        store.1 = u32::MAX;
        let before = store.0.get_versioned(KEY).unwrap().unwrap().value;
        let err = c.update(&mut store, KEY, &opts, fresh, |loc| apply(loc, &msgs[2])).unwrap_err();
        assert_eq!(err, FusionError::StateConflict { key: KEY.into(), attempts: 4 });
        assert_eq!(store.0.get_versioned(KEY).unwrap().unwrap().value, before);
    }

    #[test]
    fn corrupt_or_oversize_stored_state_is_reset_and_a_newer_format_left_alone() {
        let (_, msgs) = test2(FilterKind::Ekf);
        let opts = PersistOptions { max_bytes: 64 * 1024, ..PersistOptions::default() };
        for (bad, reason) in [(b"{garbage".to_vec(), ResetReason::Corrupt), (vec![b' '; 64 * 1024 + 1], ResetReason::TooLarge)] {
            let mut store = MemoryVersionedStore::new();
            store.set_versioned(KEY, &bad, None).unwrap();
            let mut c = CachedLocalizer::new();
            assert!(matches!(c.read(&mut store, KEY, &opts, fresh, |_| ()), Err(FusionError::CorruptState(_) | FusionError::StateTooLarge { .. })));
            let (r, ev) = c.update(&mut store, KEY, &opts, fresh, |loc| apply(loc, &msgs[0])).unwrap();
            r.unwrap();
            assert_eq!(ev.resets, vec![reason]);
            let stored = Localizer::from_state_bytes(&store.get_versioned(KEY).unwrap().unwrap().value, MAX).unwrap();
            assert!(stored.is_initialized());
        }
        let mut store = MemoryVersionedStore::new();
        let newer = b"ECLS\x02\0\0\0{}";
        store.set_versioned(KEY, newer, None).unwrap();
        let err = CachedLocalizer::new().update(&mut store, KEY, &opts, fresh, |loc| apply(loc, &msgs[0])).unwrap_err();
        assert_eq!(err, FusionError::StateFormat { found: 2, supported: STATE_FORMAT });
        assert_eq!(store.get_versioned(KEY).unwrap().unwrap().value, newer.to_vec());
    }

    #[test]
    fn read_skips_the_decode_when_the_held_version_is_current() {
        let (_, msgs) = test2(FilterKind::Ekf);
        let opts = PersistOptions::default();
        let mut store = MemoryVersionedStore::new();
        let mut c = CachedLocalizer::new();
        // nothing stored: a fresh localizer, nothing written
        let (t, ev) = c.read(&mut store, KEY, &opts, fresh, Localizer::time).unwrap();
        assert_eq!((t, ev.created), (None, 1));
        assert!(store.get_versioned(KEY).unwrap().is_none());
        c.update(&mut store, KEY, &opts, fresh, |loc| apply(loc, &msgs[0])).unwrap().0.unwrap();
        let (_, ev) = c.read(&mut store, KEY, &opts, fresh, |_| ()).unwrap();
        assert_eq!(ev.decoded, 0);
        // another writer: decoded once, then held again
        let mut other = CachedLocalizer::new();
        other.update(&mut store, KEY, &opts, fresh, |loc| apply(loc, &msgs[1])).unwrap().0.unwrap();
        let (t, ev) = c.read(&mut store, KEY, &opts, fresh, Localizer::time).unwrap();
        assert_eq!((t, ev.decoded), (Some(msgs[1].1.stamp()), 1));
        assert_eq!(c.read(&mut store, KEY, &opts, fresh, |_| ()).unwrap().1.decoded, 0);
        // replace: unconditional, held at once
        c.replace(&mut store, KEY, &opts, fresh().unwrap()).unwrap();
        let (held, version) = c.held().unwrap();
        assert!(!held.is_initialized());
        assert_eq!(store.get_versioned(KEY).unwrap().unwrap().version, version);
    }
}
