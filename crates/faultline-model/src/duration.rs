use std::time::Duration;

/// Parses a human duration: a number followed by `ms`, `s`, `m`, `h`, `d` or
/// `w` (e.g. `500ms`, `15m`, `7d`). Several parts may follow each other
/// (`1h30m`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u128 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(unit_ms)?)?;
    }
    Some(Duration::from_millis(u64::try_from(total).ok()?))
}

/// Parses a query time bound into µs since the epoch: RFC 3339, an epoch
/// number (seconds, ms, µs or ns by magnitude), or a duration ago (`15m`).
pub fn parse_time_bound(s: &str, now_micros: i64) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = crate::parse_rfc3339_micros(s) {
        return Some(t);
    }
    if let Ok(n) = s.parse::<i64>() {
        if n < 0 {
            return None;
        }
        return Some(if n < 100_000_000_000 {
            n.checked_mul(1_000_000)?
        } else if n < 100_000_000_000_000 {
            n * 1_000
        } else if n < 100_000_000_000_000_000 {
            n
        } else {
            n / 1_000
        });
    }
    let ago = parse_duration(s)?;
    Some(now_micros - i64::try_from(ago.as_micros()).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("3 days"), None);
    }

    #[test]
    fn time_bounds() {
        let now = 1_700_000_000_000_000;
        assert_eq!(parse_time_bound("1700000000", now), Some(now));
        assert_eq!(parse_time_bound("1700000000000", now), Some(now));
        assert_eq!(parse_time_bound("1m", now), Some(now - 60_000_000));
        assert_eq!(parse_time_bound("2023-11-14T22:13:20Z", now), Some(now));
        assert_eq!(parse_time_bound("later", now), None);
    }
}
