//! Tracker and analytics on synthetic scenes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edgecell_vision::track::KalmanBox;
use edgecell_vision::{
    Analytics, AnalyticsConfig, BBox, ByteTracker, Detection, Direction, EventKind, Line, Point,
    StreamConfig, StreamProcessor, TrackerConfig, VisionError, Zone,
};

const MS: u64 = 1_000_000;

fn person(score: f32, cx: f32, bottom: f32) -> Detection {
    Detection {
        class_id: 0,
        score,
        bbox: BBox::new(cx - 15.0, bottom - 80.0, cx + 15.0, bottom),
    }
}

#[test]
fn kalman_learns_constant_velocity() {
    let mut kf = KalmanBox::new(&BBox::new(0.0, 0.0, 20.0, 40.0));
    for i in 1..30 {
        kf.predict();
        let x = i as f32 * 3.0;
        kf.update(&BBox::new(x, 0.0, x + 20.0, 40.0));
    }
    let (vx, vy) = kf.velocity();
    assert!((vx - 3.0).abs() < 0.1, "vx {vx}");
    assert!(vy.abs() < 0.1, "vy {vy}");
    kf.predict();
    let b = kf.bbox();
    assert!(
        (b.x1 - 90.0).abs() < 1.0 && (b.width() - 20.0).abs() < 0.5,
        "{b:?}"
    );
}

#[test]
fn two_walkers_keep_their_ids_through_a_missed_frame_and_low_scores() {
    let mut tr = ByteTracker::new(TrackerConfig::default()).unwrap();
    let mut ids_a = Vec::new();
    let mut ids_b = Vec::new();
    for f in 0..40 {
        let x = 50.0 + f as f32 * 4.0;
        let mut dets = Vec::new();
        // Walker A is missed on frames 10..13 and weakly detected on 20..25 (second stage).
        if !(10..13).contains(&f) {
            dets.push(person(
                if (20..25).contains(&f) { 0.3 } else { 0.8 },
                x,
                200.0,
            ));
        }
        dets.push(person(0.7, 400.0 - f as f32 * 3.0, 300.0));
        let out = tr.update(&dets);
        for t in &out.tracks {
            if t.bbox.y2 < 250.0 {
                ids_a.push(t.track_id);
            } else {
                ids_b.push(t.track_id);
            }
        }
    }
    ids_a.dedup();
    ids_b.dedup();
    assert_eq!(ids_a, vec![1]);
    assert_eq!(ids_b, vec![2]);
    assert_eq!(tr.ids_issued(), 2);
}

#[test]
fn tracks_die_after_the_lost_buffer_and_tentatives_need_two_frames() {
    let cfg = TrackerConfig {
        max_lost_frames: 5,
        ..TrackerConfig::default()
    };
    let mut tr = ByteTracker::new(cfg).unwrap();
    tr.update(&[person(0.9, 100.0, 200.0)]);
    let mut removed_at = None;
    for f in 2..20 {
        let out = tr.update(&[]);
        if out.removed == vec![1] {
            removed_at = Some(f);
        }
    }
    // Lost on frames 2..=6 (the 5-frame buffer), removed on frame 7.
    assert_eq!(removed_at, Some(7));
    // A one-frame blip after the first frame is tentative and never reported.
    let out = tr.update(&[person(0.9, 300.0, 200.0)]);
    assert!(out.tracks.is_empty());
    let out = tr.update(&[]);
    assert!(out.tracks.is_empty());
    let out = tr.update(&[person(0.9, 300.0, 200.0)]);
    assert!(
        out.tracks.is_empty(),
        "the blip died, this is a new tentative"
    );
    let out = tr.update(&[person(0.9, 301.0, 200.0)]);
    assert_eq!(out.tracks.len(), 1);
    assert_eq!(out.tracks[0].track_id, 3);
    assert!(
        ByteTracker::new(TrackerConfig {
            low_threshold: 0.9,
            high_threshold: 0.5,
            ..cfg
        })
        .is_err()
    );
}

fn line_cfg() -> AnalyticsConfig {
    AnalyticsConfig {
        zones: vec![],
        // Horizontal line drawn left → right at y = 250: forward = moving up the screen.
        lines: vec![Line {
            name: "walkway".into(),
            a: Point::new(0.0, 250.0),
            b: Point::new(640.0, 250.0),
        }],
        min_frames_in_zone: 3,
    }
}

