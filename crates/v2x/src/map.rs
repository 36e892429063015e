//! Road map from GeoJSON line strings, for the map plausibility check.

use serde_json::Value;

use crate::error::V2xError;
use crate::geo::{LocalFrame, Xy, point_segment_distance};

/// Coordinates of a road map: WGS84 (`[lon, lat]`, GeoJSON's order) or a local metric frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapFrame {
    #[default]
    /// GeoJSON positions are `[longitude, latitude]` degrees.
    Wgs84,
    /// GeoJSON positions are `[x, y]` metres in the same local frame as the VeReMi trace.
    Local,
}

/// Road centre lines as polylines (raw coordinates, projected on demand).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoadMap {
    /// Line strings as raw `(a, b)` pairs: `(lon, lat)` or `(x, y)`.
    pub lines: Vec<Vec<(f64, f64)>>,
}

/// Road map projected into the validator's local frame, with a coarse grid index.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectedMap {
    segments: Vec<(Xy, Xy)>,
    cell: f64,
    grid: std::collections::HashMap<(i64, i64), Vec<usize>>,
}

impl RoadMap {
    /// Parses GeoJSON: a FeatureCollection, Feature or bare geometry of LineString /
    /// MultiLineString (other geometries are ignored).
    ///
    /// # Errors
    /// [`V2xError::InvalidConfig`] when the JSON is invalid or holds no line string.
    pub fn from_geojson(s: &str) -> Result<Self, V2xError> {
        let v: Value =
            serde_json::from_str(s).map_err(|e| V2xError::InvalidConfig(format!("map: {e}")))?;
        let mut map = Self::default();
        collect(&v, &mut map.lines, 0)?;
        if map.lines.is_empty() {
            return Err(V2xError::InvalidConfig(
                "map: no LineString geometry".into(),
            ));
        }
        Ok(map)
    }

    /// First vertex (an origin candidate).
    #[must_use]
    pub fn first_vertex(&self) -> Option<(f64, f64)> {
        self.lines.iter().find_map(|l| l.first().copied())
    }

    /// Projects into the local frame (`frame` is used only for WGS84 maps).
    #[must_use]
    pub fn project(&self, kind: MapFrame, frame: &LocalFrame) -> ProjectedMap {
        let to_xy = |(a, b): (f64, f64)| match kind {
            MapFrame::Wgs84 => frame.to_local(b, a),
            MapFrame::Local => Xy::new(a, b),
        };
        let mut segments = Vec::new();
        for line in &self.lines {
            for w in line.windows(2) {
                if let [a, b] = w {
                    segments.push((to_xy(*a), to_xy(*b)));
                }
            }
            if line.len() == 1
                && let Some(a) = line.first()
            {
                segments.push((to_xy(*a), to_xy(*a)));
            }
        }
        ProjectedMap::new(segments, 50.0)
    }
}

fn collect(v: &Value, out: &mut Vec<Vec<(f64, f64)>>, depth: usize) -> Result<(), V2xError> {
    if depth > 8 {
        return Err(V2xError::InvalidConfig("map: nesting too deep".into()));
    }
    match v.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => {
            for f in v
                .get("features")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                collect(f, out, depth + 1)?;
            }
        }
        Some("Feature") => {
            if let Some(g) = v.get("geometry") {
                collect(g, out, depth + 1)?;
            }
        }
        Some("GeometryCollection") => {
            for g in v
                .get("geometries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                collect(g, out, depth + 1)?;
            }
        }
        Some("LineString") => out.push(line(v.get("coordinates"))?),
        Some("MultiLineString") => {
            for l in v
                .get("coordinates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push(line(Some(l))?);
            }
        }
        _ => {}
    }
    Ok(())
}

fn line(v: Option<&Value>) -> Result<Vec<(f64, f64)>, V2xError> {
    let arr = v
        .and_then(Value::as_array)
        .ok_or_else(|| V2xError::InvalidConfig("map: LineString without coordinates".into()))?;
    arr.iter()
        .map(|p| {
            let a = p.get(0).and_then(Value::as_f64);
            let b = p.get(1).and_then(Value::as_f64);
            match (a, b) {
                (Some(a), Some(b)) if a.is_finite() && b.is_finite() => Ok((a, b)),
                _ => Err(V2xError::InvalidConfig("map: bad coordinate".into())),
            }
        })
        .collect()
}

