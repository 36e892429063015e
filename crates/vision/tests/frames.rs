//! Frame input: decode, colour conversion, limits, AVI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edgecell_vision::avi::MjpegAvi;
use edgecell_vision::frame::{self, rgb_to_i420, yuv420_to_rgb};
use edgecell_vision::{FrameLimits, PixelFormat, RgbImage, VisionError, YuvRange, decode_frame};

const DOG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/images/dog.jpg");
const VTEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/video/vtest_2s_mjpeg.avi"
);

fn limits() -> FrameLimits {
    FrameLimits::default()
}

#[test]
fn jpeg_decodes_with_real_dimensions_and_pixels() {
    let bytes = std::fs::read(DOG).unwrap();
    let img = decode_frame(&bytes, PixelFormat::Jpeg, 0, 0, &limits()).unwrap();
    assert_eq!((img.width(), img.height()), (768, 576));
    assert_eq!(img.as_raw().len(), 768 * 576 * 3);
    // Compare with the image crate's own decode of the same file.
    let reference = image::load_from_memory(&bytes).unwrap().into_rgb8();
    assert_eq!(img.as_raw(), reference.as_raw().as_slice());
}

#[test]
fn corrupt_jpeg_is_a_decode_error() {
    let bytes = std::fs::read(DOG).unwrap();
    // Header intact, entropy-coded data cut short and garbled.
    let mut broken = bytes[..600].to_vec();
    broken.extend(std::iter::repeat_n(0xAB, 64));
    let err = decode_frame(&broken, PixelFormat::Jpeg, 0, 0, &limits()).unwrap_err();
    assert!(matches!(err, VisionError::Decode(_)), "{err:?}");
    let err =
        decode_frame(b"definitely not a jpeg", PixelFormat::Jpeg, 0, 0, &limits()).unwrap_err();
    assert!(matches!(err, VisionError::Decode(_)), "{err:?}");
    let err = decode_frame(&bytes, PixelFormat::Png, 0, 0, &limits()).unwrap_err();
    assert!(matches!(err, VisionError::Decode(_)), "{err:?}");
}

#[test]
fn png_roundtrip() {
    let mut img = image::RgbImage::new(5, 3);
    for (x, y, p) in img.enumerate_pixels_mut() {
        *p = image::Rgb([
            u8::try_from(x * 50).unwrap(),
            u8::try_from(y * 80).unwrap(),
            7,
        ]);
    }
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let out = decode_frame(&png, PixelFormat::Png, 0, 0, &limits()).unwrap();
    assert_eq!((out.width(), out.height()), (5, 3));
    assert_eq!(out.as_raw(), img.as_raw().as_slice());
}

#[test]
fn oversize_frames_are_rejected_before_decoding() {
    let bytes = std::fs::read(DOG).unwrap();
    let small = FrameLimits {
        max_bytes: 1000,
        ..limits()
    };
    assert_eq!(
        decode_frame(&bytes, PixelFormat::Jpeg, 0, 0, &small).unwrap_err(),
        VisionError::FrameTooLarge {
            bytes: bytes.len() as u64,
            limit: 1000
        }
    );
    let narrow = FrameLimits {
        max_width: 640,
        ..limits()
    };
    assert_eq!(
        decode_frame(&bytes, PixelFormat::Jpeg, 0, 0, &narrow).unwrap_err(),
        VisionError::DimensionsTooLarge {
            width: 768,
            height: 576,
            max_width: 640,
            max_height: 4320
        }
    );
    let raw = vec![0u8; 8000 * 2 * 3];
    assert!(matches!(
        decode_frame(&raw, PixelFormat::Rgb24, 8000, 2, &limits()).unwrap_err(),
        VisionError::DimensionsTooLarge { width: 8000, .. }
    ));
}

