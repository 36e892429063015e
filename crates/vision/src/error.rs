//! Typed errors of the vision crate.

use thiserror::Error;

/// Everything that can go wrong in the vision pipeline. Bad input is always an error value,
/// never a panic.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VisionError {
    /// The bytes are not a valid image of the stated format (corrupt JPEG/PNG, bad AVI frame).
    #[error("decode error: {0}")]
    Decode(String),
    /// Width/height zero, odd for 4:2:0, or otherwise inconsistent with the data.
    #[error("invalid dimensions: {0}")]
    InvalidDimensions(String),
    /// Raw pixel data (RGB, I420, NV12) shorter than its dimensions require.
    #[error("truncated {format} frame: expected {expected} bytes, got {actual}")]
    Truncated {
        /// Pixel format name.
        format: &'static str,
        /// Bytes required by width × height.
        expected: usize,
        /// Bytes supplied.
        actual: usize,
    },
    /// The encoded or raw frame exceeds the configured byte limit.
    #[error("frame too large: {bytes} bytes (limit {limit})")]
    FrameTooLarge {
        /// Size of the frame in bytes.
        bytes: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The frame's width or height exceeds the configured limit.
    #[error("frame dimensions {width}x{height} exceed the limit {max_width}x{max_height}")]
    DimensionsTooLarge {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// Configured maximum width.
        max_width: u32,
        /// Configured maximum height.
        max_height: u32,
    },
    /// The AVI container is malformed or not a supported MJPEG stream.
    #[error("invalid AVI: {0}")]
    Avi(String),
    /// The AVI container ends in the middle of a chunk.
    #[error("truncated AVI: chunk at offset {offset} needs {needed} bytes, {available} available")]
    AviTruncated {
        /// Byte offset of the chunk in the file.
        offset: usize,
        /// Bytes the chunk header claims.
        needed: usize,
        /// Bytes left in the file.
        available: usize,
    },
    /// Model outputs do not have the shapes the detector head expects.
    #[error("unexpected model output shape: {0}")]
    OutputShape(String),
    /// A configuration value is out of range (thresholds, polygons, sizes).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A persisted stream state that cannot be used (see [`StateError`]).
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why a persisted stream state (`crate::pipeline::StreamState`) cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateError {
    /// The bytes are not an encoded stream state.
    #[error("stream state does not decode: {0}")]
    Corrupt(String),
    /// Written by a build with another state format.
    #[error("stream state format {found}, this build reads format {expected}")]
    Format {
        /// Format in the bytes.
        found: u32,
        /// Format this build writes and reads.
        expected: u32,
    },
    /// The state was built under another stream configuration.
    #[error("stream state belongs to configuration {found:016x}, the stream has {expected:016x}")]
    ConfigMismatch {
        /// Fingerprint recorded in the state.
        found: u64,
        /// Fingerprint of the configuration in use.
        expected: u64,
    },
    /// It decodes but does not hold together (ids, frame counters, slot counts, non-finite values).
    #[error("inconsistent stream state: {0}")]
    Inconsistent(String),
}

impl StateError {
    /// A short stable label for metrics: `corrupt`, `format`, `config` or `inconsistent`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Corrupt(_) => "corrupt",
            Self::Format { .. } => "format",
            Self::ConfigMismatch { .. } => "config",
            Self::Inconsistent(_) => "inconsistent",
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = VisionError> = std::result::Result<T, E>;

/// Why a frame could not be carried through a persisted stream state
/// ([`crate::persist::PersistedStream::process`]).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PersistError {
    /// The state store failed (unreachable, refused the key or the value).
    #[error("stream state store: {0}")]
    Store(String),
    /// Every compare-and-swap lost against concurrent writers of the same stream.
    #[error("stream state kept changing: {attempts} compare-and-swap attempts lost")]
    Contended {
        /// Attempts made.
        attempts: u32,
    },
    /// The configuration or the state failed in the pipeline itself.
    #[error(transparent)]
    Vision(#[from] VisionError),
}
