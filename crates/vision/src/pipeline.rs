//! Per-stream state that ties post-processed detections to the tracker and the analytics
//! (what `edgecell:video/analytics.process-frame` does after inference), and its persisted
//! form, [`StreamState`], for hosts that run every frame in a fresh instance. A frame older than
//! the last one is left out of tracking, unless it is so much older that the source's clock
//! restarted ([`CLOCK_RESTART_NS`]): then the stream's tracks end and tracking starts over.

use serde::{Deserialize, Serialize};

use crate::analytics::{
    Analytics, AnalyticsConfig, AnalyticsEvent, AnalyticsState, Line, LineCount, Zone,
};
use crate::coco;
use crate::detect::{Detection, NmsConfig};
use crate::error::{Result, StateError, VisionError};
use crate::track::{ByteTracker, Track, TrackerConfig, TrackerState};

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
    /// Consecutive frames inside a zone before `entered` fires (or outside before `left`);
    /// frames where the track is lost neither count nor break the run.
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
    /// The frame is not newer than the last one processed (late or redelivered, not a
    /// restarted clock): its detections are reported but it did not move the tracker (no
    /// tracks, no events).
    pub out_of_order: bool,
}

/// The format [`StreamState::encode`] writes; another value in stored bytes is refused.
pub const STATE_FORMAT: u32 = 1;

/// Everything a [`StreamProcessor`] carries from frame to frame, without its configuration
/// (stored once, elsewhere): the tracker's and the analytics' state, the time of the last frame
/// processed, and a fingerprint of the configuration it was built under.
///
/// Encoded as JSON (exact: `serde_json` with `float_roundtrip` writes the shortest form that
/// reads back to the same `f64`/`f32`). A [`StreamProcessor::restore`]d processor continues
/// exactly as the one the state was taken from would have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamState {
    format: u32,
    config: u64,
    last_timestamp_ns: Option<u64>,
    /// The interval between the last two frames processed (absent in states from before it
    /// was kept): how late a frame may be before its clock counts as restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    frame_interval_ns: Option<u64>,
    tracker: TrackerState,
    analytics: AnalyticsState,
    /// Events committed with the state and not yet known to be published (absent in states
    /// from before it was kept, and when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outbox: Vec<QueuedEvent>,
    /// The clock before the last restart, while frames of it may still be in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    old_clock: Option<OldClock>,
    /// Sequence number of the last frame whose events were queued (absent in states from
    /// before it was kept, and on streams that never queued): what events the stream's end
    /// produces carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_sequence: Option<u64>,
}

/// What a stream remembers of its source's clock before a restart
/// ([`StreamProcessor::process`]), until the new clock has run for the restart distance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OldClock {
    /// The last frame time of the old clock.
    pub last_ns: u64,
    /// The new clock's first frame time.
    pub restarted_at_ns: u64,
}

/// An event waiting in a stream's outbox, with the sequence number of the frame that produced
/// it (see [`crate::PersistedStream::process_queued`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// Sequence number of the frame whose processing produced the event.
    pub sequence: u64,
    /// The event.
    pub event: AnalyticsEvent,
}

/// Most events a stream's outbox keeps while they cannot be published; past it the oldest are
/// dropped (and counted). At the vtest clip's rate of events this is minutes of a busy scene.
pub const MAX_OUTBOX_EVENTS: usize = 1024;

/// Only the format field of an encoded state, to tell a format change from corruption.
#[derive(Deserialize)]
struct FormatProbe {
    format: u32,
}

impl StreamState {
    /// Fingerprint of the configuration the state was built under.
    #[must_use]
    pub fn config_fingerprint(&self) -> u64 {
        self.config
    }

    /// Timestamp of the last frame processed (none before the first).
    #[must_use]
    pub fn last_timestamp_ns(&self) -> Option<u64> {
        self.last_timestamp_ns
    }

    /// The tracker's part.
    #[must_use]
    pub fn tracker(&self) -> &TrackerState {
        &self.tracker
    }

    /// The zones' and lines' part.
    #[must_use]
    pub fn analytics(&self) -> &AnalyticsState {
        &self.analytics
    }