#[test]
fn a_walker_crossing_a_line_counts_once_with_direction() {
    let mut sp = StreamProcessor::new(StreamConfig {
        lines: line_cfg().lines,
        ..StreamConfig::default()
    })
    .unwrap();
    let mut events = Vec::new();
    // Walks down the screen from y=150 to y=350 (bottom centre), 5 px per frame.
    for f in 0..41u64 {
        let r = sp.process(f * 100 * MS, &[person(0.8, 300.0, 150.0 + f as f32 * 5.0)]);
        events.extend(r.events);
    }
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.kind, EventKind::Crossed);
    assert_eq!(e.direction, Some(Direction::Backward));
    assert_eq!(e.region, "walkway");
    assert_eq!(e.class_name, "person");
    assert_eq!(e.track_id, 1);
    // Bottom centre passes y=250 between frames 20 (y=250, on the line) and 21.
    assert!(
        e.timestamp_ns >= 2000 * MS && e.timestamp_ns <= 2100 * MS,
        "{}",
        e.timestamp_ns
    );
    assert_eq!(sp.line_counts()[0].1.backward, 1);
    assert_eq!(sp.line_counts()[0].1.forward, 0);

    // Walking the other way (up) is forward.
    let mut an = Analytics::new(line_cfg()).unwrap();
    let mut tr = ByteTracker::new(TrackerConfig::default()).unwrap();
    let mut n = 0;
    for f in 0..41u64 {
        let out = tr.update(&[person(0.8, 300.0, 350.0 - f as f32 * 5.0)]);
        for e in an.update(f * 100 * MS, &out.tracks, &out.removed) {
            assert_eq!(e.direction, Some(Direction::Forward));
            n += 1;
        }
    }
    assert_eq!(n, 1);
    // Passing beside the end of the finite line does not count.
    let mut an = Analytics::new(AnalyticsConfig {
        lines: vec![Line {
            name: "short".into(),
            a: Point::new(0.0, 250.0),
            b: Point::new(100.0, 250.0),
        }],
        ..AnalyticsConfig::default()
    })
    .unwrap();
    let mut tr = ByteTracker::new(TrackerConfig::default()).unwrap();
    for f in 0..41u64 {
        let out = tr.update(&[person(0.8, 300.0, 150.0 + f as f32 * 5.0)]);
        assert!(
            an.update(f * 100 * MS, &out.tracks, &out.removed)
                .is_empty()
        );
    }
}

fn zone_cfg(min_frames: u32) -> AnalyticsConfig {
    AnalyticsConfig {
        zones: vec![Zone {
            name: "door".into(),
            polygon: vec![
                Point::new(200.0, 200.0),
                Point::new(400.0, 200.0),
                Point::new(400.0, 400.0),
                Point::new(200.0, 400.0),
            ],
        }],
        lines: vec![],
        min_frames_in_zone: min_frames,
    }
}

fn track_at(id: u64, cx: f32, bottom: f32) -> edgecell_vision::Track {
    edgecell_vision::Track {
        track_id: id,
        class_id: 0,
        score: 0.9,
        bbox: BBox::new(cx - 10.0, bottom - 50.0, cx + 10.0, bottom),
        age: 0,
        state: edgecell_vision::TrackState::Tracked,
    }
}

#[test]
fn a_one_frame_jump_into_a_zone_does_not_fire_entered() {
    let mut an = Analytics::new(zone_cfg(3)).unwrap();
    let mut events = Vec::new();
    for f in 0..10u64 {
        // Outside (bottom centre x=100) except for a one-frame glitch at frame 4.
        let cx = if f == 4 { 300.0 } else { 100.0 };
        events.extend(an.update(f * 100 * MS, &[track_at(7, cx, 300.0)], &[]));
    }
    assert!(events.is_empty(), "{events:?}");
    // Two frames in, out again: still nothing with min 3.
    for f in 10..12u64 {
        events.extend(an.update(f * 100 * MS, &[track_at(7, 300.0, 300.0)], &[]));
    }
    events.extend(an.update(1200 * MS, &[track_at(7, 100.0, 300.0)], &[]));
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn entered_after_min_frames_and_left_with_dwell() {
    let mut an = Analytics::new(zone_cfg(3)).unwrap();
    let mut events = Vec::new();
    for f in 0..30u64 {
        // Inside for frames 5..=19 (the box's top is outside the zone; only the feet count).
        let cx = if (5..20).contains(&f) { 300.0 } else { 100.0 };
        events.extend(an.update(f * 100 * MS, &[track_at(3, cx, 210.0)], &[]));
    }
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].kind, EventKind::Entered);
    assert_eq!(events[0].timestamp_ns, 700 * MS); // third consecutive frame inside
    assert_eq!(events[1].kind, EventKind::Left);
    assert_eq!(events[1].timestamp_ns, 2200 * MS); // third consecutive frame outside
    assert_eq!(events[1].dwell_ms, Some(1400)); // first (0.5 s) to last (1.9 s) frame inside
    // A track removed while inside leaves with its dwell.
    let mut an = Analytics::new(zone_cfg(1)).unwrap();
    assert_eq!(
        an.update(0, &[track_at(9, 300.0, 300.0)], &[])[0].kind,
        EventKind::Entered
    );
    an.update(500 * MS, &[track_at(9, 300.0, 300.0)], &[]);
    let ev = an.update(900 * MS, &[], &[9]);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].kind, ev[0].dwell_ms), (EventKind::Left, Some(500)));
}

