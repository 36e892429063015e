//! Writes the NanoDet input tensors (letterboxed, normalised, NCHW little-endian f32) of the
//! reference cases, plus `cases.json` with each case's letterbox, for
//! `providers/inference/tools/ort_reference.py`.
//!
//! `cargo run -p edgecell-vision --example dump_nanodet_inputs -- OUT_DIR`

use std::path::PathBuf;

use edgecell_vision::{FrameLimits, MjpegAvi, Normalization, PixelFormat, decode_frame, letterbox};

/// Reference cases: (name, image file or clip, frame index in the clip).
pub const CASES: [(&str, &str, Option<usize>); 6] = [
    ("dog", "data/images/dog.jpg", None),
    ("person", "data/images/person.jpg", None),
    ("horses", "data/images/horses.jpg", None),
    ("vtest_f00", "data/video/vtest_2s_mjpeg.avi", Some(0)),
    ("vtest_f10", "data/video/vtest_2s_mjpeg.avi", Some(10)),
    ("vtest_f19", "data/video/vtest_2s_mjpeg.avi", Some(19)),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: dump_nanodet_inputs OUT_DIR")?,
    );
    std::fs::create_dir_all(&out)?;
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut manifest = Vec::new();
    for (name, file, frame) in CASES {
        let bytes = std::fs::read(root.join(file))?;
        let jpeg: Vec<u8> = match frame {
            None => bytes,
            Some(i) => {
                let avi = MjpegAvi::parse(&bytes)?;
                let f = avi.frames().nth(i).ok_or("frame out of range")??;
                f.data.to_vec()
            }
        };
        let img = decode_frame(&jpeg, PixelFormat::Jpeg, 0, 0, &FrameLimits::default())?;
        let (tensor, lb) = letterbox(&img, 416, 416, &Normalization::NANODET)?;
        let raw: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(out.join(format!("{name}.f32")), raw)?;
        manifest.push(
            serde_json::json!({ "name": name, "source": file, "frame": frame, "letterbox": lb }),
        );
        println!("{name}: {}x{} -> {:?}", img.width(), img.height(), lb);
    }
    std::fs::write(
        out.join("cases.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(())
}
