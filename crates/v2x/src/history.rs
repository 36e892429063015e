//! Per-pseudonym history behind a small trait, so the actor can keep it in the kv-cache
//! provider (with a TTL) and tests/tools keep it in memory.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::geo::Xy;

/// The state kept about one pseudonym: its last accepted-or-not beacon, in the local frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Pseudonym.
    pub pseudonym: u64,
    /// Station id last seen with it.
    pub station_id: u32,
    /// Generation time of the last beacon, s.
    pub last_generation_s: f64,
    /// Receive time of the last beacon, s.
    pub last_receive_s: f64,
    /// Last reported position (local frame).
    pub pos: Xy,
    /// Last reported speed, m/s.
    pub speed_mps: Option<f64>,
    /// Last reported heading, degrees.
    pub heading_deg: Option<f64>,
    /// Vehicle length, m.
    pub length_m: f64,
    /// Vehicle width, m.
    pub width_m: f64,
    /// Receive time of the first beacon, s.
    pub first_receive_s: f64,
    /// Beacons seen.
    pub count: u64,
}

impl Track {
    /// Whether this track still describes its pseudonym for a message received at `now_s`:
    /// heard within `ttl_s` of it, before or after. Each message is judged on its own receive
    /// time, so no single message (a trace line with a receive time far in the future, a trace
    /// replayed from its start) can age every other sender's history at once.
    #[must_use]
    pub fn current_at(&self, now_s: f64, ttl_s: f64) -> bool {
        (now_s - self.last_receive_s).abs() <= ttl_s
    }
}

/// What the intersection check needs of a vehicle: where it was, when, and its extent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Footprint {
    /// Pseudonym.
    pub pseudonym: u64,
    /// Generation time of the beacon, s.
    pub generation_s: f64,
    /// Receive time of the beacon, s.
    pub receive_s: f64,
    /// Reported position (local frame).
    pub pos: Xy,
    /// Reported heading, degrees.
    pub heading_deg: Option<f64>,
    /// Vehicle length, m.
    pub length_m: f64,
    /// Vehicle width, m.
    pub width_m: f64,
}

impl Footprint {
    /// The footprint of a track's last beacon.
    #[must_use]
    pub fn of(t: &Track) -> Self {
        Self {
            pseudonym: t.pseudonym,
            generation_s: t.last_generation_s,
            receive_s: t.last_receive_s,
            pos: t.pos,
            heading_deg: t.heading_deg,
            length_m: t.length_m,
            width_m: t.width_m,
        }
    }

    /// Radius of the circle around `pos` that holds the vehicle whatever its heading.
    #[must_use]
    pub fn radius_m(&self) -> f64 {
        0.5 * self.length_m.hypot(self.width_m)
    }

    /// True when every number a grid or a check uses is finite.
    #[must_use]
    pub fn is_finite(&self) -> bool {
        [
            self.generation_s,
            self.receive_s,
            self.pos.x,
            self.pos.y,
            self.length_m,
            self.width_m,
        ]
        .iter()
        .all(|v| v.is_finite())
            && self.heading_deg.is_none_or(f64::is_finite)
    }
}

/// A square grid over the local frame for stores that keep footprints by place, so a message
/// reads and writes the few vehicles around it instead of every vehicle heard.
///
/// A footprint is kept in every cell its bounding circle touches and a search reads the cells
/// its own circle touches: two vehicles whose circles overlap share a point, and that point
/// lies in a cell both were filed under. No vehicle size is assumed.
pub mod grid {
    use super::Footprint;
    use crate::geo::Xy;

    /// Cell side, metres: a car's circle (radius about 2.7 m) touches one cell in most places.
    pub const CELL_M: f64 = 32.0;
    /// Circles are clamped to this radius (an ETSI vehicle is at most 102.2 m × 6.1 m, radius
    /// 51.2 m), which bounds a footprint to 25 cells.
    pub const MAX_RADIUS_M: f64 = 2.0 * CELL_M;
    /// Bytes per footprint in [`encode`].
    pub const RECORD_BYTES: usize = 64;
    /// Footprints kept per cell: the most recently received (16 KiB encoded). Hundreds of
    /// vehicles within 32 m is not traffic but a flood of made-up pseudonyms; it must not grow
    /// what every neighbour reads and writes.
    pub const MAX_PER_CELL: usize = 256;
    const VERSION: u8 = 1;

