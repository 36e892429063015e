//! The 15-state model robot_localization uses, its kinematic transfer function and Jacobian.
//!
//! State order: `x y z roll pitch yaw vx vy vz vroll vpitch vyaw ax ay az`. Position and
//! orientation are in the world frame; velocities and accelerations in the body frame.

use nalgebra::{Matrix3, Rotation3, SMatrix, SVector, Vector3};
use serde::{Deserialize, Serialize};

/// State dimension.
pub const STATE_SIZE: usize = 15;
/// Index of x.
pub const X: usize = 0;
/// Index of y.
pub const Y: usize = 1;
/// Index of z.
pub const Z: usize = 2;
/// Index of roll.
pub const ROLL: usize = 3;
/// Index of pitch.
pub const PITCH: usize = 4;
/// Index of yaw.
pub const YAW: usize = 5;
/// Index of body-frame vx.
pub const VX: usize = 6;
/// Index of body-frame vy.
pub const VY: usize = 7;
/// Index of body-frame vz.
pub const VZ: usize = 8;
/// Index of roll rate.
pub const VROLL: usize = 9;
/// Index of pitch rate.
pub const VPITCH: usize = 10;
/// Index of yaw rate.
pub const VYAW: usize = 11;
/// Index of body-frame ax.
pub const AX: usize = 12;
/// Index of body-frame ay.
pub const AY: usize = 13;
/// Index of body-frame az.
pub const AZ: usize = 14;

/// Names of the 15 fields, in state order (used by configs and CSV headers).
pub const FIELD_NAMES: [&str; STATE_SIZE] = [
    "x", "y", "z", "roll", "pitch", "yaw", "vx", "vy", "vz", "vroll", "vpitch", "vyaw", "ax", "ay",
    "az",
];

/// Indices zeroed in 2D mode (z, roll, pitch, vz, vroll, vpitch, az).
pub const OUT_OF_PLANE: [usize; 7] = [Z, ROLL, PITCH, VZ, VROLL, VPITCH, AZ];

/// State vector.
pub type StateVector = SVector<f64, STATE_SIZE>;
/// State covariance / process noise.
pub type StateMatrix = SMatrix<f64, STATE_SIZE, STATE_SIZE>;

/// Which of the 15 fields a sensor fuses.
pub type Mask = [bool; STATE_SIZE];

/// A 6-DoF pose in the world frame (metres, radians).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Pose {
    /// x (m)
    pub x: f64,
    /// y (m)
    pub y: f64,
    /// z (m)
    pub z: f64,
    /// roll (rad)
    pub roll: f64,
    /// pitch (rad)
    pub pitch: f64,
    /// yaw (rad)
    pub yaw: f64,
}

impl Pose {
    /// Pose part of a state vector.
    #[must_use]
    pub fn from_state(x: &StateVector) -> Self {
        Self { x: x[X], y: x[Y], z: x[Z], roll: x[ROLL], pitch: x[PITCH], yaw: x[YAW] }
    }

    /// Euclidean distance between the positions of two poses.
    #[must_use]
    pub fn distance(&self, other: &Pose) -> f64 {
        ((self.x - other.x).powi(2) + (self.y - other.y).powi(2) + (self.z - other.z).powi(2)).sqrt()
    }
}

/// Wraps an angle to (-pi, pi].
#[must_use]
pub fn wrap_angle(a: f64) -> f64 {
    if !a.is_finite() {
        return a;
    }
    let two_pi = std::f64::consts::TAU;
    let mut r = (a + std::f64::consts::PI).rem_euclid(two_pi) - std::f64::consts::PI;
    if r <= -std::f64::consts::PI {
        r += two_pi;
    }
    r
}

/// Wraps roll, pitch and yaw of a state vector.
pub fn wrap_state_angles(x: &mut StateVector) {
    for i in [ROLL, PITCH, YAW] {
        x[i] = wrap_angle(x[i]);
    }
}

