//! The v2x-validator actor: a thin adapter between `edgecell:v2x/validator` (and NATS
//! messages) and the `edgecell-v2x` crate.
//!
//! - Per-pseudonym history, replay state and the verified-certificate cache live in the cache
//!   provider (`edgecell:cache/store`, with TTLs), so a replacement instance keeps them.
//! - The configuration given to `configure` is kept in the cache too; without one the
//!   instance reads `wasi:config` keys: `config` (validator TOML), `map` (road GeoJSON),
//!   `map-frame` (`wgs84` | `local`), `namespace` (cache namespace, default `v2x`),
//!   `reporter-id` (station id put into misbehaviour reports) and `history-attempts` (how
//!   often a message is judged when concurrent instances wrote its sender's history, 1–64,
//!   default 8).
//! - NATS: `edgecell.v2x.in.<region>` carries one binary ETSI message — a UPER PDU, a
//!   GeoNetworking packet (secured or not), a radiotap frame or IEEE 1609.2 data, told apart by
//!   their first bytes ([`MessageFormat::of_binary`]) — or one VeReMi JSON line (body starting
//!   with `{`); the verdict goes to `edgecell.v2x.verdict.<region>` (or the reply
//!   subject), a TS 103 759 shaped report to `edgecell.v2x.report.<region>` when rejected.

// The generated guest glue is FFI with the component ABI and needs `unsafe`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "edgecell:actors/v2x-validator",
        generate_all,
    });
}

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use bindings::edgecell::cache::store as cache;
use bindings::edgecell::metrics::recorder::{self, Label};
use bindings::edgecell::types::types::GeoPosition;
use bindings::exports::edgecell::v2x::validator::{
    self as wit, CamPermission as WitCamPermission, CheckResult as WitCheck, LocalPosition, MessageFormat as WitFormat,
    Permission as WitPermission, Position as WitPosition, Risk as WitRisk, RiskLevel as WitRiskLevel, V2xError as WitError,
    V2xMessage, Validation as WitValidation, Verdict as WitVerdict,
};
use bindings::exports::wasmcloud::messaging::handler::Guest as Handler;
use bindings::wasmcloud::messaging::consumer;
use bindings::wasmcloud::messaging::types::BrokerMessage;
use edgecell_v2x::config::Config;
use edgecell_v2x::decode::VeremiRecord;
use edgecell_v2x::geo::Xy;
use edgecell_v2x::history::{Footprint, HistoryStore, ReplayMarks, Track, Unreadable, grid};
use edgecell_v2x::map::{MapFrame, RoadMap};
use edgecell_v2x::observation::Position;
use edgecell_v2x::risk::RiskLevel;
use edgecell_v2x::security::{CertCache, HashedId8, VerifiedCert};
use edgecell_v2x::ssp::Permission;
use edgecell_v2x::validator::AnchorCheck;
use edgecell_v2x::{MessageFormat, ReceiveContext, ReceiverState, Validation, Validator, V2xError, Verdict};

/// Wall-clock lifetime of history entries in the cache (a pseudonym unheard this long is new).
const HISTORY_TTL_MS: u64 = 120_000;
/// Wall-clock lifetime of verified certificates in the cache.
const CERT_TTL_MS: u64 = 24 * 3_600_000;
/// Key prefix of verified certificates, versioned with the rules they were verified under:
/// `cert4/` since SSPs, SSP ranges and chain lengths are recorded (entries under `cert3/`,
/// `cert2/` and `cert/` lack them and expire unread).
const CERT_KEY: &str = "cert4/";
/// History older than this (in the messages' own time base) counts as absent, as in the
/// crate's in-memory store.
const HISTORY_TRACE_TTL_S: f64 = 30.0;
/// The cache key of the digest of the trust anchors an instance verified (see [`build`]).
const ANCHORS_OK_KEY: &str = "anchors-ok";
/// Extra time footprints stay in their cells beyond the intersection window.
const RECENT_MARGIN_S: f64 = 1.0;

struct Actor;

type KvValidator = Validator<KvHistory, KvCerts>;