    /// A cell's column and row.
    pub type Cell = (i64, i64);

    /// The cells a circle touches, in row-major order; none for a non-finite circle.
    #[must_use]
    pub fn cells_touching(center: Xy, radius_m: f64) -> Vec<Cell> {
        if !(center.x.is_finite() && center.y.is_finite() && radius_m.is_finite()) {
            return Vec::new();
        }
        let r = radius_m.clamp(0.0, MAX_RADIUS_M);
        // beyond ±2^52 m, f64 -> i64 saturates and cells would alias: not a place on Earth
        let limit = 4.0e15;
        if center.x.abs() > limit || center.y.abs() > limit {
            return Vec::new();
        }
        #[allow(clippy::cast_possible_truncation)]
        let index = |v: f64| (v / CELL_M).floor() as i64;
        let mut out = Vec::new();
        for j in index(center.y - r)..=index(center.y + r) {
            for i in index(center.x - r)..=index(center.x + r) {
                #[allow(clippy::cast_precision_loss)]
                let (x0, y0) = (i as f64 * CELL_M, j as f64 * CELL_M);
                let dx = (x0 - center.x).max(0.0).max(center.x - (x0 + CELL_M));
                let dy = (y0 - center.y).max(0.0).max(center.y - (y0 + CELL_M));
                if dx.hypot(dy) <= r {
                    out.push((i, j));
                }
            }
        }
        out
    }

    /// The cells a footprint is filed under.
    #[must_use]
    pub fn cells_of(fp: &Footprint) -> Vec<Cell> {
        if fp.is_finite() {
            cells_touching(fp.pos, fp.radius_m())
        } else {
            Vec::new()
        }
    }

    /// A store key for a cell.
    #[must_use]
    pub fn key(c: Cell) -> String {
        format!("cell/{}/{}", c.0, c.1)
    }

    /// A cell's footprints as bytes: a version byte, then 64 bytes each (little-endian
    /// pseudonym, generation, receive, x, y, heading or NaN, length, width).
    #[must_use]
    pub fn encode(entries: &[Footprint]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + entries.len() * RECORD_BYTES);
        out.push(VERSION);
        for f in entries {
            out.extend_from_slice(&f.pseudonym.to_le_bytes());
            for v in [
                f.generation_s,
                f.receive_s,
                f.pos.x,
                f.pos.y,
                f.heading_deg.unwrap_or(f64::NAN),
                f.length_m,
                f.width_m,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Reads [`encode`]'s bytes; `None` when they are not such bytes (wrong version or length,
    /// or a non-finite value where a number is needed).
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Vec<Footprint>> {
        let (&version, body) = bytes.split_first()?;
        if version != VERSION || body.len() % RECORD_BYTES != 0 {
            return None;
        }
        body.chunks_exact(RECORD_BYTES)
            .map(|r| {
                let word = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&r[8 * i..8 * i + 8]);
                    b
                };
                let f = |i: usize| f64::from_le_bytes(word(i));
                let heading = f(5);
                let fp = Footprint {
                    pseudonym: u64::from_le_bytes(word(0)),
                    generation_s: f(1),
                    receive_s: f(2),
                    pos: Xy::new(f(3), f(4)),
                    heading_deg: (!heading.is_nan()).then_some(heading),
                    length_m: f(6),
                    width_m: f(7),
                };
                fp.is_finite().then_some(fp)
            })
            .collect()
    }

