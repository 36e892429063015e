//! Error type shared by every module of the crate.

use thiserror::Error;

/// Every failure the fusion crate reports. Bad input never panics: it ends up here.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FusionError {
    /// A measurement, message field or parameter was NaN or infinite.
    #[error("non-finite value in {0}")]
    NonFinite(&'static str),
    /// A covariance (measurement, innovation or state) is not symmetric positive definite.
    #[error("covariance is not positive definite: {0}")]
    NotPositiveDefinite(&'static str),
    /// A message is older than the filter's current time.
    #[error("out-of-order timestamp {time} (filter is at {last})")]
    OutOfOrder {
        /// time of the rejected input
        time: f64,
        /// time the filter had already reached
        last: f64,
    },
    /// The same sensor delivered two messages with the same timestamp.
    #[error("duplicate timestamp {time} from sensor {sensor}")]
    DuplicateTimestamp {
        /// sensor name
        sensor: String,
        /// repeated time stamp
        time: f64,
    },
    /// A message refers to a coordinate frame the filter has no transform for.
    #[error("unknown frame {0:?}")]
    UnknownFrame(String),
    /// A sensor index or name that was never configured.
    #[error("unknown sensor {0:?}")]
    UnknownSensor(String),
    /// Invalid configuration (dimensions, ranges, names).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A measurement was rejected by the Mahalanobis gate.
    #[error("measurement rejected by gate: squared Mahalanobis distance {d2} > {threshold}")]
    Gated {
        /// squared Mahalanobis distance of the innovation
        d2: f64,
        /// configured gate
        threshold: f64,
    },
    /// Malformed binary or text input (bag, CSV, message).
    #[error("parse error: {0}")]
    Parse(String),
    /// Unknown preset name.
    #[error("unknown preset {0:?}")]
    UnknownPreset(String),
    /// Persisted state could not be (de)serialised or the store failed.
    #[error("state store: {0}")]
    Store(String),
    /// A filter id with neither stored state nor a configuration.
    #[error("unknown filter {0:?}")]
    UnknownFilter(String),
    /// Persisted localizer state that cannot be decoded or fails validation.
    #[error("corrupt persisted state: {0}")]
    CorruptState(String),
    /// Persisted state larger than the limit (read or about to be written).
    #[error("persisted state of {bytes} bytes exceeds the limit of {limit} bytes")]
    StateTooLarge {
        /// size of the state
        bytes: usize,
        /// the limit
        limit: usize,
    },
    /// Persisted state written in a newer format than this build reads; it is left alone.
    #[error("persisted state has format {found}; this build reads format {supported}")]
    StateFormat {
        /// format found in the store
        found: u32,
        /// format this build writes and reads
        supported: u32,
    },
    /// A finite value beyond what the computation accepts.
    #[error("{what} {value:e} is beyond ±{limit:e}")]
    OutOfRange {
        /// the field
        what: &'static str,
        /// the value
        value: f64,
        /// the largest accepted magnitude
        limit: f64,
    },
    /// A bounded collection (sensors, tracks, detections per scan) is full.
    #[error("capacity: {0}")]
    Capacity(String),
    /// Every compare-and-swap attempt found that another writer had changed the state.
    #[error("state {key:?} kept changing under concurrent writers: {attempts} compare-and-swap attempts conflicted")]
    StateConflict {
        /// store key
        key: String,
        /// attempts made
        attempts: u32,
    },
}

/// Crate result alias.
pub type Result<T> = std::result::Result<T, FusionError>;

/// Returns `Err(NonFinite(what))` unless every value is finite.
pub(crate) fn ensure_finite<'a>(
    values: impl IntoIterator<Item = &'a f64>,
    what: &'static str,
) -> Result<()> {
    if values.into_iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(FusionError::NonFinite(what))
    }
}
