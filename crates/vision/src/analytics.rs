//! Zone and line analytics over tracks: polygon zones judged by the bottom centre of a box with
//! a minimum number of consecutive frames before `entered` / `left`, dwell time, and line
//! crossings with direction (counted once a track's bottom centre is [`LINE_HYSTERESIS_PX`]
//! beyond the line, so jitter on the line counts nothing).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::coco;
use crate::error::{Result, StateError, VisionError};
use crate::track::Track;

/// A point in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    /// X (right).
    pub x: f32,
    /// Y (down).
    pub y: f32,
}

impl Point {
    /// Builds a point.
    #[must_use]
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }
}

/// A polygon zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// Region name reported in events.
    pub name: String,
    /// Vertices in order (at least 3); the polygon closes itself.
    pub polygon: Vec<Point>,
}

impl Zone {
    /// Whether the points span an area (not all on one line, to half a square pixel).
    fn has_area(&self) -> bool {
        let Some(&o) = self.polygon.first() else { return false };
        let dist2 = |p: Point| (p.x - o.x).powi(2) + (p.y - o.y).powi(2);
        let Some(&far) = self.polygon.iter().max_by(|a, b| dist2(**a).total_cmp(&dist2(**b))) else {
            return false;
        };
        let (dx, dy) = (far.x - o.x, far.y - o.y);
        let len = dx.hypot(dy);
        // the largest distance of a point from the line o→far, times its length: twice the
        // area of the largest triangle on that base
        len > 0.0 && self.polygon.iter().any(|p| (dx * (p.y - o.y) - dy * (p.x - o.x)).abs() >= 0.5 * len.max(1.0))
    }

