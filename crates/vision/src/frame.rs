//! Frames in: encoded images (JPEG, PNG), raw RGB24/BGR24, YUV 4:2:0 (I420, NV12) → RGB.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::error::{Result, VisionError};

/// Pixel formats a frame can arrive in (mirrors `edgecell:video/analytics.pixel-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Interleaved 8-bit R, G, B.
    Rgb24,
    /// Interleaved 8-bit B, G, R.
    Bgr24,
    /// YUV 4:2:0 planar: full Y plane, then U, then V at half resolution.
    I420,
    /// YUV 4:2:0: full Y plane, then interleaved U/V at half resolution.
    Nv12,
    /// JPEG bytes (dimensions come from the stream).
    Jpeg,
    /// PNG bytes (dimensions come from the stream).
    Png,
}

impl PixelFormat {
    /// True for compressed formats whose dimensions come from the bytes.
    #[must_use]
    pub fn is_encoded(self) -> bool {
        matches!(self, Self::Jpeg | Self::Png)
    }

    /// Lower-case name used in errors and configs.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Rgb24 => "rgb24",
            Self::Bgr24 => "bgr24",
            Self::I420 => "i420",
            Self::Nv12 => "nv12",
            Self::Jpeg => "jpeg",
            Self::Png => "png",
        }
    }
}

/// YUV quantisation range for BT.601 conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum YuvRange {
    /// Studio swing: Y in 16..=235, chroma in 16..=240 (cameras, most video).
    #[default]
    Limited,
    /// Full swing: Y and chroma in 0..=255 (JPEG-style).
    Full,
}

/// Size limits applied before any pixel is decoded or converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameLimits {
    /// Largest accepted input (encoded or raw) in bytes.
    pub max_bytes: u64,
    /// Largest accepted width in pixels.
    pub max_width: u32,
    /// Largest accepted height in pixels.
    pub max_height: u32,
}

impl Default for FrameLimits {
    /// 32 MiB, 7680 × 4320 (8K UHD).
    fn default() -> Self {
        Self {
            max_bytes: 32 << 20,
            max_width: 7680,
            max_height: 4320,
        }
    }
}

