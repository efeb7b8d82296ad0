//! Latency summaries: percentiles of recorded durations, and batches of operations run at a
//! fixed concurrency (deploy, stop, start, delete) with their wall time and throughput.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// From latencies in microseconds (sorted here).
    pub fn from_micros(mut micros: Vec<u32>) -> Self {
        if micros.is_empty() {
            return Self::default();
        }
        micros.sort_unstable();
        let at = |q: f64| {
            // Nearest-rank percentile.
            let rank = ((q * micros.len() as f64).ceil() as usize).clamp(1, micros.len());
            f64::from(micros[rank - 1]) / 1000.0
        };
        let sum: u64 = micros.iter().map(|&m| u64::from(m)).sum();
        Self {
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            max_ms: at(1.0),
            mean_ms: sum as f64 / micros.len() as f64 / 1000.0,
        }
    }
}

pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A batch of operations run at one concurrency.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Batch {
    pub operations: usize,
    pub errors: usize,
    pub concurrency: usize,
    pub wall_s: f64,
    /// Successful operations per second of wall time.
    pub per_second: f64,
    pub latency: Latency,
    /// The first error seen, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Run `op` over `items` with at most `concurrency` in flight; time each and the whole.
pub async fn batch<T, F, Fut>(items: Vec<T>, concurrency: usize, op: F) -> Batch
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let operations = items.len();
    let started = Instant::now();
    let results: Vec<(u32, Result<(), String>)> = futures_util::stream::iter(items)
        .map(|item| {
            let fut = op(item);
            async move {
                let t = Instant::now();
                let r = fut.await;
                (micros(t.elapsed()), r)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let wall = started.elapsed().as_secs_f64();
    let mut first_error = None;
    let mut errors = 0;
    let mut ok = Vec::with_capacity(results.len());
    for (t, r) in results {
        match r {
            Ok(()) => ok.push(t),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    Batch {
        operations,
        errors,
        concurrency,
        wall_s: wall,
        per_second: if wall > 0.0 {
            ok.len() as f64 / wall
        } else {
            0.0
        },
        latency: Latency::from_micros(ok),
        first_error,
    }
}

/// flotilla ÷ raw, for throughput and the median (0 when raw is 0).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Ratio {
    /// Throughput flotilla ÷ raw: 1.0 means no overhead; the target is ≥ 0.95.
    pub throughput: f64,
    /// Median latency flotilla ÷ raw: 1.0 means no overhead.
    pub p50: f64,
    pub p99: f64,
}

impl Ratio {
    pub fn of(flotilla: &Batch, raw: &Batch) -> Self {
        let div = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        Self {
            throughput: div(flotilla.per_second, raw.per_second),
            p50: div(flotilla.latency.p50_ms, raw.latency.p50_ms),
            p99: div(flotilla.latency.p99_ms, raw.latency.p99_ms),
        }
    }
}