struct State {
    validator: KvValidator,
    ns: String,
    reporter_id: u32,
    /// Attempts per message when history writes conflict (see [`committed`]).
    attempts: u32,
    /// The local frame origin is in the cache (or fixed by a WGS84 map).
    origin_synced: bool,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

// ---- cache-backed stores -------------------------------------------------------------------

/// Per-pseudonym tracks in the cache (`track/<pseudonym>`, judged current against each
/// message's own receive time) and, for the intersection check, the footprints of recent
/// vehicles filed by place (`cell/<i>/<j>`, see [`grid`]). A message reads and writes its
/// sender's track and the cells around it: a few hundred bytes, however many vehicles are heard.
///
/// Instances run concurrently (on a lattice, one per message). A message's writes — its track,
/// its signer's replay mark and the cells it refiles — are held until the message is judged and
/// then go out in one `set-many-if` ([`KvHistory::commit`]):
/// - the track and the replay mark expect the versions this message read. When another
///   instance wrote either in between (two messages of one sender, or two copies of one signed
///   message, handled at once), nothing is written and the message is judged again on fresh
///   reads ([`committed`]). No track update is lost, and only one copy passes the replay check.
/// - cells are written along unchecked. Neighbours share cells, so in dense traffic most
///   concurrent messages touch a common cell; judging them again would multiply the provider
///   calls (a lattice bench of 500 vehicles 4 m apart collapsed at 1k msg/s when cells were
///   checked too). When two instances refile one cell at once, one footprint can be missing
///   from it until that vehicle's next beacon (at 1–10 Hz).
struct KvHistory {
    ns: String,
    keep_s: f64,
    /// The cells read for the message being handled (absent = empty).
    cells: RefCell<HashMap<grid::Cell, Vec<Footprint>>>,
    /// The version of the track and replay mark read for the message being handled (none =
    /// absent): what their writes expect.
    versions: RefCell<HashMap<String, Option<u64>>>,
    /// The track and cells `store` prepared, written by `commit`; true: checked against the
    /// version read (the track), false: written along (cells).
    writes: RefCell<Vec<(String, Vec<u8>, bool)>>,
    /// The handled sender's footprint as stored before this message: its cells drop it.
    prev: Cell<Option<Footprint>>,
    /// `track/<pseudonym>` and cells as a new instance read them with its stored state
    /// (see [`SENDER_HINT`]): the first `load` of that pseudonym takes them instead of a call.
    prefetched: RefCell<Option<Prefetched>>,
    /// The hinted signer's replay mark as read ahead (`sec/<id>`), taken by the first lookup.
    prefetched_sec: RefCell<Option<(u64, Option<cache::Entry>)>>,
    /// The replay mark to write when the message is committed.
    pending_sec: RefCell<Option<(String, Vec<u8>)>>,
}

/// What a write of a key read at `version` (none = absent) expects.
fn expect_read(version: Option<u64>) -> cache::Expectation {
    version.map_or(cache::Expectation::Absent, cache::Expectation::Version)
}

/// How [`KvHistory::commit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Written, or nothing to write.
    Done,
    /// Another instance changed an entry this message read: nothing was written.
    Conflict,
    /// Not written, and judging again would not help (counted in `v2x_store_errors_total`):
    /// the last attempt conflicted too (the replay mark was then tried alone with
    /// compare-and-swap), or the cache failed. `mark_lost` when a replay mark was to be written
    /// and was not.
    GaveUp { mark_lost: bool },
}

/// How often one message is judged in all before its track write is given up (counted as
/// `v2x_store_errors_total{op="conflict"}`), unless the `history-attempts` config key says
/// otherwise (1–64).
const DEFAULT_ATTEMPTS: u32 = 8;

/// A sender's entries read ahead: the pseudonym, `track/<pseudonym>` and the cells
/// around the position it reports with their values.
struct Prefetched {
    pseudonym: u64,
    track: Option<cache::Entry>,
    cells: Vec<(grid::Cell, Option<cache::Entry>)>,
}

/// The sender of a message and (when the message gives it in the local frame) its position,
/// known to the handler before the validator exists.
#[derive(Clone, Copy)]
struct SenderHint {
    pseudonym: u64,
    pos: Option<Xy>,
    /// The HashedId8 of a secured message's signer: its cached certificate (`cert/<id>`) and
    /// replay mark (`sec/<id>`) are read ahead too.
    signer: Option<HashedId8>,
}

/// A signer's entries read ahead: `cert/<id>` and `sec/<id>` as they were.
struct PrefetchedSigner {
    id: HashedId8,
    cert: Option<Vec<u8>>,
    sec: Option<cache::Entry>,
}

/// Whether `id` is the signer of the message being handled in a hinted (new) instance: only
/// then may entries read ahead for it stand in for a call.
fn hinted_signer(id: &HashedId8) -> bool {
    SENDER_HINT.get().and_then(|h| h.signer).as_ref() == Some(id)
}

/// The radius read ahead around a hinted position: a 5 m × 2 m car's circle, a little more.
const HINT_RADIUS_M: f64 = 3.0;

thread_local! {
    /// The sender of the message being handled, when the handler knows it before the validator
    /// exists. A new instance (on a lattice, every invocation) then reads that sender's history
    /// in the same `get-many` as its stored configuration: one provider round trip fewer per
    /// message.
    static SENDER_HINT: Cell<Option<SenderHint>> = const { Cell::new(None) };
}

/// The cache key of a pseudonym's track.
fn track_key(pseudonym: u64) -> String {
    format!("track/{pseudonym}")
}

/// The cache key of a signer's replay marks (the signer's HashedId8 as a big-endian number).
fn sec_key(signer: u64) -> String {
    format!("sec/{signer:016x}")
}

fn store_error(op: &str) {
    count("v2x_store_errors_total", &[("op", op)]);
}

impl KvHistory {
    fn new(ns: &str, keep_s: f64, prefetched: Option<Prefetched>, sec: Option<(u64, Option<cache::Entry>)>) -> Self {
        Self {
            ns: ns.to_owned(),
            keep_s,
            prefetched_sec: RefCell::new(sec),
            pending_sec: RefCell::new(None),
            cells: RefCell::new(HashMap::new()),
            versions: RefCell::new(HashMap::new()),
            writes: RefCell::new(Vec::new()),
            prev: Cell::new(None),
            prefetched: RefCell::new(prefetched),
        }
    }

