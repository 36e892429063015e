//! Plausibility checks (F2MD legacy checks with VeReMi NextGen options), each yielding a
//! confidence in [0, 1]; below 0.5 is a failure.

use serde::Serialize;

use crate::config::Thresholds;
use crate::geo::{Xy, angle_diff_deg, heading_vector, vector_heading};
use crate::history::{Footprint, Track};

/// Check names, as reported in [`CheckResult::name`].
pub mod names {
    /// Sender–receiver distance.
    pub const RANGE: &str = "range_plausibility";
    /// New pseudonym close to the receiver.
    pub const SUDDEN_APPEARANCE: &str = "sudden_appearance";
    /// |v| below the maximum.
    pub const SPEED: &str = "speed_plausibility";
    /// Displacement below vmax * dt.
    pub const POSITION_CONSISTENCY: &str = "position_consistency";
    /// Speed change within acceleration limits.
    pub const SPEED_CONSISTENCY: &str = "speed_consistency";
    /// Displacement matches reported speeds.
    pub const POSITION_SPEED: &str = "position_speed_consistency";
    /// Displacement direction matches reported heading.
    pub const POSITION_HEADING: &str = "position_heading_consistency";
    /// Interval between beacons.
    pub const BEACON_FREQUENCY: &str = "beacon_frequency";
    /// Distance from a road.
    pub const MAP: &str = "map";
    /// Overlap with another vehicle.
    pub const INTERSECTION: &str = "intersection";
    /// Receive − generation delay.
    pub const FRESHNESS: &str = "freshness";
    /// 1609.2 signature and certificate chain.
    pub const SIGNATURE: &str = "signature";
    /// 1609.2 generation-time freshness.
    pub const SECURED_FRESHNESS: &str = "secured_freshness";
    /// 1609.2 replay.
    pub const REPLAY: &str = "replay";
    /// The signer's replay state could not be read, or its new mark not stored (the history
    /// store failed), with `replay_when_unreadable = "reject"`. It fails on the receiver's
    /// side, says nothing about the sender, and no misbehaviour report names it.
    pub const REPLAY_UNVERIFIED: &str = "replay_unverified";
    /// 1609.2 PSID permission / message type consistency.
    pub const PERMISSION: &str = "permission";
    /// The reported position inside the signing certificate's region.
    pub const CERT_REGION: &str = "certificate_region";
    /// What a CAM or DENM says (special vehicle containers, event cause) granted by the
    /// signing certificate's service specific permissions.
    pub const SERVICE_PERMISSIONS: &str = "service_permissions";
    /// All plausibility checks in report order.
    pub const PLAUSIBILITY: [&str; 11] = [
        RANGE,
        SUDDEN_APPEARANCE,
        SPEED,
        POSITION_CONSISTENCY,
        SPEED_CONSISTENCY,
        POSITION_SPEED,
        POSITION_HEADING,
        BEACON_FREQUENCY,
        MAP,
        INTERSECTION,
        FRESHNESS,
    ];
}

/// Result of one check (the WIT `check-result`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CheckResult {
    /// Check name (see [`names`]).
    pub name: &'static str,
    /// 1.0 = plausible, 0.0 = certainly implausible; below 0.5 is a failure.
    pub confidence: f32,
    /// Not applicable (reported with confidence 1.0).
    pub skipped: bool,
}

impl CheckResult {
    /// A check that ran.
    #[must_use]
    pub fn ran(name: &'static str, confidence: f64) -> Self {
        let c = if confidence.is_nan() {
            0.0
        } else {
            confidence.clamp(0.0, 1.0)
        };
        // f64 -> f32 for the WIT record; precision loss is irrelevant in [0, 1].
        #[allow(clippy::cast_possible_truncation)]
        let confidence = c as f32;
        Self {
            name,
            confidence,
            skipped: false,
        }
    }
    /// A check that did not apply.
    #[must_use]
    pub const fn skipped(name: &'static str) -> Self {
        Self {
            name,
            confidence: 1.0,
            skipped: true,
        }
    }
    /// True when the check ran and failed.
    #[must_use]
    pub fn failed(&self) -> bool {
        !self.skipped && self.confidence < 0.5
    }
}

