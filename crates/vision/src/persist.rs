//! A stream's state kept in a versioned key-value store between frames, for hosts that run
//! every invocation in a fresh instance, possibly several at once (wasmCloud 1.x).
//!
//! Per frame, [`PersistedStream::process`]:
//! 1. reads the stored state and its version;
//! 2. if this instance wrote (or read) exactly that entry last — same version and same bytes —
//!    it continues with the processor it holds and skips decoding; otherwise it decodes;
//! 3. runs the tracker and analytics step;
//! 4. writes the new state back with compare-and-swap on the version it read. When another
//!    writer got there first it re-reads and redoes step 3 on the newer state (the frame's
//!    detections are kept: inference is not repeated), at most `max_attempts` times, then gives
//!    up with [`PersistError::Contended`].
//!
//! A stored state that cannot be used (corrupt, another format, built under another
//! configuration, inconsistent) is replaced by a fresh one — the stream's tracks restart — and
//! reported in [`PersistedFrame::reset`] so the caller can count it. A frame not newer than the
//! stored state's last frame is processed against it (detections reported) but does not change
//! it and nothing is written ([`FrameAnalysis::out_of_order`]), unless its source's clock
//! restarted ([`crate::pipeline::CLOCK_RESTART_NS`]).
//!
//! [`PersistedStream::reconfigure`] starts a stream over under a new configuration and closes
//! what its stored state leaves open: the tracks inside zones get their `left` events, as of
//! the stream's last frame, and they wait in the new state's outbox with the old outbox's
//! undelivered events. A frame that finds a state it cannot use but can read (built under
//! another configuration, inconsistent) does the same with what the state keeps (its outbox,
//! its zones' names): [`PersistedFrame::carried`]. Only a state that cannot be read at all
//! (corrupt, another format) or that has expired takes its events along.
//!
//! Events that must be published can go through the state's *outbox*
//! ([`PersistedStream::process_queued`]): a frame's events are committed with the state that
//! produced them, the caller publishes everything the outbox holds, then clears it with
//! [`PersistedStream::delivered`]. A publish that fails leaves them queued, and they go out with
//! the stream's next frame: delivery is at least once (a frame another instance processes
//! between the commit and the clear publishes them again). Consumers tell a repeat by the
//! event's stream, kind, track, region and frame time. A frame processed without the outbox
//! ([`PersistedStream::process`]) takes what the outbox holds into its own events, ahead of
//! them, and empties it: those events then reach whoever receives the frame's result.

use crate::analytics::AnalyticsEvent;
use crate::detect::{Detection, NmsConfig};
use crate::error::{PersistError, StateError, VisionError};
use crate::pipeline::{FrameAnalysis, QueuedEvent, Retention, StreamConfig, StreamProcessor, StreamState};

/// A state entry as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredState {
    /// The encoded [`crate::StreamState`].
    pub value: Vec<u8>,
    /// The entry's version (changes on every write).
    pub version: u64,
}

/// The result of a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the new version.
    Swapped(u64),
    /// The entry's version was not the expected one; nothing written.
    Conflict,
}

/// Where one stream's state lives: one key of a store with versions and compare-and-swap
/// (`edgecell:cache/store` in the video actor). The key, its TTL and where configurations come
/// from are the implementation's business. Errors are the store's own messages.
pub trait StateStore {
    /// Reads the state entry (none if absent or expired).
    ///
    /// # Errors
    /// The store's failure, as text.
    fn load(&mut self) -> Result<Option<StoredState>, String>;

    /// Writes `value` only if the entry's version is `expected` (none: the key must be absent).
    /// `retention` says what the state is worth keeping: a store with expiry may keep an
    /// [`Retention::Owing`] state (events to deliver, tracks inside zones) longer than an idle
    /// one, so a source that comes back after a silence still gets what it is owed.
    ///
    /// # Errors
    /// The store's failure, as text.
    fn compare_and_swap(
        &mut self,
        expected: Option<u64>,
        value: &[u8],
        retention: Retention,
    ) -> Result<CasOutcome, String>;

    /// The stream's configuration as currently stored, if any. Asked when the stored state was
    /// built under a configuration other than the one held, and when no state is stored (a
    /// stream (re)starts), so a long-lived instance picks up a new configuration.
    ///
    /// # Errors
    /// The store's failure, as text.
    fn current_config(&mut self) -> Result<Option<StreamConfig>, String>;

