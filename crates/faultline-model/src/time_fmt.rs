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
    let s = s.trim();
    parse_common_utc(s.as_bytes()).or_else(|| parse_general(s))
}

/// Any RFC 3339 timestamp, with the `time` crate's parser.
fn parse_general(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000).ok()
}

/// The form nearly every client sends, `YYYY-MM-DDTHH:MM:SS[.f…]Z` with up
/// to 9 fraction digits, without the general parser (a tenth of the decode
/// of an entry). `None` for anything else, which the general parser then
/// reads (or refuses): the result is the same as its.
fn parse_common_utc(b: &[u8]) -> Option<i64> {
    let digits = |at: usize, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(at..at + n)? {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            v = v * 10 + u32::from(d);
        }
        Some(v)
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let nanos = match b.len() {
        20 => 0,
        n if (22..=30).contains(&n) && b[19] == b'.' => {
            let k = n - 21;
            digits(20, k)? * 10u32.pow(9 - k as u32)
        }
        _ => return None,
    };
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let seconds = days_from_civil(i64::from(year), month, day) * 86_400
        + i64::from(hour * 3_600 + minute * 60 + second);
    let total_nanos = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    i64::try_from(total_nanos / 1_000).ok()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    /// The general parser's answer, for comparison.
    fn general(s: &str) -> Option<i64> {
        parse_general(s.trim())
    }

    #[test]
    fn common_utc_form_agrees_with_the_general_parser() {
        for s in [
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.9999995Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2000-02-29T12:00:00.5Z",
            "1900-02-29T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:60:00Z",
            "2024-12-31T23:59:60Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.1234567890Z",
            "2024-01-01t00:00:00z",
            "2024-01-01T00:00:00+01:00",
            "2024-01-01T00:00:00",
            " 2024-01-01T00:00:00.25Z\n",
            "2024-1-01T00:00:00Z",
            "+2024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_micros(s), general(s), "{s:?}");
        }
        // The fast path is the one taken for the usual form.
        assert_eq!(
            parse_common_utc(b"2000-02-29T12:00:00.5Z"),
            general("2000-02-29T12:00:00.5Z")
        );
        assert!(parse_common_utc(b"1969-12-31T23:59:59.9999995Z").is_some());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]
        #[test]
        fn any_common_utc_timestamp_agrees(
            s in "[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,10})?[Zz]?"
        ) {
            proptest::prop_assert_eq!(parse_rfc3339_micros(&s), general(&s), "{:?}", s);
        }

        /// Well-formed dates and times (the fast path's own inputs).
        #[test]
        fn well_formed_utc_timestamps_agree(
            (y, mo, d) in (0u32..=9999, 1u32..=12, 1u32..=31),
            (h, mi, se) in (0u32..=23, 0u32..=59, 0u32..=59),
            frac in proptest::option::of("[0-9]{1,9}"),
        ) {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            let s = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{frac}Z");
            proptest::prop_assert_eq!(parse_rfc3339_micros(&s), general(&s), "{:?}", s);
        }
    }
}