    /// The bytes to persist.
    ///
    /// # Errors
    /// [`StateError::Inconsistent`] if the state holds a value JSON cannot carry.
    pub fn encode(&self) -> std::result::Result<Vec<u8>, StateError> {
        serde_json::to_vec(self).map_err(|e| StateError::Inconsistent(e.to_string()))
    }

    /// What a replaced state still owes its consumers, read without its configuration: its
    /// outbox, and the `left` events of the tracks inside zones as of its last frame (with the
    /// last queued sequence, 0 if none). States from before zone names were kept close none.
    #[must_use]
    pub fn into_pending(self) -> (Vec<QueuedEvent>, Vec<QueuedEvent>) {
        let sequence = self.last_sequence.unwrap_or(0);
        let closing = self.last_timestamp_ns.map(|t| self.analytics.closing_events(t)).unwrap_or_default();
        (self.outbox, closing.into_iter().map(|event| QueuedEvent { sequence, event }).collect())
    }

    /// Reads bytes written by [`StreamState::encode`].
    ///
    /// # Errors
    /// [`StateError::Format`] for another format, [`StateError::Corrupt`] for anything else
    /// that does not decode.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, StateError> {
        match serde_json::from_slice::<Self>(bytes) {
            Ok(s) if s.format == STATE_FORMAT => Ok(s),
            Ok(s) => Err(StateError::Format {
                found: s.format,
                expected: STATE_FORMAT,
            }),
            Err(e) => match serde_json::from_slice::<FormatProbe>(bytes) {
                Ok(p) if p.format != STATE_FORMAT => Err(StateError::Format {
                    found: p.format,
                    expected: STATE_FORMAT,
                }),
                _ => Err(StateError::Corrupt(e.to_string())),
            },
        }
    }
}

/// FNV-1a (64-bit) of the configuration's JSON: stable across builds and platforms.
fn fingerprint(cfg: &StreamConfig) -> Result<u64> {
    let json = serde_json::to_vec(cfg).map_err(|e| VisionError::InvalidConfig(e.to_string()))?;
    Ok(json.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    }))
}

/// A frame newer than the last one processed by more than this (or by more than ten frame
/// intervals, for a source slower than that) ends the stream's tracks before it is tracked:
/// the source was silent (a camera, encoder or link down), and what was in view before the
/// gap is not followed across it. The tracks' zones report `left` stamped with the last frame
/// before the gap; ids and line totals go on.
pub const IDLE_GAP_NS: u64 = 60_000_000_000;

/// How much a stream's stored state is worth keeping (see [`StreamProcessor::retention`]):
/// a store may keep an `Owing` state longer than an `Idle` one, so a source silent for a while
/// still gets its `left` events and undelivered events when it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Nothing is owed: losing the state loses no event.
    Idle,
    /// Events wait in the outbox, or tracks are inside zones.
    Owing,
}

/// A frame older than the last one processed by ten frame intervals or more, and by at least
/// this much (at most 60 s), means the source's clock restarted, not a frame delivered late:
/// the stream's tracks end and tracking starts over. Anything closer, and the last frame again,
/// is a late or repeated frame and is left out of tracking. The floor is well above what
/// instances handling one stream concurrently make a frame late by, so a stall does not end
/// every track; a clock that restarts less than this far behind (a 2 s clip produced again
/// from 0) has its frames left out until it passes the old last frame.
pub const CLOCK_RESTART_NS: u64 = 10_000_000_000;

/// How far past the old clock's last frame a frame may be and still count as in flight from
/// before a restart (at least; five frame intervals when that is longer, up to 10 s).
pub const OLD_CLOCK_WINDOW_NS: u64 = 1_000_000_000;

/// Tracker + analytics for one stream.
#[derive(Debug, Clone)]
pub struct StreamProcessor {
    cfg: StreamConfig,
    class_ids: Vec<u32>,
    fingerprint: u64,
    last_timestamp_ns: Option<u64>,
    frame_interval_ns: Option<u64>,
    tracker: ByteTracker,
    analytics: Analytics,
    outbox: Vec<QueuedEvent>,
    old_clock: Option<OldClock>,
    last_sequence: Option<u64>,
}

