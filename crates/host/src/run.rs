//! `edgecell run`: the main job. Every available actor is fed the bundled data through its
//! `wasmcloud:messaging/handler` export, exactly as NATS would deliver it on a lattice, inside
//! the embedded host; what the actors publish is collected and summarised.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edgecell::bindings::BrokerMessage;
use edgecell::{ActorSpec, LoadSource, Runtime, RuntimeConfig};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Directory with the built components (default: next to this binary's target dir).
    #[arg(long)]
    pub components: Option<PathBuf>,
    /// Directory with the bundled data (default: ./data).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
    /// Directory of ONNX models for the inference provider.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Feed at most this many messages per stage.
    #[arg(long)]
    pub limit: Option<usize>,
    /// No progress bars (logs and CI).
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub engine: crate::video_cli::EngineArgs,
}

/// Turns what a stage's actor published into the stage's result line (or an error).
pub type Verdict = Box<dyn Fn(&[edgecell::Published]) -> Result<String>>;

/// One actor fed with messages made from bundled data.
pub struct Stage {
    pub title: &'static str,
    /// The actor's name: its cache keyspace and metrics label.
    pub actor: &'static str,
    pub component_file: &'static str,
    /// Delivered to the actor through `wasi:config/store`.
    pub config: Vec<(&'static str, String)>,
    /// Entries written into the actor's cache keyspace before the stage (namespace, key, value).
    pub preload: Vec<(String, String, Vec<u8>)>,
    pub inputs: Vec<BrokerMessage>,
    /// Turns what the actor published into the stage's result line (and fails on a wrong one).
    pub verdict: Verdict,
}

/// A row of the summary table.
struct Row {
    title: String,
    actor: String,
    messages: usize,
    ok: usize,
    failed: usize,
    published: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    peak_memory: usize,
    load: String,
    verdict: String,
}

pub fn default_components_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("EDGECELL_COMPONENTS") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    // <target>/<profile>/edgecell → <target>/wasm32-wasip2/component
    let target = exe.parent().and_then(Path::parent).context("binary has no target dir")?;
    Ok(target.join("wasm32-wasip2").join("component"))
}

pub fn message(subject: &str, body: Vec<u8>) -> BrokerMessage {
    BrokerMessage { subject: subject.into(), body, reply_to: None }
}

/// robot_localization's published final position for test2.bag and its tolerance.
const TEST2_EXPECTED: [f64; 3] = [1.0206, 3.4292, 0.7419];
const TEST2_TOLERANCE_M: f64 = 0.1383;

/// The bag's sensor messages as NATS envelopes for the sensor-fusion actor.
fn bag_stage(data: &Path, file: &str, preset: &'static str, filter: &'static str) -> Result<Vec<BrokerMessage>> {
    let path = data.join("fusion").join(file);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let cfg = edgecell_fusion::preset(preset)?;
    Ok(edgecell::produce::sensor_messages(&bytes, &cfg, filter)?)
}

fn last_state(published: &[edgecell::Published], filter: &str) -> Result<edgecell_fusion::wire::StateMessage> {
    let subject = format!("edgecell.fusion.state.{filter}");
    let last = published.iter().rev().find(|p| p.subject == subject).context("the actor published no state")?;
    Ok(serde_json::from_slice(&last.body)?)
}

/// |acceleration| of every x-io IMU sample, 100 readings per message, for the IoT path.
fn iot_batches(data: &Path) -> Result<Vec<BrokerMessage>> {
    let path = data.join("fusion/xio_sensor_data.csv");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut readings = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<f64> = line.split(',').map(|c| c.trim().parse::<f64>()).collect::<Result<_, _>>().context("x-io CSV")?;
        let (Some(t), Some(ax), Some(ay), Some(az)) = (cols.first(), cols.get(4), cols.get(5), cols.get(6)) else {
            bail!("x-io CSV row with fewer than 7 columns");
        };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let time_ms = (t * 1000.0).round() as u64;
        readings.push(edgecell_fusion::iot::Reading { sensor: "xio-accel-g".into(), time_ms, value: (ax * ax + ay * ay + az * az).sqrt() });
    }
    readings.chunks(100).map(|c| Ok(message("edgecell.iot.in.xio", serde_json::to_vec(c)?))).collect()
}

fn stages(data: &Path) -> Result<Vec<Stage>> {
    let mut stages = fusion_stages(data)?;
    stages.extend(crate::v2x_cli::stages(data)?);
    stages.extend(crate::video_cli::stages(data)?);
    Ok(stages)
}

