//! `edgecell produce …`: replay the bundled data onto NATS at a given rate (see
//! [`edgecell::produce`] for the wire forms, the cache put protocol and the pacing).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use edgecell::produce::{
    AttackType, DEFAULT_FILTER, DEFAULT_FRAME_TTL_MS, DEFAULT_KEYSPACE, DEFAULT_REGION, DEFAULT_SIM_DURATION_S, DEFAULT_SIM_SEED,
    DEFAULT_STREAM, Plan, ProduceOptions, Schedule, Source, StopSignal, produce_plan,
};
use edgecell_fusion::LocalizerConfig;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Subcommand)]
pub enum ProduceCmd {
    /// A ROS1 bag (data/fusion/test2.bag, test1.bag) as sensor envelopes on
    /// `edgecell.sensors.in.<filter>`, in the bag's time order.
    Sensors {
        file: PathBuf,
        /// Filter id written into each envelope (the actor's config maps it to a preset, e.g.
        /// `filter.jackal = robot-localization-test2`).
        #[arg(long, default_value = DEFAULT_FILTER)]
        filter: String,
        /// Built-in preset that says which topics are which sensors (default: the preset whose
        /// topics are all in the bag).
        #[arg(long, conflicts_with = "config")]
        preset: Option<String>,
        /// Localizer configuration (TOML) instead of a preset; add a `gnss` sensor to produce
        /// NavSatFix messages.
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// VeReMi JSON lines (a real trace, or `edgecell v2x simulate --output trace.jsonl`) and/or
    /// hex lines of UPER ETSI messages (CAM, DENM, CPM) on `edgecell.v2x.in.<region>`, one
    /// line per message.
    V2x {
        /// The trace; or give --simulate.
        #[arg(required_unless_present = "simulate", conflicts_with = "simulate")]
        file: Option<PathBuf>,
        /// Generate the seeded simulator's trace in memory with this attack (e.g.
        /// ConstPosOffset, RandomPosOffset, Sybil, DoS).
        #[arg(long)]
        simulate: Option<String>,
        #[arg(long, default_value_t = DEFAULT_SIM_SEED, requires = "simulate")]
        seed: u64,
        /// Simulated time, s (capped by the built-in Husky track).
        #[arg(long, default_value_t = DEFAULT_SIM_DURATION_S, requires = "simulate")]
        duration: f64,
        #[arg(long, default_value = DEFAULT_REGION)]
        region: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// An MJPEG AVI: each JPEG frame is put in the cache (`edgecell.cache.put.<keyspace>`),
    /// then its reference is published on `edgecell.video.frames.<stream>`.
    Video {
        file: PathBuf,
        #[arg(long, default_value = DEFAULT_STREAM)]
        stream: String,
        #[arg(long, default_value = DEFAULT_KEYSPACE)]
        keyspace: String,
        /// Lifetime of a cached frame, ms; 0 = no expiry.
        #[arg(long, default_value_t = DEFAULT_FRAME_TTL_MS)]
        ttl_ms: u64,
        /// How long to wait for each cache put's reply, ms.
        #[arg(long, default_value_t = 5000)]
        request_timeout_ms: u64,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// Subject instead of the default one (for video: of the frame references).
    #[arg(long)]
    subject: Option<String>,
    /// Messages (frames) per second; 0 = as fast as possible.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Stop after this many messages (frames).
    #[arg(long)]
    limit: Option<u64>,
    /// Replay the data again and again (until --limit or Ctrl-C), with its clock shifted each pass.
    #[arg(long = "loop")]
    looped: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Start an OpenTelemetry trace per message (W3C `traceparent` header); a wasmCloud host
    /// with an OTLP endpoint continues it through the actor and the providers it calls.
    #[arg(long)]
    trace: bool,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn sensor_config(preset: Option<&str>, config: Option<&Path>) -> Result<Option<LocalizerConfig>> {
    match (preset, config) {
        (Some(name), _) => Ok(Some(edgecell_fusion::preset(name).with_context(|| format!("preset {name}"))?)),
        (None, Some(path)) => {
            let text = String::from_utf8(read(path)?).context("config is not UTF-8")?;
            Ok(Some(LocalizerConfig::from_toml(&text).with_context(|| format!("config {}", path.display()))?))
        }
        (None, None) => Ok(None),
    }
}

fn source(cmd: ProduceCmd) -> Result<(Source, CommonArgs, Duration)> {
    let default_timeout = Duration::from_secs(5);
    Ok(match cmd {
        ProduceCmd::Sensors { file, filter, preset, config, common } => {
            let config = sensor_config(preset.as_deref(), config.as_deref())?;
            (Source::Sensors { bag: read(&file)?, config, filter }, common, default_timeout)
        }
        ProduceCmd::V2x { file, simulate, seed, duration, region, common } => {
            let source = match (file, simulate) {
                (_, Some(attack)) => {
                    let attack = AttackType::parse(&attack).with_context(|| format!("attack {attack}"))?;
                    Source::V2xSimulated { attack, seed, duration_s: duration, region }
                }
                (Some(file), None) => Source::V2xTrace { trace: read(&file)?, region },
                (None, None) => return Err(anyhow!("give a trace FILE or --simulate ATTACK")),
            };
            (source, common, default_timeout)
        }
        ProduceCmd::Video { file, stream, keyspace, ttl_ms, request_timeout_ms, common } => {
            let ttl_ms = (ttl_ms > 0).then_some(ttl_ms);
            (Source::Video { avi: read(&file)?, stream, keyspace, ttl_ms }, common, Duration::from_millis(request_timeout_ms))
        }
    })
}

fn progress_bar(total: Option<u64>, prefix: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(t) => (ProgressBar::new(t), "{prefix} [{bar:40}] {pos}/{len} {per_sec} {msg} eta {eta}"),
        None => (ProgressBar::new_spinner(), "{prefix} {spinner} {pos} {per_sec} {msg}"),
    };
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_prefix(prefix.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

pub fn run(cmd: ProduceCmd) -> Result<()> {
    let (source, common, request_timeout) = source(cmd)?;
    let plan = Plan::new(source, common.subject.as_deref()).context("preparing the messages")?;
    // refuse a bad rate before connecting
    Schedule::new(std::time::Instant::now(), common.rate).context("--rate")?;
    let stop = StopSignal::new();
    let opts = ProduceOptions {
        subject: None,
        rate: common.rate,
        limit: common.limit,
        looped: common.looped,
        request_timeout,
        stop: Some(stop.clone()),
        trace: common.trace,
    };
    let total = plan.total(opts.limit, opts.looped);
    let unit = plan.kind().unit();
    eprintln!(
        "{}: {} {unit} per pass → {} on {} at {}",
        plan.label(),
        plan.len(),
        plan.subject(),
        common.nats,
        if opts.rate > 0.0 { format!("{} {unit}/s", opts.rate) } else { "full speed".to_owned() }
    );
    // one worker: the NATS connection and the Ctrl-C watcher run there while the producer runs here
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("edgecell-produce")
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async {
        // (request_timeout: each cache put carries `--request-timeout-ms`; the client's default
        // would cut it at 10 s)
        let connect = async_nats::ConnectOptions::new().name("edgecell-produce").request_timeout(None).connect(&common.nats);
        let client = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| anyhow!("connecting to {}: timed out after 5 s", common.nats))?
            .with_context(|| format!("connecting to {}", common.nats))?;
        let watcher = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                watcher.stop();
                // a publish blocked on an unreachable server never sees the stop: a second
                // Ctrl-C ends the process
                eprintln!("stopping (Ctrl-C again to exit at once)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let bar = progress_bar(total, plan.subject(), common.quiet);
        let outcome = produce_plan(&client, &plan, &opts, Some(&bar)).await;
        bar.finish_and_clear();
        let stats = outcome.with_context(|| format!("producing {}", plan.label()))?;
        println!("{stats}");
        Ok(())
    })
}
