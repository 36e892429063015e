//! Kernels that run the same domain code natively and inside the `kernels` test component, so
//! `cargo bench -p edgecell --bench kernels` can state "wasm ÷ native" from one run.
//!
//! Each kernel builds its inputs deterministically, runs `iterations` steps and returns a
//! checksum, so neither side can skip work and both can be compared for equality.

#![forbid(unsafe_code)]

use edgecell_fusion::localizer::{Header, ImuMessage};
use edgecell_fusion::{Localizer, preset};

/// Names accepted by [`run`].
pub const KERNELS: [&str; 1] = ["ekf_imu_update"];

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
        other => Err(KernelError(format!("unknown kernel {other:?} (known: {})", KERNELS.join(", ")))),
    }
}

/// The 15-state EKF of robot_localization's test2 preset: predict to each 100 Hz IMU message and
/// update orientation, angular velocity and acceleration (9 fields) in Joseph form.
fn ekf_imu_update(iterations: u32) -> Result<f64, KernelError> {
    let cfg = preset("robot-localization-test2").map_err(|e| KernelError(e.to_string()))?;
    let mut loc = Localizer::new(cfg).map_err(|e| KernelError(e.to_string()))?;
    let idx = loc.sensor_index("imu0").map_err(|e| KernelError(e.to_string()))?;
    let cov = [1e-3, 0.0, 0.0, 0.0, 1e-3, 0.0, 0.0, 0.0, 1e-3];
    let mut checksum = 0.0;
    for k in 0..iterations {
        let t = f64::from(k) * 0.01;
        let yaw = 0.1 * (t * 0.5).sin();
        let msg = ImuMessage {
            header: Header { stamp: 1.0 + t, frame_id: "base_link".into() },
            orientation: [0.0, 0.0, (yaw / 2.0).sin(), (yaw / 2.0).cos()],
            orientation_covariance: cov,
            angular_velocity: [0.0, 0.0, 0.05 * (t * 0.5).cos()],
            angular_velocity_covariance: cov,
            linear_acceleration: [0.2 * (t * 0.3).sin(), 0.0, 9.80665],
            linear_acceleration_covariance: cov,
        };
        let reports = loc.process_imu(idx, &msg).map_err(|e| KernelError(e.to_string()))?;
        checksum += reports.iter().map(|r| r.nis).sum::<f64>();
    }
    let p = loc.pose();
    Ok(checksum + p.x + p.y + p.yaw)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_are_deterministic_and_names_are_checked() {
        let a = super::run("ekf_imu_update", 200).unwrap();
        let b = super::run("ekf_imu_update", 200).unwrap();
        assert!(a.is_finite());
        assert_eq!(a.to_bits(), b.to_bits());
        assert!(super::run("nope", 1).is_err());
    }
}
