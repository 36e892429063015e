//! A ByteTrack-class multi-object tracker: constant-velocity Kalman filter on
//! (cx, cy, aspect, h), two-stage IoU association (high-score detections first, then low-score
//! ones against the still unmatched tracks), minimum-cost IoU matching (Hungarian, gated), birth of confirmed tracks
//! and death after a lost buffer.

// Small fixed-size matrix code reads best with explicit index loops (all bounds are constant).
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};

use crate::detect::{BBox, Detection};
use crate::error::{Result, StateError, VisionError};

type Vec8 = [f64; 8];
type Mat8 = [[f64; 8]; 8];
type Mat4 = [[f64; 4]; 4];

/// Kalman filter state of one box: mean (cx, cy, a, h, vcx, vcy, va, vh) and covariance.
///
/// Serialises as its full mean and covariance so a restored filter continues bit for bit (the
/// covariance is kept whole: `predict` does not keep it exactly symmetric).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KalmanBox {
    mean: Vec8,
    cov: Mat8,
}

const STD_POS: f64 = 1.0 / 20.0;
const STD_VEL: f64 = 1.0 / 160.0;

fn to_measurement(b: &BBox) -> [f64; 4] {
    let (cx, cy) = b.center();
    let h = f64::from(b.height()).max(1e-3);
    [f64::from(cx), f64::from(cy), f64::from(b.width()) / h, h]
}

impl KalmanBox {
    /// Starts a filter at a measured box with zero velocity.
    #[must_use]
    pub fn new(b: &BBox) -> Self {
        let z = to_measurement(b);
        let h = z[3];
        let std = [
            2.0 * STD_POS * h,
            2.0 * STD_POS * h,
            1e-2,
            2.0 * STD_POS * h,
            10.0 * STD_VEL * h,
            10.0 * STD_VEL * h,
            1e-5,
            10.0 * STD_VEL * h,
        ];
        let mut cov = [[0.0; 8]; 8];
        for (i, row) in cov.iter_mut().enumerate() {
            row[i] = std[i] * std[i];
        }
        Self {
            mean: [z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0],
            cov,
        }
    }

    /// Predicts one step ahead (x += v; P = F P Fᵀ + Q).
    pub fn predict(&mut self) {
        let h = self.mean[3];
        let q = [
            STD_POS * h,
            STD_POS * h,
            1e-2,
            STD_POS * h,
            STD_VEL * h,
            STD_VEL * h,
            1e-5,
            STD_VEL * h,
        ];
        for i in 0..4 {
            self.mean[i] += self.mean[i + 4];
        }
        // F P: row i (<4) += row i+4.
        let mut fp = self.cov;
        for i in 0..4 {
            for j in 0..8 {
                fp[i][j] += self.cov[i + 4][j];
            }
        }
        // (F P) Fᵀ: column j (<4) += column j+4.
        let mut p = fp;
        for row in &mut p {
            for j in 0..4 {
                row[j] += row[j + 4];
            }
        }
        for i in 0..8 {
            p[i][i] += q[i] * q[i];
        }
        self.cov = p;
    }

    /// Corrects with a measured box. A singular innovation covariance leaves the state as is.
    pub fn update(&mut self, b: &BBox) {
        let z = to_measurement(b);
        let h = self.mean[3];
        let r = [STD_POS * h, STD_POS * h, 1e-1, STD_POS * h];
        // S = H P Hᵀ + R: the top-left 4x4 block of P.
        let mut s: Mat4 = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                s[i][j] = self.cov[i][j];
            }
            s[i][i] += r[i] * r[i];
        }
        let Some(si) = invert4(&s) else { return };
        // K = P Hᵀ S⁻¹ (8x4); P Hᵀ = first 4 columns of P.
        let mut k = [[0.0; 4]; 8];
        for i in 0..8 {
            for j in 0..4 {
                k[i][j] = (0..4).map(|m| self.cov[i][m] * si[m][j]).sum();
            }
        }
        let innov: [f64; 4] = std::array::from_fn(|i| z[i] - self.mean[i]);
        for i in 0..8 {
            self.mean[i] += (0..4).map(|j| k[i][j] * innov[j]).sum::<f64>();
        }
        // P = P - K H P (H P = first 4 rows of P).
        let mut p = self.cov;
        for i in 0..8 {
            for j in 0..8 {
                p[i][j] -= (0..4).map(|m| k[i][m] * self.cov[m][j]).sum::<f64>();
            }
        }
        // Keep it symmetric against round-off.
        for i in 0..8 {
            for j in 0..i {
                let v = 0.5 * (p[i][j] + p[j][i]);
                p[i][j] = v;
                p[j][i] = v;
            }
        }
        self.cov = p;
    }

    /// Current box estimate.
    #[must_use]
    pub fn bbox(&self) -> BBox {
        let [cx, cy, a, h, ..] = self.mean;
        let h = h.max(0.0);
        let w = (a * h).max(0.0);
        #[allow(clippy::cast_possible_truncation)]
        BBox::new(
            (cx - w / 2.0) as f32,
            (cy - h / 2.0) as f32,
            (cx + w / 2.0) as f32,
            (cy + h / 2.0) as f32,
        )
    }

    /// Current velocity of the box centre (pixels per frame).
    #[must_use]
    pub fn velocity(&self) -> (f64, f64) {
        (self.mean[4], self.mean[5])
    }

    /// True when mean and covariance hold only finite numbers.
    #[must_use]
    pub fn is_finite(&self) -> bool {
        self.mean
            .iter()
            .chain(self.cov.iter().flatten())
            .all(|v| v.is_finite())
    }
}

