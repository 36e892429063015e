//! Orientation filter (AHRS) for raw gyroscope + accelerometer [+ magnetometer] streams.
//!
//! A complementary filter in the style of Madgwick's revised AHRS (x-io "Fusion"): the
//! gyroscope is integrated and corrected by the accelerometer (gravity) and magnetometer
//! (heading) error feedback, with a gain ramped down from 10 during the first 3 s, rejection of
//! accelerometer/magnetometer readings that disagree with the estimate by more than a set angle
//! (with periodic recovery), and an optional gyroscope-bias estimator that learns the offset while
//! the sensor is still. Frame convention: North-West-Up. Units in: deg/s, g, any field unit.

use std::io::Read;

use nalgebra::{Quaternion, Vector3};
use serde::{Deserialize, Serialize};

use crate::error::{FusionError, Result, ensure_finite};

const INITIAL_GAIN: f64 = 10.0;
const INITIALISATION_PERIOD: f64 = 3.0;

/// Filter settings; [`Default`] matches the defaults of x-io's Fusion / `imufusion`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AhrsSettings {
    /// feedback gain
    pub gain: f64,
    /// gyroscope range (deg/s); 0 disables the overflow check
    pub gyroscope_range: f64,
    /// accelerometer readings off by more than this (deg) are ignored
    pub acceleration_rejection: f64,
    /// magnetometer readings off by more than this (deg) are ignored
    pub magnetic_rejection: f64,
    /// samples of continuous rejection after which the sensor is trusted again (0 = never reject for long)
    pub recovery_trigger_period: u32,
    /// learn and remove the gyroscope bias while the device is still
    pub bias_estimation: bool,
}

impl Default for AhrsSettings {
    fn default() -> Self {
        Self {
            gain: 0.5,
            gyroscope_range: 0.0,
            acceleration_rejection: 90.0,
            magnetic_rejection: 90.0,
            recovery_trigger_period: 0,
            bias_estimation: false,
        }
    }
}

/// Gyroscope bias estimator: while every axis reads below 3 deg/s for 5 s, a 0.02 Hz low-pass
/// filter tracks the offset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GyroBias {
    coefficient: f64,
    timeout: u32,
    timer: u32,
    /// current bias estimate (deg/s)
    pub offset: [f64; 3],
}

impl GyroBias {
    const CUTOFF_HZ: f64 = 0.02;
    const TIMEOUT_S: f64 = 5.0;
    const THRESHOLD_DPS: f64 = 3.0;

    /// New estimator for a sample rate (Hz).
    #[must_use]
    pub fn new(sample_rate: f64) -> Self {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let timeout = (Self::TIMEOUT_S * sample_rate).max(0.0) as u32;
        Self { coefficient: std::f64::consts::TAU * Self::CUTOFF_HZ / sample_rate, timeout, timer: 0, offset: [0.0; 3] }
    }

    /// Removes the bias from a reading and updates the estimate.
    pub fn update(&mut self, gyro: [f64; 3]) -> [f64; 3] {
        let g = [gyro[0] - self.offset[0], gyro[1] - self.offset[1], gyro[2] - self.offset[2]];
        if g.iter().any(|v| v.abs() > Self::THRESHOLD_DPS) {
            self.timer = 0;
            return g;
        }
        if self.timer < self.timeout {
            self.timer += 1;
            return g;
        }
        for (o, v) in self.offset.iter_mut().zip(g) {
            *o += v * self.coefficient;
        }
        g
    }
}

/// Orientation as roll/pitch/yaw in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Euler {
    /// time (s)
    pub time: f64,
    /// roll (deg)
    pub roll: f64,
    /// pitch (deg)
    pub pitch: f64,
    /// yaw (deg)
    pub yaw: f64,
}

/// Filter flags after an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AhrsFlags {
    /// still ramping the gain down
    pub initialising: bool,
    /// accelerometer ignored in the last update
    pub acceleration_rejected: bool,
    /// magnetometer ignored in the last update
    pub magnetic_rejected: bool,
}