    /// Notes the version `key` had when this message read it; returns its value.
    fn read<'e>(&self, key: String, entry: Option<&'e cache::Entry>) -> Option<&'e [u8]> {
        self.versions.borrow_mut().insert(key, entry.map(|e| e.version));
        entry.map(|e| e.value.as_slice())
    }

    /// Keeps a cell as read (a value that is not a cell counts as empty). Cells are written
    /// unchecked, so their versions are not kept.
    fn hold(&self, cell: grid::Cell, entry: Option<&cache::Entry>) {
        let entries = match entry.map(|e| grid::decode(&e.value)) {
            Some(Some(e)) => e,
            Some(None) => {
                store_error("decode-cell");
                Vec::new()
            }
            None => Vec::new(),
        };
        self.cells.borrow_mut().insert(cell, entries);
    }

    /// Reads, in one call, the cells of `wanted` this message does not hold yet; false when
    /// that read failed.
    fn fetch_cells(&self, wanted: impl IntoIterator<Item = grid::Cell>) -> bool {
        let mut missing: Vec<grid::Cell> = Vec::new();
        {
            let held = self.cells.borrow();
            for c in wanted {
                if !held.contains_key(&c) && !missing.contains(&c) {
                    missing.push(c);
                }
            }
        }
        if missing.is_empty() {
            return true;
        }
        let keys: Vec<String> = missing.iter().map(|&c| grid::key(c)).collect();
        match cache::get_many(&self.ns, &keys) {
            Ok(entries) => {
                let mut values = entries.into_iter();
                for c in missing {
                    self.hold(c, values.next().flatten().as_ref());
                }
                true
            }
            // unread cells stay unheld: the search is skipped, the store retries
            Err(_) => {
                store_error("get-many");
                false
            }
        }
    }

    /// Reads the cells `mine` and those the sender's previous footprint was filed under (it
    /// leaves them when it moves), so `store` can refile it without another call; false when
    /// the read failed.
    fn fetch_around(&self, mine: &[grid::Cell]) -> bool {
        let before = self.prev.get().map(|p| grid::cells_of(&p)).unwrap_or_default();
        self.fetch_cells(mine.iter().chain(&before).copied())
    }

    /// The sender's track from its entry, for a message received at `now_s`.
    fn track_from(&self, track: Option<&[u8]>, now_s: f64) -> Option<Track> {
        let track = track
            .and_then(|t| serde_json::from_slice::<Track>(t).ok())
            .filter(|t| t.current_at(now_s, HISTORY_TRACE_TTL_S));
        self.prev.set(track.as_ref().map(Footprint::of));
        track
    }

    /// Writes what the message just judged left (track, replay mark, cells) in one
    /// `set-many-if` — the track and the mark expecting the versions read for the message, the
    /// cells unchecked — and forgets the message's reads. A key whose read failed is not
    /// written: nothing is overwritten unseen.
    ///
    /// On the `last` attempt a conflicting batch is given up, but its replay mark is still
    /// written alone (compare-and-swap on the version read): other writers keeping a sender's
    /// track busy must not keep a verified message from marking its generation time, which
    /// would let it be replayed later.
    fn commit(&self, last: bool) -> Commit {
        let writes = std::mem::take(&mut *self.writes.borrow_mut());
        let mark = self.pending_sec.borrow_mut().take();
        let versions = std::mem::take(&mut *self.versions.borrow_mut());
        let mut items: Vec<cache::ConditionalWrite> = writes
            .into_iter()
            .filter_map(|(key, value, checked)| {
                let expect = match versions.get(&key) {
                    // last writer wins in a cell (see the type's documentation)
                    _ if !checked => cache::Expectation::Any,
                    Some(&read) => expect_read(read),
                    None => {
                        store_error("unread");
                        return None;
                    }
                };
                Some(cache::ConditionalWrite { key, expect, value })
            })
            .collect();
        // the replay mark goes last, checked like the track
        let mark_at = items.len();
        let mut mark_read = None;
        if let Some((key, value)) = mark {
            match versions.get(&key) {
                Some(&read) => {
                    mark_read = Some(read);
                    items.push(cache::ConditionalWrite { key, expect: expect_read(read), value });
                }
                None => store_error("unread"),
            }
        }
        if items.is_empty() {
            return Commit::Done;
        }
        match cache::set_many_if(&self.ns, &items, Some(HISTORY_TTL_MS)) {
            Ok(cache::BatchOutcome::Written(_)) => Commit::Done,
            Ok(cache::BatchOutcome::Conflict(_)) if !last => Commit::Conflict,
            Ok(cache::BatchOutcome::Conflict(_)) => {
                store_error("conflict");
                let mark_lost = match (items.get(mark_at), mark_read) {
                    (Some(m), Some(read)) => {
                        let cas = cache::compare_and_swap(&self.ns, &m.key, read, &m.value, Some(HISTORY_TTL_MS));
                        !matches!(cas, Ok(cache::CasOutcome::Swapped(_)))
                    }
                    _ => false,
                };
                Commit::GaveUp { mark_lost }
            }
            Err(_) => {
                store_error("set-many-if");
                Commit::GaveUp { mark_lost: mark_read.is_some() }
            }
        }
    }
}

