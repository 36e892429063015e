//! Shared helpers for the inference integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use edgecell_inference::{Model, ModelRegistry, RegistryConfig, Tensor};
use edgecell_vision::{
    FrameLimits, Letterbox, MjpegAvi, Normalization, PixelFormat, RgbImage, decode_frame, letterbox,
};

pub const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models");
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
pub const MODEL: &str = "nanodet-m-416";
pub const INPUT: &str = "input_1:0";

/// The registry loaded once per test binary (loading + warm-up takes a moment).
pub fn registry() -> Arc<ModelRegistry> {
    static REG: OnceLock<Arc<ModelRegistry>> = OnceLock::new();
    REG.get_or_init(|| Arc::new(ModelRegistry::load(&RegistryConfig::new(MODELS)).unwrap()))
        .clone()
}

pub fn model() -> Arc<Model> {
    registry().get(MODEL).unwrap()
}

/// The ONNX Runtime library for the tests: `ORT_DYLIB_PATH`, else the one scripts/setup.sh
/// unpacks into tools/onnxruntime. `None` (the test says so and passes) when neither exists,
/// unless `EDGECELL_REQUIRE_ONNXRUNTIME=1` (set by `make test` and CI), when it fails.
#[cfg(feature = "onnxruntime")]
pub fn ort_library() -> Option<PathBuf> {
    let path = edgecell_inference::OrtConfig::library_under(std::path::Path::new(ROOT));
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("EDGECELL_REQUIRE_ONNXRUNTIME").as_deref() != Ok("1"),
        "EDGECELL_REQUIRE_ONNXRUNTIME=1 but {} is missing (run scripts/setup.sh)",
        path.display()
    );
    eprintln!(
        "SKIPPED: no ONNX Runtime library at {} (run scripts/setup.sh)",
        path.display()
    );
    None
}

#[cfg(feature = "onnxruntime")]
pub fn ort_config() -> Option<edgecell_inference::OrtConfig> {
    ort_library().map(|library| edgecell_inference::OrtConfig {
        library: Some(library),
        ..edgecell_inference::OrtConfig::default()
    })
}

/// NanoDet on our ONNX Runtime backend, loaded once per test binary.
#[cfg(feature = "onnxruntime")]
pub fn ort_model() -> Option<Arc<Model>> {
    static M: OnceLock<Option<Arc<Model>>> = OnceLock::new();
    M.get_or_init(|| {
        let cfg = ort_config()?;
        let path = PathBuf::from(MODELS).join(format!("{MODEL}.onnx"));
        let backend = edgecell_inference::Backend::Onnxruntime(cfg);
        Some(Arc::new(
            Model::load_with(&path, MODEL, None, true, &backend).unwrap(),
        ))
    })
    .clone()
}

pub fn image(rel: &str) -> RgbImage {
    let bytes = std::fs::read(PathBuf::from(ROOT).join(rel)).unwrap();
    decode_frame(&bytes, PixelFormat::Jpeg, 0, 0, &FrameLimits::default()).unwrap()
}

pub fn vtest_jpegs() -> Vec<(u64, Vec<u8>)> {
    let bytes = std::fs::read(PathBuf::from(ROOT).join("data/video/vtest_2s_mjpeg.avi")).unwrap();
    let avi = MjpegAvi::parse(&bytes).unwrap();
    avi.frames()
        .map(|f| f.map(|f| (f.timestamp_ns, f.data.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap()
}

pub fn nanodet_input(img: &RgbImage) -> (Tensor, Letterbox) {
    let (data, lb) = letterbox(img, 416, 416, &Normalization::NANODET).unwrap();
    (Tensor::f32(INPUT, vec![1, 3, 416, 416], data), lb)
}