impl ProjectedMap {
    fn new(segments: Vec<(Xy, Xy)>, cell: f64) -> Self {
        let mut grid: std::collections::HashMap<(i64, i64), Vec<usize>> =
            std::collections::HashMap::new();
        for (i, (a, b)) in segments.iter().enumerate() {
            let (x0, x1) = (a.x.min(b.x), a.x.max(b.x));
            let (y0, y1) = (a.y.min(b.y), a.y.max(b.y));
            let (cx0, cx1, cy0, cy1) = (
                cell_of(x0, cell),
                cell_of(x1, cell),
                cell_of(y0, cell),
                cell_of(y1, cell),
            );
            if (cx1 - cx0 + 1).saturating_mul(cy1 - cy0 + 1) > 10_000 {
                grid.entry((i64::MIN, i64::MIN)).or_default().push(i);
                continue;
            }
            for cx in cx0..=cx1 {
                for cy in cy0..=cy1 {
                    grid.entry((cx, cy)).or_default().push(i);
                }
            }
        }
        Self {
            segments,
            cell,
            grid,
        }
    }

    /// Number of segments.
    #[must_use]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Distance from `p` to the nearest road segment (searching the 3x3 neighbouring cells
    /// first, all segments when nothing is near).
    #[must_use]
    pub fn distance_to_road(&self, p: Xy) -> f64 {
        let (cx, cy) = (cell_of(p.x, self.cell), cell_of(p.y, self.cell));
        let mut best = f64::INFINITY;
        for dx in -1..=1 {
            for dy in -1..=1 {
                for &i in self.grid.get(&(cx + dx, cy + dy)).into_iter().flatten() {
                    if let Some((a, b)) = self.segments.get(i) {
                        best = best.min(point_segment_distance(p, *a, *b));
                    }
                }
            }
        }
        for &i in self.grid.get(&(i64::MIN, i64::MIN)).into_iter().flatten() {
            if let Some((a, b)) = self.segments.get(i) {
                best = best.min(point_segment_distance(p, *a, *b));
            }
        }
        if best <= self.cell {
            return best;
        }
        self.segments
            .iter()
            .fold(best, |m, (a, b)| m.min(point_segment_distance(p, *a, *b)))
    }
}

fn cell_of(v: f64, cell: f64) -> i64 {
    // Saturating float-to-int conversion is intended.
    #[allow(clippy::cast_possible_truncation)]
    let c = (v / cell).floor() as i64;
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geojson_lines_and_distance() {
        let g = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{},"geometry":{"type":"LineString","coordinates":[[0,0],[100,0]]}},
            {"type":"Feature","properties":{},"geometry":{"type":"MultiLineString","coordinates":[[[0,0],[0,500]]]}},
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[5,5]}}]}"#;
        let m = RoadMap::from_geojson(g).unwrap_or_default();
        assert_eq!(m.lines.len(), 2);
        let p = m.project(MapFrame::Local, &LocalFrame::new(0.0, 0.0));
        assert_eq!(p.segment_count(), 2);
        assert!((p.distance_to_road(Xy::new(50.0, 3.0)) - 3.0).abs() < 1e-9);
        assert!((p.distance_to_road(Xy::new(-4.0, 300.0)) - 4.0).abs() < 1e-9);
        assert!((p.distance_to_road(Xy::new(400.0, -300.0)) - 300.0f64.hypot(300.0)).abs() < 1e-6);
    }

    #[test]
    fn bad_geojson_is_config_error() {
        assert!(matches!(
            RoadMap::from_geojson("{"),
            Err(V2xError::InvalidConfig(_))
        ));
        assert!(matches!(
            RoadMap::from_geojson(r#"{"type":"Point","coordinates":[1,2]}"#),
            Err(V2xError::InvalidConfig(_))
        ));
        assert!(matches!(
            RoadMap::from_geojson(r#"{"type":"LineString","coordinates":[[1,"a"]]}"#),
            Err(V2xError::InvalidConfig(_))
        ));
    }
}
