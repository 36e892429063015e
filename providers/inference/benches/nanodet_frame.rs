//! NanoDet-m-416 frame time with tract on one thread (the calling thread; tract runs
//! single-threaded by default) and, with the `onnxruntime` feature and a library present
//! (`ORT_DYLIB_PATH` or tools/onnxruntime from scripts/setup.sh), with our ONNX Runtime backend
//! on one thread in the same run; and the rest of the per-frame pipeline for the ratio.
//!
//! `tract_generic_ops_1_thread` is tract without edgecell's Pad/MaxPool/Resize kernels.
//!
//!     cargo bench -p edgecell-inference --features onnxruntime --bench nanodet_frame
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use edgecell_inference::{Model, Tensor};
use edgecell_vision::{
    FrameLimits, MjpegAvi, NanoDetHead, Normalization, PixelFormat, StreamConfig, StreamProcessor,
    TensorView, decode_frame, letterbox, postprocess_nanodet,
};

// as in the binaries that run models (crates/host/src/main.rs)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/nanodet-m-416.onnx"
);
const VTEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/video/vtest_2s_mjpeg.avi"
);

fn bench(c: &mut Criterion) {
    let model = Model::load(Path::new(MODEL), "nanodet-m-416", None, true).unwrap();
    let bytes = std::fs::read(VTEST).unwrap();
    let avi = MjpegAvi::parse(&bytes).unwrap();
    let jpeg = avi.frames().next().unwrap().unwrap().data.to_vec();
    let img = decode_frame(&jpeg, PixelFormat::Jpeg, 0, 0, &FrameLimits::default()).unwrap();
    let (data, lb) = letterbox(&img, 416, 416, &Normalization::NANODET).unwrap();
    let input = Tensor::f32("input_1:0", vec![1, 3, 416, 416], data);

    let mut g = c.benchmark_group("nanodet_frame");
    g.sample_size(20);
    g.bench_function("tract_1_thread", |b| {
        b.iter(|| model.run(vec![black_box(input.clone())]).unwrap());
    });
    // tract as it comes, without edgecell's Pad/MaxPool/Resize kernels (src/tract_ops.rs).
    {
        use tract_onnx::prelude::{Framework, InferenceModelExt, IntoRunnable, IntoTValue, tvec};
        let plain = tract_onnx::onnx()
            .model_for_path(MODEL)
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let x = tract_onnx::prelude::Tensor::from_shape(
            &[1, 3, 416, 416],
            input.data.as_f32().unwrap(),
        )
        .unwrap();
        g.bench_function("tract_generic_ops_1_thread", |b| {
            b.iter(|| {
                plain
                    .run(tvec!(black_box(x.clone()).into_tvalue()))
                    .unwrap()
            });
        });
    }
    #[cfg(feature = "onnxruntime")]
    if let Some(ort) = onnxruntime_model() {
        g.bench_function("onnxruntime_1_thread", |b| {
            b.iter(|| ort.run(vec![black_box(input.clone())]).unwrap());
        });
    }

    // Everything else a frame goes through: JPEG decode, letterbox, decode + NMS, tracking.
    let outs = model.run(vec![input.clone()]).unwrap();
    let shapes: Vec<Vec<usize>> = outs.iter().map(Tensor::shape_usize).collect();
    let head = NanoDetHead::nanodet_m_416();
    let mut sp = StreamProcessor::new(StreamConfig::default()).unwrap();
    let mut ts = 0u64;
    g.sample_size(50);
    g.bench_function("rest_of_pipeline", |b| {
        b.iter(|| {
            let img = decode_frame(
                black_box(&jpeg),
                PixelFormat::Jpeg,
                0,
                0,
                &FrameLimits::default(),
            )
            .unwrap();
            let (t, lb2) = letterbox(&img, 416, 416, &Normalization::NANODET).unwrap();
            black_box(&t);
            let views: Vec<TensorView> = outs
                .iter()
                .zip(&shapes)
                .map(|(t, s)| TensorView {
                    shape: s,
                    data: t.data.as_f32().unwrap(),
                })
                .collect();
            let dets = postprocess_nanodet(&head, &views, &sp.nms_config(), &lb2, &[]).unwrap();
            ts += 100_000_000;
            sp.process(ts, &dets).tracks.len()
        });
    });
    g.finish();
    let _ = lb;
}

/// NanoDet on our ONNX Runtime backend: one session, one intra-op thread.
#[cfg(feature = "onnxruntime")]
fn onnxruntime_model() -> Option<Model> {
    let library = edgecell_inference::OrtConfig::library_under(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    );
    if !library.is_file() {
        eprintln!(
            "no ONNX Runtime library at {} (scripts/setup.sh): onnxruntime_1_thread skipped",
            library.display()
        );
        return None;
    }
    let backend = edgecell_inference::Backend::Onnxruntime(edgecell_inference::OrtConfig {
        library: Some(library),
        intra_threads: 1,
        sessions: 1,
    });
    Some(Model::load_with(Path::new(MODEL), "nanodet-m-416", None, true, &backend).unwrap())
}

criterion_group!(benches, bench);
criterion_main!(benches);
