//! The video-analytics actor: a thin adapter between `edgecell:video` (and NATS frame
//! references) and the `edgecell-vision` crate; the model runs in the inference provider.
//!
//! Per frame: read the bytes (inline or from the cache provider) → decode → letterbox and
//! normalise → `edgecell:inference/runner.run` → NanoDet decoding and NMS → tracker → zones and
//! lines → events.
//!
//! A stream's whole state (tracker, zones, lines) lives in the cache provider, not in the
//! instance: a wasmCloud 1.x host runs every invocation in a fresh instance, several at once.
//! Per frame the actor reads `video/state/<stream>` with its version, advances it and writes it
//! back with compare-and-swap on that version (TTL `wasi:config` `state-ttl-ms`, default 10 min,
//! 0 = none); on a conflict it re-reads and redoes the tracker step (not inference), at most
//! `state-cas-attempts` times (default 4). An instance that still holds exactly the stored
//! entry skips decoding it (the embedded host keeps instances). A stored state that cannot be
//! used is replaced by a fresh one and counted in `video_state_resets_total`; a frame not newer
//! than the state's last frame (late, or the same frame sent again after a lost reply) is
//! reported (detections only) without touching the state and counted in
//! `video_frames_out_of_order_total` (see `edgecell_vision::persist`).
//!
//! Frames from NATS publish their events through the state's outbox: the events are committed
//! with the state, published on `edgecell.video.events.<stream>`, then cleared. A publish that
//! fails keeps them (the frame's summary says how many in `events_pending`,
//! `video_events_deferred_total`), and they go out with the stream's next frame, or with this
//! frame sent again; delivery is at least once. An outbox kept from publishing for long drops
//! its oldest events past `edgecell_vision::MAX_OUTBOX_EVENTS` (`video_events_dropped_total`).
//! A state that owes events (an outbox, or tracks inside zones whose `left` only it can give)
//! is written with the longer TTL `state-owing-ttl-ms` (default 24 h, never below
//! `state-ttl-ms`; 0 = the idle one): a source silent for longer than
//! `edgecell_vision::IDLE_GAP_NS` (60 s, or ten frame intervals) finds it when it comes back,
//! and its first frame ends the old tracks (their `left` events, stamped with the last frame
//! before the silence, come first). A state that is lost all the same (past that TTL,
//! corruption, or evicted: the cache evicts its least recently used entries under memory
//! pressure whatever their TTL, and a silent stream's state is among them) takes its outbox
//! along. `configure` starts a stream
//! over without losing them: its tracks end, the `left` events of those inside zones join what
//! the outbox held (`video_reconfigure_closed_events_total`,
//! `video_reconfigure_carried_events_total`), and they go out with the next frame. A frame
//! that finds a state built under another configuration (a `configure` racing it) carries
//! them over the same way (`video_reset_carried_events_total`). A frame through the WIT
//! `process-frame` returns what waits ahead of its own events. `video_events_redelivered_total`
//! counts every event published with a later frame than its own (after a failed publish, a
//! lost clear, or carried over from a replaced state).
//!
//! Track ids stay unique per stream when its state is lost (TTL, corruption, `configure`): each
//! start from nothing takes the next count of `video/ids/<stream>` (no TTL) and hands out ids
//! from (count − 1) × 10^9 + 1, so the first start's ids are 1, 2, … and a restart's are above
//! every earlier one, as long as the cache keeps that counter: a restarted cache provider loses
//! it along with every stream's state, and ids start at 1 again
//! (`video_id_epochs_unavailable_total` counts starts without a usable counter).
//!
//! Stream configurations are kept in the cache (`video/stream-config/<stream>`, written by
//! `configure`, which also resets the stream's state); streams not configured explicitly come
//! from `wasi:config` key `stream.<id>` (JSON of `edgecell_vision::StreamConfig`).

// The generated guest glue is FFI with the component ABI and needs `unsafe`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "edgecell:actors/video-analytics",
        generate_all,
    });
}

use std::cell::RefCell;
use std::collections::BTreeMap;