    /// Files `fp` in a cell's `entries` (when `insert`) after taking out its pseudonym's
    /// older entry and every entry received more than `keep_s` before or after `fp`, then the
    /// least recently received ones beyond [`MAX_PER_CELL`]; true when anything changed.
    pub fn refile(entries: &mut Vec<Footprint>, fp: &Footprint, insert: bool, keep_s: f64) -> bool {
        let before = entries.len();
        entries.retain(|e| {
            e.pseudonym != fp.pseudonym && (e.receive_s - fp.receive_s).abs() <= keep_s
        });
        let removed = entries.len() != before;
        if insert {
            entries.push(*fp);
        }
        while entries.len() > MAX_PER_CELL {
            let oldest = entries
                .iter()
                .enumerate()
                .min_by(|a, b| a.1.receive_s.total_cmp(&b.1.receive_s))
                .map_or(0, |(i, _)| i);
            entries.swap_remove(oldest);
        }
        removed || insert
    }
}

/// A [`HistoryStore`] read that failed (a cache provider that is down, say): the check that
/// needed it is skipped, never passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// Storage of per-pseudonym tracks and replay state. Implementations may expire entries
/// (TTL); a missing entry only means "first beacon".
pub trait HistoryStore {
    /// The track of a pseudonym for a message received at `now_s`: absent when none is held
    /// or it is not [`Track::current_at`] `now_s`.
    fn load(&self, pseudonym: u64, now_s: f64) -> Option<Track>;
    /// Stores the track of a pseudonym.
    fn store(&mut self, track: Track);
    /// Footprints of other pseudonyms heard at or after `since_s` (receive time) that may
    /// overlap `around`, for the intersection check. Implementations may return more than
    /// overlaps (the check measures each), and the check's result does not depend on how many
    /// more. Returns whether the search could be made: `false` (the check is then skipped) for
    /// a store that cannot search or could not read, or a position that is not a place.
    /// Called after [`Self::load`] of `around`'s pseudonym.
    fn nearby(&self, around: &Footprint, since_s: f64, out: &mut Vec<Footprint>) -> bool;
    /// The 1609.2 generation times (µs) recently accepted for a signer key (replay
    /// detection, see [`ReplayMarks`]); `Err` when the store could not be read, and the replay
    /// check is then skipped rather than passed (and no marks are written).
    fn replay_marks(&self, signer: u64) -> Result<ReplayMarks, Unreadable>;
    /// Records a signer key's marks after a message was accepted.
    fn set_replay_marks(&mut self, signer: u64, marks: ReplayMarks);
}

/// Most generation times kept per signer (a station sends CAMs at most at 10–20 Hz; the window
/// is a few seconds).
pub const MAX_REPLAY_MARKS: usize = 128;

/// The generation times (µs) accepted for one signer within a window behind the newest:
/// a message is a replay when its generation time is one of them, older than the window (it
/// can no longer be told apart), or not after the floor. A message older than the newest but
/// not seen before — reordered on the way, or handled by another instance a moment later — is
/// not a replay.
///
/// The floor is the newest time ever dropped by the cap of [`MAX_REPLAY_MARKS`] (a signer
/// sending faster than the cap holds in one window), so a dropped time stays a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayMarks {
    floor: Option<u64>,
    times: Vec<u64>,
}

/// The longest stored form [`ReplayMarks::parse`] reads: the floor and the cap's worth of
/// 20-digit times with separators.
const MAX_MARKS_TEXT: usize = 4 + 21 * (MAX_REPLAY_MARKS + 1);

