//! Multi-target tracking of 2D point detections (radar / LiDAR clusters / camera ground points):
//! constant-velocity and constant-turn EKF models, Mahalanobis gating, global-nearest-neighbour
//! association with the Hungarian algorithm, M-of-N track management with stable IDs, a seeded
//! scenario generator with ground truth, and MOTA / IDF1 metrics.

use nalgebra::{Matrix2, SMatrix, SVector, Vector2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::assignment::hungarian;
use crate::error::{FusionError, Result, ensure_finite};

type V5 = SVector<f64, 5>;
type M5 = SMatrix<f64, 5, 5>;

/// Motion model of the tracks. State: x, y, vx, vy, ω (turn rate, rad/s).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum MotionModel {
    /// constant velocity; `accel_noise` = white-acceleration spectral density (m²/s³)
    ConstantVelocity {
        /// acceleration noise
        accel_noise: f64,
    },
    /// coordinated turn with unknown constant rate
    ConstantTurn {
        /// acceleration noise
        accel_noise: f64,
        /// turn-rate noise (rad²/s³)
        turn_noise: f64,
    },
}

impl MotionModel {
    fn accel_noise(self) -> f64 {
        match self {
            Self::ConstantVelocity { accel_noise } | Self::ConstantTurn { accel_noise, .. } => accel_noise,
        }
    }

    /// Propagated state and Jacobian.
    fn predict(self, x: &V5, dt: f64) -> (V5, M5) {
        let mut f = M5::identity();
        let mut out = *x;
        match self {
            Self::ConstantVelocity { .. } => {
                f[(0, 2)] = dt;
                f[(1, 3)] = dt;
                out = f * x;
                out[4] = 0.0;
                f[(4, 4)] = 0.0;
            }
            Self::ConstantTurn { .. } => {
                let (vx, vy, w) = (x[2], x[3], x[4]);
                let (s, c) = (w * dt).sin_cos();
                if w.abs() < 1e-6 {
                    out[0] = x[0] + vx * dt - 0.5 * vy * w * dt * dt;
                    out[1] = x[1] + vy * dt + 0.5 * vx * w * dt * dt;
                    out[2] = vx - vy * w * dt;
                    out[3] = vy + vx * w * dt;
                    f[(0, 2)] = dt;
                    f[(1, 3)] = dt;
                    f[(0, 4)] = -0.5 * vy * dt * dt;
                    f[(1, 4)] = 0.5 * vx * dt * dt;
                    f[(2, 3)] = -w * dt;
                    f[(3, 2)] = w * dt;
                    f[(2, 4)] = -vy * dt;
                    f[(3, 4)] = vx * dt;
                } else {
                    let a = s / w;
                    let b = (1.0 - c) / w;
                    out[0] = x[0] + a * vx - b * vy;
                    out[1] = x[1] + b * vx + a * vy;
                    out[2] = c * vx - s * vy;
                    out[3] = s * vx + c * vy;
                    let da = (dt * c * w - s) / (w * w);
                    let db = (dt * s * w - (1.0 - c)) / (w * w);
                    f[(0, 2)] = a;
                    f[(0, 3)] = -b;
                    f[(1, 2)] = b;
                    f[(1, 3)] = a;
                    f[(2, 2)] = c;
                    f[(2, 3)] = -s;
                    f[(3, 2)] = s;
                    f[(3, 3)] = c;
                    f[(0, 4)] = da * vx - db * vy;
                    f[(1, 4)] = db * vx + da * vy;
                    f[(2, 4)] = -dt * s * vx - dt * c * vy;
                    f[(3, 4)] = dt * c * vx - dt * s * vy;
                }
            }
        }
        (out, f)
    }

    fn process_noise(self, dt: f64) -> M5 {
        let q = self.accel_noise();
        let mut m = M5::zeros();
        let (d2, d3) = (dt * dt, dt * dt * dt);
        for k in 0..2 {
            m[(k, k)] = q * d3 / 3.0;
            m[(k, k + 2)] = q * d2 / 2.0;
            m[(k + 2, k)] = q * d2 / 2.0;
            m[(k + 2, k + 2)] = q * dt;
        }
        m[(4, 4)] = match self {
            Self::ConstantVelocity { .. } => 1e-12,
            Self::ConstantTurn { turn_noise, .. } => turn_noise * dt,
        };
        m
    }
}

