//! The in-process provider cores an embedded host links actor imports to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgecell_kv_cache::{Cache, CacheConfig};
use edgecell_metrics::Registry;

use crate::bindings::BrokerMessage;
use crate::bindings::capabilities::edgecell::inference::runner as wit_inference;

/// The inference capability as the host sees it (implemented by the inference provider core).
pub trait InferenceBackend: Send + Sync {
    fn list_models(&self) -> Vec<wit_inference::ModelInfo>;
    fn model_metadata(&self, name: &str) -> Result<wit_inference::ModelInfo, wit_inference::InferenceError>;
    fn run(&self, model: &str, inputs: Vec<wit_inference::Tensor>) -> Result<Vec<wit_inference::Tensor>, wit_inference::InferenceError>;
}

/// A registry with no models: every run is `unknown-model`. Used when no model directory is
/// configured.
#[derive(Debug, Default)]
pub struct NoModels;

impl InferenceBackend for NoModels {
    fn list_models(&self) -> Vec<wit_inference::ModelInfo> {
        Vec::new()
    }

    fn model_metadata(&self, name: &str) -> Result<wit_inference::ModelInfo, wit_inference::InferenceError> {
        Err(wit_inference::InferenceError::UnknownModel(name.to_owned()))
    }

    fn run(&self, model: &str, _inputs: Vec<wit_inference::Tensor>) -> Result<Vec<wit_inference::Tensor>, wit_inference::InferenceError> {
        Err(wit_inference::InferenceError::UnknownModel(model.to_owned()))
    }
}

/// Where `wasmcloud:messaging/consumer` calls go.
pub trait Bus: Send + Sync {
    fn publish(&self, from: &str, msg: BrokerMessage) -> Result<(), String>;
    fn request(&self, from: &str, subject: &str, body: Vec<u8>, timeout: Duration) -> Result<BrokerMessage, String>;
}

/// A message an actor published, as recorded by [`LocalBus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub from: String,
    pub subject: String,
    pub body: Vec<u8>,
}

/// The bus of a host with no NATS connection: published messages are kept (up to a bound) for
/// the caller to read; requests fail because nothing can answer them.
#[derive(Debug)]
pub struct LocalBus {
    messages: Mutex<VecDeque<Published>>,
    capacity: usize,
    dropped: Mutex<u64>,
}

impl LocalBus {
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self { messages: Mutex::new(VecDeque::new()), capacity: capacity.max(1), dropped: Mutex::new(0) }
    }

    /// Take every message published so far.
    pub fn drain(&self) -> Vec<Published> {
        let mut m = self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.drain(..).collect()
    }

    /// Messages discarded because the buffer was full (oldest first).
    pub fn dropped(&self) -> u64 {
        *self.dropped.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Bus for LocalBus {
    fn publish(&self, from: &str, msg: BrokerMessage) -> Result<(), String> {
        let mut m = self.messages.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if m.len() >= self.capacity {
            m.pop_front();
            *self.dropped.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        }
        m.push_back(Published { from: from.to_owned(), subject: msg.subject, body: msg.body });
        Ok(())
    }

    fn request(&self, _from: &str, subject: &str, _body: Vec<u8>, _timeout: Duration) -> Result<BrokerMessage, String> {
        Err(format!("no responders for {subject}: this host has no NATS connection"))
    }
}

/// The provider cores shared by every actor of one host.
pub struct Services {
    pub cache: Arc<Cache>,
    pub metrics: Arc<Registry>,
    pub inference: Arc<dyn InferenceBackend>,
    pub bus: Arc<dyn Bus>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").field("cache", &self.cache.config()).finish_non_exhaustive()
    }
}

impl Services {
    /// Cache and metrics with the given cache config, no models, a local bus.
    #[must_use]
    pub fn local(cache: CacheConfig) -> (Self, Arc<LocalBus>) {
        let bus = Arc::new(LocalBus::new(100_000));
        let services = Self {
            cache: Arc::new(Cache::new(cache)),
            metrics: Arc::new(Registry::default()),
            inference: Arc::new(NoModels),
            bus: Arc::clone(&bus) as Arc<dyn Bus>,
        };
        (services, bus)
    }
}