/// The AHRS filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ahrs {
    settings: AhrsSettings,
    q: [f64; 4], // w x y z
    initialising: bool,
    ramped_gain: f64,
    ramped_gain_step: f64,
    acc_threshold: f64,
    mag_threshold: f64,
    acc_trigger: i64,
    acc_timeout: i64,
    mag_trigger: i64,
    mag_timeout: i64,
    flags: AhrsFlags,
    bias: Option<GyroBias>,
}

fn threshold(deg: f64) -> f64 {
    (0.5 * deg.to_radians().sin()).powi(2)
}

fn normalise(v: Vector3<f64>) -> Vector3<f64> {
    let n = v.norm();
    if n > 0.0 { v / n } else { v }
}

/// Error feedback between a measured direction and the estimate's reference direction.
fn feedback(sensor: &Vector3<f64>, reference: &Vector3<f64>) -> Vector3<f64> {
    if sensor.dot(reference) < 0.0 { normalise(sensor.cross(reference)) } else { sensor.cross(reference) }
}

impl Ahrs {
    /// New filter at identity orientation. `sample_rate` (Hz) is used by the bias estimator.
    ///
    /// # Errors
    /// Non-finite or negative settings.
    pub fn new(settings: AhrsSettings, sample_rate: f64) -> Result<Self> {
        ensure_finite(
            [settings.gain, settings.gyroscope_range, settings.acceleration_rejection, settings.magnetic_rejection, sample_rate]
                .iter(),
            "ahrs settings",
        )?;
        if settings.gain < 0.0 || sample_rate <= 0.0 {
            return Err(FusionError::Config("ahrs: gain must be ≥ 0 and sample rate > 0".into()));
        }
        let mut a = Self {
            settings,
            q: [1.0, 0.0, 0.0, 0.0],
            initialising: true,
            ramped_gain: INITIAL_GAIN,
            ramped_gain_step: (INITIAL_GAIN - settings.gain) / INITIALISATION_PERIOD,
            acc_threshold: threshold(settings.acceleration_rejection),
            mag_threshold: threshold(settings.magnetic_rejection),
            acc_trigger: 0,
            acc_timeout: i64::from(settings.recovery_trigger_period),
            mag_trigger: 0,
            mag_timeout: i64::from(settings.recovery_trigger_period),
            flags: AhrsFlags::default(),
            bias: settings.bias_estimation.then(|| GyroBias::new(sample_rate)),
        };
        a.reset();
        Ok(a)
    }

    /// Back to the initial state (identity, ramped gain).
    pub fn reset(&mut self) {
        self.q = [1.0, 0.0, 0.0, 0.0];
        self.initialising = true;
        self.ramped_gain = INITIAL_GAIN;
        self.acc_trigger = 0;
        self.acc_timeout = i64::from(self.settings.recovery_trigger_period);
        self.mag_trigger = 0;
        self.mag_timeout = i64::from(self.settings.recovery_trigger_period);
    }

    /// Orientation quaternion (w, x, y, z), sensor frame in the NWU earth frame.
    #[must_use]
    pub fn quaternion(&self) -> [f64; 4] {
        self.q
    }
    /// Status flags.
    #[must_use]
    pub fn flags(&self) -> AhrsFlags {
        self.flags
    }
    /// Current gyroscope bias estimate (deg/s), if estimation is on.
    #[must_use]
    pub fn gyro_bias(&self) -> Option<[f64; 3]> {
        self.bias.map(|b| b.offset)
    }

    /// Roll, pitch, yaw (deg), ZYX.
    #[must_use]
    pub fn euler(&self, time: f64) -> Euler {
        let [w, x, y, z] = self.q;
        let roll = (w * x + y * z).atan2(0.5 - x * x - y * y);
        let pitch = (2.0 * (w * y - z * x)).clamp(-1.0, 1.0).asin();
        let yaw = (w * z + x * y).atan2(0.5 - y * y - z * z);
        Euler { time, roll: roll.to_degrees(), pitch: pitch.to_degrees(), yaw: yaw.to_degrees() }
    }

    fn half_gravity(&self) -> Vector3<f64> {
        let [w, x, y, z] = self.q;
        Vector3::new(x * z - w * y, y * z + w * x, w * w - 0.5 + z * z)
    }

