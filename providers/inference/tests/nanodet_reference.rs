//! tract (and, with the `onnxruntime` feature, our ONNX Runtime backend) vs onnxruntime run from
//! Python on the same preprocessed tensors (reference from `tools/ort_reference.py`, committed
//! under `testdata/nanodet_ref`), and detections on the bundled images.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{model, nanodet_input};
use edgecell_inference::{Model, Tensor};
use edgecell_vision::{
    Detection, MjpegAvi, NanoDetHead, NmsConfig, TensorView, postprocess_nanodet,
};
use serde_json::Value;

const REF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/nanodet_ref");
const CASES: [&str; 6] = [
    "dog",
    "person",
    "horses",
    "vtest_f00",
    "vtest_f10",
    "vtest_f19",
];

fn case_image(reference: &Value) -> edgecell_vision::RgbImage {
    let source = reference["source"].as_str().unwrap();
    match reference["frame"].as_u64() {
        None => common::image(source),
        Some(i) => {
            let bytes = std::fs::read(format!("{}/{source}", common::ROOT)).unwrap();
            let avi = MjpegAvi::parse(&bytes).unwrap();
            let f = avi.frames().nth(i as usize).unwrap().unwrap();
            edgecell_vision::decode_frame(
                f.data,
                edgecell_vision::PixelFormat::Jpeg,
                0,
                0,
                &Default::default(),
            )
            .unwrap()
        }
    }
}

fn postprocess(
    outs: &[Tensor],
    lb: &edgecell_vision::Letterbox,
    score: f32,
    iou: f32,
) -> Vec<Detection> {
    let shapes: Vec<Vec<usize>> = outs.iter().map(Tensor::shape_usize).collect();
    let views: Vec<TensorView> = outs
        .iter()
        .zip(&shapes)
        .map(|(t, s)| TensorView {
            shape: s,
            data: t.data.as_f32().unwrap(),
        })
        .collect();
    let nms = NmsConfig {
        score_threshold: score,
        iou_threshold: iou,
        max_detections: 100,
    };
    postprocess_nanodet(&NanoDetHead::nanodet_m_416(), &views, &nms, lb, &[]).unwrap()
}

#[test]
fn tract_matches_onnxruntime_raw_outputs_and_boxes() {
    check_reference(&model(), "tract");
}

#[cfg(feature = "onnxruntime")]
#[test]
fn our_onnxruntime_backend_matches_the_python_reference() {
    if let Some(m) = common::ort_model() {
        check_reference(&m, "onnxruntime backend");
    }
}