    /// Even–odd rule point-in-polygon test.
    #[must_use]
    pub fn contains(&self, p: Point) -> bool {
        let n = self.polygon.len();
        let mut inside = false;
        for (i, a) in self.polygon.iter().enumerate() {
            let Some(b) = self.polygon.get((i + n - 1) % n) else {
                continue;
            };
            if (a.y > p.y) != (b.y > p.y) {
                let x_cross = (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x;
                if p.x < x_cross {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

/// A counting line from `a` to `b`.
///
/// Direction convention (image coordinates, y down): looking from `a` towards `b` on screen,
/// `Forward` is a crossing from the right-hand side to the left-hand side; `Backward` the
/// opposite. For a horizontal line drawn left → right, `Forward` is moving up the screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Region name reported in events.
    pub name: String,
    /// Start point.
    pub a: Point,
    /// End point.
    pub b: Point,
}

/// Half the width of the band around a counting line (pixels of the original frame) in which a
/// track's bottom centre counts as on neither side: a crossing counts once the point is this far
/// beyond the line, from a point this far before it.
pub const LINE_HYSTERESIS_PX: f32 = 3.0;

impl Line {
    fn length(&self) -> f32 {
        (self.b.x - self.a.x).hypot(self.b.y - self.a.y)
    }

    /// Cross product sign of `p` relative to a→b: < 0 left-hand side on screen, > 0 right.
    fn side(&self, p: Point) -> f32 {
        (self.b.x - self.a.x) * (p.y - self.a.y) - (self.b.y - self.a.y) * (p.x - self.a.x)
    }

    /// True when segment p→q crosses the segment a→b (not just its infinite extension).
    fn segment_crosses(&self, p: Point, q: Point) -> bool {
        let d1 = self.side(p);
        let d2 = self.side(q);
        let other = Line {
            name: String::new(),
            a: p,
            b: q,
        };
        let d3 = other.side(self.a);
        let d4 = other.side(self.b);
        (d1 * d2 < 0.0) && (d3 * d4 <= 0.0)
    }
}

/// Kinds of analytics events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A track has been inside a zone for `min_frames_in_zone` consecutive frames.
    Entered,
    /// A track inside a zone has been outside for `min_frames_in_zone` frames, or ended.
    Left,
    /// A track's bottom centre crossed a line.
    Crossed,
}

/// Crossing direction (see [`Line`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Right-hand side → left-hand side of a→b.
    Forward,
    /// Left-hand side → right-hand side of a→b.
    Backward,
}

/// One analytics event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsEvent {
    /// What happened.
    pub kind: EventKind,
    /// Track concerned.
    pub track_id: u64,
    /// Track class id.
    pub class_id: u32,
    /// Track class name.
    pub class_name: String,
    /// Zone or line name.
    pub region: String,
    /// For `crossed`.
    pub direction: Option<Direction>,
    /// Frame time in nanoseconds.
    pub timestamp_ns: u64,
    /// For `left`: time spent in the zone (first to last frame inside), milliseconds.
    pub dwell_ms: Option<u64>,
}

/// Analytics configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnalyticsConfig {
    /// Zones.
    #[serde(default)]
    pub zones: Vec<Zone>,
    /// Counting lines.
    #[serde(default)]
    pub lines: Vec<Line>,
    /// Consecutive frames inside (outside) before `entered` (`left`) fires; 0 acts as 1. The
    /// frames are those the track is seen on: frames where it is lost (occluded, missed by the
    /// detector) neither count nor break the run.
    #[serde(default)]
    pub min_frames_in_zone: u32,
}

impl AnalyticsConfig {
    /// Checks zones have ≥ 3 finite vertices, lines have distinct finite ends, names are unique,
    /// not empty and at most [`MAX_REGION_NAME_BYTES`] long (every event carries one).
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        let mut names = BTreeSet::new();
        for name in self.zones.iter().map(|z| &z.name).chain(self.lines.iter().map(|l| &l.name)) {
            if name.is_empty() || name.len() > MAX_REGION_NAME_BYTES {
                return Err(VisionError::InvalidConfig(format!(
                    "region name {:?}: 1 to {MAX_REGION_NAME_BYTES} bytes",
                    name.chars().take(40).collect::<String>()
                )));
            }
        }
        for z in &self.zones {
            if z.polygon.len() < 3
                || z.polygon
                    .iter()
                    .any(|p| !p.x.is_finite() || !p.y.is_finite())
            {
                return Err(VisionError::InvalidConfig(format!(
                    "zone {:?} needs at least 3 finite points",
                    z.name
                )));
            }
            if !z.has_area() {
                return Err(VisionError::InvalidConfig(format!(
                    "zone {:?} has no area (its points lie on one line): it could never fire",
                    z.name
                )));
            }
            if !names.insert(z.name.as_str()) {
                return Err(VisionError::InvalidConfig(format!(
                    "duplicate region name {:?}",
                    z.name
                )));
            }
        }
        for l in &self.lines {
            let finite = [l.a.x, l.a.y, l.b.x, l.b.y].iter().all(|v| v.is_finite());
            if !finite || l.length() < 1.0 {
                return Err(VisionError::InvalidConfig(format!(
                    "line {:?} needs two finite points at least 1 px apart",
                    l.name
                )));
            }
            if !names.insert(l.name.as_str()) {
                return Err(VisionError::InvalidConfig(format!(
                    "duplicate region name {:?}",
                    l.name
                )));
            }
        }
        Ok(())
    }
}

/// Longest zone or line name.
pub const MAX_REGION_NAME_BYTES: usize = 128;