impl FrameLimits {
    /// Fails with [`VisionError::FrameTooLarge`] when `bytes` exceeds the byte limit.
    ///
    /// # Errors
    /// [`VisionError::FrameTooLarge`].
    pub fn check_bytes(&self, bytes: usize) -> Result<()> {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        if bytes > self.max_bytes {
            return Err(VisionError::FrameTooLarge {
                bytes,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Fails with [`VisionError::DimensionsTooLarge`] when a side exceeds its limit and with
    /// [`VisionError::InvalidDimensions`] when a side is zero.
    ///
    /// # Errors
    /// See above.
    pub fn check_dims(&self, width: u32, height: u32) -> Result<()> {
        if width == 0 || height == 0 {
            return Err(VisionError::InvalidDimensions(format!(
                "{width}x{height} has a zero side"
            )));
        }
        if width > self.max_width || height > self.max_height {
            return Err(VisionError::DimensionsTooLarge {
                width,
                height,
                max_width: self.max_width,
                max_height: self.max_height,
            });
        }
        Ok(())
    }
}

/// An owned 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RgbImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

impl RgbImage {
    /// Wraps interleaved RGB bytes; `data.len()` must be `width * height * 3`.
    ///
    /// # Errors
    /// [`VisionError::InvalidDimensions`] for a zero side or a length mismatch.
    pub fn from_raw(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        let expected = raw_len(width, height, 3)?;
        if data.len() != expected {
            return Err(VisionError::InvalidDimensions(format!(
                "{width}x{height} RGB needs {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Width in pixels.
    #[must_use]
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    #[must_use]
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Interleaved RGB bytes.
    #[must_use]
    pub fn as_raw(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the image, returning its bytes.
    #[must_use]
    pub fn into_raw(self) -> Vec<u8> {
        self.data
    }
}

/// `width * height * channels` with overflow and zero checks.
fn raw_len(width: u32, height: u32, channels: usize) -> Result<usize> {
    if width == 0 || height == 0 {
        return Err(VisionError::InvalidDimensions(format!(
            "{width}x{height} has a zero side"
        )));
    }
    usize::try_from(u64::from(width) * u64::from(height))
        .ok()
        .and_then(|n| n.checked_mul(channels))
        .ok_or_else(|| VisionError::InvalidDimensions(format!("{width}x{height} overflows")))
}

/// Decodes a frame of any [`PixelFormat`] into RGB, enforcing `limits` first.
///
/// `width`/`height` are required for raw formats and ignored for JPEG/PNG. YUV input uses
/// BT.601 limited range; use [`yuv420_to_rgb`] for full range.
///
/// # Errors
/// [`VisionError::FrameTooLarge`], [`VisionError::DimensionsTooLarge`],
/// [`VisionError::InvalidDimensions`], [`VisionError::Truncated`], [`VisionError::Decode`].
pub fn decode_frame(
    bytes: &[u8],
    format: PixelFormat,
    width: u32,
    height: u32,
    limits: &FrameLimits,
) -> Result<RgbImage> {
    limits.check_bytes(bytes.len())?;
    match format {
        PixelFormat::Jpeg | PixelFormat::Png => decode_image(bytes, format, limits),
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
            limits.check_dims(width, height)?;
            packed_to_rgb(bytes, width, height, format == PixelFormat::Bgr24)
        }
        PixelFormat::I420 | PixelFormat::Nv12 => {
            limits.check_dims(width, height)?;
            yuv420_to_rgb(
                bytes,
                width,
                height,
                format == PixelFormat::Nv12,
                YuvRange::Limited,
            )
        }
    }
}

/// Decodes JPEG or PNG bytes (the header is checked against `limits` before decoding pixels).
///
/// # Errors
/// [`VisionError::Decode`] for corrupt data or a non-encoded `format`; limit errors as in
/// [`FrameLimits`].
pub fn decode_image(bytes: &[u8], format: PixelFormat, limits: &FrameLimits) -> Result<RgbImage> {
    limits.check_bytes(bytes.len())?;
    let fmt = match format {
        PixelFormat::Jpeg => image::ImageFormat::Jpeg,
        PixelFormat::Png => image::ImageFormat::Png,
        other => {
            return Err(VisionError::Decode(format!(
                "{} is not an encoded format",
                other.name()
            )));
        }
    };
    let (width, height) = image::ImageReader::with_format(Cursor::new(bytes), fmt)
        .into_dimensions()
        .map_err(|e| VisionError::Decode(format!("{}: {e}", format.name())))?;
    limits.check_dims(width, height)?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), fmt);
    let mut img_limits = image::Limits::default();
    img_limits.max_image_width = Some(limits.max_width);
    img_limits.max_image_height = Some(limits.max_height);
    reader.limits(img_limits);
    let img = reader
        .decode()
        .map_err(|e| VisionError::Decode(format!("{}: {e}", format.name())))?;
    let rgb = img.into_rgb8();
    let (w, h) = rgb.dimensions();
    RgbImage::from_raw(w, h, rgb.into_raw())
}

/// Copies packed RGB24 (or swaps BGR24) into an [`RgbImage`].
///
/// # Errors
/// [`VisionError::Truncated`] when short, [`VisionError::InvalidDimensions`] when long or zero.
pub fn packed_to_rgb(bytes: &[u8], width: u32, height: u32, bgr: bool) -> Result<RgbImage> {
    let format = if bgr { "bgr24" } else { "rgb24" };
    let expected = raw_len(width, height, 3)?;
    check_len(format, bytes.len(), expected)?;
    let data = if bgr {
        let mut out = vec![0u8; expected];
        for (d, s) in out.chunks_exact_mut(3).zip(bytes.chunks_exact(3)) {
            if let ([d0, d1, d2], [s0, s1, s2]) = (d, s) {
                *d0 = *s2;
                *d1 = *s1;
                *d2 = *s0;
            }
        }
        out
    } else {
        bytes.to_vec()
    };
    RgbImage::from_raw(width, height, data)
}

fn check_len(format: &'static str, actual: usize, expected: usize) -> Result<()> {
    if actual < expected {
        return Err(VisionError::Truncated {
            format,
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(VisionError::InvalidDimensions(format!(
            "{format}: dimensions need {expected} bytes but {actual} were supplied"
        )));
    }
    Ok(())
}

/// Fixed-point (×256) BT.601 coefficients: (y_offset, y_gain, rv, gu, gv, bu).
const fn coeffs(range: YuvRange) -> (i32, i32, i32, i32, i32, i32) {
    match range {
        YuvRange::Limited => (16, 298, 409, 100, 208, 516),
        YuvRange::Full => (0, 256, 359, 88, 183, 454),
    }
}

#[inline]
fn clamp_u8(v: i32) -> u8 {
    // Lossless after the clamp.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let out = v.clamp(0, 255) as u8;
    out
}

/// Converts YUV 4:2:0 (I420 when `nv12` is false, NV12 when true) to RGB per BT.601.
///
/// Width and height must be even; the data must be exactly `w*h*3/2` bytes.
///
/// # Errors
/// [`VisionError::InvalidDimensions`] (zero/odd sides, too much data),
/// [`VisionError::Truncated`] (too little data).
pub fn yuv420_to_rgb(
    bytes: &[u8],
    width: u32,
    height: u32,
    nv12: bool,
    range: YuvRange,
) -> Result<RgbImage> {
    let format = if nv12 { "nv12" } else { "i420" };
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(VisionError::InvalidDimensions(format!(
            "{format} needs even sides, got {width}x{height}"
        )));
    }
    let luma = raw_len(width, height, 1)?;
    let chroma = luma / 4;
    check_len(format, bytes.len(), luma + 2 * chroma)?;
    let w = usize::try_from(width).map_err(|_| VisionError::InvalidDimensions("width".into()))?;
    let cw = w / 2;
    let (y_plane, rest) = bytes.split_at(luma);
    let (yo, yg, rv, gu, gv, bu) = coeffs(range);
    let mut out = vec![0u8; luma * 3];
    // Per chroma row: the chroma terms widened to one value per pixel once, then each of the
    // two luma rows in plain element-wise passes (which vectorise) and one interleaving pass.
    let mut u_buf = vec![0u8; cw];
    let mut v_buf = vec![0u8; cw];
    let (mut r_add, mut g_add, mut b_add) = (vec![0i32; w], vec![0i32; w], vec![0i32; w]);
    let mut c = vec![0i32; w];
    let (mut r, mut g, mut b) = (vec![0u8; w], vec![0u8; w], vec![0u8; w]);
    for (pair, (y_rows, out_rows)) in y_plane
        .chunks_exact(2 * w)
        .zip(out.chunks_exact_mut(6 * w))
        .enumerate()
    {
        let (u_row, v_row): (&[u8], &[u8]) = if nv12 {
            let row = rest.get(pair * w..(pair + 1) * w).unwrap_or(&[]);
            for ((uv, u), v) in row
                .chunks_exact(2)
                .zip(u_buf.iter_mut())
                .zip(v_buf.iter_mut())
            {
                if let [a, b] = uv {
                    *u = *a;
                    *v = *b;
                }
            }
            (&u_buf, &v_buf)
        } else {
            let (u_plane, v_plane) = rest.split_at(chroma);
            (
                u_plane.get(pair * cw..(pair + 1) * cw).unwrap_or(&[]),
                v_plane.get(pair * cw..(pair + 1) * cw).unwrap_or(&[]),
            )
        };
        for ((((ra, ga), ba), &u), &v) in r_add
            .chunks_exact_mut(2)
            .zip(g_add.chunks_exact_mut(2))
            .zip(b_add.chunks_exact_mut(2))
            .zip(u_row)
            .zip(v_row)
        {
            let d = i32::from(u) - 128;
            let e = i32::from(v) - 128;
            ra.fill(rv * e + 128);
            ga.fill(-gu * d - gv * e + 128);
            ba.fill(bu * d + 128);
        }
        let (y0, y1) = y_rows.split_at(w);
        let (o0, o1) = out_rows.split_at_mut(3 * w);
        for (y_row, o_row) in [(y0, o0), (y1, o1)] {
            for (ci, &yv) in c.iter_mut().zip(y_row) {
                *ci = yg * (i32::from(yv) - yo);
            }
            for (dst, add) in [(&mut r, &r_add), (&mut g, &g_add), (&mut b, &b_add)] {
                for ((d, &ci), &a) in dst.iter_mut().zip(&c).zip(add.iter()) {
                    *d = clamp_u8((ci + a) >> 8);
                }
            }
            for (((px, &rr), &gg), &bb) in o_row.chunks_exact_mut(3).zip(&r).zip(&g).zip(&b) {
                if let [pr, pg, pb] = px {
                    *pr = rr;
                    *pg = gg;
                    *pb = bb;
                }
            }
        }
    }
    RgbImage::from_raw(width, height, out)
}

/// Converts RGB to I420 (BT.601 limited range, 2×2 chroma averaging). Used to make test
/// inputs and by producers that want to ship compact raw frames.
///
/// # Errors
/// [`VisionError::InvalidDimensions`] for odd sides.
pub fn rgb_to_i420(img: &RgbImage) -> Result<Vec<u8>> {
    let (width, height) = (img.width(), img.height());
    if width % 2 != 0 || height % 2 != 0 {
        return Err(VisionError::InvalidDimensions(format!(
            "i420 needs even sides, got {width}x{height}"
        )));
    }
    let w = usize::try_from(width).map_err(|_| VisionError::InvalidDimensions("width".into()))?;
    let luma = raw_len(width, height, 1)?;
    let mut out = vec![0u8; luma + luma / 2];
    let (y_plane, uv) = out.split_at_mut(luma);
    let (u_plane, v_plane) = uv.split_at_mut(luma / 4);
    for (y, px) in y_plane.iter_mut().zip(img.as_raw().chunks_exact(3)) {
        if let [r, g, b] = px {
            let (r, g, b) = (i32::from(*r), i32::from(*g), i32::from(*b));
            *y = clamp_u8(((66 * r + 129 * g + 25 * b + 128) >> 8) + 16);
        }
    }
    let rows: Vec<&[u8]> = img.as_raw().chunks_exact(3 * w).collect();
    for (cy, (urow, vrow)) in u_plane
        .chunks_exact_mut(w / 2)
        .zip(v_plane.chunks_exact_mut(w / 2))
        .enumerate()
    {
        let (Some(r0), Some(r1)) = (rows.get(2 * cy), rows.get(2 * cy + 1)) else {
            continue;
        };
        for (cx, (u, v)) in urow.iter_mut().zip(vrow.iter_mut()).enumerate() {
            let mut acc = [0i32; 3];
            for row in [r0, r1] {
                for px in row.get(6 * cx..6 * cx + 6).unwrap_or(&[]).chunks_exact(3) {
                    for (a, &c) in acc.iter_mut().zip(px) {
                        *a += i32::from(c);
                    }
                }
            }
            let [r, g, b] = acc.map(|a| (a + 2) / 4);
            *u = clamp_u8(((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128);
            *v = clamp_u8(((112 * r - 94 * g - 18 * b + 128) >> 8) + 128);
        }
    }
    Ok(out)
}