impl ReplayMarks {
    /// Marks from their stored form, `v2;<floor>;<t,t,…>` (floor and list may be empty), or a
    /// bare decimal time as stores wrote before windows (read as the floor: that value meant
    /// "nothing at or before this"). `None` for anything else, or anything longer than the
    /// cap could have written.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_MARKS_TEXT {
            return None;
        }
        let Some(rest) = text.strip_prefix("v2;") else {
            return text.trim().parse().ok().map(|floor| Self { floor: Some(floor), times: Vec::new() });
        };
        let (floor, list) = rest.split_once(';')?;
        let floor = if floor.is_empty() { None } else { Some(floor.parse().ok()?) };
        let mut times = if list.is_empty() {
            Vec::new()
        } else {
            list.split(',').map(|t| t.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?
        };
        times.sort_unstable();
        times.dedup();
        let mut marks = Self { floor, times };
        marks.cap();
        Some(marks)
    }

    /// The stored form read by [`Self::parse`].
    #[must_use]
    pub fn encode(&self) -> String {
        let floor = self.floor.map(|f| f.to_string()).unwrap_or_default();
        let times: Vec<String> = self.times.iter().map(u64::to_string).collect();
        format!("v2;{floor};{}", times.join(","))
    }

    /// Whether `generation_us` replays a mark, is not after the floor, or is older than
    /// `window_us` behind the newest mark.
    #[must_use]
    pub fn is_replay(&self, generation_us: u64, window_us: u64) -> bool {
        let too_old = self.times.last().is_some_and(|&newest| generation_us.saturating_add(window_us) < newest);
        too_old || self.floor.is_some_and(|f| generation_us <= f) || self.times.binary_search(&generation_us).is_ok()
    }

    /// Adds `generation_us`, drops the marks older than `window_us` behind the newest (they are
    /// replays as too old from then on) and the oldest beyond [`MAX_REPLAY_MARKS`] (they raise
    /// the floor).
    pub fn add(&mut self, generation_us: u64, window_us: u64) {
        if let Err(at) = self.times.binary_search(&generation_us) {
            self.times.insert(at, generation_us);
        }
        let newest = self.times.last().copied().unwrap_or(generation_us);
        self.times.retain(|&t| t.saturating_add(window_us) >= newest);
        self.cap();
    }

    fn cap(&mut self) {
        let extra = self.times.len().saturating_sub(MAX_REPLAY_MARKS);
        if extra > 0 {
            let dropped = self.times.drain(..extra).max();
            self.floor = self.floor.max(dropped);
        }
    }

    /// The generation times kept, oldest first.
    #[must_use]
    pub fn times(&self) -> &[u64] {
        &self.times
    }

    /// The newest time dropped by the cap (and older stores' single mark).
    #[must_use]
    pub const fn floor(&self) -> Option<u64> {
        self.floor
    }
}

/// In-memory [`HistoryStore`] with a TTL and a size bound.
#[derive(Debug, Clone)]
pub struct MemoryHistory {
    tracks: HashMap<u64, Track>,
    secured: HashMap<u64, ReplayMarks>,
    ttl_s: f64,
    max_entries: usize,
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::new(30.0, 100_000)
    }
}

impl MemoryHistory {
    /// A store that forgets tracks unheard for `ttl_s` and keeps at most `max_entries`.
    #[must_use]
    pub fn new(ttl_s: f64, max_entries: usize) -> Self {
        Self {
            tracks: HashMap::new(),
            secured: HashMap::new(),
            ttl_s,
            max_entries,
        }
    }
    /// Number of tracks held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tracks.len()
    }
    /// True when no track is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
    /// Over `max_entries` signers: keeps the most recently heard nine tenths (by their newest
    /// generation time) and `keep`, the signer just heard. A flood of new signers never wipes
    /// the marks of the ones heard most recently, whose replays stay refused.
    fn forget_old_marks(&mut self, keep: u64) {
        let heard = |m: &ReplayMarks| m.times().last().copied().or(m.floor()).unwrap_or(0);
        let target = self.max_entries - self.max_entries / 10;
        let mut by_time: Vec<(u64, u64)> = self.secured.iter().map(|(k, m)| (heard(m), *k)).collect();
        if by_time.len() <= target {
            return;
        }
        // newest first: the first `target` stay
        let at = target.min(by_time.len() - 1);
        by_time.select_nth_unstable_by(at, |a, b| b.cmp(a));
        let stay: std::collections::HashSet<u64> = by_time.iter().take(target).map(|(_, k)| *k).chain([keep]).collect();
        self.secured.retain(|k, _| stay.contains(k));
    }

    fn expire(&mut self, now_s: f64) {
        let ttl_s = self.ttl_s;
        self.tracks.retain(|_, t| t.current_at(now_s, ttl_s));
    }
}

