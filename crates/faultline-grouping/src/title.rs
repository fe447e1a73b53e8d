//! Human titles for agent incidents, as the seed's tk-incidentreporter made
//! them: `"<user_login> - <ErrorName or short message>"`.
//!
//! The title is for people (ticket subjects). It is never a grouping key:
//! two incidents are the same problem when their fingerprints are equal.

use crate::hash::hash_bytes;

/// Longest short message kept in a title, in characters.
pub const SHORT_MESSAGE_CHARS: usize = 80;

/// `"<user_login> - <ErrorName or short message>"` for the matched log line.
///
/// The error name is the first `…Error`/`…Exception` class named in the
/// line (simple name: `IllegalStateException` for
/// `java.lang.IllegalStateException`); without one, the line with its
/// leading timestamp and bracketed prefixes stripped, whitespace collapsed,
/// cut to [`SHORT_MESSAGE_CHARS`] characters.
pub fn incident_title(user_login: &str, line: &str) -> String {
    let stripped = strip_log_prefix(line);
    let core = match error_name(stripped) {
        Some(name) => name.to_owned(),
        None => short_text(stripped, SHORT_MESSAGE_CHARS),
    };
    format!("{} - {}", sanitize(user_login), sanitize(&core))
}

/// Strips a leading timestamp (`2016-04-25 08:56:12,413`, ISO 8601) and
/// the bracketed prefixes that follow (`[44862 ERROR sgtk.core.log]`).
pub fn strip_log_prefix(line: &str) -> &str {
    let mut t = line.trim_start();
    t = strip_timestamp(t).trim_start();
    while let Some(rest) = t.strip_prefix('[') {
        match rest.find(']') {
            Some(p) => t = rest[p + 1..].trim_start(),
            None => break,
        }
    }
    t
}

fn strip_timestamp(t: &str) -> &str {
    let b = t.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_digit());
    // YYYY-MM-DD
    if !((0..4).all(d)
        && b.get(4) == Some(&b'-')
        && d(5)
        && d(6)
        && b.get(7) == Some(&b'-')
        && d(8)
        && d(9))
    {
        return t;
    }
    let mut i = 10;
    if matches!(b.get(i), Some(b' ' | b'T')) && d(i + 1) {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || matches!(b[i], b':' | b'.' | b',')) {
            i += 1;
        }
        if b.get(i) == Some(&b'Z') {
            i += 1;
        } else if matches!(b.get(i), Some(b'+' | b'-')) && d(i + 1) {
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b':') {
                i += 1;
            }
        }
    }
    &t[i..]
}

/// The first identifier ending in `Error` or `Exception` (simple name).
pub fn error_name(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let w = &text[s..i];
            if (w.ends_with("Error") && w.len() > 5) || (w.ends_with("Exception") && w.len() > 9) {
                return Some(w);
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Whitespace collapsed, cut to `max` characters; a short hash of the text
/// when nothing is left.
fn short_text(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (n, w) in text.split_whitespace().enumerate() {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    if out.is_empty() {
        return format!("{:016x}", hash_bytes(text.as_bytes()))[..10].to_owned();
    }
    match out.char_indices().nth(max) {
        Some((cut, _)) => out[..cut].to_owned(),
        None => out,
    }
}

fn sanitize(s: &str) -> String {
    s.split(['\r', '\n', '\t'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_name_wins() {
        assert_eq!(
            incident_title(
                "alice",
                "2016-04-25 08:56:12,413 [44862 ERROR sgtk.core.log] ValueError: bad shot"
            ),
            "alice - ValueError"
        );
        assert_eq!(
            incident_title("bob", "boom java.lang.IllegalStateException: x"),
            "bob - IllegalStateException"
        );
    }

    #[test]
    fn short_message_without_error_name() {
        assert_eq!(
            incident_title(
                "bob",
                "2016-04-25 08:56:12,413 [44862 ERROR tk-maya]   Unknown error:\tfile open failed"
            ),
            "bob - Unknown error: file open failed"
        );
        let long = "xy".repeat(100);
        let t = incident_title("carol\n", &long);
        assert_eq!(t.len(), "carol - ".len() + 80);
    }

    #[test]
    fn empty_message_gets_a_hash() {
        let t = incident_title("dave", "2016-04-25 08:56:12 [1 ERROR x]");
        assert_eq!(t.len(), "dave - ".len() + 10);
    }

    #[test]
    fn strips_iso_timestamps() {
        assert_eq!(
            strip_log_prefix("2024-01-02T03:04:05.123Z [a] [b] msg"),
            "msg"
        );
        assert_eq!(strip_log_prefix("no prefix"), "no prefix");
    }
}