use bindings::edgecell::cache::store as cache;
use bindings::edgecell::inference::runner::{self, Tensor, TensorData};
use bindings::edgecell::metrics::recorder::{self, Label, MetricKind};
use bindings::exports::edgecell::video::analytics::{self as wit, VideoError};
use bindings::exports::wasmcloud::messaging::handler::Guest as Handler;
use bindings::wasmcloud::messaging::consumer;
use bindings::wasmcloud::messaging::types::BrokerMessage;
use edgecell_vision::wire::{FrameRef, FrameSummary};
use edgecell_vision::{
    AnalyticsEvent, BBox, CasOutcome, Detection, Direction, EventKind, FrameAnalysis, FrameLimits, Line, NanoDetHead, Normalization,
    PersistError, PersistedStream, PixelFormat, Point, QueuedEvent, Retention, StateStore, StoredState, StreamConfig, TensorView, VisionError, Zone,
    coco, decode_frame, letterbox, postprocess_nanodet,
};

const NS: &str = "video";
/// Default TTL of a stream's state: an idle stream starts over after this long.
const DEFAULT_STATE_TTL_MS: u64 = 10 * 60 * 1000;
/// Default TTL of a state that owes events (undelivered, or `left` of tracks inside zones):
/// a source silent for up to a day still gets them when it comes back.
const DEFAULT_OWING_STATE_TTL_MS: u64 = 24 * 60 * 60 * 1000;
/// Default compare-and-swap attempts per frame before `PersistError::Contended`.
const DEFAULT_STATE_CAS_ATTEMPTS: u32 = 4;

struct Actor;

/// The model's input name and size, looked up once per model.
#[derive(Clone)]
struct ModelInput {
    name: String,
    width: u32,
    height: u32,
}

thread_local! {
    /// Per stream: its configuration and the state this instance last wrote or read.
    static STREAMS: RefCell<BTreeMap<String, PersistedStream>> = const { RefCell::new(BTreeMap::new()) };
    static MODELS: RefCell<BTreeMap<String, ModelInput>> = const { RefCell::new(BTreeMap::new()) };
}

fn verr(e: VisionError) -> VideoError {
    match e {
        VisionError::Decode(m) | VisionError::Avi(m) => VideoError::Decode(m),
        VisionError::AviTruncated { .. } => VideoError::Decode(e.to_string()),
        VisionError::InvalidDimensions(_) | VisionError::Truncated { .. } | VisionError::DimensionsTooLarge { .. } => {
            VideoError::InvalidDimensions(e.to_string())
        }
        VisionError::FrameTooLarge { bytes, .. } => VideoError::FrameTooLarge(bytes),
        VisionError::InvalidConfig(m) => VideoError::InvalidConfig(m),
        VisionError::OutputShape(m) => VideoError::Inference(format!("unexpected model output: {m}")),
        // Unusable stored states are reset before they get here; this is the fallback.
        VisionError::State(e) => VideoError::InvalidConfig(format!("stream state: {e}")),
    }
}

/// `edgecell:video` has no variant for the state store (the WIT is shared; see the report):
/// the store failing or staying contended is reported as a provider failure, like inference.
fn perr(e: PersistError) -> VideoError {
    match e {
        PersistError::Vision(e) => verr(e),
        PersistError::Store(_) | PersistError::Contended { .. } => VideoError::Inference(e.to_string()),
    }
}

fn format(f: wit::PixelFormat) -> PixelFormat {
    match f {
        wit::PixelFormat::Rgb24 => PixelFormat::Rgb24,
        wit::PixelFormat::Bgr24 => PixelFormat::Bgr24,
        wit::PixelFormat::I420 => PixelFormat::I420,
        wit::PixelFormat::Nv12 => PixelFormat::Nv12,
        wit::PixelFormat::Jpeg => PixelFormat::Jpeg,
        wit::PixelFormat::Png => PixelFormat::Png,
    }
}

/// Frames above this many bytes are refused (`frame-too-large`) unless `wasi:config` key
/// `max-frame-bytes` says otherwise. The instance's memory cap must leave room for the frame
/// plus its decoded image and tensors; 16 MiB fits 4K NV12 and 1440p RGB in a 64 MiB instance.
const DEFAULT_MAX_FRAME_BYTES: u64 = 16 << 20;