    fn half_magnetic(&self) -> Vector3<f64> {
        let [w, x, y, z] = self.q;
        Vector3::new(x * y + w * z, w * w - 0.5 + y * y, y * z - w * x)
    }

    /// Sets the heading (yaw, deg) keeping roll and pitch.
    pub fn set_heading(&mut self, heading_deg: f64) {
        let [w, x, y, z] = self.q;
        let yaw = (w * z + x * y).atan2(0.5 - y * y - z * z);
        let half = 0.5 * (yaw - heading_deg.to_radians());
        let r = Quaternion::new(half.cos(), 0.0, 0.0, -half.sin());
        let q = r * Quaternion::new(w, x, y, z);
        self.q = [q.w, q.i, q.j, q.k];
    }

    /// One update. `magnetometer == None` runs without heading correction (yaw held at 0 while
    /// initialising).
    ///
    /// # Errors
    /// Non-finite inputs or `dt ≤ 0`; the filter is left unchanged.
    pub fn update(
        &mut self,
        gyroscope: [f64; 3],
        accelerometer: [f64; 3],
        magnetometer: Option<[f64; 3]>,
        dt: f64,
    ) -> Result<()> {
        ensure_finite(gyroscope.iter().chain(&accelerometer).chain([dt].iter()), "ahrs input")?;
        if let Some(m) = &magnetometer {
            ensure_finite(m.iter(), "magnetometer")?;
        }
        if dt <= 0.0 {
            return Err(FusionError::OutOfOrder { time: dt, last: 0.0 });
        }
        let gyroscope = match self.bias.as_mut() {
            Some(b) => b.update(gyroscope),
            None => gyroscope,
        };
        let gyro = Vector3::from(gyroscope);
        let acc = Vector3::from(accelerometer);
        let range = self.settings.gyroscope_range;
        if range > 0.0 && gyro.iter().any(|v| v.abs() > 0.98 * range) {
            self.reset();
            return Ok(());
        }
        if self.initialising {
            self.ramped_gain -= self.ramped_gain_step * dt;
            if self.ramped_gain < self.settings.gain || self.settings.gain == 0.0 {
                self.ramped_gain = self.settings.gain;
                self.initialising = false;
                self.acc_timeout = i64::from(self.settings.recovery_trigger_period);
                self.mag_timeout = i64::from(self.settings.recovery_trigger_period);
            }
        }
        let half_gravity = self.half_gravity();
        let period = i64::from(self.settings.recovery_trigger_period);

        let mut half_acc_fb = Vector3::zeros();
        self.flags.acceleration_rejected = true;
        if acc != Vector3::zeros() {
            let fb = feedback(&normalise(acc), &half_gravity);
            if self.initialising || fb.norm_squared() <= self.acc_threshold {
                self.flags.acceleration_rejected = false;
                self.acc_trigger -= 9;
            } else {
                self.acc_trigger += 1;
            }
            if self.acc_trigger > self.acc_timeout {
                self.acc_timeout = 0;
                self.flags.acceleration_rejected = false;
            } else {
                self.acc_timeout = period;
            }
            self.acc_trigger = self.acc_trigger.clamp(0, period);
            if !self.flags.acceleration_rejected {
                half_acc_fb = fb;
            }
        }

        let mut half_mag_fb = Vector3::zeros();
        self.flags.magnetic_rejected = true;
        if let Some(m) = magnetometer.map(Vector3::from)
            && m != Vector3::zeros()
        {
            let fb = feedback(&normalise(half_gravity.cross(&m)), &self.half_magnetic());
            if self.initialising || fb.norm_squared() <= self.mag_threshold {
                self.flags.magnetic_rejected = false;
                self.mag_trigger -= 9;
            } else {
                self.mag_trigger += 1;
            }
            if self.mag_trigger > self.mag_timeout {
                self.mag_timeout = 0;
                self.flags.magnetic_rejected = false;
            } else {
                self.mag_timeout = period;
            }
            self.mag_trigger = self.mag_trigger.clamp(0, period);
            if !self.flags.magnetic_rejected {
                half_mag_fb = fb;
            }
        }

        let half_gyro = gyro * (0.5 * std::f64::consts::PI / 180.0);
        let adjusted = (half_gyro + (half_acc_fb + half_mag_fb) * self.ramped_gain) * dt;
        let [w, x, y, z] = self.q;
        let dq = [
            -x * adjusted.x - y * adjusted.y - z * adjusted.z,
            w * adjusted.x + y * adjusted.z - z * adjusted.y,
            w * adjusted.y - x * adjusted.z + z * adjusted.x,
            w * adjusted.z + x * adjusted.y - y * adjusted.x,
        ];
        let mut q = [w + dq[0], x + dq[1], y + dq[2], z + dq[3]];
        let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n > 0.0 && n.is_finite() {
            for v in &mut q {
                *v /= n;
            }
            self.q = q;
        }
        if magnetometer.is_none() && self.initialising {
            self.set_heading(0.0);
        }
        self.flags.initialising = self.initialising;
        Ok(())
    }
}

