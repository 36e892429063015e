//! Snapshots: a cache written to a file and read back by the next process, so a provider that
//! is restarted (an upgrade, a host drained) keeps what its components stored — streams'
//! tracking states and id counters, V2X histories and replay marks, verified certificates.
//!
//! Every live entry is written with its version and the TTL it has left; on reading, the time
//! since the snapshot was written comes off each TTL (entries that ran out meanwhile are left
//! out), versions stay as they were, and the cache hands out versions above all of them. The
//! file is checked whole (SHA-256) before anything is applied, so a torn or altered file
//! changes nothing. [`save`] writes a temporary file and renames it over the old one.
//!
//! Only the components' entries are saved, not producers' puts (video frames: transient, and
//! large). Entries that do not fit the reading cache's limits (a smaller value or key limit)
//! are left out and counted; within each old shard the least recently used entries are read
//! first (entries are spread over the new shards afresh, so a budget as full as before may
//! evict some recently used ones). `restored` counts what was put back, evictions aside.
//!
//! Format (little-endian): `EDGECELL-KV-SNAPSHOT` + `\n`, u32 format 1, u64 written-at (Unix
//! ms), then per entry `1`, u32 + keyspace, u32 + namespace, u32 + key, u64 + value, u64
//! version, u64 TTL left in ms (`u64::MAX` = none); then `0`, u64 entry count and the SHA-256
//! of everything before it.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use crate::{Cache, Periodic, Stored, WriteEffects};

const MAGIC: &[u8] = b"EDGECELL-KV-SNAPSHOT\n";
const FORMAT: u32 = 1;
const NO_TTL: u64 = u64::MAX;

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("snapshot {path} is not a usable snapshot: {reason}")]
    Format { path: PathBuf, reason: String },
}

/// What a snapshot held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    pub entries: u64,
    pub bytes: u64,
    /// The components' shards' change count when it was taken ([`Cache::component_changes`]):
    /// an equal count later means nothing was written or removed there since.
    pub as_of_changes: u64,
}

/// The largest version a snapshot may hold: versions count up from the wall clock in
/// microseconds (`first_version`), far below this; a larger one is not from a cache.
const MAX_VERSION: u64 = 1 << 53;

/// What reading a snapshot did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Entries now in the cache.
    pub restored: u64,
    /// Entries whose TTL ran out since the snapshot was written.
    pub expired: u64,
    /// Entries this cache's limits do not take (key, namespace or value too large).
    pub refused: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8], wide: bool) {
    if wide {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    } else {
        out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
    }
    out.extend_from_slice(b);
}

impl Cache {
    /// How many entries of the components' shards have been written or removed (expiry and
    /// eviction included) since the cache was built; producers' puts do not count. Compared
    /// with [`Written::as_of_changes`], it says whether a snapshot is still the cache's state.
    #[must_use]
    pub fn component_changes(&self) -> u64 {
        (0..self.main_shards).map(|idx| self.lock_shard(idx).changes).fold(0, u64::wrapping_add)
    }

