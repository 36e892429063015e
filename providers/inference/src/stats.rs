//! Pool metrics: queue depth, counters and latency histograms (lock-free counters).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bucket bounds in microseconds (the last bucket is open-ended).
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 50_000, 75_000, 100_000, 150_000, 200_000,
    300_000, 500_000, 1_000_000, 2_000_000,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Histogram {
    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let idx = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        if let Some(c) = self.counts.get(idx) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LatencySnapshot {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let count = counts.iter().sum();
        let mut s = LatencySnapshot {
            bounds_us: LATENCY_BOUNDS_US.to_vec(),
            counts,
            count,
            sum_us: self.sum_us.load(Ordering::Relaxed),
            max_us: self.max_us.load(Ordering::Relaxed),
            p50_us: 0,
            p99_us: 0,
        };
        s.p50_us = s.quantile(0.5);
        s.p99_us = s.quantile(0.99);
        s
    }
}

/// A histogram snapshot. `counts[i]` counts latencies `<= bounds_us[i]` (and above the
/// previous bound); the extra last count is everything above the last bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySnapshot {
    /// Bucket upper bounds (µs).
    pub bounds_us: Vec<u64>,
    /// Counts per bucket (`bounds_us.len() + 1`).
    pub counts: Vec<u64>,
    /// Total samples.
    pub count: u64,
    /// Sum of all samples (µs).
    pub sum_us: u64,
    /// Largest sample (µs).
    pub max_us: u64,
    /// Median estimate: upper bound of the bucket holding it (µs).
    pub p50_us: u64,
    /// 99th percentile estimate (µs).
    pub p99_us: u64,
}

impl LatencySnapshot {
    /// Bucket-upper-bound estimate of quantile `q` (capped at the max seen).
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return self
                    .bounds_us
                    .get(i)
                    .copied()
                    .unwrap_or(self.max_us)
                    .min(self.max_us);
            }
        }
        self.max_us
    }

    /// Mean latency (µs).
    #[must_use]
    pub fn mean_us(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let m = if self.count == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.count as f64
        };
        m
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatsInner {
    pub(crate) queue_depth: AtomicUsize,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) rejected_busy: AtomicU64,
    pub(crate) rejected_invalid: AtomicU64,
    /// Submit → result (queue wait + run).
    pub(crate) latency: Histogram,
    /// Backend run only.
    pub(crate) run_latency: Histogram,
}

/// A snapshot of the pool's metrics, for the metrics provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Worker threads.
    pub workers: usize,
    /// Requests waiting in the queue.
    pub queue_depth: usize,
    /// Queue capacity (beyond it, requests get `Busy`).
    pub queue_capacity: usize,
    /// Requests being run right now.
    pub in_flight: usize,
    /// Requests that completed successfully.
    pub completed: u64,
    /// Requests whose run failed in the backend.
    pub failed: u64,
    /// Requests rejected because the queue was full.
    pub rejected_busy: u64,
    /// Requests rejected by validation (unknown model, shape, dtype, size).
    pub rejected_invalid: u64,
    /// Submit → result latency.
    pub latency: LatencySnapshot,
    /// Backend run latency.
    pub run_latency: LatencySnapshot,
}