/// Tracker settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackerConfig {
    /// motion model
    pub model: MotionModel,
    /// detection position noise σ (m)
    pub measurement_sigma: f64,
    /// gate on the squared Mahalanobis distance (2 dof; 9.21 ≈ 99 %)
    pub gate: f64,
    /// a tentative track is confirmed after `confirm_m` hits in its last `confirm_n` scans
    pub confirm_m: u32,
    /// window for confirmation (≤ 32)
    pub confirm_n: u32,
    /// a confirmed track is deleted after this many consecutive misses
    pub max_misses: u32,
    /// initial velocity σ of a new track (m/s)
    pub initial_velocity_sigma: f64,
    /// detections accepted in one scan; a larger scan is refused ([`FusionError::Capacity`]):
    /// association costs grow with tracks × detections
    #[serde(default = "default_max_detections")]
    pub max_detections: usize,
    /// live tracks (tentative and confirmed); detections that would start more are counted in
    /// [`Tracker::births_refused`] instead
    #[serde(default = "default_max_tracks")]
    pub max_tracks: usize,
}

fn default_max_detections() -> usize {
    1000
}

fn default_max_tracks() -> usize {
    1000
}

/// Largest accepted |detection coordinate| (m): far beyond any local frame (an ECEF one
/// included), and small enough that squared innovations stay finite.
pub const MAX_POSITION_M: f64 = 1e9;

/// Largest accepted |scan time| (s, about 31,700 years): keeps predictions over a time step finite.
pub const MAX_SCAN_TIME_S: f64 = 1e12;

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            model: MotionModel::ConstantVelocity { accel_noise: 1.0 },
            measurement_sigma: 0.5,
            gate: 9.21,
            confirm_m: 3,
            confirm_n: 5,
            max_misses: 4,
            initial_velocity_sigma: 10.0,
            max_detections: default_max_detections(),
            max_tracks: default_max_tracks(),
        }
    }
}

/// Track life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackStatus {
    /// not yet confirmed
    Tentative,
    /// confirmed (reported)
    Confirmed,
    /// deleted (reported once, then dropped)
    Deleted,
}

/// A track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// stable id (never reused)
    pub id: u64,
    /// status
    pub status: TrackStatus,
    state: [f64; 5],
    covariance: [f64; 25],
    hits: u32,
    scans: u32,
    misses: u32,
    /// total updates with a detection
    pub total_hits: u64,
}

impl Track {
    fn x(&self) -> V5 {
        V5::from_column_slice(&self.state)
    }
    fn p(&self) -> M5 {
        M5::from_column_slice(&self.covariance)
    }
    fn set(&mut self, x: &V5, p: &M5) {
        self.state.copy_from_slice(x.as_slice());
        let sym = (p + p.transpose()) * 0.5;
        self.covariance.copy_from_slice(sym.as_slice());
    }
    /// Position (m).
    #[must_use]
    pub fn position(&self) -> [f64; 2] {
        [self.state[0], self.state[1]]
    }
    /// Velocity (m/s).
    #[must_use]
    pub fn velocity(&self) -> [f64; 2] {
        [self.state[2], self.state[3]]
    }
    /// Turn rate (rad/s).
    #[must_use]
    pub fn turn_rate(&self) -> f64 {
        self.state[4]
    }
}

impl crate::persist::Persisted for Tracker {
    fn from_stored(bytes: &[u8], max_bytes: usize) -> Result<Self> {
        let t: Self = crate::persist::from_json_limited(bytes, max_bytes, "tracker state")?;
        Self::new(t.cfg).map_err(|e| FusionError::CorruptState(format!("tracker state: {e}")))?;
        Ok(t)
    }

    fn to_stored(&self, max_bytes: usize) -> Result<Vec<u8>> {
        crate::persist::to_json_limited(self, max_bytes, "tracker state")
    }
}

/// The tracker. Serialisable so an actor can persist it between invocations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    time: Option<f64>,
    #[serde(default)]
    births_refused: u64,
}