/// A number from `wasi:config`, or `default` when absent or not a number.
fn config_number<T: std::str::FromStr>(key: &str, default: T) -> T {
    bindings::wasi::config::store::get(key).ok().flatten().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

fn limits() -> FrameLimits {
    FrameLimits { max_bytes: config_number("max-frame-bytes", DEFAULT_MAX_FRAME_BYTES), ..FrameLimits::default() }
}

/// The frame's bytes, from the message or from the cache provider.
fn frame_bytes(data: &wit::FrameData) -> Result<Vec<u8>, VideoError> {
    match data {
        wit::FrameData::Inline(b) => Ok(b.clone()),
        wit::FrameData::CacheKey((ns, key)) => match cache::get(ns, key) {
            Ok(Some(e)) => Ok(e.value),
            Ok(None) => Err(VideoError::MissingFrame(format!("{ns}/{key}"))),
            Err(e) => Err(VideoError::MissingFrame(format!("{ns}/{key}: {e:?}"))),
        },
    }
}

fn model_input(model: &str) -> Result<ModelInput, VideoError> {
    if let Some(m) = MODELS.with(|m| m.borrow().get(model).cloned()) {
        return Ok(m);
    }
    let info = runner::model_metadata(model).map_err(|e| VideoError::Inference(format!("{e:?}")))?;
    let input = info.inputs.first().ok_or_else(|| VideoError::Inference(format!("model {model} has no inputs")))?;
    let dim = |i: usize| input.shape.get(i).and_then(|d| u32::try_from(*d).ok()).filter(|d| *d > 0);
    let (Some(height), Some(width)) = (dim(2), dim(3)) else {
        return Err(VideoError::Inference(format!("model {model} input {:?} is not NCHW with a fixed size", input.shape)));
    };
    let m = ModelInput { name: input.name.clone(), width, height };
    MODELS.with(|models| models.borrow_mut().insert(model.to_owned(), m.clone()));
    Ok(m)
}

/// Decode, preprocess, infer and post-process one frame.
fn detect_bytes(
    bytes: &[u8],
    fmt: PixelFormat,
    width: u32,
    height: u32,
    model: &str,
    nms: &edgecell_vision::NmsConfig,
    classes: &[u32],
) -> Result<Vec<Detection>, VideoError> {
    let img = decode_frame(bytes, fmt, width, height, &limits()).map_err(verr)?;
    let input = model_input(model)?;
    let (tensor, lb) = letterbox(&img, input.width, input.height, &Normalization::NANODET).map_err(verr)?;
    let inputs = [Tensor { name: input.name, shape: vec![1, 3, input.height, input.width], data: TensorData::Float32(tensor) }];
    let outputs = runner::run(model, &inputs).map_err(|e| VideoError::Inference(format!("{e:?}")))?;
    let shapes: Vec<Vec<usize>> = outputs.iter().map(|t| t.shape.iter().map(|d| *d as usize).collect()).collect();
    let mut views = Vec::with_capacity(outputs.len());
    for (t, shape) in outputs.iter().zip(&shapes) {
        let TensorData::Float32(data) = &t.data else {
            return Err(VideoError::Inference(format!("output {} is not f32", t.name)));
        };
        views.push(TensorView { shape, data });
    }
    let head = NanoDetHead { input_width: input.width, input_height: input.height, ..NanoDetHead::nanodet_m_416() };
    postprocess_nanodet(&head, &views, nms, &lb, classes).map_err(verr)
}

fn wit_bbox(b: BBox) -> wit::Bbox {
    wit::Bbox { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 }
}

fn wit_detection(d: &Detection) -> wit::Detection {
    wit::Detection { class_id: d.class_id, class_name: coco::class_name(d.class_id).into(), score: d.score, bbox: wit_bbox(d.bbox) }
}

fn wit_event(e: &AnalyticsEvent) -> wit::AnalyticsEvent {
    wit::AnalyticsEvent {
        kind: match e.kind {
            EventKind::Entered => wit::EventKind::Entered,
            EventKind::Left => wit::EventKind::Left,
            EventKind::Crossed => wit::EventKind::Crossed,
        },
        track_id: e.track_id,
        class_name: e.class_name.clone(),
        region: e.region.clone(),
        direction: e.direction.map(|d| match d {
            Direction::Forward => wit::Direction::Forward,
            Direction::Backward => wit::Direction::Backward,
        }),
        timestamp: e.timestamp_ns,
        dwell_ms: e.dwell_ms,
    }
}

fn point(p: wit::Point) -> Point {
    Point { x: p.x, y: p.y }
}

fn stream_config(c: wit::StreamConfig) -> StreamConfig {
    StreamConfig {
        model: c.model,
        score_threshold: c.score_threshold,
        iou_threshold: c.iou_threshold,
        classes: c.classes,
        zones: c.zones.into_iter().map(|z| Zone { name: z.name, polygon: z.polygon.into_iter().map(point).collect() }).collect(),
        lines: c.lines.into_iter().map(|l| Line { name: l.name, a: point(l.a), b: point(l.b) }).collect(),
        min_frames_in_zone: c.min_frames_in_zone,
        ..StreamConfig::default()
    }
}

fn config_key(stream: &str) -> String {
    format!("stream-config/{stream}")
}

fn state_key(stream: &str) -> String {
    format!("state/{stream}")
}

/// The stream's configuration as stored: the cache (written by `configure`), else `wasi:config`.
fn stored_config(stream: &str) -> Result<Option<StreamConfig>, VideoError> {
    let stored = match cache::get(NS, &config_key(stream)) {
        Ok(e) => e.map(|e| e.value),
        Err(e) => return Err(VideoError::InvalidConfig(format!("stream {stream}: cache: {e:?}"))),
    };
    let text = match stored {
        Some(v) => v,
        None => match bindings::wasi::config::store::get(&format!("stream.{stream}")) {
            Ok(Some(t)) => t.into_bytes(),
            _ => return Ok(None),
        },
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| VideoError::InvalidConfig(format!("stream {stream}: {e}")))
}

/// Make sure this instance knows `stream`'s configuration: from itself, the cache or `wasi:config`.
fn ensure_stream(stream: &str) -> Result<(), VideoError> {
    if STREAMS.with(|s| s.borrow().contains_key(stream)) {
        return Ok(());
    }
    let cfg = stored_config(stream)?.ok_or_else(|| VideoError::UnknownStream(stream.to_owned()))?;
    let ps = PersistedStream::new(cfg).map_err(verr)?;
    STREAMS.with(|s| s.borrow_mut().insert(stream.to_owned(), ps));
    Ok(())
}

/// The stream's state entry in the cache provider.
struct CacheState<'a> {
    stream: &'a str,
    key: String,
    /// TTL of a state that owes nothing.
    ttl_ms: Option<u64>,
    /// TTL of a state with events to deliver or tracks inside zones.
    owing_ttl_ms: Option<u64>,
}

