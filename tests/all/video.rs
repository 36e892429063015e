//! The video-analytics actor in the embedded host, with the tract inference provider.

use edgecell::RuntimeConfig;
use edgecell::bindings::video_analytics::exports::edgecell::video::analytics::{
    Frame, FrameData, Line, PixelFormat, Point, StreamConfig, VideoError, Zone,
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

// ---- the stream state lives in the cache: one instance, a new instance per frame, two at once

use edgecell::bindings::BrokerMessage;
use edgecell_vision::wire::{FrameRef, FrameSummary};

/// The video stage's stream (`edgecell run`, crates/host/src/video_cli.rs): two full-height
/// counting lines across the walkway and a zone over the lower half.
const VTEST_STREAM: &str = r#"{"model":"nanodet-m-416","score_threshold":0.35,"iou_threshold":0.6,"classes":["person"],
 "lines":[{"name":"walkway-west","a":{"x":320,"y":0},"b":{"x":320,"y":576}},
          {"name":"walkway-east","a":{"x":480,"y":0},"b":{"x":480,"y":576}}],
 "zones":[{"name":"square","polygon":[{"x":0,"y":300},{"x":768,"y":300},{"x":768,"y":576},{"x":0,"y":576}]}],
 "min_frames_in_zone":3}"#;

const ACTOR: &str = "video-analytics";

/// The actor with `stream.<name>` = [`VTEST_STREAM`] for every stream in `streams`, plus `extra`.
fn vtest_actor(h: &common::Host, streams: &[&str], extra: &[(&str, &str)]) -> edgecell::Actor {
    let mut s = spec(ACTOR, common::component("edgecell_video_analytics.wasm"));
    for name in streams {
        s.config.insert(format!("stream.{name}"), VTEST_STREAM.into());
    }
    for (k, v) in extra {
        s.config.insert((*k).into(), (*v).into());
    }
    h.runtime.load_actor(s).unwrap()
}

/// Puts the clip's JPEGs in the actor's cache keyspace; returns (index, timestamp, key) per frame.
fn preload_vtest(h: &common::Host) -> Vec<(u64, u64, String)> {
    let avi_bytes = data("video/vtest_2s_mjpeg.avi");
    let avi = edgecell_vision::MjpegAvi::parse(&avi_bytes).unwrap();
    let mut frames = Vec::new();
    for f in avi.frames() {
        let f = f.unwrap();
        let key = format!("vtest/{}", f.index);
        h.runtime.services().cache.set(ACTOR, "frames", &key, f.data.to_vec(), Some(600_000)).unwrap();
        frames.push((f.index, f.timestamp_ns, key));
    }
    assert_eq!(frames.len(), 20);
    frames
}

/// The NATS message for one frame of `stream`, by handle.
fn frame_message(stream: &str, (index, ts, key): &(u64, u64, String)) -> BrokerMessage {
    let r = FrameRef {
        stream: stream.into(),
        sequence: *index,
        timestamp_ns: *ts,
        format: edgecell_vision::PixelFormat::Jpeg,
        width: 0,
        height: 0,
        namespace: "frames".into(),
        key: key.clone(),
    };
    BrokerMessage { subject: format!("edgecell.video.frames.{stream}"), body: serde_json::to_vec(&r).unwrap(), reply_to: None }
}

/// What the actor published for one stream: per-frame summaries (stream name blanked, so runs
/// of different streams compare) and every event, in order.
#[derive(Debug, PartialEq)]
struct Published {
    summaries: Vec<FrameSummary>,
    events: Vec<serde_json::Value>,
}

impl Published {
    fn of(bus: &edgecell::LocalBus, stream: &str) -> Self {
        let mut summaries = Vec::new();
        let mut events = Vec::new();
        for p in bus.drain() {
            assert_eq!(p.from, ACTOR);
            if p.subject == format!("edgecell.video.results.{stream}") {
                let mut s: FrameSummary = serde_json::from_slice(&p.body).unwrap();
                assert_eq!(s.stream, stream);
                s.stream.clear();
                summaries.push(s);
            } else if p.subject == format!("edgecell.video.events.{stream}") {
                events.extend(serde_json::from_slice::<Vec<serde_json::Value>>(&p.body).unwrap());
            } else {
                panic!("unexpected publication on {}", p.subject);
            }
        }
        Self { summaries, events }
    }

