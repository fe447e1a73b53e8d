//! Parsing a record (one line, or a line with its traceback) into level,
//! timestamp, logger, pid and message.
//!
//! Formats: ShotGrid Toolkit (`%(asctime)s [%(process)d %(levelname)s
//! %(name)s] %(message)s`), Python logging defaults (`LEVEL:logger:msg`
//! and `asctime - name - LEVEL - msg`), log4j / logback patterns
//! (`date [thread] LEVEL logger - msg` and relatives), syslog (RFC 3164 and
//! 5424, level from the priority), JSON lines. What matches none of them is
//! kept as a plain message (level taken from a level word near the start,
//! when there is one). Pure.

use std::str::FromStr;
use std::sync::LazyLock;

use faultline_model::Level;
use regex::Regex;

/// The format of a source's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Try every format.
    Auto,
    /// ShotGrid Toolkit.
    Shotgrid,
    /// Python logging defaults.
    Python,
    /// log4j / logback.
    Log4j,
    /// syslog.
    Syslog,
    /// JSON objects, one per line.
    Json,
    /// No structure: the line is the message.
    Plain,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Format::Auto,
            "shotgrid" | "shotgun" | "tk" => Format::Shotgrid,
            "python" => Format::Python,
            "log4j" | "logback" => Format::Log4j,
            "syslog" => Format::Syslog,
            "json" => Format::Json,
            "plain" => Format::Plain,
            o => {
                return Err(format!(
                    "unknown format {o:?} (expected auto, shotgrid, python, log4j, syslog, json or plain)"
                ));
            }
        })
    }
}

/// What a record says about itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// Level, when the record names one.
    pub level: Option<Level>,
    /// Timestamp as written.
    pub timestamp: Option<String>,
    /// Timestamp in µs since the epoch, when it carries a zone (RFC 3339,
    /// epoch numbers); local times without zone are not converted.
    pub ts_micros: Option<i64>,
    /// Logger name.
    pub logger: Option<String>,
    /// Process id.
    pub pid: Option<u32>,
    /// The message: the first line without its header, then the
    /// continuation lines.
    pub message: String,
    /// Other fields of a JSON line (scalars as text).
    pub attributes: Vec<(String, String)>,
}

const TS: &str = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?";
const LEVELS: &str = r"TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|FATAL|SEVERE";

/// What [`shotgrid_fields`] reads (the reference of its test).
#[cfg(test)]
static SHOTGRID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^({TS}) \[(\d+) ([A-Z]+) ([^\]]*)\] ?(.*)$")).expect("valid regex")
});
static PY_DEFAULT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL):([^:]*):(.*)$")
        .expect("valid regex")
});
static PY_DASHES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^({TS}) - (\S+) - ({LEVELS}) - (.*)$")).expect("valid regex")
});
/// log4j / logback: `date|time [thread] LEVEL logger - msg`,
/// `date LEVEL [thread] logger - msg`, `date LEVEL logger: msg`, …
static LOG4J: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^\[?((?:{TS})|(?:\d{{2}}:\d{{2}}:\d{{2}}(?:[.,]\d+)?))\]?\s+(?:\[([^\]]*)\]\s+)?({LEVELS})\s+(?:\[([^\]]*)\]\s+)?(?:(\S+?)\s*(?:-|:)\s+)?(.*)$"
    ))
    .expect("valid regex")
});
static SYSLOG_3164: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:<(\d{1,3})>)?((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2}) (\S+) ([^:\[\s]+)(?:\[(\d+)\])?: ?(.*)$",
    )
    .expect("valid regex")
});
static SYSLOG_5424: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) ?(.*)$")
        .expect("valid regex")
});
static LOOSE_LEVEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?:^|[\s\[|(<])({LEVELS})(?:[\]\s:|)>]|$)")).expect("valid regex")
});

