//! Per-pseudonym history behind a small trait, so the actor can keep it in the kv-cache
//! provider (with a TTL) and tests/tools keep it in memory.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::geo::Xy;

/// The state kept about one pseudonym: its last accepted-or-not beacon, in the local frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Pseudonym.
    pub pseudonym: u64,
    /// Station id last seen with it.
    pub station_id: u32,
    /// Generation time of the last beacon, s.
    pub last_generation_s: f64,
    /// Receive time of the last beacon, s.
    pub last_receive_s: f64,
    /// Last reported position (local frame).
    pub pos: Xy,
    /// Last reported speed, m/s.
    pub speed_mps: Option<f64>,
    /// Last reported heading, degrees.
    pub heading_deg: Option<f64>,
    /// Vehicle length, m.
    pub length_m: f64,
    /// Vehicle width, m.
    pub width_m: f64,
    /// Receive time of the first beacon, s.
    pub first_receive_s: f64,
    /// Beacons seen.
    pub count: u64,
}

/// Storage of per-pseudonym tracks and replay state. Implementations may expire entries
/// (TTL); a missing entry only means "first beacon".
pub trait HistoryStore {
    /// The track of a pseudonym.
    fn load(&self, pseudonym: u64) -> Option<Track>;
    /// Stores the track of a pseudonym.
    fn store(&mut self, track: Track);
    /// Tracks of other pseudonyms heard at or after `since_s` (receive time), for the
    /// intersection check. Implementations that cannot list keys may return nothing (the
    /// check is then skipped).
    fn recent(&self, since_s: f64, out: &mut Vec<Track>);
    /// Last 1609.2 generation time (µs) accepted for a signer key (replay detection).
    fn last_secured_generation(&self, signer: u64) -> Option<u64>;
    /// Records the last 1609.2 generation time (µs) for a signer key.
    fn set_last_secured_generation(&mut self, signer: u64, generation_us: u64);
}

/// In-memory [`HistoryStore`] with a TTL and a size bound.
#[derive(Debug, Clone)]
pub struct MemoryHistory {
    tracks: HashMap<u64, Track>,
    secured: HashMap<u64, u64>,
    ttl_s: f64,
    max_entries: usize,
    newest_s: f64,
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self::new(30.0, 100_000)
    }
}

impl MemoryHistory {
    /// A store that forgets tracks unheard for `ttl_s` and keeps at most `max_entries`.
    #[must_use]
    pub fn new(ttl_s: f64, max_entries: usize) -> Self {
        Self {
            tracks: HashMap::new(),
            secured: HashMap::new(),
            ttl_s,
            max_entries,
            newest_s: f64::MIN,
        }
    }
    /// Number of tracks held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tracks.len()
    }
    /// True when no track is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
    fn expire(&mut self) {
        let cutoff = self.newest_s - self.ttl_s;
        self.tracks.retain(|_, t| t.last_receive_s >= cutoff);
        if self.secured.len() > self.max_entries {
            self.secured.clear();
        }
    }
}

impl HistoryStore for MemoryHistory {
    fn load(&self, pseudonym: u64) -> Option<Track> {
        self.tracks
            .get(&pseudonym)
            .filter(|t| t.last_receive_s >= self.newest_s - self.ttl_s)
            .cloned()
    }
    fn store(&mut self, track: Track) {
        if track.last_receive_s > self.newest_s {
            self.newest_s = track.last_receive_s;
        }
        self.tracks.insert(track.pseudonym, track);
        if self.tracks.len() > self.max_entries {
            self.expire();
        }
    }
    fn recent(&self, since_s: f64, out: &mut Vec<Track>) {
        out.extend(
            self.tracks
                .values()
                .filter(|t| t.last_receive_s >= since_s)
                .cloned(),
        );
    }
    fn last_secured_generation(&self, signer: u64) -> Option<u64> {
        self.secured.get(&signer).copied()
    }
    fn set_last_secured_generation(&mut self, signer: u64, generation_us: u64) {
        self.secured.insert(signer, generation_us);
        if self.secured.len() > self.max_entries {
            self.expire();
        }
    }
}
