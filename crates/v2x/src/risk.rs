//! Collision risk between the ego station and a remote one: closest approach and
//! time-to-collision under constant velocity (CV) or constant turn rate and velocity (CTRV).

use serde::{Deserialize, Serialize};

use crate::geo::{Xy, heading_vector};

/// Motion state of a station in the local frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MotionState {
    /// Position, m.
    pub pos: Xy,
    /// Speed, m/s.
    pub speed_mps: f64,
    /// Heading, degrees clockwise from north.
    pub heading_deg: f64,
    /// Yaw rate, degrees per second, counter-clockwise positive (ETSI convention).
    pub yaw_rate_dps: f64,
}

impl MotionState {
    /// State after `t` seconds under CTRV (CV when the yaw rate is ~0).
    #[must_use]
    pub fn propagate(&self, t: f64) -> Xy {
        // compass heading increases clockwise; ETSI yaw rate is counter-clockwise positive.
        let w = -self.yaw_rate_dps.to_radians();
        let h = self.heading_deg.to_radians();
        if w.abs() < 1e-6 {
            return self
                .pos
                .add(heading_vector(self.heading_deg).scale(self.speed_mps * t));
        }
        let r = self.speed_mps / w;
        // x = sin(h), y = cos(h) along the heading; integrate h(t) = h + w t.
        let dx = r * (h.cos() - (h + w * t).cos());
        let dy = r * ((h + w * t).sin() - h.sin());
        self.pos.add(Xy::new(dx, dy))
    }
    /// Velocity vector, m/s.
    #[must_use]
    pub fn velocity(&self) -> Xy {
        heading_vector(self.heading_deg).scale(self.speed_mps)
    }
}

/// Motion model for risk assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MotionModel {
    /// Constant velocity (closed form).
    #[default]
    Cv,
    /// Constant turn rate and velocity (sampled).
    Ctrv,
}

/// Risk level (the WIT `risk-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// No conflict in the horizon.
    None,
    /// A near pass or a distant collision course.
    Low,
    /// Collision course within `medium_ttc_s`.
    Medium,
    /// Collision course within `high_ttc_s`.
    High,
}

/// Risk thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskConfig {
    /// Distance at which two stations collide (sum of half sizes), m.
    pub collision_radius_m: f64,
    /// Prediction horizon, s.
    pub horizon_s: f64,
    /// TTC below this is high risk, s.
    pub high_ttc_s: f64,
    /// TTC below this is medium risk, s.
    pub medium_ttc_s: f64,
    /// A closest approach below this within the horizon is at least low risk, m.
    pub low_distance_m: f64,
    /// Sampling step for CTRV, s.
    pub step_s: f64,
    /// Model.
    pub model: MotionModel,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            collision_radius_m: 2.5,
            horizon_s: 10.0,
            high_ttc_s: 1.5,
            medium_ttc_s: 3.0,
            low_distance_m: 5.0,
            step_s: 0.05,
            model: MotionModel::Cv,
        }
    }
}

/// Risk of one ego/remote pair (the WIT `risk`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Risk {
    /// Time until the distance first drops below the collision radius, if it does in the horizon.
    pub time_to_collision_s: Option<f64>,
    /// Smallest distance within the horizon, m.
    pub closest_approach_m: f64,
    /// Time of the closest approach, s.
    pub closest_approach_time_s: f64,
    /// Level.
    pub level: RiskLevel,
}

/// Assesses the risk between `ego` and `remote`.
#[must_use]
pub fn assess(ego: &MotionState, remote: &MotionState, cfg: &RiskConfig) -> Risk {
    let (ttc, dmin, tmin) = match cfg.model {
        MotionModel::Cv => cv(ego, remote, cfg),
        MotionModel::Ctrv => sampled(ego, remote, cfg),
    };
    let level = match ttc {
        Some(t) if t <= cfg.high_ttc_s => RiskLevel::High,
        Some(t) if t <= cfg.medium_ttc_s => RiskLevel::Medium,
        Some(_) => RiskLevel::Low,
        None if dmin <= cfg.low_distance_m => RiskLevel::Low,
        None => RiskLevel::None,
    };
    Risk {
        time_to_collision_s: ttc,
        closest_approach_m: dmin,
        closest_approach_time_s: tmin,
        level,
    }
}

