//! Time and duration arguments.
//!
//! `--since`/`--until` are checked here only to catch typos early, with the
//! very parser the server uses; the string itself goes to the server
//! unchanged, which is the one place that interprets it (so "15m" means 15
//! minutes before the server's clock, not ours).

use faultline_model::{now_micros, parse_time_bound};
use std::time::Duration;

const TIME_HELP: &str = "expected an RFC 3339 time such as 2024-05-01T12:00:00Z, epoch seconds or \
milliseconds, or a duration ago such as 30s, 15m, 2h, 7d";

/// clap value parser for `--since`/`--until`: returns the argument trimmed
/// when it has one of the forms the server accepts.
pub fn validate(s: &str) -> Result<String, String> {
    let t = s.trim();
    match parse_time_bound(t, now_micros()) {
        Some(_) => Ok(t.to_string()),
        None => Err(TIME_HELP.to_string()),
    }
}

/// clap value parser for durations such as `500ms`, `30s`, `15m`, `2h`,
/// `1h30m` (the model's syntax); a bare `0` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    faultline_model::parse_duration(s)
        .ok_or_else(|| format!("invalid duration {s:?} (expected e.g. 500ms, 30s, 15m, 2h)"))
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
            "15m",
            "2h",
            "7d",
            "1h30m",
            " 30s ",
        ] {
            assert_eq!(validate(ok), Ok(ok.trim().to_string()), "{ok}");
        }
        for bad in ["", "yesterday", "15 minutes", "-5m", "2024-05-01", "m15"] {
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
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(format_duration(Duration::from_secs(7_260)), "2h01m");
    }
}
