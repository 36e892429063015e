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
}

/// Result alias for this crate.
pub type Result<T, E = VisionError> = std::result::Result<T, E>;
