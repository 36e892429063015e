//! Letterbox + normalisation against a straightforward per-pixel reference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edgecell_vision::{
    BBox, FrameLimits, Letterbox, Normalization, PixelFormat, RgbImage, decode_frame, letterbox,
};

const DOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/images/dog.jpg");

/// Straightforward reference: for every output pixel and plane, compute the bilinear sample
/// (half-pixel centres, clamped) in f64 and normalise; padding is the normalised pad colour.
fn reference(img: &RgbImage, dw: u32, dh: u32, norm: &Normalization) -> Vec<f32> {
    let (sw, sh) = (img.width() as usize, img.height() as usize);
    let scale = (f64::from(dw) / sw as f64).min(f64::from(dh) / sh as f64);
    let nw = ((sw as f64 * scale).round() as usize).clamp(1, dw as usize);
    let nh = ((sh as f64 * scale).round() as usize).clamp(1, dh as usize);
    let (px, py) = ((dw as usize - nw) / 2, (dh as usize - nh) / 2);
    let src = img.as_raw();
    let chans = norm.source_channels();
    let mut out = vec![0f32; 3 * dw as usize * dh as usize];
    for k in 0..3 {
        let c = chans[k];
        for y in 0..dh as usize {
            for x in 0..dw as usize {
                let inside = x >= px && x < px + nw && y >= py && y < py + nh;
                let v = if inside {
                    let sx = (((x - px) as f64 + 0.5) * sw as f64 / nw as f64 - 0.5)
                        .clamp(0.0, (sw - 1) as f64);
                    let sy = (((y - py) as f64 + 0.5) * sh as f64 / nh as f64 - 0.5)
                        .clamp(0.0, (sh - 1) as f64);
                    let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
                    let (x1, y1) = ((x0 + 1).min(sw - 1), (y0 + 1).min(sh - 1));
                    let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
                    let p = |xx: usize, yy: usize| f64::from(src[(yy * sw + xx) * 3 + c]);
                    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                    let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                    top * (1.0 - fy) + bot * fy
                } else {
                    f64::from(norm.pad_rgb[c])
                };
                out[(k * dh as usize + y) * dw as usize + x] =
                    ((v - f64::from(norm.mean[k])) / f64::from(norm.std[k])) as f32;
            }
        }
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn synthetic(w: u32, h: u32) -> RgbImage {
    let data = (0..w * h * 3)
        .map(|i| ((i * 37 + i / 7) % 256) as u8)
        .collect();
    RgbImage::from_raw(w, h, data).unwrap()
}

#[test]
fn letterbox_geometry_of_a_4_3_frame() {
    let lb = Letterbox::new(768, 576, 416, 416).unwrap();
    assert_eq!(
        (lb.new_width, lb.new_height, lb.pad_x, lb.pad_y),
        (416, 312, 0, 52)
    );
    let back = lb.to_source(BBox::new(0.0, 52.0, 416.0, 364.0));
    for (got, want) in back.to_array().iter().zip([0.0, 0.0, 768.0, 576.0]) {
        assert!((got - want).abs() < 1e-3, "{back:?}");
    }
    // Boxes in the padding clamp to the image.
    let clamped = lb.to_source(BBox::new(-10.0, 0.0, 500.0, 416.0));
    assert_eq!(clamped.to_array(), [0.0, 0.0, 768.0, 576.0]);
    assert!(Letterbox::new(0, 5, 416, 416).is_err());
}

#[test]
fn nanodet_preprocess_matches_reference_on_a_real_image() {
    let bytes = std::fs::read(DOG).unwrap();
    let img = decode_frame(&bytes, PixelFormat::Jpeg, 0, 0, &FrameLimits::default()).unwrap();
    let (fast, lb) = letterbox(&img, 416, 416, &Normalization::NANODET).unwrap();
    let slow = reference(&img, 416, 416, &Normalization::NANODET);
    let d = max_abs_diff(&fast, &slow);
    assert!(d < 1e-4, "max abs diff {d}");
    assert_eq!(lb.pad_y, 52);
    // Padding rows hold the normalised black: (0 - mean) / std per BGR plane.
    assert!((fast[0] - (-103.53 / 57.375)).abs() < 1e-6);
    assert!((fast[416 * 416] - (-116.28 / 57.12)).abs() < 1e-6);
    assert!((fast[2 * 416 * 416] - (-123.675 / 58.395)).abs() < 1e-6);
}

#[test]
fn preprocess_matches_reference_for_up_and_down_scaling_and_rgb_order() {
    let rgb = Normalization {
        order: edgecell_vision::ChannelOrder::Rgb,
        pad_rgb: [114, 114, 114],
        ..Normalization::NANODET
    };
    for (w, h, dw, dh) in [
        (100, 300, 416, 416),
        (37, 23, 64, 48),
        (416, 416, 416, 416),
        (1280, 720, 320, 320),
        (3, 2, 8, 8),
    ] {
        for norm in [Normalization::NANODET, rgb] {
            let img = synthetic(w, h);
            let (fast, _) = letterbox(&img, dw, dh, &norm).unwrap();
            let slow = reference(&img, dw, dh, &norm);
            let d = max_abs_diff(&fast, &slow);
            assert!(d < 1e-4, "{w}x{h} -> {dw}x{dh}: max abs diff {d}");
        }
    }
}

#[test]
fn identity_letterbox_is_pure_normalisation() {
    let img = synthetic(4, 4);
    let (t, lb) = letterbox(&img, 4, 4, &Normalization::NANODET).unwrap();
    assert_eq!((lb.pad_x, lb.pad_y, lb.new_width), (0, 0, 4));
    // Plane 0 is blue (source channel 2) of pixel (0,0).
    let b = f32::from(img.as_raw()[2]);
    assert!((t[0] - (b - 103.53) / 57.375).abs() < 1e-5);
}

#[test]
fn a_letterbox_that_does_not_tile_the_input_is_refused() {
    let img = synthetic(8, 6);
    let good = Letterbox::new(8, 6, 16, 16).unwrap();
    let mut out = vec![7.0f32; good.tensor_len()];
    let mut scratch = edgecell_vision::PreprocessScratch::default();
    for bad in [
        Letterbox { pad_x: good.pad_x + 1 + (good.dst_width - good.new_width), ..good },
        Letterbox { pad_y: good.dst_height, ..good },
        Letterbox { new_width: 0, ..good },
        Letterbox { pad_y: u32::MAX, ..good },
    ] {
        let err = edgecell_vision::letterbox_into(&img, &bad, &Normalization::NANODET, &mut scratch, &mut out).unwrap_err();
        assert!(matches!(err, edgecell_vision::VisionError::InvalidDimensions(_)), "{bad:?}: {err}");
    }
    edgecell_vision::letterbox_into(&img, &good, &Normalization::NANODET, &mut scratch, &mut out).unwrap();
    assert!(out.iter().all(|&v| v != 7.0), "every value of the input is written");
}
