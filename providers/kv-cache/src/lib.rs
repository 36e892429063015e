//! The core of edgecell's key-value cache provider: a sharded LRU with per-entry TTL, a memory
//! budget in bytes, compare-and-swap, atomic counters and namespaces.
//!
//! It has no wasm or wasmCloud types: the embedded host links it in-process and the wasmCloud
//! provider wraps it. Keys live in a *keyspace* (one per link/component, chosen by the host) and,
//! inside it, a *namespace* chosen by the caller.
//!
//! Expiry is lazy (an expired entry is dropped when it is touched) plus a [`Cache::purge_expired`]
//! sweep that [`Purger`] runs periodically. Eviction is least-recently-used per shard once the
//! shard's share of the byte budget is exceeded; a value that could never fit its shard is
//! refused instead of emptying it.
//!
//! A cache built [`with_ingest`](Cache::with_ingest) keeps the namespaces open to producers'
//! NATS puts ([`ingest::IngestPolicy`]) in shards of their own, with their own share of the
//! budget: anyone on the bus can send puts, and however many they send, they only ever evict
//! other puts, never a component's own state.

#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

pub mod ingest;
pub mod snapshot;

/// Limits and sizing of a [`Cache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Total bytes of keys + values + per-entry overhead the cache may hold.
    pub memory_budget_bytes: u64,
    /// Number of independently locked shards (rounded up to a power of two, at least 1).
    pub shards: usize,
    /// Largest value accepted by a single write.
    pub max_value_bytes: u64,
    /// Longest key accepted.
    pub max_key_bytes: u32,
    /// Longest namespace accepted.
    pub max_namespace_bytes: u32,
    /// Most items in one `get_many`/`set_many`.
    pub max_batch: u32,
    /// Bytes of `memory_budget_bytes` set aside for the namespaces open to producers' puts, in
    /// a cache built [`with_ingest`](Cache::with_ingest); the components' own entries get the
    /// rest. None: a quarter of the budget.
    pub ingest_budget_bytes: Option<u64>,
    /// How often a [`Purger`] drops expired entries nobody touches, in milliseconds; 0 = never
    /// (they then go only when read or evicted).
    pub purge_interval_ms: u64,
}

/// Most shards a cache takes (more would only cost locks and memory).
pub const MAX_SHARDS: usize = 4096;

/// Shortest interval between [`Purger`] sweeps (other than none).
pub const MIN_PURGE_INTERVAL_MS: u64 = 1000;

impl CacheConfig {
    /// The settings a cache can work with: 1..=[`MAX_SHARDS`] shards, a memory budget of at least
    /// one byte per shard, and non-zero value, key, namespace and batch limits. [`Cache::new`]
    /// also clamps the shard count, so a bad value never panics; configuration readers call
    /// this to refuse it with a message instead.
    ///
    /// # Errors
    /// The first setting out of range, by name.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(format!("shards = {}: between 1 and {MAX_SHARDS}", self.shards));
        }
        if self.memory_budget_bytes < self.shards as u64 {
            return Err(format!("memory budget {} bytes: at least one byte per shard ({})", self.memory_budget_bytes, self.shards));
        }
        if self.max_value_bytes == 0 || self.max_key_bytes == 0 || self.max_namespace_bytes == 0 || self.max_batch == 0 {
            return Err("value, key, namespace and batch limits must be greater than zero".into());
        }
        // (the shard count is rounded up to a power of two)
        let shards = self.shards.next_power_of_two() as u64;
        let ingest = self.ingest_budget();
        if self.ingest_budget_bytes == Some(0) || self.memory_budget_bytes.saturating_sub(ingest) < shards {
            return Err(format!(
                "ingest budget {ingest} bytes: more than zero, and leaving at least one byte per shard ({shards}) of the memory budget {}",
                self.memory_budget_bytes
            ));
        }
        if self.purge_interval_ms != 0 && self.purge_interval_ms < MIN_PURGE_INTERVAL_MS {
            return Err(format!(
                "purge interval {} ms: 0 (no sweeps) or at least {MIN_PURGE_INTERVAL_MS} (a sweep holds each shard's lock while it scans it)",
                self.purge_interval_ms
            ));
        }
        Ok(())
    }

    /// The bytes set aside for producers' puts (see [`Self::ingest_budget_bytes`]).
    #[must_use]
    pub fn ingest_budget(&self) -> u64 {
        self.ingest_budget_bytes.unwrap_or(self.memory_budget_bytes / 4).min(self.memory_budget_bytes)
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            memory_budget_bytes: 64 * 1024 * 1024,
            shards: 8,
            max_value_bytes: 8 * 1024 * 1024,
            max_key_bytes: 1024,
            max_namespace_bytes: 128,
            max_batch: 1024,
            ingest_budget_bytes: None,
            purge_interval_ms: 30_000,
        }
    }
}

/// Why a cache operation was refused. Mirrors the WIT `cache-error` variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("invalid namespace: {0}")]
    InvalidNamespace(String),
    #[error("invalid key: empty or longer than {0} bytes")]
    InvalidKey(u32),
    #[error("value larger than the per-entry limit of {0} bytes")]
    ValueTooLarge(u64),
    #[error("not a counter: {0}")]
    NotACounter(String),
    #[error("batch larger than {0} items")]
    BatchTooLarge(u32),
}

/// An entry as returned to callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: Vec<u8>,
    pub version: u64,
    /// Time left before expiry, if the entry has a TTL.
    pub ttl_remaining: Option<Duration>,
}

/// Result of a compare-and-swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written; the new version.
    Swapped(u64),
    /// Not written; the version found (none = the key did not exist).
    Conflict(Option<u64>),
}

/// What an item of [`Cache::set_many_if`] expects of the entry it overwrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: written whenever the batch is.
    Any,
    /// The key must be absent.
    Absent,
    /// The live entry must have this version.
    Version(u64),
}

impl Expect {
    /// The expectation a caller that read `version` (none = absent) has.
    #[must_use]
    pub const fn read(version: Option<u64>) -> Self {
        match version {
            Some(v) => Self::Version(v),
            None => Self::Absent,
        }
    }

    const fn met_by(self, current: Option<u64>) -> bool {
        match (self, current) {
            (Self::Any, _) | (Self::Absent, None) => true,
            (Self::Version(v), Some(c)) => v == c,
            _ => false,
        }
    }
}

/// One item of [`Cache::set_many_if`]: a key, what it expects of the live entry and the value
/// to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionalWrite {
    pub key: String,
    pub expect: Expect,
    pub value: Vec<u8>,
}

/// Result of [`Cache::set_many_if`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every item was written; the new versions in order.
    Written(Vec<u64>),
    /// Nothing was written: each item (by index) whose entry no longer had the expected
    /// version, with the version found (none = absent).
    Conflict(Vec<(u32, Option<u64>)>),
}

/// Operation counters, read with [`Cache::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub sets: u64,
    /// Entries dropped to stay within the byte budget.
    pub evictions: u64,
    /// Entries dropped because their TTL ran out.
    pub expirations: u64,
    pub entries: u64,
    pub bytes: u64,
    /// Of `bytes`, what the namespaces open to producers' puts hold.
    pub ingest_bytes: u64,
}