/// Rotation body → world for roll/pitch/yaw (R = Rz(yaw) Ry(pitch) Rx(roll)).
#[must_use]
pub fn rotation_rpy(roll: f64, pitch: f64, yaw: f64) -> Matrix3<f64> {
    *Rotation3::from_euler_angles(roll, pitch, yaw).matrix()
}

/// Roll, pitch, yaw of a rotation matrix (ZYX convention).
#[must_use]
pub fn rpy_of(r: &Matrix3<f64>) -> (f64, f64, f64) {
    let rot = Rotation3::from_matrix_unchecked(*r);
    rot.euler_angles()
}

fn rx(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c)
}
fn ry(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c)
}
fn rz(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
}
fn drx(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(0.0, 0.0, 0.0, 0.0, -s, -c, 0.0, c, -s)
}
fn dry(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(-s, 0.0, c, 0.0, 0.0, 0.0, -c, 0.0, -s)
}
fn drz(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    Matrix3::new(-s, -c, 0.0, c, -s, 0.0, 0.0, 0.0, 0.0)
}

/// Matrix mapping body angular rates to Euler-angle rates.
fn euler_rate_matrix(roll: f64, pitch: f64) -> Matrix3<f64> {
    let (sr, cr) = roll.sin_cos();
    let cp = pitch.cos();
    let cpi = if cp.abs() < 1e-9 { 1e9_f64.copysign(cp) } else { 1.0 / cp };
    let tp = pitch.sin() * cpi;
    Matrix3::new(1.0, sr * tp, cr * tp, 0.0, cr, -sr, 0.0, sr * cpi, cr * cpi)
}

/// Omnidirectional constant-acceleration kinematics over `dt` seconds
/// (robot_localization's transfer function): returns the predicted state.
#[must_use]
pub fn transition(x: &StateVector, dt: f64) -> StateVector {
    let mut out = *x;
    let r = rotation_rpy(x[ROLL], x[PITCH], x[YAW]);
    let v = Vector3::new(x[VX], x[VY], x[VZ]);
    let a = Vector3::new(x[AX], x[AY], x[AZ]);
    let w = Vector3::new(x[VROLL], x[VPITCH], x[VYAW]);
    let dp = r * (v * dt + a * (0.5 * dt * dt));
    let da = euler_rate_matrix(x[ROLL], x[PITCH]) * w * dt;
    for k in 0..3 {
        out[X + k] += dp[k];
        out[ROLL + k] += da[k];
        out[VX + k] += a[k] * dt;
    }
    wrap_state_angles(&mut out);
    out
}

/// Jacobian of [`transition`] with respect to the state.
#[must_use]
pub fn transition_jacobian(x: &StateVector, dt: f64) -> StateMatrix {
    let (roll, pitch, yaw) = (x[ROLL], x[PITCH], x[YAW]);
    let (rzm, rym, rxm) = (rz(yaw), ry(pitch), rx(roll));
    let r = rzm * rym * rxm;
    let v = Vector3::new(x[VX], x[VY], x[VZ]);
    let a = Vector3::new(x[AX], x[AY], x[AZ]);
    let w = Vector3::new(x[VROLL], x[VPITCH], x[VYAW]);
    let half_dt2 = 0.5 * dt * dt;
    let u = v * dt + a * half_dt2;
    let e = euler_rate_matrix(roll, pitch);

    let mut j = StateMatrix::identity();
    for row in 0..3 {
        for col in 0..3 {
            j[(X + row, VX + col)] = r[(row, col)] * dt;
            j[(X + row, AX + col)] = r[(row, col)] * half_dt2;
            j[(ROLL + row, VROLL + col)] = e[(row, col)] * dt;
        }
        j[(VX + row, AX + row)] = dt;
    }
    // position w.r.t. orientation
    let d_roll = rzm * rym * drx(roll) * u;
    let d_pitch = rzm * dry(pitch) * rxm * u;
    let d_yaw = drz(yaw) * rym * rxm * u;
    for row in 0..3 {
        j[(X + row, ROLL)] = d_roll[row];
        j[(X + row, PITCH)] = d_pitch[row];
        j[(X + row, YAW)] = d_yaw[row];
    }
    // orientation w.r.t. roll and pitch (Euler-rate matrix derivatives)
    let (sr, cr) = roll.sin_cos();
    let cp = pitch.cos();
    if cp.abs() > 1e-9 {
        let tp = pitch.tan();
        let sec = 1.0 / cp;
        let de_dr = Matrix3::new(0.0, cr * tp, -sr * tp, 0.0, -sr, -cr, 0.0, cr * sec, -sr * sec);
        let de_dp =
            Matrix3::new(0.0, sr * sec * sec, cr * sec * sec, 0.0, 0.0, 0.0, 0.0, sr * tp * sec, cr * tp * sec);
        let g_r = de_dr * w * dt;
        let g_p = de_dp * w * dt;
        for row in 0..3 {
            j[(ROLL + row, ROLL)] += g_r[row];
            j[(ROLL + row, PITCH)] += g_p[row];
        }
    }
    j
}

