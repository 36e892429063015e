//! `edgecell v2x …`: validation, certificate checks, attack simulation and evaluation, and the
//! V2X stages of the main job.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use edgecell_v2x::decode::{Framing, VeremiRecord, decode_its};
use edgecell_v2x::map::{MapFrame, RoadMap};
use edgecell_v2x::observation::{its_ms_to_unix_ns, reconstruct_generation_ms, unix_ns_to_its_ms};
use edgecell_v2x::sim::{self, AttackType, Counts, SimConfig};
use edgecell_v2x::{MessageFormat, ReceiveContext, Validation, Validator};

use crate::run::Stage;

/// Input forms of `v2x validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One message per line as hex (blank lines and `#` comments ignored).
    UperHex,
    /// The whole file is one binary message.
    Uper,
    /// A VeReMi trace: one JSON object per line (type 2 own GPS, type 3 received beacon).
    JsonLines,
}

#[derive(Debug, clap::Subcommand)]
pub enum V2xCmd {
    /// Verify an IEEE 1609.2 / TS 103 097 certificate (OER); exits non-zero if it does not verify.
    VerifyCert {
        cert: PathBuf,
        /// The issuer's certificate; without it the certificate must be self-signed.
        #[arg(long)]
        issuer: Option<PathBuf>,
    },
    /// Validate messages; prints one JSON object per message (station_id,
    /// generation_delta_time, latitude, longitude, speed_mps, heading_deg, verdict, checks, …).
    ///
    /// Binary messages are ETSI ITS PDUs in UPER; GeoNetworking packets, radiotap frames and
    /// IEEE 1609.2 secured data are recognised by their first bytes. A file carries no receive
    /// time, so each binary message counts as received at its own generation time (anchored at
    /// the current time, in file order) unless --received-at-ms is given. VeReMi lines use their
    /// rcvTime. Type 2 lines (own GPS) update the receiver and print nothing.
    Validate {
        #[arg(long)]
        input: PathBuf,
        /// Default: json-lines for a file starting with `{`, uper-hex for a text of hex digits,
        /// uper otherwise.
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        /// A root certificate (COER) for signed messages. The authorities below it (AA, EA)
        /// go in --config: `[security] ca_certificates_hex = ["…"]`.
        #[arg(long)]
        trust_anchor: Option<PathBuf>,
        /// Road map (GeoJSON line strings): WGS84 for ETSI input, the trace's local frame for
        /// json-lines.
        #[arg(long)]
        map: Option<PathBuf>,
        /// Validator configuration (TOML: thresholds, policy, security).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Receive time of every binary message, Unix milliseconds.
        #[arg(long)]
        received_at_ms: Option<u64>,
    },
    /// Inject an F2MD / VeReMi-NextGen attack into honest tracks; writes a VeReMi trace (JSON
    /// lines labelled with `attackType`) and its road map next to it (`TRACE.map.geojson`).
    ///
    /// --input is `husky` (built in: the 989 GPS fixes of the Clearpath Husky in
    /// robot_localization's test1.bag) or a CSV of GPS fixes with a header and the columns
    /// `t_s,latitude_deg,longitude_deg[,...]`. That track plus 24 synthetic vehicles on three
    /// ring roads (30 % attackers) beacon at 1 Hz to a receiver at the origin. With
    /// `--attack all` the output is a directory with one `<Attack>.jsonl` per attack type.
    Simulate {
        /// Attack type (e.g. ConstPosOffset, RandomPosOffset, Sybil, DoS; case-insensitive) or `all`.
        #[arg(long)]
        attack: String,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// `husky` or a CSV of GPS fixes (t_s,latitude_deg,longitude_deg,...).
        #[arg(long, default_value = "husky")]
        input: String,
        #[arg(long)]
        output: PathBuf,
        /// Simulated time, s (capped by the input track).
        #[arg(long, default_value_t = 300.0)]
        duration: f64,
    },
    /// Validate labelled traces (from `simulate`) and print precision, recall and F1 per attack
    /// type and overall, next to the published CaTCh F1.
    Evaluate {
        /// Trace files, or directories of `*.jsonl` traces (repeatable).
        #[arg(long, required = true)]
        input: Vec<PathBuf>,
        /// Road map (local frame); default: the trace's `TRACE.map.geojson` when present.
        #[arg(long)]
        map: Option<PathBuf>,
        /// Validator configuration (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Beacons received before this time (s) are fed but not scored.
        #[arg(long, default_value_t = 5.0)]
        warmup: f64,
    },
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read(path)?).with_context(|| format!("{} is not UTF-8", path.display()))
}

fn validator(config: Option<&Path>) -> Result<Validator> {
    let toml = match config {
        Some(p) => read_text(p)?,
        None => String::new(),
    };
    Validator::from_toml(&toml).context("validator configuration")
}