impl StateStore for CacheState<'_> {
    fn load(&mut self) -> Result<Option<StoredState>, String> {
        match cache::get(NS, &self.key) {
            Ok(e) => Ok(e.map(|e| StoredState { value: e.value, version: e.version })),
            Err(e) => Err(format!("get {NS}/{}: {e:?}", self.key)),
        }
    }

    fn compare_and_swap(&mut self, expected: Option<u64>, value: &[u8], retention: Retention) -> Result<CasOutcome, String> {
        let ttl = match retention {
            Retention::Idle => self.ttl_ms,
            Retention::Owing => self.owing_ttl_ms,
        };
        match cache::compare_and_swap(NS, &self.key, expected, value, ttl) {
            Ok(cache::CasOutcome::Swapped(v)) => Ok(CasOutcome::Swapped(v)),
            Ok(cache::CasOutcome::Conflict(_)) => Ok(CasOutcome::Conflict),
            Err(e) => Err(format!("compare-and-swap {NS}/{}: {e:?}", self.key)),
        }
    }

    fn current_config(&mut self) -> Result<Option<StreamConfig>, String> {
        stored_config(self.stream).map_err(|e| format!("{e:?}"))
    }

    /// `video/ids/<stream>`, a counter without TTL (so a state that expires or is replaced does
    /// not take it along); a value that is not a counter means ids start at 1 again.
    fn next_id_epoch(&mut self) -> Result<Option<u64>, String> {
        let key = format!("ids/{}", self.stream);
        let epoch = match cache::increment(NS, &key, 1, None) {
            Ok(n) => u64::try_from(n).ok().filter(|n| *n > 0),
            Err(cache::CacheError::NotACounter(_)) => None,
            Err(e) => return Err(format!("increment {NS}/{key}: {e:?}")),
        };
        if epoch.is_none() {
            count("video_id_epochs_unavailable_total", &[("stream", self.stream)], 1.0);
        }
        Ok(epoch)
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(k, v)| Label { key: (*k).into(), value: (*v).into() }).collect()
}

// Metrics are queued while an export runs and recorded with one `record-batch` call when its
// `FlushMetrics` guard drops (see edgecell-actor-metrics); best effort.
edgecell_actor_metrics::buffered_metrics!();