    /// Counts one more start of the stream's state from nothing (the first, or after it was
    /// lost) and returns the count, 1 for the first; none if the store keeps no such count
    /// (ids then start at 1 every time). Kept apart from the state (which can expire or be
    /// replaced), so a stream started over hands out ids above the ones it used before: start
    /// n's ids begin at (n − 1) × [`ID_EPOCH_SPAN`] + 1.
    ///
    /// # Errors
    /// The store's failure, as text.
    fn next_id_epoch(&mut self) -> Result<Option<u64>, String> {
        Ok(None)
    }
}

/// Track ids each start of a stream's state has to itself (see [`StateStore::next_id_epoch`]).
pub const ID_EPOCH_SPAN: u64 = 1_000_000_000;

/// How the state a frame was processed against was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateSource {
    /// None was stored (or it was unusable): a fresh tracker.
    New,
    /// This instance still held exactly the stored entry: nothing decoded.
    Instance,
    /// Decoded from the stored bytes.
    Decoded,
}

impl StateSource {
    /// A short label for metrics: `new`, `instance` or `decoded`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Instance => "instance",
            Self::Decoded => "decoded",
        }
    }
}

/// One frame carried through the persisted state.
#[derive(Debug, Clone, PartialEq)]
pub struct PersistedFrame {
    /// Detections, tracks and events (see [`StreamProcessor::process`]).
    pub analysis: FrameAnalysis,
    /// Where the state came from on the attempt that counted.
    pub source: StateSource,
    /// Compare-and-swap attempts lost before the one that counted.
    pub conflicts: u32,
    /// The stored state that was found unusable and replaced by a fresh one, if any.
    pub reset: Option<StateError>,
    /// The stored configuration was adopted because the stored state (or its absence) said
    /// the one this instance held is stale.
    pub config_reloaded: bool,
    /// Version written (none for an out-of-order frame: nothing is written).
    pub version: Option<u64>,
    /// Size of the state written (0 when nothing was written).
    pub state_bytes: usize,
    /// With [`PersistedStream::process_queued`]: every event the state's outbox holds (earlier
    /// frames' undelivered ones first, then this frame's), to publish: the committed state's, or
    /// for an out-of-order frame (a retry after a failed publish) the stored state's as it is.
    /// Empty otherwise.
    pub outbox: Vec<QueuedEvent>,
    /// The state version [`Self::outbox`] belongs to, to pass to [`PersistedStream::delivered`].
    pub outbox_version: Option<u64>,
    /// Oldest queued events dropped to keep the outbox within [`crate::MAX_OUTBOX_EVENTS`].
    pub outbox_dropped: usize,
    /// Events a replaced state still owed (its outbox, and the `left` events of its tracks
    /// inside zones), carried into the fresh one: they go out with this frame.
    pub carried: usize,
    /// Without the outbox ([`PersistedStream::process`]): how many of the analysis's events
    /// are earlier ones handed out ahead of this frame's own.
    pub handed_out: usize,
}

/// What [`PersistedStream::reconfigure`] did with the stream's stored state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconfigured {
    /// `left` events of the tracks that were inside zones, as of the stream's last frame (its
    /// time and sequence); they wait in the new state's outbox.
    pub closed: Vec<AnalyticsEvent>,
    /// Undelivered events of the old outbox, carried over to the new one ahead of `closed`.
    pub carried: usize,
    /// Oldest events dropped to keep the new outbox within [`crate::MAX_OUTBOX_EVENTS`].
    pub dropped: usize,
    /// The stored state could not be read at all (corrupt, another format): it is replaced
    /// all the same, and its events are lost. (One that reads under none of the configurations
    /// given still gives its outbox, and closes its zones by the names it keeps.)
    pub unreadable: Option<StateError>,
    /// The stored state was already built under the new configuration and not under any
    /// previous one (a frame started the stream over between the new configuration's write and
    /// this call): left as it is.
    pub already_started_over: bool,
    /// Version of the new state written (none when nothing was stored, or it was left).
    pub version: Option<u64>,
}

/// What an instance keeps for one stream between frames.
#[derive(Debug)]
struct Held {
    version: u64,
    bytes: Vec<u8>,
    processor: StreamProcessor,
}

/// One stream's configuration, and the state this instance last wrote or read.
#[derive(Debug)]
pub struct PersistedStream {
    /// A processor with no frames: the configuration, NMS settings, class filter and
    /// fingerprint, and what a reset starts from.
    fresh: StreamProcessor,
    held: Option<Held>,
}

