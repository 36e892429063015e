//! Per-instance store data: WASI context, resource limits, and the capability implementations
//! that link actor imports to the in-process provider cores.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::capabilities::edgecell::cache::store as wit_cache;
use crate::bindings::capabilities::edgecell::inference::runner as wit_inference;
use crate::bindings::capabilities::edgecell::metrics::recorder as wit_metrics;
use crate::bindings::capabilities::wasi::config::store as wit_config;
use crate::bindings::capabilities::wasmcloud::messaging::consumer as wit_consumer;
use crate::bindings::BrokerMessage;
use crate::services::Services;

/// Caps the linear memory and tables of one instance and remembers when it refused growth, so
/// the trap that usually follows can be reported as "memory limit exceeded".
#[derive(Debug, Clone)]
pub struct InstanceLimiter {
    pub memory_cap_bytes: usize,
    /// Set when a memory growth past the cap was refused.
    pub memory_refused: bool,
    /// Largest linear memory size seen (bytes).
    pub peak_memory_bytes: usize,
}

impl wasmtime::ResourceLimiter for InstanceLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_cap_bytes {
            self.memory_refused = true;
            return Ok(false);
        }
        self.peak_memory_bytes = self.peak_memory_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data of one actor instance's `Store`.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: InstanceLimiter,
    services: Arc<Services>,
    /// The actor's name: its cache keyspace and the `component` label of its metrics.
    component: String,
    host_labels: Vec<(String, String)>,
    config: Arc<BTreeMap<String, String>>,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState").field("component", &self.component).field("limiter", &self.limiter).finish_non_exhaustive()
    }
}

