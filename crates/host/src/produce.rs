//! Producers: replay the bundled real data onto NATS, paced, in the wire forms the actors
//! consume. `edgecell produce` is a thin CLI over this module; the lattice tests call it too.
//!
//! # Sources and what goes on the bus
//!
//! | source | input | subject (default) | body |
//! |---|---|---|---|
//! | [`Source::Sensors`] | a ROS1 bag (robot_localization's `test1.bag`, `test2.bag`) | `edgecell.sensors.in.<filter>` (`jackal`) | one [`SensorEnvelope`] (JSON) per IMU / odometry / GNSS message of the localizer config's sensors, in the bag's time order (header stamps) |
//! | [`Source::V2xTrace`] | VeReMi JSON lines (one beacon or own-GPS fix per line), e.g. written by `edgecell v2x simulate`, and/or hex lines of binary ETSI messages (UPER CAM/DENM/CPM, GeoNetworking secured or not, radiotap frames, 1609.2 data) | `edgecell.v2x.in.<region>` (`local`) | a JSON line verbatim; a hex line as its bytes |
//! | [`Source::V2xSimulated`] | the seeded attack simulator, in memory | `edgecell.v2x.in.<region>` | one VeReMi record (JSON) per line the simulator would write |
//! | [`Source::Video`] | an MJPEG AVI | `edgecell.video.frames.<stream>` (`vtest`) | a [`FrameRef`] (JSON) after the JPEG was put in the cache (below) |
//!
//! Without a localizer config, the sensor source picks the built-in preset whose topics are all
//! in the bag (`robot-localization-test2` for `test2.bag`, `robot-localization-test1` for
//! `test1.bag`); the presets fuse IMU and wheel odometry, so GNSS fixes are produced only when
//! the given config has a `gnss` sensor. The filter id in each envelope must name a filter the
//! sensor-fusion actor knows, e.g. `filter.jackal = robot-localization-test2` in its config.
//!
//! # Frames go by handle: the cache put protocol
//!
//! A video frame never travels raw on the bus. For each JPEG the producer first sends a NATS
//! *request*:
//!
//! - subject `edgecell.cache.put.<keyspace>` (one token; default keyspace `video-analytics`,
//!   the video-analytics actor's own keyspace);
//! - headers `edgecell-namespace: frames`, `edgecell-key: <stream>/<sequence>`,
//!   `edgecell-ttl-ms: 60000` (optional; absent = no expiry);
//! - body: the JPEG bytes.
//!
//! The answer is JSON `{"version":N}` (stored) or `{"error":"<message>"}` (refused: missing
//! header, invalid key or namespace, value too large, bad TTL, bad keyspace, or a namespace not
//! open to producers: `edgecell serve` opens `video-analytics/frames` only, the kv-cache
//! provider what its `ingest-open` config lists). Only after a
//! `version` reply does the producer publish the [`FrameRef`] (stream, sequence, `timestamp_ns`
//! from the frame index and the AVI's frame rate, format `jpeg`, namespace, key). An `error`
//! reply stops the run with [`ProduceError::CacheRejected`]. `edgecell serve` answers these
//! requests from its in-process cache ([`crate::nats::NatsConnection::cache_ingest`]); on a
//! wasmCloud lattice the kv-cache provider answers the same protocol.
//!
//! A message (headers + body) larger than the server's `max_payload` is refused before it is
//! sent, with [`ProduceError::TooLarge`].
//!
//! # Pacing
//!
//! Item `i` (a message, or a frame's put + reference) is due at `start + i / rate`
//! ([`Schedule`]): the schedule is absolute, so time spent sending or waiting for a cache reply
//! is absorbed instead of accumulating as drift; a producer that falls behind sends without
//! waiting until it has caught up. A rate of 0 sends as fast as possible. The client is flushed
//! at the end, so every message has reached the server when [`produce`] returns.
//!
//! # Command line
//!
//! ```text
//! edgecell serve --config host.toml            # with [host] nats_url: also answers cache puts
//! edgecell produce sensors --rate 50 data/fusion/test2.bag
//! edgecell produce sensors --filter husky data/fusion/test1.bag
//! edgecell v2x simulate --attack RandomPosOffset --output trace.jsonl
//! edgecell produce v2x --rate 1000 trace.jsonl
//! edgecell produce v2x --simulate Sybil --seed 7 --rate 0     # the simulator, in memory
//! edgecell produce video --rate 10 data/video/vtest_2s_mjpeg.avi
//! edgecell produce video --loop --limit 1000 --rate 0 data/video/vtest_2s_mjpeg.avi
//! ```
//!
//! Every run ends with one summary line (items, NATS messages, payload bytes, elapsed time,
//! achieved rate).
//!
//! # Looping
//!
//! With [`ProduceOptions::looped`] the data is replayed pass after pass (until
//! [`ProduceOptions::limit`] or a [`StopSignal`]). Each later pass shifts the data's own clock
//! so consumers still see time move forward: sensor header stamps by the bag's span plus one
//! mean message interval, VeReMi `rcvTime`/`sendTime` by the trace's span plus 1 s (the beacon
//! interval), video sequence numbers and timestamps continue from the last frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use edgecell_fusion::bag::Bag;
use edgecell_fusion::wire::{SensorEnvelope, WireMessage, envelopes_from_bag};
use edgecell_fusion::{FusionError, LocalizerConfig};
use edgecell_kv_cache::ingest::{KEY_HEADER, NAMESPACE_HEADER, TTL_HEADER};
use edgecell_v2x::decode::VeremiRecord;
use edgecell_v2x::sim::{self, SimConfig};
use edgecell_vision::wire::FrameRef;
use edgecell_vision::{MjpegAvi, PixelFormat, VisionError};
use indicatif::ProgressBar;

pub use edgecell_v2x::sim::AttackType;

use crate::nats::CACHE_PUT_PREFIX;