fn sniff(bytes: &[u8]) -> InputFormat {
    let text = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    if text == Some(b'{') {
        InputFormat::JsonLines
    } else if !bytes.is_empty() && bytes.iter().all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace()) {
        InputFormat::UperHex
    } else {
        InputFormat::Uper
    }
}

/// The generationDeltaTime of a binary message, without validating it.
fn peek_gdt(format: MessageFormat, bytes: &[u8]) -> Option<u32> {
    let pdu = format.unverified_pdu(bytes)?;
    decode_its(&pdu, Framing::Uper, 0).ok().map(|o| o.generation_delta_time)
}

/// Receive clock for files of binary messages: each message is received at its own generation
/// time, the first anchored at `now`, the next ones moving forward in file order.
struct FileClock {
    fixed_ns: Option<u64>,
    last_its_ms: Option<u64>,
    now_its_ms: u64,
}

impl FileClock {
    fn receive_ns(&mut self, gdt: Option<u32>) -> u64 {
        if let Some(ns) = self.fixed_ns {
            return ns;
        }
        let its = match (gdt, self.last_its_ms) {
            (Some(g), None) => reconstruct_generation_ms(g, self.now_its_ms, 0),
            (Some(g), Some(last)) => last + (u64::from(g) + 65_536 - last % 65_536) % 65_536,
            (None, Some(last)) => last,
            (None, None) => self.now_its_ms,
        };
        self.last_its_ms = Some(its);
        its_ms_to_unix_ns(its)
    }
}

fn print_validation(v: &Validation) -> Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn validate(
    input: &Path,
    format: Option<InputFormat>,
    trust_anchor: Option<&Path>,
    map: Option<&Path>,
    config: Option<&Path>,
    received_at_ms: Option<u64>,
) -> Result<()> {
    let bytes = read(input)?;
    let format = format.unwrap_or_else(|| sniff(&bytes));
    let mut v = validator(config)?;
    if let Some(p) = trust_anchor {
        v.trust_store().add_anchor(&read(p)?).map_err(|e| anyhow::anyhow!("trust anchor {}: {e}", p.display()))?;
    }
    if let Some(p) = map {
        let road = RoadMap::from_geojson(&read_text(p)?).with_context(|| format!("map {}", p.display()))?;
        let frame = if format == InputFormat::JsonLines { MapFrame::Local } else { MapFrame::Wgs84 };
        v.set_map(road, frame);
    }
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut clock =
        FileClock { fixed_ns: received_at_ms.map(|ms| ms.saturating_mul(1_000_000)), last_its_ms: None, now_its_ms: unix_ns_to_its_ms(now_ns) };
    let (mut messages, mut errors) = (0usize, 0usize);
    let mut binary = |payload: &[u8], v: &mut Validator| -> Result<Validation, edgecell_v2x::V2xError> {
        let f = MessageFormat::of_binary(payload);
        let ctx = ReceiveContext { received_at_ns: clock.receive_ns(peek_gdt(f, payload)), receiver: None };
        v.validate(f, payload, &ctx)
    };
    match format {
        InputFormat::Uper => {
            messages += 1;
            match binary(&bytes, &mut v) {
                Ok(val) => print_validation(&val)?,
                Err(e) => {
                    errors += 1;
                    eprintln!("{}: {e}", input.display());
                }
            }
        }
        InputFormat::UperHex => {
            let text = String::from_utf8(bytes).context("uper-hex input is not text")?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                messages += 1;
                let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
                let outcome = hex::decode(&compact).map_err(|e| edgecell_v2x::V2xError::Decode(format!("hex: {e}"))).and_then(|p| binary(&p, &mut v));
                match outcome {
                    Ok(val) => print_validation(&val)?,
                    Err(e) => {
                        errors += 1;
                        eprintln!("{}:{}: {e}", input.display(), n + 1);
                    }
                }
            }
        }
        InputFormat::JsonLines => {
            for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match v.process_veremi_line(line) {
                    Ok(Some(val)) => {
                        messages += 1;
                        print_validation(&val)?;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        messages += 1;
                        errors += 1;
                        eprintln!("{}:{}: {e}", input.display(), n + 1);
                    }
                }
            }
        }
    }
    if errors > 0 {
        bail!("{errors} of {messages} messages could not be validated");
    }
    Ok(())
}

fn base_track(input: &str) -> Result<sim::HonestTrack> {
    let csv = if input == "husky" { sim::HUSKY_FIX_CSV.to_owned() } else { read_text(Path::new(input))? };
    sim::track_from_fix_csv(&csv, 7).with_context(|| format!("GPS fixes from {input}"))
}