/// One row of an IMU/MARG CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImuSample {
    /// time (s)
    pub time: f64,
    /// deg/s
    pub gyroscope: [f64; 3],
    /// g
    pub accelerometer: [f64; 3],
    /// µT (absent: zeros)
    pub magnetometer: [f64; 3],
}

/// Reads the x-io CSV layout: a header line, then `time, gx, gy, gz, ax, ay, az[, mx, my, mz]`.
///
/// # Errors
/// [`FusionError::Parse`] with the line number on malformed rows; non-finite values.
pub fn read_imu_csv(mut r: impl Read) -> Result<Vec<ImuSample>> {
    let mut text = String::new();
    r.read_to_string(&mut text).map_err(|e| FusionError::Parse(format!("read: {e}")))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let vals: std::result::Result<Vec<f64>, _> = line.split(',').map(|s| s.trim().parse::<f64>()).collect();
        let vals = match vals {
            Ok(v) => v,
            Err(_) if n == 0 => continue, // header
            Err(e) => return Err(FusionError::Parse(format!("line {}: {e}", n + 1))),
        };
        if vals.len() != 7 && vals.len() != 10 {
            return Err(FusionError::Parse(format!("line {}: expected 7 or 10 columns, got {}", n + 1, vals.len())));
        }
        ensure_finite(vals.iter(), "csv value")?;
        let g = |i: usize| vals.get(i).copied().unwrap_or(0.0);
        out.push(ImuSample {
            time: g(0),
            gyroscope: [g(1), g(2), g(3)],
            accelerometer: [g(4), g(5), g(6)],
            magnetometer: [g(7), g(8), g(9)],
        });
    }
    Ok(out)
}

/// Runs the AHRS over samples at a fixed `sample_rate` (Hz) and returns roll/pitch/yaw (deg)
/// once per second of data (after samples 0, rate, 2·rate, … and the last sample) — the CLI's
/// `edgecell fusion ahrs`.
///
/// # Errors
/// Bad settings or samples.
pub fn ahrs_per_second(samples: &[ImuSample], settings: AhrsSettings, sample_rate: f64, use_magnetometer: bool) -> Result<Vec<Euler>> {
    let mut ahrs = Ahrs::new(settings, sample_rate)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let every = sample_rate.round().max(1.0) as usize;
    let dt = 1.0 / sample_rate;
    let mut out = Vec::with_capacity(samples.len() / every + 1);
    for (i, s) in samples.iter().enumerate() {
        let mag = use_magnetometer.then_some(s.magnetometer);
        ahrs.update(s.gyroscope, s.accelerometer, mag, dt)?;
        if i % every == 0 || i + 1 == samples.len() {
            out.push(ahrs.euler(s.time));
        }
    }
    Ok(out)
}

/// Convenience for the CLI: reads an x-io style CSV and returns roll/pitch/yaw (deg) per second.
/// `sample_rate = None` estimates it from the time column; the magnetometer is used when asked
/// and present (non-zero).
///
/// # Errors
/// CSV or filter errors.
pub fn ahrs_from_csv(r: impl Read, settings: AhrsSettings, sample_rate: Option<f64>, use_magnetometer: bool) -> Result<Vec<Euler>> {
    let samples = read_imu_csv(r)?;
    let rate = match sample_rate {
        Some(r) => r,
        None => estimate_sample_rate(&samples)?,
    };
    let has_mag = samples.iter().any(|s| s.magnetometer != [0.0; 3]);
    ahrs_per_second(&samples, settings, rate, use_magnetometer && has_mag)
}