impl HistoryStore for MemoryHistory {
    fn load(&self, pseudonym: u64, now_s: f64) -> Option<Track> {
        self.tracks
            .get(&pseudonym)
            .filter(|t| t.current_at(now_s, self.ttl_s))
            .cloned()
    }
    fn store(&mut self, track: Track) {
        let now_s = track.last_receive_s;
        self.tracks.insert(track.pseudonym, track);
        if self.tracks.len() > self.max_entries {
            self.expire(now_s);
        }
    }
    fn nearby(&self, around: &Footprint, since_s: f64, out: &mut Vec<Footprint>) -> bool {
        if !(around.pos.x.is_finite() && around.pos.y.is_finite()) {
            return false;
        }
        out.extend(
            self.tracks
                .values()
                .filter(|t| t.pseudonym != around.pseudonym && t.last_receive_s >= since_s)
                .map(Footprint::of),
        );
        true
    }
    fn replay_marks(&self, signer: u64) -> Result<ReplayMarks, Unreadable> {
        Ok(self.secured.get(&signer).cloned().unwrap_or_default())
    }
    fn set_replay_marks(&mut self, signer: u64, marks: ReplayMarks) {
        self.secured.insert(signer, marks);
        if self.secured.len() > self.max_entries {
            self.forget_old_marks(signer);
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_flood_of_signers_forgets_the_oldest_marks_not_the_fresh_ones() {
        use super::{HistoryStore, MemoryHistory, ReplayMarks};
        let w = 2_500_000;
        let mut h = MemoryHistory::new(30.0, 100);
        let marks = |t: u64| {
            let mut m = ReplayMarks::default();
            m.add(t, w);
            m
        };
        // a signer heard at 10 s, then 500 signers over the next 20 s
        h.set_replay_marks(1, marks(10_000_000));
        for k in 0..500u64 {
            h.set_replay_marks(1000 + k, marks(10_000_000 + k * 40_000));
        }
        assert!((90..=100).contains(&h.secured.len()), "{}", h.secured.len());
        // the newest signers' marks stay: replays of their messages are still refused
        assert!(h.replay_marks(1499).expect("memory").is_replay(10_000_000 + 499 * 40_000, w));
        assert!(h.replay_marks(1450).expect("memory").is_replay(10_000_000 + 450 * 40_000, w));
        // the least recently heard go first, never the signer just heard
        let mut h = MemoryHistory::new(30.0, 3);
        h.set_replay_marks(1, marks(1_000_000));
        h.set_replay_marks(2, marks(50_000_000));
        h.set_replay_marks(3, marks(51_000_000));
        h.set_replay_marks(4, marks(52_000_000));
        assert_eq!(h.secured.len(), 3);
        assert!(h.replay_marks(1).expect("memory").times().is_empty());
        assert!(h.replay_marks(2).expect("memory").is_replay(50_000_000, w));
        let mut h = MemoryHistory::new(30.0, 1);
        h.set_replay_marks(1, marks(5_000_000));
        h.set_replay_marks(2, marks(1_000_000));
        assert!(h.replay_marks(2).expect("memory").is_replay(1_000_000, w), "the signer just heard stays");
    }

    #[test]
    fn replay_marks_keep_a_window_a_floor_and_read_the_older_single_form() {
        let w = 2_500_000;
        // what stores wrote before windows meant "nothing at or before this"
        let old = ReplayMarks::parse("1000000000").expect("one time, as stores wrote before windows");
        assert_eq!((old.floor(), old.times()), (Some(1_000_000_000), &[][..]));
        assert!(old.is_replay(999_000_000, w) && old.is_replay(1_000_000_000, w) && !old.is_replay(1_000_000_001, w));
        let mut m = ReplayMarks::default();
        m.add(1_000_000_000, w);
        assert!(m.is_replay(1_000_000_000, w));
        assert!(!m.is_replay(999_000_000, w), "older, unseen, inside the window");
        assert!(!m.is_replay(997_500_000, w), "exactly the window behind the newest");
        assert!(m.is_replay(997_499_999, w), "older than the window: cannot be told apart");
        m.add(999_000_000, w);
        m.add(1_003_000_000, w);
        // the newest moved 3 s on: 999 and 1000 fell out of the window, and stay replays
        assert_eq!(m.times(), &[1_003_000_000]);
        assert!(m.is_replay(999_000_000, w) && m.is_replay(1_000_000_000, w));
        assert_eq!(ReplayMarks::parse(&m.encode()), Some(m.clone()));
        assert_eq!(ReplayMarks::parse("v2;;3,1,1").map(|m| m.times().to_vec()), Some(vec![1, 3]), "sorted, deduplicated");
        assert_eq!(ReplayMarks::parse("v2;;"), Some(ReplayMarks::default()));
        for bad in ["", "x", "v2;", "v2;;1,,2", "v2;x;1", "-1", "1,2", "v2;;1;2"] {
            assert_eq!(ReplayMarks::parse(bad), None, "{bad:?}");
        }
        assert_eq!(ReplayMarks::parse(&format!("v2;;{}", "0,".repeat(10_000))), None, "longer than the cap writes");
        // a signer faster than the cap holds in one window: what the cap drops stays a replay
        let mut many = ReplayMarks::default();
        for t in 0..1000u64 {
            many.add(t, u64::MAX);
        }
        assert_eq!(many.times().len(), MAX_REPLAY_MARKS);
        assert_eq!(many.floor(), Some(999 - MAX_REPLAY_MARKS as u64));
        assert!((0..1000).all(|t| many.is_replay(t, u64::MAX)));
        assert!(!many.is_replay(1000, u64::MAX));
        assert_eq!(ReplayMarks::parse(&many.encode()), Some(many));
    }

    use super::grid::{self, CELL_M};
    use super::*;

    fn fp(pseudonym: u64, x: f64, y: f64, t: f64, length_m: f64, width_m: f64) -> Footprint {
        Footprint {
            pseudonym,
            generation_s: t,
            receive_s: t,
            pos: Xy::new(x, y),
            heading_deg: Some(90.0),
            length_m,
            width_m,
        }
    }

    #[test]
    fn a_circle_touches_the_cells_it_reaches_and_no_more() {
        assert_eq!(grid::cells_touching(Xy::new(16.0, 16.0), 3.0), vec![(0, 0)]);
        // near a corner: the four cells around it
        assert_eq!(
            grid::cells_touching(Xy::new(31.0, 31.0), 2.0),
            vec![(0, 0), (1, 0), (0, 1), (1, 1)]
        );
        // near an edge but not the corner's reach: two
        assert_eq!(
            grid::cells_touching(Xy::new(31.0, 16.0), 2.0),
            vec![(0, 0), (1, 0)]
        );
        // negative coordinates floor, not truncate
        assert_eq!(
            grid::cells_touching(Xy::new(-1.0, -40.0), 0.5),
            vec![(-1, -2)]
        );
        // the diagonal cell is left out when the circle misses its corner
        let c = Xy::new(30.0, 30.0);
        assert_eq!(grid::cells_touching(c, 2.5), vec![(0, 0), (1, 0), (0, 1)]);
        assert_eq!(
            grid::cells_touching(c, 2.9),
            vec![(0, 0), (1, 0), (0, 1), (1, 1)]
        );
        for bad in [f64::NAN, f64::INFINITY, 1e300] {
            assert!(grid::cells_touching(Xy::new(bad, 0.0), 1.0).is_empty());
        }
        assert!(grid::cells_touching(Xy::new(0.0, 0.0), f64::NAN).is_empty());
        // a huge radius is clamped: at most 5 × 5 cells
        assert!(grid::cells_touching(Xy::new(0.0, 0.0), 1e9).len() <= 25);
        assert!(grid::cells_of(&fp(1, f64::NAN, 0.0, 1.0, 4.5, 1.8)).is_empty());
    }

    /// The property the intersection check relies on: two footprints whose circles overlap are
    /// filed under at least one common cell, for any sizes and places (seeded, 20k pairs).
    #[test]
    fn overlapping_circles_always_share_a_cell() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            #[allow(clippy::cast_precision_loss)]
            let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
            u
        };
        let mut checked = 0;
        for _ in 0..20_000 {
            let a = fp(
                1,
                (next() - 0.5) * 4.0 * CELL_M,
                (next() - 0.5) * 4.0 * CELL_M,
                1.0,
                1.0 + next() * 30.0,
                1.0 + next() * 5.0,
            );
            let r = a.radius_m() + 12.0;
            let (dx, dy) = ((next() - 0.5) * 2.0 * r, (next() - 0.5) * 2.0 * r);
            let b = fp(
                2,
                a.pos.x + dx,
                a.pos.y + dy,
                1.0,
                1.0 + next() * 20.0,
                1.0 + next() * 3.0,
            );
            if a.pos.dist(b.pos) > a.radius_m() + b.radius_m() {
                continue;
            }
            checked += 1;
            let (ca, cb) = (grid::cells_of(&a), grid::cells_of(&b));
            assert!(
                ca.iter().any(|c| cb.contains(c)),
                "{a:?} {b:?} {ca:?} {cb:?}"
            );
        }
        assert!(checked > 5_000, "{checked}");
    }