#[test]
fn rgb_and_bgr_packed() {
    let data = vec![1, 2, 3, 4, 5, 6];
    let rgb = decode_frame(&data, PixelFormat::Rgb24, 2, 1, &limits()).unwrap();
    assert_eq!(rgb.as_raw(), &[1, 2, 3, 4, 5, 6]);
    let bgr = decode_frame(&data, PixelFormat::Bgr24, 2, 1, &limits()).unwrap();
    assert_eq!(bgr.as_raw(), &[3, 2, 1, 6, 5, 4]);
    assert_eq!(
        decode_frame(&data[..5], PixelFormat::Rgb24, 2, 1, &limits()).unwrap_err(),
        VisionError::Truncated {
            format: "rgb24",
            expected: 6,
            actual: 5
        }
    );
    assert!(matches!(
        decode_frame(&data, PixelFormat::Rgb24, 1, 1, &limits()).unwrap_err(),
        VisionError::InvalidDimensions(_)
    ));
    assert!(matches!(
        decode_frame(&data, PixelFormat::Rgb24, 0, 2, &limits()).unwrap_err(),
        VisionError::InvalidDimensions(_)
    ));
}

/// A 2×2 I420 frame of one colour.
fn solid_i420(y: u8, u: u8, v: u8) -> Vec<u8> {
    vec![y, y, y, y, u, v]
}

#[test]
fn i420_bt601_reference_colours() {
    // BT.601 limited-range codes of pure colours (ITU-R BT.601 tables).
    let cases = [
        ((16, 128, 128), [0, 0, 0]),
        ((235, 128, 128), [255, 255, 255]),
        ((81, 90, 240), [255, 0, 0]),
        ((145, 54, 34), [0, 255, 0]),
        ((41, 240, 110), [0, 0, 255]),
        ((126, 128, 128), [128, 128, 128]),
    ];
    for ((y, u, v), rgb) in cases {
        let img = decode_frame(&solid_i420(y, u, v), PixelFormat::I420, 2, 2, &limits()).unwrap();
        for px in img.as_raw().chunks_exact(3) {
            for (got, want) in px.iter().zip(rgb) {
                assert!(
                    (i32::from(*got) - want).abs() <= 2,
                    "yuv {y},{u},{v}: got {px:?} want {rgb:?}"
                );
            }
        }
    }
    // Full range: Y=255 is white, Y=0 black.
    let img = yuv420_to_rgb(&solid_i420(255, 128, 128), 2, 2, false, YuvRange::Full).unwrap();
    assert_eq!(img.as_raw(), &[255; 12]);
}

#[test]
fn nv12_matches_i420_and_roundtrips_rgb() {
    let bytes = std::fs::read(DOG).unwrap();
    let img = frame::decode_image(&bytes, PixelFormat::Jpeg, &limits()).unwrap();
    let i420 = rgb_to_i420(&img).unwrap();
    let (w, h) = (768usize, 576usize);
    let luma = w * h;
    let mut nv12 = i420[..luma].to_vec();
    let (u, v) = i420[luma..].split_at(luma / 4);
    for (a, b) in u.iter().zip(v) {
        nv12.push(*a);
        nv12.push(*b);
    }
    let a = decode_frame(&i420, PixelFormat::I420, 768, 576, &limits()).unwrap();
    let b = decode_frame(&nv12, PixelFormat::Nv12, 768, 576, &limits()).unwrap();
    assert_eq!(a, b);
    // RGB → I420 → RGB loses chroma resolution only: mean abs error stays small.
    let err: u64 = a
        .as_raw()
        .iter()
        .zip(img.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    let mean = err as f64 / img.as_raw().len() as f64;
    assert!(mean < 6.0, "mean abs error {mean}");
}

#[test]
fn truncated_and_odd_yuv_are_typed_errors() {
    let data = vec![0u8; 4 * 4 * 3 / 2];
    assert_eq!(
        decode_frame(&data[..20], PixelFormat::I420, 4, 4, &limits()).unwrap_err(),
        VisionError::Truncated {
            format: "i420",
            expected: 24,
            actual: 20
        }
    );
    assert_eq!(
        decode_frame(&data[..23], PixelFormat::Nv12, 4, 4, &limits()).unwrap_err(),
        VisionError::Truncated {
            format: "nv12",
            expected: 24,
            actual: 23
        }
    );
    assert!(matches!(
        decode_frame(&data, PixelFormat::I420, 3, 4, &limits()).unwrap_err(),
        VisionError::InvalidDimensions(_)
    ));
    assert!(matches!(
        decode_frame(&data, PixelFormat::I420, 4, 2, &limits()).unwrap_err(),
        VisionError::InvalidDimensions(_)
    ));
}

#[test]
fn rgb_image_from_raw_checks_length() {
    assert!(RgbImage::from_raw(2, 2, vec![0; 12]).is_ok());
    assert!(matches!(
        RgbImage::from_raw(2, 2, vec![0; 11]),
        Err(VisionError::InvalidDimensions(_))
    ));
}

#[test]
fn vtest_avi_frames_and_timestamps() {
    let bytes = std::fs::read(VTEST).unwrap();
    let avi = MjpegAvi::parse(&bytes).unwrap();
    let info = avi.info();
    assert_eq!((info.width, info.height), (768, 576));
    assert_eq!((info.rate, info.scale), (10, 1));
    assert!((info.fps() - 10.0).abs() < 1e-9);
    assert_eq!(info.declared_frames, 20);
    let frames: Vec<_> = avi.frames().collect::<Result<_, _>>().unwrap();
    assert_eq!(frames.len(), 20);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, i as u64);
        assert_eq!(f.timestamp_ns, i as u64 * 100_000_000);
        assert_eq!(&f.data[..2], &[0xFF, 0xD8], "frame {i} is a JPEG");
    }
    let last = decode_frame(frames[19].data, PixelFormat::Jpeg, 0, 0, &limits()).unwrap();
    assert_eq!((last.width(), last.height()), (768, 576));
}

