//! The wasmtime engine, component loading (with a precompiled `.cwasm` cache), pre-instantiated
//! actors and their instances with a memory cap and a per-call deadline.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::bindings;
use crate::services::Services;
use crate::state::HostState;

/// Host limits and tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Most live component instances (the pooling allocator's slots).
    pub max_instances: u32,
    /// Linear memory cap per instance.
    pub memory_cap_bytes: usize,
    /// How long one call into a component may run. `None`: no deadline, and the engine compiles
    /// components without epoch interruption checks at every loop back-edge and function entry,
    /// which makes loop-heavy actors run about a quarter faster (BENCHMARKS.md). A runaway
    /// actor then holds its calling thread for good, so this is only for trusted, pinned actors.
    pub call_deadline: Option<Duration>,
    /// Epoch tick: the deadline's resolution.
    pub epoch_tick: Duration,
    /// Where precompiled `.cwasm` files are kept; none = compile in memory every time.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_instances: 64,
            memory_cap_bytes: 64 * 1024 * 1024,
            call_deadline: Some(Duration::from_secs(5)),
            epoch_tick: Duration::from_millis(1),
            cache_dir: None,
        }
    }
}

/// What went wrong in the host, typed so callers can tell failures apart.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("reading component {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("component {name}: sha256 {actual} does not match the pinned {expected}")]
    DigestMismatch { name: String, expected: String, actual: String },
    #[error("component {name} could not be compiled: {message}")]
    Compile { name: String, message: String },
    #[error("component {name} could not be linked or instantiated: {message}")]
    Instantiate { name: String, message: String },
    #[error("component {name} does not export {export}")]
    MissingExport { name: String, export: String },
    #[error("component {name} exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimitExceeded { name: String, limit_bytes: usize },
    #[error("component {name} exceeded its call deadline of {deadline_ms} ms")]
    DeadlineExceeded { name: String, deadline_ms: u128 },
    #[error("component {name} trapped: {message}")]
    Trap { name: String, message: String },
    #[error("component {name}: this instance trapped earlier and cannot be called again")]
    Poisoned { name: String },
    #[error("engine setup failed: {0}")]
    Engine(String),
    #[error("precompiled cache at {path}: {message}")]
    Cache { path: PathBuf, message: String },
}

/// Ticks the engine's epoch so deadlines fire; stops when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: &Engine, tick: Duration) -> Result<Self, HostError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| HostError::Engine(format!("spawning the epoch ticker: {e}")))?;
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a component was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled from the `.wasm` now.
    Compiled,
    /// Compiled now and written to the `.cwasm` cache.
    CompiledAndCached,
    /// Loaded from a precompiled `.cwasm` in the cache.
    Precompiled,
}

/// The embedded host: one engine, one linker with every capability, shared provider cores.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    services: Arc<Services>,
    config: RuntimeConfig,
    _ticker: Option<EpochTicker>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("config", &self.config).finish_non_exhaustive()
    }
}

fn engine_config(cfg: &RuntimeConfig) -> Config {
    let n = cfg.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(8))
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_core_instances_per_component(16)
        .max_memory_size(cfg.memory_cap_bytes);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(cfg.call_deadline.is_some())
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // EDGECELL_WASM_PROFILE=perfmap|jitdump: name the compiled component functions for `perf`
    // (`perf record -k 1` + `perf inject --jit` for jitdump, which also keeps the code)
    match std::env::var("EDGECELL_WASM_PROFILE").as_deref() {
        Ok("perfmap") => {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Ok("jitdump") => {
            config.profiler(wasmtime::ProfilingStrategy::JitDump);
        }
        Ok(other) => tracing::warn!("EDGECELL_WASM_PROFILE={other:?} ignored: use perfmap or jitdump"),
        Err(_) => {}
    }
    config
}

