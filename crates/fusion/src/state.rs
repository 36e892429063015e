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

/// Sines and cosines of roll, pitch and yaw, computed once per step and shared by the
/// transition and its Jacobian (`sin_cos` is deterministic, so sharing changes no bit).
#[derive(Debug, Clone, Copy)]
struct Trig {
    sr: f64,
    cr: f64,
    sp: f64,
    cp: f64,
    sy: f64,
    cy: f64,
}

impl Trig {
    fn of(x: &StateVector) -> Self {
        let (sr, cr) = x[ROLL].sin_cos();
        let (sp, cp) = x[PITCH].sin_cos();
        let (sy, cy) = x[YAW].sin_cos();
        Self { sr, cr, sp, cp, sy, cy }
    }

    /// Same matrix (same expression, same rounding) as [`rotation_rpy`].
    fn rotation(&self) -> Matrix3<f64> {
        let Self { sr, cr, sp, cp, sy, cy } = *self;
        Matrix3::new(
            cy * cp,
            cy * sp * sr - sy * cr,
            cy * sp * cr + sy * sr,
            sy * cp,
            sy * sp * sr + cy * cr,
            sy * sp * cr - cy * sr,
            -sp,
            cp * sr,
            cp * cr,
        )
    }
}

#[cfg(test)]
fn rx(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    rx_sc(s, c)
}
#[cfg(test)]
fn ry(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    ry_sc(s, c)
}
#[cfg(test)]
fn rz(a: f64) -> Matrix3<f64> {
    let (s, c) = a.sin_cos();
    rz_sc(s, c)
}
fn rx_sc(s: f64, c: f64) -> Matrix3<f64> {
    Matrix3::new(1.0, 0.0, 0.0, 0.0, c, -s, 0.0, s, c)
}
fn ry_sc(s: f64, c: f64) -> Matrix3<f64> {
    Matrix3::new(c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c)
}
fn rz_sc(s: f64, c: f64) -> Matrix3<f64> {
    Matrix3::new(c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
}
fn drx_sc(s: f64, c: f64) -> Matrix3<f64> {
    Matrix3::new(0.0, 0.0, 0.0, 0.0, -s, -c, 0.0, c, -s)
}
fn dry_sc(s: f64, c: f64) -> Matrix3<f64> {
    Matrix3::new(-s, 0.0, c, 0.0, 0.0, 0.0, -c, 0.0, -s)
}
fn drz_sc(s: f64, c: f64) -> Matrix3<f64> {
    Matrix3::new(-s, -c, 0.0, c, -s, 0.0, 0.0, 0.0, 0.0)
}

/// Matrix mapping body angular rates to Euler-angle rates.
fn euler_rate_matrix(t: &Trig) -> Matrix3<f64> {
    let (sr, cr) = (t.sr, t.cr);
    let cp = t.cp;
    let cpi = if cp.abs() < 1e-9 { 1e9_f64.copysign(cp) } else { 1.0 / cp };
    let tp = t.sp * cpi;
    Matrix3::new(1.0, sr * tp, cr * tp, 0.0, cr, -sr, 0.0, sr * cpi, cr * cpi)
}

/// Omnidirectional constant-acceleration kinematics over `dt` seconds
/// (robot_localization's transfer function): returns the predicted state.
#[must_use]
pub fn transition(x: &StateVector, dt: f64) -> StateVector {
    transition_trig(x, dt, &Trig::of(x))
}

fn transition_trig(x: &StateVector, dt: f64, t: &Trig) -> StateVector {
    let mut out = *x;
    let r = t.rotation();
    let v = Vector3::new(x[VX], x[VY], x[VZ]);
    let a = Vector3::new(x[AX], x[AY], x[AZ]);
    let w = Vector3::new(x[VROLL], x[VPITCH], x[VYAW]);
    let dp = r * (v * dt + a * (0.5 * dt * dt));
    let da = euler_rate_matrix(t) * w * dt;
    for k in 0..3 {
        out[X + k] += dp[k];
        out[ROLL + k] += da[k];
        out[VX + k] += a[k] * dt;
    }
    wrap_state_angles(&mut out);
    out
}

/// The entries of the transition Jacobian that can differ from the identity, in their fixed
/// sparsity pattern (robot_localization's model has at most 45 of them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JacobianTerms {
    /// Row `X + k`: ∂/∂ roll, pitch, yaw, vx, vy, vz, ax, ay, az (columns [`POS_COLS`]).
    pub pos: [[f64; 9]; 3],
    /// Row `ROLL + k`: Jacobian entries (identity included) at columns `ROLL`, `PITCH`, then
    /// ∂/∂ vroll, vpitch, vyaw (columns [`ORI_COLS`]).
    pub ori: [[f64; 5]; 3],
    /// Row `VX + k`, column `AX + k`.
    pub dt: f64,
}