/// Bytes charged per entry beyond its key and value (map node, LRU links, metadata).
pub const ENTRY_OVERHEAD_BYTES: u64 = 96;

/// The longest keyspace the providers hand out (a link's `keyspace`; component ids are
/// shorter): used to size producer shards so one full-size value fits.
pub const MAX_KEYSPACE_BYTES: u64 = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FullKey {
    keyspace: String,
    namespace: String,
    key: String,
}

impl FullKey {
    fn charge(&self, value_len: usize) -> u64 {
        (self.keyspace.len() + self.namespace.len() + self.key.len() + value_len) as u64
            + ENTRY_OVERHEAD_BYTES
    }
}

#[derive(Debug)]
struct Stored {
    value: Vec<u8>,
    version: u64,
    expires_at: Option<Instant>,
}

impl Stored {
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    fn to_entry(&self, now: Instant) -> Entry {
        Entry {
            value: self.value.clone(),
            version: self.version,
            ttl_remaining: self.expires_at.map(|t| t.saturating_duration_since(now)),
        }
    }
}

#[derive(Debug)]
struct Shard {
    map: LruCache<FullKey, Stored>,
    bytes: u64,
    budget: u64,
    /// Counts every entry written or removed (a snapshot taken at the same count holds the
    /// shard as it is).
    changes: u64,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// What a shard-level write reports back for the counters.
#[derive(Debug, Default)]
struct WriteEffects {
    evicted: u64,
    expired: u64,
}

impl Shard {
    /// Look up a live entry, dropping it first if it has expired. Marks it recently used.
    fn live(&mut self, key: &FullKey, now: Instant, effects: &mut WriteEffects) -> Option<&Stored> {
        if self.map.peek(key).is_some_and(|s| s.expired(now)) {
            self.remove(key);
            effects.expired += 1;
            return None;
        }
        self.map.get(key)
    }

    fn remove(&mut self, key: &FullKey) -> Option<Stored> {
        let stored = self.map.pop(key)?;
        self.changes += 1;
        self.bytes = self.bytes.saturating_sub(key.charge(stored.value.len()));
        Some(stored)
    }

    /// Insert or replace, then evict least-recently-used entries until within budget.
    /// The entry just written is never evicted by its own insertion.
    fn put(&mut self, key: FullKey, stored: Stored, now: Instant, effects: &mut WriteEffects) {
        let charge = key.charge(stored.value.len());
        let old_charge = self.map.peek(&key).map(|old| key.charge(old.value.len()));
        let just_written = key.clone();
        self.map.put(key, stored);
        self.changes += 1;
        self.bytes = self.bytes.saturating_sub(old_charge.unwrap_or(0)) + charge;
        while self.bytes > self.budget && self.map.len() > 1 {
            let Some((victim_key, victim)) = self.map.peek_lru() else { break };
            if *victim_key == just_written {
                break;
            }
            let was_expired = victim.expired(now);
            let victim_key = victim_key.clone();
            self.remove(&victim_key);
            if was_expired {
                effects.expired += 1;
            } else {
                effects.evicted += 1;
            }
        }
    }
}

/// How many `max_value_bytes` one `get_many` reply may hold in all.
pub const GET_MANY_REPLY_VALUES: u64 = 4;

/// The first version a new cache hands out: the wall clock in microseconds since the Unix
/// epoch, so a provider that restarts (or a second one) does not hand out versions a component
/// may still hold from before, which would let a stale compare-and-swap succeed. Versions then
/// count up one per write; they stay ahead of any earlier process's as long as it wrote less
/// than once per microsecond on average, and below 2^53 (exact for JSON readers of the NATS
/// put reply) until the 2250s.
fn first_version() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_micros()).ok())
        .unwrap_or(0)
        .max(1)
}

/// A thread-safe sharded LRU cache. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Cache {
    /// The components' shards first, then (with an ingest policy) the producers' ones.
    shards: Vec<Mutex<Shard>>,
    /// How many of `shards` are the components' (a power of two).
    main_shards: usize,
    /// How many of `shards` hold the namespaces `ingest` opens (0 or a power of two).
    ingest_shards: usize,
    ingest: ingest::IngestPolicy,
    /// Byte budget of each of the components' shards, and of each producers' shard.
    main_budget: u64,
    ingest_budget: u64,
    config: CacheConfig,
    next_version: AtomicU64,
    counters: Counters,
    /// Randomly keyed per cache: keys chosen from outside (the NATS ingest path) cannot be
    /// aimed at the shard holding another keyspace's entries.
    shard_hash: RandomState,
}

impl Cache {
    /// Build a cache. The budget is split evenly across shards; no namespace takes producers'
    /// puts ([`ingest::put`] refuses them all).
    #[must_use]
    pub fn new(config: CacheConfig) -> Self {
        Self::with_ingest(config, ingest::IngestPolicy::none())
    }

    /// Build a cache whose namespaces opened by `policy` take producers' puts. They live in
    /// shards of their own holding [`CacheConfig::ingest_budget`] bytes; the components' shards
    /// share the rest. There are as many producer shards as can each hold one value of
    /// `max_value_bytes` (at least one, at most the components' shard count).
    #[must_use]
    pub fn with_ingest(config: CacheConfig, policy: ingest::IngestPolicy) -> Self {
        // (clamped: a huge count would overflow `next_power_of_two`)
        let n = config.shards.clamp(1, MAX_SHARDS).next_power_of_two();
        let (ingest_total, ingest_n) = if policy.is_empty() {
            (0, 0)
        } else {
            let total = config.ingest_budget();
            let per_value = config
                .max_value_bytes
                .saturating_add(u64::from(config.max_key_bytes) + u64::from(config.max_namespace_bytes))
                .saturating_add(MAX_KEYSPACE_BYTES + ENTRY_OVERHEAD_BYTES);
            let fits = usize::try_from(total / per_value.max(1)).unwrap_or(usize::MAX).clamp(1, n);
            (total, 1 << fits.ilog2())
        };
        let main_budget = (config.memory_budget_bytes.saturating_sub(ingest_total) / n as u64).max(1);
        let ingest_budget = (ingest_total / ingest_n.max(1) as u64).max(1);
        let shard = |budget| Mutex::new(Shard { map: LruCache::unbounded(), bytes: 0, budget, changes: 0 });
        let shards = (0..n).map(|_| shard(main_budget)).chain((0..ingest_n).map(|_| shard(ingest_budget))).collect();
        Self {
            shards,
            main_shards: n,
            ingest_shards: ingest_n,
            ingest: policy,
            main_budget,
            ingest_budget,
            config: CacheConfig { shards: n, ..config },
            next_version: AtomicU64::new(first_version()),
            counters: Counters::default(),
            shard_hash: RandomState::new(),
        }
    }