    /// Every live entry of the components' shards as snapshot bytes. Those shards are all
    /// locked while their entries are copied (in index order, as `set_many_if` takes them).
    #[must_use]
    pub fn snapshot(&self) -> (Vec<u8>, Written) {
        let now = Instant::now();
        let mut out = Vec::with_capacity(MAGIC.len() + 12);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&unix_ms(SystemTime::now()).to_le_bytes());
        let mut written = Written::default();
        // The components' shards only: producers' puts (video frames) are transient and can
        // be large. All of them are locked, in index order, for the copy, so the snapshot is
        // one moment of the cache: an id counter and the state that took its count (keys in
        // different shards) are saved together or not at all.
        let shards: Vec<_> = (0..self.main_shards).map(|idx| self.lock_shard(idx)).collect();
        written.as_of_changes = shards.iter().map(|s| s.changes).fold(0, u64::wrapping_add);
        for shard in &shards {
            // least recently used first, so reading it back leaves the same order
            for (key, stored) in shard.map.iter().rev() {
                if stored.expired(now) {
                    continue;
                }
                // (keys were checked on the way in: their lengths fit u32)
                out.push(1);
                put_bytes(&mut out, key.keyspace.as_bytes(), false);
                put_bytes(&mut out, key.namespace.as_bytes(), false);
                put_bytes(&mut out, key.key.as_bytes(), false);
                put_bytes(&mut out, &stored.value, true);
                out.extend_from_slice(&stored.version.to_le_bytes());
                let ttl = stored.expires_at.map_or(NO_TTL, |t| {
                    u64::try_from(t.saturating_duration_since(now).as_millis()).unwrap_or(NO_TTL - 1).min(NO_TTL - 1)
                });
                out.extend_from_slice(&ttl.to_le_bytes());
                written.entries += 1;
                written.bytes += stored.value.len() as u64;
            }
        }
        drop(shards);
        out.push(0);
        out.extend_from_slice(&written.entries.to_le_bytes());
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        (out, written)
    }

    /// Adds the entries of snapshot `bytes` to the cache (an entry already present under the
    /// same key is replaced). Nothing is applied unless the whole snapshot checks out.
    ///
    /// # Errors
    /// A reason, when the bytes are not a whole snapshot of this format.
    pub fn restore(&self, bytes: &[u8]) -> Result<Restored, String> {
        let entries = parse(bytes)?;
        let elapsed_ms = unix_ms(SystemTime::now()).saturating_sub(entries.written_at_ms);
        let now = Instant::now();
        let mut done = Restored::default();
        let mut newest = 0;
        let mut effects = WriteEffects::default();
        for e in entries.entries {
            let ttl = match e.ttl_ms {
                NO_TTL => None,
                left if left <= elapsed_ms => {
                    done.expired += 1;
                    continue;
                }
                left => Some(left - elapsed_ms),
            };
            let Ok((idx, fk)) = self.place(e.keyspace, e.namespace, e.key, e.value) else {
                done.refused += 1;
                continue;
            };
            newest = newest.max(e.version);
            let stored = Stored { value: e.value.to_vec(), version: e.version, expires_at: Self::expiry(now, ttl) };
            self.lock_shard(idx).put(fk, stored, now, &mut effects);
            done.restored += 1;
        }
        self.account(&effects);
        // versions handed out from now on are above every restored one
        self.next_version.fetch_max(newest.saturating_add(1), std::sync::atomic::Ordering::Relaxed);
        Ok(done)
    }
}

struct Parsed<'a> {
    written_at_ms: u64,
    entries: Vec<RawEntry<'a>>,
}

struct RawEntry<'a> {
    keyspace: &'a str,
    namespace: &'a str,
    key: &'a str,
    value: &'a [u8],
    version: u64,
    ttl_ms: u64,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len()).ok_or_else(|| format!("cut short at byte {}", self.at))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn field(&mut self, wide: bool) -> Result<&'a [u8], String> {
        let n = if wide { self.u64()? } else { u64::from(self.u32()?) };
        self.take(usize::try_from(n).map_err(|_| "a length beyond memory".to_owned())?)
    }

    fn text(&mut self) -> Result<&'a str, String> {
        let at = self.at;
        std::str::from_utf8(self.field(false)?).map_err(|_| format!("a key that is not UTF-8 at byte {at}"))
    }
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, String> {
    let body_len = bytes.len().checked_sub(32).ok_or("shorter than its checksum")?;
    if !bytes.starts_with(MAGIC) {
        return Err("no snapshot header".into());
    }
    if Sha256::digest(&bytes[..body_len]).as_slice() != &bytes[body_len..] {
        return Err("checksum mismatch (torn or altered file)".into());
    }
    let mut r = Reader { b: &bytes[..body_len], at: MAGIC.len() };
    let format = r.u32()?;
    if format != FORMAT {
        return Err(format!("format {format}, this build reads {FORMAT}"));
    }
    let written_at_ms = r.u64()?;
    let mut entries = Vec::new();
    loop {
        match r.u8()? {
            0 => break,
            1 => entries.push(RawEntry {
                keyspace: r.text()?,
                namespace: r.text()?,
                key: r.text()?,
                value: r.field(true)?,
                version: match r.u64()? {
                    v if v <= MAX_VERSION => v,
                    v => return Err(format!("version {v} above {MAX_VERSION}")),
                },
                ttl_ms: r.u64()?,
            }),
            tag => return Err(format!("entry tag {tag} at byte {}", r.at - 1)),
        }
    }
    let count = r.u64()?;
    if count != entries.len() as u64 || r.at != r.b.len() {
        return Err(format!("{} entries where the trailer says {count}", entries.len()));
    }
    Ok(Parsed { written_at_ms, entries })
}