impl StreamProcessor {
    /// Validates `cfg` and builds the per-stream state.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] for unknown class names, bad thresholds, zones or lines.
    pub fn new(cfg: StreamConfig) -> Result<Self> {
        let tracker = ByteTracker::new(cfg.tracker)?;
        let fingerprint = fingerprint(&cfg)?;
        Self::build(cfg, fingerprint, tracker, None, None, None)
    }

    /// Continues from a persisted `state` under `cfg`.
    ///
    /// # Errors
    /// As [`StreamProcessor::new`] for `cfg`; [`VisionError::State`] with
    /// [`StateError::ConfigMismatch`] when `state` was built under another configuration, or
    /// [`StateError::Inconsistent`] when it does not hold together.
    pub fn restore(cfg: StreamConfig, state: StreamState) -> Result<Self> {
        let tracker = ByteTracker::from_state(cfg.tracker, state.tracker)?;
        let expected = fingerprint(&cfg)?;
        if state.config != expected {
            return Err(StateError::ConfigMismatch {
                found: state.config,
                expected,
            }
            .into());
        }
        let mut processor = Self::build(
            cfg,
            expected,
            tracker,
            Some(state.analytics),
            state.last_timestamp_ns,
            state.frame_interval_ns,
        )?;
        // (a state written with a larger limit keeps its newest events)
        processor.outbox = state.outbox;
        processor.trim_outbox();
        processor.old_clock = state.old_clock;
        processor.last_sequence = state.last_sequence;
        Ok(processor)
    }

    /// [`StreamState::decode`] then [`StreamProcessor::restore`].
    ///
    /// # Errors
    /// As those two.
    pub fn decode_state(cfg: StreamConfig, bytes: &[u8]) -> Result<Self> {
        Self::restore(cfg, StreamState::decode(bytes)?)
    }

    /// A copy of the per-frame state, to persist.
    #[must_use]
    pub fn snapshot(&self) -> StreamState {
        StreamState {
            format: STATE_FORMAT,
            config: self.fingerprint,
            last_timestamp_ns: self.last_timestamp_ns,
            frame_interval_ns: self.frame_interval_ns,
            tracker: self.tracker.state(),
            analytics: self.analytics.state(),
            outbox: self.outbox.clone(),
            old_clock: self.old_clock,
            last_sequence: self.last_sequence,
        }
    }

    /// [`StreamProcessor::snapshot`] then [`StreamState::encode`].
    ///
    /// # Errors
    /// As [`StreamState::encode`].
    pub fn encode_state(&self) -> Result<Vec<u8>> {
        Ok(self.snapshot().encode()?)
    }

    /// Fingerprint of the configuration (what [`StreamState::config_fingerprint`] must equal).
    #[must_use]
    pub fn config_fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Timestamp of the last frame processed.
    #[must_use]
    pub fn last_timestamp_ns(&self) -> Option<u64> {
        self.last_timestamp_ns
    }

    fn build(
        cfg: StreamConfig,
        fingerprint: u64,
        tracker: ByteTracker,
        analytics: Option<AnalyticsState>,
        last_timestamp_ns: Option<u64>,
        frame_interval_ns: Option<u64>,
    ) -> Result<Self> {
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
        let acfg = AnalyticsConfig {
            zones: cfg.zones.clone(),
            lines: cfg.lines.clone(),
            min_frames_in_zone: cfg.min_frames_in_zone,
        };
        let analytics = match analytics {
            Some(state) => Analytics::from_state(acfg, state)?,
            None => Analytics::new(acfg)?,
        };
        Ok(Self {
            cfg,
            class_ids,
            fingerprint,
            last_timestamp_ns,
            frame_interval_ns,
            tracker,
            analytics,
            outbox: Vec::new(),
            old_clock: None,
            last_sequence: None,
        })
    }

    /// Events committed with the state and not yet known to be published, oldest first.
    #[must_use]
    pub fn outbox(&self) -> &[QueuedEvent] {
        &self.outbox
    }

    /// Adds the events of the frame `sequence` to the outbox (it is then the stream's last
    /// sequence); returns how many of the oldest had to be dropped to stay within
    /// [`MAX_OUTBOX_EVENTS`].
    pub fn queue(&mut self, sequence: u64, events: &[AnalyticsEvent]) -> usize {
        self.last_sequence = Some(sequence);
        self.carry(events.iter().map(|e| QueuedEvent { sequence, event: e.clone() }))
    }

