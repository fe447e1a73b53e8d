//! Reads the server's `/metrics` (Prometheus text) to explain the figures:
//! how long group commits took during a phase, how many entries were stored.

use std::collections::HashMap;

/// One scrape: series (name with labels, as printed) → value.
#[derive(Debug, Default, Clone)]
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut map = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            // `name{labels} value` or `name value`; labels here hold no spaces.
            let parsed = line
                .rsplit_once(' ')
                .and_then(|(series, value)| Some((series, value.trim().parse::<f64>().ok()?)));
            if let Some((series, v)) = parsed {
                map.insert(series.trim().to_string(), v);
            }
        }
        Scrape(map)
    }

    pub async fn fetch(http: &reqwest::Client, base: &str) -> Scrape {
        let text = match http.get(format!("{base}/metrics")).send().await {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        Scrape::parse(&text)
    }

    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.get(series).copied()
    }

    /// The change of histogram `name` from `before` to `self`.
    pub fn histogram_since(&self, before: &Scrape, name: &str) -> Option<HistogramDelta> {
        let delta = |series: &str| {
            let now = self.get(series)?;
            Some(now - before.get(series).unwrap_or(0.0))
        };
        let count = delta(&format!("{name}_count"))?;
        let sum = delta(&format!("{name}_sum"))?;
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = self
            .0
            .keys()
            .filter_map(|k| {
                let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, delta(k)?))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(HistogramDelta {
            count,
            sum,
            buckets,
        })
    }
}

/// Observations of one histogram over a phase.
#[derive(Debug, Clone)]
pub struct HistogramDelta {
    pub count: f64,
    pub sum: f64,
    /// (upper bound in seconds, cumulative count), ascending.
    pub buckets: Vec<(f64, f64)>,
}

impl HistogramDelta {
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count * 1e3)
    }

    /// The upper bound (ms) of the bucket holding quantile `q`.
    pub fn quantile_bound_ms(&self, q: f64) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map(|(bound, _)| bound * 1e3)
    }

    /// `"n=812 mean=3.1 ms p50≤5 ms p99≤25 ms"`.
    pub fn describe(&self) -> String {
        let bound = |q| {
            self.quantile_bound_ms(q).map_or("?".to_string(), |b| {
                if b.is_finite() {
                    format!("≤{b} ms")
                } else {
                    "above the largest bucket".to_string()
                }
            })
        };
        format!(
            "n={} mean={:.2} ms p50{} p99{}",
            self.count,
            self.mean_ms().unwrap_or(0.0),
            bound(0.5),
            bound(0.99)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# TYPE faultline_batch_commit_seconds histogram
faultline_batch_commit_seconds_bucket{le=\"0.005\"} 1
faultline_batch_commit_seconds_bucket{le=\"0.05\"} 2
faultline_batch_commit_seconds_bucket{le=\"+Inf\"} 2
faultline_batch_commit_seconds_sum 0.02
faultline_batch_commit_seconds_count 2
faultline_entries_stored_total 200
";
    const AFTER: &str = "\
faultline_batch_commit_seconds_bucket{le=\"0.005\"} 91
faultline_batch_commit_seconds_bucket{le=\"0.05\"} 101
faultline_batch_commit_seconds_bucket{le=\"+Inf\"} 102
faultline_batch_commit_seconds_sum 0.52
faultline_batch_commit_seconds_count 102
faultline_entries_stored_total 10200
";

    #[test]
    fn histogram_deltas() {
        let before = Scrape::parse(BEFORE);
        let after = Scrape::parse(AFTER);
        assert_eq!(after.get("faultline_entries_stored_total"), Some(10200.0));
        let h = after
            .histogram_since(&before, "faultline_batch_commit_seconds")
            .expect("the histogram");
        assert_eq!(h.count, 100.0);
        assert!((h.mean_ms().expect("a mean") - 5.0).abs() < 1e-9);
        assert_eq!(h.quantile_bound_ms(0.5), Some(5.0));
        assert_eq!(h.quantile_bound_ms(0.99), Some(50.0));
        assert_eq!(h.quantile_bound_ms(1.0), Some(f64::INFINITY));
        assert!(Scrape::default().histogram_since(&before, "x").is_none());
    }
}
