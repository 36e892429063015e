//! Shared helpers: where the components are, a runtime with local services.

use std::path::PathBuf;
use std::sync::Arc;

use edgecell::{Actor, ActorSpec, LocalBus, Runtime, RuntimeConfig, Services};

/// `<target>/wasm32-wasip2/component`, derived from this test binary's location
/// (`<target>/<profile>/deps/all-*`) unless `EDGECELL_COMPONENTS` says otherwise.
pub fn components_dir() -> PathBuf {
    if let Ok(d) = std::env::var("EDGECELL_COMPONENTS") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe.ancestors().nth(3).expect("target dir above <profile>/deps");
    target.join("wasm32-wasip2").join("component")
}

pub fn component(file: &str) -> PathBuf {
    let p = components_dir().join(file);
    assert!(p.exists(), "{} is missing: build the components first (`make components`)", p.display());
    p
}

pub fn probe_path() -> PathBuf {
    component("edgecell_probe.wasm")
}

pub struct Host {
    pub runtime: Runtime,
    pub bus: Arc<LocalBus>,
}

pub fn host(config: RuntimeConfig) -> Host {
    let (services, bus) = Services::local(edgecell_kv_cache::CacheConfig::default());
    Host { runtime: Runtime::new(config, services).expect("runtime"), bus }
}

pub fn spec(name: &str, path: PathBuf) -> ActorSpec {
    let digest = edgecell::sha256_hex(&std::fs::read(&path).expect("read component"));
    ActorSpec { name: name.into(), path, sha256: Some(digest), config: Default::default() }
}

pub fn probe(host: &Host) -> Actor {
    host.runtime.load_actor(spec("probe", probe_path())).expect("load probe")
}

/// A host whose inference provider holds the bundled models.
pub fn host_with_models(config: RuntimeConfig) -> Host {
    host_with_models_on(config, |_| {})
}

/// [`host_with_models`], with `adjust` given the services before the runtime is built (to put
/// another bus in front of the local one, …).
pub fn host_with_models_on(config: RuntimeConfig, adjust: impl FnOnce(&mut Services)) -> Host {
    let (mut services, bus) = Services::local(edgecell_kv_cache::CacheConfig::default());
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let registry = edgecell_inference::ModelRegistry::load(&edgecell_inference::RegistryConfig::new(models)).expect("load models");
    let pool = edgecell_inference::InferencePool::new(Arc::new(registry), edgecell_inference::PoolConfig::default()).expect("pool");
    services.inference = Arc::new(pool);
    adjust(&mut services);
    Host { runtime: Runtime::new(config, services).expect("runtime"), bus }
}