/// Default filter id of sensor envelopes.
pub const DEFAULT_FILTER: &str = "jackal";
/// Default V2X region (last subject token).
pub const DEFAULT_REGION: &str = "local";
/// Default video stream id.
pub const DEFAULT_STREAM: &str = "vtest";
/// Default cache keyspace of video frames: the video-analytics actor's.
pub const DEFAULT_KEYSPACE: &str = "video-analytics";
/// Cache namespace of video frames.
pub const FRAME_NAMESPACE: &str = "frames";
/// Default lifetime of a cached frame.
pub const DEFAULT_FRAME_TTL_MS: u64 = 60_000;
/// Default seed of the V2X simulator (as `edgecell v2x simulate`).
pub const DEFAULT_SIM_SEED: u64 = 42;
/// Default simulated time of the V2X simulator, s.
pub const DEFAULT_SIM_DURATION_S: f64 = 300.0;
/// Lowest positive rate accepted (one item every 1000 s).
pub const MIN_RATE: f64 = 1e-3;

/// Why producing failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("reading the ROS bag: {0}")]
    Bag(#[source] FusionError),
    #[error("no built-in localizer preset has all its topics in the bag (topics: {topics}); give a localizer config")]
    NoPreset { topics: String },
    #[error("line {line} of the V2X trace: {message}")]
    V2xLine { line: usize, message: String },
    #[error("simulating {attack}: {message}")]
    Simulate { attack: String, message: String },
    #[error("reading the AVI: {0}")]
    Avi(#[source] VisionError),
    #[error("frame {index} of the AVI is not a JPEG (no SOI marker)")]
    NotJpeg { index: u64 },
    #[error("{0} yields no messages")]
    Empty(&'static str),
    #[error("{what} is not a valid subject token: {value:?} (non-empty, no `.`, `*`, `>` or whitespace)")]
    InvalidToken { what: &'static str, value: String },
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    #[error("invalid rate {0}: give 0 (as fast as possible) or a finite rate of at least {MIN_RATE} per second")]
    InvalidRate(f64),
    #[error("item {0} is scheduled beyond the representable time")]
    Schedule(u64),
    #[error("encoding {what}: {message}")]
    Encode { what: &'static str, message: String },
    #[error("{what} is {size} bytes on the wire (headers + body) but the server's max_payload is {max_payload} bytes")]
    TooLarge { what: String, size: usize, max_payload: usize },
    #[error("publishing to {subject}: {message}")]
    Publish { subject: String, message: String },
    #[error("cache put of {key} on {subject}: {message}")]
    CachePut { subject: String, key: String, message: String },
    #[error("the cache refused {key}: {message}")]
    CacheRejected { key: String, message: String },
    #[error("unexpected cache reply for {key} (want {{\"version\":N}} or {{\"error\":\"…\"}}): {body}")]
    CacheReply { key: String, body: String },
    #[error("flushing the NATS client: {0}")]
    Flush(String),
}

/// What to produce.
#[derive(Debug, Clone)]
pub enum Source {
    /// A ROS1 bag, as sensor envelopes for one filter.
    Sensors {
        /// The bag's bytes.
        bag: Vec<u8>,
        /// Which topics are which sensors; `None` = the built-in preset matching the bag.
        config: Option<LocalizerConfig>,
        /// Filter id written into every envelope and the default subject.
        filter: String,
    },
    /// A VeReMi JSON-lines trace (real, or written by `edgecell v2x simulate`).
    V2xTrace {
        /// The file's bytes.
        trace: Vec<u8>,
        /// Last token of the default subject.
        region: String,
    },
    /// The seeded attack simulator on the built-in Husky track, in memory.
    V2xSimulated {
        attack: AttackType,
        seed: u64,
        /// Simulated time, s (capped by the track).
        duration_s: f64,
        /// Last token of the default subject.
        region: String,
    },
    /// An MJPEG AVI, frames by cache handle.
    Video {
        /// The file's bytes.
        avi: Vec<u8>,
        /// Stream id (frame references, cache keys, default subject).
        stream: String,
        /// Cache keyspace the frames are put in.
        keyspace: String,
        /// Lifetime of a cached frame; `None` = no expiry.
        ttl_ms: Option<u64>,
    },
}

impl Source {
    /// A bag for filter [`DEFAULT_FILTER`] with the matching built-in preset.
    #[must_use]
    pub fn sensors(bag: Vec<u8>) -> Self {
        Self::Sensors { bag, config: None, filter: DEFAULT_FILTER.to_owned() }
    }

    /// A VeReMi trace for region [`DEFAULT_REGION`].
    #[must_use]
    pub fn v2x_trace(trace: Vec<u8>) -> Self {
        Self::V2xTrace { trace, region: DEFAULT_REGION.to_owned() }
    }

    /// The simulator with the CLI's default seed and duration, for region [`DEFAULT_REGION`].
    #[must_use]
    pub fn v2x_simulated(attack: AttackType) -> Self {
        Self::V2xSimulated { attack, seed: DEFAULT_SIM_SEED, duration_s: DEFAULT_SIM_DURATION_S, region: DEFAULT_REGION.to_owned() }
    }

    /// An AVI as stream [`DEFAULT_STREAM`] into keyspace [`DEFAULT_KEYSPACE`], frames kept
    /// [`DEFAULT_FRAME_TTL_MS`].
    #[must_use]
    pub fn video(avi: Vec<u8>) -> Self {
        Self::Video {
            avi,
            stream: DEFAULT_STREAM.to_owned(),
            keyspace: DEFAULT_KEYSPACE.to_owned(),
            ttl_ms: Some(DEFAULT_FRAME_TTL_MS),
        }
    }
}

/// Which kind of data a plan produces (for summaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Sensors,
    V2x,
    Video,
}

impl SourceKind {
    /// What one paced item is called.
    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            Self::Sensors | Self::V2x => "messages",
            Self::Video => "frames",
        }
    }
}

/// A stop request shared between the producer and whoever may cancel it (e.g. Ctrl-C).
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<StopInner>);

#[derive(Debug, Default)]
struct StopInner {
    stopped: AtomicBool,
    notify: tokio::sync::Notify,
}