#[test]
fn truncated_avi_keeps_earlier_frames_then_errors() {
    let bytes = std::fs::read(VTEST).unwrap();
    let cut = &bytes[..bytes.len() / 2];
    let avi = MjpegAvi::parse(cut).unwrap();
    let items: Vec<_> = avi.frames().collect();
    let ok = items.iter().take_while(|r| r.is_ok()).count();
    assert!((8..20).contains(&ok), "{ok} frames before the cut");
    assert_eq!(
        items.len(),
        ok + 1,
        "exactly one error, then the iterator ends"
    );
    assert!(
        matches!(items[ok], Err(VisionError::AviTruncated { .. })),
        "{:?}",
        items[ok]
    );

    assert!(matches!(
        MjpegAvi::parse(&bytes[..40]),
        Err(VisionError::AviTruncated { .. })
    ));
    assert!(matches!(
        MjpegAvi::parse(&bytes[..8]),
        Err(VisionError::AviTruncated { .. })
    ));
    let mut not_avi = bytes[..64].to_vec();
    not_avi[8..12].copy_from_slice(b"WAVE");
    assert!(matches!(
        MjpegAvi::parse(&not_avi),
        Err(VisionError::Avi(_))
    ));
}

/// Per-pixel BT.601 in the plainest form (fixed point ×256, as the converter documents), on
/// pseudo-random planes: the row-wise converter must give the same bytes for I420 and NV12 in
/// both ranges.
#[test]
fn yuv420_equals_a_per_pixel_reference_on_random_planes() {
    let (w, h) = (38usize, 22usize);
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut byte = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 24) as u8
    };
    let y: Vec<u8> = (0..w * h).map(|_| byte()).collect();
    let u: Vec<u8> = (0..w * h / 4).map(|_| byte()).collect();
    let v: Vec<u8> = (0..w * h / 4).map(|_| byte()).collect();
    let i420: Vec<u8> = y.iter().chain(&u).chain(&v).copied().collect();
    let nv12: Vec<u8> = y
        .iter()
        .copied()
        .chain(u.iter().zip(&v).flat_map(|(&a, &b)| [a, b]))
        .collect();
    for (range, (yo, yg, rv, gu, gv, bu)) in [
        (YuvRange::Limited, (16, 298, 409, 100, 208, 516)),
        (YuvRange::Full, (0, 256, 359, 88, 183, 454)),
    ] {
        let mut want = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            for col in 0..w {
                let c = yg * (i32::from(y[row * w + col]) - yo);
                let k = (row / 2) * (w / 2) + col / 2;
                let d = i32::from(u[k]) - 128;
                let e = i32::from(v[k]) - 128;
                for val in [c + rv * e + 128, c - gu * d - gv * e + 128, c + bu * d + 128] {
                    want.push((val >> 8).clamp(0, 255) as u8);
                }
            }
        }
        for (bytes, nv) in [(&i420, false), (&nv12, true)] {
            let got = yuv420_to_rgb(bytes, w as u32, h as u32, nv, range).unwrap();
            assert_eq!(got.as_raw(), &want, "{range:?} nv12={nv}");
        }
    }
}