/// Hex sha256 of some bytes.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Runtime {
    /// Build the engine, the linker and start the epoch ticker.
    pub fn new(config: RuntimeConfig, services: Services) -> Result<Self, HostError> {
        let engine = Engine::new(&engine_config(&config)).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| HostError::Engine(format!("linking WASI: {e:#}")))?;
        bindings::capabilities::Capabilities::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| HostError::Engine(format!("linking capabilities: {e:#}")))?;
        let ticker = match config.call_deadline {
            Some(_) => Some(EpochTicker::start(&engine, config.epoch_tick)?),
            None => None,
        };
        Ok(Self { engine, linker, services: Arc::new(services), config, _ticker: ticker })
    }

    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    #[must_use]
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    #[must_use]
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// A stable hash of everything that makes a `.cwasm` loadable by this engine.
    #[must_use]
    pub fn engine_hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        h.finish()
    }

    /// Compile `bytes` (or load the matching `.cwasm` from the cache).
    pub fn load_component(&self, name: &str, bytes: &[u8]) -> Result<(Component, LoadSource), HostError> {
        let digest = sha256_hex(bytes);
        let Some(dir) = &self.config.cache_dir else {
            let c = Component::new(&self.engine, bytes)
                .map_err(|e| HostError::Compile { name: name.to_owned(), message: format!("{e:#}") })?;
            return Ok((c, LoadSource::Compiled));
        };
        let path = dir.join(format!("{digest}-{:016x}.cwasm", self.engine_hash()));
        if path.exists() {
            match self.load_precompiled(&path) {
                Ok(c) => return Ok((c, LoadSource::Precompiled)),
                Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring unusable precompiled component"),
            }
        }
        let serialized = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| HostError::Compile { name: name.to_owned(), message: format!("{e:#}") })?;
        write_cache_file(dir, &path, &serialized)?;
        let component = self.load_precompiled(&path)?;
        Ok((component, LoadSource::CompiledAndCached))
    }

    /// Load a `.cwasm` this host wrote, after checking it against its recorded sha256.
    fn load_precompiled(&self, path: &Path) -> Result<Component, HostError> {
        let cache_err = |message: String| HostError::Cache { path: path.to_owned(), message };
        let bytes = std::fs::read(path).map_err(|e| cache_err(format!("read: {e}")))?;
        let recorded = std::fs::read_to_string(sidecar(path)).map_err(|e| cache_err(format!("read digest: {e}")))?;
        if recorded.trim() != sha256_hex(&bytes) {
            return Err(cache_err("contents do not match the digest recorded when it was written".into()));
        }
        // SAFETY: `Component::deserialize` requires bytes produced by `Engine::precompile_component`
        // of a compatible engine. The file was written by `load_component` above from this
        // engine's own output, its name carries this engine's compatibility hash, and its
        // contents were just checked against the sha256 recorded when it was written, so a
        // truncated, swapped or tampered file is refused before it gets here. Wasmtime also
        // re-checks the version and engine settings in the artifact's header.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &bytes) };
        component.map_err(|e| cache_err(format!("deserialize: {e:#}")))
    }

    /// Read, check the pinned digest, compile (or load precompiled) and pre-instantiate.
    pub fn load_actor(&self, spec: ActorSpec) -> Result<Actor, HostError> {
        let bytes = std::fs::read(&spec.path).map_err(|source| HostError::Read { path: spec.path.clone(), source })?;
        let actual = sha256_hex(&bytes);
        if let Some(expected) = &spec.sha256
            && !expected.eq_ignore_ascii_case(&actual)
        {
            return Err(HostError::DigestMismatch { name: spec.name, expected: expected.clone(), actual });
        }
        let started = Instant::now();
        let (component, source) = self.load_component(&spec.name, &bytes)?;
        let load_time = started.elapsed();
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| HostError::Instantiate { name: spec.name.clone(), message: format!("{e:#}") })?;
        tracing::info!(actor = %spec.name, sha256 = %actual, ?source, load_ms = load_time.as_secs_f64() * 1e3, "actor loaded");
        Ok(Actor {
            name: spec.name,
            digest: actual,
            size_bytes: bytes.len(),
            pre,
            component,
            config: Arc::new(spec.config),
            services: Arc::clone(&self.services),
            memory_cap_bytes: self.config.memory_cap_bytes,
            deadline: self.config.call_deadline.map(|d| (d, deadline_ticks(d, self.config.epoch_tick))),
            load_source: source,
            load_time,
        })
    }
}

fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("cwasm.sha256")
}

