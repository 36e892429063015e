//! Kalman filters over the 15-state model: a shared [`StateEstimator`] trait, the
//! [`Ekf`] (Joseph-form update) and the [`Ukf`] (same model, sigma points).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::{FusionError, Result, ensure_finite};
use crate::state::{
    AX, JacobianTerms, Mask, ORI_COLS, PITCH, POS_COLS, ROLL, STATE_SIZE, StateMatrix, StateVector,
    VX, X, YAW, symmetrize, transition, transition_with_jacobian, wrap_angle, wrap_state_angles,
    zero_out_of_plane,
};

/// Smallest variance a measurement may carry (robot_localization clamps to the same value).
pub const MIN_VARIANCE: f64 = 1e-9;

/// A linear measurement of a subset of the 15 state fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// Measurement time (s).
    pub time: f64,
    /// State indices measured, strictly increasing.
    pub indices: Vec<usize>,
    /// Measured values, one per index.
    pub values: Vec<f64>,
    /// Covariance of the values (len × len).
    pub covariance: DMatrix<f64>,
    /// Squared-Mahalanobis gate; `None` disables gating.
    pub mahalanobis_threshold: Option<f64>,
}

impl Measurement {
    /// Builds a measurement from full 15-vectors and a mask of the fields to fuse.
    ///
    /// # Errors
    /// [`FusionError::Config`] if nothing is selected.
    pub fn from_full(
        time: f64,
        values: &StateVector,
        covariance: &StateMatrix,
        mask: &Mask,
        mahalanobis_threshold: Option<f64>,
    ) -> Result<Self> {
        let indices: Vec<usize> = (0..STATE_SIZE).filter(|&i| mask.get(i).copied().unwrap_or(false)).collect();
        if indices.is_empty() {
            return Err(FusionError::Config("measurement selects no state field".into()));
        }
        let n = indices.len();
        let vals = indices.iter().map(|&i| values[i]).collect();
        let cov = DMatrix::from_fn(n, n, |r, c| covariance[(indices[r], indices[c])]);
        Ok(Self { time, indices, values: vals, covariance: cov, mahalanobis_threshold })
    }

    fn validate(&self) -> Result<()> {
        let n = self.indices.len();
        if n == 0 || self.values.len() != n || self.covariance.nrows() != n || self.covariance.ncols() != n {
            return Err(FusionError::Config("measurement dimensions do not agree".into()));
        }
        if self.indices.iter().any(|&i| i >= STATE_SIZE) || self.indices.windows(2).any(|w| w[0] >= w[1]) {
            return Err(FusionError::Config("measurement indices must be increasing and < 15".into()));
        }
        ensure_finite([self.time].iter(), "measurement time")?;
        ensure_finite(self.values.iter(), "measurement value")?;
        ensure_finite_slice(self.covariance.as_slice(), "measurement covariance")?;
        Ok(())
    }

    /// Covariance prepared for use: symmetric, negative diagonals made positive, tiny ones
    /// clamped to [`MIN_VARIANCE`] (robot_localization's rules). Errors if the result is not PD.
    fn prepared_covariance(&self) -> Result<DMatrix<f64>> {
        let mut r = (&self.covariance + self.covariance.transpose()) * 0.5;
        for i in 0..r.nrows() {
            let d = r[(i, i)].abs();
            r[(i, i)] = d.max(MIN_VARIANCE);
        }
        if r.clone().cholesky().is_none() {
            return Err(FusionError::NotPositiveDefinite("measurement covariance"));
        }
        Ok(r)
    }
}

/// Outcome of one correction step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UpdateReport {
    /// Normalised innovation squared (= squared Mahalanobis distance of the innovation).
    pub nis: f64,
    /// Degrees of freedom (measurement dimension).
    pub dof: usize,
    /// Whether the update was applied (false: rejected by the gate).
    pub accepted: bool,
}

/// Filter settings shared by the EKF and the UKF.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterSettings {
    /// Process noise per second (Q; the prediction adds `Q·dt`).
    pub process_noise: StateMatrix,
    /// 2D mode: out-of-plane terms (z, roll, pitch and their rates, az) are kept at zero.
    pub two_d_mode: bool,
}

impl Default for FilterSettings {
    fn default() -> Self {
        Self { process_noise: StateMatrix::identity() * 0.01, two_d_mode: false }
    }
}

/// The interface both filters implement; the localizer, the CLI and the actor use only this.
pub trait StateEstimator {
    /// Current state.
    fn state(&self) -> &StateVector;
    /// Current covariance.
    fn covariance(&self) -> &StateMatrix;
    /// Replaces state and covariance.
    ///
    /// # Errors
    /// Non-finite values or a covariance that is not symmetric PD.
    fn set_state(&mut self, x: StateVector, p: StateMatrix) -> Result<()>;
    /// Propagates the state `dt` seconds through the kinematic model (`dt ≥ 0`).
    ///
    /// # Errors
    /// Negative or non-finite `dt`, or a covariance that stops being PD.
    fn predict(&mut self, dt: f64) -> Result<()>;
    /// Fuses one measurement. A gated measurement returns `Ok` with `accepted == false`.
    ///
    /// # Errors
    /// Non-finite values, inconsistent dimensions, non-PD covariances.
    fn correct(&mut self, m: &Measurement) -> Result<UpdateReport>;

    /// Normalised estimation error squared against a ground-truth state.
    ///
    /// # Errors
    /// Non-PD covariance.
    fn nees(&self, truth: &StateVector) -> Result<f64> {
        let mut e = truth - self.state();
        for i in [ROLL, ROLL + 1, YAW] {
            e[i] = wrap_angle(e[i]);
        }
        let chol = self
            .covariance()
            .cholesky()
            .ok_or(FusionError::NotPositiveDefinite("state covariance"))?;
        let sol = chol.solve(&e);
        Ok(e.dot(&sol))
    }
}

fn validate_state(x: &StateVector, p: &StateMatrix) -> Result<()> {
    ensure_finite(x.iter(), "state")?;
    ensure_finite(p.iter(), "state covariance")?;
    if (p - p.transpose()).abs().max() > 1e-9 * (1.0 + p.abs().max()) {
        return Err(FusionError::NotPositiveDefinite("state covariance (asymmetric)"));
    }
    if p.cholesky().is_none() {
        return Err(FusionError::NotPositiveDefinite("state covariance"));
    }
    Ok(())
}

