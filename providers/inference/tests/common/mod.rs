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