/// Gauss–Jordan inverse with partial pivoting; `None` when (near) singular.
#[allow(clippy::needless_range_loop)]
fn invert4(m: &Mat4) -> Option<Mat4> {
    let mut a = *m;
    let mut inv: Mat4 = [[0.0; 4]; 4];
    for i in 0..4 {
        inv[i][i] = 1.0;
    }
    for col in 0..4 {
        let pivot = (col..4).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for j in 0..4 {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        for r in 0..4 {
            if r != col {
                let f = a[r][col];
                for j in 0..4 {
                    a[r][j] -= f * a[col][j];
                    inv[r][j] -= f * inv[col][j];
                }
            }
        }
    }
    Some(inv)
}

/// Tracker thresholds (ByteTrack's, tuned for the weaker scores of small detectors).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackerConfig {
    /// Detections at or above this score take part in the first association.
    pub high_threshold: f32,
    /// Detections in `[low_threshold, high_threshold)` take part in the second association.
    pub low_threshold: f32,
    /// An unmatched high detection at or above this score starts a track.
    pub new_track_threshold: f32,
    /// Minimum IoU for a match in the first (high) association.
    pub match_iou: f32,
    /// Minimum IoU for a match in the second (low) association.
    pub low_match_iou: f32,
    /// Minimum IoU to confirm a tentative (one-frame) track.
    pub unconfirmed_match_iou: f32,
    /// Frames a lost track is kept for re-identification before it is removed.
    pub max_lost_frames: u32,
    /// Only associate detections with tracks of the same class.
    pub class_aware: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_threshold: 0.45,
            low_threshold: 0.2,
            new_track_threshold: 0.5,
            match_iou: 0.2,
            low_match_iou: 0.5,
            unconfirmed_match_iou: 0.3,
            max_lost_frames: 30,
            class_aware: true,
        }
    }
}

impl TrackerConfig {
    /// Checks thresholds are within 0..=1 and ordered.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        let all = [
            self.high_threshold,
            self.low_threshold,
            self.new_track_threshold,
            self.match_iou,
            self.low_match_iou,
            self.unconfirmed_match_iou,
        ];
        if all.iter().any(|v| !(0.0..=1.0).contains(v)) || self.low_threshold > self.high_threshold
        {
            return Err(VisionError::InvalidConfig(
                "tracker thresholds must be within 0..1 with low <= high".into(),
            ));
        }
        Ok(())
    }
}

/// Lifecycle of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackState {
    /// Born this frame from one detection; not reported until matched again.
    Tentative,
    /// Matched in the current frame.
    Tracked,
    /// Not matched recently; kept for `max_lost_frames`.
    Lost,
}

/// A tracked object as reported for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Stable id (never reused within a tracker).
    pub track_id: u64,
    /// Class of the detections feeding it.
    pub class_id: u32,
    /// Score of the last matched detection.
    pub score: f32,
    /// Kalman-filtered box.
    pub bbox: BBox,
    /// Frames since the track was born.
    pub age: u32,
    /// Lifecycle state.
    pub state: TrackState,
}