/// Confidence that `v <= lim`: 1 well below, 0.5 at the limit, 0 well above; `soft` is the
/// half-width of the linear ramp (0 = a hard F2MD comparison).
#[must_use]
pub fn le(v: f64, lim: f64, soft: f64) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    if soft <= 0.0 {
        return if v <= lim { 1.0 } else { 0.0 };
    }
    (0.5 + (lim - v) / (2.0 * soft)).clamp(0.0, 1.0)
}

/// Confidence that `v >= lim` (see [`le`]).
#[must_use]
pub fn ge(v: f64, lim: f64, soft: f64) -> f64 {
    le(-v, -lim, soft)
}

/// The kinematic state of a beacon as the checks see it (local frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kinematics {
    /// Generation time, s.
    pub t_gen: f64,
    /// Receive time, s.
    pub t_rcv: f64,
    /// Position.
    pub pos: Xy,
    /// Position uncertainty, m.
    pub pos_noise: f64,
    /// Speed, m/s.
    pub speed: Option<f64>,
    /// Speed uncertainty, m/s.
    pub speed_noise: f64,
    /// Heading, degrees.
    pub heading: Option<f64>,
    /// Heading uncertainty, degrees.
    pub heading_noise: f64,
    /// Length, m.
    pub length: f64,
    /// Width, m.
    pub width: f64,
}

/// Stateless implementation of the checks over thresholds.
#[derive(Debug, Clone, Copy)]
pub struct Checks<'a> {
    /// Thresholds in use.
    pub t: &'a Thresholds,
}