/// Per-line crossing totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LineCount {
    /// Forward crossings.
    pub forward: u64,
    /// Backward crossings.
    pub backward: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ZoneState {
    /// Confirmed inside (after `entered`).
    inside: bool,
    /// Consecutive frames disagreeing with `inside`.
    streak: u32,
    /// Time of the first frame of the current streak.
    streak_start_ns: u64,
    /// First frame inside (dwell start) once entered.
    entered_ns: u64,
    /// Last frame seen inside.
    last_inside_ns: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TrackAnalytics {
    class_id: u32,
    zones: Vec<ZoneState>,
    /// Per line: last anchor seen strictly off the line (a point on the line does not count
    /// as a side, so touching the line and stepping back is not a crossing).
    line_anchor: Vec<Option<Point>>,
}

impl TrackAnalytics {
    /// The `left` events of track `id` at `timestamp_ns`, for each zone (named by `names`, in
    /// configuration order) it is inside: what ending it gives.
    fn leave_zones<'a>(&self, id: u64, names: impl Iterator<Item = &'a str>, timestamp_ns: u64, events: &mut Vec<AnalyticsEvent>) {
        for (name, zs) in names.zip(&self.zones) {
            if zs.inside {
                events.push(AnalyticsEvent {
                    kind: EventKind::Left,
                    track_id: id,
                    class_id: self.class_id,
                    class_name: coco::class_name(self.class_id).to_owned(),
                    region: name.to_owned(),
                    direction: None,
                    timestamp_ns,
                    dwell_ms: Some(dwell_ms(zs)),
                });
            }
        }
    }
}

/// Everything an [`Analytics`] carries from frame to frame except its configuration: per track
/// its class, per zone whether it is inside, the current in/out streak, dwell start and last
/// frame inside, per line the last anchor seen off the line; and the crossing totals.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnalyticsState {
    tracks: BTreeMap<u64, TrackAnalytics>,
    counts: Vec<LineCount>,
    /// The zones' names in configuration order (absent in states from before they were
    /// kept): what a state replaced without its configuration closes its zones with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    zones: Vec<String>,
}

impl AnalyticsState {
    /// Number of tracks with zone or line state.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// True when no track has zone or line state.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// The `left` events of every track inside a zone, stamped `timestamp_ns`, in track order:
    /// what ending all tracks gives, without the configuration (zones whose name the state
    /// does not hold are skipped).
    #[must_use]
    pub fn closing_events(&self, timestamp_ns: u64) -> Vec<AnalyticsEvent> {
        let mut events = Vec::new();
        for (id, st) in &self.tracks {
            st.leave_zones(*id, self.zones.iter().map(String::as_str), timestamp_ns, &mut events);
        }
        events
    }
}

/// Stateful analytics for one stream.
#[derive(Debug, Clone)]
pub struct Analytics {
    cfg: AnalyticsConfig,
    tracks: BTreeMap<u64, TrackAnalytics>,
    counts: Vec<LineCount>,
}

impl Analytics {
    /// Builds the analytics for `cfg`.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`].
    pub fn new(cfg: AnalyticsConfig) -> Result<Self> {
        cfg.validate()?;
        let counts = vec![LineCount::default(); cfg.lines.len()];
        Ok(Self {
            cfg,
            tracks: BTreeMap::new(),
            counts,
        })
    }

    /// True when a track is inside a zone: ending the tracks would give `left` events.
    #[must_use]
    pub fn occupied(&self) -> bool {
        self.tracks.values().any(|t| t.zones.iter().any(|z| z.inside))
    }

    /// Analytics for `cfg` that continue exactly from `state`.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`] for `cfg`; [`VisionError::State`] when the state does not
    /// have one slot per zone and line of `cfg`.
    pub fn from_state(cfg: AnalyticsConfig, state: AnalyticsState) -> Result<Self> {
        cfg.validate()?;
        let (zones, lines) = (cfg.zones.len(), cfg.lines.len());
        if state.counts.len() != lines {
            return Err(StateError::Inconsistent(format!(
                "{} line counts for {lines} lines",
                state.counts.len()
            ))
            .into());
        }
        if let Some((id, _)) = state
            .tracks
            .iter()
            .find(|(_, t)| t.zones.len() != zones || t.line_anchor.len() != lines)
        {
            return Err(StateError::Inconsistent(format!(
                "track {id} does not have {zones} zone and {lines} line slots"
            ))
            .into());
        }
        Ok(Self {
            cfg,
            tracks: state.tracks,
            counts: state.counts,
        })
    }