impl HostState {
    pub(crate) fn new(
        component: &str,
        services: Arc<Services>,
        config: Arc<BTreeMap<String, String>>,
        memory_cap_bytes: usize,
    ) -> Self {
        // No filesystem, no network, no environment, no arguments: actors reach the world only
        // through the capability interfaces. stderr is kept so a guest panic message is visible.
        let wasi = WasiCtx::builder().inherit_stderr().allow_ip_name_lookup(false).allow_tcp(false).allow_udp(false).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: InstanceLimiter { memory_cap_bytes, memory_refused: false, peak_memory_bytes: 0 },
            services,
            component: component.to_owned(),
            host_labels: vec![("component".to_owned(), component.to_owned())],
            config,
        }
    }

    #[must_use]
    pub fn component(&self) -> &str {
        &self.component
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

// ---- wasi:config/store -------------------------------------------------------------------

impl wit_config::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, wit_config::Error> {
        Ok(self.config.get(&key).cloned())
    }

    fn get_all(&mut self) -> Result<Vec<(String, String)>, wit_config::Error> {
        Ok(self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

// ---- edgecell:cache/store ------------------------------------------------------------------

edgecell_kv_cache::wit_conversions!(wit_cache);

impl wit_cache::Host for HostState {
    fn get(&mut self, namespace: String, key: String) -> Result<Option<wit_cache::Entry>, wit_cache::CacheError> {
        self.services.cache.get(&self.component, &namespace, &key).map(|o| o.map(cache_entry)).map_err(cache_error)
    }

    fn set(&mut self, namespace: String, key: String, value: Vec<u8>, ttl_ms: Option<u64>) -> Result<u64, wit_cache::CacheError> {
        self.services.cache.set(&self.component, &namespace, &key, value, ttl_ms).map_err(cache_error)
    }

    fn delete(&mut self, namespace: String, key: String) -> Result<bool, wit_cache::CacheError> {
        self.services.cache.delete(&self.component, &namespace, &key).map_err(cache_error)
    }

    fn compare_and_swap(
        &mut self,
        namespace: String,
        key: String,
        expected: Option<u64>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<wit_cache::CasOutcome, wit_cache::CacheError> {
        self.services.cache.compare_and_swap(&self.component, &namespace, &key, expected, value, ttl_ms).map(cache_cas).map_err(cache_error)
    }

    fn increment(&mut self, namespace: String, key: String, delta: i64, ttl_ms: Option<u64>) -> Result<i64, wit_cache::CacheError> {
        self.services.cache.increment(&self.component, &namespace, &key, delta, ttl_ms).map_err(cache_error)
    }

    fn get_many(&mut self, namespace: String, keys: Vec<String>) -> Result<Vec<Option<wit_cache::Entry>>, wit_cache::CacheError> {
        self.services
            .cache
            .get_many(&self.component, &namespace, &keys)
            .map(|v| v.into_iter().map(|o| o.map(cache_entry)).collect())
            .map_err(cache_error)
    }

    fn set_many(
        &mut self,
        namespace: String,
        items: Vec<(String, Vec<u8>)>,
        ttl_ms: Option<u64>,
    ) -> Result<Vec<u64>, wit_cache::CacheError> {
        self.services.cache.set_many(&self.component, &namespace, items, ttl_ms).map_err(cache_error)
    }

    fn set_many_if(
        &mut self,
        namespace: String,
        items: Vec<wit_cache::ConditionalWrite>,
        ttl_ms: Option<u64>,
    ) -> Result<wit_cache::BatchOutcome, wit_cache::CacheError> {
        let items = items.into_iter().map(cache_conditional).collect();
        self.services.cache.set_many_if(&self.component, &namespace, items, ttl_ms).map(cache_batch).map_err(cache_error)
    }
}

// ---- edgecell:metrics/recorder -------------------------------------------------------------

edgecell_metrics::wit_conversions!(wit_metrics);

impl wit_metrics::Host for HostState {
    fn register(&mut self, name: String, help: String, kind: wit_metrics::MetricKind) -> Result<(), wit_metrics::MetricsError> {
        self.services.metrics.register(&name, &help, metric_kind(kind)).map_err(metrics_error)
    }

    fn counter_add(&mut self, name: String, l: Vec<wit_metrics::Label>, delta: f64) -> Result<(), wit_metrics::MetricsError> {
        self.services.metrics.counter_add(&name, &metric_labels(l), &self.host_labels, delta).map_err(metrics_error)
    }

    fn gauge_set(&mut self, name: String, l: Vec<wit_metrics::Label>, value: f64) -> Result<(), wit_metrics::MetricsError> {
        self.services.metrics.gauge_set(&name, &metric_labels(l), &self.host_labels, value).map_err(metrics_error)
    }

    fn gauge_add(&mut self, name: String, l: Vec<wit_metrics::Label>, delta: f64) -> Result<(), wit_metrics::MetricsError> {
        self.services.metrics.gauge_add(&name, &metric_labels(l), &self.host_labels, delta).map_err(metrics_error)
    }

    fn histogram_observe(&mut self, name: String, l: Vec<wit_metrics::Label>, value: f64) -> Result<(), wit_metrics::MetricsError> {
        self.services.metrics.histogram_observe(&name, &metric_labels(l), &self.host_labels, value).map_err(metrics_error)
    }

    fn record_batch(&mut self, updates: Vec<wit_metrics::Update>) -> Vec<Result<(), wit_metrics::MetricsError>> {
        record_batch(&self.services.metrics, updates, &self.host_labels)
    }
}

// ---- edgecell:inference/runner -------------------------------------------------------------

impl wit_inference::Host for HostState {
    fn list_models(&mut self) -> Vec<wit_inference::ModelInfo> {
        self.services.inference.list_models()
    }

    fn model_metadata(&mut self, name: String) -> Result<wit_inference::ModelInfo, wit_inference::InferenceError> {
        self.services.inference.model_metadata(&name)
    }

    fn run(&mut self, model: String, inputs: Vec<wit_inference::Tensor>) -> Result<Vec<wit_inference::Tensor>, wit_inference::InferenceError> {
        self.services.inference.run(&model, inputs)
    }

    fn run_batch(
        &mut self,
        model: String,
        batch: Vec<Vec<wit_inference::Tensor>>,
    ) -> Vec<Result<Vec<wit_inference::Tensor>, wit_inference::InferenceError>> {
        batch.into_iter().map(|inputs| self.services.inference.run(&model, inputs)).collect()
    }
}

// ---- wasmcloud:messaging/consumer ----------------------------------------------------------

impl crate::bindings::capabilities::wasmcloud::messaging::types::Host for HostState {}

impl wit_consumer::Host for HostState {
    fn request(&mut self, subject: String, body: Vec<u8>, timeout_ms: u32) -> Result<BrokerMessage, String> {
        self.services.bus.request(&self.component, &subject, body, Duration::from_millis(u64::from(timeout_ms)))
    }

    fn publish(&mut self, msg: BrokerMessage) -> Result<(), String> {
        self.services.bus.publish(&self.component, msg)
    }
}