fn observe(name: &str, help: &str, pairs: &[(&str, &str)], value: f64, buckets: &[f64]) {
    let kind = MetricKind::Histogram(buckets.to_vec());
    record(recorder::Update::Register(recorder::Registration { name: name.into(), help: help.into(), kind }));
    record(recorder::Update::HistogramObserve(recorder::Sample { name: name.into(), labels: labels(pairs), value }));
}

fn count(name: &str, pairs: &[(&str, &str)], by: f64) {
    record(recorder::Update::CounterAdd(recorder::Sample { name: name.into(), labels: labels(pairs), value: by }));
}

fn state_store(stream: &str) -> CacheState<'_> {
    let ttl = config_number("state-ttl-ms", DEFAULT_STATE_TTL_MS);
    let ttl_ms = (ttl > 0).then_some(ttl);
    // (never shorter than an idle state's, none when idle states have none, 0 = the same)
    let owing = config_number("state-owing-ttl-ms", DEFAULT_OWING_STATE_TTL_MS);
    let owing_ttl_ms = ttl_ms.map(|t| owing.max(t));
    CacheState { stream, key: state_key(stream), ttl_ms, owing_ttl_ms }
}

/// What one frame left to do after its state was committed.
struct Advanced {
    analysis: FrameAnalysis,
    /// Events to publish (from the outbox; empty when not queued).
    outbox: Vec<QueuedEvent>,
    /// Version of the state the outbox belongs to.
    version: Option<u64>,
    /// Events of `analysis` handed out from earlier (not queued: see `PersistedFrame::handed_out`).
    handed_out: usize,
}

/// Tracking and analytics for one frame's detections through the stream's stored state; with
/// `queue` (the frame's sequence number) its events go through the state's outbox.
fn advance(stream: &str, timestamp: u64, queue: Option<u64>, detections: &[Detection]) -> Result<Advanced, VideoError> {
    let started = std::time::Instant::now();
    let attempts = config_number("state-cas-attempts", DEFAULT_STATE_CAS_ATTEMPTS);
    let mut store = state_store(stream);
    let outcome = STREAMS.with(|s| {
        let mut s = s.borrow_mut();
        let ps = s.get_mut(stream).ok_or_else(|| VideoError::UnknownStream(stream.to_owned()))?;
        Ok::<_, VideoError>(match queue {
            Some(sequence) => ps.process_queued(&mut store, timestamp, sequence, detections, attempts),
            None => ps.process(&mut store, timestamp, detections, attempts),
        })
    })?;
    let frame = match outcome {
        Ok(f) => f,
        Err(e) => {
            if let PersistError::Contended { attempts } = e {
                count("video_state_conflicts_total", &[("stream", stream)], f64::from(attempts));
                count("video_state_contended_total", &[("stream", stream)], 1.0);
            }
            return Err(perr(e));
        }
    };
    count("video_state_loads_total", &[("stream", stream), ("from", frame.source.label())], 1.0);
    if frame.conflicts > 0 {
        count("video_state_conflicts_total", &[("stream", stream)], f64::from(frame.conflicts));
    }
    if let Some(reason) = &frame.reset {
        count("video_state_resets_total", &[("stream", stream), ("reason", reason.reason())], 1.0);
    }
    if frame.carried > 0 {
        #[allow(clippy::cast_precision_loss)]
        count("video_reset_carried_events_total", &[("stream", stream)], frame.carried as f64);
    }
    if frame.config_reloaded {
        count("video_config_reloads_total", &[("stream", stream)], 1.0);
    }
    if frame.analysis.out_of_order {
        count("video_frames_out_of_order_total", &[("stream", stream)], 1.0);
    }
    if frame.outbox_dropped > 0 {
        #[allow(clippy::cast_precision_loss)]
        count("video_events_dropped_total", &[("stream", stream)], frame.outbox_dropped as f64);
    }
    observe(
        "video_state_seconds",
        "Per-frame time spent reading, decoding, encoding and writing the stream state, tracker step included (seconds)",
        &[("stream", stream)],
        started.elapsed().as_secs_f64(),
        &[0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005, 0.01],
    );
    Ok(Advanced { analysis: frame.analysis, outbox: frame.outbox, version: frame.outbox_version, handed_out: frame.handed_out })
}

/// One frame's result, and what it left to publish.
struct Processed {
    result: wit::FrameResult,
    out_of_order: bool,
    outbox: Vec<QueuedEvent>,
    version: Option<u64>,
}

