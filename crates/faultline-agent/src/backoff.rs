//! Retry delays: exponential backoff with jitter, and the server's
//! `Retry-After` when it gives one. Pure: randomness comes from a small
//! seeded generator.

use std::time::Duration;

/// Longest `Retry-After` honoured (a broken proxy could say a week).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Backoff state for one queue.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// Starts at `initial`, doubles up to `max`.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
            rng: seed | 1,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The delay before the next attempt: the server's `Retry-After` when
    /// given (capped at [`MAX_RETRY_AFTER`]), else `initial * 2^attempt`
    /// capped at `max`, with "equal jitter" (between half and all of it),
    /// so many agents coming back after an outage do not retry in step.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        if let Some(ra) = retry_after {
            return ra.min(MAX_RETRY_AFTER);
        }
        let half = exp / 2;
        let span = (exp - half).as_micros().max(1) as u64;
        half + Duration::from_micros(self.next_rand() % (span + 1))
    }

    /// A success: start over.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

/// Parses `Retry-After`: delay seconds, or an HTTP date (then relative to
/// `now_unix`, the current Unix time in seconds).
pub fn parse_retry_after(value: &str, now_unix: u64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u32 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u32
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let at = days * 86_400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    Some(Duration::from_secs(
        at.saturating_sub(now_unix as i64).max(0) as u64,
    ))
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 42);
        let mut prev_cap = Duration::ZERO;
        for i in 0..12 {
            let d = b.next_delay(None);
            let cap = Duration::from_secs(1 << i.min(20)).min(Duration::from_secs(60));
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {i}: {d:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
            assert!(cap >= prev_cap);
            prev_cap = cap;
        }
        b.reset();
        assert!(b.next_delay(None) <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_differs_between_agents() {
        let delays: std::collections::HashSet<Duration> = (1..20u64)
            .map(|seed| {
                let mut b =
                    Backoff::new(Duration::from_secs(8), Duration::from_secs(60), seed * 7919);
                b.next_delay(None)
            })
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn retry_after_wins_and_is_capped() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(1 << 30))),
            MAX_RETRY_AFTER
        );
        assert_eq!(b.attempts(), 2);
    }

    #[test]
    fn parses_retry_after_forms() {
        assert_eq!(parse_retry_after(" 7 ", 0), Some(Duration::from_secs(7)));
        // 1994-11-06 08:49:37 UTC = 784111777
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