/// Runs `judge` (one message through the validator) and commits the history it leaves; when
/// another instance changed what it read, judges it again on fresh reads (`s.attempts` in
/// all). The outcome returned is that of the last attempt; when even its replay mark could
/// not be written, `replay_unsure` marks its replay check as not known.
fn committed<R>(s: &mut State, mut judge: impl FnMut(&mut KvValidator) -> R, replay_unsure: impl FnOnce(&KvValidator, &mut R)) -> R {
    let mut attempt = 1;
    loop {
        let mut r = judge(&mut s.validator);
        match s.validator.history().commit(attempt >= s.attempts) {
            Commit::Done => return r,
            Commit::Conflict => {
                count("v2x_store_conflicts_total", &[]);
                attempt += 1;
            }
            Commit::GaveUp { mark_lost } => {
                if mark_lost {
                    replay_unsure(&s.validator, &mut r);
                }
                return r;
            }
        }
    }
}

/// A verdict whose replay mark could not be written: its replay check did not really pass
/// (skipped, or failing `replay_unverified` as the validator's configuration says).
fn replay_not_known(v: &KvValidator, r: &mut Result<Validation, V2xError>) {
    if let Ok(validation) = r {
        v.replay_unknown(validation);
    }
}

impl HistoryStore for KvHistory {
    fn load(&self, pseudonym: u64, now_s: f64) -> Option<Track> {
        // a message starts here: cells read for an earlier one may have changed since
        self.cells.borrow_mut().clear();
        // only while the message it was read for is being handled: never a stale read later
        let prefetched = self.prefetched.borrow_mut().take();
        if let Some(p) = prefetched
            && p.pseudonym == pseudonym
            && SENDER_HINT.get().is_some_and(|h| h.pseudonym == pseudonym)
        {
            for (c, e) in &p.cells {
                self.hold(*c, e.as_ref());
            }
            let track = self.read(track_key(pseudonym), p.track.as_ref());
            return self.track_from(track, now_s);
        }
        let key = track_key(pseudonym);
        match cache::get(&self.ns, &key) {
            Ok(entry) => {
                let track = self.read(key, entry.as_ref());
                self.track_from(track, now_s)
            }
            Err(_) => {
                store_error("get");
                self.prev.set(None);
                None
            }
        }
    }

    fn nearby(&self, around: &Footprint, since_s: f64, out: &mut Vec<Footprint>) -> bool {
        let mine = grid::cells_of(around);
        if mine.is_empty() {
            return false; // not a place
        }
        if !self.fetch_around(&mine) {
            return false;
        }
        let held = self.cells.borrow();
        let start = out.len();
        for c in &mine {
            for e in held.get(c).into_iter().flatten() {
                if e.pseudonym == around.pseudonym || e.receive_s < since_s {
                    continue;
                }
                // a vehicle filed twice (a race between instances) counts where it was last
                match out[start..].iter_mut().find(|o| o.pseudonym == e.pseudonym) {
                    Some(o) if o.receive_s < e.receive_s => *o = *e,
                    Some(_) => {}
                    None => out.push(*e),
                }
            }
        }
        true
    }

    fn store(&mut self, track: Track) {
        let fp = Footprint::of(&track);
        let mine = grid::cells_of(&fp);
        // already held after `nearby`; read here only when that read failed
        self.fetch_around(&mine);
        let mut writes = self.writes.borrow_mut();
        writes.clear();
        match serde_json::to_vec(&track) {
            Ok(t) => writes.push((track_key(track.pseudonym), t, true)),
            Err(_) => store_error("encode"),
        }
        for (cell, entries) in self.cells.borrow_mut().iter_mut() {
            let insert = mine.contains(cell);
            let filed_here = entries.iter().any(|e| e.pseudonym == fp.pseudonym);
            if (insert || filed_here) && grid::refile(entries, &fp, insert, self.keep_s) {
                writes.push((grid::key(*cell), grid::encode(entries), false));
            }
        }
        self.prev.set(Some(fp));
    }

    fn replay_marks(&self, signer: u64) -> Result<ReplayMarks, Unreadable> {
        let key = sec_key(signer);
        // absent: no marks; a value that is not marks: not known (the check is skipped)
        let parse = |v: Option<&[u8]>| match v {
            None => Ok(ReplayMarks::default()),
            Some(v) => std::str::from_utf8(v).ok().and_then(ReplayMarks::parse).ok_or_else(|| {
                store_error("decode-sec");
                Unreadable
            }),
        };
        let read_ahead = self.prefetched_sec.borrow_mut().take();
        if let Some((id, entry)) = read_ahead
            && id == signer
            && hinted_signer(&signer.to_be_bytes())
        {
            return parse(self.read(key, entry.as_ref()));
        }
        match cache::get(&self.ns, &key) {
            Ok(e) => parse(self.read(key, e.as_ref())),
            Err(_) => {
                store_error("get");
                Err(Unreadable)
            }
        }
    }

    fn set_replay_marks(&mut self, signer: u64, marks: ReplayMarks) {
        // committed with the track, see `commit`
        *self.pending_sec.borrow_mut() = Some((sec_key(signer), marks.encode().into_bytes()));
    }
}

/// Verified certificates in the cache (`cert/<HashedId8 hex>`), so each is verified once per
/// lattice rather than once per instance.
struct KvCerts {
    ns: String,
    /// The hinted signer's `cert/<id>` as read ahead, taken by the first lookup of that id.
    prefetched: RefCell<Option<(HashedId8, Option<Vec<u8>>)>>,
}

