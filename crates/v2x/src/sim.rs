//! Seeded F2MD attack simulator and evaluator over VeReMi-style traces.
//!
//! The honest base trace is real motion (the GPS fixes of a Clearpath Husky from
//! robot_localization's `test1.bag`, projected to a local frame and resampled at 1 Hz) plus
//! synthetic vehicles on ring roads; a stationary receiver at the origin logs type 2 (own GPS)
//! and type 3 (received beacon) records. Attackers (a share of the synthetic vehicles) inject
//! one F2MD / VeReMi NextGen attack type with F2MD's parameters; every injected beacon is
//! labelled with `attackType` (ground truth).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::decode::VeremiRecord;
use crate::error::V2xError;
use crate::geo::{LocalFrame, Xy, heading_vector};
use crate::map::{MapFrame, RoadMap};
use crate::validator::{Validator, Verdict};

/// Husky GPS fixes (`t_s,latitude_deg,longitude_deg,altitude_m,status`), extracted from
/// robot_localization's test1.bag (BSD-3) by `tools/bag_fixes.py`.
pub const HUSKY_FIX_CSV: &str = include_str!("../testdata/husky_fix.csv");

/// Attack types (F2MD numbering order, then VeReMi NextGen additions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AttackType {
    /// Constant position.
    ConstPos,
    /// Constant position offset (±70 m).
    ConstPosOffset,
    /// Random position in the playground.
    RandomPos,
    /// Random position offset (±70 m) per beacon.
    RandomPosOffset,
    /// Constant speed.
    ConstSpeed,
    /// Constant speed offset (±7 m/s).
    ConstSpeedOffset,
    /// Random speed.
    RandomSpeed,
    /// Random speed offset (±7 m/s) per beacon.
    RandomSpeedOffset,
    /// Stops reporting motion with probability 0.01 per beacon.
    EventualStop,
    /// Replays random neighbours' beacons.
    Disruptive,
    /// Replays one target's beacons.
    DataReplay,
    /// Sends its beacons late (5 s).
    DelayedMessages,
    /// 4x beacon rate.
    DoS,
    /// 4x beacon rate with random content.
    DoSRandom,
    /// 4x beacon rate replaying neighbours.
    DoSDisruptive,
    /// Ghost vehicles (5) in a platoon behind the attacker.
    GridSybil,
    /// Ghost vehicles (5) at random offsets.
    Sybil,
    /// Reports zero speed while moving.
    ZeroSpeed,
    /// Reports the reversed heading.
    ReversedHeading,
    /// Reports a sudden stop (frozen position, zero speed) from the attack start.
    SuddenStop,
    /// Reports braking at 8 m/s² while moving on.
    FeignedBraking,
    /// Reports acceleration multiplied by 5 (speed integrated from it).
    AccelMultiplication,
    /// Mirrors its position through the receiver.
    PositionMirroring,
    /// Claims a generation time 1.5 s earlier than it was.
    TimeDelay,
}

impl AttackType {
    /// All types.
    pub const ALL: [Self; 24] = [
        Self::ConstPos,
        Self::ConstPosOffset,
        Self::RandomPos,
        Self::RandomPosOffset,
        Self::ConstSpeed,
        Self::ConstSpeedOffset,
        Self::RandomSpeed,
        Self::RandomSpeedOffset,
        Self::EventualStop,
        Self::Disruptive,
        Self::DataReplay,
        Self::DelayedMessages,
        Self::DoS,
        Self::DoSRandom,
        Self::DoSDisruptive,
        Self::GridSybil,
        Self::Sybil,
        Self::ZeroSpeed,
        Self::ReversedHeading,
        Self::SuddenStop,
        Self::FeignedBraking,
        Self::AccelMultiplication,
        Self::PositionMirroring,
        Self::TimeDelay,
    ];

    /// Name (as used on the CLI and in `attackType` labels).
    #[must_use]
    pub fn name(self) -> String {
        format!("{self:?}")
    }

