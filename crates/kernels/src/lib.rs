//! Kernels that run the same domain code natively and inside the `kernels` test component, so
//! `cargo bench -p edgecell --bench kernels` can state "wasm ÷ native" from one run.
//!
//! Each kernel builds its inputs deterministically, runs `iterations` steps and returns a
//! checksum, so neither side can skip work and both can be compared for equality.

#![forbid(unsafe_code)]

use edgecell_fusion::localizer::{Header, ImuMessage};
use edgecell_fusion::{Localizer, preset};
use edgecell_v2x::config::Config;
use edgecell_v2x::decode::cam_fields_to_observation;
use edgecell_v2x::uper_cam::decode_cam;
use edgecell_v2x::validator::Validator;

/// Names accepted by [`run`].
pub const KERNELS: [&str; 3] = ["ekf_imu_update", "v2x_unsigned_cam", "trig"];

/// Why a kernel could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}

/// Run kernel `name` for `iterations` steps; returns its checksum.
///
/// # Errors
/// An unknown kernel name or a domain error.
pub fn run(name: &str, iterations: u32) -> Result<f64, KernelError> {
    match name {
        "ekf_imu_update" => ekf_imu_update(iterations),
        "v2x_unsigned_cam" => v2x_unsigned_cam(iterations),
        "trig" => Ok(trig(iterations)),
        other => Err(KernelError(format!("unknown kernel {other:?} (known: {})", KERNELS.join(", ")))),
    }
}

/// A unit phasor turned by a fixed angle each step: the test signals below without a `sin` or
/// `cos` call per step, so the EKF kernel times the filter and not the harness's libm (which
/// [`trig`] measures on its own).
struct Phasor {
    sin: f64,
    cos: f64,
    step_sin: f64,
    step_cos: f64,
}

impl Phasor {
    fn new(step: f64) -> Self {
        Self { sin: 0.0, cos: 1.0, step_sin: step.sin(), step_cos: step.cos() }
    }

    fn advance(&mut self) {
        let (s, c) = (self.sin, self.cos);
        self.sin = s * self.step_cos + c * self.step_sin;
        self.cos = c * self.step_cos - s * self.step_sin;
    }
}

/// The 15-state EKF of robot_localization's test2 preset: predict to each 100 Hz IMU message and
/// update orientation, angular velocity and acceleration (9 fields) in Joseph form. The vehicle
/// turns at 0.05 rad/s and accelerates along x with 0.2 sin(0.3 t) m/s².
fn ekf_imu_update(iterations: u32) -> Result<f64, KernelError> {
    const DT: f64 = 0.01;
    const YAW_RATE: f64 = 0.05;
    let cfg = preset("robot-localization-test2").map_err(|e| KernelError(e.to_string()))?;
    let mut loc = Localizer::new(cfg).map_err(|e| KernelError(e.to_string()))?;
    let idx = loc.sensor_index("imu0").map_err(|e| KernelError(e.to_string()))?;
    let cov = [1e-3, 0.0, 0.0, 0.0, 1e-3, 0.0, 0.0, 0.0, 1e-3];
    // half the yaw angle (the quaternion's z and w) and the acceleration's phase
    let mut half_yaw = Phasor::new(YAW_RATE * DT / 2.0);
    let mut accel = Phasor::new(0.3 * DT);
    let mut msg = ImuMessage {
        header: Header { stamp: 1.0, frame_id: "base_link".into() },
        orientation: [0.0, 0.0, 0.0, 1.0],
        orientation_covariance: cov,
        angular_velocity: [0.0, 0.0, YAW_RATE],
        angular_velocity_covariance: cov,
        linear_acceleration: [0.0, 0.0, 9.80665],
        linear_acceleration_covariance: cov,
    };
    let mut checksum = 0.0;
    for k in 0..iterations {
        msg.header.stamp = 1.0 + f64::from(k) * DT;
        msg.orientation[2] = half_yaw.sin;
        msg.orientation[3] = half_yaw.cos;
        msg.linear_acceleration[0] = 0.2 * accel.sin;
        let reports = loc.process_imu(idx, &msg).map_err(|e| KernelError(e.to_string()))?;
        checksum += reports.iter().map(|r| r.nis).sum::<f64>();
        half_yaw.advance();
        accel.advance();
    }
    let p = loc.pose();
    Ok(checksum + p.x + p.y + p.yaw)
}

/// A real UPER CAM (c-its-parser's test message) decoded and validated with the default
/// configuration each step, through the code the component runs on both sides: the compact
/// CAM decoder (`uper_cam`; native builds otherwise decode with c-its-parser, which does not
/// build for wasm32), then the plausibility checks and the sender's history.
fn v2x_unsigned_cam(iterations: u32) -> Result<f64, KernelError> {
    const CAM: &[u8] = include_bytes!("../../v2x/testdata/c-its-parser-cam.uper");
    // an ITS time 10 ms after the CAM's generationDeltaTime (51,136)
    let base = 700_000_000_000u64;
    let now_ms = base - base % 65_536 + 51_136 + 10;
    #[allow(clippy::cast_precision_loss)]
    let rcv_s = now_ms as f64 / 1000.0;
    let mut v = Validator::new(Config::default()).map_err(|e| KernelError(e.to_string()))?;
    let mut checksum = 0.0;
    for _ in 0..iterations {
        let fields = decode_cam(CAM).map_err(|e| KernelError(e.to_string()))?;
        let obs = cam_fields_to_observation(&fields, now_ms);
        let r = v.validate_observation(&obs, rcv_s, None, false, Vec::new());
        #[allow(clippy::cast_precision_loss)]
        let checks = r.checks.len() as f64;
        checksum += r.score + f64::from(r.generation_delta_time) + checks;
    }
    Ok(checksum)
}

/// The libm functions the filters use (`sin`, `cos`, `atan2`, `asin`), one of each per step:
/// shows how much of a filter's wasm ÷ native ratio is the maths library's.
fn trig(iterations: u32) -> f64 {
    let mut acc = 0.0;
    for k in 0..iterations {
        let x = f64::from(k) * 1e-3;
        acc += x.sin() + x.cos() + x.atan2(1.0 + x) + (x / (1.0 + x)).asin();
    }
    acc
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_are_deterministic_and_names_are_checked() {
        let a = super::run("ekf_imu_update", 200).unwrap();
        let b = super::run("ekf_imu_update", 200).unwrap();
        assert!(a.is_finite());
        assert_eq!(a.to_bits(), b.to_bits());
        assert!(super::run("trig", 100).unwrap().is_finite());
        let cam = super::run("v2x_unsigned_cam", 10).unwrap();
        assert!(cam > 10.0 * 51_136.0, "{cam}");
        assert!(super::run("nope", 1).is_err());
    }
}