fn map_path(trace: &Path) -> PathBuf {
    let mut s = trace.as_os_str().to_owned();
    s.push(".map.geojson");
    PathBuf::from(s)
}

/// Simulates one attack and writes the trace (JSON lines) and its map; returns (records,
/// beacons, malicious beacons).
fn simulate_one(attack: AttackType, seed: u64, duration: f64, base: &sim::HonestTrack, output: &Path) -> Result<(usize, usize, usize)> {
    let cfg = SimConfig { attack, seed, duration_s: duration, ..SimConfig::default() };
    let trace = sim::simulate(&cfg, base).with_context(|| format!("simulating {}", attack.name()))?;
    let mut out = String::new();
    for r in &trace.records {
        out.push_str(&serde_json::to_string(r)?);
        out.push('\n');
    }
    std::fs::write(output, out).with_context(|| format!("writing {}", output.display()))?;
    let map = map_path(output);
    std::fs::write(&map, sim::scenario_map_geojson(&trace.map)).with_context(|| format!("writing {}", map.display()))?;
    let beacons = trace.records.iter().filter(|r| r.kind == 3).count();
    let malicious = trace.records.iter().filter(|r| r.attack_type.is_some()).count();
    Ok((trace.records.len(), beacons, malicious))
}

fn simulate(attack: &str, seed: u64, input: &str, output: &Path, duration: f64) -> Result<()> {
    let base = base_track(input)?;
    if attack.eq_ignore_ascii_case("all") {
        std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
        for a in AttackType::ALL {
            let path = output.join(format!("{}.jsonl", a.name()));
            let (n, b, m) = simulate_one(a, seed, duration, &base, &path)?;
            println!("{}: {n} records, {b} beacons, {m} malicious", path.display());
        }
    } else {
        let a = AttackType::parse(attack)?;
        let (n, b, m) = simulate_one(a, seed, duration, &base, output)?;
        println!("{}: {n} records, {b} beacons, {m} malicious ({}, seed {seed}); map in {}", output.display(), a.name(), map_path(output).display());
    }
    Ok(())
}

fn trace_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("listing {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!("no *.jsonl traces in {}", p.display());
            }
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn parse_trace(path: &Path) -> Result<Vec<VeremiRecord>> {
    read_text(path)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| VeremiRecord::parse(l.as_bytes()).with_context(|| format!("{}:{}", path.display(), n + 1)))
        .collect()
}

fn fmt_f1(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |f| format!("{f:.3}"))
}

fn evaluate(inputs: &[PathBuf], map: Option<&Path>, config: Option<&Path>, warmup: f64) -> Result<()> {
    let mut rows: Vec<(String, Counts)> = Vec::new();
    let mut overall = Counts::default();
    for file in trace_files(inputs)? {
        let records = parse_trace(&file)?;
        let mut v = validator(config)?;
        let map_file = match map {
            Some(m) => Some(m.to_path_buf()),
            None => Some(map_path(&file)).filter(|m| m.exists()),
        };
        if let Some(m) = map_file {
            v.set_map(RoadMap::from_geojson(&read_text(&m)?).with_context(|| format!("map {}", m.display()))?, MapFrame::Local);
        }
        let e = sim::evaluate(&mut v, &records, warmup).with_context(|| format!("evaluating {}", file.display()))?;
        overall.add(&e.overall);
        rows.extend(e.per_type);
    }
    println!("{:<20} {:>9} {:>8} {:>9} {:>7} {:>6} {:>14}", "attack", "malicious", "honest", "precision", "recall", "F1", "CaTCh F1 (pub)");
    for (name, c) in &rows {
        let catch = AttackType::parse(name).ok().and_then(AttackType::catch_f1);
        println!(
            "{:<20} {:>9} {:>8} {:>9.3} {:>7.3} {:>6.3} {:>14}",
            name,
            c.tp + c.fn_,
            c.fp + c.tn,
            c.precision(),
            c.recall(),
            c.f1(),
            fmt_f1(catch)
        );
    }
    println!(
        "{:<20} {:>9} {:>8} {:>9.3} {:>7.3} {:>6.3} {:>14}",
        "overall",
        overall.tp + overall.fn_,
        overall.fp + overall.tn,
        overall.precision(),
        overall.recall(),
        overall.f1(),
        "-"
    );
    Ok(())
}