/// Parses a record's text (first line = header, rest = continuation).
pub fn parse(format: Format, text: &str) -> Parsed {
    let (first, rest) = match text.find('\n') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let first = first.strip_suffix('\r').unwrap_or(first);
    let mut p = match format {
        Format::Auto => parse_auto(first),
        Format::Shotgrid => shotgrid(first).or_else(|| python(first)),
        Format::Python => python(first),
        Format::Log4j => log4j(first),
        Format::Syslog => syslog(first),
        Format::Json => json(first),
        Format::Plain => None,
    }
    .unwrap_or_else(|| plain(first));
    if let Some(rest) = rest {
        p.message.push('\n');
        p.message.push_str(rest);
    }
    p
}

fn parse_auto(line: &str) -> Option<Parsed> {
    // A JSON line may be indented (pretty printers, some shippers).
    if line.trim_start().starts_with('{') {
        return json(line);
    }
    let b = line.as_bytes().first().copied();
    match b {
        Some(b'<') => syslog(line),
        Some(b'0'..=b'9') => shotgrid(line)
            .or_else(|| python(line))
            .or_else(|| log4j(line)),
        Some(b'A'..=b'Z') => python(line)
            .or_else(|| syslog(line))
            .or_else(|| log4j(line)),
        Some(b'[') => log4j(line),
        _ => None,
    }
}

fn level_of(s: &str) -> Option<Level> {
    s.parse().ok()
}

fn shotgrid(line: &str) -> Option<Parsed> {
    let [ts, pid, level, logger, message] = shotgrid_fields(line)?;
    Some(Parsed {
        level: level_of(level),
        timestamp: Some(ts.to_owned()),
        ts_micros: zoned_micros(ts),
        logger: Some(logger.trim().to_owned()).filter(|s| !s.is_empty()),
        pid: pid.parse().ok(),
        message: message.to_owned(),
        attributes: Vec::new(),
    })
}

/// The ShotGrid / Toolkit header, `%(asctime)s [%(process)d
/// %(levelname)s %(name)s] %(message)s`: timestamp, pid, level, logger,
/// message. Read by hand, as the regex `^(TS) \[(\d+) ([A-Z]+)
/// ([^\]]*)\] ?(.*)$` reads it with ASCII digits (with captures that
/// regex took about 1.5 µs a line, the largest cost of a catch-up after
/// the search).
fn shotgrid_fields(line: &str) -> Option<[&str; 5]> {
    let b = line.as_bytes();
    let ts = timestamp_len(b)?;
    let mut i = ts;
    if !b[i..].starts_with(b" [") {
        return None;
    }
    i += 2;
    let run =
        |from: usize, f: fn(&u8) -> bool| from + b[from..].iter().take_while(|c| f(c)).count();
    let pid_end = run(i, u8::is_ascii_digit);
    if pid_end == i || b.get(pid_end) != Some(&b' ') {
        return None;
    }
    let level_end = run(pid_end + 1, u8::is_ascii_uppercase);
    if level_end == pid_end + 1 || b.get(level_end) != Some(&b' ') {
        return None;
    }
    let close = level_end + 1 + line[level_end + 1..].find(']')?;
    let message = close + 1 + usize::from(b.get(close + 1) == Some(&b' '));
    Some([
        &line[..ts],
        &line[i..pid_end],
        &line[pid_end + 1..level_end],
        &line[level_end + 1..close],
        &line[message..],
    ])
}

/// Length of the timestamp `TS` at the start of `b` (ASCII digits).
fn timestamp_len(b: &[u8]) -> Option<usize> {
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let is = |i: usize, c: u8| b.get(i) == Some(&c);
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(d);
    let shape = digits(0..4)
        && is(4, b'-')
        && digits(5..7)
        && is(7, b'-')
        && digits(8..10)
        && (is(10, b' ') || is(10, b'T'))
        && digits(11..13)
        && is(13, b':')
        && digits(14..16)
        && is(16, b':')
        && digits(17..19);
    if !shape {
        return None;
    }
    let mut i = 19;
    if (is(i, b'.') || is(i, b',')) && d(i + 1) {
        i += 1;
        while d(i) {
            i += 1;
        }
    }
    if is(i, b'Z') {
        i += 1;
    } else if (is(i, b'+') || is(i, b'-')) && digits(i + 1..i + 3) {
        let j = if is(i + 3, b':') { i + 4 } else { i + 3 };
        if digits(j..j + 2) {
            i = j + 2;
        }
    }
    Some(i)
}