    /// Adds queued events (another state's) to the outbox; returns how many of the oldest had
    /// to be dropped to stay within [`MAX_OUTBOX_EVENTS`].
    pub fn carry(&mut self, events: impl IntoIterator<Item = QueuedEvent>) -> usize {
        self.outbox.extend(events);
        self.trim_outbox()
    }

    /// Empties the outbox, returning what it held, oldest first.
    pub fn take_outbox(&mut self) -> Vec<QueuedEvent> {
        std::mem::take(&mut self.outbox)
    }

    /// What this stream owes its consumers when it is replaced: its outbox, and the `left`
    /// events of ending its tracks as of its last frame, with the last queued sequence (0 if
    /// none); as [`StreamState::into_pending`], read with the configuration.
    #[must_use]
    pub fn into_pending(mut self) -> (Vec<QueuedEvent>, Vec<QueuedEvent>) {
        let sequence = self.last_sequence.unwrap_or(0);
        let closing = self.end_tracks().into_iter().map(|event| QueuedEvent { sequence, event }).collect();
        (self.take_outbox(), closing)
    }

    /// Ends every track as of the last frame processed: the `left` events of the tracks inside
    /// zones, stamped with that frame's time (none before the first frame). Ids and line totals
    /// go on. What a clock restart does, and what a stream started over closes.
    pub fn end_tracks(&mut self) -> Vec<AnalyticsEvent> {
        let Some(last) = self.last_timestamp_ns else {
            return Vec::new();
        };
        let ended = self.tracker.end_all();
        self.analytics.update(last, &[], &ended)
    }

    /// Drops the oldest queued events past [`MAX_OUTBOX_EVENTS`]; returns how many.
    fn trim_outbox(&mut self) -> usize {
        let excess = self.outbox.len().saturating_sub(MAX_OUTBOX_EVENTS);
        self.outbox.drain(..excess);
        excess
    }