    fn tracks(&self) -> std::collections::BTreeSet<u64> {
        self.summaries.iter().flat_map(|s| s.tracks.iter().map(|t| t.0)).collect()
    }

    /// "region direction" → count, for `crossed` events.
    fn crossings(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for e in self.events.iter().filter(|e| e["kind"] == "crossed") {
            *m.entry(format!("{} {}", e["region"].as_str().unwrap(), e["direction"].as_str().unwrap())).or_default() += 1;
        }
        m
    }

    /// The clip's expected outcome (also what the NATS lattice test asserts).
    fn assert_vtest_outcome(&self) {
        assert_eq!(self.summaries.len(), 20);
        assert!(self.summaries.iter().all(|s| !s.out_of_order), "{:?}", self.summaries);
        assert_eq!(self.tracks().len(), 5, "{:?}", self.tracks());
        let crossings: Vec<(String, usize)> = self.crossings().into_iter().collect();
        assert_eq!(crossings, vec![("walkway-east backward".to_owned(), 2), ("walkway-west forward".to_owned(), 1)]);
        // every summary counted its events
        assert_eq!(self.summaries.iter().map(|s| s.events).sum::<usize>(), self.events.len());
    }
}

fn metric(h: &common::Host, name: &str, labels: &[(&str, &str)]) -> f64 {
    h.runtime.services().metrics.snapshot().total(name, labels).unwrap_or(0.0)
}

fn stored_state(h: &common::Host, stream: &str) -> (edgecell_kv_cache::Entry, edgecell_vision::StreamState) {
    let e = h.runtime.services().cache.get(ACTOR, "video", &format!("state/{stream}")).unwrap().expect("a stored state");
    let s = edgecell_vision::StreamState::decode(&e.value).unwrap();
    (e, s)
}

#[test]
fn vtest_with_a_new_instance_per_frame_tracks_and_counts_as_one_instance_does() {
    let h = host_with_models(RuntimeConfig::default());
    let frames = preload_vtest(&h);
    let actor = vtest_actor(&h, &["one", "fresh"], &[]);

    // the embedded host's way: one instance for the whole clip
    let mut inst = actor.instantiate().unwrap();
    for f in &frames {
        inst.handle_message(&frame_message("one", f)).unwrap().unwrap();
    }
    let one = Published::of(&h.bus, "one");
    one.assert_vtest_outcome();

    // wasmCloud 1.x's way: a fresh instance for every frame
    for f in &frames {
        let mut inst = actor.instantiate().unwrap();
        inst.handle_message(&frame_message("fresh", f)).unwrap().unwrap();
    }
    let fresh = Published::of(&h.bus, "fresh");
    assert_eq!(fresh, one);
    fresh.assert_vtest_outcome();

    // the kept instance skipped decoding after the first frame; fresh instances decoded every time
    assert_eq!(metric(&h, "video_state_loads_total", &[("stream", "one"), ("from", "new")]), 1.0);
    assert_eq!(metric(&h, "video_state_loads_total", &[("stream", "one"), ("from", "instance")]), 19.0);
    assert_eq!(metric(&h, "video_state_loads_total", &[("stream", "fresh"), ("from", "new")]), 1.0);
    assert_eq!(metric(&h, "video_state_loads_total", &[("stream", "fresh"), ("from", "decoded")]), 19.0);
    assert_eq!(metric(&h, "video_state_resets_total", &[]), 0.0);
    assert_eq!(metric(&h, "video_state_conflicts_total", &[]), 0.0);

    // both streams end in the same state: 20 frames, ids 1.., under the same configuration; the
    // clip leaves people inside the zone, whose `left` only this state can give, so it is kept
    // for the owing TTL (24 h) rather than the idle one (10 min)
    let (e1, s1) = stored_state(&h, "one");
    let (e2, s2) = stored_state(&h, "fresh");
    assert_eq!(s1, s2);
    assert_eq!(s1.tracker().frame_count(), 20);
    assert_eq!(s1.last_timestamp_ns(), Some(frames[19].1));
    assert!(!s1.analytics().closing_events(0).is_empty(), "someone is inside at the end of the clip");
    for e in [&e1, &e2] {
        let ttl = e.ttl_remaining.expect("the state has a TTL").as_millis();
        assert!(ttl > 600_000 && ttl <= 86_400_000, "{ttl}");
    }
}

