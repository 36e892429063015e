//! Road map from GeoJSON line strings, for the map plausibility check.

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
        let mut de = serde_json::Deserializer::from_str(s);
        let v = serde::de::DeserializeSeed::deserialize(Want::Node, &mut de)
            .and_then(|v| de.end().map(|()| v))
            .map(|got| match got {
                Got::Node(n) => n,
                _ => Node::Other,
            })
            .map_err(|e| V2xError::InvalidConfig(format!("map: {e}")))?;
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

// ---- GeoJSON reading -------------------------------------------------------------------------
//
// The map arrives as one JSON text (a 190 kB scenario map is common). It is read straight into
// the few members the map needs, not into a `serde_json::Value` first: the `Value` tree of such a
// map took ~900 KiB of an actor's linear memory while it existed. The members kept and the way
// they are interpreted are exactly those of the former `Value` walk (kept in the tests as the
// reference): `type` (when a string), `features`/`geometries` (when arrays), `geometry` (any
// value) and `coordinates`; everything else is skipped without being stored. Duplicate keys keep
// the last value, as a JSON object map does.

/// A JSON value as far as the map reader cares.
enum Node {
    Object(Box<GeoObject>),
    Other,
}

#[derive(Default)]
struct GeoObject {
    kind: Option<String>,
    features: Option<Vec<Node>>,
    geometry: Option<Node>,
    geometries: Option<Vec<Node>>,
    /// `coordinates` when it is an array.
    coordinates: Option<Vec<CoordItem>>,
}

/// What the reader is after at one place in the text. One visitor type for all of them, so
/// serde_json's (large) `deserialize_any` is instantiated once.
#[derive(Clone, Copy)]
enum Want {
    /// Any value: an object is read as a [`GeoObject`], the rest skipped.
    Node,
    /// A string.
    Str,
    /// An array of nodes.
    Nodes,
    /// A `coordinates` array.
    Coords,
    /// One element of `coordinates` (an array).
    Item,
    /// An element of such an element: a number, or an array whose elements 0 and 1 are taken.
    Element,
    /// A number.
    Number,
}

/// What was read; `Skipped` when the value was not of the kind wanted.
enum Got {
    Skipped,
    Node(Node),
    Str(String),
    Nodes(Vec<Node>),
    Coords(Vec<CoordItem>),
    Item(CoordItem),
    Number(f64),
    /// An array with its elements 0 and 1 when both are finite numbers.
    Position(Option<(f64, f64)>),
}

/// One element of a `coordinates` array, read both ways, since `type` may come after it: as a
/// position (LineString) and as a line of positions (MultiLineString).
struct CoordItem {
    /// Elements 0 and 1 as finite numbers.
    position: Option<(f64, f64)>,
    line: ItemLine,
}

enum ItemLine {
    NotArray,
    Line(Vec<(f64, f64)>),
    BadCoordinate,
}

impl<'de> serde::de::DeserializeSeed<'de> for Want {
    type Value = Got;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Got, D::Error> {
        d.deserialize_any(self)
    }
}

/// Keeps element `i` of an array in `first` (elements 0 and 1) when it is a number.
fn note_first(first: &mut [Option<f64>; 2], i: usize, got: &Got) {
    if let Some(slot) = first.get_mut(i) {
        *slot = match got {
            Got::Number(n) => Some(*n),
            _ => None,
        };
    }
}

fn finite_pair(first: [Option<f64>; 2]) -> Option<(f64, f64)> {
    match first {
        [Some(a), Some(b)] if a.is_finite() && b.is_finite() => Some((a, b)),
        _ => None,
    }
}

impl Want {
    fn number(self, v: f64) -> Got {
        match self {
            Self::Element | Self::Number => Got::Number(v),
            Self::Node => Got::Node(Node::Other),
            _ => Got::Skipped,
        }
    }

