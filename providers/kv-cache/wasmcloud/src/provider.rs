//! wRPC bindings, handlers and link hooks of the kv-cache provider over `edgecell-kv-cache`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use anyhow::Context as _;
use edgecell_kv_cache::Cache;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use wasmcloud_provider_sdk::provider::ProviderConnection;
use wasmcloud_provider_sdk::{Context, LinkConfig, LinkDeleteInfo, Provider, ProviderInitConfig};

use crate::config::{self, ProviderConfig};

wit_bindgen_wrpc::generate!({
    world: "kv-cache-provider",
    path: "../../../wit",
    generate_all,
});

use exports::edgecell::cache::store as wit_cache;

edgecell_kv_cache::wit_conversions!(wit_cache);

#[derive(Default)]
struct State {
    cache: OnceLock<Arc<Cache>>,
    config: OnceLock<ProviderConfig>,
    /// Keyspace per link: (source component id, link name). A component with two links to
    /// this provider (different link names, e.g. one per keyspace it reads) gets each link's.
    keyspaces: RwLock<HashMap<(String, String), String>>,
    ingest: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Sweeps expired entries nobody reads.
    purger: std::sync::Mutex<Option<edgecell_kv_cache::Purger>>,
    /// Saves the cache now and then, when a snapshot path is configured.
    snapshotter: std::sync::Mutex<Option<edgecell_kv_cache::snapshot::Snapshotter>>,
    /// True once shutting down: calls are refused (`unavailable`) from then on, so nothing is
    /// written after the final snapshot. Calls hold the read side while they run.
    closing: RwLock<bool>,
    /// Link sweeps when unlinked components call.
    recovery: edgecell_provider_common::links::Recovery,
}

/// The provider: one cache shared by all linked components, each in its own keyspace.
#[derive(Clone, Default)]
pub struct KvCacheProvider(Arc<State>);