/// Sample rate (Hz) estimated from the mean time step over the whole record.
///
/// # Errors
/// Fewer than two samples or a non-increasing time span.
pub fn estimate_sample_rate(samples: &[ImuSample]) -> Result<f64> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Err(FusionError::Parse("need at least two samples".into()));
    };
    let span = last.time - first.time;
    if samples.len() < 2 || span <= 0.0 {
        return Err(FusionError::OutOfOrder { time: last.time, last: first.time });
    }
    #[allow(clippy::cast_precision_loss)]
    let steps = (samples.len() - 1) as f64;
    Ok(steps / span)
}

/// RMS of angle differences (deg, wrapped) between two series, per axis: (roll, pitch, yaw).
#[must_use]
pub fn rms_error(a: &[Euler], b: &[Euler]) -> (f64, f64, f64) {
    let wrap = |d: f64| (d + 180.0).rem_euclid(360.0) - 180.0;
    let n = a.len().min(b.len());
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let mut s = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        s.0 += wrap(x.roll - y.roll).powi(2);
        s.1 += wrap(x.pitch - y.pitch).powi(2);
        s.2 += wrap(x.yaw - y.yaw).powi(2);
    }
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    ((s.0 / nf).sqrt(), (s.1 / nf).sqrt(), (s.2 / nf).sqrt())
}