fn fusion_stages(data: &Path) -> Result<Vec<Stage>> {
    Ok(vec![
        Stage {
            title: "fusion: test2.bag (EKF)",
            actor: "sensor-fusion",
            component_file: "edgecell_sensor_fusion.wasm",
            config: vec![("filter.jackal", "robot-localization-test2".into())],
            preload: vec![],
            inputs: bag_stage(data, "test2.bag", "robot-localization-test2", "jackal")?,
            verdict: Box::new(|published| {
                let s = last_state(published, "jackal")?;
                let p = &s.state.pose;
                let err = ((p.x - TEST2_EXPECTED[0]).powi(2) + (p.y - TEST2_EXPECTED[1]).powi(2) + (p.z - TEST2_EXPECTED[2]).powi(2)).sqrt();
                if err > TEST2_TOLERANCE_M {
                    bail!("test2 final position ({:.4}, {:.4}, {:.4}) is {err:.4} m from the published pose", p.x, p.y, p.z);
                }
                Ok(format!(
                    "final ({:.3}, {:.3}, {:.3}) m: {err:.4} m from robot_localization's published pose (tolerance {TEST2_TOLERANCE_M} m)",
                    p.x, p.y, p.z
                ))
            }),
        },
        Stage {
            title: "fusion: test1.bag (EKF)",
            actor: "sensor-fusion",
            component_file: "edgecell_sensor_fusion.wasm",
            config: vec![("filter.husky", "robot-localization-test1".into())],
            preload: vec![],
            inputs: bag_stage(data, "test1.bag", "robot-localization-test1", "husky")?,
            verdict: Box::new(|published| {
                let s = last_state(published, "husky")?;
                let p = &s.state.pose;
                Ok(format!("final ({:.3}, {:.3}, {:.3}) m, yaw {:.3} rad, {} updates, {} gated", p.x, p.y, p.z, p.yaw, s.updates, s.gated))
            }),
        },
        Stage {
            title: "iot: x-io |accel| windows",
            actor: "sensor-fusion",
            component_file: "edgecell_sensor_fusion.wasm",
            config: vec![],
            preload: vec![],
            inputs: iot_batches(data)?,
            verdict: Box::new(|published| {
                let mut outputs: Vec<edgecell_fusion::iot::Output> = Vec::new();
                for p in published.iter().filter(|p| p.subject == "edgecell.iot.out.xio") {
                    outputs.extend(serde_json::from_slice::<Vec<edgecell_fusion::iot::Output>>(&p.body)?);
                }
                let aggregates = outputs.iter().filter(|o| matches!(o, edgecell_fusion::iot::Output::Aggregate(_))).count();
                if aggregates == 0 {
                    bail!("no window aggregates were published");
                }
                Ok(format!("{aggregates} window aggregates, {} anomalies", outputs.len() - aggregates))
            }),
        },
    ])
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn run_stage(runtime: &Runtime, bus: &edgecell::LocalBus, dir: &Path, stage: Stage, limit: Option<usize>, quiet: bool) -> Result<Option<Row>> {
    let path = dir.join(stage.component_file);
    if !path.exists() {
        println!("skipping {}: {} is not built", stage.title, path.display());
        return Ok(None);
    }
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    // The main job pins each component to the digest of the file it found, so a component that
    // changes while the job runs is refused.
    let spec = ActorSpec {
        name: stage.actor.into(),
        path: path.clone(),
        sha256: Some(edgecell::sha256_hex(&bytes)),
        config: stage.config.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
    };
    for (ns, key, value) in stage.preload {
        runtime
            .services()
            .cache
            .set(stage.actor, &ns, &key, value, Some(600_000))
            .map_err(|e| anyhow::anyhow!("preloading {ns}/{key}: {e}"))?;
    }
    let actor = runtime.load_actor(spec)?;
    let load = match actor.load_source() {
        LoadSource::Precompiled => format!("cwasm {:.1} ms", actor.load_time().as_secs_f64() * 1e3),
        LoadSource::CompiledAndCached | LoadSource::Compiled => format!("compiled {:.0} ms", actor.load_time().as_secs_f64() * 1e3),
    };
    let mut instance = actor.instantiate()?;
    let inputs: Vec<BrokerMessage> = match limit {
        Some(n) => stage.inputs.into_iter().take(n).collect(),
        None => stage.inputs,
    };
    let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(inputs.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>28} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(stage.title);
    let mut latencies = Vec::with_capacity(inputs.len());
    let (mut ok, mut failed) = (0, 0);
    let started = Instant::now();
    for msg in &inputs {
        let t = Instant::now();
        let outcome = instance.handle_message(msg);
        latencies.push(t.elapsed());
        match outcome {
            Ok(Ok(())) => ok += 1,
            Ok(Err(e)) => {
                failed += 1;
                tracing::warn!(actor = stage.actor, error = %e, "message rejected");
            }
            Err(e) => {
                failed += 1;
                tracing::error!(actor = stage.actor, error = %e, "host error; replacing the instance");
                instance = actor.instantiate()?;
            }
        }
        bar.inc(1);
    }
    let elapsed = started.elapsed();
    bar.finish();
    latencies.sort_unstable();
    let published: Vec<edgecell::Published> = bus.drain().into_iter().filter(|p| p.from == stage.actor).collect();
    let verdict = (stage.verdict)(&published).with_context(|| format!("stage {}", stage.title))?;
    Ok(Some(Row {
        title: stage.title.into(),
        actor: stage.actor.into(),
        messages: inputs.len(),
        ok,
        failed,
        published: published.len(),
        elapsed,
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        peak_memory: instance.peak_memory_bytes(),
        load,
        verdict,
    }))
}

fn print_summary(rows: &[Row]) {
    println!();
    println!(
        "{:<28} {:<14} {:>8} {:>8} {:>7} {:>9} {:>10} {:>9} {:>9} {:>9}  load",
        "stage", "actor", "messages", "ok", "failed", "published", "msg/s", "p50 µs", "p99 µs", "mem KiB"
    );
    for r in rows {
        let rate = r.messages as f64 / r.elapsed.as_secs_f64().max(1e-9);
        println!(
            "{:<28} {:<14} {:>8} {:>8} {:>7} {:>9} {:>10.0} {:>9.1} {:>9.1} {:>9}  {}",
            r.title,
            r.actor,
            r.messages,
            r.ok,
            r.failed,
            r.published,
            rate,
            r.p50.as_secs_f64() * 1e6,
            r.p99.as_secs_f64() * 1e6,
            r.peak_memory / 1024,
            r.load
        );
    }
    println!();
    for r in rows {
        println!("{:<28} {}", r.title, r.verdict);
    }
}

pub fn run(args: &RunArgs) -> Result<()> {
    let dir = match &args.components {
        Some(d) => d.clone(),
        None => default_components_dir()?,
    };
    if !args.data.is_dir() {
        bail!("data directory {} not found (run from the repository root or pass --data)", args.data.display());
    }
    let cache_dir = dir.parent().and_then(Path::parent).map(|t| t.join("edgecell-cache"));
    let backend = args.engine.backend();
    let engine = backend.name();
    let (runtime, bus) = crate::video_cli::runtime_with_models(&args.models, backend, RuntimeConfig { cache_dir, ..RuntimeConfig::default() })?;
    let metrics = Arc::clone(&runtime.services().metrics);
    let cache = Arc::clone(&runtime.services().cache);
    println!("edgecell run: components from {}, data from {}, models on {engine}", dir.display(), args.data.display());
    let mut rows = Vec::new();
    for stage in stages(&args.data)? {
        if let Some(row) = run_stage(&runtime, &bus, &dir, stage, args.limit, args.quiet)? {
            rows.push(row);
        }
    }
    if rows.is_empty() {
        bail!("no actor components found in {} (build them with `make components`)", dir.display());
    }
    print_summary(&rows);
    let stats = cache.stats();
    println!(
        "\ncache: {} entries, {} bytes, {} hits, {} misses, {} evictions",
        stats.entries, stats.bytes, stats.hits, stats.misses, stats.evictions
    );
    let snapshot = metrics.snapshot();
    println!("metrics: {} families", snapshot.metrics.len());
    for m in &snapshot.metrics {
        for s in &m.series {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            match s.count {
                Some(c) => println!("  {}{{{}}} count={c} sum={}", m.name, labels.join(","), s.value),
                None => println!("  {}{{{}}} {}", m.name, labels.join(","), s.value),
            }
        }
    }
    let failed: usize = rows.iter().map(|r| r.failed).sum();
    if failed > 0 {
        bail!("{failed} messages failed");
    }
    Ok(())
}