#[test]
fn two_instances_on_one_stream_interleaved_or_racing_share_one_state() {
    let h = host_with_models(RuntimeConfig::default());
    let frames = preload_vtest(&h);
    // 32 attempts > 20 frames: a lost compare-and-swap means the other instance wrote a frame,
    // so no frame can lose them all
    let actor = std::sync::Arc::new(vtest_actor(&h, &["one", "ab", "race"], &[("state-cas-attempts", "32")]));

    let mut inst = actor.instantiate().unwrap();
    for f in &frames {
        inst.handle_message(&frame_message("one", f)).unwrap().unwrap();
    }
    let one = Published::of(&h.bus, "one");
    one.assert_vtest_outcome();

    // A takes the even frames, B the odd ones: each finds the other's write (a newer version
    // than the one it holds), decodes it and carries on — exactly as one instance
    let mut a = actor.instantiate().unwrap();
    let mut b = actor.instantiate().unwrap();
    for f in &frames {
        let inst = if f.0 % 2 == 0 { &mut a } else { &mut b };
        inst.handle_message(&frame_message("ab", f)).unwrap().unwrap();
    }
    assert_eq!(Published::of(&h.bus, "ab"), one);
    assert_eq!(metric(&h, "video_state_loads_total", &[("stream", "ab"), ("from", "decoded")]), 19.0);
    assert_eq!(metric(&h, "video_state_loads_total", &[("stream", "ab"), ("from", "instance")]), 0.0);

    // two instances at once on two threads, frames handed out in order: their compare-and-swaps
    // race. Whatever the timing, no frame is lost or applied twice: every frame is answered,
    // and each either moved the stored state by exactly one step or was reported out of order
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut inst = actor.instantiate().unwrap();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(f) = frames.get(i) else { break };
                    inst.handle_message(&frame_message("race", f)).unwrap().unwrap();
                }
            });
        }
    });
    let race = Published::of(&h.bus, "race");
    assert_eq!(race.summaries.len(), 20);
    let late = race.summaries.iter().filter(|s| s.out_of_order).count();
    assert!(race.summaries.iter().filter(|s| s.out_of_order).all(|s| s.tracks.is_empty() && s.events == 0));
    let (_, state) = stored_state(&h, "race");
    assert_eq!(state.tracker().frame_count(), 20 - late as u64, "a frame was lost or applied twice");
    assert_eq!(metric(&h, "video_frames_out_of_order_total", &[("stream", "race")]), late as f64);
    let conflicts = metric(&h, "video_state_conflicts_total", &[("stream", "race")]);
    eprintln!("racing instances: {conflicts} compare-and-swap conflicts, {late} frames out of order, tracks {:?}", race.tracks());
    assert_eq!(metric(&h, "video_state_contended_total", &[]), 0.0);
    assert_eq!(metric(&h, "video_state_resets_total", &[]), 0.0);
}

