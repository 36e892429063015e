//! Detector post-processing: NanoDet head decoding, per-class NMS, mapping back to the frame.

use serde::{Deserialize, Serialize};

use crate::coco;
use crate::error::{Result, VisionError};
use crate::preprocess::Letterbox;

/// An axis-aligned box, corners in pixels (`x1 <= x2`, `y1 <= y2`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BBox {
    /// Left.
    pub x1: f32,
    /// Top.
    pub y1: f32,
    /// Right.
    pub x2: f32,
    /// Bottom.
    pub y2: f32,
}

/// `a.max(b)` with the same result (a NaN operand yields the other one), written as a
/// comparison: on wasm32 `f32::max` becomes a call to libm's `fmaxf` (wasm's own `f32.max`
/// propagates NaN), and box arithmetic is in the tracker's and NMS's innermost loops.
#[inline]
fn max_f32(a: f32, b: f32) -> f32 {
    if a > b || b.is_nan() { a } else { b }
}

/// `a.min(b)`, as [`max_f32`].
#[inline]
fn min_f32(a: f32, b: f32) -> f32 {
    if a < b || b.is_nan() { a } else { b }
}

impl BBox {
    /// Builds a box from its corners.
    #[must_use]
    pub const fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        Self { x1, y1, x2, y2 }
    }

    /// Width (0 for degenerate boxes).
    #[must_use]
    pub fn width(&self) -> f32 {
        max_f32(self.x2 - self.x1, 0.0)
    }

    /// Height (0 for degenerate boxes).
    #[must_use]
    pub fn height(&self) -> f32 {
        max_f32(self.y2 - self.y1, 0.0)
    }

    /// Area.
    #[must_use]
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Centre point.
    #[must_use]
    pub fn center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) * 0.5, (self.y1 + self.y2) * 0.5)
    }

    /// Bottom centre (the "feet" point zones and lines are judged by).
    #[must_use]
    pub fn bottom_center(&self) -> (f32, f32) {
        ((self.x1 + self.x2) * 0.5, self.y2)
    }

    /// Intersection over union (0 when either box is empty).
    #[must_use]
    pub fn iou(&self, other: &Self) -> f32 {
        let iw = max_f32(min_f32(self.x2, other.x2) - max_f32(self.x1, other.x1), 0.0);
        let ih = max_f32(min_f32(self.y2, other.y2) - max_f32(self.y1, other.y1), 0.0);
        let inter = iw * ih;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }

    /// As `[x1, y1, x2, y2]`.
    #[must_use]
    pub fn to_array(&self) -> [f32; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }
}

/// One detected object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Class index (COCO-80 for NanoDet).
    pub class_id: u32,
    /// Confidence in 0..1.
    pub score: f32,
    /// Box, in model-input pixels after decoding and in source pixels after mapping back.
    pub bbox: BBox,
}

impl Detection {
    /// COCO name of the class.
    #[must_use]
    pub fn class_name(&self) -> &'static str {
        coco::class_name(self.class_id)
    }
}

/// A borrowed dense row-major `f32` tensor (an inference output).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorView<'a> {
    /// Dimensions.
    pub shape: &'a [usize],
    /// Values, `shape.iter().product()` of them.
    pub data: &'a [f32],
}

/// Non-maximum-suppression settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NmsConfig {
    /// Drop candidates scoring below this.
    pub score_threshold: f32,
    /// Suppress a box overlapping a better one of the same class by more than this IoU.
    pub iou_threshold: f32,
    /// Keep at most this many detections (best first).
    pub max_detections: usize,
}

impl Default for NmsConfig {
    fn default() -> Self {
        Self {
            score_threshold: 0.35,
            iou_threshold: 0.6,
            max_detections: 100,
        }
    }
}

impl NmsConfig {
    /// Checks the thresholds are within 0..=1.
    ///
    /// # Errors
    /// [`VisionError::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.score_threshold)
            || !(0.0..=1.0).contains(&self.iou_threshold)
        {
            return Err(VisionError::InvalidConfig(format!(
                "score {} and iou {} thresholds must be within 0..1",
                self.score_threshold, self.iou_threshold
            )));
        }
        Ok(())
    }
}

/// Per-class greedy NMS. Returns the kept detections sorted by score (descending; ties keep
/// input order), at most `cfg.max_detections`.
#[must_use]
pub fn nms(mut dets: Vec<Detection>, cfg: &NmsConfig) -> Vec<Detection> {
    dets.retain(|d| d.score >= cfg.score_threshold && d.score.is_finite());
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len().min(cfg.max_detections));
    for d in dets {
        if keep.len() >= cfg.max_detections {
            break;
        }
        let suppressed = keep
            .iter()
            .any(|k| k.class_id == d.class_id && k.bbox.iou(&d.bbox) > cfg.iou_threshold);
        if !suppressed {
            keep.push(d);
        }
    }
    keep
}