impl Track {
    /// COCO name of the track's class.
    #[must_use]
    pub fn class_name(&self) -> &'static str {
        crate::coco::class_name(self.class_id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrackInner {
    id: u64,
    class_id: u32,
    score: f32,
    kf: KalmanBox,
    state: TrackState,
    start_frame: u64,
    last_frame: u64,
}

impl TrackInner {
    fn snapshot(&self, frame: u64) -> Track {
        Track {
            track_id: self.id,
            class_id: self.class_id,
            score: self.score,
            bbox: self.kf.bbox(),
            age: u32::try_from(frame.saturating_sub(self.start_frame)).unwrap_or(u32::MAX),
            state: self.state,
        }
    }
}

/// What one [`ByteTracker::update`] call produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrackerOutput {
    /// Tracks matched in this frame (state `Tracked`), in id order.
    pub tracks: Vec<Track>,
    /// Ids of tracks removed this frame (lost for longer than the buffer).
    pub removed: Vec<u64>,
}

/// Everything a [`ByteTracker`] carries from frame to frame except its configuration: every
/// live track (Kalman mean and covariance, id, class, score, lifecycle state, birth and last
/// matched frame), the next id and the frame counter. [`ByteTracker::state`] takes it,
/// [`ByteTracker::from_state`] continues from it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackerState {
    tracks: Vec<TrackInner>,
    next_id: u64,
    frame: u64,
    /// The first id this tracker handed out (1 unless started with
    /// [`ByteTracker::start_ids_at`]; absent in states from before it was kept).
    #[serde(default = "first_id_default", skip_serializing_if = "is_first_id_default")]
    first_id: u64,
}

const fn first_id_default() -> u64 {
    1
}

#[allow(clippy::trivially_copy_pass_by_ref)]
const fn is_first_id_default(id: &u64) -> bool {
    *id == 1
}

impl TrackerState {
    /// Number of live tracks (tracked, tentative and lost).
    #[must_use]
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// True when no track is alive.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Frames processed.
    #[must_use]
    pub fn frame_count(&self) -> u64 {
        self.frame
    }

    /// Checks what deserialisation alone cannot: ids below the next id and unique, frames in
    /// order, finite filters.
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(StateError::Inconsistent(m).into());
        // Counters this large cannot come from a real stream; refusing them keeps `+= 1` safe.
        const MAX_COUNTER: u64 = 1 << 62;
        if self.next_id == 0 || self.next_id > MAX_COUNTER || self.frame > MAX_COUNTER || self.first_id == 0 || self.first_id > self.next_id {
            return bad(format!(
                "next track id {} / frame {} / first id {}",
                self.next_id, self.frame, self.first_id
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for t in &self.tracks {
            if t.id < self.first_id || t.id >= self.next_id || !ids.insert(t.id) {
                return bad(format!("track id {} (next id {})", t.id, self.next_id));
            }
            if t.start_frame > t.last_frame || t.last_frame > self.frame {
                return bad(format!(
                    "track {} frames {}..{} past frame {}",
                    t.id, t.start_frame, t.last_frame, self.frame
                ));
            }
            if !t.kf.is_finite() || !t.score.is_finite() {
                return bad(format!("track {} has a non-finite filter or score", t.id));
            }
        }
        Ok(())
    }
}

/// The tracker. Feed it the detections of each frame in order.
#[derive(Debug, Clone)]
pub struct ByteTracker {
    cfg: TrackerConfig,
    tracks: Vec<TrackInner>,
    next_id: u64,
    frame: u64,
    first_id: u64,
}

/// IoU matching by minimum-cost assignment (Hungarian, as ByteTrack's `linear_assignment`):
/// cost 1 − IoU, a pair allowed only with IoU ≥ `min_iou` (and the same class when
/// `class_aware`), leaving a track or a detection unmatched costing (1 − `min_iou`) / 2.
/// Returns (track index, detection index) pairs.
fn match_pairs(
    tracks: &[(usize, BBox, u32)],
    dets: &[(usize, Detection)],
    min_iou: f32,
    class_aware: bool,
) -> Vec<(usize, usize)> {
    let max_cost = 1.0 - f64::from(min_iou);
    let forbidden = max_cost + 1.0;
    let mut cost = Vec::with_capacity(tracks.len() * dets.len());
    for &(_, tb, tc) in tracks {
        for (_, d) in dets {
            let iou = f64::from(tb.iou(&d.bbox));
            let allowed = (!class_aware || d.class_id == tc) && iou.is_finite() && iou > 0.0;
            cost.push(if allowed { 1.0 - iou } else { forbidden });
        }
    }
    // Costs are finite and the shape is right by construction; an error cannot occur, and
    // would only mean "no match".
    let pairs = edgecell_assign::match_gated(&cost, tracks.len(), dets.len(), max_cost).unwrap_or_default();
    pairs
        .into_iter()
        .filter_map(|(ti, di)| Some((tracks.get(ti)?.0, dets.get(di)?.0)))
        .collect()
}

impl ByteTracker {
    /// A tracker with `cfg`.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] for out-of-range thresholds.
    pub fn new(cfg: TrackerConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            cfg,
            tracks: Vec::new(),
            next_id: 1,
            frame: 0,
            first_id: 1,
        })
    }

