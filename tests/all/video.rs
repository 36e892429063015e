//! The video-analytics actor in the embedded host, with the tract inference provider.

use edgecell::RuntimeConfig;
use edgecell::bindings::video_analytics::exports::edgecell::video::analytics::{
    Frame, FrameData, Line, PixelFormat, Point, StreamConfig, VideoError,
};

use crate::common::{self, host_with_models, spec};

fn data(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../data/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn frame(format: PixelFormat, width: u32, height: u32, data: FrameData) -> Frame {
    Frame { stream_id: "s".into(), sequence: 0, timestamp: 0, width, height, format, data }
}

#[test]
fn detects_the_dog_and_refuses_bad_frames_with_typed_errors() {
    let h = host_with_models(RuntimeConfig::default());
    let a = h.runtime.load_actor(spec("video-analytics", common::component("edgecell_video_analytics.wasm"))).unwrap();
    let mut inst = a.instantiate().unwrap();
    let va = inst.video_analytics().unwrap();
    let detect = |i: &mut edgecell::ActorInstance, f: &Frame, model: &str| {
        i.call(|s, _| va.edgecell_video_analytics().call_detect(s, f, model, 0.35)).unwrap()
    };

    let dog = detect(&mut inst, &frame(PixelFormat::Jpeg, 0, 0, FrameData::Inline(data("images/dog.jpg"))), "nanodet-m-416").unwrap();
    let best = dog.iter().find(|d| d.class_name == "dog").expect("a dog");
    assert!(best.score > 0.6, "{best:?}");
    // the dog sits in the lower left of the 768×576 picture
    assert!(best.bbox.x1 > 100.0 && best.bbox.x2 < 360.0 && best.bbox.y1 > 180.0 && best.bbox.y2 < 560.0, "{best:?}");

    let mut corrupt = data("images/dog.jpg");
    corrupt.truncate(400);
    let e = detect(&mut inst, &frame(PixelFormat::Jpeg, 0, 0, FrameData::Inline(corrupt)), "nanodet-m-416").unwrap_err();
    assert!(matches!(e, VideoError::Decode(_)), "{e:?}");
    let e = detect(&mut inst, &frame(PixelFormat::Rgb24, 64, 48, FrameData::Inline(vec![0; 64 * 48 * 3 - 1])), "nanodet-m-416").unwrap_err();
    assert!(matches!(e, VideoError::InvalidDimensions(_)), "{e:?}");
    let e = detect(&mut inst, &frame(PixelFormat::I420, 64, 48, FrameData::Inline(vec![0; 64 * 48])), "nanodet-m-416").unwrap_err();
    assert!(matches!(e, VideoError::InvalidDimensions(_)), "truncated I420: {e:?}");
    let e = detect(&mut inst, &frame(PixelFormat::I420, 63, 48, FrameData::Inline(vec![0; 63 * 48 * 2])), "nanodet-m-416").unwrap_err();
    assert!(matches!(e, VideoError::InvalidDimensions(_)), "odd width: {e:?}");
    let e = detect(&mut inst, &frame(PixelFormat::Rgb24, 8000, 8000, FrameData::Inline(vec![0; 16])), "nanodet-m-416").unwrap_err();
    assert!(matches!(e, VideoError::InvalidDimensions(_) | VideoError::FrameTooLarge(_)), "{e:?}");
    let e = detect(&mut inst, &frame(PixelFormat::Jpeg, 0, 0, FrameData::Inline(vec![0; 20 << 20])), "nanodet-m-416").unwrap_err();
    assert_eq!(e, VideoError::FrameTooLarge(20 << 20));
    let e = detect(&mut inst, &frame(PixelFormat::Jpeg, 0, 0, FrameData::Inline(data("images/dog.jpg"))), "yolo-nope").unwrap_err();
    assert!(matches!(&e, VideoError::Inference(m) if m.contains("UnknownModel")), "{e:?}");
    let e = detect(&mut inst, &frame(PixelFormat::Jpeg, 0, 0, FrameData::CacheKey(("frames".into(), "gone".into()))), "nanodet-m-416").unwrap_err();
    assert_eq!(e, VideoError::MissingFrame("frames/gone".into()));
    let e = inst.call(|s, _| va.edgecell_video_analytics().call_process_frame(s, &frame(PixelFormat::Jpeg, 0, 0, FrameData::Inline(vec![1])))).unwrap().unwrap_err();
    assert_eq!(e, VideoError::UnknownStream("s".into()));
    // nothing above trapped: the same instance still answers
    assert!(!inst.is_poisoned());
    assert!(!detect(&mut inst, &frame(PixelFormat::Jpeg, 0, 0, FrameData::Inline(data("images/person.jpg"))), "nanodet-m-416").unwrap().is_empty());
}

#[test]
fn vtest_pedestrians_keep_their_ids_and_are_counted_both_ways_by_handle() {
    let h = host_with_models(RuntimeConfig::default());
    let a = h.runtime.load_actor(spec("video-analytics", common::component("edgecell_video_analytics.wasm"))).unwrap();
    let mut inst = a.instantiate().unwrap();
    let va = inst.video_analytics().unwrap();
    let line = |name: &str, x: f32| Line { name: name.into(), a: Point { x, y: 120.0 }, b: Point { x, y: 440.0 } };
    let cfg = StreamConfig {
        model: "nanodet-m-416".into(),
        score_threshold: 0.35,
        iou_threshold: 0.6,
        classes: vec!["person".into()],
        zones: vec![],
        lines: vec![line("west", 320.0), line("east", 480.0)],
        min_frames_in_zone: 3,
    };
    inst.call(|s, _| va.edgecell_video_analytics().call_configure(s, "vtest", &cfg)).unwrap().unwrap();
    let avi_bytes = data("video/vtest_2s_mjpeg.avi");
    let avi = edgecell_vision::MjpegAvi::parse(&avi_bytes).unwrap();
    let mut lifetimes = std::collections::BTreeMap::<u64, usize>::new();
    let mut crossings = Vec::new();
    for f in avi.frames() {
        let f = f.unwrap();
        // by handle: the frame is in the actor's cache keyspace, the call carries only the key
        let key = format!("vtest/{}", f.index);
        h.runtime.services().cache.set("video-analytics", "frames", &key, f.data.to_vec(), Some(60_000)).unwrap();
        let fr = Frame {
            stream_id: "vtest".into(),
            sequence: f.index,
            timestamp: f.timestamp_ns,
            width: 0,
            height: 0,
            format: PixelFormat::Jpeg,
            data: FrameData::CacheKey(("frames".into(), key)),
        };
        let r = inst.call(|s, _| va.edgecell_video_analytics().call_process_frame(s, &fr)).unwrap().unwrap();
        assert_eq!(r.sequence, f.index);
        for t in &r.tracks {
            *lifetimes.entry(t.track_id).or_default() += 1;
        }
        crossings.extend(r.events.iter().filter(|e| e.region == "west" || e.region == "east").map(|e| (e.region.clone(), e.direction)));
    }
    // three pedestrians are on screen from the first frame: each keeps one id for ≥ 18 of 20 frames
    let long = lifetimes.values().filter(|n| **n >= 18).count();
    assert!(long >= 3, "{lifetimes:?}");
    use edgecell::bindings::video_analytics::exports::edgecell::video::analytics::Direction;
    assert!(crossings.contains(&("west".into(), Some(Direction::Forward))), "{crossings:?}");
    assert!(crossings.contains(&("east".into(), Some(Direction::Backward))), "{crossings:?}");
}
