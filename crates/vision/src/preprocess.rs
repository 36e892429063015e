//! Letterbox resize (keep aspect, pad) fused with per-model normalisation into NCHW `f32`.
//!
//! The inner loops work on plain slices so the vertical blend and the plane writes
//! auto-vectorise (SSE/AVX natively, simd128 on wasm32 with `+simd128`); on wasm32 they take
//! several values per iteration (see `blend_rows`).

use serde::{Deserialize, Serialize};

use crate::detect::BBox;
use crate::error::{Result, VisionError};
use crate::frame::RgbImage;

/// Order of the colour planes the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Plane 0 = R, 1 = G, 2 = B.
    Rgb,
    /// Plane 0 = B, 1 = G, 2 = R (OpenCV-trained models such as NanoDet).
    Bgr,
}

/// Per-model input normalisation: `(pixel - mean[c]) / std[c]`, with `mean`/`std` given in the
/// model's plane order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Plane order of the model input.
    pub order: ChannelOrder,
    /// Mean per model plane (0..255 scale).
    pub mean: [f32; 3],
    /// Standard deviation per model plane (0..255 scale).
    pub std: [f32; 3],
    /// Pixel value (R, G, B) used for the letterbox padding before normalisation.
    pub pad_rgb: [u8; 3],
}

impl Normalization {
    /// NanoDet (DESIGN.md §3): BGR planes, mean [103.53, 116.28, 123.675],
    /// std [57.375, 57.12, 58.395], black padding.
    pub const NANODET: Self = Self {
        order: ChannelOrder::Bgr,
        mean: [103.53, 116.28, 123.675],
        std: [57.375, 57.12, 58.395],
        pad_rgb: [0, 0, 0],
    };

    /// Source (RGB) channel feeding each model plane.
    #[must_use]
    pub fn source_channels(&self) -> [usize; 3] {
        match self.order {
            ChannelOrder::Rgb => [0, 1, 2],
            ChannelOrder::Bgr => [2, 1, 0],
        }
    }
}

/// Geometry of a letterbox: the source is scaled into `new_width × new_height` and placed at
/// (`pad_x`, `pad_y`) inside the `dst_width × dst_height` model input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Letterbox {
    /// Source image width.
    pub src_width: u32,
    /// Source image height.
    pub src_height: u32,
    /// Model input width.
    pub dst_width: u32,
    /// Model input height.
    pub dst_height: u32,
    /// Width of the scaled image inside the input.
    pub new_width: u32,
    /// Height of the scaled image inside the input.
    pub new_height: u32,
    /// Left padding in model pixels.
    pub pad_x: u32,
    /// Top padding in model pixels.
    pub pad_y: u32,
}

impl Letterbox {
    /// Computes the letterbox of a `src` image into a `dst` input (aspect kept, centred).
    ///
    /// # Errors
    /// [`VisionError::InvalidDimensions`] when any side is zero.
    pub fn new(src_width: u32, src_height: u32, dst_width: u32, dst_height: u32) -> Result<Self> {
        if src_width == 0 || src_height == 0 || dst_width == 0 || dst_height == 0 {
            return Err(VisionError::InvalidDimensions(format!(
                "letterbox {src_width}x{src_height} -> {dst_width}x{dst_height} has a zero side"
            )));
        }
        let scale = (f64::from(dst_width) / f64::from(src_width))
            .min(f64::from(dst_height) / f64::from(src_height));
        let fit = |src: u32, dst: u32| -> u32 {
            let v = (f64::from(src) * scale).round();
            // In range: 1 <= v <= dst.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let v = v.clamp(1.0, f64::from(dst)) as u32;
            v
        };
        let new_width = fit(src_width, dst_width);
        let new_height = fit(src_height, dst_height);
        Ok(Self {
            src_width,
            src_height,
            dst_width,
            dst_height,
            new_width,
            new_height,
            pad_x: (dst_width - new_width) / 2,
            pad_y: (dst_height - new_height) / 2,
        })
    }

    /// Horizontal scale source → model.
    #[must_use]
    pub fn scale_x(&self) -> f32 {
        self.new_width as f32 / self.src_width as f32
    }

    /// Vertical scale source → model.
    #[must_use]
    pub fn scale_y(&self) -> f32 {
        self.new_height as f32 / self.src_height as f32
    }

    /// Maps a box in model-input pixels back to source pixels, clamped to the source image.
    #[must_use]
    pub fn to_source(&self, b: BBox) -> BBox {
        let (sx, sy) = (self.scale_x(), self.scale_y());
        let (px, py) = (self.pad_x as f32, self.pad_y as f32);
        let (w, h) = (self.src_width as f32, self.src_height as f32);
        BBox {
            x1: ((b.x1 - px) / sx).clamp(0.0, w),
            y1: ((b.y1 - py) / sy).clamp(0.0, h),
            x2: ((b.x2 - px) / sx).clamp(0.0, w),
            y2: ((b.y2 - py) / sy).clamp(0.0, h),
        }
    }