impl Tracker {
    /// New tracker.
    ///
    /// # Errors
    /// Invalid settings.
    pub fn new(cfg: TrackerConfig) -> Result<Self> {
        let (a, t) = match cfg.model {
            MotionModel::ConstantVelocity { accel_noise } => (accel_noise, 0.0),
            MotionModel::ConstantTurn { accel_noise, turn_noise } => (accel_noise, turn_noise),
        };
        ensure_finite([a, t, cfg.measurement_sigma, cfg.gate, cfg.initial_velocity_sigma].iter(), "tracker config")?;
        if cfg.measurement_sigma <= 0.0 || cfg.gate <= 0.0 || a < 0.0 || t < 0.0 {
            return Err(FusionError::Config("tracker: sigma and gate must be > 0, noises ≥ 0".into()));
        }
        if cfg.confirm_n == 0 || cfg.confirm_n > 32 || cfg.confirm_m == 0 || cfg.confirm_m > cfg.confirm_n {
            return Err(FusionError::Config("tracker: need 1 ≤ M ≤ N ≤ 32".into()));
        }
        if cfg.max_misses == 0 || cfg.max_detections == 0 || cfg.max_tracks == 0 {
            return Err(FusionError::Config("tracker: max_misses, max_detections and max_tracks must be ≥ 1".into()));
        }
        Ok(Self { cfg, tracks: Vec::new(), next_id: 1, time: None, births_refused: 0 })
    }