/// Writes `cache`'s snapshot to `path`: to a temporary file beside it, synced, then renamed
/// over it, so a crash while writing leaves the previous snapshot whole.
///
/// # Errors
/// [`SnapshotError::Io`].
pub fn save(cache: &Cache, path: &Path) -> Result<Written, SnapshotError> {
    let io = |e: std::io::Error| SnapshotError::Io { path: path.to_owned(), message: e.to_string() };
    let (bytes, written) = cache.snapshot();
    // a name of this process's own, so two processes given one path do not write into each
    // other's file (the last rename wins whole)
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut tmp_name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    tmp_name.push(format!(".{}-{nanos}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut options = std::fs::OpenOptions::new();
    // a new file only: never one planted there (or a link to one)
    options.write(true).create_new(true);
    // components' states and certificates: readable by the owner only
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written_file = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written_file {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    // the rename itself survives a power cut only once the directory is synced
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(written)
}

/// Reads the snapshot at `path` into `cache`; none when there is no file. A file that is not a
/// whole snapshot is refused before anything is applied (move it aside to start empty).
///
/// # Errors
/// [`SnapshotError::Io`] when the file cannot be read; [`SnapshotError::Format`] when it is not
/// a whole snapshot, or larger than the cache could ever hold (four times its budget).
pub fn load(cache: &Cache, path: &Path) -> Result<Option<Restored>, SnapshotError> {
    let io = |e: std::io::Error| SnapshotError::Io { path: path.to_owned(), message: e.to_string() };
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let most = cache.config().memory_budget_bytes.saturating_mul(4).max(1 << 20);
    if len > most {
        return Err(SnapshotError::Format { path: path.to_owned(), reason: format!("{len} bytes, more than this cache could hold ({most})") });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    cache.restore(&bytes).map(Some).map_err(|reason| SnapshotError::Format { path: path.to_owned(), reason })
}

/// Saves a cache's snapshot every `every` on a thread of its own (none with an interval of
/// zero), skipping a cache whose components' entries did not change since the last save (so
/// producers' frames alone do not wear the disk); a failed save is logged through `on_error`
/// and tried again next time. Stops when dropped, or when the cache is gone.
#[derive(Debug)]
pub struct Snapshotter {
    ticks: Periodic,
    path: PathBuf,
    /// The change count of the last save.
    saved: std::sync::Arc<std::sync::Mutex<Option<u64>>>,
}

fn last_saved(saved: &std::sync::Mutex<Option<u64>>) -> std::sync::MutexGuard<'_, Option<u64>> {
    saved.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Snapshotter {
    /// Starts the saves.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(
        cache: &std::sync::Arc<Cache>,
        path: PathBuf,
        every: Duration,
        on_error: impl Fn(&SnapshotError) + Send + 'static,
    ) -> std::io::Result<Self> {
        let saved = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (saved_here, path_here) = (std::sync::Arc::clone(&saved), path.clone());
        let ticks = Periodic::start("kv-cache-snapshot", every, cache, move |cache| {
            if *last_saved(&saved_here) == Some(cache.component_changes()) {
                return;
            }
            match save(cache, &path_here) {
                Ok(w) => *last_saved(&saved_here) = Some(w.as_of_changes),
                Err(e) => on_error(&e),
            }
        })?;
        Ok(Self { ticks, path, saved })
    }

    /// Stops the saves (waiting for one under way), then saves `cache` a last time unless the
    /// last periodic save still holds it as it is (a stopping provider gets little time).
    /// Returns what was written, none when the file was up to date.
    ///
    /// # Errors
    /// [`SnapshotError::Io`] from the last save.
    pub fn finish(mut self, cache: &Cache) -> Result<Option<Written>, SnapshotError> {
        self.ticks.halt();
        if last_saved(&self.saved).is_some_and(|n| n == cache.component_changes()) {
            return Ok(None);
        }
        save(cache, &self.path).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheConfig;

    fn filled() -> Cache {
        let c = Cache::new(CacheConfig::default());
        c.set("video-analytics", "video", "state/cam-1", b"tracks".to_vec(), Some(600_000)).unwrap();
        c.increment("video-analytics", "video", "ids/cam-1", 3, None).unwrap();
        c.set("v2x-validator", "certs", "0011223344556677", vec![7; 300], None).unwrap();
        c.set("v2x-validator", "history", "gone", b"x".to_vec(), Some(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        c
    }

    #[test]
    fn a_snapshot_read_back_gives_the_same_entries_versions_and_ttls() {
        let old = filled();
        let before: Vec<_> = [("video-analytics", "video", "state/cam-1"), ("video-analytics", "video", "ids/cam-1"), ("v2x-validator", "certs", "0011223344556677")]
            .iter()
            .map(|(ks, ns, k)| old.get(ks, ns, k).unwrap().unwrap())
            .collect();
        let (bytes, written) = old.snapshot();
        assert_eq!(written.entries, 3, "the expired entry is left out");
        let new = Cache::new(CacheConfig::default());
        let done = new.restore(&bytes).unwrap();
        assert_eq!(done, Restored { restored: 3, expired: 0, refused: 0 });
        for ((ks, ns, k), was) in [("video-analytics", "video", "state/cam-1"), ("video-analytics", "video", "ids/cam-1"), ("v2x-validator", "certs", "0011223344556677")].iter().zip(&before) {
            let now = new.get(ks, ns, k).unwrap().unwrap();
            assert_eq!((&now.value, now.version, now.ttl_remaining.is_some()), (&was.value, was.version, was.ttl_remaining.is_some()), "{k}");
            if let (Some(a), Some(b)) = (now.ttl_remaining, was.ttl_remaining) {
                assert!(a <= b && a + Duration::from_secs(5) > b, "{a:?} {b:?}");
            }
        }
        // the counter goes on from where it was, and a compare-and-swap against the version a
        // component read before the restart still works
        assert_eq!(new.increment("video-analytics", "video", "ids/cam-1", 1, None).unwrap(), 4);
        let state = &before[0];
        assert!(matches!(
            new.compare_and_swap("video-analytics", "video", "state/cam-1", Some(state.version), b"next".to_vec(), None).unwrap(),
            crate::CasOutcome::Swapped(v) if v > state.version
        ));
        // new versions are above every restored one
        let v = new.set("x", "y", "z", b"1".to_vec(), None).unwrap();
        assert!(before.iter().all(|e| v > e.version));
    }

    #[test]
    fn time_spent_down_comes_off_the_ttls() {
        let old = Cache::new(CacheConfig::default());
        old.set("a", "n", "short", b"1".to_vec(), Some(60_000)).unwrap();
        old.set("a", "n", "long", b"2".to_vec(), Some(3_600_000)).unwrap();
        let (mut bytes, _) = old.snapshot();
        // written two minutes earlier: move the written-at stamp back and re-seal
        let at = MAGIC.len() + 4;
        let stamp = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) - 120_000;
        bytes[at..at + 8].copy_from_slice(&stamp.to_le_bytes());
        let body = bytes.len() - 32;
        let digest = Sha256::digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&digest);
        let new = Cache::new(CacheConfig::default());
        assert_eq!(new.restore(&bytes).unwrap(), Restored { restored: 1, expired: 1, refused: 0 });
        let left = new.get("a", "n", "long").unwrap().unwrap().ttl_remaining.unwrap();
        assert!(left <= Duration::from_millis(3_480_000), "{left:?}");
    }

    #[test]
    fn damaged_snapshots_change_nothing_and_say_why() {
        let (bytes, _) = filled().snapshot();
        let new = Cache::new(CacheConfig::default());
        new.set("a", "n", "mine", b"kept".to_vec(), None).unwrap();
        for cut in [0, 10, MAGIC.len() + 3, bytes.len() / 2, bytes.len() - 1] {
            assert!(new.restore(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in [MAGIC.len() + 2, bytes.len() / 2, bytes.len() - 40] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            let e = new.restore(&flipped).unwrap_err();
            assert!(e.contains("checksum"), "{e}");
        }
        assert!(new.restore(b"not a snapshot at all, but long enough to hold a checksum").is_err());
        assert_eq!(new.stats().entries, 1);
        assert_eq!(new.get("a", "n", "mine").unwrap().unwrap().value, b"kept");
    }

    /// `bytes` with its checksum made right again, so the parser itself is what refuses.
    fn sealed(mut bytes: Vec<u8>) -> Vec<u8> {
        let body = bytes.len() - 32;
        let digest = Sha256::digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&digest);
        bytes
    }

    #[test]
    fn a_well_sealed_snapshot_that_lies_is_refused_whole() {
        let c = Cache::new(CacheConfig::default());
        c.set("a", "n", "k", b"v".to_vec(), None).unwrap();
        let (good, _) = c.snapshot();
        let header = MAGIC.len() + 12;
        let new = Cache::new(CacheConfig::default());
        // a keyspace length far past the end, and one near usize::MAX
        for len in [1_000_u32, u32::MAX] {
            let mut b = good.clone();
            b[header + 1..header + 5].copy_from_slice(&len.to_le_bytes());
            assert!(new.restore(&sealed(b)).unwrap_err().contains("cut short"));
        }
        // a value length near u64::MAX
        let value_at = header + 1 + 3 * 4 + 3;
        let mut b = good.clone();
        b[value_at..value_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(new.restore(&sealed(b)).is_err());
        // a version no cache hands out
        let mut b = good.clone();
        b[value_at + 9..value_at + 17].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(new.restore(&sealed(b)).unwrap_err().contains("version"));
        // an unknown tag, another format, a trailer that miscounts, a key that is not UTF-8
        let mut b = good.clone();
        b[header] = 7;
        assert!(new.restore(&sealed(b)).unwrap_err().contains("tag"));
        let mut b = good.clone();
        b[MAGIC.len()] = 2;
        assert!(new.restore(&sealed(b)).unwrap_err().contains("format"));
        let mut b = good.clone();
        let count_at = b.len() - 40;
        b[count_at] = 5;
        assert!(new.restore(&sealed(b)).unwrap_err().contains("trailer"));
        let mut b = good;
        b[header + 5] = 0xff;
        assert!(new.restore(&sealed(b)).unwrap_err().contains("UTF-8"));
        assert_eq!(new.stats().entries, 0);
    }

    #[test]
    fn the_change_count_moves_with_every_write_and_removal_of_components_entries_only() {
        let c = Cache::with_ingest(CacheConfig::default(), crate::ingest::IngestPolicy::default());
        c.set("a", "n", "k", b"1".to_vec(), None).unwrap();
        let (_, w) = c.snapshot();
        assert_eq!(c.component_changes(), w.as_of_changes);
        // producers' frames are not saved, so they do not call for a save
        c.set("video-analytics", "frames", "f", b"jpeg".to_vec(), None).unwrap();
        assert_eq!(c.component_changes(), w.as_of_changes);
        // a delete does
        assert!(c.delete("a", "n", "k").unwrap());
        assert_ne!(c.component_changes(), w.as_of_changes);
    }

    #[test]
    fn producers_puts_are_not_saved() {
        let c = Cache::with_ingest(CacheConfig::default(), crate::ingest::IngestPolicy::default());
        c.set("video-analytics", "frames", "cam-1/7", vec![1; 1000], Some(60_000)).unwrap();
        c.set("video-analytics", "video", "state/cam-1", b"s".to_vec(), None).unwrap();
        let new = Cache::new(CacheConfig::default());
        assert_eq!(new.restore(&c.snapshot().0).unwrap().restored, 1);
        assert!(new.get("video-analytics", "frames", "cam-1/7").unwrap().is_none());
    }

    #[test]
    fn entries_over_the_reading_cache_s_limits_are_counted_and_left_out() {
        let old = Cache::new(CacheConfig::default());
        old.set("a", "n", "big", vec![1; 2000], None).unwrap();
        old.set("a", "n", "small", vec![1; 10], None).unwrap();
        let small = Cache::new(CacheConfig { max_value_bytes: 1000, ..CacheConfig::default() });
        assert_eq!(small.restore(&old.snapshot().0).unwrap(), Restored { restored: 1, expired: 0, refused: 1 });
    }

    #[test]
    fn save_and_load_through_a_file() {
        let dir = std::env::temp_dir().join(format!("edgecell-kv-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.snapshot");
        let new = Cache::new(CacheConfig::default());
        assert_eq!(load(&new, &path).unwrap(), None, "no file yet");
        let written = save(&filled(), &path).unwrap();
        assert_eq!(written.entries, 3);
        assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(load(&new, &path).unwrap().unwrap().restored, 3);
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(load(&new, &path), Err(SnapshotError::Format { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
