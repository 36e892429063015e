//! The message forms the video-analytics actor consumes and publishes on NATS (JSON bodies).
//!
//! Frames never travel raw on the bus: a producer stores the encoded or raw frame in the cache
//! provider (or an object store) and publishes a [`FrameRef`] on `edgecell.video.frames.<stream>`.
//! The actor answers with a [`FrameSummary`] (to the reply subject, if any) and publishes the
//! frame's analytics events as a JSON array of [`crate::AnalyticsEvent`] on
//! `edgecell.video.events.<stream>`.

use serde::{Deserialize, Serialize};

use crate::frame::PixelFormat;

/// Where a frame is and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameRef {
    /// Stream id (configured with `configure`, or from `wasi:config` key `stream.<id>`).
    pub stream: String,
    /// Frame sequence number.
    pub sequence: u64,
    /// Capture time (ns since the Unix epoch, or since the stream start).
    pub timestamp_ns: u64,
    /// Pixel format of the stored bytes.
    pub format: PixelFormat,
    /// Required for raw formats, 0 for JPEG/PNG.
    #[serde(default)]
    pub width: u32,
    /// Required for raw formats, 0 for JPEG/PNG.
    #[serde(default)]
    pub height: u32,
    /// Cache namespace of the frame's bytes.
    pub namespace: String,
    /// Cache key of the frame's bytes.
    pub key: String,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
const fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What the actor reports per frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameSummary {
    /// Stream id.
    pub stream: String,
    /// Frame sequence number.
    pub sequence: u64,
    /// Detections at or above the score threshold.
    pub detections: usize,
    /// Confirmed tracks on this frame: (track id, class name).
    pub tracks: Vec<(u64, String)>,
    /// Events this frame produced.
    pub events: usize,
    /// Events (this frame's and earlier ones') that could not be published on
    /// `edgecell.video.events.<stream>`: kept in the stream's state, they go out with its next
    /// frame (absent when none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_pending: usize,
    /// The frame was not newer than the stream state's last frame (late, or delivered again):
    /// its detections are counted but it did not move the tracker (no tracks, no events).
    #[serde(default)]
    pub out_of_order: bool,
}
