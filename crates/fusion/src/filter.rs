//! Kalman filters over the 15-state model: a shared [`StateEstimator`] trait, the
//! [`Ekf`] (Joseph-form update) and the [`Ukf`] (same model, sigma points).

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::{FusionError, Result, ensure_finite};
use crate::state::{
    Mask, ROLL, STATE_SIZE, StateMatrix, StateVector, YAW, symmetrize, transition,
    transition_jacobian, wrap_angle, wrap_state_angles, zero_out_of_plane,
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
        ensure_finite(self.covariance.iter(), "measurement covariance")?;
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
    settings: FilterSettings,
}

impl Ekf {
    /// New filter at the zero state with covariance `initial_covariance`.
    ///
    /// # Errors
    /// Non-finite or non-PD settings.
    pub fn new(settings: FilterSettings, initial_covariance: StateMatrix) -> Result<Self> {
        ensure_finite(settings.process_noise.iter(), "process noise")?;
        let mut f = Self { x: StateVector::zeros(), p: StateMatrix::identity(), settings };
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
        self.p = p;
        Ok(())
    }

    fn predict(&mut self, dt: f64) -> Result<()> {
        check_dt(dt)?;
        if dt == 0.0 {
            return Ok(());
        }
        let f = transition_jacobian(&self.x, dt);
        let x = transition(&self.x, dt);
        let mut p = propagate_covariance(&f, &self.p) + self.settings.process_noise * dt;
        symmetrize(&mut p);
        let mut x = x;
        if self.settings.two_d_mode {
            zero_out_of_plane(&mut x, &mut p);
        }
        ensure_finite(x.iter(), "predicted state")?;
        ensure_finite(p.iter(), "predicted covariance")?;
        self.x = x;
        self.p = p;
        Ok(())
    }

    // index loops over small fixed-size blocks read clearer than iterator chains here
    #[allow(clippy::needless_range_loop)]
    fn correct(&mut self, m: &Measurement) -> Result<UpdateReport> {
        m.validate()?;
        let n = m.indices.len();
        let idx = &m.indices;
        // prepared R (symmetric, |diag| clamped) and S = H P Hᵀ + R, on the stack
        let mut r = [[0.0; STATE_SIZE]; STATE_SIZE];
        let mut s = [[0.0; STATE_SIZE]; STATE_SIZE];
        for a in 0..n {
            for b in 0..n {
                let v = 0.5 * (m.covariance[(a, b)] + m.covariance[(b, a)]);
                r[a][b] = if a == b { v.abs().max(MIN_VARIANCE) } else { v };
            }
        }
        if cholesky_in_place(&mut r.clone(), n).is_none() {
            return Err(FusionError::NotPositiveDefinite("measurement covariance"));
        }
        for a in 0..n {
            for b in 0..n {
                s[a][b] = self.p[(idx[a], idx[b])] + r[a][b];
            }
        }
        let mut l = s;
        cholesky_in_place(&mut l, n).ok_or(FusionError::NotPositiveDefinite("innovation covariance"))?;
        // W = S⁻¹ (n × n, zero-padded to 15 so the row loops below vectorise)
        let mut w = [[0.0; STATE_SIZE]; STATE_SIZE];
        for j in 0..n {
            let mut e = [0.0; STATE_SIZE];
            e[j] = 1.0;
            forward_substitute(&l, &mut e, n);
            backward_substitute(&l, &mut e, n);
            for (i, v) in e.iter().enumerate().take(n) {
                w[i][j] = *v;
            }
        }
        let mut y = [0.0; STATE_SIZE];
        for (k, &i) in idx.iter().enumerate() {
            let d = m.values[k] - self.x[i];
            y[k] = if (ROLL..=YAW).contains(&i) { wrap_angle(d) } else { d };
        }
        let mut wy = [0.0; STATE_SIZE];
        for (yj, wrow) in y.iter().zip(&w).take(n) {
            for (o, wv) in wy.iter_mut().zip(wrow) {
                *o += yj * wv;
            }
        }
        let nis: f64 = y.iter().zip(&wy).map(|(a, b)| a * b).sum();
        if let Some(th) = m.mahalanobis_threshold
            && nis > th
        {
            return Ok(UpdateReport { nis, dof: n, accepted: false });
        }
        // K = P Hᵀ W, one state row at a time
        let mut k = [[0.0; STATE_SIZE]; STATE_SIZE];
        for (row, krow) in k.iter_mut().enumerate() {
            for (j, &i) in idx.iter().enumerate() {
                let phj = self.p[(row, i)];
                for (o, wv) in krow.iter_mut().zip(&w[j]) {
                    *o += phj * wv;
                }
            }
        }
        let mut x = self.x;
        for (row, krow) in k.iter().enumerate() {
            x[row] += krow.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>();
        }
        wrap_state_angles(&mut x);
        // Joseph form (I − KH) P (I − KH)ᵀ + K R Kᵀ, using the sparsity of H:
        // A = P − K (H P);  P' = A + (K R − A Hᵀ) Kᵀ
        type Row = [f64; STATE_SIZE];
        let mut prm = [[0.0; STATE_SIZE]; STATE_SIZE];
        for (row, out) in prm.iter_mut().enumerate() {
            for (c, v) in out.iter_mut().enumerate() {
                *v = self.p[(row, c)];
            }
        }
        let mut hp: [Row; STATE_SIZE] = [[0.0; STATE_SIZE]; STATE_SIZE];
        for (j, &i) in idx.iter().enumerate() {
            hp[j] = prm[i];
        }
        let mut am = prm;
        for (arow, krow) in am.iter_mut().zip(&k) {
            for (kj, hrow) in krow.iter().zip(&hp).take(n) {
                for (a, h) in arow.iter_mut().zip(hrow) {
                    *a -= kj * h;
                }
            }
        }
        // g = K R − A Hᵀ  (15 × n) and Kᵀ (n × 15)
        let mut g = [[0.0; STATE_SIZE]; STATE_SIZE];
        for ((grow, krow), arow) in g.iter_mut().zip(&k).zip(&am) {
            for (kq, rrow) in krow.iter().zip(&r).take(n) {
                for (o, rv) in grow.iter_mut().zip(rrow) {
                    *o += kq * rv;
                }
            }
            for (o, &i) in grow.iter_mut().zip(idx) {
                *o -= arow[i];
            }
        }
        let mut kt = [[0.0; STATE_SIZE]; STATE_SIZE];
        for (c, krow) in k.iter().enumerate() {
            for j in 0..n {
                kt[j][c] = krow[j];
            }
        }
        let mut out = am;
        for (orow, grow) in out.iter_mut().zip(&g) {
            for (gj, ktrow) in grow.iter().zip(&kt).take(n) {
                for (o, kv) in orow.iter_mut().zip(ktrow) {
                    *o += gj * kv;
                }
            }
        }
        let mut p = StateMatrix::from_fn(|row, c| out[row][c]);
        symmetrize(&mut p);
        if self.settings.two_d_mode {
            zero_out_of_plane(&mut x, &mut p);
        }
        ensure_finite(x.iter(), "corrected state")?;
        ensure_finite(p.iter(), "corrected covariance")?;
        self.x = x;
        self.p = p;
        Ok(UpdateReport { nis, dof: n, accepted: true })
    }
}