#[test]
fn unusable_stored_states_are_reset_and_counted_and_late_frames_do_not_rewind() {
    let h = host_with_models(RuntimeConfig::default());
    let frames = preload_vtest(&h);
    let actor = vtest_actor(&h, &["vtest"], &[("state-ttl-ms", "30000"), ("state-owing-ttl-ms", "45000")]);
    let cache = &h.runtime.services().cache;
    let key = "state/vtest";
    let send = |f: &(u64, u64, String)| {
        let mut inst = actor.instantiate().unwrap();
        let out = inst.handle_message(&frame_message("vtest", f)).unwrap();
        assert!(!inst.is_poisoned());
        out
    };
    let last_summary = || Published::of(&h.bus, "vtest").summaries.pop().unwrap();

    for f in &frames[..10] {
        send(f).unwrap();
    }
    let _ = h.bus.drain();
    let (entry, state) = stored_state(&h, "vtest");
    assert_eq!(state.tracker().frame_count(), 10);
    // (someone is inside the zone by frame 10: the state owes their `left`)
    assert!(!state.analytics().closing_events(0).is_empty());
    let ttl = entry.ttl_remaining.unwrap().as_millis();
    assert!(ttl > 30_000 && ttl <= 45_000, "state-owing-ttl-ms: {ttl}");

    // a frame older than the state's last one: reported (detections), tracker not rewound
    send(&frames[4]).unwrap();
    let s = last_summary();
    assert!(s.out_of_order && s.tracks.is_empty() && s.events == 0 && s.detections > 0, "{s:?}");
    assert_eq!(metric(&h, "video_frames_out_of_order_total", &[("stream", "vtest")]), 1.0);
    let (after, _) = stored_state(&h, "vtest");
    assert_eq!(after.version, entry.version, "an out-of-order frame wrote the state");

    // every kind of unusable state: replaced by a fresh one (tracks restart), counted by reason
    let good = entry.value.clone();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("corrupt", b"\x00\x01not json".to_vec()),
        ("corrupt", good[..good.len() / 2].to_vec()),
        ("format", edit(&|v| v["format"] = 99.into())),
        ("config", edit(&|v| v["config"] = 12345.into())),
        ("inconsistent", edit(&|v| v["tracker"]["next_id"] = 0.into())),
        ("inconsistent", edit(&|v| v["analytics"]["counts"] = serde_json::json!([]))),
    ];
    for (i, (reason, bytes)) in cases.iter().enumerate() {
        cache.set(ACTOR, "video", key, bytes.clone(), None).unwrap();
        let before = metric(&h, "video_state_resets_total", &[("stream", "vtest"), ("reason", reason)]);
        send(&frames[10 + i]).unwrap();
        assert_eq!(metric(&h, "video_state_resets_total", &[("stream", "vtest"), ("reason", reason)]), before + 1.0, "{reason}");
        let (_, state) = stored_state(&h, "vtest");
        assert_eq!(state.tracker().frame_count(), 1, "{reason}: the stream starts over");
        // a fresh tracker confirms every track on its first frame, with ids above every earlier
        // start's: this is the stream's (i + 2)th start, so they begin at (i + 1) × 10^9 + 1
        let s = last_summary();
        let ids: Vec<u64> = s.tracks.iter().map(|t| t.0).collect();
        let base = (i as u64 + 1) * edgecell_vision::ID_EPOCH_SPAN;
        assert!(!ids.is_empty() && ids == (base + 1..=base + ids.len() as u64).collect::<Vec<_>>(), "{reason}: {s:?}");
    }
    assert_eq!(metric(&h, "video_state_resets_total", &[("stream", "vtest")]), cases.len() as f64);
    // the starts are counted in an entry without TTL: a state that expires does not take it along
    let epochs = cache.get(ACTOR, "video", "ids/vtest").unwrap().unwrap();
    assert_eq!((epochs.value, epochs.ttl_remaining), (format!("{}", cases.len() + 1).into_bytes(), None));

    // and the stream goes on from there
    send(&frames[16]).unwrap();
    assert_eq!(stored_state(&h, "vtest").1.tracker().frame_count(), 2);
}

