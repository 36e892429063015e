//! Per-stream state that ties post-processed detections to the tracker and the analytics
//! (what `edgecell:video/analytics.process-frame` does after inference).

use serde::{Deserialize, Serialize};

use crate::analytics::{Analytics, AnalyticsConfig, AnalyticsEvent, Line, LineCount, Zone};
use crate::coco;
use crate::detect::{Detection, NmsConfig};
use crate::error::{Result, VisionError};
use crate::track::{ByteTracker, Track, TrackerConfig};

/// Stream configuration (mirrors `edgecell:video/analytics.stream-config`, plus tracker tuning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// Model name in the inference registry.
    pub model: String,
    /// Detections below this score are not reported (the tracker still sees down to its
    /// `low_threshold`).
    pub score_threshold: f32,
    /// Per-class NMS IoU threshold.
    pub iou_threshold: f32,
    /// COCO class names to keep; empty = all.
    #[serde(default)]
    pub classes: Vec<String>,
    /// Zones.
    #[serde(default)]
    pub zones: Vec<Zone>,
    /// Counting lines.
    #[serde(default)]
    pub lines: Vec<Line>,
    /// Consecutive frames inside a zone before `entered` fires.
    #[serde(default = "default_min_frames")]
    pub min_frames_in_zone: u32,
    /// Tracker thresholds.
    #[serde(default)]
    pub tracker: TrackerConfig,
}

fn default_min_frames() -> u32 {
    3
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            model: "nanodet-m-416".into(),
            score_threshold: 0.35,
            iou_threshold: 0.6,
            classes: Vec::new(),
            zones: Vec::new(),
            lines: Vec::new(),
            min_frames_in_zone: default_min_frames(),
            tracker: TrackerConfig::default(),
        }
    }
}

/// The result of one frame through tracking and analytics.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameAnalysis {
    /// Detections at or above the stream's score threshold.
    pub detections: Vec<Detection>,
    /// Tracks matched in this frame.
    pub tracks: Vec<Track>,
    /// Zone and line events of this frame.
    pub events: Vec<AnalyticsEvent>,
}

/// Tracker + analytics for one stream.
#[derive(Debug, Clone)]
pub struct StreamProcessor {
    cfg: StreamConfig,
    class_ids: Vec<u32>,
    tracker: ByteTracker,
    analytics: Analytics,
}

impl StreamProcessor {
    /// Validates `cfg` and builds the per-stream state.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] for unknown class names, bad thresholds, zones or lines.
    pub fn new(cfg: StreamConfig) -> Result<Self> {
        let class_ids = cfg
            .classes
            .iter()
            .map(|n| {
                coco::class_id(n)
                    .ok_or_else(|| VisionError::InvalidConfig(format!("unknown class {n:?}")))
            })
            .collect::<Result<Vec<u32>>>()?;
        let nms = NmsConfig {
            score_threshold: cfg.score_threshold,
            iou_threshold: cfg.iou_threshold,
            max_detections: 100,
        };
        nms.validate()?;
        let tracker = ByteTracker::new(cfg.tracker)?;
        let analytics = Analytics::new(AnalyticsConfig {
            zones: cfg.zones.clone(),
            lines: cfg.lines.clone(),
            min_frames_in_zone: cfg.min_frames_in_zone,
        })?;
        Ok(Self {
            cfg,
            class_ids,
            tracker,
            analytics,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &StreamConfig {
        &self.cfg
    }

    /// NMS settings to post-process with: the score floor is the lower of the report threshold
    /// and the tracker's low threshold, so low-score boxes reach ByteTrack's second stage.
    #[must_use]
    pub fn nms_config(&self) -> NmsConfig {
        NmsConfig {
            score_threshold: self.cfg.score_threshold.min(self.cfg.tracker.low_threshold),
            iou_threshold: self.cfg.iou_threshold,
            max_detections: 200,
        }
    }

    /// Class ids to keep (empty = all).
    #[must_use]
    pub fn class_filter(&self) -> &[u32] {
        &self.class_ids
    }

    /// Feeds one frame's post-processed detections (source pixels).
    pub fn process(&mut self, timestamp_ns: u64, detections: &[Detection]) -> FrameAnalysis {
        let kept: Vec<Detection> = detections
            .iter()
            .copied()
            .filter(|d| self.class_ids.is_empty() || self.class_ids.contains(&d.class_id))
            .collect();
        let out = self.tracker.update(&kept);
        let events = self
            .analytics
            .update(timestamp_ns, &out.tracks, &out.removed);
        let reported = kept
            .into_iter()
            .filter(|d| d.score >= self.cfg.score_threshold)
            .collect();
        FrameAnalysis {
            detections: reported,
            tracks: out.tracks,
            events,
        }
    }

    /// Crossing totals per line.
    #[must_use]
    pub fn line_counts(&self) -> Vec<(String, LineCount)> {
        self.analytics.line_counts()
    }

    /// Track ids issued so far.
    #[must_use]
    pub fn tracks_started(&self) -> u64 {
        self.tracker.ids_issued()
    }
}