    /// Empties the outbox (its events were published).
    pub fn clear_outbox(&mut self) {
        self.outbox.clear();
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
    ///
    /// A frame that is not newer than the last processed one — late, or the same frame
    /// delivered again after a lost reply — does not rewind or advance anything: its detections
    /// are reported, with no tracks and no events, and [`FrameAnalysis::out_of_order`] is set.
    /// So redelivering a frame (at-least-once producers, retries) is idempotent. A frame so much
    /// older that the source's clock restarted ([`CLOCK_RESTART_NS`]) is not late: the tracks
    /// of before end as of the last frame (their `left` events come first, stamped with that
    /// frame's time), and this frame starts tracking over. Until the new clock has run for the
    /// restart distance, a frame next to the old clock's last frame and closer to it than to
    /// the new clock's (one still in flight from before the restart) is late too, instead of a
    /// jump forward that would end the new tracks and restart once more.
    pub fn process(&mut self, timestamp_ns: u64, detections: &[Detection]) -> FrameAnalysis {
        let kept: Vec<Detection> = detections
            .iter()
            .copied()
            .filter(|d| self.class_ids.is_empty() || self.class_ids.contains(&d.class_id))
            .collect();
        let reported: Vec<Detection> = kept
            .iter()
            .copied()
            .filter(|d| d.score >= self.cfg.score_threshold)
            .collect();
        let mut events = Vec::new();
        if let Some(last) = self.last_timestamp_ns {
            if timestamp_ns > last && !self.is_old_clock(timestamp_ns) {
                if timestamp_ns - last > self.idle_gap() {
                    // the source was silent for long (a camera or link down): whoever was in
                    // view then is not followed across the gap; the tracks end as of the last
                    // frame (their zones report `left`) and this frame starts tracking over. No
                    // frame of a clock from before the silence is still in flight. (The gap
                    // becomes the frame interval, as for a slow source such as a time-lapse
                    // camera, which looks the same at its second frame; the next frame at the
                    // usual rate sets it back.)
                    events = self.end_tracks();
                    self.old_clock = None;
                }
                self.frame_interval_ns = Some(timestamp_ns - last);
            } else if self.is_out_of_order(timestamp_ns) {
                return FrameAnalysis {
                    detections: reported,
                    out_of_order: true,
                    ..FrameAnalysis::default()
                };
            } else {
                // the source's clock went back by more than a reorder: it restarted (a camera
                // or encoder restart, a producer run again). Its tracks end now, as of the last
                // frame seen (their zones report `left`); ids and line totals go on.
                events = self.end_tracks();
                self.old_clock = Some(OldClock { last_ns: last, restarted_at_ns: timestamp_ns });
            }
        }
        self.last_timestamp_ns = Some(timestamp_ns);
        if self
            .old_clock
            .is_some_and(|oc| timestamp_ns.saturating_sub(oc.restarted_at_ns) >= self.restart_distance())
        {
            self.old_clock = None;
        }
        let out = self.tracker.update(&kept);
        events.extend(
            self.analytics
                .update(timestamp_ns, &out.tracks, &out.removed),
        );
        FrameAnalysis {
            detections: reported,
            tracks: out.tracks,
            events,
            out_of_order: false,
        }
    }

    /// True when a frame at `timestamp_ns` is the last one again, or older than it by less
    /// than the restart distance (further back, the source's clock restarted: see
    /// [`CLOCK_RESTART_NS`] and [`Self::process`]).
    #[must_use]
    pub fn is_out_of_order(&self, timestamp_ns: u64) -> bool {
        let restart = self.restart_distance();
        self.is_old_clock(timestamp_ns)
            || self.last_timestamp_ns.is_some_and(|last| {
                timestamp_ns == last || (timestamp_ns < last && last - timestamp_ns < restart)
            })
    }

    /// How far ahead of the last frame a frame must be for the source to count as having been
    /// silent: [`IDLE_GAP_NS`], or ten frame intervals when the source runs slower than that.
    fn idle_gap(&self) -> u64 {
        self.frame_interval_ns.map_or(IDLE_GAP_NS, |i| i.saturating_mul(10).max(IDLE_GAP_NS))
    }

    /// What keeping this stream's state is worth: [`Retention::Owing`] while it holds events
    /// not yet delivered or tracks inside zones (whose `left` events the state alone can
    /// give), else [`Retention::Idle`].
    #[must_use]
    pub fn retention(&self) -> Retention {
        if self.outbox.is_empty() && !self.analytics.occupied() { Retention::Idle } else { Retention::Owing }
    }

    /// How far back a frame must be for the source's clock to count as restarted.
    fn restart_distance(&self) -> u64 {
        self.frame_interval_ns.map_or(CLOCK_RESTART_NS, |i| {
            i.saturating_mul(10).clamp(CLOCK_RESTART_NS, 60_000_000_000)
        })
    }

    /// A frame newer than the last one, at least twice as close to the last frame before a
    /// recent restart as to the current clock's last frame, and as late as a frame could be on
    /// the old clock (up to the restart distance behind its last frame) or at most
    /// [`OLD_CLOCK_WINDOW_NS`] (or five frame intervals, up to 10 s) ahead of it: in flight from
    /// before the restart. Anything else is the new clock's (a forward jump, a gap), so a new
    /// clock that runs into the old one's range is held back only until it is past that window
    /// (a third of the way from its last frame to the old clock's, plus the window, at most).
    fn is_old_clock(&self, timestamp_ns: u64) -> bool {
        match (self.old_clock, self.last_timestamp_ns) {
            (Some(oc), Some(last)) if timestamp_ns > last => {
                let ahead = self
                    .frame_interval_ns
                    .map_or(OLD_CLOCK_WINDOW_NS, |i| i.saturating_mul(5))
                    .clamp(OLD_CLOCK_WINDOW_NS, 10 * OLD_CLOCK_WINDOW_NS);
                let in_range = timestamp_ns > oc.last_ns.saturating_sub(self.restart_distance())
                    && timestamp_ns <= oc.last_ns.saturating_add(ahead);
                in_range && timestamp_ns.abs_diff(oc.last_ns).saturating_mul(2) < timestamp_ns - last
            }
            _ => false,
        }
    }

    /// The clock before the last restart, while it is remembered.
    #[must_use]
    pub fn old_clock(&self) -> Option<OldClock> {
        self.old_clock
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

    /// See [`ByteTracker::start_ids_at`].
    pub fn start_ids_at(&mut self, first: u64) -> bool {
        self.tracker.start_ids_at(first)
    }
}