impl StopSignal {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the producer to stop after the item in flight (it still flushes).
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once [`StopSignal::stop`] was called.
    pub async fn stopped(&self) {
        loop {
            // registered before the check, so a stop in between is not missed
            let notified = self.0.notify.notified();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

/// How to produce.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// Overrides the default subject (sensor envelopes, V2X records, video frame references).
    pub subject: Option<String>,
    /// Items per second; 0 = as fast as possible.
    pub rate: f64,
    /// Stop after this many items (frames count once).
    pub limit: Option<u64>,
    /// Replay the data again and again (until `limit` or `stop`).
    pub looped: bool,
    /// How long to wait for a cache put's reply.
    pub request_timeout: Duration,
    /// Checked between items.
    pub stop: Option<StopSignal>,
    /// Start a trace per message: a W3C `traceparent` header (new trace id, this producer's
    /// span id, sampled) on every message an actor consumes (frame references for video, not
    /// the cache puts). wasmCloud hosts continue the trace from it.
    pub trace: bool,
}

impl Default for ProduceOptions {
    fn default() -> Self {
        Self { subject: None, rate: 0.0, limit: None, looped: false, request_timeout: Duration::from_secs(5), stop: None, trace: false }
    }
}

/// Where sensor envelopes for filter `filter` go: `edgecell.sensors.in.<filter>`.
fn sensor_subject(filter: &str) -> String {
    format!("edgecell.sensors.in.{filter}")
}

/// A bag's sensor envelopes for filter `filter` (localizer config `cfg`) as the messages the
/// sensor-fusion actor's handler receives: what `edgecell produce sensors` publishes in one
/// pass, for feeding an actor without NATS (the main job, tests, benchmarks).
///
/// # Errors
/// An invalid filter token, an unreadable bag, or an envelope that cannot be encoded.
pub fn sensor_messages(bag: &[u8], cfg: &LocalizerConfig, filter: &str) -> Result<Vec<crate::bindings::BrokerMessage>, ProduceError> {
    let subject = sensor_subject(token("filter", filter)?);
    wire_envelopes(bag, cfg, filter)?
        .iter()
        .map(|e| {
            let body = serde_json::to_vec(e).map_err(|e| ProduceError::Encode { what: "a sensor envelope", message: e.to_string() })?;
            Ok(crate::bindings::BrokerMessage { subject: subject.clone(), body, reply_to: None })
        })
        .collect()
}

/// The bag's envelopes for the wire; messages holding NaN or an infinity, which JSON cannot
/// carry, are left out with a warning that counts them.
fn wire_envelopes(bag: &[u8], cfg: &LocalizerConfig, filter: &str) -> Result<Vec<SensorEnvelope>, ProduceError> {
    let out = envelopes_from_bag(bag, cfg, filter).map_err(ProduceError::Bag)?;
    if out.non_finite > 0 {
        tracing::warn!(
            left_out = out.non_finite,
            first_field = out.first_non_finite.unwrap_or(""),
            "bag messages with NaN or infinite values left out (JSON cannot carry them)"
        );
    }
    Ok(out.envelopes)
}

/// The W3C trace-context header a producer starts a trace with.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A W3C trace context: the producer is the root of the trace, its span the parent of the
/// host's first span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: u128,
    pub span_id: u64,
}

impl TraceContext {
    /// A new trace with random, non-zero ids (all-zero ids are invalid in W3C trace-context).
    #[must_use]
    pub fn random() -> Self {
        Self { trace_id: rand::random::<u128>().max(1), span_id: rand::random::<u64>().max(1) }
    }

    /// The `traceparent` value: version 00, trace id, parent span id, flags 01 (sampled).
    #[must_use]
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }

    /// The trace id as OTLP tools print it (32 lowercase hex digits).
    #[must_use]
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

/// One NATS message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    /// Header (name, value) pairs, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    fn new(subject: &str, body: Vec<u8>) -> Self {
        Self { subject: subject.to_owned(), headers: Vec::new(), body }
    }

    /// The value of header `name`.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Size the server counts against `max_payload`: the header block as NATS serialises it
    /// (`NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`) plus the body.
    #[must_use]
    pub fn wire_size(&self) -> usize {
        let headers = if self.headers.is_empty() {
            0
        } else {
            "NATS/1.0\r\n\r\n".len() + self.headers.iter().map(|(k, v)| k.len() + ": ".len() + v.len() + "\r\n".len()).sum::<usize>()
        };
        headers + self.body.len()
    }

    /// Adds a fresh trace's `traceparent` header and returns the trace.
    fn start_trace(&mut self) -> TraceContext {
        let cx = TraceContext::random();
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(TRACEPARENT_HEADER));
        self.headers.push((TRACEPARENT_HEADER.to_owned(), cx.traceparent()));
        cx
    }

    fn header_map(&self) -> async_nats::HeaderMap {
        let mut map = async_nats::HeaderMap::new();
        for (k, v) in &self.headers {
            map.insert(k.as_str(), v.as_str());
        }
        map
    }
}

/// One paced unit of production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Publish one message.
    Publish(Message),
    /// Put the frame's bytes in the cache (a request), then publish its reference.
    Frame {
        /// The cache put request (headers name namespace, key and TTL; body = JPEG).
        put: Message,
        /// The [`FrameRef`] to publish once the put was acknowledged.
        frame_ref: Message,
    },
}

impl Item {
    /// Body bytes this item sends.
    #[must_use]
    pub fn payload_bytes(&self) -> usize {
        match self {
            Self::Publish(m) => m.body.len(),
            Self::Frame { put, frame_ref } => put.body.len() + frame_ref.body.len(),
        }
    }
}

/// A subject token the producer builds subjects from.
fn token<'a>(what: &'static str, value: &'a str) -> Result<&'a str, ProduceError> {
    if value.is_empty() || value.contains(['.', '*', '>']) || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ProduceError::InvalidToken { what, value: value.to_owned() });
    }
    Ok(value)
}

