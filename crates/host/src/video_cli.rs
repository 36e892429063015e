//! `edgecell video …`: detection and the full analytics pipeline, done by the video-analytics
//! actor inside the embedded host (the model runs in the in-process inference provider), and
//! the video stage of the main job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use edgecell::bindings::video_analytics::exports::edgecell::video::analytics as wit;
use edgecell::{ActorInstance, Runtime, RuntimeConfig, Services};
use edgecell_inference::{Backend, InferencePool, ModelRegistry, OrtConfig, PoolConfig, RegistryConfig};
use edgecell_vision::wire::{FrameRef, FrameSummary};
use edgecell_vision::{MjpegAvi, PixelFormat};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use crate::run::Stage;

/// The component file of the video-analytics actor.
pub const COMPONENT: &str = "edgecell_video_analytics.wasm";
/// Its actor name (cache keyspace, metrics label).
pub const ACTOR: &str = "video-analytics";
const DEFAULT_MODEL: &str = "nanodet-m-416";

#[derive(Debug, clap::Subcommand)]
pub enum VideoCmd {
    /// Detect objects in one image; prints JSON `[{"class","score","box":[x1,y1,x2,y2]}]` in
    /// original image pixels.
    Detect {
        image: PathBuf,
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        #[arg(long, default_value_t = 0.35)]
        score: f32,
        #[command(flatten)]
        host: HostArgs,
    },
    /// Stream an MJPEG AVI through detection, tracking, zones and lines; prints events and counts.
    Run {
        clip: PathBuf,
        /// Zones and lines (JSON): {"zones":[{"name","polygon":[[x,y],..]}],
        /// "lines":[{"name","a":[x,y],"b":[x,y]}], "min_frames_in_zone":3, "classes":["person"]}.
        /// Line direction: looking from a to b, "forward" is crossing from its right to its left.
        #[arg(long)]
        zones: PathBuf,
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        #[arg(long, default_value_t = 0.35)]
        score: f32,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        host: HostArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct HostArgs {
    /// Directory of ONNX models for the inference provider.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Directory with the built components (default: next to this binary's target dir).
    #[arg(long)]
    components: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Which engine the in-process inference provider runs models on.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Inference engine: `tract` (built in, pure Rust) or `onnxruntime` (ONNX Runtime, loaded
    /// from a shared library at run time).
    #[arg(long, value_enum, default_value_t = EngineName::Tract)]
    pub backend: EngineName,
    /// libonnxruntime.so for `--backend onnxruntime` (default: $ORT_DYLIB_PATH, then
    /// tools/onnxruntime/libonnxruntime.so as unpacked by scripts/setup.sh, then the system's
    /// library path).
    #[arg(long)]
    pub onnxruntime_library: Option<PathBuf>,
}

/// Engine names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineName {
    Tract,
    Onnxruntime,
}

impl EngineArgs {
    /// The backend configuration these flags select.
    pub fn backend(&self) -> Backend {
        match self.backend {
            EngineName::Tract => Backend::Tract,
            EngineName::Onnxruntime => {
                // the flag, else $ORT_DYLIB_PATH or the copy setup.sh unpacked below the working
                // directory; neither present: the dynamic loader's search path
                let library = self
                    .onnxruntime_library
                    .clone()
                    .or_else(|| Some(OrtConfig::library_under(Path::new(""))).filter(|p| p.is_file()));
                Backend::Onnxruntime(OrtConfig { library, ..OrtConfig::default() })
            }
        }
    }
}

/// The zones file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZonesFile {
    #[serde(default)]
    zones: Vec<ZoneSpec>,
    #[serde(default)]
    lines: Vec<LineSpec>,
    #[serde(default = "three")]
    min_frames_in_zone: u32,
    #[serde(default)]
    classes: Vec<String>,
}

fn three() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneSpec {
    name: String,
    polygon: Vec<[f32; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LineSpec {
    name: String,
    a: [f32; 2],
    b: [f32; 2],
}

fn pt(p: [f32; 2]) -> wit::Point {
    wit::Point { x: p[0], y: p[1] }
}

impl ZonesFile {
    fn stream_config(&self, model: &str, score: f32) -> wit::StreamConfig {
        wit::StreamConfig {
            model: model.into(),
            score_threshold: score,
            iou_threshold: 0.6,
            classes: self.classes.clone(),
            zones: self.zones.iter().map(|z| wit::Zone { name: z.name.clone(), polygon: z.polygon.iter().copied().map(pt).collect() }).collect(),
            lines: self.lines.iter().map(|l| wit::Line { name: l.name.clone(), a: pt(l.a), b: pt(l.b) }).collect(),
            min_frames_in_zone: self.min_frames_in_zone,
        }
    }
}

/// The in-process inference provider: the models `registry` names, on its engine, behind a
/// worker pool. Returns the pool and how many models it holds.
pub fn inference_pool(registry: &RegistryConfig, pool: PoolConfig) -> Result<(Arc<InferencePool>, usize)> {
    let engine = registry.backend.name();
    let models = ModelRegistry::load(registry)
        .with_context(|| format!("loading models from {} on {engine}", registry.dir.display()))?;
    let count = models.len();
    Ok((Arc::new(InferencePool::new(Arc::new(models), pool)?), count))
}

/// A host with the cache, metrics and an inference provider over `models`, run by `backend`.
pub fn runtime_with_models(models: &Path, backend: Backend, config: RuntimeConfig) -> Result<(Runtime, Arc<edgecell::LocalBus>)> {
    let (mut services, bus) = Services::local(edgecell_kv_cache::CacheConfig::default());
    let (pool, count) = inference_pool(&RegistryConfig { backend, ..RegistryConfig::new(models) }, PoolConfig::default())?;
    if count == 0 {
        bail!("no .onnx models in {}", models.display());
    }
    services.inference = pool;
    Ok((Runtime::new(config, services)?, bus))
}

fn load(host: &HostArgs) -> Result<(Runtime, ActorInstance)> {
    let dir = match &host.components {
        Some(d) => d.clone(),
        None => crate::run::default_components_dir()?,
    };
    let path = dir.join(COMPONENT);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {} (build it with `make components`)", path.display()))?;
    let (rt, _bus) = runtime_with_models(&host.models, host.engine.backend(), RuntimeConfig::default())?;
    let spec = edgecell::ActorSpec { name: ACTOR.into(), path, sha256: Some(edgecell::sha256_hex(&bytes)), config: Default::default() };
    let actor = rt.load_actor(spec)?;
    let inst = actor.instantiate()?;
    Ok((rt, inst))
}

fn image_format(path: &Path, bytes: &[u8]) -> Result<wit::PixelFormat> {
    if bytes.starts_with(&[0xff, 0xd8]) {
        return Ok(wit::PixelFormat::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG") {
        return Ok(wit::PixelFormat::Png);
    }
    bail!("{} is neither JPEG nor PNG", path.display())
}

fn event_name(k: wit::EventKind) -> &'static str {
    match k {
        wit::EventKind::Entered => "entered",
        wit::EventKind::Left => "left",
        wit::EventKind::Crossed => "crossed",
    }
}

fn direction_name(d: wit::Direction) -> &'static str {
    match d {
        wit::Direction::Forward => "forward",
        wit::Direction::Backward => "backward",
    }
}

// by value so it can be passed to `map_err` directly
#[allow(clippy::needless_pass_by_value)]
fn video_error(e: wit::VideoError) -> anyhow::Error {
    anyhow::anyhow!("video-analytics: {e:?}")
}

pub fn run(cmd: VideoCmd) -> Result<()> {
    match cmd {
        VideoCmd::Detect { image, model, score, host } => {
            let bytes = std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
            let format = image_format(&image, &bytes)?;
            let (_rt, mut inst) = load(&host)?;
            let va = inst.video_analytics()?;
            let frame = wit::Frame {
                stream_id: "detect".into(),
                sequence: 0,
                timestamp: 0,
                width: 0,
                height: 0,
                format,
                data: wit::FrameData::Inline(bytes),
            };
            let dets = inst.call(|s, _| va.edgecell_video_analytics().call_detect(s, &frame, &model, score))?.map_err(video_error)?;
            let out: Vec<serde_json::Value> = dets
                .iter()
                .map(|d| serde_json::json!({"class": d.class_name, "score": d.score, "box": [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2]}))
                .collect();
            println!("{}", serde_json::to_string(&out)?);
        }
        VideoCmd::Run { clip, zones, model, score, quiet, host } => {
            let zones: ZonesFile = serde_json::from_slice(&std::fs::read(&zones).with_context(|| format!("reading {}", zones.display()))?)
                .with_context(|| format!("parsing {}", zones.display()))?;
            let bytes = std::fs::read(&clip).with_context(|| format!("reading {}", clip.display()))?;
            let avi = MjpegAvi::parse(&bytes).with_context(|| format!("parsing {}", clip.display()))?;
            let (rt, mut inst) = load(&host)?;
            let va = inst.video_analytics()?;
            let cfg = zones.stream_config(&model, score);
            inst.call(|s, _| va.edgecell_video_analytics().call_configure(s, "clip", &cfg))?.map_err(video_error)?;
            let frames: Vec<_> = avi.frames().collect::<Result<_, _>>().context("reading AVI frames")?;
            let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(frames.len() as u64) };
            bar.set_style(ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {per_sec}").unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar.set_prefix("frames");
            let mut tracks = std::collections::BTreeSet::new();
            for f in &frames {
                // frames travel by handle: stored in the cache, referenced by key
                let key = format!("clip/{}", f.index);
                rt.services().cache.set(ACTOR, "frames", &key, f.data.to_vec(), Some(60_000)).map_err(|e| anyhow::anyhow!("cache: {e}"))?;
                let frame = wit::Frame {
                    stream_id: "clip".into(),
                    sequence: f.index,
                    timestamp: f.timestamp_ns,
                    width: 0,
                    height: 0,
                    format: wit::PixelFormat::Jpeg,
                    data: wit::FrameData::CacheKey(("frames".into(), key)),
                };
                let r = inst.call(|s, _| va.edgecell_video_analytics().call_process_frame(s, &frame))?.map_err(video_error)?;
                tracks.extend(r.tracks.iter().map(|t| t.track_id));
                for e in &r.events {
                    bar.suspend(|| {
                        println!(
                            "{}",
                            serde_json::json!({
                                "frame": f.index, "event": event_name(e.kind), "track": e.track_id,
                                "class": e.class_name, "region": e.region,
                                "direction": e.direction.map(direction_name), "dwell_ms": e.dwell_ms,
                            })
                        );
                    });
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            println!("frames: {}, distinct tracks: {}", frames.len(), tracks.len());
        }
    }
    Ok(())
}

/// Lines across the walkway of the bundled vtest clip (768×576): pedestrians heading right
/// cross the west line, those heading left the east one, within the clip's 2 s.
const VTEST_STREAM: &str = r#"{"model":"nanodet-m-416","score_threshold":0.35,"iou_threshold":0.6,"classes":["person"],
 "lines":[{"name":"walkway-west","a":{"x":320,"y":0},"b":{"x":320,"y":576}},
          {"name":"walkway-east","a":{"x":480,"y":0},"b":{"x":480,"y":576}}],
 "zones":[{"name":"square","polygon":[{"x":0,"y":300},{"x":768,"y":300},{"x":768,"y":576},{"x":0,"y":576}]}],
 "min_frames_in_zone":3}"#;

/// The video stage of `edgecell run`: the vtest clip, each JPEG frame passed by cache handle.
pub fn stages(data: &Path) -> Result<Vec<Stage>> {
    let path = data.join("video/vtest_2s_mjpeg.avi");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let avi = MjpegAvi::parse(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    let mut preload = Vec::new();
    let mut inputs = Vec::new();
    for f in avi.frames() {
        let f = f.context("reading AVI frames")?;
        let key = format!("vtest/{}", f.index);
        let r = FrameRef {
            stream: "vtest".into(),
            sequence: f.index,
            timestamp_ns: f.timestamp_ns,
            format: PixelFormat::Jpeg,
            width: 0,
            height: 0,
            namespace: "frames".into(),
            key: key.clone(),
        };
        inputs.push(crate::run::message("edgecell.video.frames.vtest", serde_json::to_vec(&r)?));
        preload.push(("frames".to_owned(), key, f.data.to_vec()));
    }
    Ok(vec![Stage {
        title: "video: vtest clip (NanoDet)",
        actor: ACTOR,
        component_file: COMPONENT,
        config: vec![("stream.vtest", VTEST_STREAM.to_owned())],
        preload,
        inputs,
        verdict: Box::new(|published| {
            let mut tracks = std::collections::BTreeSet::new();
            let mut detections = 0;
            let mut crossings = std::collections::BTreeMap::<String, usize>::new();
            for p in published {
                if p.subject == "edgecell.video.results.vtest" {
                    let s: FrameSummary = serde_json::from_slice(&p.body)?;
                    detections += s.detections;
                    tracks.extend(s.tracks.iter().map(|t| t.0));
                } else if p.subject == "edgecell.video.events.vtest" {
                    for e in serde_json::from_slice::<Vec<serde_json::Value>>(&p.body)? {
                        if e["kind"] == "crossed" {
                            let key = format!("{} {}", e["region"].as_str().unwrap_or("?"), e["direction"].as_str().unwrap_or("?"));
                            *crossings.entry(key).or_default() += 1;
                        }
                    }
                }
            }
            if tracks.is_empty() {
                bail!("no pedestrian was tracked");
            }
            let crossings: Vec<String> = crossings.iter().map(|(k, v)| format!("{k} {v}")).collect();
            Ok(format!("{detections} detections, {} tracks, crossings: {}", tracks.len(), if crossings.is_empty() { "none".into() } else { crossings.join(", ") }))
        }),
    }])
}