/// F P Fᵀ for F = I + D with D sparse (the kinematic Jacobian has ~50 off-identity entries).
fn propagate_covariance(f: &StateMatrix, p: &StateMatrix) -> StateMatrix {
    let mut nz = [(0usize, 0usize, 0.0f64); STATE_SIZE * STATE_SIZE];
    let mut count = 0usize;
    for c in 0..STATE_SIZE {
        for r in 0..STATE_SIZE {
            let v = f[(r, c)] - if r == c { 1.0 } else { 0.0 };
            if v != 0.0
                && let Some(slot) = nz.get_mut(count)
            {
                *slot = (r, c, v);
                count += 1;
            }
        }
    }
    let entries = nz.get(..count).unwrap_or(&[]);
    let mut fp = *p;
    for &(r, c, v) in entries {
        for k in 0..STATE_SIZE {
            fp[(r, k)] += v * p[(c, k)];
        }
    }
    let mut out = fp;
    for &(r, c, v) in entries {
        for k in 0..STATE_SIZE {
            out[(k, r)] += v * fp[(k, c)];
        }
    }
    out
}

/// In-place lower Cholesky factor of the leading `n × n` block; `None` if not PD.
#[allow(clippy::needless_range_loop)]
fn cholesky_in_place(a: &mut [[f64; STATE_SIZE]; STATE_SIZE], n: usize) -> Option<()> {
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

/// Solves L z = b in place (L lower, from [`cholesky_in_place`]).
fn forward_substitute(l: &[[f64; STATE_SIZE]; STATE_SIZE], b: &mut [f64; STATE_SIZE], n: usize) {
    for i in 0..n {
        let mut v = b[i];
        for k in 0..i {
            v -= l[i][k] * b[k];
        }
        b[i] = v / l[i][i];
    }
}

/// Solves Lᵀ x = z in place.
fn backward_substitute(l: &[[f64; STATE_SIZE]; STATE_SIZE], b: &mut [f64; STATE_SIZE], n: usize) {
    for i in (0..n).rev() {
        let mut v = b[i];
        for k in i + 1..n {
            v -= l[k][i] * b[k];
        }
        b[i] = v / l[i][i];
    }
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
        ensure_finite(x.iter(), "predicted state")?;
        ensure_finite(p.iter(), "predicted covariance")?;
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
        ensure_finite(x.iter(), "corrected state")?;
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