pub fn run(cmd: V2xCmd) -> Result<()> {
    match cmd {
        V2xCmd::VerifyCert { cert, issuer } => {
            let cert_bytes = read(&cert)?;
            let issuer_bytes = issuer.as_deref().map(read).transpose()?;
            let v = edgecell_v2x::security::verify_certificate(&cert_bytes, issuer_bytes.as_deref())
                .with_context(|| format!("{} does not verify", cert.display()))?;
            println!("{}: signature valid, HashedId8 {}", cert.display(), hex::encode(v.id));
        }
        V2xCmd::Validate { input, format, trust_anchor, map, config, received_at_ms } => {
            validate(&input, format, trust_anchor.as_deref(), map.as_deref(), config.as_deref(), received_at_ms)?;
        }
        V2xCmd::Simulate { attack, seed, input, output, duration } => simulate(&attack, seed, &input, &output, duration)?,
        V2xCmd::Evaluate { input, map, config, warmup } => evaluate(&input, map.as_deref(), config.as_deref(), warmup)?,
    }
    Ok(())
}

/// Seed of the main job's simulated traces.
const STAGE_SEED: u64 = 42;
/// Below this F1 the validator (or the actor's state handling) is broken, not merely weak.
const MIN_STAGE_F1: f64 = 0.5;

/// A main-job stage: the Husky's real GPS motion plus synthetic traffic with one attack, fed
/// as VeReMi JSON lines through the actor's messaging handler; the verdict scores what the
/// actor published against the trace's ground-truth labels.
fn sim_stage(title: &'static str, attack: AttackType) -> Result<Stage> {
    let base = base_track("husky")?;
    let cfg = SimConfig { attack, seed: STAGE_SEED, ..SimConfig::default() };
    let trace = sim::simulate(&cfg, &base).with_context(|| format!("simulating {}", attack.name()))?;
    let warmup = cfg.attack_start_s;
    let mut inputs = Vec::with_capacity(trace.records.len());
    // ground truth of each type 3 record, in the order the actor sees them: (scored, malicious)
    let mut truth = Vec::new();
    for r in &trace.records {
        inputs.push(crate::run::message("edgecell.v2x.in.sim", serde_json::to_vec(r)?));
        if r.kind == 3 {
            truth.push((r.rcv_time >= warmup, r.attack_type.is_some()));
        }
    }
    let catch = attack.catch_f1();
    let name = attack.name();
    Ok(Stage {
        title,
        actor: "v2x-validator",
        component_file: "edgecell_v2x_validator.wasm",
        config: vec![
            ("namespace", format!("sim-{}", name.to_ascii_lowercase())),
            ("map", sim::scenario_map_geojson(&trace.map)),
            ("map-frame", "local".into()),
            ("reporter-id", "1".into()),
        ],
        preload: vec![],
        inputs,
        verdict: Box::new(move |published| {
            let mut verdicts = Vec::new();
            let mut reports = 0usize;
            for p in published {
                if p.subject == "edgecell.v2x.verdict.sim" {
                    let v: serde_json::Value = serde_json::from_slice(&p.body).context("verdict is not JSON")?;
                    let rejected = match v.get("verdict").and_then(serde_json::Value::as_str) {
                        Some("rejected") => true,
                        Some("accepted") => false,
                        other => bail!("verdict field {other:?}"),
                    };
                    verdicts.push(rejected);
                } else if p.subject == "edgecell.v2x.report.sim" {
                    reports += 1;
                }
            }
            if verdicts.is_empty() {
                bail!("the actor published no verdicts");
            }
            let rejected = verdicts.iter().filter(|r| **r).count();
            if reports != rejected {
                bail!("{rejected} rejections but {reports} misbehaviour reports");
            }
            let mut c = Counts::default();
            // verdicts come in input order; with --limit only a prefix of the trace was fed
            for (&(scored, malicious), &flagged) in truth.iter().zip(&verdicts) {
                if !scored {
                    continue;
                }
                match (malicious, flagged) {
                    (true, true) => c.tp += 1,
                    (true, false) => c.fn_ += 1,
                    (false, true) => c.fp += 1,
                    (false, false) => c.tn += 1,
                }
            }
            let f1 = c.f1();
            if c.tp + c.fn_ > 0 && f1 < MIN_STAGE_F1 {
                bail!("{name}: F1 {f1:.3} (precision {:.3}, recall {:.3}) is below {MIN_STAGE_F1}", c.precision(), c.recall());
            }
            Ok(format!(
                "{name}: F1 {f1:.3} (precision {:.3}, recall {:.3}; CaTCh published {}) on {} beacons, {reports} reports",
                c.precision(),
                c.recall(),
                fmt_f1(catch),
                verdicts.len()
            ))
        }),
    })
}

/// The V2X stages of `edgecell run`: simulated traces (seeded) through the v2x-validator actor.
pub fn stages(_data: &Path) -> Result<Vec<Stage>> {
    Ok(vec![
        sim_stage("v2x: ConstPosOffset (sim)", AttackType::ConstPosOffset)?,
        sim_stage("v2x: RandomPosOffset (sim)", AttackType::RandomPosOffset)?,
        sim_stage("v2x: Sybil (sim)", AttackType::Sybil)?,
    ])
}