    /// Number of `f32` values of the NCHW input (3 planes).
    #[must_use]
    pub fn tensor_len(&self) -> usize {
        3 * self.dst_width as usize * self.dst_height as usize
    }
}

/// Bilinear source sample positions for one axis (half-pixel centres, edge clamped).
fn axis_taps(src: u32, new: u32) -> Vec<(usize, usize, f32)> {
    let scale = f64::from(src) / f64::from(new);
    let last = f64::from(src - 1);
    (0..new)
        .map(|d| {
            let s = ((f64::from(d) + 0.5) * scale - 0.5).clamp(0.0, last);
            let i0 = s.floor();
            // In range 0..src after the clamp.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i0u = i0 as usize;
            let i1 = (i0u + 1).min(src as usize - 1);
            #[allow(clippy::cast_possible_truncation)]
            let frac = (s - i0) as f32;
            (i0u, i1, frac)
        })
        .collect()
}

/// Reusable buffers for [`letterbox_into`] (avoid reallocating per frame).
#[derive(Debug, Default, Clone)]
pub struct PreprocessScratch {
    row: Vec<f32>,
}

/// Letterboxes `img` into `out` (NCHW, 3 × `dst_height` × `dst_width`) with `norm` applied.
///
/// # Errors
/// [`VisionError::InvalidDimensions`] when `img` does not match `lb` or `out` has the wrong
/// length.
pub fn letterbox_into(
    img: &RgbImage,
    lb: &Letterbox,
    norm: &Normalization,
    scratch: &mut PreprocessScratch,
    out: &mut [f32],
) -> Result<()> {
    if img.width() != lb.src_width || img.height() != lb.src_height {
        return Err(VisionError::InvalidDimensions(format!(
            "image {}x{} does not match letterbox source {}x{}",
            img.width(),
            img.height(),
            lb.src_width,
            lb.src_height
        )));
    }
    if out.len() != lb.tensor_len() {
        return Err(VisionError::InvalidDimensions(format!(
            "output buffer has {} values, input needs {}",
            out.len(),
            lb.tensor_len()
        )));
    }
    // Only the padding and the image area are written, so they must tile the input exactly
    // (always true of `Letterbox::new`; a hand-made or deserialised one is checked here).
    let fits = |pad: u32, new: u32, dst: u32| new >= 1 && pad.checked_add(new).is_some_and(|end| end <= dst);
    if !fits(lb.pad_x, lb.new_width, lb.dst_width) || !fits(lb.pad_y, lb.new_height, lb.dst_height) {
        return Err(VisionError::InvalidDimensions(format!(
            "letterbox places a {}x{} image at ({}, {}) in a {}x{} input",
            lb.new_width, lb.new_height, lb.pad_x, lb.pad_y, lb.dst_width, lb.dst_height
        )));
    }
    let src_w = lb.src_width as usize;
    let dst_w = lb.dst_width as usize;
    let plane = dst_w * lb.dst_height as usize;
    let chans = norm.source_channels();
    let inv_std = norm.std.map(|s| 1.0 / s);
    // value = blended * a + b with a = 1/std, b = -mean/std, per model plane.
    let a = inv_std;
    let b: [f32; 3] = std::array::from_fn(|k| -norm.mean[k] * inv_std[k]);
    let pad: [f32; 3] = std::array::from_fn(|k| f32::from(norm.pad_rgb[chans[k]]) * a[k] + b[k]);
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    let mut planes = [p0, p1, p2];
    let xs = axis_taps(lb.src_width, lb.new_width);
    let ys = axis_taps(lb.src_height, lb.new_height);
    let (pad_x, pad_y) = (lb.pad_x as usize, lb.pad_y as usize);
    let image_rows = pad_y * dst_w..(pad_y + ys.len()) * dst_w;
    // Padding only where the image does not land: the rows above and below it here, the
    // columns beside it row by row below.
    for (k, p) in planes.iter_mut().enumerate() {
        if let Some(top) = p.get_mut(..image_rows.start) {
            top.fill(pad[k]);
        }
        if let Some(bottom) = p.get_mut(image_rows.end..) {
            bottom.fill(pad[k]);
        }
    }
    scratch.row.resize(src_w * 3, 0.0);
    let row = scratch.row.as_mut_slice();
    let src = img.as_raw();
    for (dy, &(y0, y1, fy)) in ys.iter().enumerate() {
        let (Some(r0), Some(r1)) = (
            src.get(y0 * src_w * 3..(y0 + 1) * src_w * 3),
            src.get(y1 * src_w * 3..(y1 + 1) * src_w * 3),
        ) else {
            continue;
        };
        blend_rows(row, r0, r1, fy);
        let line = (pad_y + dy) * dst_w;
        let mut dst = planes.each_mut().map(|p| p.get_mut(line..line + dst_w).unwrap_or_default());
        for (k, d) in dst.iter_mut().enumerate() {
            let right = (pad_x + xs.len()).min(d.len());
            d.get_mut(..pad_x).unwrap_or_default().fill(pad[k]);
            d.get_mut(right..).unwrap_or_default().fill(pad[k]);
        }
        let image = dst.map(|d| d.get_mut(pad_x..pad_x + xs.len()).unwrap_or_default());
        resample_row(row, &xs, norm.order, (a, b), image);
    }
    Ok(())
}