/// The whole per-frame path for a configured stream (`queue`: see [`advance`]).
fn process(stream: &str, timestamp: u64, queue: Option<u64>, bytes: &[u8], fmt: PixelFormat, width: u32, height: u32) -> Result<Processed, VideoError> {
    let started = std::time::Instant::now();
    ensure_stream(stream)?;
    let (model, nms, classes, threshold) = STREAMS.with(|s| {
        let s = s.borrow();
        let ps = s.get(stream).ok_or_else(|| VideoError::UnknownStream(stream.to_owned()))?;
        Ok::<_, VideoError>((ps.config().model.clone(), ps.nms_config(), ps.class_filter().to_vec(), ps.config().score_threshold))
    })?;
    let detections = detect_bytes(bytes, fmt, width, height, &model, &nms, &classes)?;
    let Advanced { analysis, outbox, version, handed_out } = advance(stream, timestamp, queue, &detections)?;
    count("video_frames_total", &[("stream", stream)], 1.0);
    // (this frame's own: those handed out from earlier were counted when they happened)
    #[allow(clippy::cast_precision_loss)]
    count("video_events_total", &[("stream", stream)], analysis.events.len().saturating_sub(handed_out) as f64);
    observe(
        "video_frame_seconds",
        "Per-frame time in the video actor (seconds)",
        &[],
        started.elapsed().as_secs_f64(),
        &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0],
    );
    let result = wit::FrameResult {
        stream_id: stream.to_owned(),
        sequence: 0,
        detections: analysis.detections.iter().filter(|d| d.score >= threshold).map(wit_detection).collect(),
        tracks: analysis
            .tracks
            .iter()
            .map(|t| wit::Track {
                track_id: t.track_id,
                class_name: coco::class_name(t.class_id).into(),
                score: t.score,
                bbox: wit_bbox(t.bbox),
                age: t.age,
            })
            .collect(),
        events: analysis.events.iter().map(wit_event).collect(),
    };
    Ok(Processed { result, out_of_order: analysis.out_of_order, outbox, version })
}

impl wit::Guest for Actor {
    /// Stores the configuration and starts the stream over: its tracks end, and the `left`
    /// events of those inside zones wait in the new state's outbox with what the old one had
    /// not delivered, for the stream's next frame (see `PersistedStream::reconfigure`).
    fn configure(stream_id: String, config: wit::StreamConfig) -> Result<(), VideoError> {
        let _flush = FlushMetrics;
        let cfg = stream_config(config);
        let mut ps = PersistedStream::new(cfg.clone()).map_err(verr)?;
        // what the stored state may have been built under: this instance's, the stored one
        let mut previous: Vec<StreamConfig> = STREAMS.with(|s| s.borrow().get(&stream_id).map(|p| p.config().clone())).into_iter().collect();
        if let Ok(Some(stored)) = stored_config(&stream_id) {
            previous.push(stored);
        }
        let json = serde_json::to_vec(&cfg).map_err(|e| VideoError::InvalidConfig(e.to_string()))?;
        cache::set(NS, &config_key(&stream_id), &json, None).map_err(|e| VideoError::InvalidConfig(format!("cache: {e:?}")))?;
        let attempts = config_number("state-cas-attempts", DEFAULT_STATE_CAS_ATTEMPTS);
        let r = ps.reconfigure(&mut state_store(&stream_id), &previous, attempts).map_err(perr)?;
        #[allow(clippy::cast_precision_loss)]
        {
            count("video_reconfigure_closed_events_total", &[("stream", &stream_id)], r.closed.len() as f64);
            count("video_reconfigure_carried_events_total", &[("stream", &stream_id)], r.carried as f64);
            count("video_events_dropped_total", &[("stream", &stream_id)], r.dropped as f64);
        }
        if let Some(reason) = &r.unreadable {
            count("video_state_resets_total", &[("stream", &stream_id), ("reason", reason.reason())], 1.0);
        }
        STREAMS.with(|s| s.borrow_mut().insert(stream_id, ps));
        Ok(())
    }

    fn process_frame(frame: wit::Frame) -> Result<wit::FrameResult, VideoError> {
        let _flush = FlushMetrics;
        let bytes = frame_bytes(&frame.data)?;
        let mut r = process(&frame.stream_id, frame.timestamp, None, &bytes, format(frame.format), frame.width, frame.height)?.result;
        r.sequence = frame.sequence;
        Ok(r)
    }

