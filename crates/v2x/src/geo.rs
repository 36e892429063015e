//! Geodesy helpers: WGS84 <-> local east/north frame, planar vector maths.

use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A point in a local metric frame: x east, y north (metres).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Xy {
    /// East, metres.
    pub x: f64,
    /// North, metres.
    pub y: f64,
}

impl Xy {
    /// Creates a point.
    #[must_use]
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }
    /// Euclidean distance.
    #[must_use]
    pub fn dist(self, o: Self) -> f64 {
        (self.x - o.x).hypot(self.y - o.y)
    }
    /// Vector difference `self - o`.
    #[must_use]
    #[allow(clippy::should_implement_trait)]
    pub fn sub(self, o: Self) -> Self {
        Self::new(self.x - o.x, self.y - o.y)
    }
    /// Vector sum.
    #[must_use]
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, o: Self) -> Self {
        Self::new(self.x + o.x, self.y + o.y)
    }
    /// Scaled vector.
    #[must_use]
    pub fn scale(self, k: f64) -> Self {
        Self::new(self.x * k, self.y * k)
    }
    /// Dot product.
    #[must_use]
    pub fn dot(self, o: Self) -> f64 {
        self.x * o.x + self.y * o.y
    }
    /// Vector length.
    #[must_use]
    pub fn norm(self) -> f64 {
        self.x.hypot(self.y)
    }
}

/// Unit vector of a compass heading (degrees clockwise from north) in the east/north frame.
#[must_use]
pub fn heading_vector(heading_deg: f64) -> Xy {
    let h = heading_deg.to_radians();
    Xy::new(h.sin(), h.cos())
}

/// Compass heading (degrees clockwise from north, in [0, 360)) of an east/north vector.
#[must_use]
pub fn vector_heading(v: Xy) -> f64 {
    let h = v.x.atan2(v.y).to_degrees();
    if h < 0.0 { h + 360.0 } else { h }
}

/// Smallest absolute difference between two angles in degrees, in [0, 180].
#[must_use]
pub fn angle_diff_deg(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    if d > 180.0 { 360.0 - d } else { d }
}

/// An equirectangular projection around an origin; accurate to well under a metre within a
/// few kilometres, which is all V2X plausibility needs (ranges are < 1 km).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LocalFrame {
    lat0: f64,
    lon0: f64,
    cos_lat0: f64,
}

impl LocalFrame {
    /// A frame with its origin at `lat0`, `lon0` (degrees).
    #[must_use]
    pub fn new(lat0: f64, lon0: f64) -> Self {
        Self {
            lat0,
            lon0,
            cos_lat0: lat0.to_radians().cos(),
        }
    }
    /// Origin latitude, degrees.
    #[must_use]
    pub const fn origin(&self) -> (f64, f64) {
        (self.lat0, self.lon0)
    }
    /// WGS84 degrees to local metres.
    #[must_use]
    pub fn to_local(&self, lat: f64, lon: f64) -> Xy {
        let x = (lon - self.lon0).to_radians() * EARTH_RADIUS_M * self.cos_lat0;
        let y = (lat - self.lat0).to_radians() * EARTH_RADIUS_M;
        Xy::new(x, y)
    }
    /// Local metres to WGS84 degrees (latitude, longitude).
    #[must_use]
    pub fn to_geo(&self, p: Xy) -> (f64, f64) {
        let lat = self.lat0 + (p.y / EARTH_RADIUS_M).to_degrees();
        let lon = if self.cos_lat0.abs() < 1e-12 {
            self.lon0
        } else {
            self.lon0 + (p.x / (EARTH_RADIUS_M * self.cos_lat0)).to_degrees()
        };
        (lat, lon)
    }
}

/// Great-circle distance in metres between two WGS84 points (degrees).
#[must_use]
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Distance from point `p` to segment `a`-`b`.
#[must_use]
pub fn point_segment_distance(p: Xy, a: Xy, b: Xy) -> f64 {
    let ab = b.sub(a);
    let len2 = ab.dot(ab);
    if len2 <= f64::EPSILON {
        return p.dist(a);
    }
    let t = (p.sub(a).dot(ab) / len2).clamp(0.0, 1.0);
    p.dist(a.add(ab.scale(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_frame_round_trip_and_scale() {
        let f = LocalFrame::new(53.55, 9.93);
        let p = f.to_local(53.551, 9.931);
        // 0.001 deg latitude = 111.19 m
        assert!((p.y - 111.195).abs() < 0.01, "{p:?}");
        let (lat, lon) = f.to_geo(p);
        assert!((lat - 53.551).abs() < 1e-12 && (lon - 9.931).abs() < 1e-12);
        let h = haversine_m(53.55, 9.93, 53.551, 9.931);
        assert!((h - p.norm()).abs() < 0.05, "{h} vs {}", p.norm());
    }

    #[test]
    fn headings() {
        assert!((vector_heading(Xy::new(1.0, 0.0)) - 90.0).abs() < 1e-9);
        assert!((vector_heading(Xy::new(0.0, -1.0)) - 180.0).abs() < 1e-9);
        assert!((vector_heading(Xy::new(-1.0, 0.0)) - 270.0).abs() < 1e-9);
        assert!((angle_diff_deg(350.0, 10.0) - 20.0).abs() < 1e-9);
        assert!(
            (point_segment_distance(Xy::new(0.0, 2.0), Xy::new(-1.0, 0.0), Xy::new(1.0, 0.0))
                - 2.0)
                .abs()
                < 1e-12
        );
    }
}
