//! A fixed pool of worker threads running requests from a bounded queue.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::error::InferenceError;
use crate::model::Model;
use crate::registry::ModelRegistry;
use crate::stats::{PoolStats, StatsInner};
use crate::tensor::{ModelInfo, Tensor};

/// Pool sizing and admission limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// Worker threads; 0 = one per available core.
    pub workers: usize,
    /// Requests that may wait in the queue before `Busy` is returned.
    pub queue_capacity: usize,
    /// Largest accepted request (sum of input payload bytes).
    pub max_request_bytes: u64,
}

impl Default for PoolConfig {
    /// One worker per core, 64 queued requests, 64 MiB per request.
    fn default() -> Self {
        Self {
            workers: 0,
            queue_capacity: 64,
            max_request_bytes: 64 << 20,
        }
    }
}

impl PoolConfig {
    /// Most requests that may wait: the queue's slots are allocated up front.
    pub const MAX_QUEUE: usize = 4096;

    /// Checks the settings against what the pool can start with on this machine: at most
    /// four workers per core (256 at most), a queue of 1..=[`Self::MAX_QUEUE`], a request
    /// limit of at least one byte.
    ///
    /// # Errors
    /// What is out of range, in words.
    pub fn check(&self) -> Result<(), String> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let max_workers = (4 * cores).min(256);
        if self.workers > max_workers {
            return Err(format!("inference workers must be 0 (one per core) ..= {max_workers} on this machine, got {}", self.workers));
        }
        if self.queue_capacity == 0 || self.queue_capacity > Self::MAX_QUEUE {
            return Err(format!("inference queue capacity must be 1..={}, got {}", Self::MAX_QUEUE, self.queue_capacity));
        }
        if self.max_request_bytes == 0 {
            return Err("inference max request bytes must be at least 1".into());
        }
        Ok(())
    }
}

type Reply = Result<Vec<Tensor>, InferenceError>;

struct Job {
    model: Arc<Model>,
    inputs: Vec<Tensor>,
    submitted: Instant,
    reply: mpsc::Sender<Reply>,
}

/// A request accepted by the pool; wait on it for the outputs.
#[derive(Debug)]
pub struct Pending {
    rx: Receiver<Reply>,
}

impl Pending {
    /// Blocks until the request has run.
    ///
    /// # Errors
    /// The request's error, or [`InferenceError::Backend`] if the pool went away.
    pub fn wait(self) -> Reply {
        self.rx
            .recv()
            .unwrap_or_else(|_| Err(InferenceError::Backend("inference pool shut down".into())))
    }

    /// The result if it is ready.
    #[must_use]
    pub fn try_wait(&self) -> Option<Reply> {
        self.rx.try_recv().ok()
    }
}

/// Runs models from a [`ModelRegistry`] on worker threads. Blocking API: async callers should
/// call it from a blocking task (e.g. `tokio::task::spawn_blocking`) or use [`Self::submit`].
pub struct InferencePool {
    registry: Arc<ModelRegistry>,
    cfg: PoolConfig,
    workers: usize,
    tx: Option<SyncSender<Job>>,
    handles: Vec<JoinHandle<()>>,
    stats: Arc<StatsInner>,
}