    fn detect(frame: wit::Frame, model: String, score_threshold: f32) -> Result<Vec<wit::Detection>, VideoError> {
        let _flush = FlushMetrics;
        let bytes = frame_bytes(&frame.data)?;
        let nms = edgecell_vision::NmsConfig { score_threshold, iou_threshold: 0.6, max_detections: 100 };
        nms.validate().map_err(verr)?;
        let dets = detect_bytes(&bytes, format(frame.format), frame.width, frame.height, &model, &nms, &[])?;
        Ok(dets.iter().map(wit_detection).collect())
    }
}

/// The JSON form of a queued event on `edgecell.video.events.<stream>` (kind and direction by
/// their serde names: `entered`/`left`/`crossed`, `forward`/`backward`).
fn event_json(q: &QueuedEvent) -> serde_json::Value {
    let e = &q.event;
    serde_json::json!({
        "kind": e.kind,
        "track_id": e.track_id,
        "class": e.class_name,
        "region": e.region,
        "direction": e.direction,
        "timestamp_ns": e.timestamp_ns,
        "dwell_ms": e.dwell_ms,
        "sequence": q.sequence,
    })
}

/// Publishes what the stream's outbox holds (the state `version`'s; its last `own` events are
/// this frame's) as one JSON array, then clears it. Returns how many could not be published:
/// they stay in the state and go out with the next frame. A failed clear only means they may
/// be published again.
fn publish_outbox(stream: &str, outbox: &[QueuedEvent], own: usize, version: Option<u64>) -> usize {
    let Some(version) = version.filter(|_| !outbox.is_empty()) else { return 0 };
    let earlier = outbox.len().saturating_sub(own);
    let sent = serde_json::to_vec(&outbox.iter().map(event_json).collect::<Vec<_>>())
        .map_err(|e| e.to_string())
        .and_then(|body| consumer::publish(&BrokerMessage { subject: format!("edgecell.video.events.{stream}"), body, reply_to: None }));
    if sent.is_err() {
        #[allow(clippy::cast_precision_loss)]
        count("video_events_deferred_total", &[("stream", stream)], outbox.len() as f64);
        return outbox.len();
    }
    if earlier > 0 {
        #[allow(clippy::cast_precision_loss)]
        count("video_events_redelivered_total", &[("stream", stream)], earlier as f64);
    }
    let mut store = state_store(stream);
    let cleared = STREAMS.with(|s| s.borrow_mut().get_mut(stream).map(|ps| ps.delivered(&mut store, version)));
    if !matches!(cleared, Some(Ok(Some(_)))) {
        // the state moved on (the next writer publishes them again) or the store failed
        count("video_outbox_not_cleared_total", &[("stream", stream)], 1.0);
    }
    0
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
        answer_errors(reply_to, handle(msg))
    }
}

fn handle(msg: BrokerMessage) -> Result<(), String> {
    if !msg.subject.starts_with("edgecell.video.frames.") {
        return Err(format!("video-analytics does not handle subject {}", msg.subject));
    }
    let r: FrameRef = serde_json::from_slice(&msg.body).map_err(|e| format!("not a frame reference: {e}"))?;
    let bytes = frame_bytes(&wit::FrameData::CacheKey((r.namespace.clone(), r.key.clone()))).map_err(|e| format!("{e:?}"))?;
    let Processed { result, out_of_order, outbox, version } =
        process(&r.stream, r.timestamp_ns, Some(r.sequence), &bytes, r.format, r.width, r.height).map_err(|e| format!("{e:?}"))?;
    let events_pending = publish_outbox(&r.stream, &outbox, result.events.len(), version);
    let summary = FrameSummary {
        stream: r.stream.clone(),
        sequence: r.sequence,
        detections: result.detections.len(),
        tracks: result.tracks.iter().map(|t| (t.track_id, t.class_name.clone())).collect(),
        events: result.events.len(),
        events_pending,
        out_of_order,
    };
    let body = serde_json::to_vec(&summary).map_err(|e| e.to_string())?;
    let subject = msg.reply_to.unwrap_or_else(|| format!("edgecell.video.results.{}", r.stream));
    consumer::publish(&BrokerMessage { subject, body, reply_to: None })
}

// `export!` emits the ABI entry points, which are `unsafe extern` functions.
#[allow(unsafe_code)]
mod exports {
    use super::Actor;
    crate::bindings::export!(Actor with_types_in crate::bindings);
}