/// Forces a matrix to be exactly symmetric: (P + Pᵀ)/2.
pub fn symmetrize(p: &mut StateMatrix) {
    let t = p.transpose();
    *p = (*p + t) * 0.5;
}

/// Zeroes the out-of-plane terms of a state and its covariance (2D mode).
pub fn zero_out_of_plane(x: &mut StateVector, p: &mut StateMatrix) {
    for &i in &OUT_OF_PLANE {
        x[i] = 0.0;
        for k in 0..STATE_SIZE {
            p[(i, k)] = 0.0;
            p[(k, i)] = 0.0;
        }
        p[(i, i)] = 1e-9;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_angle_range() {
        assert!((wrap_angle(3.0 * std::f64::consts::PI) - std::f64::consts::PI).abs() < 1e-12);
        assert!((wrap_angle(-0.5) + 0.5).abs() < 1e-12);
        assert!((wrap_angle(7.0) - (7.0 - std::f64::consts::TAU)).abs() < 1e-12);
    }

    #[test]
    fn rotation_matches_nalgebra_and_back() {
        let r = rotation_rpy(0.1, -0.2, 2.0);
        let manual = rz(2.0) * ry(-0.2) * rx(0.1);
        assert!((r - manual).norm() < 1e-12);
        let (a, b, c) = rpy_of(&r);
        assert!((a - 0.1).abs() < 1e-12 && (b + 0.2).abs() < 1e-12 && (c - 2.0).abs() < 1e-12);
    }

    #[test]
    fn transition_moves_along_heading() {
        let mut x = StateVector::zeros();
        x[YAW] = std::f64::consts::FRAC_PI_2;
        x[VX] = 2.0;
        x[AX] = 1.0;
        let y = transition(&x, 0.5);
        assert!(y[X].abs() < 1e-12);
        assert!((y[Y] - (2.0 * 0.5 + 0.5 * 0.25)).abs() < 1e-12);
        assert!((y[VX] - 2.5).abs() < 1e-12);
    }

    #[test]
    fn jacobian_matches_finite_differences() {
        let mut x = StateVector::zeros();
        for (i, v) in [0.3, -1.0, 0.2, 0.1, -0.2, 0.7, 1.2, 0.3, -0.1, 0.05, -0.1, 0.3, 0.4, -0.2, 0.1]
            .iter()
            .enumerate()
        {
            x[i] = *v;
        }
        let dt = 0.05;
        let j = transition_jacobian(&x, dt);
        let h = 1e-6;
        for c in 0..STATE_SIZE {
            let mut xp = x;
            let mut xm = x;
            xp[c] += h;
            xm[c] -= h;
            let d = (transition(&xp, dt) - transition(&xm, dt)) / (2.0 * h);
            for r in 0..STATE_SIZE {
                assert!((d[r] - j[(r, c)]).abs() < 1e-6, "J[{r},{c}] {} vs {}", j[(r, c)], d[r]);
            }
        }
    }
}