/// Runs every reference case through `model`; asserts raw outputs within 1e-4 and identical
/// boxes after NMS.
fn check_reference(model: &Model, engine: &str) {
    let mut overall = 0f32;
    for case in CASES {
        let text = std::fs::read_to_string(format!("{REF_DIR}/{case}.json")).unwrap();
        let reference: Value = serde_json::from_str(&text).unwrap();
        let img = case_image(&reference);
        let (input, lb) = nanodet_input(&img);
        // The reference was computed on this exact tensor.
        let x = input.data.as_f32().unwrap();
        let sum: f64 = x.iter().map(|&v| f64::from(v)).sum();
        let abs_sum: f64 = x.iter().map(|&v| f64::from(v).abs()).sum();
        let (rs, ra) = (
            reference["input_sum"].as_f64().unwrap(),
            reference["input_abs_sum"].as_f64().unwrap(),
        );
        assert!(
            (sum - rs).abs() < 1e-6 * ra && (abs_sum - ra).abs() < 1e-6 * ra,
            "{case}: preprocessing changed, regenerate the reference"
        );
        let outs = model.run(vec![input]).unwrap();
        let mut case_max = 0f32;
        for r in reference["outputs"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            let t = outs
                .iter()
                .find(|t| t.name == name)
                .unwrap_or_else(|| panic!("{case}: no output {name}"));
            let shape: Vec<u32> = r["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(t.shape, shape, "{case} {name}");
            let data = t.data.as_f32().unwrap();
            let stride = r["sample_stride"].as_u64().unwrap() as usize;
            for (k, want) in r["samples"].as_array().unwrap().iter().enumerate() {
                let d = (data[k * stride] - want.as_f64().unwrap() as f32).abs();
                case_max = case_max.max(d);
            }
            let mean = data.iter().map(|&v| f64::from(v)).sum::<f64>() / data.len() as f64;
            let ref_mean = r["sum"].as_f64().unwrap() / data.len() as f64;
            assert!(
                (mean - ref_mean).abs() < 1e-5,
                "{case} {name}: mean {mean} vs {ref_mean}"
            );
        }
        for row in reference["top_rows"].as_array().unwrap() {
            let anchor = row["anchor"].as_u64().unwrap() as usize;
            for (key, out_key) in [("scores", "scores_output"), ("boxes", "boxes_output")] {
                let t = outs
                    .iter()
                    .find(|t| t.name == row[out_key].as_str().unwrap())
                    .unwrap();
                let width = t.shape[2] as usize;
                let got = &t.data.as_f32().unwrap()[anchor * width..(anchor + 1) * width];
                for (g, w) in got.iter().zip(row[key].as_array().unwrap()) {
                    case_max = case_max.max((g - w.as_f64().unwrap() as f32).abs());
                }
            }
        }
        assert!(case_max <= 1e-4, "{case}: max abs diff {case_max}");
        overall = overall.max(case_max);

        let dets = postprocess(&outs, &lb, 0.35, 0.6);
        let want = reference["detections"].as_array().unwrap();
        assert_eq!(dets.len(), want.len(), "{case}: {dets:?}");
        for (d, w) in dets.iter().zip(want) {
            assert_eq!(
                u64::from(d.class_id),
                w["class_id"].as_u64().unwrap(),
                "{case}"
            );
            assert!(
                (f64::from(d.score) - w["score"].as_f64().unwrap()).abs() < 1e-4,
                "{case}"
            );
            for (g, r) in d.bbox.to_array().iter().zip(w["box"].as_array().unwrap()) {
                assert!(
                    (f64::from(*g) - r.as_f64().unwrap()).abs() < 1e-2,
                    "{case}: {d:?} vs {w}"
                );
            }
        }
        eprintln!(
            "{case}: max abs diff {case_max:.2e}, {} detections identical",
            dets.len()
        );
    }
    eprintln!("overall max abs diff {engine} vs onnxruntime (Python): {overall:.2e}");
}

fn best(dets: &[Detection], class: &str) -> Option<Detection> {
    dets.iter()
        .copied()
        .filter(|d| d.class_name() == class)
        .max_by(|a, b| a.score.total_cmp(&b.score))
}

fn assert_box(d: Option<Detection>, want: [f32; 4], min_iou: f32) {
    let d = d.unwrap();
    let w = edgecell_vision::BBox::new(want[0], want[1], want[2], want[3]);
    let iou = d.bbox.iou(&w);
    assert!(iou >= min_iou, "{d:?} vs {want:?}: IoU {iou}");
}

#[test]
fn bundled_images_give_sensible_detections() {
    let model = model();
    let run = |rel: &str| {
        let img = common::image(rel);
        let (input, lb) = nanodet_input(&img);
        postprocess(&model.run(vec![input]).unwrap(), &lb, 0.35, 0.6)
    };
    // Approximate object extents in the darknet sample images (original pixels).
    let dog = run("data/images/dog.jpg");
    assert_box(best(&dog, "dog"), [128.0, 224.0, 314.0, 537.0], 0.7);
    assert_box(best(&dog, "bicycle"), [124.0, 128.0, 566.0, 420.0], 0.6);
    let person = run("data/images/person.jpg");
    assert_box(best(&person, "person"), [190.0, 98.0, 272.0, 380.0], 0.7);
    assert_box(best(&person, "dog"), [63.0, 263.0, 203.0, 351.0], 0.7);
    let horses = run("data/images/horses.jpg");
    assert!(
        horses.iter().filter(|d| d.class_name() == "horse").count() >= 2,
        "{horses:?}"
    );
    for (name, dets) in [("dog", &dog), ("person", &person), ("horses", &horses)] {
        let s: Vec<String> = dets
            .iter()
            .map(|d| {
                format!(
                    "{} {:.2} {:?}",
                    d.class_name(),
                    d.score,
                    d.bbox.to_array().map(f32::round)
                )
            })
            .collect();
        eprintln!("{name}: {s:#?}");
    }
}