fn hex8(id: &HashedId8) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl CertCache for KvCerts {
    fn get(&self, id: &HashedId8) -> Option<VerifiedCert> {
        // read ahead for this id (kept for its own lookup when another id is asked for first)
        let read_ahead = self.prefetched.borrow().as_ref().is_some_and(|(pid, _)| pid == id) && hinted_signer(id);
        if read_ahead && let Some((_, value)) = self.prefetched.borrow_mut().take() {
            return value.and_then(|v| serde_json::from_slice(&v).ok());
        }
        match cache::get(&self.ns, &format!("{CERT_KEY}{}", hex8(id))) {
            Ok(e) => e.and_then(|e| serde_json::from_slice(&e.value).ok()),
            Err(_) => {
                store_error("get");
                None
            }
        }
    }

    fn put(&mut self, cert: VerifiedCert) {
        let key = format!("{CERT_KEY}{}", hex8(&cert.id));
        match serde_json::to_vec(&cert) {
            Ok(v) => {
                if cache::set(&self.ns, &key, &v, Some(CERT_TTL_MS)).is_err() {
                    store_error("set");
                }
            }
            Err(_) => store_error("encode"),
        }
    }
}

// ---- configuration and state ---------------------------------------------------------------

fn config_value(key: &str) -> Option<String> {
    bindings::wasi::config::store::get(key).ok().flatten().filter(|v| !v.trim().is_empty())
}

fn namespace() -> String {
    config_value("namespace").unwrap_or_else(|| "v2x".to_owned())
}

fn parse_frame(s: &str) -> Result<MapFrame, V2xError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "wgs84" => Ok(MapFrame::Wgs84),
        "local" => Ok(MapFrame::Local),
        other => Err(V2xError::InvalidConfig(format!("map-frame must be wgs84 or local, not {other:?}"))),
    }
}

/// What a new instance needs from the cache before its first message — the stored
/// configuration, the frame origin and the receiver state — read in one round trip (on a
/// lattice every invocation is a new instance, and each cache call a wRPC call).
#[derive(Default)]
struct Stored {
    config: Option<Vec<u8>>,
    origin: Option<Vec<u8>>,
    ego: Option<Vec<u8>>,
    /// The digest of the trust anchors an earlier instance verified (`anchors-ok`).
    anchors_ok: Option<Vec<u8>>,
    /// The hinted sender's history entries, read in the same call.
    history: Option<Prefetched>,
    /// The hinted signer's certificate and replay mark, read in the same call.
    signer: Option<PrefetchedSigner>,
}

fn read_stored(ns: &str) -> Stored {
    let hint = SENDER_HINT.get();
    let mut keys = ["config", "origin", "ego", ANCHORS_OK_KEY].map(str::to_owned).to_vec();
    let mut cells = Vec::new();
    if let Some(h) = hint {
        keys.push(track_key(h.pseudonym));
        cells = h.pos.map(|p| grid::cells_touching(p, HINT_RADIUS_M)).unwrap_or_default();
        keys.extend(cells.iter().map(|&c| grid::key(c)));
    }
    let signer = hint.and_then(|h| h.signer);
    if let Some(id) = &signer {
        keys.extend([format!("{CERT_KEY}{}", hex8(id)), sec_key(u64::from_be_bytes(*id))]);
    }
    match cache::get_many(ns, &keys) {
        Ok(entries) => {
            let mut entries = entries.into_iter();
            let mut value = || entries.next().flatten().map(|e| e.value);
            let (config, origin, ego, anchors_ok) = (value(), value(), value(), value());
            let history = hint.map(|h| Prefetched {
                pseudonym: h.pseudonym,
                track: entries.next().flatten(),
                cells: cells.into_iter().map(|c| (c, entries.next().flatten())).collect(),
            });
            let signer =
                signer.map(|id| PrefetchedSigner { id, cert: entries.next().flatten().map(|e| e.value), sec: entries.next().flatten() });
            Stored { config, origin, ego, anchors_ok, history, signer }
        }
        Err(_) => {
            store_error("get-many");
            Stored::default()
        }
    }
}