fn write_cache_file(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    let err = |message: String| HostError::Cache { path: path.to_owned(), message };
    std::fs::create_dir_all(dir).map_err(|e| err(format!("create dir: {e}")))?;
    // write both files under temporary names, then rename: a crash never leaves a torn file
    // unique per process and per call: two threads of one process may compile the same
    // component at once, and must not write into each other's temporary file
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| err(format!("write: {e}")))?;
    let tmp_sum = tmp.with_extension("sha256tmp");
    std::fs::write(&tmp_sum, sha256_hex(bytes)).map_err(|e| err(format!("write digest: {e}")))?;
    std::fs::rename(&tmp_sum, sidecar(path)).map_err(|e| err(format!("rename digest: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| err(format!("rename: {e}")))?;
    Ok(())
}

fn deadline_ticks(deadline: Duration, tick: Duration) -> u64 {
    let tick = tick.as_nanos().max(1);
    // +1: the current epoch may be about to tick
    u64::try_from(deadline.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX / 2).saturating_add(1)
}

/// What to load as an actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActorSpec {
    pub name: String,
    pub path: PathBuf,
    /// Pinned sha256 (hex); a component with another digest is refused.
    pub sha256: Option<String>,
    /// Runtime configuration delivered through `wasi:config/store`.
    pub config: BTreeMap<String, String>,
}

/// A compiled, pre-instantiated actor: instantiating it is cheap.
pub struct Actor {
    name: String,
    digest: String,
    size_bytes: usize,
    pre: InstancePre<HostState>,
    component: Component,
    config: Arc<BTreeMap<String, String>>,
    services: Arc<Services>,
    memory_cap_bytes: usize,
    /// The call deadline and its length in epoch ticks; none = no deadline.
    deadline: Option<(Duration, u64)>,
    load_source: LoadSource,
    load_time: Duration,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor").field("name", &self.name).field("digest", &self.digest).finish_non_exhaustive()
    }
}

impl Actor {
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    #[must_use]
    pub fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    #[must_use]
    pub fn component(&self) -> &Component {
        &self.component
    }

    #[must_use]
    pub fn instance_pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    #[must_use]
    pub fn load_source(&self) -> LoadSource {
        self.load_source
    }

    #[must_use]
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// A fresh instance with its own store, memory cap and deadline.
    pub fn instantiate(&self) -> Result<ActorInstance, HostError> {
        let state = HostState::new(&self.name, Arc::clone(&self.services), Arc::clone(&self.config), self.memory_cap_bytes);
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        if let Some((_, ticks)) = self.deadline {
            store.set_epoch_deadline(ticks);
            store.epoch_deadline_trap();
        }
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&self.name, &store, self.deadline, &e))?;
        Ok(ActorInstance {
            name: self.name.clone(),
            store,
            instance,
            deadline: self.deadline,
            poisoned: false,
            handler: None,
        })
    }
}

fn classify(name: &str, store: &Store<HostState>, deadline: Option<(Duration, u64)>, e: &wasmtime::Error) -> HostError {
    let name = name.to_owned();
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        let deadline_ms = deadline.map_or(0, |(d, _)| d.as_millis());
        return HostError::DeadlineExceeded { name, deadline_ms };
    }
    let limiter = &store.data().limiter;
    if limiter.memory_refused {
        return HostError::MemoryLimitExceeded { name, limit_bytes: limiter.memory_cap_bytes };
    }
    if e.downcast_ref::<Trap>().is_some() {
        HostError::Trap { name, message: format!("{e:#}") }
    } else {
        HostError::Instantiate { name, message: format!("{e:#}") }
    }
}

/// One live instance of an actor. After a trap it refuses further calls (`Poisoned`): make a new
/// one with [`Actor::instantiate`] (an [`InstancePool`] does this for you).
pub struct ActorInstance {
    name: String,
    store: Store<HostState>,
    instance: wasmtime::component::Instance,
    deadline: Option<(Duration, u64)>,
    poisoned: bool,
    handler: Option<bindings::messaging_actor::MessagingActor>,
}

impl std::fmt::Debug for ActorInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorInstance").field("name", &self.name).field("poisoned", &self.poisoned).finish_non_exhaustive()
    }
}

impl ActorInstance {
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The largest linear memory this instance has had (bytes).
    #[must_use]
    pub fn peak_memory_bytes(&self) -> usize {
        self.store.data().limiter.peak_memory_bytes
    }

    #[must_use]
    pub fn instance(&self) -> &wasmtime::component::Instance {
        &self.instance
    }