fn python(line: &str) -> Option<Parsed> {
    if let Some(c) = PY_DEFAULT.captures(line) {
        return Some(Parsed {
            level: level_of(&c[1]),
            logger: Some(c[2].to_owned()).filter(|s| !s.is_empty()),
            message: c[3].to_owned(),
            ..Default::default()
        });
    }
    let c = PY_DASHES.captures(line)?;
    Some(Parsed {
        level: level_of(&c[3]),
        timestamp: Some(c[1].to_owned()),
        ts_micros: zoned_micros(&c[1]),
        logger: Some(c[2].to_owned()),
        message: c[4].to_owned(),
        ..Default::default()
    })
}

fn log4j(line: &str) -> Option<Parsed> {
    let c = LOG4J.captures(line)?;
    let thread = c.get(2).or(c.get(4)).map(|m| m.as_str().to_owned());
    let mut attributes = Vec::new();
    if let Some(t) = thread {
        attributes.push(("thread".to_owned(), t));
    }
    Some(Parsed {
        level: level_of(&c[3]),
        timestamp: Some(c[1].to_owned()),
        ts_micros: zoned_micros(&c[1]),
        logger: c.get(5).map(|m| m.as_str().to_owned()),
        pid: None,
        message: c[6].to_owned(),
        attributes,
    })
}

fn syslog(line: &str) -> Option<Parsed> {
    if let Some(c) = SYSLOG_5424.captures(line) {
        let pri: i64 = c[1].parse().ok()?;
        return Some(Parsed {
            level: Level::from_syslog(pri % 8),
            timestamp: Some(c[2].to_owned()),
            ts_micros: zoned_micros(&c[2]),
            logger: Some(c[4].to_owned()).filter(|s| s != "-"),
            pid: c[5].parse().ok(),
            message: c[8].to_owned(),
            attributes: vec![("host".to_owned(), c[3].to_owned())],
        });
    }
    let c = SYSLOG_3164.captures(line)?;
    let msg = c[6].to_owned();
    let level = match c.get(1) {
        Some(p) => p
            .as_str()
            .parse::<i64>()
            .ok()
            .and_then(|p| Level::from_syslog(p % 8)),
        None => loose_level(&msg),
    };
    Some(Parsed {
        level,
        timestamp: Some(c[2].to_owned()),
        ts_micros: None,
        logger: Some(c[4].to_owned()),
        pid: c.get(5).and_then(|m| m.as_str().parse().ok()),
        message: msg,
        attributes: vec![("host".to_owned(), c[3].to_owned())],
    })
}

fn json(line: &str) -> Option<Parsed> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let serde_json::Value::Object(map) = v else {
        return None;
    };
    let text = |keys: &[&str]| {
        keys.iter().find_map(|k| match map.get(*k) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
    };
    // A name in any of these fields; a number only in `level`. Both only as
    // the matcher's pre-filter can find them in the raw line: a name in
    // lower, upper or capitalised spelling, written without escapes; a
    // number written `"level":N` or `"level": N`.
    let level = match map.get("level") {
        Some(serde_json::Value::Number(n)) if numeric_level_written(line) => {
            n.as_i64().and_then(numeric_level)
        }
        Some(serde_json::Value::Number(_)) => None,
        _ => ["level", "severity", "levelname", "lvl", "log.level"]
            .iter()
            .find_map(|k| match map.get(*k) {
                Some(serde_json::Value::String(s)) if plain_level_name(s, line) => s.parse().ok(),
                _ => None,
            }),
    };
    let timestamp = text(&["timestamp", "time", "ts", "@timestamp", "asctime"]);
    let ts_micros = match map
        .get("timestamp")
        .or(map.get("time"))
        .or(map.get("ts"))
        .or(map.get("@timestamp"))
    {
        Some(serde_json::Value::Number(n)) => n.as_f64().map(epoch_micros),
        Some(serde_json::Value::String(s)) => zoned_micros(s),
        _ => None,
    };
    let message =
        text(&["message", "msg", "@message", "event", "log"]).unwrap_or_else(|| line.to_owned());
    let logger = text(&["logger", "logger_name", "name", "module"]);
    let pid = text(&["pid", "process"]).and_then(|p| p.parse().ok());
    let known = [
        "level",
        "severity",
        "levelname",
        "lvl",
        "log.level",
        "timestamp",
        "time",
        "ts",
        "@timestamp",
        "asctime",
        "message",
        "msg",
        "@message",
        "event",
        "log",
        "logger",
        "logger_name",
        "name",
        "module",
        "pid",
        "process",
    ];
    let attributes = map
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.clone(), s))
        })
        .take(32)
        .collect();
    Some(Parsed {
        level,
        timestamp,
        ts_micros,
        logger,
        pid,
        message,
        attributes,
    })
}