    #[must_use]
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The largest value a components' namespace and a producers' one take (none without an
    /// ingest policy), given keys of `key_bytes` in all (keyspace, namespace and key): the
    /// smaller of `max_value_bytes` and what a shard holds beside the key.
    #[must_use]
    pub fn value_limits(&self, key_bytes: u64) -> (u64, Option<u64>) {
        let fits = |budget: u64| budget.saturating_sub(key_bytes.saturating_add(ENTRY_OVERHEAD_BYTES)).min(self.config.max_value_bytes);
        (fits(self.main_budget), (self.ingest_shards > 0).then(|| fits(self.ingest_budget)))
    }

    /// The namespaces that take producers' puts.
    #[must_use]
    pub fn ingest_policy(&self) -> &ingest::IngestPolicy {
        &self.ingest
    }

    fn validate_namespace(&self, namespace: &str) -> Result<(), CacheError> {
        if namespace.is_empty() {
            return Err(CacheError::InvalidNamespace("empty".into()));
        }
        if namespace.len() > self.config.max_namespace_bytes as usize {
            return Err(CacheError::InvalidNamespace(format!(
                "longer than {} bytes",
                self.config.max_namespace_bytes
            )));
        }
        if namespace.chars().any(char::is_control) {
            return Err(CacheError::InvalidNamespace("contains control characters".into()));
        }
        Ok(())
    }

    fn full_key(&self, keyspace: &str, namespace: &str, key: &str) -> Result<FullKey, CacheError> {
        self.validate_namespace(namespace)?;
        if key.is_empty() || key.len() > self.config.max_key_bytes as usize {
            return Err(CacheError::InvalidKey(self.config.max_key_bytes));
        }
        Ok(FullKey { keyspace: keyspace.to_owned(), namespace: namespace.to_owned(), key: key.to_owned() })
    }

    fn check_value(&self, value: &[u8]) -> Result<(), CacheError> {
        if value.len() as u64 > self.config.max_value_bytes {
            return Err(CacheError::ValueTooLarge(self.config.max_value_bytes));
        }
        Ok(())
    }

    fn check_batch(&self, n: usize) -> Result<(), CacheError> {
        if n > self.config.max_batch as usize {
            return Err(CacheError::BatchTooLarge(self.config.max_batch));
        }
        Ok(())
    }

    fn shard_index(&self, key: &FullKey) -> usize {
        let hash = self.shard_hash.hash_one(key) as usize;
        if self.ingest_shards > 0 && self.ingest.allows(&key.keyspace, &key.namespace) {
            self.main_shards + (hash & (self.ingest_shards - 1))
        } else {
            hash & (self.main_shards - 1)
        }
    }

    /// Everything a write of one value checks before it touches a shard: the key, the value
    /// against `max_value_bytes`, and that the entry could fit its shard; returns the shard's
    /// index and the full key.
    fn place(&self, keyspace: &str, namespace: &str, key: &str, value: &[u8]) -> Result<(usize, FullKey), CacheError> {
        let fk = self.full_key(keyspace, namespace, key)?;
        self.check_value(value)?;
        let idx = self.shard_index(&fk);
        self.check_fits(idx, &fk, value.len())?;
        Ok((idx, fk))
    }

    /// Refuses an entry that could never fit its shard's budget: written, it would evict every
    /// other entry of the shard and still not fit.
    fn check_fits(&self, idx: usize, key: &FullKey, value_len: usize) -> Result<(), CacheError> {
        let budget = if idx < self.main_shards { self.main_budget } else { self.ingest_budget };
        if key.charge(value_len) > budget {
            return Err(CacheError::ValueTooLarge(budget.saturating_sub(key.charge(0))));
        }
        Ok(())
    }

    fn lock_shard(&self, idx: usize) -> MutexGuard<'_, Shard> {
        // A poisoned shard only means another thread panicked mid-operation; the map itself is
        // still structurally valid, so keep serving it.
        match self.shards[idx].lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn shard(&self, key: &FullKey) -> MutexGuard<'_, Shard> {
        self.lock_shard(self.shard_index(key))
    }

    fn version(&self) -> u64 {
        self.next_version.fetch_add(1, Ordering::Relaxed)
    }

    fn account(&self, effects: &WriteEffects) {
        Counters::bump(&self.counters.evictions, effects.evicted);
        Counters::bump(&self.counters.expirations, effects.expired);
    }

    fn expiry(now: Instant, ttl_ms: Option<u64>) -> Option<Instant> {
        ttl_ms.map(|ms| now + Duration::from_millis(ms))
    }

    /// Read one entry.
    pub fn get(&self, keyspace: &str, namespace: &str, key: &str) -> Result<Option<Entry>, CacheError> {
        let fk = self.full_key(keyspace, namespace, key)?;
        let now = Instant::now();
        let mut effects = WriteEffects::default();
        let found = self.shard(&fk).live(&fk, now, &mut effects).map(|s| s.to_entry(now));
        self.account(&effects);
        Counters::bump(if found.is_some() { &self.counters.hits } else { &self.counters.misses }, 1);
        Ok(found)
    }

