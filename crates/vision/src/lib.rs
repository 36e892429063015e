//! edgecell vision domain crate: frames in (JPEG/PNG, RGB/BGR, I420/NV12, MJPEG AVI),
//! letterbox + normalisation for detectors, NanoDet head decoding with per-class NMS,
//! a ByteTrack-class tracker, and zone/line analytics.
//!
//! Free of wasm and wasmCloud types; builds for native and `wasm32-wasip2`. Inference itself
//! is not here: the caller runs the model (inference provider) on the tensor from
//! [`preprocess::letterbox`] and hands the outputs to [`detect::postprocess_nanodet`].
//!
//! Typical flow for one frame:
//! 1. [`frame::decode_frame`] → [`frame::RgbImage`]
//! 2. [`preprocess::letterbox`] with [`preprocess::Normalization::NANODET`] → NCHW tensor + [`preprocess::Letterbox`]
//! 3. run the model (`edgecell:inference/runner.run`)
//! 4. [`detect::postprocess_nanodet`] → detections in frame pixels
//! 5. [`pipeline::StreamProcessor::process`] → tracks and events

#![forbid(unsafe_code)]

pub mod analytics;
pub mod avi;
pub mod coco;
pub mod detect;
pub mod error;
pub mod frame;
pub mod persist;
pub mod pipeline;
pub mod preprocess;
pub mod track;
pub mod wire;

pub use analytics::{
    Analytics, AnalyticsConfig, AnalyticsEvent, AnalyticsState, Direction, EventKind, Line,
    LineCount, Point, Zone,
};
pub use avi::{AviFrame, AviInfo, MjpegAvi};
pub use detect::{BBox, Detection, NanoDetHead, NmsConfig, TensorView, nms, postprocess_nanodet};
pub use error::{PersistError, Result, StateError, VisionError};
pub use frame::{FrameLimits, PixelFormat, RgbImage, YuvRange, decode_frame, decode_image};
pub use persist::{
    CasOutcome, ID_EPOCH_SPAN, PersistedFrame, PersistedStream, Reconfigured, StateSource, StateStore,
    StoredState,
};
pub use pipeline::{
    FrameAnalysis, IDLE_GAP_NS, MAX_OUTBOX_EVENTS, OldClock, QueuedEvent, Retention, STATE_FORMAT, StreamConfig, StreamProcessor, StreamState,
};
pub use preprocess::{
    ChannelOrder, Letterbox, Normalization, PreprocessScratch, letterbox, letterbox_into,
};
pub use track::{ByteTracker, Track, TrackState, TrackerConfig, TrackerOutput, TrackerState};

/// NanoDet-m-416 model input side.
pub const NANODET_INPUT: u32 = 416;