fn check_dt(dt: f64) -> Result<()> {
    if !dt.is_finite() {
        return Err(FusionError::NonFinite("dt"));
    }
    if dt < 0.0 {
        return Err(FusionError::OutOfOrder { time: dt, last: 0.0 });
    }
    Ok(())
}

/// Extended Kalman filter, robot_localization style.
#[derive(Debug, Clone)]
pub struct Ekf {
    x: StateVector,
    p: StateMatrix,
    /// `p` is exactly symmetric (always after predict/correct; checked by `set_state`), so its
    /// columns are its rows and the hot paths can copy them contiguously.
    p_symmetric: bool,
    settings: FilterSettings,
}

impl Ekf {
    /// New filter at the zero state with covariance `initial_covariance`.
    ///
    /// # Errors
    /// Non-finite or non-PD settings.
    pub fn new(settings: FilterSettings, initial_covariance: StateMatrix) -> Result<Self> {
        ensure_finite(settings.process_noise.iter(), "process noise")?;
        let mut f = Self { x: StateVector::zeros(), p: StateMatrix::identity(), p_symmetric: true, settings };
        f.set_state(StateVector::zeros(), initial_covariance)?;
        Ok(f)
    }

    /// Settings in use.
    #[must_use]
    pub fn settings(&self) -> &FilterSettings {
        &self.settings
    }
}

impl StateEstimator for Ekf {
    fn state(&self) -> &StateVector {
        &self.x
    }
    fn covariance(&self) -> &StateMatrix {
        &self.p
    }
    fn set_state(&mut self, x: StateVector, p: StateMatrix) -> Result<()> {
        validate_state(&x, &p)?;
        self.x = x;
        self.p_symmetric = p == p.transpose();
        self.p = p;
        Ok(())
    }

    fn predict(&mut self, dt: f64) -> Result<()> {
        check_dt(dt)?;
        if dt == 0.0 {
            return Ok(());
        }
        let (mut x, jac) = transition_with_jacobian(&self.x, dt);
        let mut p = predicted_covariance(&jac, &self.p, self.p_symmetric, &self.settings.process_noise, dt);
        if self.settings.two_d_mode {
            zero_out_of_plane(&mut x, &mut p);
        }
        ensure_finite_slice(x.as_slice(), "predicted state")?;
        ensure_finite_slice(p.as_slice(), "predicted covariance")?;
        self.x = x;
        self.p = p;
        self.p_symmetric = true;
        Ok(())
    }

    fn correct(&mut self, m: &Measurement) -> Result<UpdateReport> {
        m.validate()?;
        let r = prepared_measurement_covariance(m)?;
        let mut y = [0.0; STATE_SIZE];
        for ((yk, &i), v) in y.iter_mut().zip(&m.indices).zip(&m.values) {
            let d = v - self.x[i];
            *yk = if (ROLL..=YAW).contains(&i) { wrap_angle(d) } else { d };
        }
        let n = m.indices.len();
        let up = match joseph_update(&self.p, self.p_symmetric, &m.indices, &r, &y, m.mahalanobis_threshold)? {
            JosephOutcome::Accepted(up) => up,
            // gated: the filter is left unchanged
            JosephOutcome::Gated { nis } => return Ok(UpdateReport { nis, dof: n, accepted: false }),
        };
        let mut x = self.x;
        for (xi, d) in x.iter_mut().zip(&up.dx) {
            *xi += d;
        }
        wrap_state_angles(&mut x);
        let mut p = up.p;
        if self.settings.two_d_mode {
            zero_out_of_plane(&mut x, &mut p);
        }
        ensure_finite_slice(x.as_slice(), "corrected state")?;
        ensure_finite_slice(p.as_slice(), "corrected covariance")?;
        self.x = x;
        self.p = p;
        self.p_symmetric = true;
        Ok(UpdateReport { nis: up.nis, dof: n, accepted: true })
    }
}

/// [`ensure_finite`] over a contiguous slice, without early exit so that the check vectorises
/// (nalgebra's element iterator costs several times the arithmetic it guards).
#[inline]
fn ensure_finite_slice(values: &[f64], what: &'static str) -> Result<()> {
    if values.iter().fold(false, |bad, v| bad | !v.is_finite()) {
        Err(FusionError::NonFinite(what))
    } else {
        Ok(())
    }
}

/// Row length of the stack work arrays: the 15 state columns padded to 16 so that row
/// operations split evenly into SIMD lanes (the padding column stays zero).
const LANES: usize = 16;
/// One padded row.
type Row = [f64; LANES];
/// Up to 15 padded rows (state × state, or measurement × state).
type Rows = [Row; STATE_SIZE];
/// A small square block (measurement × measurement, leading `n × n` used).
type Block = [[f64; STATE_SIZE]; STATE_SIZE];

/// `o += a · v` over a padded row (vectorises).
#[inline(always)]
fn axpy(o: &mut Row, a: f64, v: &Row) {
    for (o, v) in o.iter_mut().zip(v) {
        *o += a * v;
    }
}

/// `o *= a` over a padded row.
#[inline(always)]
fn scale(o: &mut Row, a: f64) {
    for o in o.iter_mut() {
        *o *= a;
    }
}

/// Measurement covariance prepared as robot_localization does (symmetric, |diag| clamped to
/// [`MIN_VARIANCE`]) in a stack block; errors if it is not PD.
fn prepared_measurement_covariance(m: &Measurement) -> Result<Block> {
    let n = m.indices.len();
    let mut r = [[0.0; STATE_SIZE]; STATE_SIZE];
    let mut diagonal = true;
    // column-major n × n (dimensions checked by `validate`): element (a, b) is c[a + b n]
    let c = m.covariance.as_slice();
    for (a, rrow) in r.iter_mut().enumerate().take(n) {
        for (b, rv) in rrow.iter_mut().enumerate().take(n) {
            let v = 0.5 * (c[a + b * n] + c[b + a * n]);
            *rv = if a == b { v.abs().max(MIN_VARIANCE) } else { v };
            diagonal &= a == b || v == 0.0;
        }
    }
    // a diagonal R has finite diagonal entries ≥ MIN_VARIANCE (validated finite), so it is PD
    // and the factorisation below would succeed: skip it
    if !diagonal && cholesky_in_place(&mut r.clone(), n).is_none() {
        return Err(FusionError::NotPositiveDefinite("measurement covariance"));
    }
    Ok(r)
}