/// `out = r0 * (1 - fy) + r1 * fy`.
///
/// On wasm32 the loop takes 16 values per step: the body becomes straight-line simd128 code
/// with one back-edge per 16 values, and wasmtime's epoch interruption check costs one load and
/// branch per back-edge (the 4-wide loop LLVM makes otherwise ran 1.5x slower in the component).
/// Natively LLVM vectorises the plain loop better than the unrolled one, so there it steps by 1.
fn blend_rows(out: &mut [f32], r0: &[u8], r1: &[u8], fy: f32) {
    const W: usize = if cfg!(target_arch = "wasm32") { 16 } else { 1 };
    let gy = 1.0 - fy;
    let (oc, ot) = out.as_chunks_mut::<W>();
    let (ac, at) = r0.as_chunks::<W>();
    let (bc, bt) = r1.as_chunks::<W>();
    for ((o, s0), s1) in oc.iter_mut().zip(ac).zip(bc) {
        for i in 0..W {
            o[i] = f32::from(s0[i]) * gy + f32::from(s1[i]) * fy;
        }
    }
    for ((o, &s0), &s1) in ot.iter_mut().zip(at).zip(bt) {
        *o = f32::from(s0) * gy + f32::from(s1) * fy;
    }
}

/// Horizontal bilinear taps of one blended RGB row into the three model planes at once,
/// normalised: `plane[k][x] = lerp(row[x0][c], row[x1][c], fx) * a[k] + b[k]` where `c` is the
/// source channel of model plane `k` in `order`.
/// Steps 8 pixels at a time on wasm32 for the reason given at [`blend_rows`].
fn resample_row(
    row: &[f32],
    xs: &[(usize, usize, f32)],
    order: ChannelOrder,
    (a, b): ([f32; 3], [f32; 3]),
    dst: [&mut [f32]; 3],
) {
    const W: usize = if cfg!(target_arch = "wasm32") { 8 } else { 1 };
    let rgb = |x: usize| -> [f32; 3] {
        row.get(x * 3..x * 3 + 3).map_or([0.0; 3], |p| [p[0], p[1], p[2]])
    };
    let bgr = order == ChannelOrder::Bgr;
    let sample = |&(x0, x1, fx): &(usize, usize, f32)| -> [f32; 3] {
        let (v0, v1) = (rgb(x0), rgb(x1));
        let lerp: [f32; 3] = std::array::from_fn(|c| v0[c] + (v1[c] - v0[c]) * fx);
        let m = if bgr { [lerp[2], lerp[1], lerp[0]] } else { lerp };
        std::array::from_fn(|k| m[k] * a[k] + b[k])
    };
    let [d0, d1, d2] = dst;
    let (xc, xt) = xs.as_chunks::<W>();
    let ((c0, t0), (c1, t1), (c2, t2)) = (d0.as_chunks_mut::<W>(), d1.as_chunks_mut::<W>(), d2.as_chunks_mut::<W>());
    for (((taps, o0), o1), o2) in xc.iter().zip(c0).zip(c1).zip(c2) {
        for i in 0..W {
            [o0[i], o1[i], o2[i]] = sample(&taps[i]);
        }
    }
    for (((tap, o0), o1), o2) in xt.iter().zip(t0).zip(t1).zip(t2) {
        [*o0, *o1, *o2] = sample(tap);
    }
}

/// Letterboxes `img` into a fresh `dst_width × dst_height` NCHW tensor; returns the tensor and
/// the [`Letterbox`] needed to map boxes back.
///
/// # Errors
/// [`VisionError::InvalidDimensions`] for zero sides.
pub fn letterbox(
    img: &RgbImage,
    dst_width: u32,
    dst_height: u32,
    norm: &Normalization,
) -> Result<(Vec<f32>, Letterbox)> {
    let lb = Letterbox::new(img.width(), img.height(), dst_width, dst_height)?;
    let mut out = vec![0f32; lb.tensor_len()];
    letterbox_into(img, &lb, norm, &mut PreprocessScratch::default(), &mut out)?;
    Ok((out, lb))
}