    /// Settings.
    #[must_use]
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// The id the next new track gets.
    #[must_use]
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Makes new tracks take ids from `first` on, if that is past [`Self::next_id`] (for a
    /// tracker that replaces an expired one: ids are never reused).
    pub fn skip_ids_to(&mut self, first: u64) {
        self.next_id = self.next_id.max(first);
    }

    /// Detections that did not start a track because `max_tracks` were live.
    #[must_use]
    pub fn births_refused(&self) -> u64 {
        self.births_refused
    }

    /// Live tracks (tentative and confirmed).
    #[must_use]
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Confirmed tracks.
    pub fn confirmed(&self) -> impl Iterator<Item = &Track> {
        self.tracks.iter().filter(|t| t.status == TrackStatus::Confirmed)
    }

    /// Processes one scan of detections (x, y) at `time`. Returns the tracks deleted in this scan.
    ///
    /// # Errors
    /// Non-finite input, a time beyond ±[`MAX_SCAN_TIME_S`] or earlier than the previous scan,
    /// more than `max_detections` detections (the tracker is unchanged).
    pub fn step(&mut self, time: f64, detections: &[[f64; 2]]) -> Result<Vec<Track>> {
        ensure_finite([time].iter(), "scan time")?;
        ensure_finite(detections.iter().flatten(), "detection")?;
        if time.abs() > MAX_SCAN_TIME_S {
            return Err(FusionError::OutOfRange { what: "scan time", value: time, limit: MAX_SCAN_TIME_S });
        }
        if let Some(v) = detections.iter().flatten().find(|v| v.abs() > MAX_POSITION_M) {
            return Err(FusionError::OutOfRange { what: "detection coordinate", value: *v, limit: MAX_POSITION_M });
        }
        if detections.len() > self.cfg.max_detections {
            return Err(FusionError::Capacity(format!("{} detections in one scan, max_detections is {}", detections.len(), self.cfg.max_detections)));
        }
        let dt = match self.time {
            Some(t) if time < t => return Err(FusionError::OutOfOrder { time, last: t }),
            Some(t) => time - t,
            None => 0.0,
        };
        self.time = Some(time);
        let model = self.cfg.model;
        let r = Matrix2::identity() * self.cfg.measurement_sigma.powi(2);
        // predict
        for t in &mut self.tracks {
            let (x, f) = model.predict(&t.x(), dt);
            let p = f * t.p() * f.transpose() + model.process_noise(dt);
            t.set(&x, &p);
        }
        // cost matrix: squared Mahalanobis distance, gated entries get a prohibitive cost
        let (nt, nd) = (self.tracks.len(), detections.len());
        const BIG: f64 = 1e9;
        let mut cost = vec![BIG; nt * nd];
        let mut sinv = Vec::with_capacity(nt);
        for (i, t) in self.tracks.iter().enumerate() {
            let p = t.p();
            let s = p.fixed_view::<2, 2>(0, 0) + r;
            // a singular innovation covariance cannot gate anything: the track takes no
            // detection this scan (and counts a miss) instead of accepting every one
            let inv = s.try_inverse().filter(|m| m.iter().all(|v| v.is_finite()));
            sinv.push(inv);
            let Some(inv) = inv else { continue };
            for (j, d) in detections.iter().enumerate() {
                let y = Vector2::new(d[0] - t.state[0], d[1] - t.state[1]);
                let d2 = (y.transpose() * inv * y)[(0, 0)];
                if d2.is_finite() && d2 <= self.cfg.gate
                    && let Some(c) = cost.get_mut(i * nd + j)
                {
                    *c = d2;
                }
            }
        }
        let assignment = hungarian(&cost, nt, nd)?;
        let mut used = vec![false; nd];
        let window_mask = if self.cfg.confirm_n >= 32 { u32::MAX } else { (1u32 << self.cfg.confirm_n) - 1 };
        for (i, t) in self.tracks.iter_mut().enumerate() {
            let matched = assignment
                .get(i)
                .copied()
                .flatten()
                .filter(|&j| cost.get(i * nd + j).is_some_and(|c| *c < BIG));
            t.hits = (t.hits << 1) & window_mask;
            t.scans = (t.scans + 1).min(self.cfg.confirm_n);
            if let (Some(j), Some(Some(inv))) = (matched, sinv.get(i)) {
                if let (Some(d), Some(u)) = (detections.get(j), used.get_mut(j)) {
                    *u = true;
                    let x = t.x();
                    let p = t.p();
                    let y = Vector2::new(d[0] - x[0], d[1] - x[1]);
                    let pht = p.fixed_view::<5, 2>(0, 0).into_owned();
                    let k = pht * inv;
                    let mut ikh = M5::identity();
                    ikh.fixed_view_mut::<5, 2>(0, 0).copy_from(&(M5::identity().fixed_view::<5, 2>(0, 0) - k));
                    let p_new = ikh * p * ikh.transpose() + k * r * k.transpose();
                    t.set(&(x + k * y), &p_new);
                    t.hits |= 1;
                    t.misses = 0;
                    t.total_hits += 1;
                }
            } else {
                t.misses += 1;
            }
            let hits = t.hits.count_ones();
            match t.status {
                TrackStatus::Tentative => {
                    if hits >= self.cfg.confirm_m {
                        t.status = TrackStatus::Confirmed;
                    } else if self.cfg.confirm_m - hits > self.cfg.confirm_n - t.scans.min(self.cfg.confirm_n) {
                        // can no longer reach M hits within the window
                        t.status = TrackStatus::Deleted;
                    }
                }
                TrackStatus::Confirmed => {
                    if t.misses >= self.cfg.max_misses {
                        t.status = TrackStatus::Deleted;
                    }
                }
                TrackStatus::Deleted => {}
            }
        }
        let (deleted, mut live): (Vec<Track>, Vec<Track>) =
            std::mem::take(&mut self.tracks).into_iter().partition(|t| t.status == TrackStatus::Deleted);
        // new tentative tracks from unused detections
        let v0 = self.cfg.initial_velocity_sigma.powi(2);
        for (j, d) in detections.iter().enumerate() {
            if used.get(j).copied().unwrap_or(true) {
                continue;
            }
            if live.len() >= self.cfg.max_tracks {
                self.births_refused += 1;
                continue;
            }
            let x = V5::new(d[0], d[1], 0.0, 0.0, 0.0);
            let mut p = M5::zeros();
            p[(0, 0)] = r[(0, 0)];
            p[(1, 1)] = r[(1, 1)];
            p[(2, 2)] = v0;
            p[(3, 3)] = v0;
            p[(4, 4)] = match model {
                MotionModel::ConstantVelocity { .. } => 1e-12,
                MotionModel::ConstantTurn { .. } => 0.1,
            };
            let mut t = Track {
                id: self.next_id,
                status: TrackStatus::Tentative,
                state: [0.0; 5],
                covariance: [0.0; 25],
                hits: 1,
                scans: 1,
                misses: 0,
                total_hits: 1,
            };
            t.set(&x, &p);
            if self.cfg.confirm_m <= 1 {
                t.status = TrackStatus::Confirmed;
            }
            self.next_id += 1;
            live.push(t);
        }
        self.tracks = live;
        Ok(deleted)
    }
}

/// One detection of a scenario (truth id `None` = clutter).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// position
    pub position: [f64; 2],
    /// generating target
    pub truth: Option<u32>,
}

/// A scan of a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// time (s)
    pub time: f64,
    /// true target positions (id, position)
    pub truth: Vec<(u32, [f64; 2])>,
    /// detections (shuffled)
    pub detections: Vec<Detection>,
}