/// Column `j` of a state matrix as a contiguous slice (nalgebra stores column-major); for a
/// symmetric matrix this is also row `j`.
#[inline(always)]
fn column(p: &StateMatrix, j: usize) -> &[f64] {
    let start = j * STATE_SIZE;
    p.as_slice().get(start..start + STATE_SIZE).unwrap_or(&[])
}

/// Element `(i, j)` of the symmetric part `(P + Pᵀ)/2` (equal to `P(i, j)` bit for bit when `P`
/// is symmetric, as it is after every predict and correct).
#[inline(always)]
fn sym_at(p: &StateMatrix, i: usize, j: usize) -> f64 {
    0.5 * (p[(i, j)] + p[(j, i)])
}

/// Result of an accepted [`joseph_update`].
#[derive(Debug, Clone, Copy)]
struct JosephUpdate {
    /// `K y` (not yet added to the state, angles not wrapped).
    dx: [f64; STATE_SIZE],
    /// Corrected covariance, exactly symmetric.
    p: StateMatrix,
    /// Normalised innovation squared.
    nis: f64,
}

/// What [`joseph_update`] decided.
// returned by value and consumed at once; boxing the big variant would put a heap allocation
// in the hot path
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy)]
enum JosephOutcome {
    /// Rejected by the Mahalanobis gate (NIS above the threshold).
    Gated { nis: f64 },
    /// Applied.
    Accepted(JosephUpdate),
}

/// Cholesky factor `L` of `S = H P Hᵀ + R` (a sub-block of `P`, since `H` selects state
/// fields; `hp` = `H P`).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn innovation_cholesky(hp: &Rows, idx: &[usize], r: &Block) -> Result<Block> {
    let n = idx.len().min(STATE_SIZE);
    let mut l = [[0.0; STATE_SIZE]; STATE_SIZE];
    for a in 0..n {
        for b in 0..n {
            l[a][b] = hp[a][idx[b]] + r[a][b];
        }
    }
    cholesky_in_place(&mut l, n).ok_or(FusionError::NotPositiveDefinite("innovation covariance"))?;
    Ok(l)
}

/// `yᵀ S⁻¹ y = |L⁻¹ y|²`.
#[allow(clippy::needless_range_loop)]
fn nis_of(l: &Block, inv_diag: &[f64; STATE_SIZE], y: &[f64; STATE_SIZE], n: usize) -> f64 {
    let n = n.min(STATE_SIZE);
    let mut z = *y;
    for i in 0..n {
        let mut v = z[i];
        for k in 0..i {
            v -= l[i][k] * z[k];
        }
        z[i] = v * inv_diag[i];
    }
    z.iter().take(n).map(|v| v * v).sum()
}

/// Kalman update for a measurement that selects the state fields `idx` (so `H` is a row
/// selection of the identity), with prepared covariance `r` (leading `n × n`) and innovation `y`.
///
/// `K = P Hᵀ S⁻¹` comes from two triangular solves with the Cholesky factor of `S` (no explicit
/// inverse), and the covariance is the Joseph form, expanded exactly (valid for any gain `K`,
/// not only the optimal one, so first-order errors in `K` still cancel):
///
/// ```text
/// (I − KH) P (I − KH)ᵀ + K R Kᵀ = P − K(HP) − (PHᵀ)Kᵀ + K S Kᵀ = P + E Kᵀ + K Eᵀ,
///                                  E = ½ K S − P Hᵀ
/// ```
///
/// `HP` is a row gather of `P`, so the whole update costs three `n × 15` row sweeps plus one
/// `15 × 15 × n` product, all on the stack, with no explicit `H`, `S⁻¹` or `I − KH`.
/// `P + (Z + Zᵀ)` with `Z = E Kᵀ` is symmetric bit for bit (`P` stands for its symmetric part
/// `(P + Pᵀ)/2` throughout, which is `P` itself after every predict and correct).
/// Returns [`JosephOutcome::Gated`] when the squared Mahalanobis distance exceeds `gate`.
#[allow(clippy::needless_range_loop)]
#[inline]
fn joseph_update(
    p: &StateMatrix,
    p_symmetric: bool,
    idx: &[usize],
    r: &Block,
    y: &[f64; STATE_SIZE],
    gate: Option<f64>,
) -> Result<JosephOutcome> {
    // idx.len() ≤ 15 (validated); the min lets the compiler drop bounds checks below
    let n = idx.len().min(STATE_SIZE);
    // HP: rows idx of (the symmetric part of) P
    let mut hp: Rows = [[0.0; LANES]; STATE_SIZE];
    for (row, &i) in hp.iter_mut().zip(idx) {
        if p_symmetric {
            row[..STATE_SIZE].copy_from_slice(column(p, i));
        } else {
            for (c, v) in row.iter_mut().enumerate().take(STATE_SIZE) {
                *v = sym_at(p, i, c);
            }
        }
    }
    let l = innovation_cholesky(&hp, idx, r)?;
    let mut inv_diag = [0.0; STATE_SIZE];
    for a in 0..n {
        inv_diag[a] = 1.0 / l[a][a];
    }
    let nis = nis_of(&l, &inv_diag, y, n);
    if let Some(th) = gate
        && nis > th
    {
        return Ok(JosephOutcome::Gated { nis });
    }
    // Kᵀ = S⁻¹ (HP): forward then backward substitution on whole rows
    let mut kt: Rows = [[0.0; LANES]; STATE_SIZE];
    for a in 0..n {
        let mut row = hp[a];
        for b in 0..a {
            axpy(&mut row, -l[a][b], &kt[b]);
        }
        scale(&mut row, inv_diag[a]);
        kt[a] = row;
    }
    for a in (0..n).rev() {
        let mut row = kt[a];
        for b in a + 1..n {
            axpy(&mut row, -l[b][a], &kt[b]);
        }
        scale(&mut row, inv_diag[a]);
        kt[a] = row;
    }
    // dx = K y
    let mut dx: Row = [0.0; LANES];
    for a in 0..n {
        axpy(&mut dx, y[a], &kt[a]);
    }
    // Eᵀ = ½ S Kᵀ − HP   (S = HPHᵀ + R symmetric)
    let mut et: Rows = [[0.0; LANES]; STATE_SIZE];
    for a in 0..n {
        let mut row = [0.0; LANES];
        for b in 0..n {
            axpy(&mut row, hp[a][idx[b]] + r[a][b], &kt[b]);
        }
        for (o, h) in row.iter_mut().zip(&hp[a]) {
            *o = 0.5 * *o - h;
        }
        et[a] = row;
    }
    // Z = E Kᵀ, row by row
    let mut z: Rows = [[0.0; LANES]; STATE_SIZE];
    for (i, zrow) in z.iter_mut().enumerate() {
        let mut acc = [0.0; LANES];
        for a in 0..n {
            axpy(&mut acc, et[a][i], &kt[a]);
        }
        *zrow = acc;
    }
    // P' = P + (Z + Zᵀ), written straight into nalgebra's column-major storage
    let out = if p_symmetric {
        StateMatrix::from_fn(|i, j| p[(i, j)] + (z[i][j] + z[j][i]))
    } else {
        StateMatrix::from_fn(|i, j| sym_at(p, i, j) + (z[i][j] + z[j][i]))
    };
    let mut d = [0.0; STATE_SIZE];
    d.copy_from_slice(&dx[..STATE_SIZE]);
    Ok(JosephOutcome::Accepted(JosephUpdate { dx: d, p: out, nis }))
}