fn subject_or(custom: Option<&str>, default: String) -> Result<String, ProduceError> {
    let Some(s) = custom else { return Ok(default) };
    let valid = !s.is_empty()
        && s.split('.').all(|t| !t.is_empty() && t != "*" && t != ">" && !t.chars().any(|c| c.is_whitespace() || c.is_control()));
    if valid { Ok(s.to_owned()) } else { Err(ProduceError::InvalidSubject(s.to_owned())) }
}

/// The built-in localizer preset whose sensor topics are all in the bag.
///
/// # Errors
/// [`ProduceError::Bag`], [`ProduceError::NoPreset`].
pub fn detect_preset(bag: &[u8]) -> Result<(&'static str, LocalizerConfig), ProduceError> {
    let parsed = Bag::parse(bag).map_err(ProduceError::Bag)?;
    let has = |topic: &str| parsed.connections.iter().any(|c| c.topic == topic);
    for name in edgecell_fusion::PRESET_NAMES {
        let cfg = edgecell_fusion::preset(name).map_err(ProduceError::Bag)?;
        if cfg.sensors.iter().all(|s| has(&s.topic)) {
            return Ok((name, cfg));
        }
    }
    let mut topics: Vec<&str> = parsed.connections.iter().map(|c| c.topic.as_str()).collect();
    topics.sort_unstable();
    topics.dedup();
    Err(ProduceError::NoPreset { topics: topics.join(", ") })
}

fn header_mut(m: &mut WireMessage) -> &mut edgecell_fusion::localizer::Header {
    match m {
        WireMessage::Imu(m) => &mut m.header,
        WireMessage::Odometry(m) => &mut m.header,
        WireMessage::Gnss(m) => &mut m.header,
    }
}

fn stamp(m: &WireMessage) -> f64 {
    match m {
        WireMessage::Imu(m) => m.header.stamp,
        WireMessage::Odometry(m) => m.header.stamp,
        WireMessage::Gnss(m) => m.header.stamp,
    }
}

/// A clock shift per pass: the span of `times` plus `gap`.
fn pass_shift(times: impl Iterator<Item = f64>, gap: f64) -> f64 {
    let (lo, hi) = times.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| (lo.min(t), hi.max(t)));
    if hi >= lo { hi - lo + gap } else { gap }
}

#[derive(Debug, Clone)]
struct VideoFrame {
    jpeg: Vec<u8>,
}

#[derive(Debug, Clone)]
enum PlanKind {
    Sensors { envelopes: Vec<SensorEnvelope>, shift_s: f64 },
    V2x { lines: Vec<Vec<u8>>, shift_s: f64 },
    Video { frames: Vec<VideoFrame>, info: edgecell_vision::AviInfo, stream: String, put_subject: String, ttl_ms: Option<u64> },
}

/// The messages a source yields, built once and handed out item by item (any pass).
#[derive(Debug, Clone)]
pub struct Plan {
    kind: PlanKind,
    subject: String,
    /// What the source was (kept for error messages and summaries).
    label: String,
}

impl Plan {
    /// Reads and checks the source; `subject` overrides its default subject.
    ///
    /// # Errors
    /// Unreadable input (bag, trace line, AVI), a source with no messages, invalid subject
    /// tokens or subject.
    pub fn new(source: Source, subject: Option<&str>) -> Result<Self, ProduceError> {
        match source {
            Source::Sensors { bag, config, filter } => {
                let filter = token("filter", &filter)?.to_owned();
                let (label, cfg) = match config {
                    Some(cfg) => ("sensors (given config)".to_owned(), cfg),
                    None => {
                        let (name, cfg) = detect_preset(&bag)?;
                        (format!("sensors (preset {name})"), cfg)
                    }
                };
                let envelopes = wire_envelopes(&bag, &cfg, &filter)?;
                if envelopes.is_empty() {
                    return Err(ProduceError::Empty("the bag (for the localizer's sensor topics)"));
                }
                let n = envelopes.len();
                let stamps = || envelopes.iter().map(|e| stamp(&e.message));
                let span = pass_shift(stamps(), 0.0);
                #[allow(clippy::cast_precision_loss)]
                let gap = if n > 1 { span / (n - 1) as f64 } else { 1.0 };
                let shift_s = pass_shift(stamps(), gap);
                let subject = subject_or(subject, sensor_subject(&filter))?;
                Ok(Self { kind: PlanKind::Sensors { envelopes, shift_s }, subject, label })
            }
            Source::V2xTrace { trace, region } => {
                let region = token("region", &region)?;
                let mut lines = Vec::new();
                let mut times = Vec::new();
                for (n, raw) in trace.split(|b| *b == b'\n').enumerate() {
                    let line = raw.trim_ascii();
                    if line.is_empty() {
                        continue;
                    }
                    if line.first() != Some(&b'{') {
                        // a binary ETSI message as hex (UPER, GeoNetworking, radiotap, 1609.2):
                        // published as its bytes; the actor tells the forms apart by their first
                        // bytes (`MessageFormat::of_binary`)
                        let bytes = hex::decode(line).map_err(|e| ProduceError::V2xLine {
                            line: n + 1,
                            message: format!("neither a JSON object nor a hex message: {e}"),
                        })?;
                        if bytes.first() == Some(&b'{') || bytes.is_empty() {
                            return Err(ProduceError::V2xLine { line: n + 1, message: "hex of an empty or `{` payload".into() });
                        }
                        lines.push(bytes);
                        continue;
                    }
                    let record = VeremiRecord::parse(line).map_err(|e| ProduceError::V2xLine { line: n + 1, message: e.to_string() })?;
                    times.push(record.rcv_time);
                    times.extend(record.send_time);
                    lines.push(line.to_vec());
                }
                if lines.is_empty() {
                    return Err(ProduceError::Empty("the V2X trace"));
                }
                let subject = subject_or(subject, format!("edgecell.v2x.in.{region}"))?;
                Ok(Self { kind: PlanKind::V2x { lines, shift_s: pass_shift(times.into_iter(), 1.0) }, subject, label: "v2x trace".into() })
            }
            Source::V2xSimulated { attack, seed, duration_s, region } => {
                let region = token("region", &region)?;
                let sim_err = |message: String| ProduceError::Simulate { attack: attack.name(), message };
                let base = sim::track_from_fix_csv(sim::HUSKY_FIX_CSV, 7).map_err(|e| sim_err(e.to_string()))?;
                let cfg = SimConfig { attack, seed, duration_s, ..SimConfig::default() };
                let trace = sim::simulate(&cfg, &base).map_err(|e| sim_err(e.to_string()))?;
                let mut lines = Vec::with_capacity(trace.records.len());
                let mut times = Vec::new();
                for r in &trace.records {
                    lines.push(serde_json::to_vec(r).map_err(|e| ProduceError::Encode { what: "a VeReMi record", message: e.to_string() })?);
                    times.push(r.rcv_time);
                    times.extend(r.send_time);
                }
                if lines.is_empty() {
                    return Err(ProduceError::Empty("the V2X simulation"));
                }
                let subject = subject_or(subject, format!("edgecell.v2x.in.{region}"))?;
                let label = format!("v2x simulation ({}, seed {seed})", attack.name());
                Ok(Self { kind: PlanKind::V2x { lines, shift_s: pass_shift(times.into_iter(), 1.0) }, subject, label })
            }
            Source::Video { avi, stream, keyspace, ttl_ms } => {
                let stream = token("stream", &stream)?.to_owned();
                let keyspace = token("keyspace", &keyspace)?;
                let parsed = MjpegAvi::parse(&avi).map_err(ProduceError::Avi)?;
                let mut frames = Vec::new();
                for f in parsed.frames() {
                    let f = f.map_err(ProduceError::Avi)?;
                    if !f.data.starts_with(&[0xFF, 0xD8]) {
                        return Err(ProduceError::NotJpeg { index: f.index });
                    }
                    frames.push(VideoFrame { jpeg: f.data.to_vec() });
                }
                if frames.is_empty() {
                    return Err(ProduceError::Empty("the AVI"));
                }
                let subject = subject_or(subject, format!("edgecell.video.frames.{stream}"))?;
                let put_subject = format!("{CACHE_PUT_PREFIX}.{keyspace}");
                Ok(Self {
                    kind: PlanKind::Video { frames, info: parsed.info(), stream, put_subject, ttl_ms },
                    subject,
                    label: "video".into(),
                })
            }
        }
    }