/// Geometry of a NanoDet (GFL) head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NanoDetHead {
    /// Model input width.
    pub input_width: u32,
    /// Model input height.
    pub input_height: u32,
    /// Feature strides, one pair of outputs per stride.
    pub strides: Vec<u32>,
    /// Number of classes of the score outputs.
    pub num_classes: usize,
    /// Distribution bins per box side (`reg_max + 1`).
    pub bins: usize,
}

impl NanoDetHead {
    /// nanodet-m-416: 416×416, strides 8/16/32, 80 classes, 11 bins.
    #[must_use]
    pub fn nanodet_m_416() -> Self {
        Self {
            input_width: 416,
            input_height: 416,
            strides: vec![8, 16, 32],
            num_classes: 80,
            bins: 11,
        }
    }

    /// Feature-map size (columns, rows) at `stride`.
    #[must_use]
    pub fn grid(&self, stride: u32) -> (usize, usize) {
        let s = stride.max(1);
        (
            self.input_width.div_ceil(s) as usize,
            self.input_height.div_ceil(s) as usize,
        )
    }

    /// Finds the (scores, boxes) output pair for `stride` by shape: `[1, N, classes]` and
    /// `[1, N, 4 * bins]` with `N = grid cells`.
    fn outputs_for<'a>(
        &self,
        outputs: &[TensorView<'a>],
        stride: u32,
    ) -> Result<(&'a [f32], &'a [f32], usize)> {
        let (gw, gh) = self.grid(stride);
        let n = gw * gh;
        let find = |c: usize| {
            outputs.iter().find(|t| {
                // [1, N, C] or [N, C].
                let dims = match t.shape {
                    [1, rest @ ..] if rest.len() == 2 => rest,
                    other => other,
                };
                dims == [n, c] && t.data.len() == n * c
            })
        };
        let scores = find(self.num_classes).ok_or_else(|| {
            VisionError::OutputShape(format!(
                "no [1,{n},{}] score output for stride {stride}",
                self.num_classes
            ))
        })?;
        let boxes = find(4 * self.bins).ok_or_else(|| {
            VisionError::OutputShape(format!(
                "no [1,{n},{}] box output for stride {stride}",
                4 * self.bins
            ))
        })?;
        Ok((scores.data, boxes.data, gw))
    }