/// Predicted covariance `sym(F P Fᵀ + Q dt)` for `F = I + D`, `D` the sparse part of the
/// kinematic Jacobian (at most 45 entries in a fixed pattern): `F P = P + D P` is a few row
/// updates and `(F P) Fᵀ = ((F P)ᵀ + D (F P)ᵀ)ᵀ` the same on the transpose. Same operations in
/// the same order as the dense-scan version it replaces, so bit-identical to it.
#[inline]
fn predicted_covariance(
    jac: &JacobianTerms,
    p: &StateMatrix,
    p_symmetric: bool,
    q: &StateMatrix,
    dt: f64,
) -> StateMatrix {
    let mut pm: Rows = [[0.0; LANES]; STATE_SIZE];
    for (i, row) in pm.iter_mut().enumerate() {
        if p_symmetric {
            row[..STATE_SIZE].copy_from_slice(column(p, i));
        } else {
            for (k, v) in row.iter_mut().enumerate().take(STATE_SIZE) {
                *v = p[(i, k)];
            }
        }
    }
    // F P
    apply_jacobian_offdiag(jac, &mut pm);
    // (F P Fᵀ)ᵀ = (F P)ᵀ + D (F P)ᵀ
    let mut outt: Rows = [[0.0; LANES]; STATE_SIZE];
    for (i, row) in pm.iter().enumerate() {
        for (k, v) in row.iter().enumerate().take(STATE_SIZE) {
            outt[k][i] = *v;
        }
    }
    apply_jacobian_offdiag(jac, &mut outt);
    // + Q dt, symmetrised: element (i, j) of F P Fᵀ is outt[j][i]
    StateMatrix::from_fn(|i, j| {
        let a = outt[j][i] + q[(i, j)] * dt;
        let b = outt[i][j] + q[(j, i)] * dt;
        (a + b) * 0.5
    })
}

/// `m ← m + D m` in place, `D = F − I` the sparse part of the Jacobian: row `r` becomes
/// `m[r] + Σ_c D[r][c] · m_old[c]`, terms added with `c` increasing. Rows are updated in an order
/// that reads only rows not yet overwritten (x/y/z rows read orientation, velocity and
/// acceleration rows; velocity rows read acceleration rows; orientation rows read the old roll and
/// pitch rows, saved first, and the angular-rate rows, which never change).
#[inline(always)]
fn apply_jacobian_offdiag(jac: &JacobianTerms, m: &mut Rows) {
    let (old_roll, old_pitch) = (m[ROLL], m[PITCH]);
    // each destination row accumulates in a local (kept in registers) and is stored once
    for k in 0..3 {
        let mut acc = m[X + k];
        for (&c, &v) in POS_COLS.iter().zip(&jac.pos[k]) {
            if v != 0.0 {
                axpy(&mut acc, v, &m[c]);
            }
        }
        m[X + k] = acc;
    }
    if jac.dt != 0.0 {
        for k in 0..3 {
            let mut acc = m[VX + k];
            axpy(&mut acc, jac.dt, &m[AX + k]);
            m[VX + k] = acc;
        }
    }
    for k in 0..3 {
        let mut acc = m[ROLL + k];
        for (&c, &f) in ORI_COLS.iter().zip(&jac.ori[k]) {
            let v = f - if c == ROLL + k { 1.0 } else { 0.0 };
            if v != 0.0 {
                let src = match c {
                    ROLL => &old_roll,
                    PITCH => &old_pitch,
                    _ => &m[c],
                };
                axpy(&mut acc, v, src);
            }
        }
        m[ROLL + k] = acc;
    }
}