/// Frames where a track is lost (not in the frame's tracks) neither count towards a zone's
/// run nor break it: in, lost, lost, in, in fires `entered` on the third frame it is seen in.
#[test]
fn frames_where_a_track_is_lost_neither_count_nor_break_a_zone_run() {
    let mut an = Analytics::new(zone_cfg(3)).unwrap();
    let mut events = Vec::new();
    for f in 0..6u64 {
        let seen: &[_] = if (1..3).contains(&f) { &[] } else { &[track_at(4, 300.0, 300.0)] };
        let ev = an.update(f * 100 * MS, seen, &[]);
        events.extend(ev.into_iter().map(|e| (f, e.kind)));
    }
    assert_eq!(events, vec![(4, EventKind::Entered)]);
}

#[test]
fn bad_analytics_config_is_rejected() {
    let mut cfg = zone_cfg(1);
    cfg.zones[0].polygon.truncate(2);
    assert!(matches!(
        Analytics::new(cfg),
        Err(VisionError::InvalidConfig(_))
    ));
    let cfg = AnalyticsConfig {
        lines: vec![Line {
            name: "x".into(),
            a: Point::new(1.0, 1.0),
            b: Point::new(1.0, 1.0),
        }],
        ..AnalyticsConfig::default()
    };
    assert!(matches!(
        Analytics::new(cfg),
        Err(VisionError::InvalidConfig(_))
    ));
    let cfg = StreamConfig {
        classes: vec!["unicorn".into()],
        ..StreamConfig::default()
    };
    assert!(matches!(
        StreamProcessor::new(cfg),
        Err(VisionError::InvalidConfig(_))
    ));
}

/// A track whose box was shrinking when it was lost (walking away, then occluded) keeps its
/// last size while lost, as in ByteTrack: seen again at that size after 25 frames it keeps its
/// id (extrapolating the height velocity shrank it to a box nothing matched).
#[test]
fn an_occluded_shrinking_track_keeps_its_size_and_its_id() {
    let mut t = ByteTracker::new(TrackerConfig::default()).unwrap();
    let at = |h: f32| Detection { class_id: 0, score: 0.9, bbox: BBox::new(300.0 - 0.3 * h, 400.0 - h, 300.0 + 0.3 * h, 400.0) };
    let mut id = None;
    for k in 0..10u8 {
        let out = t.update(&[at(100.0 - 2.0 * f32::from(k))]);
        if k > 1 {
            assert_eq!(out.tracks.len(), 1);
            id = Some(out.tracks[0].track_id);
        }
    }
    for _ in 0..25 {
        assert!(t.update(&[]).tracks.is_empty());
    }
    let back = t.update(&[at(82.0)]);
    assert_eq!(back.tracks.iter().map(|tr| tr.track_id).collect::<Vec<_>>(), vec![id.unwrap()]);
}

/// A person standing on a counting line, the box jittering a pixel or two across it, is not
/// counted over and over; walking on across it counts once.
#[test]
fn jitter_on_a_line_is_not_a_crossing() {
    let mut sp = StreamProcessor::new(StreamConfig { lines: line_cfg().lines, ..StreamConfig::default() }).unwrap();
    let mut events = Vec::new();
    for f in 0..30u64 {
        let bottom = if f < 10 { 200.0 + f as f32 * 5.0 } else { 250.0 + if f % 2 == 0 { 1.5 } else { -1.5 } };
        events.extend(sp.process(f * 100 * MS, &[person(0.8, 300.0, bottom)]).events);
    }
    assert!(events.is_empty(), "{events:?}");
    for f in 30..50u64 {
        events.extend(sp.process(f * 100 * MS, &[person(0.8, 300.0, 250.0 + (f - 29) as f32 * 5.0)]).events);
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].direction, Some(Direction::Backward));
}