    /// Items in one pass over the data.
    #[must_use]
    pub fn len(&self) -> u64 {
        let n = match &self.kind {
            PlanKind::Sensors { envelopes, .. } => envelopes.len(),
            PlanKind::V2x { lines, .. } => lines.len(),
            PlanKind::Video { frames, .. } => frames.len(),
        };
        n as u64
    }

    /// Never true: a plan is built only from a source with messages.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[must_use]
    pub fn kind(&self) -> SourceKind {
        match self.kind {
            PlanKind::Sensors { .. } => SourceKind::Sensors,
            PlanKind::V2x { .. } => SourceKind::V2x,
            PlanKind::Video { .. } => SourceKind::Video,
        }
    }

    /// The subject of the published messages (frame references for video).
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// What the source is, e.g. `sensors (preset robot-localization-test2)`.
    #[must_use]
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Frames per second of a video source.
    #[must_use]
    pub fn fps(&self) -> Option<f64> {
        match &self.kind {
            PlanKind::Video { info, .. } => Some(info.fps()),
            _ => None,
        }
    }

    /// How many items a run with these settings sends; `None` = until stopped.
    #[must_use]
    pub fn total(&self, limit: Option<u64>, looped: bool) -> Option<u64> {
        match (limit, looped) {
            (Some(l), true) => Some(l),
            (None, true) => None,
            (l, false) => Some(l.map_or(self.len(), |l| l.min(self.len()))),
        }
    }

    /// Item `index` counted from the start of production; pass `index / len` of the data, with
    /// the data's clock shifted for passes after the first.
    ///
    /// # Errors
    /// [`ProduceError::Encode`] if a message cannot be serialised.
    pub fn item(&self, index: u64) -> Result<Item, ProduceError> {
        let n = self.len().max(1);
        let (pass, at) = (index / n, usize::try_from(index % n).unwrap_or(0));
        #[allow(clippy::cast_precision_loss)]
        let passes = pass as f64;
        match &self.kind {
            PlanKind::Sensors { envelopes, shift_s } => {
                let Some(env) = envelopes.get(at) else { return Err(ProduceError::Empty("the bag")) };
                let body = if pass == 0 {
                    serde_json::to_vec(env)
                } else {
                    let mut env = env.clone();
                    let stamp = &mut header_mut(&mut env.message).stamp;
                    *stamp += passes * shift_s;
                    if !stamp.is_finite() {
                        return Err(ProduceError::Encode {
                            what: "a sensor envelope",
                            message: format!("pass {pass} moves its stamp past what a number holds"),
                        });
                    }
                    serde_json::to_vec(&env)
                }
                .map_err(|e| ProduceError::Encode { what: "a sensor envelope", message: e.to_string() })?;
                Ok(Item::Publish(Message::new(&self.subject, body)))
            }
            PlanKind::V2x { lines, shift_s } => {
                let Some(line) = lines.get(at) else { return Err(ProduceError::Empty("the V2X trace")) };
                // later passes move a VeReMi record's clock; UPER messages go out unchanged
                // (their generation time is inside the encoding), so a validator may see them
                // as replays
                let body = if pass == 0 || line.first() != Some(&b'{') { line.clone() } else { shift_veremi(line, passes * shift_s)? };
                Ok(Item::Publish(Message::new(&self.subject, body)))
            }
            PlanKind::Video { frames, info, stream, put_subject, ttl_ms } => {
                let Some(frame) = frames.get(at) else { return Err(ProduceError::Empty("the AVI")) };
                let key = format!("{stream}/{index}");
                let mut headers = vec![(NAMESPACE_HEADER.to_owned(), FRAME_NAMESPACE.to_owned()), (KEY_HEADER.to_owned(), key.clone())];
                if let Some(ttl) = ttl_ms {
                    headers.push((TTL_HEADER.to_owned(), ttl.to_string()));
                }
                let put = Message { subject: put_subject.clone(), headers, body: frame.jpeg.clone() };
                let reference = FrameRef {
                    stream: stream.clone(),
                    sequence: index,
                    timestamp_ns: info.timestamp_ns(index),
                    format: PixelFormat::Jpeg,
                    width: 0,
                    height: 0,
                    namespace: FRAME_NAMESPACE.to_owned(),
                    key,
                };
                let body = serde_json::to_vec(&reference).map_err(|e| ProduceError::Encode { what: "a frame reference", message: e.to_string() })?;
                Ok(Item::Frame { put, frame_ref: Message::new(&self.subject, body) })
            }
        }
    }