/// `configure` mid-stream closes the zones of the tracks it ends: the next frame publishes their
/// `left` events (old ids, old zone name, the last frame's time and sequence) ahead of its own.
/// Before, `configure` deleted the state, and the people inside stayed inside for a consumer
/// counting `entered`/`left`.
#[test]
fn configure_mid_stream_closes_the_zones_of_the_tracks_it_ends() {
    let h = host_with_models(RuntimeConfig::default());
    let frames = preload_vtest(&h);
    let actor = vtest_actor(&h, &["vtest"], &[]);
    let send = |f: &(u64, u64, String)| actor.instantiate().unwrap().handle_message(&frame_message("vtest", f)).unwrap().unwrap();
    let mut inside = std::collections::BTreeSet::new();
    let mut k = 0;
    for (i, f) in frames.iter().enumerate() {
        send(f);
        for e in Published::of(&h.bus, "vtest").events {
            let id = e["track_id"].as_u64().unwrap();
            match e["kind"].as_str().unwrap() {
                "entered" => inside.insert(id),
                "left" => inside.remove(&id),
                _ => false,
            };
        }
        if !inside.is_empty() {
            k = i;
            break;
        }
    }
    assert!(!inside.is_empty() && k + 1 < frames.len(), "someone enters the square");

    let mut cfg: edgecell_vision::StreamConfig = serde_json::from_str(VTEST_STREAM).unwrap();
    cfg.zones[0].name = "square-east".into();
    let wit_cfg = StreamConfig {
        model: cfg.model.clone(),
        score_threshold: cfg.score_threshold,
        iou_threshold: cfg.iou_threshold,
        classes: cfg.classes.clone(),
        zones: cfg
            .zones
            .iter()
            .map(|z| Zone { name: z.name.clone(), polygon: z.polygon.iter().map(|p| Point { x: p.x, y: p.y }).collect() })
            .collect(),
        lines: cfg.lines.iter().map(|l| Line { name: l.name.clone(), a: Point { x: l.a.x, y: l.a.y }, b: Point { x: l.b.x, y: l.b.y } }).collect(),
        min_frames_in_zone: cfg.min_frames_in_zone,
    };
    let mut inst = actor.instantiate().unwrap();
    let va = inst.video_analytics().unwrap();
    inst.call(|s, _| va.edgecell_video_analytics().call_configure(s, "vtest", &wit_cfg)).unwrap().unwrap();
    assert_eq!(metric(&h, "video_reconfigure_closed_events_total", &[("stream", "vtest")]), inside.len() as f64);

    send(&frames[k + 1]);
    let p = Published::of(&h.bus, "vtest");
    let closing: Vec<&serde_json::Value> = p.events.iter().take(inside.len()).collect();
    assert_eq!(closing.iter().map(|e| e["track_id"].as_u64().unwrap()).collect::<std::collections::BTreeSet<_>>(), inside, "{:?}", p.events);
    for e in &closing {
        assert_eq!((e["kind"].as_str(), e["region"].as_str()), (Some("left"), Some("square")), "{e}");
        assert_eq!((e["timestamp_ns"].as_u64(), e["sequence"].as_u64()), (Some(frames[k].1), Some(frames[k].0)), "{e}");
    }
    // the stream started over: the next frame's tracks are new ones, above the old ids
    let s = &p.summaries[0];
    assert!(!s.tracks.is_empty() && s.tracks.iter().all(|t| t.0 > edgecell_vision::ID_EPOCH_SPAN), "{s:?}");
    assert!(p.events.iter().skip(inside.len()).all(|e| e["region"] != "square"), "{:?}", p.events);
}

// ---- deep input and the other decoder: the component's small shadow stack must hold them --

/// The same picture as PNG (the `image` PNG decoder and its inflater run in the component, a
/// deeper call path than JPEG's), and a frame reference with the deepest extra field serde_json
/// accepts, then a deeper one: detections, a result or a refusal with a reason, never a trap.
#[test]
fn png_frames_and_the_deepest_json_frame_reference_never_trap() {
    use crate::fusion::{JSON_MAX_DEPTH, nested_json, with_pad};
    let h = host_with_models(RuntimeConfig::default());
    let a = vtest_actor(&h, &["vtest"], &[]);
    let mut inst = a.instantiate().unwrap();
    let va = inst.video_analytics().unwrap();

    let rgb = image::load_from_memory(&data("images/dog.jpg")).unwrap().to_rgb8();
    let mut png = Vec::new();
    rgb.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let f = frame(PixelFormat::Png, 0, 0, FrameData::Inline(png));
    let dets = inst.call(|s, _| va.edgecell_video_analytics().call_detect(s, &f, "nanodet-m-416", 0.35)).unwrap().unwrap();
    let dog = dets.iter().find(|d| d.class_name == "dog").expect("a dog in the PNG");
    assert!(dog.score > 0.6, "{dog:?}");

    let frames = preload_vtest(&h);
    let deepest = BrokerMessage { body: with_pad(&frame_message("vtest", &frames[0]).body, JSON_MAX_DEPTH - 1), ..frame_message("vtest", &frames[0]) };
    inst.handle_message(&deepest).unwrap().unwrap();
    // an unknown field of any depth is skipped without recursion; a known one is typed
    let deeper = BrokerMessage { body: with_pad(&frame_message("vtest", &frames[1]).body, 100_000), ..frame_message("vtest", &frames[1]) };
    inst.handle_message(&deeper).unwrap().unwrap();
    let body = String::from_utf8(frame_message("vtest", &frames[2]).body).unwrap().replacen("\"stream\":", &format!("\"stream\":{}", nested_json(JSON_MAX_DEPTH)), 1);
    let too_deep = BrokerMessage { body: body.into_bytes(), ..frame_message("vtest", &frames[2]) };
    let e = inst.handle_message(&too_deep).unwrap().unwrap_err();
    assert!(e.contains("not a frame reference") && e.contains("invalid type"), "{e}");
    assert_eq!(Published::of(&h.bus, "vtest").summaries.len(), 2);
    assert!(!inst.is_poisoned());
}