/// What one attempt resolved the stored entry to.
struct Resolved {
    processor: StreamProcessor,
    expected: Option<u64>,
    /// The stored bytes, when they are exactly what `processor` holds (kept to skip decoding
    /// on the next frame if this one is not written).
    stored: Option<Vec<u8>>,
    source: StateSource,
    reset: Option<StateError>,
    /// Events carried over from a replaced state (see [`PersistedFrame::carried`]).
    carried: usize,
    /// Of them, dropped to keep the outbox within its limit.
    dropped: usize,
}

impl PersistedStream {
    /// A stream with `cfg`, holding no state yet.
    ///
    /// # Errors
    /// As [`StreamProcessor::new`].
    pub fn new(cfg: StreamConfig) -> Result<Self, VisionError> {
        Ok(Self {
            fresh: StreamProcessor::new(cfg)?,
            held: None,
        })
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &StreamConfig {
        self.fresh.config()
    }

    /// NMS settings to post-process this stream's frames with.
    #[must_use]
    pub fn nms_config(&self) -> NmsConfig {
        self.fresh.nms_config()
    }

    /// Class ids to keep (empty = all).
    #[must_use]
    pub fn class_filter(&self) -> &[u32] {
        self.fresh.class_filter()
    }

    /// Version of the stored state this instance holds, if any.
    #[must_use]
    pub fn held_version(&self) -> Option<u64> {
        self.held.as_ref().map(|h| h.version)
    }

    /// The processor this instance holds (the stream's state after the last frame it wrote).
    #[must_use]
    pub fn held(&self) -> Option<&StreamProcessor> {
        self.held.as_ref().map(|h| &h.processor)
    }

    /// Carries one frame's detections through the stored state (see the module docs). The
    /// frame's events are returned in the analysis only, after whatever the state's outbox
    /// held (which is then empty): an in-order frame hands out what an earlier
    /// [`Self::process_queued`] or [`Self::reconfigure`] left waiting.
    ///
    /// # Errors
    /// [`PersistError::Store`] when the store fails, [`PersistError::Contended`] after
    /// `max_attempts` lost compare-and-swaps (at least one attempt is made),
    /// [`PersistError::Vision`] for a stored configuration that is invalid.
    pub fn process<S: StateStore>(
        &mut self,
        store: &mut S,
        timestamp_ns: u64,
        detections: &[Detection],
        max_attempts: u32,
    ) -> Result<PersistedFrame, PersistError> {
        self.run(store, timestamp_ns, None, detections, max_attempts)
    }

    /// As [`Self::process`], and the frame's events (with its `sequence`) are committed in the
    /// state's outbox along with it; [`PersistedFrame::outbox`] is then everything to publish.
    /// Call [`Self::delivered`] once they are.
    ///
    /// # Errors
    /// As [`Self::process`].
    pub fn process_queued<S: StateStore>(
        &mut self,
        store: &mut S,
        timestamp_ns: u64,
        sequence: u64,
        detections: &[Detection],
        max_attempts: u32,
    ) -> Result<PersistedFrame, PersistError> {
        self.run(store, timestamp_ns, Some(sequence), detections, max_attempts)
    }

    /// Starts the stream over under this instance's configuration, what a reconfiguration
    /// does (see the module docs). The stored state is read under the first of `previous` (the
    /// configurations it may have been built under) that fits, else under the new one; its
    /// tracks end as of its last frame and their `left` events, after its undelivered outbox,
    /// go into the fresh state's outbox. The fresh state takes the next id epoch, so its ids
    /// are above the old ones. Nothing stored: nothing is written.
    ///
    /// # Errors
    /// [`PersistError::Store`] when the store fails, [`PersistError::Contended`] after
    /// `max_attempts` lost compare-and-swaps.
    pub fn reconfigure<S: StateStore>(
        &mut self,
        store: &mut S,
        previous: &[StreamConfig],
        max_attempts: u32,
    ) -> Result<Reconfigured, PersistError> {
        let attempts = max_attempts.max(1);
        let mut epoch = None;
        for _ in 0..attempts {
            self.held = None;
            let Some(entry) = store.load().map_err(PersistError::Store)? else {
                return Ok(Reconfigured::default());
            };
            let mut out = Reconfigured::default();
            let under_previous = previous
                .iter()
                .find_map(|cfg| StreamProcessor::decode_state(cfg.clone(), &entry.value).ok());
            let (carried, closing) = match under_previous {
                Some(p) => p.into_pending(),
                None => match StreamProcessor::decode_state(self.fresh.config().clone(), &entry.value) {
                    Ok(_) if !previous.is_empty() && previous.iter().all(|p| p != self.fresh.config()) => {
                        return Ok(Reconfigured { already_started_over: true, ..out });
                    }
                    Ok(p) => p.into_pending(),
                    // read without its configuration: the zone names it keeps close its tracks
                    Err(VisionError::State(e)) => match StreamState::decode(&entry.value) {
                        Ok(state) => state.into_pending(),
                        Err(_) => {
                            out.unreadable = Some(e);
                            Default::default()
                        }
                    },
                    Err(e) => return Err(e.into()),
                },
            };
            let mut fresh = self.fresh_state(store, Some(entry.version), None, &mut epoch)?.processor;
            out.carried = carried.len();
            out.closed = closing.iter().map(|q| q.event.clone()).collect();
            out.dropped = fresh.carry(carried.into_iter().chain(closing));
            let bytes = fresh.encode_state()?;
            if let CasOutcome::Swapped(version) =
                store.compare_and_swap(Some(entry.version), &bytes, fresh.retention()).map_err(PersistError::Store)?
            {
                out.version = Some(version);
                self.held = Some(Held { version, bytes, processor: fresh });
                return Ok(out);
            }
        }
        Err(PersistError::Contended { attempts })
    }

    /// Empties the outbox of the state `version` (this instance's last
    /// [`Self::process_queued`]'s [`PersistedFrame::outbox_version`]), whose events the caller
    /// has published. Returns the version
    /// written, or none when there was nothing to clear or the state has moved on since (the
    /// writer after it took the outbox along and publishes it again).
    ///
    /// # Errors
    /// [`PersistError::Store`] when the store fails (the events stay queued and are published
    /// again with the next frame).
    pub fn delivered<S: StateStore>(&mut self, store: &mut S, version: u64) -> Result<Option<u64>, PersistError> {
        let Some(held) = self.held.as_ref().filter(|h| h.version == version && !h.processor.outbox().is_empty()) else {
            return Ok(None);
        };
        let mut processor = held.processor.clone();
        processor.clear_outbox();
        let bytes = processor.encode_state()?;
        match store.compare_and_swap(Some(version), &bytes, processor.retention()).map_err(PersistError::Store)? {
            CasOutcome::Swapped(version) => {
                self.held = Some(Held { version, bytes, processor });
                Ok(Some(version))
            }
            CasOutcome::Conflict => {
                self.held = None;
                Ok(None)
            }
        }
    }

    fn run<S: StateStore>(
        &mut self,
        store: &mut S,
        timestamp_ns: u64,
        queue: Option<u64>,
        detections: &[Detection],
        max_attempts: u32,
    ) -> Result<PersistedFrame, PersistError> {
        let attempts = max_attempts.max(1);
        let mut config_reloaded = false;
        // one id epoch per frame, however many attempts start from nothing
        let mut epoch = None;
        for conflicts in 0..attempts {
            let entry = store.load().map_err(PersistError::Store)?;
            let resolved = self.resolve(store, entry, &mut config_reloaded, &mut epoch)?;
            let Resolved {
                mut processor,
                expected,
                stored,
                source,
                reset,
                carried,
                dropped,
            } = resolved;
            let analysis = processor.process(timestamp_ns, detections);
            let mut frame = PersistedFrame {
                analysis,
                source,
                conflicts,
                reset,
                config_reloaded,
                version: None,
                state_bytes: 0,
                outbox: Vec::new(),
                outbox_version: None,
                outbox_dropped: dropped,
                carried,
                handed_out: 0,
            };
            if frame.analysis.out_of_order {
                // Nothing changed: keep holding the stored entry if we have it exactly, and hand
                // out what its outbox still holds (a frame sent again after its events could
                // not be published).
                if let (Some(version), Some(bytes)) = (expected, stored) {
                    if queue.is_some() && !processor.outbox().is_empty() {
                        frame.outbox = processor.outbox().to_vec();
                        frame.outbox_version = Some(version);
                    }
                    self.held = Some(Held {
                        version,
                        bytes,
                        processor,
                    });
                }
                return Ok(frame);
            }
            match queue {
                Some(sequence) => frame.outbox_dropped += processor.queue(sequence, &frame.analysis.events),
                // no outbox on this path: what waits goes out as this frame's events
                None if !processor.outbox().is_empty() => {
                    let own = std::mem::take(&mut frame.analysis.events);
                    let waiting = processor.take_outbox();
                    frame.handed_out = waiting.len();
                    frame.analysis.events = waiting.into_iter().map(|q| q.event).chain(own).collect();
                }
                None => {}
            }
            let bytes = processor.encode_state()?;
            match store
                .compare_and_swap(expected, &bytes, processor.retention())
                .map_err(PersistError::Store)?
            {
                CasOutcome::Swapped(version) => {
                    frame.version = Some(version);
                    frame.state_bytes = bytes.len();
                    if queue.is_some() {
                        frame.outbox = processor.outbox().to_vec();
                        frame.outbox_version = Some(version);
                    }
                    self.held = Some(Held {
                        version,
                        bytes,
                        processor,
                    });
                    return Ok(frame);
                }
                CasOutcome::Conflict => self.held = None,
            }
        }
        Err(PersistError::Contended { attempts })
    }

    /// Turns the stored entry into a processor to advance.
    fn resolve<S: StateStore>(
        &mut self,
        store: &mut S,
        entry: Option<StoredState>,
        config_reloaded: &mut bool,
        epoch: &mut Option<Option<u64>>,
    ) -> Result<Resolved, PersistError> {
        let Some(entry) = entry else {
            // A stream (re)starting: whatever we held is gone, and the configuration may have
            // been replaced with it.
            self.held = None;
            if let Some(cfg) = store.current_config().map_err(PersistError::Store)?
                && &cfg != self.fresh.config()
            {
                self.fresh = StreamProcessor::new(cfg)?;
                *config_reloaded = true;
            }
            return self.fresh_state(store, None, None, epoch);
        };
        if let Some(held) = self.held.take()
            && held.version == entry.version
            && held.bytes == entry.value
        {
            return Ok(Resolved {
                processor: held.processor,
                expected: Some(entry.version),
                stored: Some(entry.value),
                source: StateSource::Instance,
                reset: None,
                carried: 0,
                dropped: 0,
            });
        }
        let decoded = match StreamProcessor::decode_state(self.fresh.config().clone(), &entry.value)
        {
            Err(VisionError::State(StateError::ConfigMismatch { found, expected })) => {
                // Someone may have reconfigured the stream: adopt the stored configuration if
                // the state was built under it.
                match store.current_config().map_err(PersistError::Store)? {
                    Some(cfg) if &cfg != self.fresh.config() => {
                        let candidate = StreamProcessor::new(cfg)?;
                        if candidate.config_fingerprint() == found {
                            self.fresh = candidate;
                            *config_reloaded = true;
                            StreamProcessor::decode_state(self.fresh.config().clone(), &entry.value)
                        } else {
                            Err(StateError::ConfigMismatch { found, expected }.into())
                        }
                    }
                    _ => Err(StateError::ConfigMismatch { found, expected }.into()),
                }
            }
            other => other,
        };
        match decoded {
            Ok(processor) => Ok(Resolved {
                processor,
                expected: Some(entry.version),
                stored: Some(entry.value),
                source: StateSource::Decoded,
                reset: None,
                carried: 0,
                dropped: 0,
            }),
            Err(VisionError::State(e)) => {
                // A state that reads but does not fit (built under another configuration, or
                // inconsistent with it) still says what it owes: its outbox, and its tracks'
                // zones to close. They go into the fresh state.
                let mut fresh = self.fresh_state(store, Some(entry.version), Some(e), epoch)?;
                if let Ok(old) = StreamState::decode(&entry.value) {
                    let (outbox, closing) = old.into_pending();
                    fresh.carried = outbox.len() + closing.len();
                    fresh.dropped = fresh.processor.carry(outbox.into_iter().chain(closing));
                }
                Ok(fresh)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn fresh_state<S: StateStore>(
        &self,
        store: &mut S,
        expected: Option<u64>,
        reset: Option<StateError>,
        epoch: &mut Option<Option<u64>>,
    ) -> Result<Resolved, PersistError> {
        let mut processor = self.fresh.clone();
        let epoch = match *epoch {
            Some(known) => known,
            None => *epoch.insert(store.next_id_epoch().map_err(PersistError::Store)?),
        };
        if let Some(epoch) = epoch {
            processor.start_ids_at(epoch.saturating_sub(1).saturating_mul(ID_EPOCH_SPAN).saturating_add(1));
        }
        Ok(Resolved {
            processor,
            expected,
            stored: None,
            source: StateSource::New,
            reset,
            carried: 0,
            dropped: 0,
        })
    }
}