    /// The items of one pass, in order.
    ///
    /// # Errors
    /// As [`Plan::item`].
    pub fn items(&self) -> Result<Vec<Item>, ProduceError> {
        (0..self.len()).map(|i| self.item(i)).collect()
    }
}

/// A VeReMi line with `rcvTime` and `sendTime` moved by `shift_s`; other fields kept.
fn shift_veremi(line: &[u8], shift_s: f64) -> Result<Vec<u8>, ProduceError> {
    let encode = |e: serde_json::Error| ProduceError::Encode { what: "a shifted VeReMi record", message: e.to_string() };
    let mut value: serde_json::Value = serde_json::from_slice(line).map_err(encode)?;
    if let Some(obj) = value.as_object_mut() {
        for field in ["rcvTime", "sendTime"] {
            if let Some(t) = obj.get(field).and_then(serde_json::Value::as_f64) {
                let shifted = t + shift_s;
                // (JSON has no infinity: serde_json would write null)
                if !shifted.is_finite() {
                    return Err(ProduceError::Encode {
                        what: "a shifted VeReMi record",
                        message: format!("{field} {t} moved by {shift_s} s is past what a number holds"),
                    });
                }
                obj.insert(field.to_owned(), serde_json::json!(shifted));
            }
        }
    }
    serde_json::to_vec(&value).map_err(encode)
}

/// Builds every message of one pass of `source` without a server (what [`produce`] would send
/// with `looped = false` and no limit).
///
/// # Errors
/// As [`Plan::new`] and [`Plan::item`].
pub fn build_items(source: Source, subject: Option<&str>) -> Result<Vec<Item>, ProduceError> {
    Plan::new(source, subject)?.items()
}

/// When item `i` is due: `start + i / rate` (absolute, so no drift accumulates).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    rate: f64,
}

impl Schedule {
    /// # Errors
    /// [`ProduceError::InvalidRate`] unless `rate` is 0 or finite and at least [`MIN_RATE`].
    pub fn new(start: Instant, rate: f64) -> Result<Self, ProduceError> {
        if rate == 0.0 || (rate.is_finite() && rate >= MIN_RATE) {
            Ok(Self { start, rate })
        } else {
            Err(ProduceError::InvalidRate(rate))
        }
    }

    #[must_use]
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Offset of item `index` from the start; `None` for rate 0 (no pacing); saturates at
    /// [`Duration::MAX`].
    #[must_use]
    pub fn offset(&self, index: u64) -> Option<Duration> {
        if self.rate == 0.0 {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let secs = index as f64 / self.rate;
        Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
    }

    /// The instant item `index` is due; `Ok(None)` for rate 0.
    ///
    /// # Errors
    /// [`ProduceError::Schedule`] when the instant is not representable.
    pub fn due(&self, index: u64) -> Result<Option<Instant>, ProduceError> {
        match self.offset(index) {
            None => Ok(None),
            Some(off) => self.start.checked_add(off).map(Some).ok_or(ProduceError::Schedule(index)),
        }
    }
}

/// What a run sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProduceStats {
    pub kind: SourceKind,
    /// Paced items sent (messages; frames for video).
    pub items: u64,
    /// NATS messages sent, cache put requests included.
    pub messages: u64,
    /// Cache put requests acknowledged.
    pub cache_puts: u64,
    /// Body bytes sent (headers not counted).
    pub bytes: u64,
    /// From the first item to the end of the final flush.
    pub elapsed: Duration,
    /// From the first item's send to the last item's send (what the pacing controls).
    pub span: Duration,
    /// Ended by a [`StopSignal`].
    pub stopped: bool,
    /// Messages sent with a `traceparent` header, and the first trace (to look up in a
    /// tracing backend).
    pub traced: u64,
    pub first_trace: Option<TraceContext>,
}

impl ProduceStats {
    fn trace(&mut self, cx: TraceContext) {
        self.traced += 1;
        self.first_trace.get_or_insert(cx);
    }

    fn new(kind: SourceKind) -> Self {
        Self { kind, items: 0, messages: 0, cache_puts: 0, bytes: 0, elapsed: Duration::ZERO, span: Duration::ZERO, stopped: false, traced: 0, first_trace: None }
    }

    /// Items per second achieved: the intervals between the first and the last item over
    /// their [`span`](Self::span) (so 20 frames paced at 10/s, 1.9 s apart, give 10.0); with
    /// fewer than two items or a zero span, items over [`elapsed`](Self::elapsed).
    #[must_use]
    pub fn rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let (items, span, elapsed) = (self.items as f64, self.span.as_secs_f64(), self.elapsed.as_secs_f64());
        if self.items >= 2 && span > 0.0 {
            (items - 1.0) / span
        } else if elapsed > 0.0 {
            items / elapsed
        } else {
            0.0
        }
    }
}

/// Bytes for people: B, KiB, MiB, GiB.
#[must_use]
pub fn human_bytes(bytes: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

impl std::fmt::Display for ProduceStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = self.kind.unit();
        write!(f, "produced {} {unit}", self.items)?;
        if self.cache_puts > 0 {
            write!(f, " ({} NATS messages incl. {} cache puts)", self.messages, self.cache_puts)?;
        }
        write!(
            f,
            ", {} in {:.3} s: {:.1} {unit}/s, {}/s",
            human_bytes(self.bytes),
            self.elapsed.as_secs_f64(),
            self.rate(),
            human_bytes({
                let s = self.elapsed.as_secs_f64();
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let per_s = if s > 0.0 { (self.bytes as f64 / s) as u64 } else { 0 };
                per_s
            })
        )?;
        if self.stopped {
            write!(f, " (stopped)")?;
        }
        if let Some(first) = &self.first_trace {
            write!(f, "; {} traced, first trace id {}", self.traced, first.trace_id_hex())?;
        }
        Ok(())
    }
}