    /// Write one entry and return its new version.
    pub fn set(
        &self,
        keyspace: &str,
        namespace: &str,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<u64, CacheError> {
        let (idx, fk) = self.place(keyspace, namespace, key, &value)?;
        let now = Instant::now();
        let version = self.version();
        let mut effects = WriteEffects::default();
        self.lock_shard(idx).put(fk, Stored { value, version, expires_at: Self::expiry(now, ttl_ms) }, now, &mut effects);
        self.account(&effects);
        Counters::bump(&self.counters.sets, 1);
        Ok(version)
    }

    /// Remove an entry; true if a live entry existed.
    pub fn delete(&self, keyspace: &str, namespace: &str, key: &str) -> Result<bool, CacheError> {
        let fk = self.full_key(keyspace, namespace, key)?;
        let now = Instant::now();
        let removed = self.shard(&fk).remove(&fk);
        Ok(removed.is_some_and(|s| !s.expired(now)))
    }

    /// Write only if the live entry's version equals `expected` (none: the key must be absent).
    pub fn compare_and_swap(
        &self,
        keyspace: &str,
        namespace: &str,
        key: &str,
        expected: Option<u64>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<CasOutcome, CacheError> {
        let (idx, fk) = self.place(keyspace, namespace, key, &value)?;
        let now = Instant::now();
        let mut effects = WriteEffects::default();
        let outcome = {
            let mut shard = self.lock_shard(idx);
            let current = shard.live(&fk, now, &mut effects).map(|s| s.version);
            if current == expected {
                let version = self.version();
                shard.put(fk, Stored { value, version, expires_at: Self::expiry(now, ttl_ms) }, now, &mut effects);
                CasOutcome::Swapped(version)
            } else {
                CasOutcome::Conflict(current)
            }
        };
        self.account(&effects);
        if matches!(outcome, CasOutcome::Swapped(_)) {
            Counters::bump(&self.counters.sets, 1);
        }
        Ok(outcome)
    }

    /// Add `delta` to a decimal integer value (absent = 0) atomically; returns the new value.
    /// A TTL given here applies to a newly created counter; an existing counter keeps its expiry.
    pub fn increment(
        &self,
        keyspace: &str,
        namespace: &str,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> Result<i64, CacheError> {
        let fk = self.full_key(keyspace, namespace, key)?;
        let idx = self.shard_index(&fk);
        // (a counter's decimal form is at most 20 bytes)
        self.check_fits(idx, &fk, 20)?;
        let now = Instant::now();
        let mut effects = WriteEffects::default();
        let result = {
            let mut shard = self.lock_shard(idx);
            let (current, expires_at) = match shard.live(&fk, now, &mut effects) {
                Some(s) => (parse_counter(&s.value)?, s.expires_at),
                None => (0, Self::expiry(now, ttl_ms)),
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| CacheError::NotACounter(format!("{current} + {delta} overflows")))?;
            let version = self.version();
            shard.put(fk, Stored { value: next.to_string().into_bytes(), version, expires_at }, now, &mut effects);
            next
        };
        self.account(&effects);
        Counters::bump(&self.counters.sets, 1);
        Ok(result)
    }

    /// Read many keys of one namespace; one slot per key, in order. The values found may add up
    /// to [`GET_MANY_REPLY_VALUES`] × `max_value_bytes`; a batch over that is
    /// [`CacheError::ValueTooLarge`] (with that limit) and returns nothing.
    pub fn get_many(&self, keyspace: &str, namespace: &str, keys: &[String]) -> Result<Vec<Option<Entry>>, CacheError> {
        self.check_batch(keys.len())?;
        // Validate everything before reading anything, so an error means "nothing happened".
        let fks = keys.iter().map(|k| self.full_key(keyspace, namespace, k)).collect::<Result<Vec<_>, _>>()?;
        let now = Instant::now();
        let mut effects = WriteEffects::default();
        // one reply holds at most GET_MANY_REPLY_VALUES values' worth of bytes (checked before
        // each copy): a batch naming one large key many times cannot make the host allocate
        // gigabytes on a component's behalf
        let limit = self.config.max_value_bytes.saturating_mul(GET_MANY_REPLY_VALUES);
        let mut total = 0u64;
        let mut out: Vec<Option<Entry>> = Vec::with_capacity(fks.len());
        for fk in &fks {
            let mut shard = self.shard(fk);
            let entry = match shard.live(fk, now, &mut effects) {
                Some(stored) => {
                    total = total.saturating_add(stored.value.len() as u64);
                    if total > limit {
                        drop(shard);
                        self.account(&effects);
                        return Err(CacheError::ValueTooLarge(limit));
                    }
                    Some(stored.to_entry(now))
                }
                None => None,
            };
            out.push(entry);
        }
        self.account(&effects);
        let hits = out.iter().filter(|e| e.is_some()).count() as u64;
        Counters::bump(&self.counters.hits, hits);
        Counters::bump(&self.counters.misses, out.len() as u64 - hits);
        Ok(out)
    }

    /// Write many entries of one namespace with one TTL; all are validated before any is written.
    pub fn set_many(
        &self,
        keyspace: &str,
        namespace: &str,
        items: Vec<(String, Vec<u8>)>,
        ttl_ms: Option<u64>,
    ) -> Result<Vec<u64>, CacheError> {
        self.check_batch(items.len())?;
        let mut prepared = Vec::with_capacity(items.len());
        for (k, v) in items {
            let (idx, fk) = self.place(keyspace, namespace, &k, &v)?;
            prepared.push((idx, fk, v));
        }
        let now = Instant::now();
        let expires_at = Self::expiry(now, ttl_ms);
        let mut effects = WriteEffects::default();
        let versions = prepared
            .into_iter()
            .map(|(idx, fk, value)| {
                let version = self.version();
                self.lock_shard(idx).put(fk, Stored { value, version, expires_at }, now, &mut effects);
                version
            })
            .collect::<Vec<_>>();
        self.account(&effects);
        Counters::bump(&self.counters.sets, versions.len() as u64);
        Ok(versions)
    }

    /// Write many entries of one namespace with one TTL, all or none: only if every item's live
    /// entry is as the item expects ([`Expect`]) when the batch is applied. This is optimistic
    /// concurrency for a caller that read several keys with [`get_many`](Self::get_many),
    /// computed, and must not overwrite another writer's changes; items expecting
    /// [`Expect::Any`] are written along with the checked ones.
    ///
    /// The shards the batch touches are locked together (in index order, so two batches never
    /// wait on each other in a cycle); no other write can land between the checks and the
    /// writes. A key given twice must expect the same current version for both items; the
    /// later value is the one kept. Validation errors come before anything is checked.
    pub fn set_many_if(
        &self,
        keyspace: &str,
        namespace: &str,
        items: Vec<ConditionalWrite>,
        ttl_ms: Option<u64>,
    ) -> Result<BatchOutcome, CacheError> {
        self.check_batch(items.len())?;
        let mut prepared = Vec::with_capacity(items.len());
        for item in items {
            let fk = self.full_key(keyspace, namespace, &item.key)?;
            self.check_value(&item.value)?;
            let idx = self.shard_index(&fk);
            prepared.push((idx, fk, item.expect, item.value));
        }
        let mut indices: Vec<usize> = prepared.iter().map(|p| p.0).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> =
            indices.into_iter().map(|i| (i, self.lock_shard(i))).collect();
        // all or nothing also under the byte budget: a shard evicts least recently used first,
        // so the batch's own entries (the most recent) survive their writes exactly when their
        // charges fit the shard's budget together (a key given twice is held once, at its
        // later value)
        for (i, shard) in &guards {
            // the items are written in order, a key given twice replacing its earlier value:
            // what must fit is the most the batch holds at any point of that sequence
            let mut held: std::collections::HashMap<&FullKey, u64> = std::collections::HashMap::new();
            let (mut now_held, mut peak) = (0u64, 0u64);
            for (_, fk, _, value) in prepared.iter().filter(|p| p.0 == *i) {
                let charge = fk.charge(value.len());
                now_held = now_held.saturating_add(charge).saturating_sub(held.insert(fk, charge).unwrap_or(0));
                peak = peak.max(now_held);
            }
            if peak > shard.budget {
                return Err(CacheError::ValueTooLarge(shard.budget));
            }
        }
        let now = Instant::now();
        let mut effects = WriteEffects::default();
        let mut conflicts = Vec::new();
        for (n, (idx, fk, expect, _)) in prepared.iter().enumerate() {
            if *expect == Expect::Any {
                continue;
            }
            let Some((_, shard)) = guards.iter_mut().find(|(i, _)| i == idx) else { continue };
            let current = shard.live(fk, now, &mut effects).map(|s| s.version);
            if !expect.met_by(current) {
                conflicts.push((u32::try_from(n).unwrap_or(u32::MAX), current));
            }
        }
        let outcome = if conflicts.is_empty() {
            let expires_at = Self::expiry(now, ttl_ms);
            let mut versions = Vec::with_capacity(prepared.len());
            for (idx, fk, _, value) in prepared {
                let version = self.version();
                if let Some((_, shard)) = guards.iter_mut().find(|(i, _)| *i == idx) {
                    shard.put(fk, Stored { value, version, expires_at }, now, &mut effects);
                }
                versions.push(version);
            }
            BatchOutcome::Written(versions)
        } else {
            BatchOutcome::Conflict(conflicts)
        };
        drop(guards);
        self.account(&effects);
        if let BatchOutcome::Written(v) = &outcome {
            Counters::bump(&self.counters.sets, v.len() as u64);
        }
        Ok(outcome)
    }

    /// Drop every expired entry now; returns how many were dropped.
    pub fn purge_expired(&self) -> u64 {
        let now = Instant::now();
        let mut dropped = 0;
        for shard in &self.shards {
            let mut shard = match shard.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let dead: Vec<FullKey> =
                shard.map.iter().filter(|(_, s)| s.expired(now)).map(|(k, _)| k.clone()).collect();
            for k in &dead {
                shard.remove(k);
            }
            dropped += dead.len() as u64;
        }
        Counters::bump(&self.counters.expirations, dropped);
        dropped
    }

    /// A consistent-enough snapshot of the counters and current size.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let (mut entries, mut bytes, mut ingest_bytes) = (0u64, 0u64, 0u64);
        for (i, shard) in self.shards.iter().enumerate() {
            let shard = match shard.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            entries += shard.map.len() as u64;
            bytes += shard.bytes;
            if i >= self.main_shards {
                ingest_bytes += shard.bytes;
            }
        }
        CacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            sets: self.counters.sets.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            expirations: self.counters.expirations.load(Ordering::Relaxed),
            entries,
            bytes,
            ingest_bytes,
        }
    }
}

/// Runs [`Cache::purge_expired`] every [`CacheConfig::purge_interval_ms`] on a thread of its
/// own, so entries whose TTL ran out and that nobody reads again (a stream that stopped, a
/// pseudonym that changed) give their bytes back without waiting to be evicted. Stops when
/// dropped, or when the cache is gone.
#[derive(Debug)]
pub struct Purger {
    ticks: Periodic,
}

impl Purger {
    /// Starts the sweeps; none with an interval of 0.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(cache: &std::sync::Arc<Cache>) -> std::io::Result<Self> {
        let every = Duration::from_millis(cache.config.purge_interval_ms);
        Periodic::start("kv-cache-purge", every, cache, |cache| {
            cache.purge_expired();
        })
        .map(|ticks| Self { ticks })
    }