/// In-place lower Cholesky factor of the leading `n × n` block; `None` if not PD.
#[allow(clippy::needless_range_loop)]
fn cholesky_in_place(a: &mut [[f64; STATE_SIZE]; STATE_SIZE], n: usize) -> Option<()> {
    // (a no-op for valid input; lets the compiler drop the bounds checks in the loops)
    let n = n.min(STATE_SIZE);
    for j in 0..n {
        let mut d = a[j][j];
        for k in 0..j {
            d -= a[j][k] * a[j][k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let d = d.sqrt();
        a[j][j] = d;
        for i in j + 1..n {
            let mut v = a[i][j];
            for k in 0..j {
                v -= a[i][k] * a[j][k];
            }
            a[i][j] = v / d;
        }
    }
    Some(())
}

/// Unscented Kalman filter over the same model (scaled sigma points; α, β, κ settable).
#[derive(Debug, Clone)]
pub struct Ukf {
    x: StateVector,
    p: StateMatrix,
    settings: FilterSettings,
    lambda: f64,
    wm: Vec<f64>,
    wc: Vec<f64>,
}

impl Ukf {
    /// New UKF with robot_localization's defaults α = 0.001, κ = 0, β = 2.
    ///
    /// # Errors
    /// As [`Ekf::new`].
    pub fn new(settings: FilterSettings, initial_covariance: StateMatrix) -> Result<Self> {
        Self::with_parameters(settings, initial_covariance, 0.001, 0.0, 2.0)
    }

    /// New UKF with explicit α, κ, β.
    ///
    /// # Errors
    /// As [`Ekf::new`]; also α ≤ 0 or a degenerate λ + n.
    pub fn with_parameters(
        settings: FilterSettings,
        initial_covariance: StateMatrix,
        alpha: f64,
        kappa: f64,
        beta: f64,
    ) -> Result<Self> {
        ensure_finite([alpha, kappa, beta].iter(), "ukf parameters")?;
        #[allow(clippy::cast_precision_loss)]
        let n = STATE_SIZE as f64;
        let lambda = alpha * alpha * (n + kappa) - n;
        if alpha <= 0.0 || (n + lambda) <= 0.0 {
            return Err(FusionError::Config("ukf: alpha must be > 0 and n + lambda > 0".into()));
        }
        let count = 2 * STATE_SIZE + 1;
        let mut wm = vec![1.0 / (2.0 * (n + lambda)); count];
        let mut wc = wm.clone();
        if let (Some(m0), Some(c0)) = (wm.first_mut(), wc.first_mut()) {
            *m0 = lambda / (n + lambda);
            *c0 = *m0 + (1.0 - alpha * alpha + beta);
        }
        ensure_finite(settings.process_noise.iter(), "process noise")?;
        let mut f = Self { x: StateVector::zeros(), p: StateMatrix::identity(), settings, lambda, wm, wc };
        f.set_state(StateVector::zeros(), initial_covariance)?;
        Ok(f)
    }

    fn sigma_points(&self) -> Result<Vec<StateVector>> {
        #[allow(clippy::cast_precision_loss)]
        let scale = STATE_SIZE as f64 + self.lambda;
        let chol = (self.p * scale).cholesky().ok_or(FusionError::NotPositiveDefinite("state covariance"))?;
        let l = chol.l();
        let mut pts = Vec::with_capacity(2 * STATE_SIZE + 1);
        pts.push(self.x);
        for i in 0..STATE_SIZE {
            pts.push(self.x + l.column(i));
        }
        for i in 0..STATE_SIZE {
            pts.push(self.x - l.column(i));
        }
        Ok(pts)
    }

    /// Weighted mean with angles averaged relative to the first point.
    fn mean(&self, pts: &[StateVector]) -> StateVector {
        let reference = pts.first().copied().unwrap_or_else(StateVector::zeros);
        let mut m = StateVector::zeros();
        for (p, w) in pts.iter().zip(&self.wm) {
            let mut d = p - reference;
            for i in ROLL..=YAW {
                d[i] = wrap_angle(d[i]);
            }
            m += d * *w;
        }
        let mut out = reference + m;
        wrap_state_angles(&mut out);
        out
    }

    fn diff(a: &StateVector, b: &StateVector) -> StateVector {
        let mut d = a - b;
        for i in ROLL..=YAW {
            d[i] = wrap_angle(d[i]);
        }
        d
    }
}

impl StateEstimator for Ukf {
    fn state(&self) -> &StateVector {
        &self.x
    }
    fn covariance(&self) -> &StateMatrix {
        &self.p
    }
    fn set_state(&mut self, x: StateVector, p: StateMatrix) -> Result<()> {
        validate_state(&x, &p)?;
        self.x = x;
        self.p = p;
        Ok(())
    }

    fn predict(&mut self, dt: f64) -> Result<()> {
        check_dt(dt)?;
        if dt == 0.0 {
            return Ok(());
        }
        let pts: Vec<StateVector> = self.sigma_points()?.iter().map(|s| transition(s, dt)).collect();
        let mut x = self.mean(&pts);
        let mut p = self.settings.process_noise * dt;
        for (s, w) in pts.iter().zip(&self.wc) {
            let d = Self::diff(s, &x);
            p += d * d.transpose() * *w;
        }
        symmetrize(&mut p);
        if self.settings.two_d_mode {
            zero_out_of_plane(&mut x, &mut p);
        }
        ensure_finite_slice(x.as_slice(), "predicted state")?;
        ensure_finite_slice(p.as_slice(), "predicted covariance")?;
        self.x = x;
        self.p = p;
        Ok(())
    }

    fn correct(&mut self, m: &Measurement) -> Result<UpdateReport> {
        m.validate()?;
        let r = m.prepared_covariance()?;
        let n = m.indices.len();
        let pts = self.sigma_points()?;
        // measurement sigma points: the selected fields
        let zs: Vec<DVector<f64>> =
            pts.iter().map(|s| DVector::from_fn(n, |k, _| s[m.indices[k]])).collect();
        let mut zhat = DVector::zeros(n);
        let z0 = zs.first().cloned().unwrap_or_else(|| DVector::zeros(n));
        for (z, w) in zs.iter().zip(&self.wm) {
            let mut d = z - &z0;
            for (k, &i) in m.indices.iter().enumerate() {
                if (ROLL..=YAW).contains(&i) {
                    d[k] = wrap_angle(d[k]);
                }
            }
            zhat += d * *w;
        }
        zhat += &z0;
        let zdiff = |z: &DVector<f64>| {
            let mut d = z - &zhat;
            for (k, &i) in m.indices.iter().enumerate() {
                if (ROLL..=YAW).contains(&i) {
                    d[k] = wrap_angle(d[k]);
                }
            }
            d
        };
        let mut s = r.clone();
        let mut pxz = DMatrix::zeros(STATE_SIZE, n);
        for ((z, p), w) in zs.iter().zip(&pts).zip(&self.wc) {
            let dz = zdiff(z);
            let dx = Self::diff(p, &self.x);
            s += &dz * dz.transpose() * *w;
            for row in 0..STATE_SIZE {
                for col in 0..n {
                    pxz[(row, col)] += w * dx[row] * dz[col];
                }
            }
        }
        let chol = s.clone().cholesky().ok_or(FusionError::NotPositiveDefinite("innovation covariance"))?;
        let mut y = DVector::from_fn(n, |k, _| m.values[k] - zhat[k]);
        for (k, &i) in m.indices.iter().enumerate() {
            if (ROLL..=YAW).contains(&i) {
                y[k] = wrap_angle(y[k]);
            }
        }
        let nis = y.dot(&chol.solve(&y));
        if let Some(th) = m.mahalanobis_threshold
            && nis > th
        {
            return Ok(UpdateReport { nis, dof: n, accepted: false });
        }
        let k = chol.solve(&pxz.transpose()).transpose();
        let dx = &k * &y;
        let ksk = &k * &s * k.transpose();
        let mut x = self.x;
        let mut p = self.p;
        for row in 0..STATE_SIZE {
            x[row] += dx[row];
            for col in 0..STATE_SIZE {
                p[(row, col)] -= ksk[(row, col)];
            }
        }
        wrap_state_angles(&mut x);
        symmetrize(&mut p);
        if self.settings.two_d_mode {
            zero_out_of_plane(&mut x, &mut p);
        }
        if p.cholesky().is_none() {
            return Err(FusionError::NotPositiveDefinite("corrected covariance"));
        }
        ensure_finite_slice(x.as_slice(), "corrected state")?;
        self.x = x;
        self.p = p;
        Ok(UpdateReport { nis, dof: n, accepted: true })
    }
}

/// Which filter a localizer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FilterKind {
    /// Extended Kalman filter.
    #[default]
    Ekf,
    /// Unscented Kalman filter.
    Ukf,
}

/// Either filter behind one type (so configs can choose at run time).
#[derive(Debug, Clone)]
pub enum AnyFilter {
    /// EKF
    Ekf(Ekf),
    /// UKF
    Ukf(Ukf),
}

impl AnyFilter {
    /// Builds the chosen filter.
    ///
    /// # Errors
    /// As the filters' constructors.
    pub fn new(kind: FilterKind, settings: FilterSettings, initial_covariance: StateMatrix) -> Result<Self> {
        Ok(match kind {
            FilterKind::Ekf => Self::Ekf(Ekf::new(settings, initial_covariance)?),
            FilterKind::Ukf => Self::Ukf(Ukf::new(settings, initial_covariance)?),
        })
    }
}

/// The running part of a filter (its settings come from the configuration): enough to continue
/// bit for bit after [`AnyFilter::restore`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterSnapshot {
    /// Which filter wrote it.
    pub kind: FilterKind,
    /// State vector (15 values, state order).
    pub x: Vec<f64>,
    /// Covariance, 225 values, column-major (nalgebra's storage order).
    pub p: Vec<f64>,
    /// EKF only: the covariance is exactly symmetric (selects the symmetric fast paths).
    #[serde(default)]
    pub p_symmetric: bool,
}