impl KvCacheProvider {
    pub async fn run() -> anyhow::Result<()> {
        edgecell_provider_common::run_and_serve!(Self::default(), "edgecell-kv-cache", serve, |provider: &Self, connection: &'static ProviderConnection| {
            provider.0.recovery.attach(connection);
            // producers' puts over NATS (frames by handle), if configured
            let config = provider.0.config.get();
            if let (Some(prefix), Some(cache)) = (config.and_then(|c| c.ingest_prefix.clone()), provider.0.cache.get().cloned()) {
                let nats = Arc::clone(&connection.nats);
                let task = tokio::spawn(async move {
                    if let Err(e) = crate::ingest::serve(nats, cache, prefix).await {
                        warn!(error = %e, "cache put subscription failed");
                    }
                });
                *provider.0.ingest.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
            }
        })
    }

    /// Builds the cache for `config`, reads its snapshot if one is configured, and starts the
    /// background saves and sweeps.
    fn start(&self, config: ProviderConfig) -> anyhow::Result<()> {
        // producers' puts get shards of their own, only when they can arrive at all
        let cache = Arc::new(match config.ingest_prefix {
            Some(_) => Cache::with_ingest(config.cache, config.ingest_open.clone()),
            None => Cache::new(config.cache),
        });
        // (for a typical 64-byte keyspace + namespace + key)
        let (components, producers) = cache.value_limits(64);
        info!(largest_component_value = components, largest_put_value = producers, "kv-cache value limits");
        if let Some(snap) = &config.snapshot {
            restore_snapshot(&cache, &snap.path)?;
            let every = std::time::Duration::from_millis(snap.interval_ms);
            let saver = edgecell_kv_cache::snapshot::Snapshotter::start(&cache, snap.path.clone(), every, |e| warn!(error = %e, "cache snapshot not saved"))
                .context("starting the snapshot saves")?;
            *self.0.snapshotter.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(saver);
        }
        let purger = edgecell_kv_cache::Purger::start(&cache).context("starting the expired-entry sweep")?;
        *self.0.purger.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(purger);
        let _ = self.0.cache.set(cache);
        let _ = self.0.config.set(config);
        Ok(())
    }

    fn cache(&self) -> anyhow::Result<&Arc<Cache>> {
        self.0.cache.get().context("cache provider not initialised")
    }

    /// The caller's keyspace, chosen when the link it calls through arrived (link config
    /// `keyspace`, else its component id); the link is the caller's id and the link name the
    /// host sends with the call (`default` without one). A caller whose link has not reached this provider yet (the host can
    /// invoke a component before wadm's link puts are delivered here, or publish a put while
    /// this provider is starting, which is then lost) gets a typed `unavailable`: answering
    /// from some other keyspace would read data that is not its own, or store its state where
    /// it will never look again. It also starts a link sweep (at most one a second), which
    /// takes a link the lattice has but this provider missed from the control interface.
    fn keyspace(&self, cx: Option<&Context>) -> anyhow::Result<Result<String, wit_cache::CacheError>> {
        let cx = cx.context("invocation without a context")?;
        let source = cx.component.as_deref().context("invocation without a source component")?;
        let link = (source.to_owned(), cx.link_name().to_owned());
        let found = self.0.keyspaces.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&link).cloned();
        Ok(found.ok_or_else(|| {
            self.0.recovery.unlinked_caller(self);
            wit_cache::CacheError::Unavailable(format!("component {source} has no link to this kv-cache provider (yet): link name `{}`", link.1))
        }))
    }

    /// Runs `op` on the cache in the caller's keyspace ([`Self::keyspace`]'s `unavailable`
    /// when its link has not arrived), its error as the WIT's.
    fn in_keyspace<T>(
        &self,
        cx: Option<&Context>,
        op: impl FnOnce(&Cache, &str) -> Result<T, edgecell_kv_cache::CacheError>,
    ) -> CacheResult<T> {
        let ks = match self.keyspace(cx)? {
            Ok(ks) => ks,
            Err(e) => return Ok(Err(e)),
        };
        let closing = self.0.closing.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *closing {
            return Ok(Err(wit_cache::CacheError::Unavailable("the kv-cache provider is shutting down".into())));
        }
        Ok(op(self.cache()?, &ks).map_err(cache_error))
    }
}

impl Provider for KvCacheProvider {
    async fn init(&self, init: impl ProviderInitConfig) -> anyhow::Result<()> {
        let config = ProviderConfig::from_map(init.get_config()).context("invalid kv-cache configuration")?;
        info!(
            provider_id = init.get_provider_id(),
            memory_budget_bytes = config.cache.memory_budget_bytes,
            ingest = config.ingest_prefix.as_deref().unwrap_or("off"),
            "kv-cache provider starting"
        );
        self.start(config)
    }

    async fn receive_link_config_as_target(&self, link: LinkConfig<'_>) -> anyhow::Result<()> {
        let keyspace = config::keyspace(link.config, link.source_id).context("invalid link configuration")?;
        info!(source = link.source_id, link = link.link_name, keyspace, "component linked");
        self.0
            .keyspaces
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((link.source_id.to_owned(), link.link_name.to_owned()), keyspace);
        Ok(())
    }

    async fn delete_link_as_target(&self, info: impl LinkDeleteInfo) -> anyhow::Result<()> {
        let link = (info.get_source_id().to_owned(), info.get_link_name().to_owned());
        self.0.keyspaces.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&link);
        Ok(())
    }

    async fn shutdown(&self) -> anyhow::Result<()> {
        // no call writes from here on (one running finishes first)
        *self.0.closing.write().unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        let ingest = self.0.ingest.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(task) = ingest {
            task.abort();
            let _ = task.await;
        }
        drop(self.0.purger.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        let saver = self.0.snapshotter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let (Some(saver), Some(cache)) = (saver, self.0.cache.get()) {
            match saver.finish(cache) {
                Ok(Some(w)) => info!(entries = w.entries, bytes = w.bytes, "cache snapshot saved"),
                Ok(None) => info!("cache snapshot up to date"),
                Err(e) => warn!(error = %e, "cache snapshot not saved at shutdown"),
            }
        }
        if let Some(cache) = self.0.cache.get() {
            let s = cache.stats();
            info!(
                entries = s.entries,
                bytes = s.bytes,
                ingest_bytes = s.ingest_bytes,
                hits = s.hits,
                misses = s.misses,
                evictions = s.evictions,
                expirations = s.expirations,
                "kv-cache provider stopping"
            );
        }
        Ok(())
    }
}