impl Checks<'_> {
    fn soft(&self, reported: f64) -> f64 {
        self.t.uncertainty_factor * reported + self.t.min_soft
    }

    /// Range plausibility.
    #[must_use]
    pub fn range(&self, cur: &Kinematics, receiver: Option<Xy>) -> CheckResult {
        match receiver {
            Some(r) => CheckResult::ran(
                names::RANGE,
                le(
                    cur.pos.dist(r),
                    self.t.max_range_m,
                    self.soft(cur.pos_noise),
                ),
            ),
            None => CheckResult::skipped(names::RANGE),
        }
    }

    /// Sudden appearance: a new (or long unheard) pseudonym close to the receiver.
    #[must_use]
    pub fn sudden_appearance(
        &self,
        cur: &Kinematics,
        prev: Option<&Track>,
        receiver: Option<Xy>,
    ) -> CheckResult {
        let is_new = match (prev, self.t.sudden_appearance_window_s) {
            (None, _) => true,
            (Some(p), Some(w)) => cur.t_rcv - p.last_receive_s > w,
            (Some(_), None) => false,
        };
        match (is_new, receiver) {
            (true, Some(r)) => CheckResult::ran(
                names::SUDDEN_APPEARANCE,
                ge(
                    cur.pos.dist(r),
                    self.t.sudden_appearance_range_m,
                    self.soft(cur.pos_noise),
                ),
            ),
            _ => CheckResult::skipped(names::SUDDEN_APPEARANCE),
        }
    }

    /// Speed plausibility.
    #[must_use]
    pub fn speed(&self, cur: &Kinematics) -> CheckResult {
        match cur.speed {
            Some(v) => CheckResult::ran(
                names::SPEED,
                le(v.abs(), self.t.max_speed_mps, self.soft(cur.speed_noise)),
            ),
            None => CheckResult::skipped(names::SPEED),
        }
    }

    /// Position consistency: displacement below vmax * dt.
    #[must_use]
    pub fn position_consistency(&self, cur: &Kinematics, prev: &Track) -> CheckResult {
        let dt = (cur.t_gen - prev.last_generation_s).max(0.0);
        let d = cur.pos.dist(prev.pos);
        let lim = self.t.max_speed_mps * dt + self.t.position_consistency_slack_m;
        CheckResult::ran(
            names::POSITION_CONSISTENCY,
            le(d, lim, self.soft(2.0 * cur.pos_noise)),
        )
    }

    /// Speed consistency: speed change within accel / decel * dt.
    #[must_use]
    pub fn speed_consistency(&self, cur: &Kinematics, prev: &Track) -> CheckResult {
        let (Some(v1), Some(v0)) = (cur.speed, prev.speed_mps) else {
            return CheckResult::skipped(names::SPEED_CONSISTENCY);
        };
        let dt = (cur.t_gen - prev.last_generation_s).max(0.0);
        let dv = v1 - v0;
        let lim = if dv >= 0.0 {
            self.t.max_accel_mps2 * dt
        } else {
            self.t.max_decel_mps2 * dt
        };
        CheckResult::ran(
            names::SPEED_CONSISTENCY,
            le(dv.abs(), lim, self.soft(2.0 * cur.speed_noise)),
        )
    }

    /// Position–speed consistency: the displacement matches the mean reported speed.
    #[must_use]
    pub fn position_speed(&self, cur: &Kinematics, prev: &Track) -> CheckResult {
        let dt = cur.t_gen - prev.last_generation_s;
        let (Some(v1), Some(v0)) = (cur.speed, prev.speed_mps) else {
            return CheckResult::skipped(names::POSITION_SPEED);
        };
        if !(dt > 0.0 && dt < self.t.position_speed_max_dt_s) {
            return CheckResult::skipped(names::POSITION_SPEED);
        }
        let d = cur.pos.dist(prev.pos);
        let expected = 0.5 * (v0 + v1) * dt;
        // The trapezoid is exact under constant acceleration; the tolerance covers the rest.
        let lim = self.t.position_speed_tolerance_m;
        let soft = self.soft(2.0 * cur.pos_noise + 2.0 * cur.speed_noise * dt);
        CheckResult::ran(names::POSITION_SPEED, le((d - expected).abs(), lim, soft))
    }

    /// Position–heading consistency: the displacement direction matches the reported heading.
    #[must_use]
    pub fn position_heading(&self, cur: &Kinematics, prev: &Track) -> CheckResult {
        let dt = cur.t_gen - prev.last_generation_s;
        let Some(h) = cur.heading else {
            return CheckResult::skipped(names::POSITION_HEADING);
        };
        let d = cur.pos.dist(prev.pos);
        let v = cur.speed.unwrap_or(0.0);
        if !(dt > 0.0 && dt < self.t.position_heading_max_dt_s)
            || d < self.t.position_heading_min_dist_m
            || v < self.t.position_heading_min_speed_mps
        {
            return CheckResult::skipped(names::POSITION_HEADING);
        }
        let angle = angle_diff_deg(vector_heading(cur.pos.sub(prev.pos)), h);
        let pos_angle = (2.0 * cur.pos_noise / d).min(1.0).atan().to_degrees();
        let soft = self.soft(cur.heading_noise + pos_angle);
        CheckResult::ran(
            names::POSITION_HEADING,
            le(angle, self.t.max_heading_angle_deg, soft),
        )
    }

    /// Beacon frequency: interval between beacons of one pseudonym.
    #[must_use]
    pub fn beacon_frequency(&self, cur: &Kinematics, prev: &Track) -> CheckResult {
        let dt = cur.t_gen - prev.last_generation_s;
        CheckResult::ran(
            names::BEACON_FREQUENCY,
            ge(dt, self.t.min_beacon_interval_s, 0.0),
        )
    }

    /// Map: distance from the nearest road.
    #[must_use]
    pub fn map(&self, cur: &Kinematics, road_distance: Option<f64>) -> CheckResult {
        match road_distance {
            Some(d) => CheckResult::ran(
                names::MAP,
                le(d, self.t.max_road_distance_m, self.soft(cur.pos_noise)),
            ),
            None => CheckResult::skipped(names::MAP),
        }
    }

    /// Intersection: the largest overlap factor with another recently heard vehicle.
    #[must_use]
    pub fn intersection(
        &self,
        cur: &Kinematics,
        pseudonym: u64,
        others: &[Footprint],
        searched: bool,
    ) -> CheckResult {
        if !searched {
            return CheckResult::skipped(names::INTERSECTION);
        }
        let mut worst: Option<f64> = None;
        for o in others {
            if o.pseudonym == pseudonym {
                continue;
            }
            let dt = (cur.t_gen - o.generation_s).abs();
            if dt >= self.t.intersection_window_s {
                continue;
            }
            let reach = 0.5 * (cur.length.hypot(cur.width) + o.length_m.hypot(o.width_m));
            if cur.pos.dist(o.pos) > reach {
                worst = Some(worst.unwrap_or(0.0));
                continue;
            }
            let f = overlap_fraction(cur, o) * (1.0 - dt / self.t.intersection_window_s);
            worst = Some(worst.map_or(f, |w: f64| w.max(f)));
        }
        match worst {
            Some(f) => {
                let soft = self.t.max_intersection_factor * self.t.uncertainty_factor.min(1.0);
                CheckResult::ran(
                    names::INTERSECTION,
                    le(f, self.t.max_intersection_factor, soft),
                )
            }
            // no one close enough in the window: ran, nothing overlaps (the same whether a store
            // returned far vehicles too or only those around)
            None => CheckResult::ran(names::INTERSECTION, 1.0),
        }
    }

    /// Freshness: receive − generation delay within limits.
    #[must_use]
    pub fn freshness(&self, cur: &Kinematics) -> CheckResult {
        let delay = cur.t_rcv - cur.t_gen;
        if delay < 0.0 {
            return CheckResult::ran(names::FRESHNESS, le(-delay, self.t.max_future_s, 0.0));
        }
        CheckResult::ran(names::FRESHNESS, le(delay, self.t.max_delay_s, 0.0))
    }
}