fn loose_level(line: &str) -> Option<Level> {
    let head = match line.char_indices().nth(120) {
        Some((i, _)) => &line[..i],
        None => line,
    };
    LOOSE_LEVEL.captures(head).and_then(|c| level_of(&c[1]))
}

fn plain(line: &str) -> Parsed {
    Parsed {
        level: loose_level(line),
        message: line.to_owned(),
        ..Default::default()
    }
}

/// Whether the line writes a number in `level` as `"level":N` or
/// `"level": N`.
fn numeric_level_written(line: &str) -> bool {
    line.match_indices("\"level\":").any(|(i, m)| {
        let rest = &line.as_bytes()[i + m.len()..];
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        rest.first().is_some_and(u8::is_ascii_digit)
    })
}

/// Whether `name` is a level name as the pre-filter finds it: letters in
/// lower, upper or capitalised spelling, written as is in `line`.
fn plain_level_name(name: &str, line: &str) -> bool {
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest: &str = chars.as_str();
    let spelled = rest.chars().all(|c| c.is_ascii_lowercase())
        || name.chars().all(|c| c.is_ascii_uppercase());
    first && spelled && line.contains(name)
}

/// A numeric JSON level: a syslog severity (0-7, as GELF writes) or a
/// pino / bunyan level (10 trace, 20 debug, 30 info, 40 warn, 50 error,
/// 60 fatal).
pub fn numeric_level(n: i64) -> Option<Level> {
    match n {
        0..=7 => Level::from_syslog(n),
        10..=19 => Some(Level::Trace),
        20..=29 => Some(Level::Debug),
        30..=39 => Some(Level::Info),
        40..=49 => Some(Level::Warn),
        50..=59 => Some(Level::Error),
        60..=99 => Some(Level::Critical),
        _ => None,
    }
}

fn epoch_micros(n: f64) -> i64 {
    // Seconds, ms, µs or ns by magnitude, as the server does.
    let a = n.abs();
    let us = if a < 1e11 {
        n * 1e6
    } else if a < 1e14 {
        n * 1e3
    } else if a < 1e17 {
        n
    } else {
        n / 1e3
    };
    us as i64
}