/// A bus in front of the local one that refuses the events subject while `down` is set, as a
/// host whose NATS connection dropped would.
struct EventsDown {
    inner: std::sync::Arc<edgecell::LocalBus>,
    down: std::sync::atomic::AtomicBool,
    refused: std::sync::atomic::AtomicUsize,
}

impl edgecell::Bus for EventsDown {
    fn publish(&self, from: &str, msg: BrokerMessage) -> Result<(), String> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.down.load(SeqCst) && msg.subject.starts_with("edgecell.video.events.") {
            self.refused.fetch_add(1, SeqCst);
            return Err("connection closed".into());
        }
        self.inner.publish(from, msg)
    }

    fn request(&self, from: &str, subject: &str, body: Vec<u8>, timeout: std::time::Duration) -> Result<BrokerMessage, String> {
        self.inner.request(from, subject, body, timeout)
    }
}

/// Events whose publish fails are kept in the stream state's outbox and go out with the next
/// frame (or the same frame sent again), each with the sequence of the frame that produced it:
/// over the whole clip, with the events subject down for a stretch of frames and for the last
/// one, every event is published exactly once, in order, as with the subject up all along.
/// Before, they were lost, and the frame's result with them.
#[test]
fn events_that_could_not_be_published_go_out_with_the_next_frame() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;
    let flaky = Arc::new(EventsDown { inner: Arc::new(edgecell::LocalBus::new(100_000)), down: Default::default(), refused: Default::default() });
    let bus = Arc::clone(&flaky);
    let h = common::host_with_models_on(RuntimeConfig::default(), move |services| services.bus = bus);
    let frames = preload_vtest(&h);
    let actor = vtest_actor(&h, &["steady", "flaky"], &[]);
    let mut inst = actor.instantiate().unwrap();
    for f in &frames {
        inst.handle_message(&frame_message("steady", f)).unwrap().unwrap();
    }
    let steady = Published::of(&flaky.inner, "steady");
    steady.assert_vtest_outcome();
    assert_eq!(metric(&h, "video_outbox_not_cleared_total", &[]), 0.0);

    // the events subject is down for frames 5..=14, and again for the last frame: those frames
    // are still answered, their summaries saying how many events wait in the state
    let mut pending = 0;
    for f in &frames {
        flaky.down.store((5..=14).contains(&f.0) || f.0 == 19, SeqCst);
        inst.handle_message(&frame_message("flaky", f)).unwrap().unwrap();
    }
    let during = Published::of(&flaky.inner, "flaky");
    assert_eq!(during.summaries.len(), 20, "results go on while events cannot");
    for s in &during.summaries {
        pending += usize::from(s.events_pending > 0);
    }
    assert!(pending > 0 && flaky.refused.load(SeqCst) == pending, "{pending}");
    let last = during.summaries.last().unwrap();
    assert!(last.events > 0 && last.events_pending == last.events, "the last frame's own events wait: {last:?}");
    // the producer sends the last frame again once the subject is back: a late frame, whose
    // retry publishes what the state kept
    flaky.down.store(false, SeqCst);
    inst.handle_message(&frame_message("flaky", &frames[19])).unwrap().unwrap();
    let retry = Published::of(&flaky.inner, "flaky");
    assert!(retry.summaries[0].out_of_order && retry.summaries[0].events_pending == 0);
    // every event came, once, in order, each with its own frame's sequence
    let mut events = during.events;
    events.extend(retry.events);
    assert_eq!(events, steady.events);
    let kept = metric(&h, "video_events_deferred_total", &[("stream", "flaky")]);
    let redelivered = metric(&h, "video_events_redelivered_total", &[("stream", "flaky")]);
    assert!(kept > 0.0 && redelivered > 0.0, "{kept} {redelivered}");
    assert_eq!(metric(&h, "video_events_dropped_total", &[]), 0.0);
    // and nothing is left in the outbox
    let (_, state) = stored_state(&h, "flaky");
    let p = edgecell_vision::StreamProcessor::restore(serde_json::from_str(VTEST_STREAM).unwrap(), state).unwrap();
    assert!(p.outbox().is_empty());
}