fn cv(ego: &MotionState, remote: &MotionState, cfg: &RiskConfig) -> (Option<f64>, f64, f64) {
    let r = remote.pos.sub(ego.pos);
    let v = remote.velocity().sub(ego.velocity());
    let vv = v.dot(v);
    let tmin = if vv < 1e-12 {
        0.0
    } else {
        (-r.dot(v) / vv).clamp(0.0, cfg.horizon_s)
    };
    let dmin = r.add(v.scale(tmin)).norm();
    let rad = cfg.collision_radius_m;
    let ttc = if r.norm() <= rad {
        Some(0.0)
    } else if vv < 1e-12 {
        None
    } else {
        // |r + v t|^2 = R^2  ->  vv t^2 + 2 r.v t + (r.r - R^2) = 0
        let b = r.dot(v);
        let c = r.dot(r) - rad * rad;
        let disc = b * b - vv * c;
        if disc < 0.0 {
            None
        } else {
            let t = (-b - disc.sqrt()) / vv;
            (t >= 0.0 && t <= cfg.horizon_s).then_some(t)
        }
    };
    (ttc, dmin, tmin)
}

fn sampled(ego: &MotionState, remote: &MotionState, cfg: &RiskConfig) -> (Option<f64>, f64, f64) {
    let step = if cfg.step_s > 0.0 { cfg.step_s } else { 0.05 };
    // Bounded loop: at most 100k samples.
    let n_f = (cfg.horizon_s / step).ceil().clamp(0.0, 100_000.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = n_f as u32;
    let mut ttc = None;
    let mut dmin = f64::INFINITY;
    let mut tmin = 0.0;
    for i in 0..=n {
        let t = (f64::from(i) * step).min(cfg.horizon_s);
        let d = remote.propagate(t).dist(ego.propagate(t));
        if d < dmin {
            dmin = d;
            tmin = t;
        }
        if ttc.is_none() && d <= cfg.collision_radius_m {
            ttc = Some(t);
        }
    }
    (ttc, dmin, tmin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(x: f64, y: f64, v: f64, h: f64, w: f64) -> MotionState {
        MotionState {
            pos: Xy::new(x, y),
            speed_mps: v,
            heading_deg: h,
            yaw_rate_dps: w,
        }
    }

    #[test]
    fn head_on_cv() {
        let cfg = RiskConfig::default();
        // 50 m apart closing at 20 m/s: contact at (50 - 2.5) / 20 = 2.375 s
        let r = assess(
            &st(0.0, 0.0, 10.0, 90.0, 0.0),
            &st(50.0, 0.0, 10.0, 270.0, 0.0),
            &cfg,
        );
        assert!((r.time_to_collision_s.unwrap_or(-1.0) - 2.375).abs() < 1e-9);
        assert!(r.closest_approach_m < 1e-9);
        assert_eq!(r.level, RiskLevel::Medium);
    }

    #[test]
    fn parallel_pass_is_low_or_none() {
        let cfg = RiskConfig::default();
        // same direction, 3.5 m lateral offset, remote 20 m ahead and slower
        let r = assess(
            &st(0.0, 0.0, 15.0, 0.0, 0.0),
            &st(3.5, 20.0, 10.0, 0.0, 0.0),
            &cfg,
        );
        assert!(r.time_to_collision_s.is_none());
        assert!((r.closest_approach_m - 3.5).abs() < 1e-9);
        assert!((r.closest_approach_time_s - 4.0).abs() < 1e-9);
        assert_eq!(r.level, RiskLevel::Low);
        let far = assess(
            &st(0.0, 0.0, 15.0, 0.0, 0.0),
            &st(50.0, 0.0, 15.0, 0.0, 0.0),
            &cfg,
        );
        assert_eq!(far.level, RiskLevel::None);
    }

    #[test]
    fn ctrv_turning_into_path() {
        // remote drives a quarter circle (radius 20 m, 10 m/s) that ends where ego is headed;
        // CV would predict a miss.
        let w = (10.0f64 / 20.0).to_degrees(); // rad/s -> deg/s, counter-clockwise
        let remote = st(20.0, 0.0, 10.0, 0.0, w);
        let p = remote.propagate(std::f64::consts::FRAC_PI_2 * 2.0);
        // after a quarter turn (pi/2 / 0.5 rad/s = pi s) it is at (0, 20) heading west
        assert!(
            (p.x - 0.0).abs() < 1e-6 && (p.y - 20.0).abs() < 1e-6,
            "{p:?}"
        );
        let ego = st(0.0, 20.0 - 0.0, 0.0, 0.0, 0.0);
        let ctrv = assess(
            &ego,
            &remote,
            &RiskConfig {
                model: MotionModel::Ctrv,
                ..RiskConfig::default()
            },
        );
        assert!(ctrv.time_to_collision_s.is_some());
        assert!(ctrv.closest_approach_m < 0.1);
        let cvr = assess(&ego, &remote, &RiskConfig::default());
        assert!(cvr.closest_approach_m > 10.0);
    }
}