/// Scenario parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScenarioConfig {
    /// RNG seed
    pub seed: u64,
    /// targets
    pub targets: u32,
    /// scans
    pub frames: u32,
    /// scan period (s)
    pub dt: f64,
    /// square area side (m), centred on the origin
    pub area: f64,
    /// speed range (m/s)
    pub max_speed: f64,
    /// fraction of targets that turn (constant turn rate up to `max_turn_rate`)
    pub turning_fraction: f64,
    /// rad/s
    pub max_turn_rate: f64,
    /// detection probability
    pub pd: f64,
    /// mean clutter detections per scan
    pub clutter: f64,
    /// position noise σ (m)
    pub noise_sigma: f64,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            targets: 10,
            frames: 100,
            dt: 0.1,
            area: 200.0,
            max_speed: 15.0,
            turning_fraction: 0.3,
            max_turn_rate: 0.3,
            pd: 0.95,
            clutter: 2.0,
            noise_sigma: 0.5,
        }
    }
}

fn gaussian(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u32 {
    let l = (-lambda).exp();
    let mut k = 0u32;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l || k > 10_000 {
            return k;
        }
        k += 1;
    }
}

/// Generates a seeded scenario with ground truth.
///
/// # Errors
/// Non-finite or out-of-range parameters.
pub fn generate_scenario(cfg: &ScenarioConfig) -> Result<Vec<Frame>> {
    ensure_finite(
        [cfg.dt, cfg.area, cfg.max_speed, cfg.turning_fraction, cfg.max_turn_rate, cfg.pd, cfg.clutter, cfg.noise_sigma].iter(),
        "scenario config",
    )?;
    if cfg.dt <= 0.0 || cfg.area <= 0.0 || cfg.max_speed < 0.0 || cfg.max_turn_rate < 0.0 || cfg.clutter < 0.0 || cfg.noise_sigma < 0.0 || cfg.clutter > 1000.0 {
        return Err(FusionError::Config("scenario: dt, area > 0; speeds, rates, clutter (≤ 1000), noise ≥ 0".into()));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let half = cfg.area / 2.0;
    let mut targets: Vec<(u32, [f64; 4], f64)> = (0..cfg.targets)
        .map(|id| {
            let pos = [rng.random_range(-half * 0.8..half * 0.8), rng.random_range(-half * 0.8..half * 0.8)];
            let speed = rng.random_range(cfg.max_speed * 0.2..=cfg.max_speed);
            let heading = rng.random_range(0.0..std::f64::consts::TAU);
            let turn = if rng.random::<f64>() < cfg.turning_fraction {
                rng.random_range(-cfg.max_turn_rate..=cfg.max_turn_rate)
            } else {
                0.0
            };
            (id, [pos[0], pos[1], speed * heading.cos(), speed * heading.sin()], turn)
        })
        .collect();
    let mut frames = Vec::with_capacity(cfg.frames as usize);
    for k in 0..cfg.frames {
        let time = f64::from(k) * cfg.dt;
        if k > 0 {
            for (_, s, w) in &mut targets {
                let (sn, cs) = (*w * cfg.dt).sin_cos();
                let (vx, vy) = (s[2], s[3]);
                if w.abs() < 1e-9 {
                    s[0] += vx * cfg.dt;
                    s[1] += vy * cfg.dt;
                } else {
                    s[0] += (sn * vx - (1.0 - cs) * vy) / *w;
                    s[1] += ((1.0 - cs) * vx + sn * vy) / *w;
                    s[2] = cs * vx - sn * vy;
                    s[3] = sn * vx + cs * vy;
                }
            }
        }
        let truth: Vec<(u32, [f64; 2])> = targets.iter().map(|(id, s, _)| (*id, [s[0], s[1]])).collect();
        let mut detections = Vec::new();
        for (id, p) in &truth {
            if rng.random::<f64>() < cfg.pd {
                let n = [gaussian(&mut rng) * cfg.noise_sigma, gaussian(&mut rng) * cfg.noise_sigma];
                detections.push(Detection { position: [p[0] + n[0], p[1] + n[1]], truth: Some(*id) });
            }
        }
        for _ in 0..poisson(&mut rng, cfg.clutter) {
            detections.push(Detection {
                position: [rng.random_range(-half..half), rng.random_range(-half..half)],
                truth: None,
            });
        }
        // shuffle so order carries no information
        for i in (1..detections.len()).rev() {
            let j = rng.random_range(0..=i);
            detections.swap(i, j);
        }
        frames.push(Frame { time, truth, detections });
    }
    Ok(frames)
}

/// CLEAR-MOT and identity metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackingMetrics {
    /// 1 − (FN + FP + IDSW) / GT
    pub mota: f64,
    /// mean distance of matched pairs (m)
    pub motp: f64,
    /// identity F1
    pub idf1: f64,
    /// misses
    pub false_negatives: u64,
    /// false tracks
    pub false_positives: u64,
    /// identity switches
    pub id_switches: u64,
    /// ground-truth objects summed over frames
    pub ground_truth: u64,
}

