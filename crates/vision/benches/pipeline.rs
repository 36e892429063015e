//! Video pipeline kernels except inference: decode, colour conversion, preprocess, NanoDet
//! decoding + NMS, tracking + analytics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use edgecell_vision::frame::{rgb_to_i420, yuv420_to_rgb};
use edgecell_vision::{
    BBox, Detection, FrameLimits, Letterbox, Line, MjpegAvi, NanoDetHead, NmsConfig, Normalization,
    PixelFormat, Point, PreprocessScratch, StreamConfig, StreamProcessor, TensorView, YuvRange,
    decode_frame, letterbox_into, nms,
};

const VTEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/video/vtest_2s_mjpeg.avi"
);

/// Deterministic pseudo-random numbers in 0..1 (no RNG dependency needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn vtest_frame() -> Vec<u8> {
    let bytes = std::fs::read(VTEST).unwrap();
    let avi = MjpegAvi::parse(&bytes).unwrap();
    avi.frames().next().unwrap().unwrap().data.to_vec()
}

fn bench_frames(c: &mut Criterion) {
    let jpeg = vtest_frame();
    let img = decode_frame(&jpeg, PixelFormat::Jpeg, 0, 0, &FrameLimits::default()).unwrap();
    let i420 = rgb_to_i420(&img).unwrap();
    c.bench_function("decode_jpeg_768x576", |b| {
        b.iter(|| {
            decode_frame(
                black_box(&jpeg),
                PixelFormat::Jpeg,
                0,
                0,
                &FrameLimits::default(),
            )
            .unwrap()
        });
    });
    c.bench_function("i420_to_rgb_768x576", |b| {
        b.iter(|| yuv420_to_rgb(black_box(&i420), 768, 576, false, YuvRange::Limited).unwrap());
    });
    let lb = Letterbox::new(768, 576, 416, 416).unwrap();
    let mut out = vec![0f32; lb.tensor_len()];
    let mut scratch = PreprocessScratch::default();
    c.bench_function("preprocess_letterbox_nanodet_768x576_to_416", |b| {
        b.iter(|| {
            letterbox_into(
                black_box(&img),
                &lb,
                &Normalization::NANODET,
                &mut scratch,
                &mut out,
            )
            .unwrap();
        });
    });
}

fn bench_postprocess(c: &mut Criterion) {
    // Synthetic NanoDet head outputs with sparse confident anchors (like a real frame).
    let head = NanoDetHead::nanodet_m_416();
    let mut rng = Lcg(7);
    let mut outs: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
    for n in [2704usize, 676, 169] {
        let scores: Vec<f32> = (0..n * 80)
            .map(|_| {
                let r = rng.next();
                if r > 0.9995 { 0.4 + r * 0.5 } else { r * 0.3 }
            })
            .collect();
        let boxes: Vec<f32> = (0..n * 44).map(|_| rng.next() * 4.0 - 2.0).collect();
        outs.push((vec![1, n, 80], scores));
        outs.push((vec![1, n, 44], boxes));
    }
    let views: Vec<TensorView> = outs
        .iter()
        .map(|(s, d)| TensorView { shape: s, data: d })
        .collect();
    let lb = Letterbox::new(768, 576, 416, 416).unwrap();
    c.bench_function("nanodet_decode_nms", |b| {
        b.iter(|| {
            edgecell_vision::postprocess_nanodet(
                &head,
                black_box(&views),
                &NmsConfig::default(),
                &lb,
                &[],
            )
            .unwrap()
        });
    });
    // NMS alone on 300 clustered candidates of 3 classes.
    let mut cands = Vec::new();
    for k in 0..300 {
        let cx = 50.0 + (k % 20) as f32 * 35.0 + rng.next() * 6.0;
        let cy = 60.0 + (k / 20) as f32 * 30.0 + rng.next() * 6.0;
        cands.push(Detection {
            class_id: k % 3,
            score: rng.next(),
            bbox: BBox::new(cx - 20.0, cy - 40.0, cx + 20.0, cy + 40.0),
        });
    }
    let cfg = NmsConfig {
        score_threshold: 0.2,
        iou_threshold: 0.5,
        max_detections: 100,
    };
    c.bench_function("nms_300_candidates", |b| {
        b.iter(|| nms(black_box(cands.clone()), &cfg));
    });
}

fn bench_tracking(c: &mut Criterion) {
    // 20 walkers over 100 frames, with a line and a zone; one iteration = the whole sequence.
    let mut rng = Lcg(11);
    let frames: Vec<Vec<Detection>> = (0..100)
        .map(|f| {
            (0..20)
                .map(|k| {
                    let x = 20.0
                        + k as f32 * 35.0
                        + f as f32 * if k % 2 == 0 { 2.0 } else { -2.0 }
                        + rng.next() * 2.0;
                    let y = 100.0 + (k % 5) as f32 * 80.0 + rng.next() * 2.0;
                    Detection {
                        class_id: 0,
                        score: 0.3 + rng.next() * 0.6,
                        bbox: BBox::new(x, y, x + 25.0, y + 70.0),
                    }
                })
                .collect()
        })
        .collect();
    let cfg = StreamConfig {
        lines: vec![Line {
            name: "l".into(),
            a: Point::new(380.0, 0.0),
            b: Point::new(380.0, 576.0),
        }],
        zones: vec![edgecell_vision::Zone {
            name: "z".into(),
            polygon: vec![
                Point::new(100.0, 100.0),
                Point::new(300.0, 100.0),
                Point::new(300.0, 400.0),
                Point::new(100.0, 400.0),
            ],
        }],
        ..StreamConfig::default()
    };
    c.bench_function("track_analytics_20_objects_100_frames", |b| {
        b.iter(|| {
            let mut sp = StreamProcessor::new(cfg.clone()).unwrap();
            let mut n = 0;
            for (f, dets) in frames.iter().enumerate() {
                n += sp
                    .process(f as u64 * 100_000_000, black_box(dets))
                    .events
                    .len();
            }
            n
        });
    });

    // The per-frame state round trip of the video actor on a lattice (`persist`): encode the
    // state after 50 frames of these 20 walkers, decode and restore it.
    let mut sp = StreamProcessor::new(cfg.clone()).unwrap();
    for (f, dets) in frames.iter().take(50).enumerate() {
        sp.process(f as u64 * 100_000_000, dets);
    }
    let bytes = sp.encode_state().unwrap();
    eprintln!(
        "stream state, 20 walkers after 50 frames: {} bytes of JSON",
        bytes.len()
    );
    c.bench_function("stream_state_encode_20_tracks", |b| {
        b.iter(|| black_box(&sp).encode_state().unwrap());
    });
    c.bench_function("stream_state_decode_20_tracks", |b| {
        b.iter(|| StreamProcessor::decode_state(cfg.clone(), black_box(&bytes)).unwrap());
    });
    // One tracker + analytics step on its own, for scale (the processor is cloned each time).
    c.bench_function("stream_step_20_tracks", |b| {
        b.iter(|| {
            let mut s = sp.clone();
            s.process(5_000_000_000, black_box(&frames[50]))
                .tracks
                .len()
        });
    });
}

criterion_group!(benches, bench_frames, bench_postprocess, bench_tracking);
criterion_main!(benches);