impl AnyFilter {
    /// Which filter this is.
    #[must_use]
    pub fn kind(&self) -> FilterKind {
        match self {
            Self::Ekf(_) => FilterKind::Ekf,
            Self::Ukf(_) => FilterKind::Ukf,
        }
    }

    /// State, covariance and flags, exactly as held.
    #[must_use]
    pub fn snapshot(&self) -> FilterSnapshot {
        let (x, p, p_symmetric) = match self {
            Self::Ekf(f) => (&f.x, &f.p, f.p_symmetric),
            Self::Ukf(f) => (&f.x, &f.p, false),
        };
        FilterSnapshot { kind: self.kind(), x: x.as_slice().to_vec(), p: p.as_slice().to_vec(), p_symmetric }
    }

    /// Puts a [`FilterSnapshot`] back into this filter (built from the same configuration).
    ///
    /// Only what a running filter guarantees is checked (sizes, finite values, the symmetry
    /// flag): a covariance the filter itself produced is accepted as it is, so the restored
    /// filter continues bit for bit.
    ///
    /// # Errors
    /// [`FusionError::CorruptState`] on a different filter kind, wrong sizes, non-finite values,
    /// or an EKF snapshot that claims an exactly symmetric covariance that is not.
    pub fn restore(&mut self, s: &FilterSnapshot) -> Result<()> {
        if s.kind != self.kind() {
            return Err(FusionError::CorruptState(format!("filter is {:?}, the state is for {:?}", self.kind(), s.kind)));
        }
        if s.x.len() != STATE_SIZE || s.p.len() != STATE_SIZE * STATE_SIZE {
            return Err(FusionError::CorruptState(format!("filter state has {} + {} values, expected 15 + 225", s.x.len(), s.p.len())));
        }
        if !s.x.iter().chain(&s.p).all(|v| v.is_finite()) {
            return Err(FusionError::CorruptState("non-finite filter state".into()));
        }
        let x = StateVector::from_column_slice(&s.x);
        let p = StateMatrix::from_column_slice(&s.p);
        match self {
            Self::Ekf(f) => {
                if s.p_symmetric && p != p.transpose() {
                    return Err(FusionError::CorruptState("covariance flagged symmetric is not".into()));
                }
                f.x = x;
                f.p = p;
                f.p_symmetric = s.p_symmetric;
            }
            Self::Ukf(f) => {
                f.x = x;
                f.p = p;
            }
        }
        Ok(())
    }
}