    /// Run `f` against this instance's store with a fresh deadline; traps become typed errors
    /// and poison the instance.
    pub fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>, &wasmtime::component::Instance) -> wasmtime::Result<R>,
    ) -> Result<R, HostError> {
        if self.poisoned {
            return Err(HostError::Poisoned { name: self.name.clone() });
        }
        if let Some((_, ticks)) = self.deadline {
            self.store.set_epoch_deadline(ticks);
        }
        // a refusal an earlier call's guest handled itself says nothing about this call's trap
        self.store.data_mut().limiter.memory_refused = false;
        match f(&mut self.store, &self.instance) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.poisoned = true;
                Err(classify(&self.name, &self.store, self.deadline, &e))
            }
        }
    }

    /// Typed bindings for the probe test component (fails if this is not one).
    pub fn probe(&mut self) -> Result<bindings::probe::Probe, HostError> {
        bindings::probe::Probe::new(&mut self.store, &self.instance)
            .map_err(|e| HostError::MissingExport { name: self.name.clone(), export: format!("the probe world ({e:#})") })
    }

    /// Typed bindings for the video-analytics actor (fails if this is not one).
    pub fn video_analytics(&mut self) -> Result<bindings::video_analytics::VideoAnalytics, HostError> {
        bindings::video_analytics::VideoAnalytics::new(&mut self.store, &self.instance)
            .map_err(|e| HostError::MissingExport { name: self.name.clone(), export: format!("the video-analytics world ({e:#})") })
    }

    /// Typed bindings for the kernels benchmark component.
    pub fn kernels(&mut self) -> Result<bindings::kernels::Kernels, HostError> {
        bindings::kernels::Kernels::new(&mut self.store, &self.instance)
            .map_err(|e| HostError::MissingExport { name: self.name.clone(), export: format!("the kernels world ({e:#})") })
    }

    /// Typed bindings for the sensor-fusion actor (fails if this is not one).
    pub fn sensor_fusion(&mut self) -> Result<bindings::sensor_fusion::SensorFusion, HostError> {
        bindings::sensor_fusion::SensorFusion::new(&mut self.store, &self.instance)
            .map_err(|e| HostError::MissingExport { name: self.name.clone(), export: format!("the sensor-fusion world ({e:#})") })
    }

    /// Typed bindings for the v2x-validator actor (fails if this is not one).
    pub fn v2x_validator(&mut self) -> Result<bindings::v2x_validator::V2xValidator, HostError> {
        bindings::v2x_validator::V2xValidator::new(&mut self.store, &self.instance)
            .map_err(|e| HostError::MissingExport { name: self.name.clone(), export: format!("the v2x-validator world ({e:#})") })
    }

    /// Deliver a message to the actor's `wasmcloud:messaging/handler` export.
    /// The outer error is the host's (trap, deadline); the inner one is the actor's answer.
    pub fn handle_message(&mut self, msg: &bindings::BrokerMessage) -> Result<Result<(), String>, HostError> {
        if self.handler.is_none() {
            let h = bindings::messaging_actor::MessagingActor::new(&mut self.store, &self.instance).map_err(|e| {
                HostError::MissingExport { name: self.name.clone(), export: format!("wasmcloud:messaging/handler@0.2.0 ({e:#})") }
            })?;
            self.handler = Some(h);
        }
        let Some(handler) = self.handler.take() else {
            return Err(HostError::MissingExport { name: self.name.clone(), export: "wasmcloud:messaging/handler@0.2.0".into() });
        };
        let out = self.call(|store, _| handler.wasmcloud_messaging_handler().call_handle_message(store, msg));
        self.handler = Some(handler);
        out
    }
}

/// A bounded set of reusable instances of one actor; trapped instances are replaced.
#[derive(Debug)]
pub struct InstancePool {
    actor: Arc<Actor>,
    idle: Mutex<Vec<ActorInstance>>,
    max_idle: usize,
    replaced: std::sync::atomic::AtomicU64,
}

impl InstancePool {
    #[must_use]
    pub fn new(actor: Arc<Actor>, max_idle: usize) -> Self {
        Self { actor, idle: Mutex::new(Vec::new()), max_idle: max_idle.max(1), replaced: std::sync::atomic::AtomicU64::new(0) }
    }

    #[must_use]
    pub fn actor(&self) -> &Arc<Actor> {
        &self.actor
    }

    /// Instances discarded after a trap.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// Run `f` on an idle instance (or a new one) and give it back unless it trapped.
    pub fn with_instance<R>(&self, f: impl FnOnce(&mut ActorInstance) -> Result<R, HostError>) -> Result<R, HostError> {
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut instance = match idle {
            Some(i) => i,
            None => self.actor.instantiate()?,
        };
        let out = f(&mut instance);
        if instance.is_poisoned() {
            self.replaced.fetch_add(1, Ordering::Relaxed);
        } else {
            let mut idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < self.max_idle {
                idle.push(instance);
            }
        }
        out
    }
}