    /// Parses a name (case-insensitive).
    ///
    /// # Errors
    /// [`V2xError::InvalidConfig`] for unknown names.
    pub fn parse(s: &str) -> Result<Self, V2xError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| V2xError::InvalidConfig(format!("unknown attack type {s:?}")))
    }

    /// Published CaTCh F1 (urban, low density), DESIGN.md §4.
    #[must_use]
    pub const fn catch_f1(self) -> Option<f64> {
        match self {
            Self::RandomPosOffset => Some(0.940),
            Self::ZeroSpeed => Some(0.907),
            Self::ConstPosOffset => Some(0.846),
            Self::RandomSpeedOffset => Some(0.808),
            Self::ConstSpeedOffset => Some(0.637),
            Self::ReversedHeading => Some(0.593),
            Self::DoS => Some(0.353),
            Self::DataReplay => Some(0.273),
            Self::Sybil => Some(0.259),
            _ => None,
        }
    }
}

/// One honest motion sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Time, s.
    pub t: f64,
    /// Position.
    pub pos: Xy,
    /// Velocity.
    pub vel: Xy,
}

/// An honest track sampled at 1 Hz.
#[derive(Debug, Clone, PartialEq)]
pub struct HonestTrack {
    /// Vehicle id.
    pub id: u32,
    /// Samples.
    pub samples: Vec<Sample>,
}

/// Parses GPS fixes CSV (`t_s,latitude_deg,longitude_deg,...`) into a 1 Hz local track
/// (origin at the first fix, time from 0).
///
/// # Errors
/// [`V2xError::Decode`] for malformed lines or fewer than two fixes.
pub fn track_from_fix_csv(csv: &str, id: u32) -> Result<HonestTrack, V2xError> {
    let mut fixes = Vec::new();
    for line in csv.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let mut it = line.split(',').map(str::trim).map(str::parse::<f64>);
        match (it.next(), it.next(), it.next()) {
            (Some(Ok(t)), Some(Ok(lat)), Some(Ok(lon)))
                if t.is_finite() && lat.is_finite() && lon.is_finite() =>
            {
                fixes.push((t, lat, lon));
            }
            _ => return Err(V2xError::Decode(format!("bad fix line {line:?}"))),
        }
    }
    let (Some(&(t0, lat0, lon0)), Some(&(t_end, _, _))) = (fixes.first(), fixes.last()) else {
        return Err(V2xError::Decode("no fixes".into()));
    };
    if fixes.len() < 2 {
        return Err(V2xError::Decode("need at least two fixes".into()));
    }
    let frame = LocalFrame::new(lat0, lon0);
    let pts: Vec<(f64, Xy)> = fixes
        .iter()
        .map(|&(t, la, lo)| (t - t0, frame.to_local(la, lo)))
        .collect();
    let at = |t: f64| -> Xy {
        let i = pts.partition_point(|p| p.0 <= t);
        match (pts.get(i.saturating_sub(1)), pts.get(i)) {
            (Some(a), Some(b)) if b.0 > a.0 => a.1.add(b.1.sub(a.1).scale((t - a.0) / (b.0 - a.0))),
            (Some(a), _) => a.1,
            (None, Some(b)) => b.1,
            (None, None) => Xy::default(),
        }
    };
    let dur = t_end - t0;
    let mut samples = Vec::new();
    let mut t = 0.0;
    while t <= dur {
        let vel = at((t + 1.0).min(dur))
            .sub(at((t - 1.0).max(0.0)))
            .scale(0.5);
        samples.push(Sample { t, pos: at(t), vel });
        t += 1.0;
    }
    Ok(HonestTrack { id, samples })
}

/// Simulation parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seed.
    pub seed: u64,
    /// Attack to inject.
    pub attack: AttackType,
    /// Synthetic vehicles.
    pub vehicles: u32,
    /// Share of synthetic vehicles that attack.
    pub attacker_share: f64,
    /// Ring road radii, m.
    pub rings_m: Vec<f64>,
    /// Duration, s (capped by the base track).
    pub duration_s: f64,
    /// GPS noise (1 sigma per axis), m.
    pub pos_sigma_m: f64,
    /// Speed noise (1 sigma), m/s.
    pub speed_sigma_mps: f64,
    /// Attacks start after this, s.
    pub attack_start_s: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            attack: AttackType::ConstPosOffset,
            vehicles: 24,
            attacker_share: 0.3,
            rings_m: vec![120.0, 220.0, 320.0],
            duration_s: 300.0,
            pos_sigma_m: 0.5,
            speed_sigma_mps: 0.1,
            attack_start_s: 5.0,
        }
    }
}

const LANE_M: f64 = 1.75;

