//! WGS84 geodetic ↔ ECEF ↔ local ENU tangent plane.

use nalgebra::{Matrix3, Vector3};
use serde::{Deserialize, Serialize};

use crate::error::{FusionError, Result, ensure_finite};

const WGS84_A: f64 = 6_378_137.0;
const WGS84_F: f64 = 1.0 / 298.257_223_563;

/// A geodetic position (degrees, degrees, metres above the ellipsoid).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geodetic {
    /// latitude (deg)
    pub lat_deg: f64,
    /// longitude (deg)
    pub lon_deg: f64,
    /// altitude (m)
    pub alt_m: f64,
}

impl Geodetic {
    /// Validated constructor.
    ///
    /// # Errors
    /// Non-finite values or latitude/longitude out of range.
    pub fn new(lat_deg: f64, lon_deg: f64, alt_m: f64) -> Result<Self> {
        ensure_finite([lat_deg, lon_deg, alt_m].iter(), "geodetic position")?;
        if !(-90.0..=90.0).contains(&lat_deg) || !(-180.0..=360.0).contains(&lon_deg) {
            return Err(FusionError::Parse(format!("latitude/longitude out of range: {lat_deg}, {lon_deg}")));
        }
        Ok(Self { lat_deg, lon_deg, alt_m })
    }

    /// Earth-centred, earth-fixed coordinates (m).
    #[must_use]
    pub fn to_ecef(&self) -> Vector3<f64> {
        let e2 = WGS84_F * (2.0 - WGS84_F);
        let (sl, cl) = self.lat_deg.to_radians().sin_cos();
        let (so, co) = self.lon_deg.to_radians().sin_cos();
        let n = WGS84_A / (1.0 - e2 * sl * sl).sqrt();
        Vector3::new((n + self.alt_m) * cl * co, (n + self.alt_m) * cl * so, (n * (1.0 - e2) + self.alt_m) * sl)
    }
}

/// A local east-north-up frame anchored at a datum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnuFrame {
    origin: Vector3<f64>,
    ecef_to_enu: Matrix3<f64>,
}

impl EnuFrame {
    /// ENU frame with its origin at `datum`.
    #[must_use]
    pub fn new(datum: &Geodetic) -> Self {
        let (sl, cl) = datum.lat_deg.to_radians().sin_cos();
        let (so, co) = datum.lon_deg.to_radians().sin_cos();
        let ecef_to_enu = Matrix3::new(-so, co, 0.0, -sl * co, -sl * so, cl, cl * co, cl * so, sl);
        Self { origin: datum.to_ecef(), ecef_to_enu }
    }

    /// East, north, up (m) of a geodetic position.
    #[must_use]
    pub fn to_enu(&self, p: &Geodetic) -> Vector3<f64> {
        self.ecef_to_enu * (p.to_ecef() - self.origin)
    }

    /// Rotation taking ENU vectors to ECEF (used to rotate covariances).
    #[must_use]
    pub fn rotation_ecef_to_enu(&self) -> Matrix3<f64> {
        self.ecef_to_enu
    }

    /// ECEF origin and ECEF → ENU rotation (column-major), exactly as held (for persistence).
    pub(crate) fn parts(&self) -> ([f64; 3], [f64; 9]) {
        let mut rot = [0.0; 9];
        rot.copy_from_slice(self.ecef_to_enu.as_slice());
        ([self.origin.x, self.origin.y, self.origin.z], rot)
    }

    /// Inverse of [`EnuFrame::parts`].
    ///
    /// # Errors
    /// Non-finite values.
    pub(crate) fn from_parts(origin: &[f64; 3], rotation: &[f64; 9]) -> Result<Self> {
        ensure_finite(origin.iter().chain(rotation), "enu frame")?;
        Ok(Self { origin: Vector3::from_column_slice(origin), ecef_to_enu: Matrix3::from_column_slice(rotation) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecef_known_point() {
        // equator / prime meridian at sea level lies on the x axis at the semi-major axis
        let p = Geodetic::new(0.0, 0.0, 0.0).unwrap().to_ecef();
        assert!((p.x - 6_378_137.0).abs() < 1e-6 && p.y.abs() < 1e-6 && p.z.abs() < 1e-6);
        let pole = Geodetic::new(90.0, 0.0, 0.0).unwrap().to_ecef();
        assert!((pole.z - 6_356_752.314_245).abs() < 1e-3);
    }

    #[test]
    fn enu_small_offsets() {
        let d = Geodetic::new(42.375812, -71.147394, 7.3).unwrap();
        let f = EnuFrame::new(&d);
        // 1e-5 deg of latitude ≈ 1.11 m north
        let n = f.to_enu(&Geodetic::new(42.375822, -71.147394, 7.3).unwrap());
        assert!(n.x.abs() < 1e-3 && (n.y - 1.1106).abs() < 2e-3 && n.z.abs() < 1e-3, "{n:?}");
        let e = f.to_enu(&Geodetic::new(42.375812, -71.147384, 8.3).unwrap());
        assert!((e.x - 0.8222).abs() < 2e-3 && e.y.abs() < 1e-3 && (e.z - 1.0).abs() < 1e-3, "{e:?}");
        assert!(Geodetic::new(f64::NAN, 0.0, 0.0).is_err());
        assert!(Geodetic::new(91.0, 0.0, 0.0).is_err());
    }
}
