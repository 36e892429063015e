//! Per-invocation metrics buffering for the edgecell actors.
//!
//! On a lattice every call an actor makes on `edgecell:metrics/recorder` is a round trip to the
//! metrics provider over NATS; a video frame used to make about seven of them. The actors
//! instead queue their updates while an export runs and send them with one `record-batch` call
//! when the export returns.
//!
//! Each actor has its own `wit-bindgen` types, so this is a macro expanded in the actor, where
//! a module named `recorder` (the actor's `edgecell:metrics/recorder` import) must be in scope.
//! It defines:
//!
//! - `record(update: recorder::Update)` — queues one update for this invocation;
//! - `FlushMetrics` — a guard to bind at the top of every export (`let _flush = FlushMetrics;`):
//!   when it drops, on every return path, the queued updates go out in one `record-batch`.
//!
//! Metrics are best effort: a failed batch (provider not linked, lost reply) is dropped and
//! never fails the invocation that produced it. A batch holds at most the provider's limit of
//! updates (1024); longer queues are sent in several calls.

/// The most updates one `record-batch` call carries (the provider's `batch-too-large` limit).
pub const MAX_BATCH: usize = 1024;

/// Expands the per-invocation metrics buffer (`record`, `FlushMetrics`) in the calling actor.
#[macro_export]
macro_rules! buffered_metrics {
    () => {
        ::std::thread_local! {
            static PENDING_METRICS: ::std::cell::RefCell<::std::vec::Vec<recorder::Update>> =
                const { ::std::cell::RefCell::new(::std::vec::Vec::new()) };
        }

        /// Queues one metrics update; it is recorded when the export's `FlushMetrics` drops.
        fn record(update: recorder::Update) {
            PENDING_METRICS.with(|p| p.borrow_mut().push(update));
        }

        /// Records the invocation's queued metrics when dropped (bind it first in every export).
        struct FlushMetrics;

        impl ::std::ops::Drop for FlushMetrics {
            fn drop(&mut self) {
                let batch = PENDING_METRICS.with(|p| ::std::mem::take(&mut *p.borrow_mut()));
                for chunk in batch.chunks($crate::MAX_BATCH) {
                    // best effort: a metrics failure must not fail the invocation
                    let _ = recorder::record_batch(chunk);
                }
            }
        }
    };
}
