//! Time and duration arguments.
//!
//! `--since`/`--until` are checked here only to catch typos early; the
//! string itself goes to the server unchanged, which is the one place that
//! interprets it (so "15m ago" means the server's now, not ours).

use faultline_model::parse_rfc3339_micros;
use std::time::Duration;

const TIME_HELP: &str = "expected an RFC 3339 time such as 2024-05-01T12:00:00Z, epoch seconds or \
milliseconds, or a duration ago such as 30s, 15m, 2h, 7d";

/// clap value parser for `--since`/`--until`: returns the argument trimmed
/// when it has one of the forms the server accepts.
pub fn validate(s: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(TIME_HELP.to_string());
    }
    let is_epoch = {
        let (int, frac) = t.split_once('.').unwrap_or((t, "0"));
        !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b.is_ascii_digit())
    };
    if is_epoch || parse_rfc3339_micros(t).is_some() || parse_duration(t).is_ok() {
        Ok(t.to_string())
    } else {
        Err(TIME_HELP.to_string())
    }
}

/// Parses durations such as `500ms`, `30s`, `15m`, `2h`, `7d`, `1w` and
/// sums such as `1h30m`. A bare `0` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let bad = || format!("invalid duration {s:?} (expected e.g. 500ms, 30s, 15m, 2h, 7d)");
    let mut rest = t;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit_secs_or_ms = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3_600).ok_or_else(bad)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
            "w" => Duration::from_secs(n.checked_mul(604_800).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = total.checked_add(unit_secs_or_ms).ok_or_else(bad)?;
    }
    Ok(total)
}

/// Short human form of a duration: `850ms`, `4.2s`, `3m05s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        if s < 3_600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_forms_the_server_documents() {
        for ok in [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.123456+02:00",
            "1714564800",
            "1714564800123",
            "1714564800.5",
            "15m",
            "2h",
            "7d",
            "1h30m",
            " 30s ",
        ] {
            assert_eq!(validate(ok), Ok(ok.trim().to_string()), "{ok}");
        }
        for bad in [
            "",
            "yesterday",
            "15 minutes",
            "-5m",
            "2024-05-01",
            "12.",
            "m15",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_and_format() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_duration(Duration::from_secs(7_260)), "2h01m");
    }
}