    /// False when sweeps are off (an interval of 0).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.ticks.thread.is_some()
    }
}

/// A thread that runs `tick` on the cache every interval (none for an interval of zero) until
/// dropped or [`Periodic::halt`]ed, or until the cache is gone: what [`Purger`] and
/// [`snapshot::Snapshotter`] run on.
#[derive(Debug)]
struct Periodic {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Periodic {
    fn start(
        name: &str,
        every: Duration,
        cache: &std::sync::Arc<Cache>,
        mut tick: impl FnMut(&Cache) + Send + 'static,
    ) -> std::io::Result<Self> {
        if every.is_zero() {
            return Ok(Self { stop: None, thread: None });
        }
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let cache = std::sync::Arc::downgrade(cache);
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let Some(cache) = cache.upgrade() else { break };
                tick(&cache);
            }
        })?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }

    /// Stops the thread, waiting for a tick under way.
    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        self.halt();
    }
}

fn parse_counter(value: &[u8]) -> Result<i64, CacheError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .ok_or_else(|| CacheError::NotACounter(format!("{} bytes that are not a decimal i64", value.len())))
}

/// Generates the conversions from this crate's results into the types a WIT binding generator
/// made for `edgecell:cache/store` (wasmtime's `bindgen!` in the embedded host, wit-bindgen-wrpc
/// in the wasmCloud provider), so both adapters map errors and entries the same way:
/// `cache_error`, `cache_entry` and `cache_cas` in the calling module. `$wit` names the
/// generated `store` module (brought into scope with `use … as $wit`).
#[macro_export]
macro_rules! wit_conversions {
    ($wit:ident) => {
        fn cache_error(e: $crate::CacheError) -> $wit::CacheError {
            match e {
                $crate::CacheError::InvalidNamespace(m) => $wit::CacheError::InvalidNamespace(m),
                $crate::CacheError::InvalidKey(n) => $wit::CacheError::InvalidKey(n),
                $crate::CacheError::ValueTooLarge(n) => $wit::CacheError::ValueTooLarge(n),
                $crate::CacheError::NotACounter(m) => $wit::CacheError::NotACounter(m),
                $crate::CacheError::BatchTooLarge(n) => $wit::CacheError::BatchTooLarge(n),
            }
        }

        #[allow(clippy::useless_conversion)]
        fn cache_entry(e: $crate::Entry) -> $wit::Entry {
            $wit::Entry {
                value: e.value.into(),
                version: e.version,
                ttl_remaining_ms: e.ttl_remaining.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            }
        }

        fn cache_cas(o: $crate::CasOutcome) -> $wit::CasOutcome {
            match o {
                $crate::CasOutcome::Swapped(v) => $wit::CasOutcome::Swapped(v),
                $crate::CasOutcome::Conflict(v) => $wit::CasOutcome::Conflict(v),
            }
        }

        #[allow(clippy::useless_conversion)]
        fn cache_conditional(w: $wit::ConditionalWrite) -> $crate::ConditionalWrite {
            let expect = match w.expect {
                $wit::Expectation::Any => $crate::Expect::Any,
                $wit::Expectation::Absent => $crate::Expect::Absent,
                $wit::Expectation::Version(v) => $crate::Expect::Version(v),
            };
            $crate::ConditionalWrite { key: w.key.into(), expect, value: w.value.into() }
        }

        #[allow(clippy::useless_conversion)]
        fn cache_batch(o: $crate::BatchOutcome) -> $wit::BatchOutcome {
            match o {
                $crate::BatchOutcome::Written(v) => $wit::BatchOutcome::Written(v.into()),
                $crate::BatchOutcome::Conflict(c) => $wit::BatchOutcome::Conflict(c.into()),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn cache() -> Cache {
        Cache::new(CacheConfig::default())
    }

    #[test]
    fn set_get_round_trip_and_versions_increase() {
        let c = cache();
        let v1 = c.set("a", "ns", "k", b"one".to_vec(), None).unwrap();
        let v2 = c.set("a", "ns", "k", b"two".to_vec(), None).unwrap();
        assert!(v2 > v1);
        let e = c.get("a", "ns", "k").unwrap().unwrap();
        assert_eq!(e.value, b"two");
        assert_eq!(e.version, v2);
        assert_eq!(e.ttl_remaining, None);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.sets, s.entries), (1, 0, 2, 1));
    }

    #[test]
    fn keyspaces_and_namespaces_are_isolated() {
        let c = cache();
        c.set("comp-a", "ns", "k", b"a".to_vec(), None).unwrap();
        c.set("comp-b", "ns", "k", b"b".to_vec(), None).unwrap();
        c.set("comp-a", "other", "k", b"c".to_vec(), None).unwrap();
        assert_eq!(c.get("comp-a", "ns", "k").unwrap().unwrap().value, b"a");
        assert_eq!(c.get("comp-b", "ns", "k").unwrap().unwrap().value, b"b");
        assert_eq!(c.get("comp-a", "other", "k").unwrap().unwrap().value, b"c");
        assert_eq!(c.get("comp-c", "ns", "k").unwrap(), None);
    }

    #[test]
    fn ttl_expires_entries() {
        let c = cache();
        c.set("a", "ns", "short", b"x".to_vec(), Some(30)).unwrap();
        c.set("a", "ns", "long", b"y".to_vec(), Some(60_000)).unwrap();
        let e = c.get("a", "ns", "short").unwrap().unwrap();
        assert!(e.ttl_remaining.unwrap() <= Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("a", "ns", "short").unwrap(), None);
        assert!(c.get("a", "ns", "long").unwrap().is_some());
        assert_eq!(c.stats().expirations, 1);
        assert_eq!(c.stats().entries, 1);
    }

    #[test]
    fn purge_drops_expired_entries() {
        let c = cache();
        for i in 0..10 {
            c.set("a", "ns", &format!("k{i}"), vec![1], Some(if i < 7 { 10 } else { 60_000 })).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.purge_expired(), 7);
        assert_eq!(c.stats().entries, 3);
    }

    #[test]
    fn budget_evicts_least_recently_used() {
        // one shard so the LRU order is global; each entry charges 96 + 1 + 2 + 2 + 100 bytes
        let per = ENTRY_OVERHEAD_BYTES + 1 + 2 + 2 + 100;
        let c = Cache::new(CacheConfig { memory_budget_bytes: per * 3, shards: 1, ..CacheConfig::default() });
        for k in ["k1", "k2", "k3"] {
            c.set("a", "ns", k, vec![0; 100], None).unwrap();
        }
        // touch k1 so k2 becomes the least recently used
        assert!(c.get("a", "ns", "k1").unwrap().is_some());
        c.set("a", "ns", "k4", vec![0; 100], None).unwrap();
        assert!(c.get("a", "ns", "k2").unwrap().is_none());
        for k in ["k1", "k3", "k4"] {
            assert!(c.get("a", "ns", k).unwrap().is_some(), "{k} should survive");
        }
        let s = c.stats();
        assert_eq!(s.evictions, 1);
        assert_eq!(s.bytes, per * 3);
    }

    #[test]
    fn compare_and_swap_semantics() {
        let c = cache();
        let CasOutcome::Swapped(v1) = c.compare_and_swap("a", "ns", "k", None, b"1".to_vec(), None).unwrap() else {
            panic!("create via CAS must succeed")
        };
        assert_eq!(
            c.compare_and_swap("a", "ns", "k", None, b"x".to_vec(), None).unwrap(),
            CasOutcome::Conflict(Some(v1))
        );
        assert_eq!(
            c.compare_and_swap("a", "ns", "k", Some(v1 + 1000), b"x".to_vec(), None).unwrap(),
            CasOutcome::Conflict(Some(v1))
        );
        let CasOutcome::Swapped(v2) = c.compare_and_swap("a", "ns", "k", Some(v1), b"2".to_vec(), None).unwrap() else {
            panic!("matching version must swap")
        };
        assert!(v2 > v1);
        assert_eq!(c.get("a", "ns", "k").unwrap().unwrap().value, b"2");
        assert_eq!(
            c.compare_and_swap("a", "ns", "missing", Some(1), b"x".to_vec(), None).unwrap(),
            CasOutcome::Conflict(None)
        );
    }

    #[test]
    fn increment_is_atomic_across_threads() {
        let c = Arc::new(cache());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.increment("a", "ns", "n", 1, None).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.increment("a", "ns", "n", 0, None).unwrap(), 4000);
        assert_eq!(c.get("a", "ns", "n").unwrap().unwrap().value, b"4000");
    }

    #[test]
    fn increment_rejects_non_counters_and_overflow() {
        let c = cache();
        c.set("a", "ns", "text", b"hello".to_vec(), None).unwrap();
        assert!(matches!(c.increment("a", "ns", "text", 1, None), Err(CacheError::NotACounter(_))));
        c.set("a", "ns", "big", i64::MAX.to_string().into_bytes(), None).unwrap();
        assert!(matches!(c.increment("a", "ns", "big", 1, None), Err(CacheError::NotACounter(_))));
        // nothing was lost: the values are unchanged
        assert_eq!(c.get("a", "ns", "text").unwrap().unwrap().value, b"hello");
        assert_eq!(c.increment("a", "ns", "neg", -5, None).unwrap(), -5);
    }

    #[test]
    fn increment_keeps_existing_expiry() {
        let c = cache();
        c.increment("a", "ns", "n", 1, Some(40)).unwrap();
        c.increment("a", "ns", "n", 1, Some(60_000)).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("a", "ns", "n").unwrap(), None);
    }

    #[test]
    fn batches_round_trip_and_validate_first() {
        let c = cache();
        let items = vec![("a".to_owned(), b"1".to_vec()), ("b".to_owned(), b"2".to_vec())];
        let versions = c.set_many("s", "ns", items, Some(60_000)).unwrap();
        assert_eq!(versions.len(), 2);
        let got = c.get_many("s", "ns", &["a".into(), "zz".into(), "b".into()]).unwrap();
        assert_eq!(got[0].as_ref().unwrap().value, b"1");
        assert!(got[1].is_none());
        assert_eq!(got[2].as_ref().unwrap().value, b"2");
        // one bad key: nothing written
        let bad = vec![("ok".to_owned(), b"1".to_vec()), (String::new(), b"2".to_vec())];
        assert_eq!(c.set_many("s", "ns", bad, None), Err(CacheError::InvalidKey(1024)));
        assert_eq!(c.get("s", "ns", "ok").unwrap(), None);
    }

    fn write(key: &str, expected: Option<u64>, value: &[u8]) -> ConditionalWrite {
        ConditionalWrite { key: key.to_owned(), expect: Expect::read(expected), value: value.to_vec() }
    }

    #[test]
    fn conditional_batches_write_all_or_nothing() {
        let c = cache();
        let va = c.set("s", "ns", "a", b"a1".to_vec(), None).unwrap();
        // "b" must be absent and is: both written
        let BatchOutcome::Written(v) =
            c.set_many_if("s", "ns", vec![write("a", Some(va), b"a2"), write("b", None, b"b1")], Some(60_000)).unwrap()
        else {
            panic!("expected versions match: the batch is written")
        };
        assert_eq!(v.len(), 2);
        assert_eq!(c.get("s", "ns", "a").unwrap().unwrap().version, v[0]);
        assert!(c.get("s", "ns", "b").unwrap().unwrap().ttl_remaining.is_some());
        // a stale version for "a" and a wrong "absent" for "b": both reported, nothing written
        let before = c.stats().sets;
        let out = c
            .set_many_if("s", "ns", vec![write("c", None, b"c1"), write("a", Some(va), b"a3"), write("b", None, b"b2")], None)
            .unwrap();
        assert_eq!(out, BatchOutcome::Conflict(vec![(1, Some(v[0])), (2, Some(v[1]))]));
        assert_eq!(c.get("s", "ns", "a").unwrap().unwrap().value, b"a2");
        assert_eq!(c.get("s", "ns", "b").unwrap().unwrap().value, b"b1");
        assert_eq!(c.get("s", "ns", "c").unwrap(), None, "no item of a conflicting batch lands");
        assert_eq!(c.stats().sets, before);
        // an unchecked item goes along with checked ones, and with them only
        let any = |key: &str, value: &[u8]| ConditionalWrite { key: key.to_owned(), expect: Expect::Any, value: value.to_vec() };
        let out = c.set_many_if("s", "ns", vec![any("a", b"a3"), write("b", Some(va), b"b2")], None).unwrap();
        assert_eq!(out, BatchOutcome::Conflict(vec![(1, Some(v[1]))]));
        assert_eq!(c.get("s", "ns", "a").unwrap().unwrap().value, b"a2");
        let out = c.set_many_if("s", "ns", vec![any("a", b"a3"), write("b", Some(v[1]), b"b2")], None).unwrap();
        assert!(matches!(out, BatchOutcome::Written(_)), "{out:?}");
        assert_eq!(c.get("s", "ns", "a").unwrap().unwrap().value, b"a3");
        // a key that expired counts as absent
        c.set("s", "ns", "t", b"t".to_vec(), Some(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(c.set_many_if("s", "ns", vec![write("t", None, b"t2")], None).unwrap(), BatchOutcome::Written(_)));
        // bad input is refused before anything is checked or written
        assert_eq!(c.set_many_if("s", "ns", vec![write("d", None, b"1"), write("", None, b"2")], None), Err(CacheError::InvalidKey(1024)));
        assert_eq!(c.get("s", "ns", "d").unwrap(), None);
        let small = Cache::new(CacheConfig { max_batch: 1, ..CacheConfig::default() });
        assert_eq!(small.set_many_if("s", "ns", vec![write("x", None, b""), write("y", None, b"")], None), Err(CacheError::BatchTooLarge(1)));
    }

    /// Read-modify-write of several keys by many threads with `set_many_if` and retries loses
    /// no update; every key ends up with every thread's additions.
    #[test]
    fn conditional_batches_lose_no_update_between_threads() {
        let c = Arc::new(Cache::new(CacheConfig { shards: 4, ..CacheConfig::default() }));
        let keys: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
        let (threads, rounds) = (4u64, 300u64);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (c, keys) = (Arc::clone(&c), keys.clone());
                std::thread::spawn(move || {
                    let mut conflicts = 0u64;
                    for r in 0..rounds {
                        // each round adds 1 to three of the six keys, in shard-crossing order
                        let mine: Vec<String> = (0..3).map(|j| keys[((t + r + 2 * j) % 6) as usize].clone()).collect();
                        loop {
                            let read = c.get_many("s", "ns", &mine).unwrap();
                            let writes = mine
                                .iter()
                                .zip(&read)
                                .map(|(k, e)| {
                                    let n: u64 = e.as_ref().map_or(0, |e| std::str::from_utf8(&e.value).unwrap().parse().unwrap());
                                    write(k, e.as_ref().map(|e| e.version), (n + 1).to_string().as_bytes())
                                })
                                .collect();
                            match c.set_many_if("s", "ns", writes, None).unwrap() {
                                BatchOutcome::Written(_) => break,
                                BatchOutcome::Conflict(_) => conflicts += 1,
                            }
                        }
                    }
                    conflicts
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total: u64 = c
            .get_many("s", "ns", &keys)
            .unwrap()
            .iter()
            .map(|e| std::str::from_utf8(&e.as_ref().unwrap().value).unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, threads * rounds * 3);
    }

    #[test]
    fn bad_input_gets_typed_errors() {
        let c = Cache::new(CacheConfig { max_value_bytes: 4, max_batch: 2, ..CacheConfig::default() });
        assert!(matches!(c.set("a", "", "k", vec![], None), Err(CacheError::InvalidNamespace(_))));
        assert!(matches!(c.set("a", "n\u{7}", "k", vec![], None), Err(CacheError::InvalidNamespace(_))));
        assert_eq!(c.set("a", "ns", &"k".repeat(2000), vec![], None), Err(CacheError::InvalidKey(1024)));
        assert_eq!(c.set("a", "ns", "k", vec![0; 5], None), Err(CacheError::ValueTooLarge(4)));
        assert_eq!(
            c.get_many("a", "ns", &["1".into(), "2".into(), "3".into()]),
            Err(CacheError::BatchTooLarge(2))
        );
        assert_eq!(c.stats().entries, 0);
    }

    /// A value that could never fit its shard is refused with the limit that applies; before,
    /// it evicted every other entry of the shard and stayed there over budget.
    #[test]
    fn a_value_larger_than_its_shard_is_refused_and_evicts_nothing() {
        let c = Cache::new(CacheConfig { memory_budget_bytes: 200, shards: 1, ..CacheConfig::default() });
        c.set("a", "ns", "small", vec![0; 10], None).unwrap();
        let limit = 200 - (1 + 2 + 3 + ENTRY_OVERHEAD_BYTES);
        assert_eq!(c.set("a", "ns", "big", vec![0; 500], None), Err(CacheError::ValueTooLarge(limit)));
        assert_eq!(c.compare_and_swap("a", "ns", "big", None, vec![0; 500], None), Err(CacheError::ValueTooLarge(limit)));
        assert_eq!(c.set_many("a", "ns", vec![("x".into(), vec![1]), ("big".into(), vec![0; 500])], None), Err(CacheError::ValueTooLarge(limit)));
        assert!(c.get("a", "ns", "small").unwrap().is_some());
        assert!(c.get("a", "ns", "x").unwrap().is_none(), "nothing of the refused batch was written");
        // exactly the limit fits
        c.set("a", "ns", "big", vec![0; usize::try_from(limit).unwrap()], None).unwrap();
        assert_eq!(c.stats().bytes, 200);
    }

    /// A key given twice in one conditional batch is held once, so it is charged once; but
    /// the batch must also fit while its earlier value is held (the writes go in order).
    #[test]
    fn a_key_given_twice_in_a_conditional_batch_is_charged_once() {
        let c = Cache::new(CacheConfig { memory_budget_bytes: 1500, shards: 1, ..CacheConfig::default() });
        let item = |k: &str, n: usize| ConditionalWrite { key: k.into(), expect: Expect::Absent, value: vec![n as u8; n] };
        let Ok(BatchOutcome::Written(v)) = c.set_many_if("a", "ns", vec![item("k", 1000), item("k", 1001)], None) else { panic!() };
        assert_eq!(v.len(), 2);
        assert_eq!(c.get("a", "ns", "k").unwrap().unwrap().value.len(), 1001);
        // b, then a large a replaced by a small one: at the large a's write the batch held
        // 400 + 1000 bytes and more, which would have evicted b while reporting it written
        let c = Cache::new(CacheConfig { memory_budget_bytes: 1500, shards: 1, ..CacheConfig::default() });
        let batch = vec![item("b", 400), item("a", 1000), item("a", 10)];
        assert_eq!(c.set_many_if("a", "ns", batch, None), Err(CacheError::ValueTooLarge(1500)));
        assert_eq!(c.stats().entries, 0);
        let Ok(BatchOutcome::Written(_)) = c.set_many_if("a", "ns", vec![item("b", 400), item("a", 10)], None) else { panic!() };
        assert!(c.get("a", "ns", "b").unwrap().is_some());
    }

    /// Producers' namespaces get their own shards, sized so a full-size value fits each.
    #[test]
    fn producer_shards_are_apart_and_sized_for_one_value() {
        let cfg = CacheConfig { memory_budget_bytes: 64 << 20, shards: 16, max_value_bytes: 8 << 20, ..CacheConfig::default() };
        let c = Cache::with_ingest(cfg, ingest::IngestPolicy::default());
        // a quarter of 64 MiB holds one 8 MiB value in each of 1 shard (2 would not fit one each)
        assert_eq!((c.main_shards, c.ingest_shards, c.main_budget, c.ingest_budget), (16, 1, 3 << 20, 16 << 20));
        c.set("video-analytics", "frames", "f", vec![0; 8 << 20], None).unwrap();
        assert_eq!(c.stats().ingest_bytes, c.stats().bytes);
        // the components' shards are 3 MiB: an 8 MiB state is refused there
        assert!(matches!(c.set("video-analytics", "state", "s", vec![0; 8 << 20], None), Err(CacheError::ValueTooLarge(_))));
        let plain = Cache::new(cfg);
        assert_eq!((plain.ingest_shards, plain.main_budget), (0, 4 << 20));
        assert!(CacheConfig { ingest_budget_bytes: Some(64 << 20), ..cfg }.validate().is_err());
        assert!(CacheConfig { ingest_budget_bytes: Some(0), ..cfg }.validate().is_err());
        assert!(CacheConfig { ingest_budget_bytes: Some(1 << 20), ..cfg }.validate().is_ok());
        // the limits a caller can expect, for a 40-byte key
        assert_eq!(c.value_limits(40), ((3 << 20) - 136, Some(8 << 20)));
        assert_eq!(plain.value_limits(40), ((4 << 20) - 136, None));
        // shard counts round up: 3 shards are 4, and the quarter for producers counts
        let tight = CacheConfig { memory_budget_bytes: 4, shards: 3, ..CacheConfig::default() };
        assert!(tight.validate().is_err());
        assert!(CacheConfig { memory_budget_bytes: 8, ..tight }.validate().is_ok());
        // sweeps at most once a second
        assert!(CacheConfig { purge_interval_ms: 1, ..cfg }.validate().is_err());
        assert!(CacheConfig { purge_interval_ms: 0, ..cfg }.validate().is_ok());
    }

    /// A purger sweeps entries nobody reads again, and stops when dropped.
    #[test]
    fn a_purger_gives_back_the_bytes_of_untouched_expired_entries() {
        let c = Arc::new(Cache::new(CacheConfig { purge_interval_ms: 20, ..CacheConfig::default() }));
        for i in 0..10 {
            c.set("a", "ns", &format!("k{i}"), vec![0; 100], Some(10)).unwrap();
        }
        c.set("a", "ns", "kept", vec![0; 100], None).unwrap();
        let purger = Purger::start(&c).unwrap();
        let mut waited = 0;
        while c.stats().entries > 1 && waited < 500 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        let s = c.stats();
        assert_eq!((s.entries, s.expirations), (1, 10), "{s:?}");
        drop(purger);
        let off = Arc::new(Cache::new(CacheConfig { purge_interval_ms: 0, ..CacheConfig::default() }));
        assert!(!Purger::start(&off).unwrap().is_running());
    }

    /// A cache built after another (a provider restarted) hands out versions past the old
    /// one's: a compare-and-swap on a version read before the restart cannot succeed on an
    /// entry written after it.
    #[test]
    fn versions_go_on_past_a_restarted_cache() {
        let before = Cache::new(CacheConfig::default());
        let mut last = 0;
        for i in 0..100u8 {
            last = before.set("a", "ns", "k", vec![i], None).unwrap();
        }
        // (a restart takes longer than this; the first cache wrote less than once per µs)
        std::thread::sleep(Duration::from_millis(1));
        let after = Cache::new(CacheConfig::default());
        let first = after.set("a", "ns", "k", b"new".to_vec(), None).unwrap();
        assert!(first > last, "{first} <= {last}");
        for stale in 1..=last.min(100) {
            assert!(matches!(after.compare_and_swap("a", "ns", "k", Some(stale), b"x".to_vec(), None), Ok(CasOutcome::Conflict(_))));
        }
    }

    /// One get-many naming a large entry many times is refused before the values are copied.
    #[test]
    fn get_many_replies_are_bounded() {
        let c = Cache::new(CacheConfig { max_value_bytes: 1000, ..CacheConfig::default() });
        c.set("a", "ns", "big", vec![7; 1000], None).unwrap();
        let four = vec!["big".to_owned(); 4];
        assert_eq!(c.get_many("a", "ns", &four).unwrap().len(), 4);
        let five = vec!["big".to_owned(); 5];
        assert_eq!(c.get_many("a", "ns", &five), Err(CacheError::ValueTooLarge(4000)));
        // absent keys cost nothing
        let mut mixed = vec!["none".to_owned(); 100];
        mixed.extend(four);
        assert_eq!(c.get_many("a", "ns", &mixed).unwrap().iter().flatten().count(), 4);
    }

    /// A conditional batch is all or nothing under the byte budget too: one that could not stay
    /// whole in its shard is refused with nothing written (before, its first items were evicted
    /// by its last ones and it still reported them written).
    #[test]
    fn a_batch_that_cannot_fit_together_is_refused_whole() {
        let c = Cache::new(CacheConfig { memory_budget_bytes: 3000, shards: 1, ..CacheConfig::default() });
        let item = |k: &str| ConditionalWrite { key: k.into(), expect: Expect::Absent, value: vec![0; 1000] };
        let e = c.set_many_if("a", "ns", vec![item("a"), item("b"), item("c")], None);
        assert_eq!(e, Err(CacheError::ValueTooLarge(3000)));
        assert!(c.get_many("a", "ns", &["a".into(), "b".into(), "c".into()]).unwrap().iter().all(Option::is_none));
        // two fit: both are there afterwards
        let Ok(BatchOutcome::Written(v)) = c.set_many_if("a", "ns", vec![item("a"), item("b")], None) else { panic!() };
        assert_eq!(v.len(), 2);
        assert!(c.get_many("a", "ns", &["a".into(), "b".into()]).unwrap().iter().all(Option::is_some));
    }

    /// Shard counts past the maximum are clamped, not overflowed (a panic in `init` before).
    #[test]
    fn a_huge_shard_count_is_clamped_and_refused_by_validate() {
        let cfg = CacheConfig { shards: usize::MAX, ..CacheConfig::default() };
        assert!(cfg.validate().is_err());
        let c = Cache::new(cfg);
        assert_eq!(c.config().shards, MAX_SHARDS);
        c.set("a", "ns", "k", b"v".to_vec(), None).unwrap();
        assert!(CacheConfig::default().validate().is_ok());
    }
}
