//! Latency summaries and per-phase request tallies.

use std::collections::BTreeMap;
use std::time::Duration;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    /// Nearest-rank percentiles; `None` for no samples.
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let rank = |p: f64| {
            let r = (p * sorted.len() as f64).ceil() as usize;
            sorted[r.clamp(1, sorted.len()) - 1]
        };
        let total: Duration = sorted.iter().sum();
        Some(Summary {
            n: sorted.len(),
            p50_ms: ms(rank(0.50)),
            p99_ms: ms(rank(0.99)),
            max_ms: ms(sorted[sorted.len() - 1]),
            mean_ms: ms(total) / sorted.len() as f64,
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n,
            "p50_ms": round3(self.p50_ms),
            "p99_ms": round3(self.p99_ms),
            "max_ms": round3(self.max_ms),
            "mean_ms": round3(self.mean_ms),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// The result of one request as the load generator saw it.
#[derive(Debug)]
pub enum Outcome {
    /// 202 with this many entries accepted.
    Accepted(u64),
    /// Any other HTTP status.
    Status(u16),
    /// No HTTP answer (connection refused, reset, timeout).
    Failed(&'static str),
}

/// What one phase of the load generator saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Entries in 202 answers.
    pub accepted: u64,
    /// Batches answered 202.
    pub batches: u64,
    /// Requests not answered 202, by status or failure kind.
    pub errors: BTreeMap<String, u64>,
    /// Latency of every 202 answer.
    pub latencies: Vec<Duration>,
}

impl Tally {
    pub fn record(&mut self, outcome: &Outcome, latency: Duration) {
        match outcome {
            Outcome::Accepted(n) => {
                self.accepted += n;
                self.batches += 1;
                self.latencies.push(latency);
            }
            Outcome::Status(code) => *self.errors.entry(code.to_string()).or_default() += 1,
            Outcome::Failed(kind) => *self.errors.entry((*kind).to_string()).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.batches += other.batches;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.latencies.extend(other.latencies);
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `"none"` or `"503×12, timeout×1"`.
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        self.errors
            .iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn errors_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.errors
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(*v)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&samples).expect("samples");
        assert_eq!(s.n, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        let one = Summary::of(&[Duration::from_millis(3)]).expect("one sample");
        assert_eq!((one.p50_ms, one.p99_ms), (3.0, 3.0));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn tally_counts_only_202_as_accepted() {
        let mut t = Tally::default();
        t.record(&Outcome::Accepted(100), Duration::from_millis(2));
        t.record(&Outcome::Status(503), Duration::from_millis(5));
        t.record(&Outcome::Failed("timeout"), Duration::from_secs(30));
        let mut u = Tally::default();
        u.record(&Outcome::Status(503), Duration::ZERO);
        t.merge(u);
        assert_eq!((t.accepted, t.batches, t.latencies.len()), (100, 1, 1));
        assert_eq!(t.error_count(), 3);
        assert_eq!(t.errors_text(), "503×2, timeout×1");
    }
}