fn ring_track(
    id: u32,
    r: f64,
    clockwise: bool,
    speed: f64,
    phase: f64,
    dur: f64,
    rng: &mut ChaCha8Rng,
) -> HonestTrack {
    let lane_r = if clockwise { r + LANE_M } else { r - LANE_M };
    let mut samples = Vec::new();
    let mut angle = phase;
    let mut v = speed;
    let mut t = 0.0;
    while t <= dur {
        // angle measured from east, counter-clockwise
        let dir = if clockwise { -1.0 } else { 1.0 };
        let pos = Xy::new(lane_r * angle.cos(), lane_r * angle.sin());
        let tangent = Xy::new(-angle.sin() * dir, angle.cos() * dir);
        samples.push(Sample {
            t,
            pos,
            vel: tangent.scale(v),
        });
        angle += dir * v / lane_r;
        v = (v + rng.random_range(-0.3..0.3)).clamp(speed - 1.0, speed + 1.0);
        t += 1.0;
    }
    HonestTrack { id, samples }
}

/// The road map of the scenario (ring centre lines and the husky path) in the local frame.
#[must_use]
pub fn scenario_map(cfg: &SimConfig, husky: &HonestTrack) -> RoadMap {
    let mut lines = Vec::new();
    // lane centre lines (as F2MD's map check uses the lane shapes)
    for &r in &cfg.rings_m {
        for lane in [r - LANE_M, r + LANE_M] {
            lines.push(
                (0..=720)
                    .map(|d| {
                        let a = (f64::from(d) * 0.5).to_radians();
                        (lane * a.cos(), lane * a.sin())
                    })
                    .collect(),
            );
        }
    }
    lines.push(husky.samples.iter().map(|s| (s.pos.x, s.pos.y)).collect());
    RoadMap { lines }
}

/// Map GeoJSON (local frame) of the scenario.
#[must_use]
pub fn scenario_map_geojson(map: &RoadMap) -> String {
    let features: Vec<serde_json::Value> = map
        .lines
        .iter()
        .map(|l| serde_json::json!({"type": "Feature", "properties": {}, "geometry": {"type": "LineString", "coordinates": l.iter().map(|(a, b)| [*a, *b]).collect::<Vec<_>>()}}))
        .collect();
    serde_json::json!({"type": "FeatureCollection", "features": features}).to_string()
}

struct Beacon {
    t_send: f64,
    t_rcv: f64,
    sender: u32,
    pseudo: u64,
    pos: Xy,
    vel: Xy,
    heading: Xy,
    accel: f64,
    label: Option<AttackType>,
}

/// Simulated trace: VeReMi records (time ordered) and the road map.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Records (type 2 receiver fixes and type 3 beacons).
    pub records: Vec<VeremiRecord>,
    /// Road map in the trace's local frame.
    pub map: RoadMap,
}