    /// Decodes the raw head outputs into candidate detections in model-input pixels (before NMS).
    ///
    /// Anchor `i` of a stride-`s` level sits at column `i % gw`, row `i / gw`; its centre is
    /// `((col + 0.5) s, (row + 0.5) s)`. Each box row holds 4 sides (left, top, right, bottom) ×
    /// `bins` logits; a side's distance is the softmax expectation over bins times `s`.
    /// Every class scoring at least `score_threshold` yields a candidate (multi-label, as
    /// NanoDet's own post-processing does). Outputs are matched by shape, so their order and
    /// names do not matter.
    ///
    /// # Errors
    /// [`VisionError::OutputShape`] when an output of the expected shape is missing,
    /// [`VisionError::InvalidConfig`] for a head without bins or classes.
    pub fn decode(
        &self,
        outputs: &[TensorView<'_>],
        score_threshold: f32,
    ) -> Result<Vec<Detection>> {
        if self.bins == 0 || self.num_classes == 0 {
            return Err(VisionError::InvalidConfig(format!(
                "NanoDet head with {} bins and {} classes",
                self.bins, self.num_classes
            )));
        }
        let mut out = Vec::new();
        let sides = 4 * self.bins;
        let mut probs = vec![0f32; self.bins];
        for &stride in &self.strides {
            let (scores, boxes, gw) = self.outputs_for(outputs, stride)?;
            let s = stride as f32;
            for i in rows_reaching(scores, self.num_classes, score_threshold) {
                let (Some(cls), Some(reg)) = (
                    scores.get(i * self.num_classes..(i + 1) * self.num_classes),
                    boxes.get(i * sides..(i + 1) * sides),
                ) else {
                    continue;
                };
                let cx = ((i % gw) as f32 + 0.5) * s;
                let cy = ((i / gw) as f32 + 0.5) * s;
                let mut dist = [0f32; 4];
                for (d, logits) in dist.iter_mut().zip(reg.chunks_exact(self.bins)) {
                    *d = softmax_expectation(logits, &mut probs) * s;
                }
                let [l, t, r, b] = dist;
                let bbox = BBox::new(cx - l, cy - t, cx + r, cy + b);
                for (c, &p) in cls.iter().enumerate() {
                    if p >= score_threshold {
                        out.push(Detection {
                            class_id: u32::try_from(c).unwrap_or(u32::MAX),
                            score: p,
                            bbox,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The rows (of `row_len` values; a partial last row is ignored) holding a value that reaches
/// `threshold`, in order. The values are scanned flat, 64 at a time, each block a branch-free
/// reduction LLVM vectorises (SSE natively, simd128 on wasm32); only a block that hits has its
/// rows looked at. An early-exit `any` per row would be a compare and branch per value and, in
/// a component, an epoch interruption check per value: almost every anchor of a detector head
/// scores below the threshold in every class.
fn rows_reaching(values: &[f32], row_len: usize, threshold: f32) -> Vec<usize> {
    const B: usize = 64;
    let mut rows = Vec::new();
    if row_len == 0 {
        return rows;
    }
    // rows below this index have been looked at
    let mut next_row = 0;
    let mut rows_in = |start: usize, end: usize, rows: &mut Vec<usize>| {
        for r in (start / row_len).max(next_row)..end.div_ceil(row_len) {
            let hit = values.get(r * row_len..(r + 1) * row_len).is_some_and(|row| row.iter().any(|&v| v >= threshold));
            if hit {
                rows.push(r);
            }
            next_row = r + 1;
        }
    };
    let (blocks, tail) = values.as_chunks::<B>();
    for (b, block) in blocks.iter().enumerate() {
        if block.iter().fold(false, |hit, &v| hit | (v >= threshold)) {
            rows_in(b * B, (b + 1) * B, &mut rows);
        }
    }
    if tail.iter().any(|&v| v >= threshold) {
        rows_in(values.len() - tail.len(), values.len(), &mut rows);
    }
    rows
}

/// `sum_i softmax(logits)_i * i`, numerically stable.
fn softmax_expectation(logits: &[f32], probs: &mut [f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = (l - max).exp();
        sum += *p;
    }
    if sum <= 0.0 || !sum.is_finite() {
        return 0.0;
    }
    let weighted: f32 = probs.iter().enumerate().map(|(i, &p)| i as f32 * p).sum();
    weighted / sum
}

/// Full NanoDet post-processing: decode, per-class NMS, boxes mapped back through `lb` to
/// source pixels. `classes` (if not empty) keeps only those class ids.
///
/// # Errors
/// [`VisionError::OutputShape`], [`VisionError::InvalidConfig`].
pub fn postprocess_nanodet(
    head: &NanoDetHead,
    outputs: &[TensorView<'_>],
    nms_cfg: &NmsConfig,
    lb: &Letterbox,
    classes: &[u32],
) -> Result<Vec<Detection>> {
    nms_cfg.validate()?;
    let mut cands = head.decode(outputs, nms_cfg.score_threshold)?;
    if !classes.is_empty() {
        cands.retain(|d| classes.contains(&d.class_id));
    }
    let mut kept = nms(cands, nms_cfg);
    for d in &mut kept {
        d.bbox = lb.to_source(d.bbox);
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::rows_reaching;

    #[test]
    fn rows_reaching_finds_the_rows_a_per_row_scan_finds() {
        let mut state = 0x9e37_79b9_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            f32::from(u16::try_from(state >> 16).unwrap_or(0)) / 65535.0
        };
        for row_len in [1, 3, 7, 63, 64, 65, 80, 200] {
            for len in [0, 1, 63, 64, 65, 1000, 4096 + 17] {
                for threshold in [0.5, 0.99, 0.9999, 2.0] {
                    let values: Vec<f32> = (0..len).map(|_| next()).collect();
                    let want: Vec<usize> = values
                        .chunks_exact(row_len)
                        .enumerate()
                        .filter(|(_, row)| row.iter().any(|&v| v >= threshold))
                        .map(|(i, _)| i)
                        .collect();
                    assert_eq!(rows_reaching(&values, row_len, threshold), want, "rows of {row_len}, {len} values, {threshold}");
                }
            }
        }
        assert!(rows_reaching(&[1.0; 10], 0, 0.5).is_empty());
        // NaN never reaches a threshold
        assert!(rows_reaching(&[f32::NAN; 100], 10, 0.0).is_empty());
    }

    #[test]
    fn a_head_without_bins_or_classes_is_a_typed_error() {
        use super::{NanoDetHead, TensorView, VisionError};
        let data = [0.5f32; 16];
        let views = [TensorView { shape: &[1, 4, 4], data: &data }];
        for (bins, num_classes) in [(0, 80), (11, 0)] {
            let head = NanoDetHead { bins, num_classes, ..NanoDetHead::nanodet_m_416() };
            assert!(matches!(head.decode(&views, 0.3), Err(VisionError::InvalidConfig(_))));
        }
    }
}
