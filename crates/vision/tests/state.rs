//! A stream's state persisted between frames: exact continuation after encode → decode, and
//! the compare-and-swap loop of `persist` against an in-memory store.
//!
//! The detections are the real NanoDet-m-416 output for the vtest clip, recorded once (see
//! `tests/data/vtest_state/README.md`): the model itself runs in the inference provider, which
//! this crate does not depend on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use edgecell_vision::{
    CasOutcome, Detection, Direction, EventKind, FrameAnalysis, IDLE_GAP_NS, PersistError, PersistedStream,
    Retention, STATE_FORMAT, StateError, StateSource, StateStore, StoredState, StreamConfig, StreamProcessor,
    StreamState, VisionError,
};
use serde::Deserialize;

const CASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vtest_state");

#[derive(Debug, Deserialize)]
struct RecordedFrame {
    sequence: u64,
    timestamp_ns: u64,
    detections: Vec<Detection>,
}

#[derive(Debug, Deserialize)]
struct Expected {
    tracks: usize,
    /// "region direction" → count.
    crossings: BTreeMap<String, usize>,
    events: usize,
}

fn config() -> StreamConfig {
    serde_json::from_slice(&std::fs::read(format!("{CASE}/stream.json")).unwrap()).unwrap()
}

fn frames() -> Vec<RecordedFrame> {
    let text = std::fs::read_to_string(format!("{CASE}/detections.jsonl")).unwrap();
    let frames: Vec<RecordedFrame> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.len(), 20);
    assert!(
        frames
            .iter()
            .enumerate()
            .all(|(i, f)| f.sequence == i as u64)
    );
    frames
}

fn expected() -> Expected {
    serde_json::from_slice(&std::fs::read(format!("{CASE}/expected.json")).unwrap()).unwrap()
}

/// The whole clip through one processor, optionally encoded, dropped and decoded before the
/// frames in `restore_before`.
fn run(restore_before: &[usize]) -> (Vec<FrameAnalysis>, StreamProcessor) {
    let cfg = config();
    let mut sp = StreamProcessor::new(cfg.clone()).unwrap();
    let mut out = Vec::new();
    for (i, f) in frames().iter().enumerate() {
        if restore_before.contains(&i) {
            let bytes = sp.encode_state().unwrap();
            drop(sp);
            sp = StreamProcessor::decode_state(cfg.clone(), &bytes).unwrap();
        }
        out.push(sp.process(f.timestamp_ns, &f.detections));
    }
    (out, sp)
}

fn crossings(frames: &[FrameAnalysis]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in frames
        .iter()
        .flat_map(|f| &f.events)
        .filter(|e| e.kind == EventKind::Crossed)
    {
        let dir = match e.direction {
            Some(Direction::Forward) => "forward",
            Some(Direction::Backward) => "backward",
            None => "none",
        };
        *m.entry(format!("{} {dir}", e.region)).or_default() += 1;
    }
    m
}

fn track_ids(frames: &[FrameAnalysis]) -> BTreeSet<u64> {
    frames
        .iter()
        .flat_map(|f| f.tracks.iter().map(|t| t.track_id))
        .collect()
}

#[test]
fn the_recorded_clip_gives_the_expected_tracks_and_crossings() {
    let (out, sp) = run(&[]);
    let want = expected();
    assert_eq!(track_ids(&out).len(), want.tracks, "{:?}", track_ids(&out));
    assert_eq!(crossings(&out), want.crossings);
    assert_eq!(
        out.iter().map(|f| f.events.len()).sum::<usize>(),
        want.events
    );
    assert_eq!(sp.snapshot().tracker().frame_count(), 20);
}

#[test]
fn a_state_restored_half_way_continues_exactly() {
    let (straight, sp_straight) = run(&[]);
    let (halved, sp_halved) = run(&[10]);
    // every frame's tracks (Kalman boxes to the bit), events and detections are the same
    assert_eq!(halved, straight);
    assert_eq!(sp_halved.snapshot(), sp_straight.snapshot());
    assert_eq!(sp_halved.line_counts(), sp_straight.line_counts());
    assert_eq!(sp_halved.tracks_started(), sp_straight.tracks_started());
    // and so it does when the state goes through bytes before every frame (the lattice case)
    let (every, sp_every) = run(&(0..20).collect::<Vec<_>>());
    assert_eq!(every, straight);
    assert_eq!(sp_every.snapshot(), sp_straight.snapshot());

    // the half-way state is not trivial: live tracks with zone and line state
    let cfg = config();
    let mut sp = StreamProcessor::new(cfg).unwrap();
    for f in &frames()[..10] {
        sp.process(f.timestamp_ns, &f.detections);
    }
    let state = sp.snapshot();
    assert!(state.tracker().len() >= 3, "{state:?}");
    assert!(state.analytics().len() >= 3, "{state:?}");
    assert_eq!(state.last_timestamp_ns(), Some(frames()[9].timestamp_ns));
    let bytes = state.encode().unwrap();
    eprintln!(
        "state after 10 frames: {} tracks, {} bytes of JSON",
        state.tracker().len(),
        bytes.len()
    );
    assert_eq!(StreamState::decode(&bytes).unwrap(), state);
}

#[test]
fn out_of_order_frames_are_reported_without_moving_the_state() {
    let cfg = config();
    let frames = frames();
    let mut sp = StreamProcessor::new(cfg).unwrap();
    for f in &frames[..8] {
        sp.process(f.timestamp_ns, &f.detections);
    }
    let before = sp.snapshot();
    let late = sp.process(frames[3].timestamp_ns, &frames[3].detections);
    assert!(late.out_of_order);
    assert!(late.tracks.is_empty() && late.events.is_empty());
    // detections at or above the report threshold are still reported
    let reported = frames[3]
        .detections
        .iter()
        .filter(|d| d.score >= 0.35)
        .count();
    assert!(reported > 0);
    assert_eq!(late.detections.len(), reported);
    assert_eq!(sp.snapshot(), before);
    // the last frame again (a redelivery) does not move the state either
    let again = sp.process(frames[7].timestamp_ns, &frames[7].detections);
    assert!(again.out_of_order && again.tracks.is_empty() && again.events.is_empty());
    assert_eq!(sp.snapshot(), before);
    assert!(sp.is_out_of_order(frames[6].timestamp_ns));
    assert!(!sp.is_out_of_order(frames[8].timestamp_ns));
}