/// Computes MOTA/MOTP/IDF1 from per-frame truth and reported tracks `(id, position)`, matching
/// within `max_distance` metres.
///
/// # Errors
/// Non-finite positions.
pub fn evaluate(truth: &[Vec<(u32, [f64; 2])>], reported: &[Vec<(u64, [f64; 2])>], max_distance: f64) -> Result<TrackingMetrics> {
    let mut fn_ = 0u64;
    let mut fp = 0u64;
    let mut idsw = 0u64;
    let mut gt = 0u64;
    let mut dist_sum = 0.0;
    let mut matches = 0u64;
    let mut last_match: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    // co-occurrence counts for IDF1: (truth id, track id) → frames within distance
    let mut co: std::collections::HashMap<(u32, u64), u64> = std::collections::HashMap::new();
    let mut total_reported = 0u64;
    let big = 1e9;
    for (t, r) in truth.iter().zip(reported.iter().chain(std::iter::repeat(&Vec::new()))) {
        gt += t.len() as u64;
        total_reported += r.len() as u64;
        let mut cost = vec![big; t.len() * r.len()];
        for (i, (tid, tp)) in t.iter().enumerate() {
            for (j, (rid, rp)) in r.iter().enumerate() {
                let d = ((tp[0] - rp[0]).powi(2) + (tp[1] - rp[1]).powi(2)).sqrt();
                ensure_finite([d].iter(), "track position")?;
                if d <= max_distance {
                    if let Some(c) = cost.get_mut(i * r.len() + j) {
                        *c = d;
                    }
                    *co.entry((*tid, *rid)).or_insert(0) += 1;
                }
            }
        }
        let a = hungarian(&cost, t.len(), r.len())?;
        let mut matched_r = vec![false; r.len()];
        for (i, (tid, _)) in t.iter().enumerate() {
            let m = a.get(i).copied().flatten().filter(|&j| cost.get(i * r.len() + j).is_some_and(|c| *c < big));
            match m.and_then(|j| r.get(j).map(|x| (j, x))) {
                Some((j, (rid, _))) => {
                    if let Some(f) = matched_r.get_mut(j) {
                        *f = true;
                    }
                    matches += 1;
                    dist_sum += cost.get(i * r.len() + j).copied().unwrap_or(0.0);
                    if let Some(prev) = last_match.insert(*tid, *rid)
                        && prev != *rid
                    {
                        idsw += 1;
                    }
                }
                None => fn_ += 1,
            }
        }
        fp += matched_r.iter().filter(|m| !**m).count() as u64;
    }
    // IDF1: best one-to-one truth↔track identity assignment maximising co-occurrence
    let mut tids: Vec<u32> = co.keys().map(|k| k.0).collect();
    tids.sort_unstable();
    tids.dedup();
    let mut rids: Vec<u64> = co.keys().map(|k| k.1).collect();
    rids.sort_unstable();
    rids.dedup();
    let mut cost = vec![0.0; tids.len() * rids.len()];
    for ((t, r), n) in &co {
        if let (Ok(i), Ok(j)) = (tids.binary_search(t), rids.binary_search(r))
            && let Some(c) = cost.get_mut(i * rids.len() + j)
        {
            #[allow(clippy::cast_precision_loss)]
            let v = -(*n as f64);
            *c = v;
        }
    }
    let a = hungarian(&cost, tids.len(), rids.len())?;
    let idtp: f64 = a.iter().enumerate().filter_map(|(i, j)| j.and_then(|j| cost.get(i * rids.len() + j)).map(|c| -c)).sum();
    #[allow(clippy::cast_precision_loss)]
    let (gtf, repf) = (gt as f64, total_reported as f64);
    #[allow(clippy::cast_precision_loss)]
    Ok(TrackingMetrics {
        mota: if gt == 0 { 1.0 } else { 1.0 - (fn_ + fp + idsw) as f64 / gtf },
        motp: if matches == 0 { 0.0 } else { dist_sum / matches as f64 },
        idf1: if gtf + repf == 0.0 { 1.0 } else { 2.0 * idtp / (gtf + repf) },
        false_negatives: fn_,
        false_positives: fp,
        id_switches: idsw,
        ground_truth: gt,
    })
}

