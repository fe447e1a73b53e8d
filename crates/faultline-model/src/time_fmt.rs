use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Microseconds since the Unix epoch, the unit faultline stores timestamps in.
pub fn now_micros() -> i64 {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000) as i64
}

/// Formats microseconds since the epoch as RFC 3339 UTC with microseconds.
pub fn format_rfc3339_micros(micros: i64) -> String {
    let nanos = i128::from(micros) * 1_000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let t = t.to_offset(UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.microsecond()
            )
        }
        Err(_) => micros.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into microseconds since the epoch.
pub fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let s = "2024-03-01T12:34:56.123456Z";
        let m = parse_rfc3339_micros(s).unwrap();
        assert_eq!(format_rfc3339_micros(m), s);
        assert_eq!(
            parse_rfc3339_micros("2024-03-01T13:34:56.123456+01:00"),
            Some(m)
        );
        assert_eq!(parse_rfc3339_micros("yesterday"), None);
    }
}