    /// Hands out ids from `first` on (at least 1, at most 2^61), for a tracker that has not
    /// issued any yet: a stream whose state was lost starts above the ids it used before, so
    /// consumers keyed by track id do not take a new track for an old one. Returns false (and
    /// changes nothing) once ids have been issued.
    pub fn start_ids_at(&mut self, first: u64) -> bool {
        if self.next_id != self.first_id {
            return false;
        }
        let first = first.clamp(1, 1 << 61);
        self.next_id = first;
        self.first_id = first;
        true
    }

    /// The first id this tracker hands out.
    #[must_use]
    pub fn first_id(&self) -> u64 {
        self.first_id
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TrackerConfig {
        &self.cfg
    }

    /// Number of frames processed.
    #[must_use]
    pub fn frame_count(&self) -> u64 {
        self.frame
    }

    /// Total ids handed out so far.
    #[must_use]
    pub fn ids_issued(&self) -> u64 {
        self.next_id.saturating_sub(self.first_id)
    }

    /// A copy of the tracker's state (everything but the configuration).
    #[must_use]
    pub fn state(&self) -> TrackerState {
        TrackerState {
            tracks: self.tracks.clone(),
            next_id: self.next_id,
            frame: self.frame,
            first_id: self.first_id,
        }
    }

    /// A tracker with `cfg` that continues exactly from `state`.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] for `cfg`; [`VisionError::State`] for a state that is not
    /// self-consistent (duplicate or future ids, frames out of order, non-finite filters).
    pub fn from_state(cfg: TrackerConfig, state: TrackerState) -> Result<Self> {
        cfg.validate()?;
        state.validate()?;
        Ok(Self {
            cfg,
            tracks: state.tracks,
            next_id: state.next_id,
            frame: state.frame,
            first_id: state.first_id,
        })
    }

    /// Ends every live track (a source whose clock restarted: what it saw before is gone) and
    /// returns their ids; ids keep counting on from where they were, so none is reused.
    pub fn end_all(&mut self) -> Vec<u64> {
        self.tracks.drain(..).map(|t| t.id).collect()
    }

    /// Advances one frame with that frame's detections (any score; those below
    /// `low_threshold` are ignored).
    pub fn update(&mut self, detections: &[Detection]) -> TrackerOutput {
        self.frame += 1;
        let frame = self.frame;
        let cfg = self.cfg;
        for t in &mut self.tracks {
            // as ByteTrack: a track not seen last frame keeps its size (its height velocity
            // would otherwise shrink or grow an occluded box until nothing matches it)
            if t.state != TrackState::Tracked {
                t.kf.mean[7] = 0.0;
            }
            t.kf.predict();
        }
        let high: Vec<(usize, Detection)> = detections
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, d)| d.score >= cfg.high_threshold)
            .collect();
        let low: Vec<(usize, Detection)> = detections
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, d)| d.score >= cfg.low_threshold && d.score < cfg.high_threshold)
            .collect();
        let mut det_used = vec![false; detections.len()];
        let mut matched = vec![false; self.tracks.len()];

        // Stage 1: high detections vs confirmed tracks (tracked + lost).
        let pool: Vec<(usize, BBox, u32)> = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state != TrackState::Tentative)
            .map(|(i, t)| (i, t.kf.bbox(), t.class_id))
            .collect();
        for (ti, di) in match_pairs(&pool, &high, cfg.match_iou, cfg.class_aware) {
            self.apply_match(ti, detections.get(di), frame);
            set(&mut matched, ti);
            set(&mut det_used, di);
        }
        // Stage 2: low detections vs tracks still unmatched that were tracked last frame.
        let pool: Vec<(usize, BBox, u32)> = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(i, t)| t.state == TrackState::Tracked && !get(&matched, *i))
            .map(|(i, t)| (i, t.kf.bbox(), t.class_id))
            .collect();
        for (ti, di) in match_pairs(&pool, &low, cfg.low_match_iou, cfg.class_aware) {
            self.apply_match(ti, detections.get(di), frame);
            set(&mut matched, ti);
            set(&mut det_used, di);
        }
        // Stage 3: tentative tracks vs remaining high detections.
        let rest: Vec<(usize, Detection)> = high
            .iter()
            .copied()
            .filter(|(i, _)| !get(&det_used, *i))
            .collect();
        let pool: Vec<(usize, BBox, u32)> = self
            .tracks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state == TrackState::Tentative)
            .map(|(i, t)| (i, t.kf.bbox(), t.class_id))
            .collect();
        for (ti, di) in match_pairs(&pool, &rest, cfg.unconfirmed_match_iou, cfg.class_aware) {
            self.apply_match(ti, detections.get(di), frame);
            set(&mut matched, ti);
            set(&mut det_used, di);
        }
        // Unmatched: tentative tracks die, tracked ones become lost, old lost ones are removed.
        let mut removed = Vec::new();
        let mut keep = Vec::with_capacity(self.tracks.len());
        for (i, mut t) in std::mem::take(&mut self.tracks).into_iter().enumerate() {
            if get(&matched, i) {
                keep.push(t);
                continue;
            }
            match t.state {
                TrackState::Tentative => {}
                TrackState::Tracked | TrackState::Lost => {
                    t.state = TrackState::Lost;
                    if frame - t.last_frame > u64::from(cfg.max_lost_frames) {
                        removed.push(t.id);
                    } else {
                        keep.push(t);
                    }
                }
            }
        }
        self.tracks = keep;
        // Births.
        for (di, d) in high {
            if get(&det_used, di) || d.score < cfg.new_track_threshold {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            // The very first frame confirms immediately (as ByteTrack does).
            let state = if frame == 1 {
                TrackState::Tracked
            } else {
                TrackState::Tentative
            };
            self.tracks.push(TrackInner {
                id,
                class_id: d.class_id,
                score: d.score,
                kf: KalmanBox::new(&d.bbox),
                state,
                start_frame: frame,
                last_frame: frame,
            });
        }
        let mut tracks: Vec<Track> = self
            .tracks
            .iter()
            .filter(|t| t.state == TrackState::Tracked && t.last_frame == frame)
            .map(|t| t.snapshot(frame))
            .collect();
        tracks.sort_by_key(|t| t.track_id);
        removed.sort_unstable();
        TrackerOutput { tracks, removed }
    }

    fn apply_match(&mut self, ti: usize, det: Option<&Detection>, frame: u64) {
        let (Some(t), Some(d)) = (self.tracks.get_mut(ti), det) else {
            return;
        };
        t.kf.update(&d.bbox);
        t.score = d.score;
        t.state = TrackState::Tracked;
        t.last_frame = frame;
    }

    /// All live tracks (tracked, tentative and lost), for inspection.
    #[must_use]
    pub fn all_tracks(&self) -> Vec<Track> {
        self.tracks.iter().map(|t| t.snapshot(self.frame)).collect()
    }
}