/// Builds a validator from a TOML text (plus the `map` / `map-frame` config keys) over the
/// cache-backed stores, restoring the frame origin and the receiver state read from the cache.
///
/// The trust anchors' self-signatures are verified by the first instance that builds with them
/// (it records their digest under [`ANCHORS_OK_KEY`]); later instances, one per message on a
/// lattice, read that digest with the rest and only parse the anchors.
fn build(ns: &str, toml: &str, stored: Stored) -> Result<State, V2xError> {
    let cfg = Config::from_toml(toml)?;
    let keep_s = cfg.thresholds.intersection_window_s.max(0.0) + RECENT_MARGIN_S;
    let (cert, sec) = match stored.signer {
        Some(p) => (Some((p.id, p.cert)), Some((u64::from_be_bytes(p.id), p.sec))),
        None => (None, None),
    };
    let history = KvHistory::new(ns, keep_s, stored.history, sec);
    let digest = cfg.security.anchors_digest();
    let verified_before = digest.is_some() && digest.as_deref().map(str::as_bytes) == stored.anchors_ok.as_deref();
    let check = if verified_before { AnchorCheck::VerifiedBefore } else { AnchorCheck::Verify };
    let certs = KvCerts { ns: ns.to_owned(), prefetched: RefCell::new(cert) };
    let mut v = Validator::with_stores_checking(cfg, history, certs, check)?;
    if let (Some(d), false) = (&digest, verified_before)
        && cache::set(ns, ANCHORS_OK_KEY, d.as_bytes(), None).is_err()
    {
        store_error("set");
    }
    let map_key = config_value("map");
    if let Some(geojson) = &map_key {
        let frame = config_value("map-frame").map_or(Ok(MapFrame::Wgs84), |f| parse_frame(&f))?;
        v.set_map(RoadMap::from_geojson(geojson)?, frame);
    }
    let has_map = v.config().map_geojson.is_some() || map_key.is_some();
    let wgs84_map = has_map && v.config().map_frame == MapFrame::Wgs84;
    let mut origin_synced = wgs84_map;
    if !wgs84_map
        && let Some(origin) = &stored.origin
        && let Ok((lat, lon)) = serde_json::from_slice::<(f64, f64)>(origin)
    {
        v.set_origin(lat, lon);
        origin_synced = true;
    }
    if let Some(ego) = &stored.ego
        && let Ok((x, y, speed_mps, heading_deg)) = serde_json::from_slice::<(f64, f64, Option<f64>, Option<f64>)>(ego)
    {
        v.set_ego(Some(ReceiverState { position: Position::Local { x, y }, speed_mps, heading_deg, yaw_rate_dps: None }));
    }
    let reporter_id = config_value("reporter-id").and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let attempts = match config_value("history-attempts") {
        None => DEFAULT_ATTEMPTS,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n @ 1..=64) => n,
            _ => return Err(V2xError::InvalidConfig(format!("history-attempts must be 1 to 64, not {text:?}"))),
        },
    };
    Ok(State { validator: v, ns: ns.to_owned(), reporter_id, attempts, origin_synced })
}

/// The configuration text: what `configure` stored, else `wasi:config` `config`, else defaults.
fn config_text(stored: &Stored) -> String {
    match &stored.config {
        Some(text) => String::from_utf8_lossy(text).into_owned(),
        None => config_value("config").unwrap_or_default(),
    }
}

fn with_state<R>(f: impl FnOnce(&mut State) -> Result<R, V2xError>) -> Result<R, V2xError> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            let ns = namespace();
            let stored = read_stored(&ns);
            let text = config_text(&stored);
            *s = Some(build(&ns, &text, stored)?);
        }
        match s.as_mut() {
            Some(state) => f(state),
            None => Err(V2xError::InvalidConfig("validator not configured".into())),
        }
    })
}

/// After the first geo position, remember the local frame origin the validator chose (the
/// first position it saw) so a replacement instance projects history the same way.
fn sync_origin(state: &mut State, v: &Validation) {
    if state.origin_synced {
        return;
    }
    if let (Some(lat), Some(lon)) = (v.latitude, v.longitude)
        && lat.is_finite()
        && lon.is_finite()
    {
        if let Ok(body) = serde_json::to_vec(&(lat, lon)) {
            match cache::compare_and_swap(&state.ns, "origin", None, &body, None) {
                Ok(cache::CasOutcome::Swapped(_)) => {}
                // another instance fixed the origin first: use it
                Ok(cache::CasOutcome::Conflict(_)) => {
                    if let Ok(Some(e)) = cache::get(&state.ns, "origin")
                        && let Ok((la, lo)) = serde_json::from_slice::<(f64, f64)>(&e.value)
                    {
                        state.validator.set_origin(la, lo);
                    }
                }
                Err(_) => store_error("cas"),
            }
        }
        state.origin_synced = true;
    }
}

// ---- metrics -------------------------------------------------------------------------------

// Metrics are queued while an export runs and recorded with one `record-batch` call when its
// `FlushMetrics` guard drops (see edgecell-actor-metrics); best effort.
edgecell_actor_metrics::buffered_metrics!();

fn count(name: &str, labels: &[(&str, &str)]) {
    let labels: Vec<Label> = labels.iter().map(|(k, v)| Label { key: (*k).into(), value: (*v).into() }).collect();
    let update = recorder::Update::CounterAdd(recorder::Sample { name: name.into(), labels, value: 1.0 });
    record(update);
}

fn error_kind(e: &V2xError) -> &'static str {
    match e {
        V2xError::Decode(_) | V2xError::Security(_) => "decode",
        V2xError::Unsupported(_) => "unsupported",
        V2xError::TooLarge(_) => "too-large",
        V2xError::InvalidConfig(_) => "invalid-config",
    }
}

fn record_outcome(r: &Result<Validation, V2xError>) {
    match r {
        Ok(v) => {
            let verdict = match v.verdict {
                Verdict::Accepted => "accepted",
                Verdict::Rejected => "rejected",
            };
            count("v2x_messages_total", &[("verdict", verdict), ("kind", v.message_kind.as_str())]);
            for c in v.checks.iter().filter(|c| c.failed()) {
                count("v2x_check_failures_total", &[("check", c.name)]);
            }
        }
        Err(e) => count("v2x_messages_total", &[("verdict", "error"), ("kind", error_kind(e))]),
    }
}

// ---- validation ----------------------------------------------------------------------------

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn validate_bytes(format: MessageFormat, payload: &[u8], ctx: &ReceiveContext) -> Result<Validation, V2xError> {
    let r = with_state(|s| {
        let v = committed(s, |v| v.validate(format, payload, ctx), replay_not_known)?;
        sync_origin(s, &v);
        Ok(v)
    });
    record_outcome(&r);
    r
}