/// A zone whose points lie on one line could never fire, and a line shorter than a pixel
/// cannot be crossed in any direction one could name: both are configuration errors.
#[test]
fn degenerate_zones_and_lines_are_refused() {
    let zone = |pts: &[(f32, f32)]| AnalyticsConfig {
        zones: vec![Zone { name: "z".into(), polygon: pts.iter().map(|&(x, y)| Point::new(x, y)).collect() }],
        lines: vec![],
        min_frames_in_zone: 3,
    };
    for flat in [&[(0.0, 0.0), (100.0, 100.0), (50.0, 50.0)][..], &[(0.0, 5.0), (10.0, 5.0), (300.0, 5.0), (20.0, 5.2)][..]] {
        let e = Analytics::new(zone(flat)).unwrap_err();
        assert!(matches!(&e, VisionError::InvalidConfig(m) if m.contains("no area")), "{flat:?}: {e:?}");
    }
    assert!(Analytics::new(zone(&[(0.0, 0.0), (100.0, 0.0), (0.0, 2.0)])).is_ok());
    let line = |b: (f32, f32)| AnalyticsConfig {
        zones: vec![],
        lines: vec![Line { name: "l".into(), a: Point::new(10.0, 10.0), b: Point::new(b.0, b.1) }],
        min_frames_in_zone: 3,
    };
    assert!(matches!(Analytics::new(line((10.5, 10.0))), Err(VisionError::InvalidConfig(_))));
    assert!(Analytics::new(line((11.0, 10.0))).is_ok());
    // every event carries its region's name: empty or over-long names are refused
    let named = |name: String| AnalyticsConfig {
        zones: vec![],
        lines: vec![Line { name, a: Point::new(10.0, 10.0), b: Point::new(20.0, 10.0) }],
        min_frames_in_zone: 3,
    };
    for bad in [String::new(), "x".repeat(edgecell_vision::analytics::MAX_REGION_NAME_BYTES + 1)] {
        assert!(matches!(Analytics::new(named(bad)), Err(VisionError::InvalidConfig(m)) if m.contains("region name")));
    }
    assert!(Analytics::new(named("é".repeat(64))).is_ok());
}

/// A tracker started at a higher id hands out ids from there, counts only its own, keeps its
/// first id through its state, and refuses to move it once ids have been issued; a state
/// holding a track below its first id is inconsistent.
#[test]
fn ids_can_start_above_an_earlier_run_s() {
    let mut tr = ByteTracker::new(TrackerConfig::default()).unwrap();
    assert!(tr.start_ids_at(1_000_000_001));
    let mut ids = std::collections::BTreeSet::new();
    for f in 0..10 {
        let out = tr.update(&[person(0.8, 50.0 + f as f32 * 4.0, 200.0), person(0.7, 400.0, 300.0)]);
        ids.extend(out.tracks.iter().map(|t| t.track_id));
    }
    assert_eq!(ids.into_iter().collect::<Vec<_>>(), vec![1_000_000_001, 1_000_000_002]);
    assert_eq!(tr.ids_issued(), 2);
    assert!(!tr.start_ids_at(5), "ids were issued");
    let back = ByteTracker::from_state(TrackerConfig::default(), tr.state()).unwrap();
    assert_eq!((back.first_id(), back.ids_issued()), (1_000_000_001, 2));
    // a state claiming a first id above a live track's id is refused
    let mut json = serde_json::to_value(tr.state()).unwrap();
    json["first_id"] = serde_json::json!(1_000_000_002);
    let bad: edgecell_vision::TrackerState = serde_json::from_value(json.clone()).unwrap();
    assert!(ByteTracker::from_state(TrackerConfig::default(), bad).is_err());
    // a state from before the field existed starts at 1
    json.as_object_mut().unwrap().remove("first_id");
    json["tracks"] = serde_json::json!([]);
    let old: edgecell_vision::TrackerState = serde_json::from_value(json).unwrap();
    assert_eq!(ByteTracker::from_state(TrackerConfig::default(), old).unwrap().first_id(), 1);
}