impl std::fmt::Debug for InferencePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferencePool")
            .field("cfg", &self.cfg)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, stats: &StatsInner) {
    loop {
        let job = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let model = job.model;
        let inputs = job.inputs;
        // A panic inside the backend must not take the worker down or trap the caller.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| model.run_validated(inputs)))
            .unwrap_or_else(|_| Err(InferenceError::Backend("backend panicked".into())));
        stats.run_latency.record(start.elapsed());
        stats.latency.record(job.submitted.elapsed());
        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        match &result {
            Ok(_) => stats.completed.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                warn!(model = %model.info().name, error = %e, "inference failed");
                stats.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        // The caller may have given up; that is not an error.
        let _ = job.reply.send(result);
    }
}

impl InferencePool {
    /// Starts the workers.
    ///
    /// # Errors
    /// [`InferenceError::Backend`] when the settings are out of range ([`PoolConfig::check`])
    /// or a worker thread cannot be spawned.
    pub fn new(registry: Arc<ModelRegistry>, cfg: PoolConfig) -> Result<Self, InferenceError> {
        cfg.check().map_err(InferenceError::Backend)?;
        let workers = if cfg.workers == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            cfg.workers
        };
        let (tx, rx) = mpsc::sync_channel::<Job>(cfg.queue_capacity);
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(StatsInner::default());
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            let stats = Arc::clone(&stats);
            let h = std::thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || worker(&rx, &stats))
                .map_err(|e| InferenceError::Backend(format!("spawning worker: {e}")))?;
            handles.push(h);
        }
        Ok(Self {
            registry,
            cfg,
            workers,
            tx: Some(tx),
            handles,
            stats,
        })
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    /// `list-models`.
    #[must_use]
    pub fn list_models(&self) -> Vec<ModelInfo> {
        self.registry.list()
    }

    /// `model-metadata`.
    ///
    /// # Errors
    /// [`InferenceError::UnknownModel`].
    pub fn model_metadata(&self, name: &str) -> Result<ModelInfo, InferenceError> {
        self.registry.metadata(name)
    }

    /// Validates a request and queues it without waiting for the result.
    ///
    /// # Errors
    /// Validation errors (unknown model, inputs, shape, dtype, length), [`InferenceError::TooLarge`],
    /// [`InferenceError::Busy`] when the queue is full.
    pub fn submit(&self, model: &str, inputs: Vec<Tensor>) -> Result<Pending, InferenceError> {
        let result = self.submit_inner(model, inputs);
        match &result {
            Err(InferenceError::Busy) => self.stats.rejected_busy.fetch_add(1, Ordering::Relaxed),
            // (a pool shutting down is not the request's fault)
            Err(InferenceError::Backend(_)) | Ok(_) => 0,
            Err(_) => self.stats.rejected_invalid.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    fn submit_inner(&self, model: &str, inputs: Vec<Tensor>) -> Result<Pending, InferenceError> {
        let bytes: u64 = inputs.iter().map(|t| t.data.byte_len() as u64).sum();
        if bytes > self.cfg.max_request_bytes {
            return Err(InferenceError::TooLarge(bytes));
        }
        let model = self.registry.get(model)?;
        let inputs = model.validate(inputs)?;
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| InferenceError::Backend("inference pool shut down".into()))?;
        let (reply, rx) = mpsc::channel();
        // Count before sending so a fast worker never decrements below zero.
        self.stats.queue_depth.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(Job {
            model,
            inputs,
            submitted: Instant::now(),
            reply,
        }) {
            Ok(()) => Ok(Pending { rx }),
            Err(e) => {
                self.stats.queue_depth.fetch_sub(1, Ordering::Relaxed);
                match e {
                    TrySendError::Full(_) => Err(InferenceError::Busy),
                    TrySendError::Disconnected(_) => {
                        Err(InferenceError::Backend("inference pool shut down".into()))
                    }
                }
            }
        }
    }

    /// `run`: one request, blocking until it completes.
    ///
    /// # Errors
    /// As [`Self::submit`], plus [`InferenceError::Backend`].
    pub fn run(&self, model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InferenceError> {
        self.submit(model, inputs)?.wait()
    }

    /// `run-batch`: independent requests spread over the workers; results in order, each with
    /// its own outcome (a full queue makes the remaining items `Busy`).
    #[must_use]
    pub fn run_batch(
        &self,
        model: &str,
        batch: Vec<Vec<Tensor>>,
    ) -> Vec<Result<Vec<Tensor>, InferenceError>> {
        let pending: Vec<Result<Pending, InferenceError>> = batch
            .into_iter()
            .map(|inputs| self.submit(model, inputs))
            .collect();
        pending
            .into_iter()
            .map(|p| p.and_then(Pending::wait))
            .collect()
    }

    /// Metrics snapshot.
    #[must_use]
    pub fn stats(&self) -> PoolStats {
        let s = &self.stats;
        PoolStats {
            workers: self.workers,
            queue_depth: s.queue_depth.load(Ordering::Relaxed),
            queue_capacity: self.cfg.queue_capacity.max(1),
            in_flight: s.in_flight.load(Ordering::Relaxed),
            completed: s.completed.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            rejected_busy: s.rejected_busy.load(Ordering::Relaxed),
            rejected_invalid: s.rejected_invalid.load(Ordering::Relaxed),
            latency: s.latency.snapshot(),
            run_latency: s.run_latency.snapshot(),
        }
    }
}

impl Drop for InferencePool {
    fn drop(&mut self) {
        // Closing the channel ends the workers once the queue is drained.
        self.tx = None;
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
