//! Latency and batch-size statistics: a fixed-bucket histogram (for
//! Prometheus) plus a window of recent samples (for percentiles).

use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// A cumulative histogram with fixed upper bounds, and the last samples.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    inner: Mutex<HistogramState>,
}

#[derive(Debug, Default)]
struct HistogramState {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    recent: VecDeque<f64>,
}

/// A snapshot of a [`Histogram`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    /// `(upper bound, cumulative count)`; the last bound is `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all samples.
    pub sum: f64,
    /// Number of samples.
    pub count: u64,
}

/// Samples kept for percentiles: enough for a stable p99, bounded memory.
const WINDOW: usize = 2048;

impl Histogram {
    /// A histogram with these bucket upper bounds (ascending).
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.to_vec(),
            inner: Mutex::new(HistogramState {
                counts: vec![0; bounds.len() + 1],
                ..HistogramState::default()
            }),
        }
    }

    /// Latency buckets in seconds, 1 ms to 30 s.
    pub fn latency_seconds() -> Self {
        Self::new(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ])
    }

    /// Batch-size buckets.
    pub fn batch_sizes() -> Self {
        Self::new(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0])
    }

    /// Records one sample.
    pub fn observe(&self, value: f64) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let slot = self
            .bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(self.bounds.len());
        s.counts[slot] += 1;
        s.sum += value;
        s.count += 1;
        if s.recent.len() == WINDOW {
            s.recent.pop_front();
        }
        s.recent.push_back(value);
    }

    /// The `q` quantile (0..=1) of the recent window, if any samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if s.recent.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = s.recent.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }

    /// Cumulative buckets, sum and count.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(s.counts.len());
        for (i, count) in s.counts.iter().enumerate() {
            cumulative += count;
            buckets.push((
                self.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                cumulative,
            ));
        }
        HistogramSnapshot {
            buckets,
            sum: s.sum,
            count: s.count,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 2.0, 3.0, 50.0] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets, vec![(1.0, 1), (10.0, 3), (f64::INFINITY, 4)]);
        assert_eq!(h.quantile(0.5), Some(2.0));
        assert_eq!(h.quantile(1.0), Some(50.0));
    }
}