    #[test]
    fn cells_round_trip_and_refuse_what_they_did_not_write() {
        let mut no_heading = fp(7, -3.25, 1e6, 12.5, 10.0, 2.5);
        no_heading.heading_deg = None;
        let entries = vec![fp(u64::MAX, 1.0, 2.0, 3.0, 4.5, 1.8), no_heading];
        let bytes = grid::encode(&entries);
        assert_eq!(bytes.len(), 1 + 2 * grid::RECORD_BYTES);
        assert_eq!(grid::decode(&bytes), Some(entries));
        assert_eq!(grid::decode(&grid::encode(&[])), Some(Vec::new()));
        assert_eq!(grid::decode(&[]), None);
        assert_eq!(grid::decode(&bytes[..bytes.len() - 1]), None);
        let mut other_version = bytes.clone();
        other_version[0] = 9;
        assert_eq!(grid::decode(&other_version), None);
        let mut nan_x = bytes;
        nan_x[1 + 24..1 + 32].copy_from_slice(&f64::NAN.to_le_bytes());
        assert_eq!(grid::decode(&nan_x), None);
    }

    #[test]
    fn refiling_drops_the_old_entry_and_the_stale_ones() {
        let mut cell = vec![
            fp(1, 0.0, 0.0, 1.0, 4.5, 1.8),
            fp(2, 5.0, 0.0, 0.2, 4.5, 1.8),
            fp(3, 9.0, 0.0, 1.5, 4.5, 1.8),
            // stamped far ahead of everyone (a forged receive time): goes too
            fp(4, 9.0, 0.0, 1e12, 4.5, 1.8),
        ];
        let moved = fp(1, 2.0, 0.0, 2.0, 4.5, 1.8);
        assert!(grid::refile(&mut cell, &moved, true, 1.5));
        let ids: Vec<u64> = cell.iter().map(|e| e.pseudonym).collect();
        assert_eq!(ids, vec![3, 1]);
        assert_eq!(cell[1], moved);
        // leaving the cell: taken out, nothing added
        assert!(grid::refile(&mut cell, &moved, false, 1.5));
        assert_eq!(cell.len(), 1);
        // not filed here and nothing stale: unchanged
        assert!(!grid::refile(&mut cell, &moved, false, 1.5));
        // a flood of pseudonyms at one place keeps only the most recent
        let mut flooded = Vec::new();
        for i in 0..(grid::MAX_PER_CELL as u64 + 50) {
            #[allow(clippy::cast_precision_loss)]
            let t = 10.0 + i as f64 * 0.001;
            grid::refile(
                &mut flooded,
                &fp(100 + i, 1.0, 1.0, t, 4.5, 1.8),
                true,
                10.0,
            );
        }
        assert_eq!(flooded.len(), grid::MAX_PER_CELL);
        assert!(
            flooded.iter().all(|e| e.pseudonym >= 150),
            "the 50 oldest went"
        );
    }
}