/// Runs the simulator.
///
/// # Errors
/// [`V2xError::Decode`] when the base track is unusable.
#[allow(clippy::too_many_lines)]
pub fn simulate(cfg: &SimConfig, base: &HonestTrack) -> Result<Trace, V2xError> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let dur = cfg.duration_s.min(base.samples.last().map_or(0.0, |s| s.t));
    let mut tracks = vec![base.clone()];
    // vehicles share lanes (ring x direction) at one nominal speed, evenly spaced
    let n_rings = u32::try_from(cfg.rings_m.len().max(1)).unwrap_or(1);
    let lanes = 2 * n_rings;
    let per_lane = cfg.vehicles.div_ceil(lanes).max(1);
    let lane_speed: Vec<f64> = (0..lanes).map(|_| rng.random_range(8.0..14.0)).collect();
    for i in 0..cfg.vehicles {
        let lane = i % lanes;
        let ring = cfg
            .rings_m
            .get((lane % n_rings) as usize)
            .copied()
            .unwrap_or(200.0);
        let cw = lane >= n_rings;
        let speed = lane_speed.get(lane as usize).copied().unwrap_or(10.0);
        let slot = f64::from(i / lanes) / f64::from(per_lane);
        let phase = slot * std::f64::consts::TAU + rng.random_range(0.0..0.2);
        tracks.push(ring_track(1000 + i, ring, cw, speed, phase, dur, &mut rng));
    }
    let n_att = (f64::from(cfg.vehicles) * cfg.attacker_share).round();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n_att = n_att as usize;
    let attackers: Vec<u32> = tracks.iter().skip(1).take(n_att).map(|t| t.id).collect();
    let mut beacons: Vec<Beacon> = Vec::new();
    let a = cfg.attack;
    for tr in &tracks {
        let attacker = attackers.contains(&tr.id);
        let phase = rng.random_range(0.0..1.0);
        let pseudo = u64::from(tr.id) * 10 + 1;
        // per-attacker constants
        let const_pos = Xy::new(
            rng.random_range(-400.0..400.0),
            rng.random_range(-400.0..400.0),
        );
        let const_off = Xy::new(rng.random_range(-70.0..70.0), rng.random_range(-70.0..70.0));
        let const_speed = rng.random_range(0.0..40.0);
        let const_speed_off = rng.random_range(-7.0..7.0);
        let mut stopped: Option<Xy> = None;
        let mut feigned_v: Option<f64> = None;
        let rate = if attacker
            && matches!(
                a,
                AttackType::DoS | AttackType::DoSRandom | AttackType::DoSDisruptive
            ) {
            4.0
        } else {
            1.0
        };
        let mut k = 0u32;
        loop {
            let t = (f64::from(k) + phase) / rate;
            k += 1;
            if t >= dur {
                break;
            }
            let i = t.floor();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let (Some(s0), Some(s1)) = (tr.samples.get(i as usize), tr.samples.get(i as usize + 1))
            else {
                break;
            };
            let f = t - i;
            let pos = s0.pos.add(s1.pos.sub(s0.pos).scale(f));
            let vel = s0.vel.add(s1.vel.sub(s0.vel).scale(f));
            let accel = s1.vel.norm() - s0.vel.norm();
            let heading = if vel.norm() > 1e-6 {
                vel.scale(1.0 / vel.norm())
            } else {
                heading_vector(0.0)
            };
            let noise = |rng: &mut ChaCha8Rng, s: f64| {
                Xy::new(rng.random_range(-s..s), rng.random_range(-s..s)).scale(3f64.sqrt())
            };
            let mut b = Beacon {
                t_send: t,
                t_rcv: t + 0.002,
                sender: tr.id,
                pseudo,
                pos: pos.add(noise(&mut rng, cfg.pos_sigma_m)),
                vel: vel.add(
                    heading.scale(rng.random_range(-cfg.speed_sigma_mps..cfg.speed_sigma_mps)),
                ),
                heading,
                accel,
                label: None,
            };
            if attacker && t >= cfg.attack_start_s {
                b.label = Some(a);
                let spd = b.vel.norm();
                let with_speed = |b: &mut Beacon, v: f64| b.vel = b.heading.scale(v);
                match a {
                    AttackType::ConstPos => b.pos = const_pos,
                    AttackType::ConstPosOffset => b.pos = b.pos.add(const_off),
                    AttackType::RandomPos => {
                        b.pos = Xy::new(
                            rng.random_range(-400.0..400.0),
                            rng.random_range(-400.0..400.0),
                        );
                    }
                    AttackType::RandomPosOffset => {
                        b.pos = b.pos.add(Xy::new(
                            rng.random_range(-70.0..70.0),
                            rng.random_range(-70.0..70.0),
                        ));
                    }
                    AttackType::ConstSpeed => with_speed(&mut b, const_speed),
                    AttackType::ConstSpeedOffset => {
                        with_speed(&mut b, (spd + const_speed_off).max(0.0));
                    }
                    AttackType::RandomSpeed => with_speed(&mut b, rng.random_range(0.0..40.0)),
                    AttackType::RandomSpeedOffset => {
                        with_speed(&mut b, (spd + rng.random_range(-7.0..7.0)).max(0.0));
                    }
                    AttackType::EventualStop | AttackType::SuddenStop => {
                        if stopped.is_none()
                            && (a == AttackType::SuddenStop || rng.random_bool(0.01))
                        {
                            stopped = Some(b.pos);
                        }
                        match stopped {
                            Some(p) => {
                                b.pos = p;
                                with_speed(&mut b, 0.0);
                            }
                            None => b.label = None,
                        }
                    }
                    AttackType::ZeroSpeed => with_speed(&mut b, 0.0),
                    AttackType::ReversedHeading => b.heading = b.heading.scale(-1.0),
                    AttackType::FeignedBraking => {
                        let v = feigned_v.unwrap_or(spd) - 8.0 / rate;
                        feigned_v = Some(v.max(0.0));
                        with_speed(&mut b, v.max(0.0));
                        b.accel = -8.0;
                    }
                    AttackType::AccelMultiplication => {
                        b.accel *= 5.0;
                        let v = feigned_v.unwrap_or(spd) + b.accel / rate;
                        feigned_v = Some(v.clamp(0.0, 60.0));
                        with_speed(&mut b, v.clamp(0.0, 60.0));
                    }
                    AttackType::PositionMirroring => b.pos = b.pos.scale(-1.0),
                    AttackType::DelayedMessages => {
                        b.t_rcv += 5.0;
                    }
                    AttackType::TimeDelay => b.t_send -= 1.5,
                    AttackType::DoSRandom => {
                        b.pos = Xy::new(
                            rng.random_range(-400.0..400.0),
                            rng.random_range(-400.0..400.0),
                        );
                        with_speed(&mut b, rng.random_range(0.0..40.0));
                    }
                    // replays are filled in below, once all honest beacons exist
                    AttackType::DoS
                    | AttackType::Disruptive
                    | AttackType::DataReplay
                    | AttackType::DoSDisruptive => {}
                    AttackType::GridSybil | AttackType::Sybil => {
                        // the attacker's own beacon stays genuine; ghosts are added
                        b.label = None;
                        for g in 1..=5u32 {
                            let (along, side) = if a == AttackType::GridSybil {
                                (-(f64::from(g)) * rng.random_range(3.0..7.0), 0.0)
                            } else {
                                (rng.random_range(-30.0..30.0), rng.random_range(-5.0..5.0))
                            };
                            let n = Xy::new(b.heading.y, -b.heading.x);
                            beacons.push(Beacon {
                                pseudo: u64::from(tr.id) * 10 + 1 + u64::from(g),
                                pos: b.pos.add(b.heading.scale(along)).add(n.scale(side)),
                                label: Some(a),
                                ..Beacon { ..b }
                            });
                        }
                    }
                }
            }
            beacons.push(b);
        }
    }
    // Replay attacks copy content of other vehicles' beacons sent shortly before.
    if matches!(
        a,
        AttackType::Disruptive | AttackType::DataReplay | AttackType::DoSDisruptive
    ) {
        beacons.sort_by(|x, y| x.t_send.total_cmp(&y.t_send));
        let honest: Vec<(f64, u32, Xy, Xy, Xy)> = beacons
            .iter()
            .filter(|b| !attackers.contains(&b.sender))
            .map(|b| (b.t_send, b.sender, b.pos, b.vel, b.heading))
            .collect();
        let mut targets = std::collections::HashMap::new();
        for b in beacons.iter_mut().filter(|b| b.label.is_some()) {
            let recent: Vec<&(f64, u32, Xy, Xy, Xy)> = honest
                .iter()
                .filter(|h| h.0 <= b.t_send && h.0 > b.t_send - 1.0)
                .collect();
            let pick = if a == AttackType::DataReplay {
                let target = *targets
                    .entry(b.sender)
                    .or_insert_with(|| recent.first().map_or(0, |h| h.1));
                recent.iter().rev().find(|h| h.1 == target).copied()
            } else if recent.is_empty() {
                None
            } else {
                recent.get(rng.random_range(0..recent.len())).copied()
            };
            if let Some(&(_, _, p, v, h)) = pick {
                b.pos = p;
                b.vel = v;
                b.heading = h;
            } else {
                b.label = None;
            }
        }
    }
    beacons.sort_by(|x, y| x.t_rcv.total_cmp(&y.t_rcv));
    let mut records = Vec::with_capacity(beacons.len() + 400);
    let mut next_fix = 0.0;
    let mut msg_id = 0u64;
    for b in beacons {
        while next_fix <= b.t_rcv {
            records.push(VeremiRecord {
                kind: 2,
                rcv_time: next_fix,
                send_time: None,
                sender: None,
                sender_pseudo: None,
                message_id: None,
                pos: vec![0.0, 0.0, 0.0],
                pos_noise: vec![0.0, 0.0, 0.0],
                spd: vec![0.0, 0.0, 0.0],
                spd_noise: vec![0.0, 0.0, 0.0],
                acl: vec![0.0, 0.0, 0.0],
                hed: vec![0.0, 1.0, 0.0],
                hed_noise: Vec::new(),
                attack_type: None,
            });
            next_fix += 1.0;
        }
        msg_id += 1;
        let ps = cfg.pos_sigma_m * 3.0;
        let ss = cfg.speed_sigma_mps * 3.0;
        records.push(VeremiRecord {
            kind: 3,
            rcv_time: b.t_rcv,
            send_time: Some(b.t_send),
            sender: Some(b.sender),
            sender_pseudo: Some(b.pseudo),
            message_id: Some(msg_id),
            pos: vec![b.pos.x, b.pos.y, 0.0],
            pos_noise: vec![ps, ps, 0.0],
            spd: vec![b.vel.x, b.vel.y, 0.0],
            spd_noise: vec![ss, ss, 0.0],
            acl: vec![b.heading.x * b.accel, b.heading.y * b.accel, 0.0],
            hed: vec![b.heading.x, b.heading.y, 0.0],
            hed_noise: vec![0.02, 0.02, 0.0],
            attack_type: b.label.map(AttackType::name),
        });
    }
    Ok(Trace {
        records,
        map: scenario_map(cfg, base),
    })
}