/// µs since the epoch for a timestamp that carries its zone.
fn zoned_micros(s: &str) -> Option<i64> {
    let t = s.trim();
    let has_zone = t.ends_with('Z')
        || t.len() > 19 && {
            let tail = &t[19..];
            tail.contains('+') || tail.contains('-')
        };
    if !has_zone {
        return None;
    }
    let norm = t.replacen(' ', "T", 1).replace(',', ".");
    faultline_model::parse_rfc3339_micros(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The hand-written ShotGrid header reader reads what the regex
        /// reads, on headers built from pieces that are right, almost
        /// right and wrong.
        #[test]
        fn shotgrid_fields_read_as_the_regex_does(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("2026"), Just("-"), Just("11"), Just("22"), Just(" "),
                    Just("T"), Just("06"), Just(":"), Just("40"), Just(","),
                    Just("."), Just("123"), Just("Z"), Just("+"), Just("01:00"),
                    Just("0100"), Just("["), Just("]"), Just("4242"),
                    Just("ERROR"), Just("Error"), Just("sgtk.core"), Just("é"),
                    Just("x"), Just("\r"), Just("] ["),
                ],
                0..30,
            ),
            shape in 0usize..4,
        ) {
            let tail: String = parts.concat();
            let line = match shape {
                0 => format!("2026-11-22 06:40:00{tail}"),
                1 => format!("2026-11-22 06:40:00,123 [4242 ERROR {tail}"),
                2 => format!("2026-11-22T06:40:00{tail} [1 INFO a] m"),
                _ => tail,
            };
            let want = SHOTGRID.captures(&line).map(|c| {
                [1, 2, 3, 4, 5].map(|i| c.get(i).map_or("", |m| m.as_str()))
            });
            prop_assert_eq!(shotgrid_fields(&line), want, "{:?}", line);
        }
    }

    #[test]
    fn shotgrid_fields_of_real_headers() {
        for (line, want) in [
            (
                "2016-04-25 08:56:12,413 [44862 ERROR sgtk.core.engine] failed",
                Some([
                    "2016-04-25 08:56:12,413",
                    "44862",
                    "ERROR",
                    "sgtk.core.engine",
                    "failed",
                ]),
            ),
            (
                "2016-04-25T08:56:12.5+01:00 [1 DEBUG ] x] y",
                Some(["2016-04-25T08:56:12.5+01:00", "1", "DEBUG", "", "x] y"]),
            ),
            (
                "2016-04-25 08:56:12 [1 DEBUG a]",
                Some(["2016-04-25 08:56:12", "1", "DEBUG", "a", ""]),
            ),
            ("2016-04-25 08:56:12+01: [1 DEBUG a] m", None),
            ("2016-04-25 08:56:12 [x DEBUG a] m", None),
            ("2016-04-25 08:56:12 [1 debug a] m", None),
            ("2016-04-25 08:56:12 [1 DEBUG a m", None),
            ("2016-4-25 08:56:12 [1 DEBUG a] m", None),
        ] {
            assert_eq!(shotgrid_fields(line), want, "{line}");
            let re = SHOTGRID
                .captures(line)
                .map(|c| [1, 2, 3, 4, 5].map(|i| c.get(i).map_or("", |m| m.as_str())));
            assert_eq!(re, want, "regex on {line}");
        }
    }

    #[test]
    fn shotgrid_line_with_traceback() {
        let p = parse(
            Format::Auto,
            "2016-04-25 08:56:12,413 [44862 ERROR sgtk.core.engine] failed to load\nTraceback (most recent call last):\nValueError: boom",
        );
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.pid, Some(44862));
        assert_eq!(p.logger.as_deref(), Some("sgtk.core.engine"));
        assert_eq!(p.timestamp.as_deref(), Some("2016-04-25 08:56:12,413"));
        assert_eq!(p.ts_micros, None, "local time: not converted");
        assert_eq!(
            p.message,
            "failed to load\nTraceback (most recent call last):\nValueError: boom"
        );
        let p = parse(
            Format::Shotgrid,
            "2016-04-25 08:56:12,413 [1 CRITICAL tk-maya] x",
        );
        assert_eq!(p.level, Some(Level::Critical));
    }

    #[test]
    fn python_defaults() {
        let p = parse(Format::Auto, "ERROR:root:disk full");
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.logger.as_deref(), Some("root"));
        assert_eq!(p.message, "disk full");
        let p = parse(
            Format::Python,
            "2024-01-02 03:04:05,006 - app.db - WARNING - slow query",
        );
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(p.logger.as_deref(), Some("app.db"));
        assert_eq!(p.message, "slow query");
    }

    #[test]
    fn log4j_and_logback() {
        let p = parse(
            Format::Auto,
            "2024-01-02 03:04:05,123 [main] ERROR com.acme.Service - failed\n\tat com.acme.Service.run(Service.java:1)",
        );
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.logger.as_deref(), Some("com.acme.Service"));
        assert!(p.message.starts_with("failed\n\tat com.acme"));
        assert_eq!(p.attributes, [("thread".to_owned(), "main".to_owned())]);
        let p = parse(
            Format::Log4j,
            "12:01:02.345 [http-nio-1] WARN  o.a.c.Foo - careful",
        );
        assert_eq!(p.level, Some(Level::Warn));
        assert_eq!(p.message, "careful");
        let p = parse(Format::Auto, "2024-01-02T03:04:05.123Z FATAL boom");
        assert_eq!(p.level, Some(Level::Critical));
        assert!(p.ts_micros.is_some());
    }

    #[test]
    fn syslog_levels_from_priority() {
        let p = parse(Format::Auto, "<11>Jan  2 03:04:05 host app[42]: it broke");
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.pid, Some(42));
        assert_eq!(p.logger.as_deref(), Some("app"));
        assert_eq!(p.message, "it broke");
        let p = parse(
            Format::Auto,
            "<14>1 2024-01-02T03:04:05Z host app 7 ID47 - hello",
        );
        assert_eq!(p.level, Some(Level::Info));
        assert_eq!(p.pid, Some(7));
        let p = parse(Format::Syslog, "Jan  2 03:04:05 host kernel: ERROR: oops");
        assert_eq!(p.level, Some(Level::Error));
    }

    #[test]
    fn json_lines() {
        let p = parse(
            Format::Auto,
            r#"{"level":"error","msg":"db down","ts":1700000000.5,"logger":"db","pid":9,"shard":3,"nested":{"a":1}}"#,
        );
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.message, "db down");
        assert_eq!(p.pid, Some(9));
        assert_eq!(p.ts_micros, Some(1_700_000_000_500_000));
        assert_eq!(p.attributes, [("shard".to_owned(), "3".to_owned())]);
        // Numeric levels in `level`: syslog severities (GELF), pino/bunyan.
        for (line, want) in [
            (r#"{"level":3,"msg":"x"}"#, Some(Level::Error)),
            (r#"{"level": 2, "msg": "x"}"#, Some(Level::Critical)),
            (r#"{"level":6,"msg":"x"}"#, Some(Level::Info)),
            (r#"{"level":30,"msg":"x"}"#, Some(Level::Info)),
            (r#"{"level":40,"msg":"x"}"#, Some(Level::Warn)),
            (r#"{"level":50,"msg":"x"}"#, Some(Level::Error)),
            (r#"{"level":60,"msg":"x"}"#, Some(Level::Critical)),
            (r#"{"level":8,"msg":"x"}"#, None),
            (r#"{"level":"3","msg":"x"}"#, None),
            (r#"{"level" : 50,"msg":"x"}"#, None),
            (r#"{"level":"ERror","msg":"x"}"#, None),
            (r#"{"level":"\u0065rror","msg":"x"}"#, None),
            (r#"{"level":"Error","msg":"x"}"#, Some(Level::Error)),
            (r#"{"severity":3,"msg":"x"}"#, None),
            (r#"{"severity":"ERROR","msg":"x"}"#, Some(Level::Error)),
        ] {
            assert_eq!(parse(Format::Json, line).level, want, "{line}");
        }
        // Indented JSON is JSON for `auto` too.
        let p = parse(Format::Auto, r#"   {"level":"error","msg":"x"}"#);
        assert_eq!((p.level, p.message.as_str()), (Some(Level::Error), "x"));
    }

    #[test]
    fn unknown_lines_are_plain_messages() {
        for line in [
            "just text",
            "",
            "\u{fffd}\u{fffd} binary",
            "Traceback (most recent call last):",
        ] {
            let p = parse(Format::Auto, line);
            assert_eq!(p.level, None, "{line}");
            assert_eq!(p.message, line);
        }
        let p = parse(Format::Plain, "worker 3 [ERROR] lost connection");
        assert_eq!(p.level, Some(Level::Error));
        assert_eq!(p.message, "worker 3 [ERROR] lost connection");
        // A word that merely contains a level is not one.
        assert_eq!(parse(Format::Auto, "ERRORS are counted").level, None);
    }

    #[test]
    fn format_names() {
        assert_eq!("logback".parse::<Format>().unwrap(), Format::Log4j);
        assert!("xml".parse::<Format>().is_err());
    }
}