fn too_large(what: impl FnOnce() -> String, msg: &Message, max_payload: usize) -> Result<(), ProduceError> {
    let size = msg.wire_size();
    if size > max_payload {
        return Err(ProduceError::TooLarge { what: what(), size, max_payload });
    }
    Ok(())
}

async fn publish(client: &async_nats::Client, msg: Message) -> Result<(), ProduceError> {
    let headers = (!msg.headers.is_empty()).then(|| msg.header_map());
    let subject = msg.subject;
    let sent = match headers {
        Some(h) => client.publish_with_headers(subject.clone(), h, msg.body.into()).await,
        None => client.publish(subject.clone(), msg.body.into()).await,
    };
    sent.map_err(|e| ProduceError::Publish { subject, message: e.to_string() })
}

/// The version in a cache put reply, or the cache's refusal.
///
/// # Errors
/// [`ProduceError::CacheRejected`] for `{"error": …}`, [`ProduceError::CacheReply`] for
/// anything else that is not `{"version": N}`.
pub fn parse_put_reply(key: &str, body: &[u8]) -> Result<u64, ProduceError> {
    let bad = || ProduceError::CacheReply { key: key.to_owned(), body: String::from_utf8_lossy(body).chars().take(200).collect() };
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| bad())?;
    if let Some(v) = value.get("version").and_then(serde_json::Value::as_u64) {
        return Ok(v);
    }
    if let Some(e) = value.get("error").and_then(serde_json::Value::as_str) {
        return Err(ProduceError::CacheRejected { key: key.to_owned(), message: e.to_owned() });
    }
    Err(bad())
}

async fn cache_put(client: &async_nats::Client, put: Message, timeout: Duration) -> Result<u64, ProduceError> {
    let key = put.header(KEY_HEADER).unwrap_or_default().to_owned();
    let subject = put.subject.clone();
    let failed = |message: String| ProduceError::CachePut { subject: subject.clone(), key: key.clone(), message };
    let request = client.request_with_headers(put.subject.clone(), put.header_map(), put.body.into());
    let reply = tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| failed(format!("no reply within {} ms", timeout.as_millis())))?
        .map_err(|e| {
            if matches!(e.kind(), async_nats::RequestErrorKind::NoResponders) {
                failed("no responders: is `edgecell serve` (with nats_url) or the kv-cache provider running?".into())
            } else {
                failed(e.to_string())
            }
        })?;
    parse_put_reply(&key, &reply.payload)
}

/// Produces `source` on `client`: builds the [`Plan`], then [`produce_plan`].
///
/// # Errors
/// As [`Plan::new`] and [`produce_plan`].
pub async fn produce(
    client: &async_nats::Client,
    source: Source,
    opts: &ProduceOptions,
    progress: Option<&ProgressBar>,
) -> Result<ProduceStats, ProduceError> {
    let plan = Plan::new(source, opts.subject.as_deref())?;
    produce_plan(client, &plan, opts, progress).await
}

