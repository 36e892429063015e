//! NMS and NanoDet head decoding on synthetic outputs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edgecell_vision::coco::{COCO_CLASSES, class_id, class_name};
use edgecell_vision::{
    BBox, Detection, Letterbox, NanoDetHead, NmsConfig, TensorView, VisionError, nms,
    postprocess_nanodet,
};

fn det(class_id: u32, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
    Detection {
        class_id,
        score,
        bbox: BBox::new(x1, y1, x2, y2),
    }
}

#[test]
fn iou_values() {
    let a = BBox::new(0.0, 0.0, 10.0, 10.0);
    assert!((a.iou(&BBox::new(5.0, 0.0, 15.0, 10.0)) - 50.0 / 150.0).abs() < 1e-6);
    assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
    assert_eq!(a.iou(&a), 1.0);
    assert_eq!(a.bottom_center(), (5.0, 10.0));
}

#[test]
fn per_class_nms_keeps_best_and_other_classes() {
    let dets = vec![
        det(0, 0.9, 0.0, 0.0, 10.0, 10.0),
        det(0, 0.8, 1.0, 0.0, 11.0, 10.0), // IoU 0.818 with the first → suppressed
        det(0, 0.7, 50.0, 50.0, 60.0, 60.0), // far → kept
        det(2, 0.85, 1.0, 0.0, 11.0, 10.0), // other class → kept
        det(0, 0.2, 80.0, 80.0, 90.0, 90.0), // below score threshold
    ];
    let cfg = NmsConfig {
        score_threshold: 0.3,
        iou_threshold: 0.5,
        max_detections: 10,
    };
    let kept = nms(dets.clone(), &cfg);
    let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
    assert_eq!(scores, vec![0.9, 0.85, 0.7]);
    // A looser IoU threshold keeps the overlapping box.
    let kept = nms(
        dets.clone(),
        &NmsConfig {
            iou_threshold: 0.9,
            ..cfg
        },
    );
    assert_eq!(kept.len(), 4);
    let kept = nms(
        dets,
        &NmsConfig {
            max_detections: 2,
            ..cfg
        },
    );
    assert_eq!(kept.len(), 2);
    assert!(
        NmsConfig {
            score_threshold: 1.5,
            ..cfg
        }
        .validate()
        .is_err()
    );
}

/// Builds zero outputs for a tiny 32×32 head (strides 8, 16, 32 → 16, 4, 1 anchors).
type Outputs = Vec<(Vec<usize>, Vec<f32>)>;

fn tiny_head() -> (NanoDetHead, Outputs) {
    let head = NanoDetHead {
        input_width: 32,
        input_height: 32,
        strides: vec![8, 16, 32],
        num_classes: 3,
        bins: 4,
    };
    let mut outs = Vec::new();
    for n in [16usize, 4, 1] {
        outs.push((vec![1, n, 3], vec![0.0; n * 3]));
        outs.push((vec![1, n, 16], vec![0.0; n * 16]));
    }
    (head, outs)
}

#[test]
fn nanodet_decoding_of_a_single_anchor() {
    let (head, mut outs) = tiny_head();
    // Stride 8, anchor 6 → column 2, row 1 → centre (20, 12).
    outs[0].1[6 * 3 + 1] = 0.9;
    // Distances in bins: left 1, top 2, right 3, bottom 0 (one-hot-ish logits).
    let reg = &mut outs[1].1[6 * 16..7 * 16];
    for (side, bin) in [1usize, 2, 3, 0].iter().enumerate() {
        reg[side * 4 + bin] = 30.0;
    }
    // Shuffle output order: decoding goes by shape.
    outs.reverse();
    let views: Vec<TensorView> = outs
        .iter()
        .map(|(s, d)| TensorView { shape: s, data: d })
        .collect();
    let dets = head.decode(&views, 0.5).unwrap();
    assert_eq!(dets.len(), 1);
    let d = dets[0];
    assert_eq!(d.class_id, 1);
    assert!((d.score - 0.9).abs() < 1e-6);
    let want = [20.0 - 8.0, 12.0 - 16.0, 20.0 + 24.0, 12.0];
    for (g, w) in d.bbox.to_array().iter().zip(want) {
        assert!((g - w).abs() < 1e-3, "{:?}", d.bbox);
    }
    // Uniform logits → expectation (0+1+2+3)/4 = 1.5 bins.
    let (_, mut outs) = tiny_head();
    outs[4].1[2] = 0.7; // stride 32, only anchor, class 2; centre (16, 16)
    let views: Vec<TensorView> = outs
        .iter()
        .map(|(s, d)| TensorView { shape: s, data: d })
        .collect();
    let lb = Letterbox::new(64, 64, 32, 32).unwrap(); // scale 0.5
    let dets = postprocess_nanodet(&head, &views, &NmsConfig::default(), &lb, &[]).unwrap();
    assert_eq!(dets.len(), 1);
    let s = 1.5 * 32.0;
    let want = [
        (16.0 - s) * 2.0,
        (16.0 - s) * 2.0,
        (16.0 + s) * 2.0,
        (16.0 + s) * 2.0,
    ]
    .map(|v: f32| v.clamp(0.0, 64.0));
    assert_eq!(dets[0].bbox.to_array(), want);
    // Class filter.
    assert!(
        postprocess_nanodet(&head, &views, &NmsConfig::default(), &lb, &[0])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn missing_or_misshapen_outputs_are_typed_errors() {
    let (head, outs) = tiny_head();
    let views: Vec<TensorView> = outs[..5]
        .iter()
        .map(|(s, d)| TensorView { shape: s, data: d })
        .collect();
    assert!(matches!(
        head.decode(&views, 0.5),
        Err(VisionError::OutputShape(_))
    ));
    let bad = [TensorView {
        shape: &[1, 16, 3],
        data: &[0.0; 10],
    }];
    assert!(matches!(
        head.decode(&bad, 0.5),
        Err(VisionError::OutputShape(_))
    ));
}

#[test]
fn coco_names() {
    assert_eq!(COCO_CLASSES.len(), 80);
    assert_eq!(class_name(0), "person");
    assert_eq!(class_name(16), "dog");
    assert_eq!(class_name(17), "horse");
    assert_eq!(class_name(79), "toothbrush");
    assert_eq!(class_name(80), "unknown");
    assert_eq!(class_id("car"), Some(2));
    assert_eq!(class_id("unicorn"), None);
}