    /// A copy of the analytics state (everything but the configuration).
    #[must_use]
    pub fn state(&self) -> AnalyticsState {
        AnalyticsState {
            tracks: self.tracks.clone(),
            counts: self.counts.clone(),
            zones: self.cfg.zones.iter().map(|z| z.name.clone()).collect(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &AnalyticsConfig {
        &self.cfg
    }

    /// Crossing totals per line, in configuration order.
    #[must_use]
    pub fn line_counts(&self) -> Vec<(String, LineCount)> {
        self.cfg
            .lines
            .iter()
            .map(|l| l.name.clone())
            .zip(self.counts.iter().copied())
            .collect()
    }

    /// Processes the tracks observed in one frame at `timestamp_ns`, and the ids of tracks the
    /// tracker removed (they leave their zones). Returns the events in a deterministic order.
    pub fn update(
        &mut self,
        timestamp_ns: u64,
        tracks: &[Track],
        removed: &[u64],
    ) -> Vec<AnalyticsEvent> {
        let mut events = Vec::new();
        let min_frames = self.cfg.min_frames_in_zone.max(1);
        for t in tracks {
            let (x, y) = t.bbox.bottom_center();
            let anchor = Point::new(x, y);
            let st = self
                .tracks
                .entry(t.track_id)
                .or_insert_with(|| TrackAnalytics {
                    class_id: t.class_id,
                    zones: vec![ZoneState::default(); self.cfg.zones.len()],
                    line_anchor: vec![None; self.cfg.lines.len()],
                });
            st.class_id = t.class_id;
            let event = |kind, region: &str, direction, dwell_ms| AnalyticsEvent {
                kind,
                track_id: t.track_id,
                class_id: t.class_id,
                class_name: coco::class_name(t.class_id).to_owned(),
                region: region.to_owned(),
                direction,
                timestamp_ns,
                dwell_ms,
            };
            for (zone, zs) in self.cfg.zones.iter().zip(st.zones.iter_mut()) {
                let now_inside = zone.contains(anchor);
                if now_inside {
                    zs.last_inside_ns = timestamp_ns;
                }
                if now_inside == zs.inside {
                    zs.streak = 0;
                    continue;
                }
                if zs.streak == 0 {
                    zs.streak_start_ns = timestamp_ns;
                }
                zs.streak += 1;
                if zs.streak >= min_frames {
                    zs.streak = 0;
                    zs.inside = now_inside;
                    if now_inside {
                        zs.entered_ns = zs.streak_start_ns;
                        events.push(event(EventKind::Entered, &zone.name, None, None));
                    } else {
                        let dwell = dwell_ms(zs);
                        events.push(event(EventKind::Left, &zone.name, None, Some(dwell)));
                    }
                }
            }
            for ((line, count), last) in self
                .cfg
                .lines
                .iter()
                .zip(self.counts.iter_mut())
                .zip(st.line_anchor.iter_mut())
            {
                let side = line.side(anchor);
                // within the band around the line a point is on neither side: box jitter of a
                // person standing on the line neither crosses it nor moves the reference point
                if side.abs() < LINE_HYSTERESIS_PX * line.length() {
                    continue;
                }
                if let Some(prev) = *last
                    && line.segment_crosses(prev, anchor)
                {
                    let dir = if side < 0.0 {
                        Direction::Forward
                    } else {
                        Direction::Backward
                    };
                    match dir {
                        Direction::Forward => count.forward += 1,
                        Direction::Backward => count.backward += 1,
                    }
                    events.push(event(EventKind::Crossed, &line.name, Some(dir), None));
                }
                *last = Some(anchor);
            }
        }
        for id in removed {
            let Some(st) = self.tracks.remove(id) else {
                continue;
            };
            st.leave_zones(*id, self.cfg.zones.iter().map(|z| z.name.as_str()), timestamp_ns, &mut events);
        }
        events
    }
}

fn dwell_ms(zs: &ZoneState) -> u64 {
    zs.last_inside_ns.saturating_sub(zs.entered_ns) / 1_000_000
}