type CacheResult<T> = anyhow::Result<Result<T, wit_cache::CacheError>>;

impl wit_cache::Handler<Option<Context>> for KvCacheProvider {
    async fn get(&self, cx: Option<Context>, namespace: String, key: String) -> CacheResult<Option<wit_cache::Entry>> {
        let _span = edgecell_provider_common::invocation_span("cache.get", cx.as_ref()).entered();
        self.in_keyspace(cx.as_ref(), |c, ks| c.get(ks, &namespace, &key).map(|o| o.map(cache_entry)))
    }

    async fn set(
        &self,
        cx: Option<Context>,
        namespace: String,
        key: String,
        value: bytes::Bytes,
        ttl_ms: Option<u64>,
    ) -> CacheResult<u64> {
        let _span = edgecell_provider_common::invocation_span("cache.set", cx.as_ref()).entered();
        self.in_keyspace(cx.as_ref(), |c, ks| c.set(ks, &namespace, &key, value.into(), ttl_ms))
    }

    async fn delete(&self, cx: Option<Context>, namespace: String, key: String) -> CacheResult<bool> {
        let _span = edgecell_provider_common::invocation_span("cache.delete", cx.as_ref()).entered();
        self.in_keyspace(cx.as_ref(), |c, ks| c.delete(ks, &namespace, &key))
    }

    async fn compare_and_swap(
        &self,
        cx: Option<Context>,
        namespace: String,
        key: String,
        expected: Option<u64>,
        value: bytes::Bytes,
        ttl_ms: Option<u64>,
    ) -> CacheResult<wit_cache::CasOutcome> {
        let _span = edgecell_provider_common::invocation_span("cache.compare-and-swap", cx.as_ref()).entered();
        self.in_keyspace(cx.as_ref(), |c, ks| c.compare_and_swap(ks, &namespace, &key, expected, value.into(), ttl_ms).map(cache_cas))
    }

    async fn increment(
        &self,
        cx: Option<Context>,
        namespace: String,
        key: String,
        delta: i64,
        ttl_ms: Option<u64>,
    ) -> CacheResult<i64> {
        let _span = edgecell_provider_common::invocation_span("cache.increment", cx.as_ref()).entered();
        self.in_keyspace(cx.as_ref(), |c, ks| c.increment(ks, &namespace, &key, delta, ttl_ms))
    }

    async fn get_many(&self, cx: Option<Context>, namespace: String, keys: Vec<String>) -> CacheResult<Vec<Option<wit_cache::Entry>>> {
        let _span = edgecell_provider_common::invocation_span("cache.get-many", cx.as_ref()).entered();
        self.in_keyspace(cx.as_ref(), |c, ks| {
            c.get_many(ks, &namespace, &keys).map(|v| v.into_iter().map(|o| o.map(cache_entry)).collect())
        })
    }

    async fn set_many(
        &self,
        cx: Option<Context>,
        namespace: String,
        items: Vec<(String, bytes::Bytes)>,
        ttl_ms: Option<u64>,
    ) -> CacheResult<Vec<u64>> {
        let _span = edgecell_provider_common::invocation_span("cache.set-many", cx.as_ref()).entered();
        let items = items.into_iter().map(|(k, v)| (k, v.into())).collect();
        self.in_keyspace(cx.as_ref(), |c, ks| c.set_many(ks, &namespace, items, ttl_ms))
    }