impl StateEstimator for AnyFilter {
    fn state(&self) -> &StateVector {
        match self {
            Self::Ekf(f) => f.state(),
            Self::Ukf(f) => f.state(),
        }
    }
    fn covariance(&self) -> &StateMatrix {
        match self {
            Self::Ekf(f) => f.covariance(),
            Self::Ukf(f) => f.covariance(),
        }
    }
    fn set_state(&mut self, x: StateVector, p: StateMatrix) -> Result<()> {
        match self {
            Self::Ekf(f) => f.set_state(x, p),
            Self::Ukf(f) => f.set_state(x, p),
        }
    }
    fn predict(&mut self, dt: f64) -> Result<()> {
        match self {
            Self::Ekf(f) => f.predict(dt),
            Self::Ukf(f) => f.predict(dt),
        }
    }
    fn correct(&mut self, m: &Measurement) -> Result<UpdateReport> {
        match self {
            Self::Ekf(f) => f.correct(m),
            Self::Ukf(f) => f.correct(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{VX, X};

    fn settings() -> FilterSettings {
        FilterSettings { process_noise: StateMatrix::identity() * 0.01, two_d_mode: false }
    }

    fn pos_meas(t: f64, x: f64, var: f64) -> Measurement {
        Measurement {
            time: t,
            indices: vec![X],
            values: vec![x],
            covariance: DMatrix::from_element(1, 1, var),
            mahalanobis_threshold: None,
        }
    }

    #[test]
    fn ekf_scalar_update_matches_closed_form() {
        let mut f = Ekf::new(settings(), StateMatrix::identity()).unwrap();
        let rep = f.correct(&pos_meas(0.0, 2.0, 1.0)).unwrap();
        assert!((f.state()[X] - 1.0).abs() < 1e-12);
        assert!((f.covariance()[(X, X)] - 0.5).abs() < 1e-12);
        assert!((rep.nis - 2.0).abs() < 1e-12);
        assert_eq!(rep.dof, 1);
    }

    #[test]
    fn ukf_matches_ekf_on_linear_problem() {
        // nearly linear: orientation and its rates known, so both filters must agree
        let mut p0 = StateMatrix::identity();
        let mut s = settings();
        for i in (crate::state::ROLL..=crate::state::YAW).chain(crate::state::VROLL..=crate::state::VYAW) {
            p0[(i, i)] = 1e-9;
            s.process_noise[(i, i)] = 1e-9;
        }
        let mut e = Ekf::new(s.clone(), p0).unwrap();
        let mut u = Ukf::new(s, p0).unwrap();
        let m = Measurement {
            time: 0.0,
            indices: vec![VX],
            values: vec![1.0],
            covariance: DMatrix::from_element(1, 1, 0.1),
            mahalanobis_threshold: None,
        };
        for _ in 0..20 {
            e.predict(0.1).unwrap();
            u.predict(0.1).unwrap();
            e.correct(&m).unwrap();
            u.correct(&m).unwrap();
        }
        assert!((e.state()[X] - u.state()[X]).abs() < 1e-3, "{} {}", e.state()[X], u.state()[X]);
        assert!((e.state()[VX] - u.state()[VX]).abs() < 1e-6);
        assert!(e.state()[X] > 1.0);
    }

    #[test]
    fn gate_rejects_outlier_and_keeps_state() {
        let mut f = Ekf::new(settings(), StateMatrix::identity() * 0.01).unwrap();
        let mut m = pos_meas(0.0, 100.0, 0.01);
        m.mahalanobis_threshold = Some(9.0);
        let rep = f.correct(&m).unwrap();
        assert!(!rep.accepted);
        assert!(rep.nis > 1e5);
        assert_eq!(f.state()[X], 0.0);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let mut f = Ekf::new(settings(), StateMatrix::identity()).unwrap();
        assert_eq!(f.correct(&pos_meas(0.0, f64::NAN, 1.0)), Err(FusionError::NonFinite("measurement value")));
        assert_eq!(
            f.correct(&pos_meas(0.0, 1.0, f64::INFINITY)),
            Err(FusionError::NonFinite("measurement covariance"))
        );
        let mut nonpd = Measurement {
            time: 0.0,
            indices: vec![X, VX],
            values: vec![0.0, 0.0],
            covariance: DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]),
            mahalanobis_threshold: None,
        };
        assert_eq!(f.correct(&nonpd), Err(FusionError::NotPositiveDefinite("measurement covariance")));
        nonpd.indices = vec![VX, X];
        assert!(matches!(f.correct(&nonpd), Err(FusionError::Config(_))));
        assert!(matches!(f.predict(f64::NAN), Err(FusionError::NonFinite(_))));
        assert!(matches!(f.predict(-1.0), Err(FusionError::OutOfOrder { .. })));
        let mut bad = StateMatrix::identity();
        bad[(0, 0)] = -1.0;
        assert!(matches!(Ekf::new(settings(), bad), Err(FusionError::NotPositiveDefinite(_))));
        assert!(matches!(Ukf::new(settings(), bad), Err(FusionError::NotPositiveDefinite(_))));
        // state unchanged after all rejections
        assert_eq!(*f.state(), StateVector::zeros());
    }

    #[test]
    fn covariance_stays_symmetric_pd_over_many_steps() {
        let mut f = Ekf::new(settings(), StateMatrix::identity() * 1e-9).unwrap();
        let m = Measurement {
            time: 0.0,
            indices: vec![crate::state::ROLL, crate::state::YAW, VX],
            values: vec![0.1, 3.1, 1.0],
            covariance: DMatrix::from_diagonal(&DVector::from_vec(vec![1e-9, 1e-9, 1e-9])),
            mahalanobis_threshold: None,
        };
        for _ in 0..2000 {
            f.predict(0.02).unwrap();
            f.correct(&m).unwrap();
        }
        let p = f.covariance();
        assert!((p - p.transpose()).abs().max() == 0.0);
        assert!(p.cholesky().is_some());
        let truth = *f.state();
        assert!(f.nees(&truth).unwrap().abs() < 1e-12);
    }

    /// Random SPD matrix `A Aᵀ/dim + shift·I`, then scaled `D M D` with `D` spanning `scales`
    /// decades so the entries have very different magnitudes.
    fn random_spd(rng: &mut rand_chacha::ChaCha8Rng, dim: usize, shift: f64, decades: f64) -> DMatrix<f64> {
        use rand::Rng;
        let a = DMatrix::from_fn(dim, dim, |_, _| rng.random_range(-1.0..1.0));
        let m = &a * a.transpose() / dim as f64 + DMatrix::identity(dim, dim) * shift;
        let d: Vec<f64> = (0..dim).map(|_| 10f64.powf(rng.random_range(-decades..decades))).collect();
        let m = DMatrix::from_fn(dim, dim, |r, c| m[(r, c)] * d[r] * d[c]);
        (&m + m.transpose()) * 0.5
    }

    /// Textbook dense EKF correction: explicit `H`, `K = P Hᵀ S⁻¹`, Joseph form
    /// `(I − KH) P (I − KH)ᵀ + K R Kᵀ`, symmetrised. Returns `(x', P', nis)`.
    fn dense_joseph_reference(
        x: &StateVector,
        p: &StateMatrix,
        m: &Measurement,
    ) -> (DVector<f64>, DMatrix<f64>, f64) {
        let n = m.indices.len();
        let pd = DMatrix::from_fn(STATE_SIZE, STATE_SIZE, |r, c| p[(r, c)]);
        let mut h = DMatrix::zeros(n, STATE_SIZE);
        for (k, &i) in m.indices.iter().enumerate() {
            h[(k, i)] = 1.0;
        }
        let r = m.prepared_covariance().unwrap();
        let s = &h * &pd * h.transpose() + &r;
        let s_inv = s.clone().try_inverse().unwrap();
        let k = &pd * h.transpose() * &s_inv;
        let y = DVector::from_fn(n, |a, _| m.values[a] - x[m.indices[a]]);
        let nis = (y.transpose() * &s_inv * &y)[(0, 0)];
        let xd = DVector::from_fn(STATE_SIZE, |i, _| x[i]) + &k * &y;
        let ikh = DMatrix::identity(STATE_SIZE, STATE_SIZE) - &k * &h;
        let pn = &ikh * &pd * ikh.transpose() + &k * &r * k.transpose();
        (xd, (&pn + pn.transpose()) * 0.5, nis)
    }

    #[test]
    fn fast_joseph_update_matches_dense_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x05ee_de4f);
        let mut worst = 0.0f64;
        for trial in 0..500 {
            let p = StateMatrix::from_fn({
                let pd = random_spd(&mut rng, STATE_SIZE, 0.05, 2.0);
                move |r, c| pd[(r, c)]
            });
            // random non-empty mask
            let mut indices: Vec<usize> = (0..STATE_SIZE).filter(|_| rng.random_bool(0.5)).collect();
            if indices.is_empty() {
                indices.push(rng.random_range(0..STATE_SIZE));
            }
            let n = indices.len();
            let covariance = if trial % 3 == 0 {
                DMatrix::from_diagonal(&DVector::from_fn(n, |_, _| 10f64.powf(rng.random_range(-6.0..0.0))))
            } else {
                random_spd(&mut rng, n, 0.01, 1.5)
            };
            // small values and state so the innovation needs no wrapping (the reference does not wrap)
            let mut x = StateVector::zeros();
            for v in x.iter_mut() {
                *v = rng.random_range(-0.3..0.3);
            }
            let m = Measurement {
                time: 0.0,
                values: indices.iter().map(|_| rng.random_range(-0.3..0.3)).collect(),
                indices,
                covariance,
                mahalanobis_threshold: None,
            };
            let (xr, pr, nisr) = dense_joseph_reference(&x, &p, &m);
            let mut f = Ekf::new(settings(), StateMatrix::identity()).unwrap();
            f.set_state(x, p).unwrap();
            let rep = f.correct(&m).unwrap();
            assert!(rep.accepted);
            assert_eq!(rep.dof, n);
            let pmax = p.abs().max();
            let dp = (0..STATE_SIZE)
                .flat_map(|r| (0..STATE_SIZE).map(move |c| (r, c)))
                .map(|(r, c)| (f.covariance()[(r, c)] - pr[(r, c)]).abs())
                .fold(0.0, f64::max)
                / pmax;
            // the filter wraps roll/pitch/yaw; compare those modulo 2π
            let dx = (0..STATE_SIZE)
                .map(|i| {
                    let d = f.state()[i] - xr[i];
                    if (ROLL..=YAW).contains(&i) { wrap_angle(d).abs() } else { d.abs() }
                })
                .fold(0.0, f64::max)
                / (1.0 + xr.abs().max());
            let dn = (rep.nis - nisr).abs() / (1.0 + nisr.abs());
            worst = worst.max(dp).max(dx).max(dn);
            assert!(dp <= 1e-9 && dx <= 1e-9 && dn <= 1e-9, "trial {trial}: dP {dp:e} dx {dx:e} dnis {dn:e}");
            let pc = f.covariance();
            assert_eq!(*pc, pc.transpose(), "trial {trial}: not exactly symmetric");
            assert!(pc.cholesky().is_some(), "trial {trial}: not PD");
            // the gate sees the same NIS and leaves the filter untouched
            let mut gated = m.clone();
            gated.mahalanobis_threshold = Some(nisr * 0.5);
            let mut g = Ekf::new(settings(), StateMatrix::identity()).unwrap();
            g.set_state(x, p).unwrap();
            let rep = g.correct(&gated).unwrap();
            assert!(!rep.accepted && (rep.nis - nisr).abs() <= 1e-9 * (1.0 + nisr));
            assert_eq!((*g.state(), *g.covariance()), (x, p));
        }
        eprintln!("fast vs dense Joseph update: worst relative difference {worst:e}");
    }

    #[test]
    fn fast_predict_matches_dense_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for trial in 0..200 {
            let pd = random_spd(&mut rng, STATE_SIZE, 0.05, 2.0);
            let p = StateMatrix::from_fn(|r, c| pd[(r, c)]);
            let mut x = StateVector::zeros();
            for v in x.iter_mut() {
                *v = rng.random_range(-1.0..1.0);
            }
            let dt = rng.random_range(0.001..0.2);
            let mut s = settings();
            if trial % 2 == 0 {
                let q = random_spd(&mut rng, STATE_SIZE, 0.01, 1.0);
                s.process_noise = StateMatrix::from_fn(|r, c| q[(r, c)]);
            }
            let fj = crate::state::transition_jacobian(&x, dt);
            let mut reference = fj * p * fj.transpose() + s.process_noise * dt;
            symmetrize(&mut reference);
            let mut f = Ekf::new(s, StateMatrix::identity()).unwrap();
            f.set_state(x, p).unwrap();
            f.predict(dt).unwrap();
            let diff = (f.covariance() - reference).abs().max() / reference.abs().max();
            assert!(diff <= 1e-12, "trial {trial}: {diff:e}");
            assert_eq!(*f.covariance(), f.covariance().transpose());
            assert_eq!(*f.state(), transition(&x, dt));
        }
    }

    #[test]
    fn two_d_mode_zeroes_out_of_plane() {
        let s = FilterSettings { two_d_mode: true, ..settings() };
        let mut f = Ekf::new(s, StateMatrix::identity()).unwrap();
        let m = Measurement {
            time: 0.0,
            indices: vec![crate::state::Z, crate::state::PITCH, VX],
            values: vec![5.0, 0.3, 1.0],
            covariance: DMatrix::identity(3, 3) * 0.01,
            mahalanobis_threshold: None,
        };
        f.correct(&m).unwrap();
        f.predict(1.0).unwrap();
        assert_eq!(f.state()[crate::state::Z], 0.0);
        assert_eq!(f.state()[crate::state::PITCH], 0.0);
        assert!(f.state()[X] > 0.5);
    }
}