    fn scalar(self) -> Got {
        match self {
            Self::Node => Got::Node(Node::Other),
            _ => Got::Skipped,
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Want {
    type Value = Got;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Got, E> {
        Ok(self.scalar())
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_i64<E>(self, v: i64) -> Result<Got, E> {
        Ok(self.number(v as f64))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E>(self, v: u64) -> Result<Got, E> {
        Ok(self.number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Got, E> {
        Ok(self.number(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Got, E> {
        Ok(match self {
            Self::Str => Got::Str(v.to_owned()),
            other => other.scalar(),
        })
    }
    fn visit_unit<E>(self) -> Result<Got, E> {
        Ok(self.scalar())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Got, A::Error> {
        match self {
            Self::Nodes => {
                let mut nodes = Vec::new();
                while let Some(got) = seq.next_element_seed(Self::Node)? {
                    if let Got::Node(n) = got {
                        nodes.push(n);
                    }
                }
                Ok(Got::Nodes(nodes))
            }
            Self::Coords => {
                let mut items = Vec::new();
                while let Some(got) = seq.next_element_seed(Self::Item)? {
                    items.push(match got {
                        Got::Item(i) => i,
                        _ => CoordItem {
                            position: None,
                            line: ItemLine::NotArray,
                        },
                    });
                }
                Ok(Got::Coords(items))
            }
            Self::Item => {
                let mut first = [None, None];
                let mut line = Some(Vec::new());
                let mut i = 0usize;
                while let Some(got) = seq.next_element_seed(Self::Element)? {
                    note_first(&mut first, i, &got);
                    i += 1;
                    line = match (line, got) {
                        (Some(mut l), Got::Position(Some(p))) => {
                            l.push(p);
                            Some(l)
                        }
                        _ => None,
                    };
                }
                let line = line.map_or(ItemLine::BadCoordinate, ItemLine::Line);
                Ok(Got::Item(CoordItem {
                    position: finite_pair(first),
                    line,
                }))
            }
            Self::Element => {
                let mut first = [None, None];
                let mut i = 0usize;
                while let Some(got) = seq.next_element_seed(Self::Number)? {
                    note_first(&mut first, i, &got);
                    i += 1;
                }
                Ok(Got::Position(finite_pair(first)))
            }
            Self::Node | Self::Str | Self::Number => {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(self.scalar())
            }
        }
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Got, A::Error> {
        if !matches!(self, Self::Node) {
            while map
                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                .is_some()
            {}
            return Ok(Got::Skipped);
        }
        let mut o = GeoObject::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => {
                    o.kind = match map.next_value_seed(Self::Str)? {
                        Got::Str(s) => Some(s),
                        _ => None,
                    };
                }
                "features" | "geometries" => {
                    let nodes = match map.next_value_seed(Self::Nodes)? {
                        Got::Nodes(n) => Some(n),
                        _ => None,
                    };
                    if key == "features" {
                        o.features = nodes;
                    } else {
                        o.geometries = nodes;
                    }
                }
                "geometry" => {
                    o.geometry = match map.next_value_seed(Self::Node)? {
                        Got::Node(n) => Some(n),
                        _ => Some(Node::Other),
                    };
                }
                "coordinates" => {
                    o.coordinates = match map.next_value_seed(Self::Coords)? {
                        Got::Coords(c) => Some(c),
                        _ => None,
                    };
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Got::Node(Node::Object(Box::new(o))))
    }
}

fn bad_coordinate() -> V2xError {
    V2xError::InvalidConfig("map: bad coordinate".into())
}

fn without_coordinates() -> V2xError {
    V2xError::InvalidConfig("map: LineString without coordinates".into())
}

fn collect(v: &Node, out: &mut Vec<Vec<(f64, f64)>>, depth: usize) -> Result<(), V2xError> {
    if depth > 8 {
        return Err(V2xError::InvalidConfig("map: nesting too deep".into()));
    }
    let Node::Object(o) = v else {
        return Ok(());
    };
    match o.kind.as_deref() {
        Some("FeatureCollection") => {
            for f in o.features.iter().flatten() {
                collect(f, out, depth + 1)?;
            }
        }
        Some("Feature") => {
            if let Some(g) = &o.geometry {
                collect(g, out, depth + 1)?;
            }
        }
        Some("GeometryCollection") => {
            for g in o.geometries.iter().flatten() {
                collect(g, out, depth + 1)?;
            }
        }
        Some("LineString") => {
            let items = o.coordinates.as_ref().ok_or_else(without_coordinates)?;
            out.push(
                items
                    .iter()
                    .map(|i| i.position.ok_or_else(bad_coordinate))
                    .collect::<Result<_, _>>()?,
            );
        }
        Some("MultiLineString") => {
            for i in o.coordinates.iter().flatten() {
                match &i.line {
                    ItemLine::NotArray => return Err(without_coordinates()),
                    ItemLine::BadCoordinate => return Err(bad_coordinate()),
                    ItemLine::Line(l) => out.push(l.clone()),
                }
            }
        }
        _ => {}
    }
    Ok(())
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

    use serde_json::Value;

    /// The former reader: the whole text into a `serde_json::Value`, then this walk.
    fn reference(s: &str) -> Result<RoadMap, V2xError> {
        let v: Value =
            serde_json::from_str(s).map_err(|e| V2xError::InvalidConfig(format!("map: {e}")))?;
        let mut map = RoadMap::default();
        reference_collect(&v, &mut map.lines, 0)?;
        if map.lines.is_empty() {
            return Err(V2xError::InvalidConfig(
                "map: no LineString geometry".into(),
            ));
        }
        Ok(map)
    }

    fn reference_collect(
        v: &Value,
        out: &mut Vec<Vec<(f64, f64)>>,
        depth: usize,
    ) -> Result<(), V2xError> {
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
                    reference_collect(f, out, depth + 1)?;
                }
            }
            Some("Feature") => {
                if let Some(g) = v.get("geometry") {
                    reference_collect(g, out, depth + 1)?;
                }
            }
            Some("GeometryCollection") => {
                for g in v
                    .get("geometries")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    reference_collect(g, out, depth + 1)?;
                }
            }
            Some("LineString") => out.push(reference_line(v.get("coordinates"))?),
            Some("MultiLineString") => {
                for l in v
                    .get("coordinates")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(reference_line(Some(l))?);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn reference_line(v: Option<&Value>) -> Result<Vec<(f64, f64)>, V2xError> {
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

    /// The streaming reader and the `Value` walk agree, value and error, on maps and on odd and
    /// broken ones (members in any order, duplicates, wrong types, bad coordinates, nesting).
    #[test]
    fn streaming_reader_matches_the_value_walk() {
        let line = r#"{"type":"LineString","coordinates":[[0,0],[100.5,-2e3,7],[1,2,"x"]]}"#;
        let multi = r#"{"coordinates":[[[0,0],[0,500]],[],[[1,1]]],"type":"MultiLineString"}"#;
        let mut nested = line.to_owned();
        for depth in 0..12 {
            nested = if depth % 2 == 0 {
                format!(r#"{{"type":"Feature","geometry":{nested}}}"#)
            } else {
                format!(r#"{{"features":[{nested}, 5, null],"type":"FeatureCollection"}}"#)
            };
            assert_eq!(
                RoadMap::from_geojson(&nested),
                reference(&nested),
                "{nested}"
            );
        }
        let cases = [
            line.to_owned(),
            multi.to_owned(),
            format!(
                r#"{{"type":"FeatureCollection","features":[{line},{multi},{{"type":"Point","coordinates":[5,5]}}]}}"#
            ),
            format!(r#"{{"type":"GeometryCollection","geometries":[{multi},7,{line}]}}"#),
            format!(r#"{{"type":"Feature","geometry":null,"geometry":{line}}}"#),
            format!(r#"{{"type":"Feature","geometry":{line},"geometry":null}}"#),
            format!(r#"{{"type":"Feature","geometry":{line},"type":"Point"}}"#),
            format!(r#"{{"type":5,"geometry":{line}}}"#),
            format!(r#"{{"type":"FeatureCollection","features":{{"a":{line}}}}}"#),
            format!(r#"[{line}]"#),
            r#"{"type":"LineString","coordinates":[[1,2],[3]]}"#.to_owned(),
            r#"{"type":"LineString","coordinates":[[1,2],[[3,4]]]}"#.to_owned(),
            r#"{"type":"LineString","coordinates":[[1,2],5]}"#.to_owned(),
            r#"{"type":"LineString","coordinates":[]}"#.to_owned(),
            r#"{"type":"LineString","coordinates":{"a":1}}"#.to_owned(),
            r#"{"type":"LineString"}"#.to_owned(),
            r#"{"type":"LineString","coordinates":[[1e308,1e308],[-1e308,0.5]]}"#.to_owned(),
            r#"{"type":"LineString","coordinates":[[18446744073709551615,-9223372036854775808]]}"#
                .to_owned(),
            r#"{"type":"MultiLineString","coordinates":[[[1,2]],5]}"#.to_owned(),
            r#"{"type":"MultiLineString","coordinates":[[1,2]]}"#.to_owned(),
            r#"{"type":"MultiLineString","coordinates":[[[1,2]],[[1,"a"]]]}"#.to_owned(),
            r#"{"type":"MultiLineString","coordinates":"none"}"#.to_owned(),
            r#"{"type":"MultiLineString","coordinates":[[[1,2,[3]],[4,5,{}]]]}"#.to_owned(),
            format!("{line} x"),
            format!("{line}  "),
            "{".to_owned(),
            "[[[[[[]]]]]]".to_owned(),
            "null".to_owned(),
        ];
        for c in &cases {
            assert_eq!(RoadMap::from_geojson(c), reference(c), "{c}");
        }
        // the two readers do differ on nesting deeper than serde_json's recursion limit inside
        // members that are skipped: the Value walk refuses it as JSON, the streaming reader
        // skips it (without recursion) and then finds no line string; both are config errors
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(
            matches!(reference(&deep), Err(V2xError::InvalidConfig(m)) if m.contains("recursion limit"))
        );
        assert!(
            matches!(RoadMap::from_geojson(&deep), Err(V2xError::InvalidConfig(m)) if m.contains("no LineString"))
        );
    }

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