    async fn set_many_if(
        &self,
        cx: Option<Context>,
        namespace: String,
        items: Vec<wit_cache::ConditionalWrite>,
        ttl_ms: Option<u64>,
    ) -> CacheResult<wit_cache::BatchOutcome> {
        let _span = edgecell_provider_common::invocation_span("cache.set-many-if", cx.as_ref()).entered();
        let items = items.into_iter().map(cache_conditional).collect();
        self.in_keyspace(cx.as_ref(), |c, ks| c.set_many_if(ks, &namespace, items, ttl_ms).map(cache_batch))
    }
}

/// Reads the snapshot at `path` into `cache`. One that is not a usable snapshot is moved
/// aside (`<path>.unreadable-<unix milliseconds>`, kept for a look) and the cache starts empty: a
/// cache provider that refused to start would stop every component that uses it. A file that
/// cannot be read at all (permissions, I/O) stops the start instead, so the next save does not
/// replace data that may be fine.
fn restore_snapshot(cache: &Cache, path: &std::path::Path) -> anyhow::Result<()> {
    use edgecell_kv_cache::snapshot::{SnapshotError, load};
    match load(cache, path) {
        Ok(None) => info!(path = %path.display(), "no cache snapshot yet; starting empty"),
        Ok(Some(r)) => info!(path = %path.display(), restored = r.restored, expired = r.expired, refused = r.refused, "cache snapshot read"),
        Err(e @ SnapshotError::Io { .. }) => return Err(e).context("reading the cache snapshot"),
        Err(e @ SnapshotError::Format { .. }) => {
            let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let mut aside = path.as_os_str().to_os_string();
            aside.push(format!(".unreadable-{stamp}"));
            std::fs::rename(path, &aside).with_context(|| format!("moving the unusable cache snapshot aside ({e})"))?;
            warn!(error = %e, moved_to = %std::path::Path::new(&aside).display(), "cache snapshot unusable; starting empty");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use wit_cache::Handler as _;

    fn from(component: &str) -> Option<Context> {
        Some(Context { component: Some(component.to_owned()), tracing: HashMap::new() })
    }

    #[tokio::test]
    async fn a_caller_without_a_link_is_refused_and_never_sees_another_keyspace() {
        let p = KvCacheProvider::default();
        let _ = p.0.cache.set(Arc::new(Cache::new(edgecell_kv_cache::CacheConfig::default())));
        // a producer put a frame into the keyspace the video actor's link names
        p.cache().unwrap().set("video-analytics", "frames", "f0", b"jpeg".to_vec(), None).unwrap();
        // the actor calls before its link reached the provider: a typed error, not "missing"
        let early = p.get(from("edgecell-video_analytics"), "frames".into(), "f0".into()).await.unwrap();
        assert!(matches!(early, Err(wit_cache::CacheError::Unavailable(_))), "{early:?}");
        let write = p.set(from("edgecell-video_analytics"), "state".into(), "s".into(), bytes::Bytes::from_static(b"x"), None).await.unwrap();
        assert!(matches!(write, Err(wit_cache::CacheError::Unavailable(_))), "{write:?}");
        assert!(p.cache().unwrap().get("edgecell-video_analytics", "state", "s").unwrap().is_none(), "nothing stored elsewhere");
        // once the link is in, the same call reads the producer's frame
        p.0.keyspaces.write().unwrap().insert(("edgecell-video_analytics".into(), "default".into()), "video-analytics".into());
        let entry = p.get(from("edgecell-video_analytics"), "frames".into(), "f0".into()).await.unwrap().unwrap().unwrap();
        assert_eq!(entry.value.as_ref(), b"jpeg");
    }

    /// With a snapshot path, what components stored outlives the provider: its shutdown
    /// refuses calls, then saves; the next provider reads it back at start.
    #[tokio::test]
    async fn a_restarted_provider_reads_back_what_was_stored() {
        let dir = std::env::temp_dir().join(format!("edgecell-kv-provider-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kv.snapshot");
        let config = || {
            ProviderConfig::from_map(&edgecell_provider_common::config_map(&[("snapshot-path", path.to_str().unwrap()), ("snapshot-interval-ms", "0")]))
                .unwrap()
        };
        let link = |p: &KvCacheProvider| p.0.keyspaces.write().unwrap().insert(("va".into(), "default".into()), "video-analytics".into());

        let first = KvCacheProvider::default();
        first.start(config()).unwrap();
        link(&first);
        first.increment(from("va"), "video".into(), "ids/cam-1".into(), 1, None).await.unwrap().unwrap();
        let v = first.set(from("va"), "video".into(), "state/cam-1".into(), bytes::Bytes::from_static(b"tracks"), Some(600_000)).await.unwrap().unwrap();
        first.shutdown().await.unwrap();
        // nothing is written after the final save
        let late = first.set(from("va"), "video".into(), "late".into(), bytes::Bytes::from_static(b"x"), None).await.unwrap();
        assert!(matches!(late, Err(wit_cache::CacheError::Unavailable(ref m)) if m.contains("shutting down")), "{late:?}");

        let second = KvCacheProvider::default();
        second.start(config()).unwrap();
        link(&second);
        let state = second.get(from("va"), "video".into(), "state/cam-1".into()).await.unwrap().unwrap().unwrap();
        assert_eq!((state.value.as_ref(), state.version), (b"tracks".as_slice(), v));
        assert_eq!(second.increment(from("va"), "video".into(), "ids/cam-1".into(), 1, None).await.unwrap().unwrap(), 2);

        // a file that is not a snapshot is moved aside and the provider starts empty
        second.shutdown().await.unwrap();
        std::fs::write(&path, b"not a snapshot").unwrap();
        let third = KvCacheProvider::default();
        third.start(config()).unwrap();
        assert_eq!(third.cache().unwrap().stats().entries, 0);
        assert!(!path.exists());
        assert!(std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains(".unreadable-")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn through(component: &str, link: &str) -> Option<Context> {
        Some(Context { component: Some(component.to_owned()), tracing: HashMap::from([("link-name".to_owned(), link.to_owned())]) })
    }

    /// A component linked twice (two link names, two keyspaces) reads and writes each link's
    /// keyspace through it; a call through a link this provider does not hold is refused.
    #[tokio::test]
    async fn each_link_of_a_component_has_its_own_keyspace() {
        let p = KvCacheProvider::default();
        let _ = p.0.cache.set(Arc::new(Cache::new(edgecell_kv_cache::CacheConfig::default())));
        {
            let mut ks = p.0.keyspaces.write().unwrap();
            ks.insert(("va".into(), "default".into()), "cam-1".into());
            ks.insert(("va".into(), "archive".into()), "cam-1-archive".into());
        }
        let put = |link: &'static str, v: &'static [u8]| p.set(through("va", link), "ns".into(), "k".into(), bytes::Bytes::from_static(v), None);
        put("default", b"live").await.unwrap().unwrap();
        put("archive", b"old").await.unwrap().unwrap();
        let cache = p.cache().unwrap();
        assert_eq!(cache.get("cam-1", "ns", "k").unwrap().unwrap().value, b"live");
        assert_eq!(cache.get("cam-1-archive", "ns", "k").unwrap().unwrap().value, b"old");
        // no link-name header: the default link
        assert_eq!(p.get(from("va"), "ns".into(), "k".into()).await.unwrap().unwrap().unwrap().value.as_ref(), b"live");
        let other = p.get(through("va", "other"), "ns".into(), "k".into()).await.unwrap();
        assert!(matches!(other, Err(wit_cache::CacheError::Unavailable(ref m)) if m.contains("`other`")), "{other:?}");
    }
}