/// One VeReMi trace line: type 2 updates (and persists) the receiver, type 3 is validated.
fn validate_veremi_line(line: &[u8]) -> Result<Option<Validation>, V2xError> {
    let rec = match VeremiRecord::parse(line) {
        Ok(r) => r,
        Err(e) => {
            record_outcome(&Err(e.clone()));
            return Err(e);
        }
    };
    if rec.kind == 2 {
        return with_state(|s| {
            s.validator.process_veremi(&rec)?;
            let (x, y) = rec.xy();
            let speed = match rec.spd.as_slice() {
                [vx, vy, ..] => Some(vx.hypot(*vy)),
                _ => None,
            };
            let heading = match rec.hed.as_slice() {
                [hx, hy, ..] if hx.hypot(*hy) > 1e-9 => Some(edgecell_v2x::geo::vector_heading(edgecell_v2x::geo::Xy::new(*hx, *hy))),
                _ => None,
            };
            if let Ok(body) = serde_json::to_vec(&(x, y, speed, heading))
                && cache::set(&s.ns, "ego", &body, Some(HISTORY_TTL_MS)).is_err()
            {
                store_error("set");
            }
            Ok(None)
        });
    }
    let hint = || {
        let pseudonym = rec.sender.map(|sender| rec.sender_pseudo.unwrap_or(u64::from(sender)))?;
        let (x, y) = rec.xy();
        Some(SenderHint { pseudonym, pos: Some(Xy::new(x, y)), signer: None })
    };
    let r = with_sender_hint(hint, || {
        with_state(|s| {
            // beacons are unsigned: no replay check
            committed(s, |v| v.process_veremi(&rec), |_, _| {})?.ok_or_else(|| V2xError::Decode("not a received beacon".into()))
        })
    });
    record_outcome(&r);
    r.map(Some)
}

/// Runs `f` with [`SENDER_HINT`] set, when this instance has no validator yet (an instance
/// that has one reads history per message anyway).
fn with_sender_hint<R>(hint: impl FnOnce() -> Option<SenderHint>, f: impl FnOnce() -> R) -> R {
    if STATE.with(|s| s.borrow().is_some()) {
        return f();
    }
    SENDER_HINT.set(hint());
    let r = f();
    SENDER_HINT.set(None);
    r
}

fn wit_err(e: V2xError) -> WitError {
    match e {
        V2xError::Decode(m) => WitError::Decode(m),
        V2xError::Security(s) => WitError::Decode(format!("security: {s}")),
        V2xError::Unsupported(m) => WitError::Unsupported(m),
        V2xError::TooLarge(n) => WitError::TooLarge(n),
        V2xError::InvalidConfig(m) => WitError::InvalidConfig(m),
    }
}

fn to_wit(v: &Validation) -> WitValidation {
    let position = match v.position {
        Position::Geo { lat, lon, alt } => WitPosition::Geo(GeoPosition { latitude_deg: lat, longitude_deg: lon, altitude_m: alt }),
        Position::Local { x, y } => WitPosition::Local(LocalPosition { east_m: x, north_m: y }),
    };
    WitValidation {
        station_id: v.station_id,
        pseudonym: v.pseudonym,
        message_kind: v.message_kind.as_str().to_owned(),
        generation_delta_time: v.generation_delta_time,
        position,
        speed_mps: v.speed_mps,
        heading_deg: v.heading_deg,
        signed: v.signed,
        verdict: match v.verdict {
            Verdict::Accepted => WitVerdict::Accepted,
            Verdict::Rejected => WitVerdict::Rejected,
        },
        checks: v.checks.iter().map(|c| WitCheck { name: c.name.to_owned(), confidence: c.confidence, skipped: c.skipped }).collect(),
        risk: v.risk.map(|r| WitRisk {
            time_to_collision_s: r.time_to_collision_s,
            closest_approach_m: r.closest_approach_m,
            level: match r.level {
                RiskLevel::None => WitRiskLevel::None,
                RiskLevel::Low => WitRiskLevel::Low,
                RiskLevel::Medium => WitRiskLevel::Medium,
                RiskLevel::High => WitRiskLevel::High,
            },
        }),
        score: v.score,
        cam_extensions: v.cam_extensions.clone(),
        missing_permissions: v.missing_permissions.iter().map(|&p| permission_to_wit(p)).collect(),
    }
}

fn permission_to_wit(p: Permission) -> WitPermission {
    use WitCamPermission as C;
    let cam = match p {
        Permission::DenmCause(cause) => return WitPermission::DenmCause(cause),
        Permission::CenDsrcTollingZone => C::CenDsrcTollingZone,
        Permission::PublicTransport => C::PublicTransport,
        Permission::SpecialTransport => C::SpecialTransport,
        Permission::DangerousGoods => C::DangerousGoods,
        Permission::Roadwork => C::Roadwork,
        Permission::Rescue => C::Rescue,
        Permission::Emergency => C::Emergency,
        Permission::SafetyCar => C::SafetyCar,
        Permission::ClosedLanes => C::ClosedLanes,
        Permission::RequestForRightOfWay => C::RequestForRightOfWay,
        Permission::RequestForFreeCrossingAtATrafficLight => C::RequestForFreeCrossingAtATrafficLight,
        Permission::NoPassing => C::NoPassing,
        Permission::NoPassingForTrucks => C::NoPassingForTrucks,
        Permission::SpeedLimit => C::SpeedLimit,
    };
    WitPermission::Cam(cam)
}