/// Sends the plan's items on the absolute schedule, then flushes. `progress` (if any) gets the
/// total as its length (when bounded), one tick per item and the bytes sent as its message.
/// `opts.subject` is not used here (it is part of the plan).
///
/// # Errors
/// [`ProduceError::InvalidRate`]; a message over the server's max_payload; a publish, cache put
/// or flush failure; a cache refusal. Items sent before the error stay sent.
pub async fn produce_plan(
    client: &async_nats::Client,
    plan: &Plan,
    opts: &ProduceOptions,
    progress: Option<&ProgressBar>,
) -> Result<ProduceStats, ProduceError> {
    let start = Instant::now();
    let schedule = Schedule::new(start, opts.rate)?;
    let total = plan.total(opts.limit, opts.looped);
    if let (Some(bar), Some(t)) = (progress, total) {
        bar.set_length(t);
    }
    let max_payload = client.max_payload();
    let mut stats = ProduceStats::new(plan.kind());
    let mut index = 0u64;
    let mut first_send: Option<Instant> = None;
    tracing::info!(source = plan.label(), subject = plan.subject(), items = ?total, rate = opts.rate, "producing");
    loop {
        if total.is_some_and(|t| index >= t) {
            break;
        }
        if opts.stop.as_ref().is_some_and(StopSignal::is_stopped) {
            stats.stopped = true;
            break;
        }
        if let Some(due) = schedule.due(index)? {
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(due));
            match &opts.stop {
                Some(stop) => {
                    tokio::select! {
                        () = sleep => {}
                        () = stop.stopped() => {
                            stats.stopped = true;
                            break;
                        }
                    }
                }
                None => sleep.await,
            }
        }
        let item = plan.item(index)?;
        let now = Instant::now();
        stats.span = now.duration_since(*first_send.get_or_insert(now));
        stats.bytes += item.payload_bytes() as u64;
        match item {
            Item::Publish(mut msg) => {
                if opts.trace {
                    stats.trace(msg.start_trace());
                }
                too_large(|| format!("message {index} for {}", msg.subject), &msg, max_payload)?;
                publish(client, msg).await?;
                stats.messages += 1;
            }
            Item::Frame { put, mut frame_ref } => {
                if opts.trace {
                    stats.trace(frame_ref.start_trace());
                }
                let key = put.header(KEY_HEADER).unwrap_or_default().to_owned();
                too_large(|| format!("frame {key} (cache put on {})", put.subject), &put, max_payload)?;
                too_large(|| format!("frame reference {key}"), &frame_ref, max_payload)?;
                let version = cache_put(client, put, opts.request_timeout).await?;
                tracing::debug!(key = %key, version, "frame cached");
                stats.cache_puts += 1;
                publish(client, frame_ref).await?;
                stats.messages += 2;
            }
        }
        stats.items += 1;
        index += 1;
        if let Some(bar) = progress {
            bar.inc(1);
            if index.is_multiple_of(64) {
                bar.set_message(human_bytes(stats.bytes));
            }
        }
    }
    client.flush().await.map_err(|e| ProduceError::Flush(e.to_string()))?;
    stats.elapsed = start.elapsed();
    if let Some(bar) = progress {
        bar.set_message(human_bytes(stats.bytes));
    }
    tracing::info!(items = stats.items, messages = stats.messages, bytes = stats.bytes, elapsed_ms = stats.elapsed.as_millis(), "produced");
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_starts_with_a_w3c_traceparent() {
        let cx = TraceContext { trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736, span_id: 0x00f0_67aa_0ba9_02b7 };
        assert_eq!(cx.traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(cx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let mut m = Message::new("s", Vec::new());
        m.headers.push(("traceparent".into(), "00-old".into()));
        m.headers.push(("other".into(), "x".into()));
        let cx = m.start_trace();
        assert_ne!((cx.trace_id, cx.span_id), (0, 0));
        assert_eq!(m.header(TRACEPARENT_HEADER), Some(cx.traceparent().as_str()));
        assert_eq!(m.headers.len(), 2, "the old traceparent is replaced, other headers kept");
        assert_ne!(m.start_trace(), cx, "each message a new trace");
    }

    #[test]
    fn tokens_and_subjects_are_checked() {
        assert!(token("stream", "vtest").is_ok());
        for bad in ["", "a.b", "*", ">", "a b", "x\n"] {
            assert!(matches!(token("stream", bad), Err(ProduceError::InvalidToken { .. })), "{bad:?}");
        }
        assert_eq!(subject_or(Some("a.b.c"), "d".into()).unwrap(), "a.b.c");
        assert_eq!(subject_or(None, "d.e".into()).unwrap(), "d.e");
        for bad in ["", "a..b", "a.*", "a.>", "a b"] {
            assert!(matches!(subject_or(Some(bad), "d".into()), Err(ProduceError::InvalidSubject(_))), "{bad:?}");
        }
    }

    #[test]
    fn wire_size_counts_the_header_block() {
        let m = Message { subject: "s".into(), headers: vec![("k".into(), "vv".into())], body: vec![0; 10] };
        // "NATS/1.0\r\n" + "k: vv\r\n" + "\r\n" + body
        assert_eq!(m.wire_size(), 10 + 7 + 2 + 10);
        assert_eq!(Message::new("s", vec![1, 2, 3]).wire_size(), 3);
    }

    #[test]
    fn put_replies_are_versions_or_typed_refusals() {
        assert_eq!(parse_put_reply("k", br#"{"version":7}"#).unwrap(), 7);
        match parse_put_reply("k", br#"{"error":"missing header `edgecell-key`"}"#) {
            Err(ProduceError::CacheRejected { key, message }) => assert_eq!((key.as_str(), message.as_str()), ("k", "missing header `edgecell-key`")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_put_reply("k", b"ok"), Err(ProduceError::CacheReply { .. })));
        assert!(matches!(parse_put_reply("k", b"{}"), Err(ProduceError::CacheReply { .. })));
    }

    #[test]
    fn v2x_traces_take_veremi_json_and_hex_uper_lines() {
        let cam = "0202dde3a9e5c7c0";
        let trace = format!("{{\"type\":2,\"rcvTime\":1.0,\"pos\":[0,0,0]}}\n{cam}\n\n");
        let plan = Plan::new(Source::v2x_trace(trace.into_bytes()), None).unwrap();
        let PlanKind::V2x { lines, .. } = &plan.kind else { panic!("v2x") };
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], hex::decode(cam).unwrap());
        assert_eq!(plan.subject, "edgecell.v2x.in.local");
        for bad in ["zz", "7b22", ""] {
            let r = Plan::new(Source::v2x_trace(format!("{bad}\n").into_bytes()), None);
            assert!(matches!(r, Err(ProduceError::V2xLine { line: 1, .. } | ProduceError::Empty(_))), "{bad:?}: {r:?}");
        }
    }

    #[test]
    fn veremi_shift_moves_only_the_times() {
        let line = br#"{"type":3,"rcvTime":10.5,"sendTime":10.25,"pos":[1.0,2.0,0.0],"sender":4,"extra":"kept"}"#;
        let out: serde_json::Value = serde_json::from_slice(&shift_veremi(line, 100.0).unwrap()).unwrap();
        assert_eq!(out["rcvTime"], 110.5);
        assert_eq!(out["sendTime"], 110.25);
        assert_eq!(out["pos"], serde_json::json!([1.0, 2.0, 0.0]));
        assert_eq!(out["extra"], "kept");
    }

    #[test]
    fn pass_shift_is_span_plus_gap() {
        assert!((pass_shift([3.0, 1.0, 2.0].into_iter(), 0.5) - 2.5).abs() < 1e-12);
        assert!((pass_shift(std::iter::empty(), 1.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn achieved_rate_counts_intervals_over_the_span() {
        let mut s = ProduceStats::new(SourceKind::Video);
        (s.items, s.messages, s.cache_puts, s.bytes) = (20, 40, 20, 1_119_235 + 20 * 130);
        (s.span, s.elapsed) = (Duration::from_millis(1900), Duration::from_millis(1902));
        assert!((s.rate() - 10.0).abs() < 1e-9, "{}", s.rate());
        assert_eq!(
            s.to_string(),
            "produced 20 frames (40 NATS messages incl. 20 cache puts), 1.07 MiB in 1.902 s: 10.0 frames/s, 576.0 KiB/s"
        );
        // one item, or all sent at once: items over the elapsed time
        let mut one = ProduceStats::new(SourceKind::V2x);
        (one.items, one.elapsed) = (1, Duration::from_millis(4));
        assert!((one.rate() - 250.0).abs() < 1e-9);
        assert_eq!(ProduceStats::new(SourceKind::Sensors).rate(), 0.0);
    }

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.00 MiB");
    }
}