fn get(v: &[bool], i: usize) -> bool {
    v.get(i).copied().unwrap_or(false)
}

fn set(v: &mut [bool], i: usize) {
    if let Some(x) = v.get_mut(i) {
        *x = true;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bx(x1: f32, x2: f32) -> BBox {
        BBox { x1, y1: 0.0, x2, y2: 10.0 }
    }

    fn det(i: usize, x1: f32, x2: f32) -> (usize, Detection) {
        (i, Detection { class_id: 0, score: 0.9, bbox: bx(x1, x2) })
    }

    #[test]
    fn matching_minimises_total_cost_where_greedy_would_not() {
        // IoU A-d1 0.905 is the single best pair, but A-d2 + B-d1 (0.818 + 0.818) beats
        // A-d1 + B-d2 (0.905 + 0.6): greedy takes A-d1 first, the assignment does not.
        let tracks = [(10, bx(0.0, 10.0), 0), (11, bx(1.5, 11.5), 0)];
        let dets = [det(20, 0.5, 10.5), det(21, -1.0, 9.0)];
        let mut pairs = match_pairs(&tracks, &dets, 0.3, true);
        pairs.sort_unstable();
        assert_eq!(pairs, vec![(10, 21), (11, 20)]);
    }

    #[test]
    fn matching_respects_the_gate_class_and_bad_boxes() {
        let tracks = [(0, bx(0.0, 10.0), 0)];
        // IoU 0.25 < 0.3: no match.
        assert!(match_pairs(&tracks, &[det(0, 6.0, 16.0)], 0.3, true).is_empty());
        // Another class with class_aware: no match; without: match.
        let other = (0, Detection { class_id: 3, score: 0.9, bbox: bx(0.0, 10.0) });
        assert!(match_pairs(&tracks, &[other], 0.3, true).is_empty());
        assert_eq!(match_pairs(&tracks, &[other], 0.3, false), vec![(0, 0)]);
        // A NaN box matches nothing and does not disturb the others.
        let nan = det(1, f32::NAN, 10.0);
        assert_eq!(match_pairs(&tracks, &[nan, det(2, 0.0, 10.0)], 0.3, true), vec![(0, 2)]);
        assert!(match_pairs(&[], &[det(0, 0.0, 1.0)], 0.3, true).is_empty());
    }
}
