//! The whole video pipeline on the real vtest clip: MJPEG AVI → decode → letterbox → tract →
//! NanoDet decode + NMS → ByteTrack → line counting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{MODEL, nanodet_input, registry, vtest_jpegs};
use edgecell_inference::{InferencePool, PoolConfig, Tensor};
use edgecell_vision::{
    BBox, Direction, EventKind, FrameLimits, Line, NanoDetHead, PixelFormat, Point, StreamConfig,
    StreamProcessor, TensorView, Track, decode_frame, postprocess_nanodet,
};

struct Run {
    /// Per frame: tracks.
    frames: Vec<Vec<Track>>,
    events: Vec<edgecell_vision::AnalyticsEvent>,
    counts: Vec<(String, edgecell_vision::LineCount)>,
    ids_issued: u64,
}

fn run_clip(cfg: StreamConfig) -> Run {
    let pool = InferencePool::new(registry(), PoolConfig::default()).unwrap();
    let mut sp = StreamProcessor::new(cfg).unwrap();
    let head = NanoDetHead::nanodet_m_416();
    let mut frames = Vec::new();
    let mut events = Vec::new();
    for (ts, jpeg) in vtest_jpegs() {
        let img = decode_frame(&jpeg, PixelFormat::Jpeg, 0, 0, &FrameLimits::default()).unwrap();
        let (input, lb) = nanodet_input(&img);
        let outs = pool.run(MODEL, vec![input]).unwrap();
        let shapes: Vec<Vec<usize>> = outs.iter().map(Tensor::shape_usize).collect();
        let views: Vec<TensorView> = outs
            .iter()
            .zip(&shapes)
            .map(|(t, s)| TensorView {
                shape: s,
                data: t.data.as_f32().unwrap(),
            })
            .collect();
        let dets =
            postprocess_nanodet(&head, &views, &sp.nms_config(), &lb, sp.class_filter()).unwrap();
        let r = sp.process(ts, &dets);
        frames.push(r.tracks);
        events.extend(r.events);
    }
    Run {
        frames,
        events,
        counts: sp.line_counts(),
        ids_issued: sp.tracks_started(),
    }
}

/// Vertical counting lines across the walkway, drawn top → bottom: `Forward` (right-hand side →
/// left-hand side of a→b on screen) is walking right (+x), `Backward` walking left.
/// In these 20 frames the walkers heading right and left never overlap in x (they walk towards
/// each other), so one straight line sees one direction each: the west line (x = 320) the
/// pedestrian walking right, the east line (x = 480) the two walking left.
fn walkway_lines() -> Vec<Line> {
    vec![
        Line {
            name: "walkway-west".into(),
            a: Point::new(320.0, 120.0),
            b: Point::new(320.0, 440.0),
        },
        Line {
            name: "walkway-east".into(),
            a: Point::new(480.0, 120.0),
            b: Point::new(480.0, 440.0),
        },
    ]
}

#[test]
fn vtest_pedestrians_get_stable_ids_and_are_counted() {
    let run = run_clip(StreamConfig {
        classes: vec!["person".into()],
        lines: walkway_lines(),
        ..StreamConfig::default()
    });
    // Track lifetimes: (first frame, last frame, frames matched, first box, last box).
    let mut seen: BTreeMap<u64, (usize, usize, usize, BBox, BBox)> = BTreeMap::new();
    for (f, tracks) in run.frames.iter().enumerate() {
        for t in tracks {
            let e = seen.entry(t.track_id).or_insert((f, f, 0, t.bbox, t.bbox));
            e.1 = f;
            e.2 += 1;
            e.4 = t.bbox;
        }
    }
    for (id, (first, last, n, b0, b1)) in &seen {
        eprintln!(
            "track {id}: frames {first}..={last} ({n} matched), bottom-centre {:?} -> {:?}",
            b0.bottom_center(),
            b1.bottom_center()
        );
    }
    for e in &run.events {
        eprintln!(
            "event {:?} {} track {} {:?} at {} ms",
            e.kind,
            e.region,
            e.track_id,
            e.direction,
            e.timestamp_ns / 1_000_000
        );
    }
    // ID switches / fragmentation (no ground truth here): a track born where another track
    // ended earlier (IoU > 0.3 between the dead track's last box and the new track's first box).
    let switches = seen
        .values()
        .filter(|(first, ..)| *first > 0)
        .filter(|(first, _, _, b0, _)| {
            seen.values()
                .any(|(_, last, _, _, end)| last < first && end.iou(b0) > 0.3)
        })
        .count();
    eprintln!(
        "ids issued {}, reported tracks {}, id switches {switches}, line counts {:?}",
        run.ids_issued,
        seen.len(),
        run.counts
    );

    // The three pedestrians visible from the first frame keep one id each for (nearly) the
    // whole clip; the people entering at the right edge late get new ids.
    let long: Vec<u64> = seen
        .iter()
        .filter(|(_, v)| v.0 == 0 && v.2 >= 18)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(long, vec![1, 2, 3], "{seen:?}");
    assert_eq!(switches, 0);
    assert!(run.ids_issued <= 6, "{}", run.ids_issued);
    // Counts: west line one walker heading right, east line two heading left.
    let counts: Vec<(String, u64, u64)> = run
        .counts
        .iter()
        .map(|(n, c)| (n.clone(), c.forward, c.backward))
        .collect();
    assert_eq!(
        counts,
        vec![("walkway-west".into(), 1, 0), ("walkway-east".into(), 0, 2)]
    );
    let crossed: Vec<(u64, Option<Direction>)> = run
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Crossed)
        .map(|e| (e.track_id, e.direction))
        .collect();
    assert_eq!(crossed.len(), 3);
    assert!(run.events.iter().all(|e| e.class_name == "person"));
    // Each walker crosses once.
    let mut ids: Vec<u64> = crossed.iter().map(|c| c.0).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}