fn validate_wit(msg: &V2xMessage) -> Result<WitValidation, WitError> {
    let format = match msg.format {
        WitFormat::Uper => MessageFormat::Uper,
        WitFormat::Geonetworking => MessageFormat::GeoNetworking,
        WitFormat::Secured => MessageFormat::Secured,
        WitFormat::JsonBeacon => MessageFormat::JsonBeacon,
    };
    let receiver = msg.receiver.as_ref().map(|p| ReceiverState {
        position: Position::Geo { lat: p.latitude_deg, lon: p.longitude_deg, alt: p.altitude_m },
        speed_mps: None,
        heading_deg: None,
        yaw_rate_dps: None,
    });
    let ctx = ReceiveContext { received_at_ns: msg.received_at, receiver };
    validate_bytes(format, &msg.payload, &ctx).map(|v| to_wit(&v)).map_err(wit_err)
}

impl wit::Guest for Actor {
    fn configure(config_toml: String) -> Result<(), WitError> {
        let _flush = FlushMetrics;
        let ns = namespace();
        let state = build(&ns, &config_toml, read_stored(&ns)).map_err(wit_err)?;
        cache::set(&ns, "config", config_toml.as_bytes(), None).map_err(|e| WitError::InvalidConfig(format!("storing the configuration: {e:?}")))?;
        STATE.with(|s| *s.borrow_mut() = Some(state));
        Ok(())
    }

    fn validate(msg: V2xMessage) -> Result<WitValidation, WitError> {
        let _flush = FlushMetrics;
        validate_wit(&msg)
    }

    fn validate_batch(msgs: Vec<V2xMessage>) -> Vec<Result<WitValidation, WitError>> {
        let _flush = FlushMetrics;
        msgs.iter().map(validate_wit).collect()
    }
}

// ---- messaging -----------------------------------------------------------------------------

const IN_PREFIX: &str = "edgecell.v2x.in.";

fn publish(subject: String, body: Vec<u8>) -> Result<(), String> {
    consumer::publish(&BrokerMessage { subject, body, reply_to: None })
}

fn message_error(e: &V2xError) -> String {
    format!("{}: {e}", error_kind(e))
}

/// A requester gets a failure as `{"error": "…"}` on its reply subject instead of waiting
/// for its timeout; the error is still returned, for the host to log.
fn answer_errors(reply_to: Option<String>, outcome: Result<(), String>) -> Result<(), String> {
    if let (Err(e), Some(subject)) = (&outcome, reply_to) {
        let body = serde_json::json!({ "error": e }).to_string().into_bytes();
        let _ = consumer::publish(&BrokerMessage { subject, body, reply_to: None });
    }
    outcome
}

impl Handler for Actor {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let _flush = FlushMetrics;
        let reply_to = msg.reply_to.clone();
        answer_errors(reply_to, handle(msg))
    }
}

fn handle(msg: BrokerMessage) -> Result<(), String> {
    let BrokerMessage { subject, body, reply_to } = msg;
    let Some(region) = subject.strip_prefix(IN_PREFIX).filter(|r| !r.is_empty()) else {
        return Err(format!("v2x-validator does not handle subject {subject}"));
    };
    let outcome = if body.first() == Some(&b'{') {
        validate_veremi_line(&body)
    } else {
        let ctx = ReceiveContext { received_at_ns: now_ns(), receiver: None };
        // UPER, GeoNetworking (secured or not), a radiotap frame or 1609.2 data, by its first bytes
        let format = MessageFormat::of_binary(&body);
        // a CAM's station id (read from its octet-aligned header, in whatever framing) lets a
        // new instance read its history ahead
        // and a secured message's signer its certificate and replay mark
        let hint = || {
            let (station, signer) = format.peek_sender(&body);
            station.map(|id| SenderHint { pseudonym: u64::from(id), pos: None, signer })
        };
        with_sender_hint(hint, || validate_bytes(format, &body, &ctx)).map(Some)
    };
    let validation = match outcome {
        Ok(Some(v)) => v,
        Ok(None) => {
            // a receiver fix (VeReMi type 2): nothing to judge; answer a request anyway
            if let Some(reply) = reply_to {
                publish(reply, br#"{"type":2,"ego":"updated"}"#.to_vec())?;
            }
            return Ok(());
        }
        Err(e) => return Err(message_error(&e)),
    };
    let verdict = serde_json::to_vec(&validation).map_err(|e| format!("encoding the verdict: {e}"))?;
    publish(reply_to.unwrap_or_else(|| format!("edgecell.v2x.verdict.{region}")), verdict)?;
    let reporter = STATE.with(|s| s.borrow().as_ref().map_or(0, |s| s.reporter_id));
    if let Some(report) = validation.report(reporter, now_ns()) {
        let body = serde_json::to_vec(&report).map_err(|e| format!("encoding the report: {e}"))?;
        publish(format!("edgecell.v2x.report.{region}"), body)?;
    }
    Ok(())
}

// `export!` emits the ABI entry points, which are `unsafe extern` functions.
#[allow(unsafe_code)]
mod exports {
    use super::Actor;
    crate::bindings::export!(Actor with_types_in crate::bindings);
}