/// Reads a reference file `time_s,roll_deg,pitch_deg,yaw_deg`.
///
/// # Errors
/// [`FusionError::Parse`]; [`FusionError::NonFinite`] for NaN or an infinity.
pub fn read_euler_csv(mut r: impl Read) -> Result<Vec<Euler>> {
    let mut text = String::new();
    r.read_to_string(&mut text).map_err(|e| FusionError::Parse(format!("read: {e}")))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let v: std::result::Result<Vec<f64>, _> = line.split(',').map(|s| s.trim().parse::<f64>()).collect();
        let v = v.map_err(|e| FusionError::Parse(format!("line {}: {e}", n + 1)))?;
        ensure_finite(v.iter(), "reference angle")?;
        if let [time, roll, pitch, yaw] = v[..] {
            out.push(Euler { time, roll, pitch, yaw });
        } else {
            return Err(FusionError::Parse(format!("line {}: expected 4 columns", n + 1)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/xio_sensor_data.csv");
    const REF_IMU: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/xio_reference_imu.csv");
    const REF_MARG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/xio_reference_marg.csv");

    fn load() -> Vec<ImuSample> {
        read_imu_csv(std::fs::File::open(DATA).unwrap()).unwrap()
    }

    #[test]
    fn csv_reader_reads_all_rows() {
        let s = load();
        assert_eq!(s.len(), 13_514);
        assert!((s[1].time - 0.010_078_907).abs() < 1e-12);
        assert!((s[0].magnetometer[2] + 41.064_83).abs() < 1e-9);
        assert!((estimate_sample_rate(&s).unwrap() - 100.0).abs() < 2.0);
        assert!(read_imu_csv("t,a\n1,2,3\n".as_bytes()).is_err());
        assert!(read_imu_csv("h\n1,2,3,4,5,6,x\n".as_bytes()).is_err());
        assert!(read_imu_csv("h\n1,2,3,4,5,6,NaN\n".as_bytes()).is_err());
        assert!(matches!(read_euler_csv("h\n0.1,1,NaN,3\n".as_bytes()), Err(FusionError::NonFinite(_))));
        assert!(matches!(read_euler_csv("h\n0.1,1,2,inf\n".as_bytes()), Err(FusionError::NonFinite(_))));
        assert_eq!(read_euler_csv("h\n0.1,1,2,3\n".as_bytes()).unwrap().len(), 1);
    }

    fn check(reference: &str, mag: bool, settings: AhrsSettings) -> (f64, f64, f64) {
        let out = ahrs_per_second(&load(), settings, 100.0, mag).unwrap();
        let r = read_euler_csv(std::fs::File::open(reference).unwrap()).unwrap();
        assert_eq!(out.len(), r.len());
        for (a, b) in out.iter().zip(&r) {
            assert!((a.time - b.time).abs() < 1e-3);
        }
        let e = rms_error(&out, &r);
        eprintln!("{reference} mag={mag} bias={} RMS roll {:.4} pitch {:.4} yaw {:.4} final {:?}", settings.bias_estimation, e.0, e.1, e.2, out.last());
        e
    }

    #[test]
    fn tracks_imufusion_reference_imu() {
        let e = check(REF_IMU, false, AhrsSettings::default());
        assert!(e.0 < 2.0 && e.1 < 2.0, "{e:?}");
        // same algorithm and settings as the reference: agreement to its printed precision
        assert!(e.0 < 0.01 && e.1 < 0.01 && e.2 < 0.01, "{e:?}");
    }

    #[test]
    fn tracks_imufusion_reference_marg() {
        let e = check(REF_MARG, true, AhrsSettings::default());
        assert!(e.0 < 2.0 && e.1 < 2.0, "{e:?}");
        assert!(e.0 < 0.01 && e.1 < 0.01 && e.2 < 0.01, "{e:?}");
    }

    #[test]
    fn bias_estimation_keeps_roll_pitch() {
        let s = AhrsSettings { bias_estimation: true, ..AhrsSettings::default() };
        let e = check(REF_IMU, false, s);
        assert!(e.0 < 2.0 && e.1 < 2.0, "{e:?}");
        let e = check(REF_MARG, true, s);
        assert!(e.0 < 2.0 && e.1 < 2.0, "{e:?}");
    }

    #[test]
    fn csv_convenience_estimates_rate() {
        let a = ahrs_from_csv(std::fs::File::open(DATA).unwrap(), AhrsSettings::default(), None, false).unwrap();
        let r = read_euler_csv(std::fs::File::open(REF_IMU).unwrap()).unwrap();
        let e = rms_error(&a, &r);
        assert!(e.0 < 2.0 && e.1 < 2.0, "{e:?}");
    }

    #[test]
    fn bias_is_learned_on_a_still_sensor() {
        let s = AhrsSettings { bias_estimation: true, ..AhrsSettings::default() };
        let mut a = Ahrs::new(s, 100.0).unwrap();
        for _ in 0..60_000 {
            a.update([0.5, -0.3, 0.2], [0.0, 0.0, 1.0], None, 0.01).unwrap();
        }
        let b = a.gyro_bias().unwrap();
        assert!((b[0] - 0.5).abs() < 0.01 && (b[1] + 0.3).abs() < 0.01 && (b[2] - 0.2).abs() < 0.01, "{b:?}");
        // without bias removal the yaw would have drifted 0.2 deg/s × 600 s
        assert!(a.euler(0.0).yaw.abs() < 60.0);
    }

    #[test]
    fn tilt_converges_and_rejection_flags() {
        let mut a = Ahrs::new(AhrsSettings { acceleration_rejection: 10.0, recovery_trigger_period: 500, ..AhrsSettings::default() }, 100.0).unwrap();
        // 30° roll: gravity along +y/+z in the sensor frame
        let (s, c) = 30f64.to_radians().sin_cos();
        for _ in 0..1000 {
            a.update([0.0; 3], [0.0, s, c], None, 0.01).unwrap();
        }
        let e = a.euler(0.0);
        assert!((e.roll - 30.0).abs() < 0.1 && e.pitch.abs() < 0.1, "{e:?}");
        // a violent linear acceleration is rejected
        a.update([0.0; 3], [2.0, s, c], None, 0.01).unwrap();
        assert!(a.flags().acceleration_rejected);
        assert!(matches!(a.update([f64::NAN, 0.0, 0.0], [0.0, 0.0, 1.0], None, 0.01), Err(FusionError::NonFinite(_))));
        assert!(a.update([0.0; 3], [0.0, 0.0, 1.0], None, 0.0).is_err());
        assert!(Ahrs::new(AhrsSettings::default(), 0.0).is_err());
    }
}