/// Fraction of `a`'s rectangle inside `b`'s (sampled on a 7 x 3 grid).
fn overlap_fraction(a: &Kinematics, b: &Footprint) -> f64 {
    let ha = heading_vector(a.heading.unwrap_or(0.0));
    let na = Xy::new(ha.y, -ha.x);
    let hb = heading_vector(b.heading_deg.unwrap_or(0.0));
    let nb = Xy::new(hb.y, -hb.x);
    let mut inside = 0u32;
    let mut total = 0u32;
    for i in 0..7u8 {
        for j in 0..3u8 {
            let u = (f64::from(i) + 0.5) / 7.0 - 0.5;
            let w = (f64::from(j) + 0.5) / 3.0 - 0.5;
            let p = a.pos.add(ha.scale(u * a.length)).add(na.scale(w * a.width));
            let rel = p.sub(b.pos);
            if rel.dot(hb).abs() <= 0.5 * b.length_m && rel.dot(nb).abs() <= 0.5 * b.width_m {
                inside += 1;
            }
            total += 1;
        }
    }
    f64::from(inside) / f64::from(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(x: f64, y: f64, t: f64, v: f64, h: f64) -> Kinematics {
        Kinematics {
            t_gen: t,
            t_rcv: t,
            pos: Xy::new(x, y),
            pos_noise: 0.0,
            speed: Some(v),
            speed_noise: 0.0,
            heading: Some(h),
            heading_noise: 0.0,
            length: 4.5,
            width: 1.8,
        }
    }

    fn track(x: f64, y: f64, t: f64, v: f64, h: f64) -> Track {
        Track {
            pseudonym: 1,
            station_id: 1,
            last_generation_s: t,
            last_receive_s: t,
            pos: Xy::new(x, y),
            speed_mps: Some(v),
            heading_deg: Some(h),
            length_m: 4.5,
            width_m: 1.8,
            first_receive_s: t,
            count: 1,
        }
    }

    #[test]
    fn ramps() {
        assert!((le(1.0, 2.0, 0.0) - 1.0).abs() < 1e-12);
        assert!(le(3.0, 2.0, 0.0).abs() < 1e-12);
        assert!((le(2.0, 2.0, 1.0) - 0.5).abs() < 1e-12);
        assert!((le(2.5, 2.0, 1.0) - 0.25).abs() < 1e-12);
        assert!((ge(2.5, 2.0, 1.0) - 0.75).abs() < 1e-12);
        assert!(le(f64::NAN, 2.0, 1.0).abs() < 1e-12);
    }

    #[test]
    fn legacy_checks_on_values() {
        let t = Thresholds {
            uncertainty_factor: 0.0,
            ..Thresholds::default()
        };
        let c = Checks { t: &t };
        let recv = Some(Xy::new(0.0, 0.0));
        assert!(!c.range(&k(400.0, 0.0, 1.0, 10.0, 90.0), recv).failed());
        assert!(c.range(&k(420.0, 0.0, 1.0, 10.0, 90.0), recv).failed());
        assert!(
            c.sudden_appearance(&k(100.0, 0.0, 1.0, 10.0, 90.0), None, recv)
                .failed()
        );
        assert!(
            !c.sudden_appearance(&k(300.0, 0.0, 1.0, 10.0, 90.0), None, recv)
                .failed()
        );
        assert!(
            c.sudden_appearance(
                &k(100.0, 0.0, 1.0, 10.0, 90.0),
                Some(&track(90.0, 0.0, 0.0, 10.0, 90.0)),
                recv
            )
            .skipped
        );
        assert!(c.speed(&k(0.0, 0.0, 1.0, 70.0, 90.0)).failed());
        assert!(!c.speed(&k(0.0, 0.0, 1.0, 60.0, 90.0)).failed());

        let prev = track(0.0, 0.0, 0.0, 10.0, 90.0);
        // honest: 10 m east in 1 s at 10 m/s heading east
        let cur = k(10.0, 0.0, 1.0, 10.0, 90.0);
        for r in [
            c.position_consistency(&cur, &prev),
            c.speed_consistency(&cur, &prev),
            c.position_speed(&cur, &prev),
            c.position_heading(&cur, &prev),
            c.beacon_frequency(&cur, &prev),
        ] {
            assert!(!r.failed() && !r.skipped, "{r:?}");
        }
        // jump of 100 m in 1 s
        assert!(
            c.position_consistency(&k(100.0, 0.0, 1.0, 10.0, 90.0), &prev)
                .failed()
        );
        // speed 10 -> 20 in 1 s
        assert!(
            c.speed_consistency(&k(10.0, 0.0, 1.0, 20.0, 90.0), &prev)
                .failed()
        );
        // claims 0 m/s but moved 10 m
        assert!(
            c.position_speed(
                &k(10.0, 0.0, 1.0, 0.0, 90.0),
                &track(0.0, 0.0, 0.0, 0.0, 90.0)
            )
            .failed()
        );
        // heading west while moving east
        assert!(
            c.position_heading(&k(10.0, 0.0, 1.0, 10.0, 270.0), &prev)
                .failed()
        );
        // 0.25 s beacon interval
        assert!(
            c.beacon_frequency(&k(2.5, 0.0, 0.25, 10.0, 90.0), &prev)
                .failed()
        );
        // position-speed skipped for dt > 1.1 s
        assert!(
            c.position_speed(&k(20.0, 0.0, 2.0, 10.0, 90.0), &prev)
                .skipped
        );
    }

    #[test]
    fn intersection_and_freshness() {
        let t = Thresholds::default();
        let c = Checks { t: &t };
        let same = k(0.0, 0.0, 1.0, 10.0, 90.0);
        let other = Footprint::of(&Track {
            pseudonym: 2,
            ..track(0.2, 0.0, 1.0, 10.0, 90.0)
        });
        assert!(
            c.intersection(&same, 1, std::slice::from_ref(&other), true)
                .failed()
        );
        let apart = Footprint::of(&Track {
            pseudonym: 2,
            ..track(0.0, 3.5, 1.0, 10.0, 90.0)
        });
        let r = c.intersection(&same, 1, &[apart], true);
        assert!(!r.failed() && !r.skipped);
        // nobody around: ran and passed; no search possible: skipped
        let alone = c.intersection(&same, 1, &[], true);
        assert!(!alone.skipped && !alone.failed());
        assert!(c.intersection(&same, 1, &[], false).skipped);
        let mut late = k(0.0, 0.0, 1.0, 10.0, 90.0);
        late.t_rcv = 3.0;
        assert!(c.freshness(&late).failed());
    }
}