#[test]
fn unusable_states_are_typed_errors() {
    let cfg = config();
    let mut sp = StreamProcessor::new(cfg.clone()).unwrap();
    for f in &frames()[..5] {
        sp.process(f.timestamp_ns, &f.detections);
    }
    let good = sp.encode_state().unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let reason = |bytes: &[u8], cfg: &StreamConfig| match StreamProcessor::decode_state(
        cfg.clone(),
        bytes,
    ) {
        Err(VisionError::State(e)) => e.reason(),
        other => panic!("{other:?}"),
    };
    assert_eq!(reason(b"", &cfg), "corrupt");
    assert_eq!(reason(&good[..good.len() - 1], &cfg), "corrupt");
    assert_eq!(reason(&edit(&|v| v["format"] = 2.into()), &cfg), "format");
    assert!(matches!(
        StreamState::decode(&edit(&|v| v["format"] = 7.into())),
        Err(StateError::Format {
            found: 7,
            expected: STATE_FORMAT
        })
    ));
    // a format change that also reshapes the rest is still a format error
    assert_eq!(reason(br#"{"format":9,"whatever":[]}"#, &cfg), "format");
    let other = StreamConfig {
        min_frames_in_zone: 5,
        ..cfg.clone()
    };
    assert_eq!(reason(&good, &other), "config");
    for broken in [
        edit(&|v| v["tracker"]["next_id"] = 0.into()),
        edit(&|v| v["tracker"]["next_id"] = 1.into()),
        edit(&|v| v["tracker"]["frame"] = 0.into()),
        edit(&|v| v["tracker"]["tracks"][0]["start_frame"] = 99.into()),
        edit(&|v| v["analytics"]["counts"] = serde_json::json!([])),
        edit(&|v| {
            let tracks = v["analytics"]["tracks"].as_object_mut().unwrap();
            let first = tracks.values_mut().next().unwrap();
            first["zones"] = serde_json::json!([]);
        }),
    ] {
        assert_eq!(reason(&broken, &cfg), "inconsistent");
    }
    // a non-finite filter cannot even be written as JSON (null), so it reads as corrupt
    assert_eq!(
        reason(
            &edit(&|v| v["tracker"]["tracks"][0]["kf"]["mean"][0] = serde_json::Value::Null),
            &cfg
        ),
        "corrupt"
    );
    // the untouched state still restores
    assert!(StreamProcessor::decode_state(cfg, &good).is_ok());
}

// ---- the compare-and-swap loop against an in-memory store

#[derive(Debug, Default)]
struct Shared {
    entry: Option<StoredState>,
    next_version: u64,
    config: Option<StreamConfig>,
    loads: usize,
    writes: usize,
    /// The id epoch counter, when the store keeps one.
    epoch: Option<u64>,
    /// The retention of the last write.
    retention: Option<Retention>,
}

type Hook = Box<dyn FnMut(&Rc<RefCell<Shared>>)>;

/// One instance's view of the store; `before_cas` runs before each of its compare-and-swaps
/// (another instance writing in between).
struct Store {
    shared: Rc<RefCell<Shared>>,
    before_cas: Option<Hook>,
    fail: bool,
    fail_epoch: bool,
}

impl Store {
    fn new(shared: &Rc<RefCell<Shared>>) -> Self {
        Self {
            shared: Rc::clone(shared),
            before_cas: None,
            fail: false,
            fail_epoch: false,
        }
    }
}

fn write(shared: &Rc<RefCell<Shared>>, value: Vec<u8>) -> u64 {
    let mut s = shared.borrow_mut();
    s.next_version += 1;
    let version = s.next_version;
    s.entry = Some(StoredState { value, version });
    s.writes += 1;
    version
}

impl StateStore for Store {
    fn load(&mut self) -> Result<Option<StoredState>, String> {
        if self.fail {
            return Err("unavailable".into());
        }
        let mut s = self.shared.borrow_mut();
        s.loads += 1;
        Ok(s.entry.clone())
    }

    fn compare_and_swap(
        &mut self,
        expected: Option<u64>,
        value: &[u8],
        retention: Retention,
    ) -> Result<CasOutcome, String> {
        if let Some(hook) = &mut self.before_cas {
            hook(&self.shared);
        }
        let current = self.shared.borrow().entry.as_ref().map(|e| e.version);
        if current != expected {
            return Ok(CasOutcome::Conflict);
        }
        self.shared.borrow_mut().retention = Some(retention);
        Ok(CasOutcome::Swapped(write(&self.shared, value.to_vec())))
    }

    fn current_config(&mut self) -> Result<Option<StreamConfig>, String> {
        Ok(self.shared.borrow().config.clone())
    }

    fn next_id_epoch(&mut self) -> Result<Option<u64>, String> {
        if self.fail || self.fail_epoch {
            return Err("unavailable".into());
        }
        Ok(self.shared.borrow_mut().epoch.as_mut().map(|e| {
            *e += 1;
            *e
        }))
    }
}

#[test]
fn one_instance_skips_decoding_and_fresh_instances_decode_with_the_same_result() {
    let (straight, _) = run(&[]);
    let frames = frames();
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut store = Store::new(&shared);
    let mut kept = PersistedStream::new(config()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let r = kept
            .process(&mut store, f.timestamp_ns, &f.detections, 3)
            .unwrap();
        assert_eq!(r.analysis, straight[i]);
        let want = if i == 0 {
            StateSource::New
        } else {
            StateSource::Instance
        };
        assert_eq!(r.source, want);
        assert_eq!((r.conflicts, r.reset.clone()), (0, None));
        assert_eq!(r.version, Some(i as u64 + 1));
        assert_eq!(kept.held_version(), r.version);
    }
    let shared = Rc::new(RefCell::new(Shared::default()));
    for (i, f) in frames.iter().enumerate() {
        let mut fresh = PersistedStream::new(config()).unwrap();
        let r = fresh
            .process(&mut Store::new(&shared), f.timestamp_ns, &f.detections, 3)
            .unwrap();
        assert_eq!(r.analysis, straight[i]);
        let want = if i == 0 {
            StateSource::New
        } else {
            StateSource::Decoded
        };
        assert_eq!(r.source, want);
    }
    assert_eq!(shared.borrow().writes, 20);
}

#[test]
fn a_lost_compare_and_swap_redoes_the_tracker_step_on_the_winner_s_state() {
    let (straight, _) = run(&[]);
    let frames = Rc::new(frames());
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut a = PersistedStream::new(config()).unwrap();
    let mut store_a = Store::new(&shared);
    let mut results: BTreeMap<usize, FrameAnalysis> = BTreeMap::new();
    for i in 0..10 {
        let f = &frames[i];
        let r = a
            .process(&mut store_a, f.timestamp_ns, &f.detections, 3)
            .unwrap();
        results.insert(i, r.analysis);
    }
    // A handles frame 11 while B handles frame 10; both read the state after frame 9, B writes
    // first, A's compare-and-swap loses, A re-reads and applies frame 11 after frame 10
    let b_result = Rc::new(RefCell::new(None));
    {
        let (frames, b_result) = (Rc::clone(&frames), Rc::clone(&b_result));
        let mut once = true;
        store_a.before_cas = Some(Box::new(move |shared| {
            if std::mem::take(&mut once) {
                let mut b = PersistedStream::new(config()).unwrap();
                let f = &frames[10];
                let r = b
                    .process(&mut Store::new(shared), f.timestamp_ns, &f.detections, 3)
                    .unwrap();
                *b_result.borrow_mut() = Some(r);
            }
        }));
    }
    let r = a
        .process(
            &mut store_a,
            frames[11].timestamp_ns,
            &frames[11].detections,
            3,
        )
        .unwrap();
    assert_eq!(r.conflicts, 1);
    assert_eq!(r.source, StateSource::Decoded);
    let b = b_result.borrow_mut().take().unwrap();
    assert_eq!((b.source, b.conflicts), (StateSource::Decoded, 0));
    results.insert(10, b.analysis);
    results.insert(11, r.analysis);
    for i in 12..20 {
        let f = &frames[i];
        let r = a
            .process(&mut store_a, f.timestamp_ns, &f.detections, 3)
            .unwrap();
        results.insert(i, r.analysis);
    }
    let results: Vec<FrameAnalysis> = results.into_values().collect();
    assert_eq!(results, straight);

    // the other way round: the older frame loses and is reported out of order, unwritten
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut a = PersistedStream::new(config()).unwrap();
    let mut store_a = Store::new(&shared);
    for f in &frames[..10] {
        a.process(&mut store_a, f.timestamp_ns, &f.detections, 3)
            .unwrap();
    }
    {
        let frames = Rc::clone(&frames);
        let mut once = true;
        store_a.before_cas = Some(Box::new(move |shared| {
            if std::mem::take(&mut once) {
                let mut b = PersistedStream::new(config()).unwrap();
                let f = &frames[11];
                b.process(&mut Store::new(shared), f.timestamp_ns, &f.detections, 3)
                    .unwrap();
            }
        }));
    }
    let writes = shared.borrow().writes;
    let r = a
        .process(
            &mut store_a,
            frames[10].timestamp_ns,
            &frames[10].detections,
            3,
        )
        .unwrap();
    assert!(r.analysis.out_of_order && r.analysis.tracks.is_empty());
    assert_eq!((r.conflicts, r.version), (1, None));
    assert_eq!(shared.borrow().writes, writes + 1, "only B's write");
    // A now holds B's entry: the next frame needs no decoding
    let r = a
        .process(
            &mut store_a,
            frames[12].timestamp_ns,
            &frames[12].detections,
            3,
        )
        .unwrap();
    assert_eq!(r.source, StateSource::Instance);
}

#[test]
fn endless_contention_is_a_typed_error_and_store_failures_too() {
    let frames = frames();
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut a = PersistedStream::new(config()).unwrap();
    let mut store = Store::new(&shared);
    // someone writes (a valid state, a frame ahead) before every one of A's swaps
    let mut other = StreamProcessor::new(config()).unwrap();
    other.process(frames[0].timestamp_ns, &frames[0].detections);
    let other_bytes = other.encode_state().unwrap();
    store.before_cas = Some(Box::new(move |shared| {
        write(shared, other_bytes.clone());
    }));
    let e = a
        .process(&mut store, frames[1].timestamp_ns, &frames[1].detections, 3)
        .unwrap_err();
    assert_eq!(e, PersistError::Contended { attempts: 3 });
    assert_eq!(shared.borrow().loads, 3);
    assert_eq!(a.held_version(), None);
    // zero attempts still makes one
    let e = a
        .process(&mut store, frames[1].timestamp_ns, &frames[1].detections, 0)
        .unwrap_err();
    assert_eq!(e, PersistError::Contended { attempts: 1 });

    store.before_cas = None;
    store.fail = true;
    let e = a
        .process(&mut store, frames[1].timestamp_ns, &frames[1].detections, 3)
        .unwrap_err();
    assert_eq!(e, PersistError::Store("unavailable".into()));
    store.fail = false;
    let r = a
        .process(&mut store, frames[2].timestamp_ns, &frames[2].detections, 3)
        .unwrap();
    assert_eq!((r.source, r.conflicts), (StateSource::Decoded, 0));
}

#[test]
fn an_unusable_stored_state_is_replaced_and_reported() {
    let frames = frames();
    let shared = Rc::new(RefCell::new(Shared::default()));
    write(&shared, b"{\"format\":1,\"tracker\":".to_vec());
    let mut a = PersistedStream::new(config()).unwrap();
    let mut store = Store::new(&shared);
    let r = a
        .process(&mut store, frames[0].timestamp_ns, &frames[0].detections, 3)
        .unwrap();
    assert_eq!(r.source, StateSource::New);
    assert_eq!(r.reset.as_ref().map(StateError::reason), Some("corrupt"));
    assert_eq!(r.version, Some(2), "the corrupt entry was swapped out");
    let (straight, _) = run(&[]);
    assert_eq!(r.analysis, straight[0]);
    let stored = StreamState::decode(&shared.borrow().entry.as_ref().unwrap().value).unwrap();
    assert_eq!(stored.tracker().frame_count(), 1);
}

#[test]
fn a_state_built_under_the_stored_configuration_makes_a_stale_instance_adopt_it() {
    let frames = frames();
    let old = config();
    let new = StreamConfig {
        min_frames_in_zone: 2,
        ..old.clone()
    };
    let shared = Rc::new(RefCell::new(Shared {
        config: Some(new.clone()),
        ..Shared::default()
    }));
    // an up-to-date instance writes two frames under the new configuration
    let mut up = PersistedStream::new(new.clone()).unwrap();
    for f in &frames[..2] {
        up.process(&mut Store::new(&shared), f.timestamp_ns, &f.detections, 3)
            .unwrap();
    }
    // an instance still holding the old configuration adopts the new one instead of resetting
    let mut stale = PersistedStream::new(old.clone()).unwrap();
    let r = stale
        .process(
            &mut Store::new(&shared),
            frames[2].timestamp_ns,
            &frames[2].detections,
            3,
        )
        .unwrap();
    assert!(r.config_reloaded);
    assert_eq!((r.source, r.reset), (StateSource::Decoded, None));
    assert_eq!(stale.config(), &new);
    // a state under a configuration nobody has any more is reset
    let mut other = StreamProcessor::new(StreamConfig {
        min_frames_in_zone: 7,
        ..old
    })
    .unwrap();
    other.process(frames[0].timestamp_ns, &frames[0].detections);
    write(&shared, other.encode_state().unwrap());
    let r = stale
        .process(
            &mut Store::new(&shared),
            frames[3].timestamp_ns,
            &frames[3].detections,
            3,
        )
        .unwrap();
    assert_eq!(r.reset.as_ref().map(StateError::reason), Some("config"));
    assert_eq!(r.source, StateSource::New);
    // a stream starting over (no state stored) picks up the stored configuration too
    shared.borrow_mut().entry = None;
    let newest = StreamConfig {
        min_frames_in_zone: 4,
        ..new
    };
    shared.borrow_mut().config = Some(newest.clone());
    let r = stale
        .process(
            &mut Store::new(&shared),
            frames[4].timestamp_ns,
            &frames[4].detections,
            3,
        )
        .unwrap();
    assert!(r.config_reloaded);
    assert_eq!(stale.config(), &newest);
}

/// A source whose clock goes back by more than a reorder (a camera or encoder restarted) is not
/// frozen out as "out of order": its tracks end as of the last frame seen, so every track inside
/// a zone gets `left`; tracking starts over with new ids, and the line totals go on. A frame
/// less than the restart distance late (10 s at this frame rate) and the last frame again are
/// still late frames.
#[test]
fn a_clock_restart_ends_the_tracks_and_tracking_goes_on() {
    const LATER: u64 = 3_600_000_000_000;
    let frames = frames();
    let mut sp = StreamProcessor::new(config()).unwrap();
    let mut open = BTreeSet::new();
    let mut max_id = 0;
    for f in &frames {
        let a = sp.process(f.timestamp_ns + LATER, &f.detections);
        for e in &a.events {
            match e.kind {
                EventKind::Entered => {
                    open.insert(e.track_id);
                }
                EventKind::Left => {
                    open.remove(&e.track_id);
                }
                EventKind::Crossed => {}
            }
        }
        max_id = a.tracks.iter().map(|t| t.track_id).fold(max_id, u64::max);
    }
    assert!(!open.is_empty(), "the recorded clip leaves tracks inside the zone");
    let totals = sp.line_counts();
    let last = frames[19].timestamp_ns + LATER;
    assert!(sp.is_out_of_order(last));
    // a stall of a few seconds (instances handling one stream at once) is still lateness
    assert!(sp.is_out_of_order(last - 9_900_000_000));
    // the clock started over an hour back
    assert!(!sp.is_out_of_order(0));
    let restart = sp.process(frames[0].timestamp_ns, &frames[0].detections);
    assert!(!restart.out_of_order);
    let left: BTreeSet<u64> = restart
        .events
        .iter()
        .filter(|e| e.kind == EventKind::Left)
        .map(|e| e.track_id)
        .collect();
    assert_eq!(left, open);
    assert!(
        restart
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Left)
            .all(|e| e.timestamp_ns == last && e.dwell_ms.is_some())
    );
    assert_eq!(sp.line_counts(), totals);
    // a frame still in flight from before the restart is late, not a jump forward that would
    // end the new tracks and restart once more
    let stray = last + 40_000_000;
    assert!(sp.is_out_of_order(stray));
    let a = sp.process(stray, &frames[19].detections);
    assert!(a.out_of_order && a.events.is_empty() && a.tracks.is_empty());
    // tracking goes on from the restarted clock, with ids never used before; the stored state
    // keeps the frame interval and the old clock
    let mut sp = StreamProcessor::decode_state(config(), &sp.encode_state().unwrap()).unwrap();
    assert_eq!(sp.old_clock().map(|c| c.last_ns), Some(last));
    let mut next = Vec::new();
    for f in &frames[1..6] {
        let a = sp.process(f.timestamp_ns, &f.detections);
        assert!(!a.out_of_order);
        assert!(a.events.iter().all(|e| e.kind != EventKind::Left), "no second restart");
        next.extend(a.tracks.iter().map(|t| t.track_id));
        assert!(sp.process(stray + f.timestamp_ns, &f.detections).out_of_order);
    }
    assert!(!next.is_empty() && next.iter().all(|id| *id > max_id), "{next:?} after {max_id}");
    assert!(sp.is_out_of_order(frames[1].timestamp_ns));
    // once the new clock has run for the restart distance, the old one is forgotten
    let on = frames[5].timestamp_ns + 60_000_000_000;
    assert!(!sp.process(on, &[]).out_of_order);
    assert_eq!(sp.old_clock(), None);
    assert!(!sp.is_out_of_order(stray + on));
    // an hour-long interval (a time-lapse camera) makes a restart 60 s back at most
    let mut slow = StreamProcessor::new(config()).unwrap();
    slow.process(LATER, &[]);
    slow.process(2 * LATER, &[]);
    assert!(slow.is_out_of_order(2 * LATER - 59_000_000_000));
    assert!(!slow.is_out_of_order(2 * LATER - 60_000_000_000));
}

/// Events go through the state's outbox: committed with the state, cleared once delivered,
/// kept (and handed out again, oldest first) when the caller could not publish them, also to
/// another instance; delivery is at least once, and nothing is lost while the outbox has room.
#[test]
fn queued_events_stay_in_the_outbox_until_delivered() {
    let (straight, _) = run(&[]);
    let frames = frames();
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut store = Store::new(&shared);
    let mut a = PersistedStream::new(config()).unwrap();
    // publishing works for frames 0-9, fails for 10-14 (14 is then sent again, and its retry
    // publishes), works again from 15 on another instance
    let mut published: Vec<(u64, edgecell_vision::AnalyticsEvent)> = Vec::new();
    let mut failed_with_events = 0;
    let first_with_events = straight.iter().position(|s| !s.events.is_empty()).unwrap();
    assert!(first_with_events < 10);
    for (i, f) in frames.iter().enumerate() {
        if i == first_with_events {
            // another writer lands first once: the step is redone, its events queued once
            let mut once = true;
            store.before_cas = Some(Box::new(move |sh: &Rc<RefCell<Shared>>| {
                if std::mem::take(&mut once) {
                    let again = sh.borrow().entry.clone().unwrap().value;
                    write(sh, again);
                }
            }));
        } else {
            store.before_cas = None;
        }
        let mut fresh;
        // from frame 15 on, a fresh instance each frame: it decodes the outbox from the state
        let ps = if i < 15 {
            &mut a
        } else {
            fresh = PersistedStream::new(config()).unwrap();
            &mut fresh
        };
        let r = ps.process_queued(&mut store, f.timestamp_ns, f.sequence, &f.detections, 3).unwrap();
        assert_eq!(r.analysis, straight[i], "the outbox does not change tracking");
        assert_eq!(r.outbox_dropped, 0);
        // this frame's events are the outbox's last ones, with this frame's sequence
        let own: Vec<_> = r.outbox.iter().filter(|q| q.sequence == f.sequence).map(|q| q.event.clone()).collect();
        assert_eq!(own, straight[i].events);
        let tail: Vec<_> = r.outbox[r.outbox.len() - own.len()..].iter().map(|q| q.event.clone()).collect();
        assert_eq!(tail, own);
        assert_eq!(r.conflicts, u32::from(i == first_with_events));
        let version = r.version.unwrap();
        assert_eq!(r.outbox_version, Some(version));
        let mut r = r;
        if (10..15).contains(&i) {
            failed_with_events += usize::from(!r.outbox.is_empty());
            if i < 14 {
                continue;
            }
            // frame 14 sent again: late, so nothing is written, and what waits is handed out
            let again = ps.process_queued(&mut store, f.timestamp_ns, f.sequence, &f.detections, 3).unwrap();
            assert!(again.analysis.out_of_order && again.version.is_none());
            assert_eq!((&again.outbox, again.outbox_version), (&r.outbox, Some(version)));
            r = again;
        }
        published.extend(r.outbox.iter().map(|q| (q.sequence, q.event.clone())));
        // a version this instance does not hold clears nothing
        assert_eq!(ps.delivered(&mut store, version - 1).unwrap(), None);
        assert_eq!(ps.delivered(&mut store, version).unwrap().is_some(), !r.outbox.is_empty());
        let stored = StreamState::decode(&shared.borrow().entry.as_ref().unwrap().value).unwrap();
        assert!(StreamProcessor::restore(config(), stored).unwrap().outbox().is_empty());
    }
    assert!(failed_with_events > 0, "the failing frames produced events to keep");
    // every event of the clip was published exactly once here, in frame order
    let want: Vec<_> = frames.iter().zip(&straight).flat_map(|(f, s)| s.events.iter().map(|e| (f.sequence, e.clone()))).collect();
    assert_eq!(published, want);

    // the state moved on between the commit and the clear: nothing is cleared, and the next
    // writer hands the events out again (at least once)
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut store = Store::new(&shared);
    let mut a = PersistedStream::new(config()).unwrap();
    let mut b = PersistedStream::new(config()).unwrap();
    let with_events = straight.iter().position(|s| !s.events.is_empty()).unwrap();
    let mut last = None;
    for f in &frames[..=with_events] {
        last = a.process_queued(&mut store, f.timestamp_ns, f.sequence, &f.detections, 3).unwrap().version;
        if f.sequence < with_events as u64 {
            a.delivered(&mut store, last.unwrap()).unwrap();
        }
    }
    let next = &frames[with_events + 1];
    let rb = b.process_queued(&mut store, next.timestamp_ns, next.sequence, &next.detections, 3).unwrap();
    assert_eq!(a.delivered(&mut store, last.unwrap()).unwrap(), None);
    assert!(rb.outbox.iter().any(|q| q.sequence == with_events as u64));
}

/// An outbox that cannot be delivered for long keeps its newest events and counts the rest.
#[test]
fn a_full_outbox_drops_its_oldest_events_and_says_how_many() {
    let mut p = StreamProcessor::new(config()).unwrap();
    let (straight, _) = run(&[]);
    let event = straight.iter().flat_map(|s| &s.events).next().unwrap().clone();
    let many = vec![event; edgecell_vision::MAX_OUTBOX_EVENTS - 1];
    assert_eq!(p.queue(1, &many), 0);
    assert_eq!(p.queue(2, &many[..3]), 2);
    assert_eq!(p.outbox().len(), edgecell_vision::MAX_OUTBOX_EVENTS);
    assert_eq!(p.outbox().iter().filter(|q| q.sequence == 2).count(), 3);
    // and it survives encode/decode (a state without the field decodes to an empty outbox)
    let back = StreamProcessor::decode_state(config(), &p.encode_state().unwrap()).unwrap();
    assert_eq!(back.outbox(), p.outbox());
    let empty = StreamProcessor::new(config()).unwrap().encode_state().unwrap();
    assert!(!String::from_utf8(empty).unwrap().contains("outbox"));
}

/// A stream whose state is lost (expired, replaced as unusable) starts its ids above every id
/// it used before, when the store keeps the epoch counter; without one, ids start at 1 again.
#[test]
fn a_stream_started_over_hands_out_ids_above_the_old_ones() {
    let frames = frames();
    let ids = |r: &edgecell_vision::PersistedFrame| r.analysis.tracks.iter().map(|t| t.track_id).collect::<BTreeSet<u64>>();
    let shared = Rc::new(RefCell::new(Shared { epoch: Some(0), ..Shared::default() }));
    let mut store = Store::new(&shared);
    let mut ps = PersistedStream::new(config()).unwrap();
    let mut first = BTreeSet::new();
    for f in &frames[..10] {
        first.extend(ids(&ps.process(&mut store, f.timestamp_ns, &f.detections, 3).unwrap()));
    }
    assert!(!first.is_empty() && first.iter().all(|id| (1..100).contains(id)), "{first:?}");
    // the state expires: the next frame starts over, with ids from 10^9 + 1
    shared.borrow_mut().entry = None;
    let mut second = BTreeSet::new();
    for f in &frames[10..15] {
        let r = ps.process(&mut store, f.timestamp_ns, &f.detections, 3).unwrap();
        second.extend(ids(&r));
    }
    assert!(!second.is_empty(), "tracks confirmed after the restart");
    assert!(second.iter().all(|id| *id > edgecell_vision::ID_EPOCH_SPAN && *id < edgecell_vision::ID_EPOCH_SPAN + 100), "{second:?}");
    // a corrupt state is replaced: the third start's ids are above 2 × 10^9
    write(&shared, b"not a state".to_vec());
    let mut third = BTreeSet::new();
    for f in &frames[15..] {
        let r = ps.process(&mut store, f.timestamp_ns, &f.detections, 3).unwrap();
        third.extend(ids(&r));
    }
    assert!(!third.is_empty() && third.iter().all(|id| *id > 2 * edgecell_vision::ID_EPOCH_SPAN), "{third:?}");
    assert_eq!(shared.borrow().epoch, Some(3));
    // the epoch survives encode/decode, and the tracker counts only its own ids as issued
    let stored = StreamState::decode(&shared.borrow().entry.as_ref().unwrap().value).unwrap();
    let p = StreamProcessor::restore(config(), stored).unwrap();
    assert!(p.tracks_started() < 100, "{}", p.tracks_started());
    // an epoch counter that cannot be read fails the frame with the store's error
    shared.borrow_mut().entry = None;
    let mut failing = Store::new(&shared);
    failing.fail_epoch = true;
    assert!(matches!(ps.process(&mut failing, frames[0].timestamp_ns, &frames[0].detections, 3), Err(PersistError::Store(_))));
    // a store without the counter: ids from 1 every time
    let plain = Rc::new(RefCell::new(Shared::default()));
    let mut ps = PersistedStream::new(config()).unwrap();
    let mut all = BTreeSet::new();
    for f in &frames[..10] {
        all.extend(ids(&ps.process(&mut Store::new(&plain), f.timestamp_ns, &f.detections, 3).unwrap()));
    }
    assert_eq!(all.iter().next(), Some(&1));
}

/// The old clock is remembered only for frames next to its last one: a gap or a forward jump
/// of the new clock is taken, and a new clock that runs into the old one's last second is held
/// back only until it is past it (before, such a stream could refuse every frame from then on).
#[test]
fn a_remembered_old_clock_never_holds_the_new_one_back_for_long() {
    const S: u64 = 1_000_000_000;
    let frames = frames();
    let dets = &frames[0].detections;
    let restarted = |old_last: u64| {
        let mut sp = StreamProcessor::new(config()).unwrap();
        for i in 0..10 {
            assert!(!sp.process(old_last - (9 - i) * S / 10, dets).out_of_order);
        }
        assert!(!sp.process(0, dets).out_of_order, "the restart");
        assert!(sp.old_clock().is_some());
        sp
    };
    // a gap in the new clock that lands 9.8 s before the old clock's last frame is taken
    let mut sp = restarted(20 * S);
    assert!(!sp.process(S / 5, dets).out_of_order);
    assert!(!sp.process(10 * S + S / 5, dets).out_of_order);
    // an old-clock frame a stalled instance delivers 2 s behind the old clock's last frame is
    // late too (before the restart it would have been), and the new clock goes on without a
    // second restart
    let mut sp = restarted(100 * S);
    assert!(sp.process(98 * S, dets).out_of_order);
    let next = sp.process(S / 25, dets);
    assert!(!next.out_of_order && next.events.iter().all(|e| e.kind != EventKind::Left), "{next:?}");
    // a new clock set forward to just past the old one (NTP after a reboot): held back only
    // within the window around the old clock's last frame
    let mut sp = restarted(20 * S);
    assert!(sp.process(20 * S + S / 2, dets).out_of_order);
    assert!(!sp.process(21 * S + S / 2, dets).out_of_order);
    assert!(!sp.process(21 * S + S / 2 + S / 10, dets).out_of_order);
}

/// Attempts of one frame that each start from nothing take one id epoch between them.
#[test]
fn one_frame_takes_one_id_epoch_however_many_attempts_start_over() {
    let frames = frames();
    let shared = Rc::new(RefCell::new(Shared { epoch: Some(0), ..Shared::default() }));
    let mut store = Store::new(&shared);
    // another writer puts an unusable state in before every compare-and-swap: every attempt
    // resets, none commits
    store.before_cas = Some(Box::new(|sh: &Rc<RefCell<Shared>>| {
        write(sh, b"garbage".to_vec());
    }));
    let mut ps = PersistedStream::new(config()).unwrap();
    let e = ps.process(&mut store, frames[0].timestamp_ns, &frames[0].detections, 4);
    assert!(matches!(e, Err(PersistError::Contended { attempts: 4 })), "{e:?}");
    assert_eq!(shared.borrow().epoch, Some(1));
}

/// The first frame of the clip after which someone is inside the zone (by the events so far),
/// with the tracks inside then; a frame follows it.
fn first_frame_with_someone_inside(straight: &[FrameAnalysis]) -> (usize, BTreeSet<u64>) {
    let mut inside = BTreeSet::new();
    for (i, s) in straight.iter().enumerate() {
        for e in &s.events {
            match e.kind {
                EventKind::Entered => inside.insert(e.track_id),
                EventKind::Left => inside.remove(&e.track_id),
                EventKind::Crossed => false,
            };
        }
        if !inside.is_empty() {
            assert!(i + 1 < straight.len(), "a frame follows frame {i}");
            return (i, inside);
        }
    }
    panic!("someone enters the zone in the clip");
}

/// A reconfiguration starts the stream over and closes what the old state left open: the
/// tracks inside zones get `left`, as of the last frame, after the undelivered outbox; both go
/// out with the next frame, queued or not. Before, `configure` deleted the state, and a
/// consumer counting people in a zone by `entered`/`left` kept the old tracks inside for good.
#[test]
fn a_reconfigured_stream_closes_its_zones_and_keeps_what_waits() {
    let frames = frames();
    let (straight, _) = run(&[]);
    let (k, inside) = first_frame_with_someone_inside(&straight);
    let mut new_cfg = config();
    new_cfg.zones[0].name = "square-east".into();
    new_cfg.min_frames_in_zone = 2;

    let shared = Rc::new(RefCell::new(Shared { epoch: Some(0), ..Shared::default() }));
    let mut store = Store::new(&shared);
    let mut a = PersistedStream::new(config()).unwrap();
    // nothing is ever delivered: the outbox holds every event so far
    let mut queued = Vec::new();
    for f in &frames[..=k] {
        queued = a.process_queued(&mut store, f.timestamp_ns, f.sequence, &f.detections, 3).unwrap().outbox;
    }
    let want_carried: Vec<_> = straight[..=k].iter().flat_map(|s| s.events.clone()).collect();
    assert_eq!(queued.iter().map(|q| q.event.clone()).collect::<Vec<_>>(), want_carried);
    let mut reference = StreamProcessor::new(config()).unwrap();
    for f in &frames[..=k] {
        reference.process(f.timestamp_ns, &f.detections);
    }
    let want_closed = reference.end_tracks();
    assert_eq!(want_closed.iter().map(|e| e.track_id).collect::<BTreeSet<_>>(), inside);
    assert!(want_closed.iter().all(|e| e.kind == EventKind::Left && e.region == "square" && e.timestamp_ns == frames[k].timestamp_ns));

    // the configuration is written first, then the state started over
    shared.borrow_mut().config = Some(new_cfg.clone());
    let mut b = PersistedStream::new(new_cfg.clone()).unwrap();
    let r = b.reconfigure(&mut store, &[config()], 3).unwrap();
    assert_eq!(r.closed, want_closed);
    assert_eq!((r.carried, r.dropped, &r.unreadable, r.already_started_over), (want_carried.len(), 0, &None, false));
    let stored = StreamState::decode(&shared.borrow().entry.as_ref().unwrap().value).unwrap();
    assert_eq!(r.version, Some(shared.borrow().entry.as_ref().unwrap().version));
    let p = StreamProcessor::restore(new_cfg.clone(), stored).unwrap();
    let waiting: Vec<_> = p.outbox().iter().map(|q| (q.sequence, q.event.clone())).collect();
    let want_waiting: Vec<_> = queued
        .iter()
        .map(|q| (q.sequence, q.event.clone()))
        .chain(want_closed.iter().map(|e| (frames[k].sequence, e.clone())))
        .collect();
    assert_eq!(waiting, want_waiting);
    assert_eq!(p.last_timestamp_ns(), None, "the stream starts over");

    // the same call again finds the state built under the new configuration: left as it is
    let writes = shared.borrow().writes;
    let again = PersistedStream::new(new_cfg.clone()).unwrap().reconfigure(&mut store, &[config()], 3).unwrap();
    assert!(again.already_started_over && again.version.is_none());
    assert_eq!(shared.borrow().writes, writes);

    // the next frame (a fresh instance, queued) hands them out ahead of its own, with ids
    // above the old ones
    let next = &frames[k + 1];
    let mut c = PersistedStream::new(new_cfg.clone()).unwrap();
    let r2 = c.process_queued(&mut store, next.timestamp_ns, next.sequence, &next.detections, 3).unwrap();
    assert_eq!(r2.outbox[..want_waiting.len()].iter().map(|q| (q.sequence, q.event.clone())).collect::<Vec<_>>(), want_waiting);
    assert!(r2.analysis.tracks.iter().all(|t| t.track_id > edgecell_vision::ID_EPOCH_SPAN), "{:?}", r2.analysis.tracks);

    // without the outbox (a WIT caller): the frame's events start with what waited, and the
    // outbox is empty afterwards
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut store = Store::new(&shared);
    let mut a = PersistedStream::new(config()).unwrap();
    for f in &frames[..=k] {
        a.process_queued(&mut store, f.timestamp_ns, f.sequence, &f.detections, 3).unwrap();
    }
    let mut b = PersistedStream::new(new_cfg.clone()).unwrap();
    b.reconfigure(&mut store, &[config()], 3).unwrap();
    let r3 = b.process(&mut store, next.timestamp_ns, &next.detections, 3).unwrap();
    let n = want_waiting.len();
    assert_eq!(r3.handed_out, n);
    assert_eq!(r3.analysis.events[..n].to_vec(), want_waiting.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>());
    let stored = StreamState::decode(&shared.borrow().entry.as_ref().unwrap().value).unwrap();
    assert!(StreamProcessor::restore(new_cfg.clone(), stored).unwrap().outbox().is_empty());

    // an unreadable state is replaced all the same; nothing stored, nothing written
    write(&shared, b"not a state".to_vec());
    let r4 = PersistedStream::new(new_cfg.clone()).unwrap().reconfigure(&mut store, &[config()], 3).unwrap();
    assert!(matches!(r4.unreadable, Some(StateError::Corrupt(_))) && r4.version.is_some() && r4.closed.is_empty());
    shared.borrow_mut().entry = None;
    let writes = shared.borrow().writes;
    assert_eq!(PersistedStream::new(new_cfg).unwrap().reconfigure(&mut store, &[config()], 3).unwrap(), edgecell_vision::Reconfigured::default());
    assert_eq!(shared.borrow().writes, writes);
}

/// A `configure` that races frames: another instance already holds the new configuration and
/// meets the old state first. It cannot use it, but it reads what the state owes (its outbox,
/// and its tracks' zones by the names the state keeps) and carries that into the fresh state,
/// so the events go out with its frame; the `reconfigure` that follows finds the stream already
/// started over. The same reading serves a `reconfigure` that does not know the old
/// configuration.
#[test]
fn a_frame_that_replaces_a_state_of_another_configuration_carries_what_it_owes() {
    let frames = frames();
    let (straight, _) = run(&[]);
    let (k, inside) = first_frame_with_someone_inside(&straight);
    let mut new_cfg = config();
    new_cfg.zones[0].name = "square-east".into();
    let setup = || {
        let shared = Rc::new(RefCell::new(Shared { epoch: Some(0), ..Shared::default() }));
        let mut store = Store::new(&shared);
        let mut a = PersistedStream::new(config()).unwrap();
        for f in &frames[..=k] {
            a.process_queued(&mut store, f.timestamp_ns, f.sequence, &f.detections, 3).unwrap();
        }
        (shared, store)
    };
    let owed = straight[..=k].iter().map(|s| s.events.len()).sum::<usize>() + inside.len();

    // the frame first: the new configuration is stored, the state is still the old one's
    let (shared, mut store) = setup();
    shared.borrow_mut().config = Some(new_cfg.clone());
    let next = &frames[k + 1];
    let mut b = PersistedStream::new(new_cfg.clone()).unwrap();
    let r = b.process_queued(&mut store, next.timestamp_ns, next.sequence, &next.detections, 3).unwrap();
    assert!(matches!(r.reset, Some(StateError::ConfigMismatch { .. })), "{:?}", r.reset);
    assert_eq!(r.carried, owed);
    let closing: Vec<_> = r.outbox[..owed].iter().filter(|q| q.event.kind == EventKind::Left && q.sequence == frames[k].sequence && q.event.timestamp_ns == frames[k].timestamp_ns).collect();
    assert_eq!(closing.iter().map(|q| q.event.track_id).collect::<BTreeSet<_>>(), inside, "{:?}", r.outbox);
    assert!(closing.iter().all(|q| q.event.region == "square"));
    // then the configure: nothing left to do
    let writes = shared.borrow().writes;
    let rc = PersistedStream::new(new_cfg.clone()).unwrap().reconfigure(&mut store, &[config()], 3).unwrap();
    assert!(rc.already_started_over);
    assert_eq!(shared.borrow().writes, writes);

    // a reconfigure that does not know the old configuration reads the same from the state
    let (shared, mut store) = setup();
    let r = PersistedStream::new(new_cfg).unwrap().reconfigure(&mut store, &[], 3).unwrap();
    assert!(r.unreadable.is_none() && r.version.is_some());
    assert_eq!(r.closed.iter().map(|e| e.track_id).collect::<BTreeSet<_>>(), inside);
    assert_eq!(r.carried + r.closed.len(), owed);
    drop(shared);
}

/// A source silent for longer than the idle gap (a camera or its link down) gets its tracks
/// ended when it comes back: the `left` events of those inside zones come first, stamped with
/// the last frame before the gap. Meanwhile its state says it owes them, so a store with
/// expiry keeps it longer. A shorter stall, or a source that is simply slow, changes nothing.
#[test]
fn a_source_silent_for_long_ends_its_tracks_when_it_comes_back() {
    let frames = frames();
    let (straight, _) = run(&[]);
    let (at, inside) = first_frame_with_someone_inside(&straight);
    let mut sp = StreamProcessor::new(config()).unwrap();
    assert_eq!(sp.retention(), Retention::Idle);
    for f in &frames[..=at] {
        sp.process(f.timestamp_ns, &f.detections);
    }
    assert_eq!(sp.retention(), Retention::Owing, "someone is inside a zone");
    let last = frames[at].timestamp_ns;
    let next = &frames[at + 1].detections;

    // a stall under the gap: tracking goes on as if nothing happened
    let mut stalled = sp.clone();
    let a = stalled.process(last + IDLE_GAP_NS, next);
    assert!(a.events.iter().all(|e| e.kind != EventKind::Left), "{:?}", a.events);

    let a = sp.process(last + IDLE_GAP_NS + 1, next);
    assert!(!a.out_of_order);
    let left: Vec<_> = a.events.iter().take_while(|e| e.kind == EventKind::Left).collect();
    assert_eq!(left.iter().map(|e| e.track_id).collect::<BTreeSet<_>>(), inside);
    assert!(left.iter().all(|e| e.timestamp_ns == last && e.dwell_ms.is_some()));
    // the tracks after the gap are new ones
    let before: BTreeSet<u64> = straight[at].tracks.iter().map(|t| t.track_id).collect();
    assert!(a.tracks.iter().all(|t| !before.contains(&t.track_id)), "{:?} continued across the gap", a.tracks);
    assert_eq!(sp.retention(), Retention::Idle, "nobody is inside any more and nothing waits");
    // the silence did not become the frame interval: after a few frames at the clip's rate, a
    // second silence two idle gaps long (under ten times the first) ends the tracks again
    let resumed = last + IDLE_GAP_NS + 1;
    let base = frames[at + 1].timestamp_ns;
    let mut before_second = a;
    for f in &frames[at + 2..at + 8] {
        before_second = sp.process(resumed + (f.timestamp_ns - base), &f.detections);
    }
    assert!(!before_second.tracks.is_empty());
    let second = resumed + (frames[at + 7].timestamp_ns - base) + 2 * IDLE_GAP_NS;
    let again = sp.process(second, &frames[at + 8].detections);
    assert!(
        again.tracks.iter().all(|t| !before_second.tracks.iter().any(|b| b.track_id == t.track_id)),
        "tracks went on across the second silence"
    );

    // a slow source (a frame every 90 s) is not silent: its frames keep their tracks
    let mut slow = StreamProcessor::new(config()).unwrap();
    let mut ids = Vec::new();
    for (k, f) in frames[..8].iter().enumerate() {
        let a = slow.process(k as u64 * 90_000_000_000, &f.detections);
        assert!(k < 2 || a.events.iter().all(|e| e.kind != EventKind::Left), "frame {k}: {:?}", a.events);
        ids.push(a.tracks.iter().map(|t| t.track_id).collect::<BTreeSet<_>>());
    }
    assert!(ids[7].intersection(&ids[2]).next().is_some(), "tracks go on at a slow, steady rate");

    // through the store: the state written while someone is inside is marked as owing
    let shared = Rc::new(RefCell::new(Shared::default()));
    let mut store = Store::new(&shared);
    let mut ps = PersistedStream::new(config()).unwrap();
    for f in &frames[..=at] {
        ps.process(&mut store, f.timestamp_ns, &f.detections, 4).unwrap();
    }
    assert_eq!(shared.borrow().retention, Some(Retention::Owing));
    let out = ps.process(&mut store, last + IDLE_GAP_NS + 1, next, 4).unwrap();
    assert_eq!(out.analysis.events.iter().filter(|e| e.kind == EventKind::Left).count(), inside.len());
    assert_eq!(shared.borrow().retention, Some(Retention::Idle));
}