/// Columns of [`JacobianTerms::pos`], increasing.
pub(crate) const POS_COLS: [usize; 9] = [ROLL, PITCH, YAW, VX, VY, VZ, AX, AY, AZ];
/// Columns of [`JacobianTerms::ori`], increasing.
pub(crate) const ORI_COLS: [usize; 5] = [ROLL, PITCH, VROLL, VPITCH, VYAW];

fn jacobian_terms(x: &StateVector, dt: f64, t: &Trig) -> JacobianTerms {
    let (rzm, rym, rxm) = (rz_sc(t.sy, t.cy), ry_sc(t.sp, t.cp), rx_sc(t.sr, t.cr));
    let r = rzm * rym * rxm;
    let v = Vector3::new(x[VX], x[VY], x[VZ]);
    let a = Vector3::new(x[AX], x[AY], x[AZ]);
    let w = Vector3::new(x[VROLL], x[VPITCH], x[VYAW]);
    let half_dt2 = 0.5 * dt * dt;
    let u = v * dt + a * half_dt2;
    let e = euler_rate_matrix(t);
    // position w.r.t. orientation
    let d_roll = rzm * rym * drx_sc(t.sr, t.cr) * u;
    let d_pitch = rzm * dry_sc(t.sp, t.cp) * rxm * u;
    let d_yaw = drz_sc(t.sy, t.cy) * rym * rxm * u;
    let mut terms = JacobianTerms { pos: [[0.0; 9]; 3], ori: [[0.0; 5]; 3], dt };
    for row in 0..3 {
        let pos = &mut terms.pos[row];
        pos[0] = d_roll[row];
        pos[1] = d_pitch[row];
        pos[2] = d_yaw[row];
        let ori = &mut terms.ori[row];
        ori[0] = if row == 0 { 1.0 } else { 0.0 };
        ori[1] = if row == 1 { 1.0 } else { 0.0 };
        for col in 0..3 {
            pos[3 + col] = r[(row, col)] * dt;
            pos[6 + col] = r[(row, col)] * half_dt2;
            ori[2 + col] = e[(row, col)] * dt;
        }
    }
    // orientation w.r.t. roll and pitch (Euler-rate matrix derivatives)
    let (sr, cr) = (t.sr, t.cr);
    let cp = t.cp;
    if cp.abs() > 1e-9 {
        let tp = x[PITCH].tan();
        let sec = 1.0 / cp;
        let de_dr = Matrix3::new(0.0, cr * tp, -sr * tp, 0.0, -sr, -cr, 0.0, cr * sec, -sr * sec);
        let de_dp =
            Matrix3::new(0.0, sr * sec * sec, cr * sec * sec, 0.0, 0.0, 0.0, 0.0, sr * tp * sec, cr * tp * sec);
        let g_r = de_dr * w * dt;
        let g_p = de_dp * w * dt;
        for row in 0..3 {
            terms.ori[row][0] += g_r[row];
            terms.ori[row][1] += g_p[row];
        }
    }
    terms
}

/// [`transition`] and the sparse part of its Jacobian at the same state, sharing the trigonometry.
pub(crate) fn transition_with_jacobian(x: &StateVector, dt: f64) -> (StateVector, JacobianTerms) {
    let t = Trig::of(x);
    (transition_trig(x, dt, &t), jacobian_terms(x, dt, &t))
}

/// Jacobian of [`transition`] with respect to the state.
#[must_use]
pub fn transition_jacobian(x: &StateVector, dt: f64) -> StateMatrix {
    let terms = jacobian_terms(x, dt, &Trig::of(x));
    let mut j = StateMatrix::identity();
    for row in 0..3 {
        for (&c, &v) in POS_COLS.iter().zip(&terms.pos[row]) {
            j[(X + row, c)] = v;
        }
        for (&c, &v) in ORI_COLS.iter().zip(&terms.ori[row]) {
            j[(ROLL + row, c)] = v;
        }
        j[(VX + row, AX + row)] = terms.dt;
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
    fn shared_trig_rotation_is_bit_identical_to_rotation_rpy() {
        let mut x = StateVector::zeros();
        for (r, p, y) in [(0.1, -0.2, 2.0), (-3.0, 1.4, -0.7), (0.0, 0.0, 0.0), (2.9, -1.55, 3.0)] {
            x[ROLL] = r;
            x[PITCH] = p;
            x[YAW] = y;
            assert_eq!(Trig::of(&x).rotation(), rotation_rpy(r, p, y));
        }
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