/// Precision / recall / F1 counts.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Counts {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    pub fn_: u64,
    /// True negatives.
    pub tn: u64,
}

impl Counts {
    /// Precision.
    #[must_use]
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    /// Recall.
    #[must_use]
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    /// F1.
    #[must_use]
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r > 0.0 {
            2.0 * p * r / (p + r)
        } else {
            0.0
        }
    }
    /// Adds counts.
    pub const fn add(&mut self, o: &Self) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.tn += o.tn;
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let r = if b == 0 { 0.0 } else { a as f64 / b as f64 };
    r
}

/// Evaluation result: counts per attack label found in the trace and overall.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evaluation {
    /// Per attack type (malicious beacons of that type vs all honest beacons of the trace).
    pub per_type: Vec<(String, Counts)>,
    /// All beacons.
    pub overall: Counts,
    /// Check failure counts on malicious / honest beacons.
    pub check_failures: Vec<(String, u64, u64)>,
}

/// Runs a validator over a trace and scores its verdicts against the `attackType` labels;
/// beacons received before `warmup_s` are fed to the validator but not scored.
///
/// # Errors
/// [`V2xError`] from the validator.
pub fn evaluate(
    validator: &mut Validator,
    records: &[VeremiRecord],
    warmup_s: f64,
) -> Result<Evaluation, V2xError> {
    let mut per: std::collections::BTreeMap<String, Counts> = std::collections::BTreeMap::new();
    let mut honest = Counts::default();
    let mut overall = Counts::default();
    let mut fails: std::collections::BTreeMap<&'static str, (u64, u64)> =
        std::collections::BTreeMap::new();
    for r in records {
        let Some(v) = validator.process_veremi(r)? else {
            continue;
        };
        if r.rcv_time < warmup_s {
            continue;
        }
        let flagged = v.verdict == Verdict::Rejected;
        for c in v.checks.iter().filter(|c| c.failed()) {
            let e = fails.entry(c.name).or_default();
            if r.attack_type.is_some() {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        match &r.attack_type {
            Some(a) => {
                let c = per.entry(a.clone()).or_default();
                if flagged {
                    c.tp += 1;
                    overall.tp += 1;
                } else {
                    c.fn_ += 1;
                    overall.fn_ += 1;
                }
            }
            None => {
                if flagged {
                    honest.fp += 1;
                    overall.fp += 1;
                } else {
                    honest.tn += 1;
                    overall.tn += 1;
                }
            }
        }
    }
    let per_type = per
        .into_iter()
        .map(|(k, mut c)| {
            c.fp = honest.fp;
            c.tn = honest.tn;
            (k, c)
        })
        .collect();
    Ok(Evaluation {
        per_type,
        overall,
        check_failures: fails
            .into_iter()
            .map(|(k, (m, h))| (k.to_string(), m, h))
            .collect(),
    })
}

/// Simulates `attack` and evaluates a validator built from `config` on it (the map of the
/// scenario is installed in local frame).
///
/// # Errors
/// [`V2xError`] from simulation or validation.
pub fn simulate_and_evaluate(
    sim: &SimConfig,
    config: crate::config::Config,
) -> Result<Evaluation, V2xError> {
    let base = track_from_fix_csv(HUSKY_FIX_CSV, 7)?;
    let trace = simulate(sim, &base)?;
    let mut v = Validator::new(config)?;
    v.set_map(trace.map.clone(), MapFrame::Local);
    evaluate(&mut v, &trace.records, sim.attack_start_s)
}