/// Runs a tracker over a scenario and scores its confirmed tracks.
///
/// # Errors
/// As [`Tracker::step`] and [`evaluate`].
pub fn run_scenario(frames: &[Frame], cfg: TrackerConfig, max_distance: f64) -> Result<TrackingMetrics> {
    let mut tracker = Tracker::new(cfg)?;
    let mut reported = Vec::with_capacity(frames.len());
    for f in frames {
        let dets: Vec<[f64; 2]> = f.detections.iter().map(|d| d.position).collect();
        tracker.step(f.time, &dets)?;
        reported.push(tracker.confirmed().map(|t| (t.id, t.position())).collect::<Vec<_>>());
    }
    let truth: Vec<_> = frames.iter().map(|f| f.truth.clone()).collect();
    evaluate(&truth, &reported, max_distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_target_confirms_and_tracks_velocity() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        for k in 0..30 {
            let time = f64::from(k) * 0.1;
            t.step(time, &[[1.0 + 2.0 * time, -3.0 * time]]).unwrap();
            if k == 1 {
                assert_eq!(t.tracks()[0].status, TrackStatus::Tentative);
            }
            if k == 2 {
                assert_eq!(t.tracks()[0].status, TrackStatus::Confirmed);
            }
        }
        assert_eq!(t.tracks().len(), 1);
        let tr = &t.tracks()[0];
        assert_eq!(tr.id, 1);
        assert!((tr.velocity()[0] - 2.0).abs() < 0.05 && (tr.velocity()[1] + 3.0).abs() < 0.05, "{:?}", tr.velocity());
        // four misses delete it
        let mut deleted = Vec::new();
        for k in 30..34 {
            deleted.extend(t.step(f64::from(k) * 0.1, &[]).unwrap());
        }
        assert_eq!(deleted.len(), 1);
        assert_eq!(deleted[0].id, 1);
        assert!(t.tracks().is_empty());
    }

    #[test]
    fn constant_turn_model_estimates_turn_rate() {
        let cfg = TrackerConfig { model: MotionModel::ConstantTurn { accel_noise: 0.1, turn_noise: 0.01 }, measurement_sigma: 0.05, ..TrackerConfig::default() };
        let mut t = Tracker::new(cfg).unwrap();
        let (r, w) = (20.0, 0.25);
        for k in 0..200 {
            let time = f64::from(k) * 0.1;
            t.step(time, &[[r * (w * time).cos(), r * (w * time).sin()]]).unwrap();
        }
        let tr = &t.tracks()[0];
        assert!((tr.turn_rate() - w).abs() < 0.01, "{}", tr.turn_rate());
    }

    #[test]
    fn clutter_only_never_confirms_and_bad_input_errors() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        for k in 0..20 {
            let x = f64::from(k) * 37.0;
            t.step(f64::from(k), &[[x, -x]]).unwrap();
            assert_eq!(t.confirmed().count(), 0);
        }
        assert!(matches!(t.step(5.0, &[]), Err(FusionError::OutOfOrder { .. })));
        assert!(matches!(t.step(30.0, &[[f64::NAN, 0.0]]), Err(FusionError::NonFinite(_))));
        assert!(Tracker::new(TrackerConfig { confirm_m: 6, ..TrackerConfig::default() }).is_err());
    }

    /// Limits: a scan larger than `max_detections` is refused with the tracker unchanged; past
    /// `max_tracks` live tracks detections start none (counted); settings that would delete
    /// every track at once or never take a detection are refused.
    #[test]
    fn limits_are_typed_errors_or_counted() {
        let cfg = TrackerConfig { max_detections: 3, max_tracks: 2, ..TrackerConfig::default() };
        let mut t = Tracker::new(cfg).unwrap();
        let before = t.clone();
        assert!(matches!(t.step(0.0, &[[0.0, 0.0]; 4]), Err(FusionError::Capacity(_))));
        assert_eq!(t, before);
        t.step(0.0, &[[0.0, 0.0], [50.0, 0.0], [100.0, 0.0]]).unwrap();
        assert_eq!((t.tracks().len(), t.births_refused()), (2, 1));
        assert!(matches!(t.step(1.0, &[[1e10, 0.0]]), Err(FusionError::OutOfRange { .. })));
        assert!(matches!(t.step(1e300, &[]), Err(FusionError::OutOfRange { .. })));
        for bad in [
            TrackerConfig { max_misses: 0, ..TrackerConfig::default() },
            TrackerConfig { max_detections: 0, ..TrackerConfig::default() },
            TrackerConfig { max_tracks: 0, ..TrackerConfig::default() },
        ] {
            assert!(Tracker::new(bad).is_err(), "{bad:?}");
        }
    }

    /// A tracker told to skip ids never issues one below that point, and never moves back.
    #[test]
    fn ids_continue_past_a_skipped_range() {
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        t.skip_ids_to(5000);
        t.skip_ids_to(10);
        t.step(0.0, &[[0.0, 0.0], [40.0, 0.0]]).unwrap();
        let ids: Vec<u64> = t.tracks().iter().map(|x| x.id).collect();
        assert_eq!(ids, vec![5000, 5001]);
        assert_eq!(t.next_id(), 5002);
    }

    /// Stored state of the previous format (no limits, no refused births) still loads.
    #[test]
    fn stored_tracker_of_the_previous_format_loads() {
        use crate::persist::Persisted;
        let mut t = Tracker::new(TrackerConfig::default()).unwrap();
        t.step(0.0, &[[1.0, 2.0]]).unwrap();
        let mut v = serde_json::to_value(&t).unwrap();
        v.as_object_mut().unwrap().remove("births_refused");
        let c = v["cfg"].as_object_mut().unwrap();
        c.remove("max_detections");
        c.remove("max_tracks");
        let back = Tracker::from_stored(&serde_json::to_vec(&v).unwrap(), 1 << 20).unwrap();
        assert_eq!(back, t);
        assert!(matches!(Tracker::from_stored(b"[]", 1 << 20), Err(FusionError::CorruptState(_))));
    }

    #[test]
    fn scenario_is_deterministic() {
        let a = generate_scenario(&ScenarioConfig::default()).unwrap();
        let b = generate_scenario(&ScenarioConfig::default()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 100);
        assert_eq!(a[0].truth.len(), 10);
        assert!(generate_scenario(&ScenarioConfig { area: 0.0, ..ScenarioConfig::default() }).is_err());
        assert!(generate_scenario(&ScenarioConfig { max_turn_rate: -1.0, ..ScenarioConfig::default() }).is_err());
    }

    #[test]
    fn gnn_tracker_scores_well_on_synthetic_scenario() {
        let frames = generate_scenario(&ScenarioConfig::default()).unwrap();
        let cv = run_scenario(&frames, TrackerConfig::default(), 2.0).unwrap();
        eprintln!("CV: {cv:?}");
        assert!(cv.mota > 0.85, "{cv:?}");
        assert!(cv.idf1 > 0.85, "{cv:?}");
        assert!(cv.id_switches < 15, "{cv:?}");
        let ct = run_scenario(
            &frames,
            TrackerConfig { model: MotionModel::ConstantTurn { accel_noise: 1.0, turn_noise: 0.05 }, ..TrackerConfig::default() },
            2.0,
        )
        .unwrap();
        eprintln!("CT: {ct:?}");
        assert!(ct.mota > 0.85 && ct.idf1 > 0.85, "{ct:?}");
    }

    #[test]
    fn metrics_on_hand_made_case() {
        // two truths; truth 0 is followed by track 7, then by track 8 (an identity switch);
        // truth 1 is never tracked; track 9 is a false track in the last frame
        let truth = vec![vec![(0, [0.0, 0.0]), (1, [10.0, 0.0])]; 4];
        let rep = vec![vec![(7, [0.1, 0.0])], vec![(7, [0.1, 0.0])], vec![(8, [0.0, 0.1])], vec![(8, [0.0, 0.1]), (9, [50.0, 50.0])]];
        let m = evaluate(&truth, &rep, 1.0).unwrap();
        assert_eq!(m.ground_truth, 8);
        assert_eq!(m.false_negatives, 4);
        assert_eq!(m.false_positives, 1);
        assert_eq!(m.id_switches, 1);
        assert!((m.mota - (1.0 - 6.0 / 8.0)).abs() < 1e-12);
        // IDTP = 2 (truth 0 ↔ one of its two tracks for 2 frames); IDF1 = 4 / (8 + 5)
        assert!((m.idf1 - 4.0 / 13.0).abs() < 1e-12, "{}", m.idf1);
    }
}
