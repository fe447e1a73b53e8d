use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Severity of a log entry, ordered from least to most severe.
///
/// The numeric value is what the store keeps; it is part of the on-disk
/// format and must not change.
///
/// The default is `Info`, the level of an entry that names none.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace = 1,
    Debug = 2,
    #[default]
    Info = 3,
    Warn = 4,
    Error = 5,
    Critical = 6,
}

/// The text was not a level faultline knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown level {0:?} (expected trace, debug, info, warn, error, critical or a syslog severity 0-7)"
)]
pub struct ParseLevelError(pub String);

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Critical,
    ];

    /// The stored numeric code (1 = trace … 6 = critical).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// Inverse of [`Level::code`].
    pub fn from_code(code: u8) -> Option<Level> {
        Level::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// Canonical lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    /// Maps an RFC 5424 syslog severity (0 = emergency … 7 = debug).
    pub fn from_syslog(severity: i64) -> Option<Level> {
        Some(match severity {
            0..=2 => Level::Critical,
            3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            7 => Level::Debug,
            _ => return None,
        })
    }
}

impl FromStr for Level {
    type Err = ParseLevelError;

    /// Case-insensitive names with the usual aliases, or a syslog severity
    /// number written as text.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        // Lowercased on the stack: every name is shorter than the buffer.
        let mut buf = [0u8; 16];
        let lower = match buf.get_mut(..t.len()) {
            Some(b) => {
                b.copy_from_slice(t.as_bytes());
                b.make_ascii_lowercase();
                &*b
            }
            None => &[],
        };
        let level = match lower {
            b"trace" | b"trc" => Level::Trace,
            b"debug" | b"dbg" => Level::Debug,
            b"info" | b"inf" | b"information" | b"notice" => Level::Info,
            b"warn" | b"warning" | b"wrn" => Level::Warn,
            b"error" | b"err" | b"severe" => Level::Error,
            b"critical" | b"crit" | b"fatal" | b"alert" | b"emerg" | b"emergency" | b"panic" => {
                Level::Critical
            }
            _ => match t.parse::<i64>() {
                Ok(n) => Level::from_syslog(n).ok_or_else(|| ParseLevelError(s.to_string()))?,
                Err(_) => return Err(ParseLevelError(s.to_string())),
            },
        };
        Ok(level)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!("WARNING".parse::<Level>().unwrap(), Level::Warn);
        assert_eq!("Fatal".parse::<Level>().unwrap(), Level::Critical);
        assert_eq!("info".parse::<Level>().unwrap(), Level::Info);
        assert!("loud".parse::<Level>().is_err());
        assert_eq!(" Information\t".parse::<Level>().unwrap(), Level::Info);
        assert_eq!("EMERGENCY".parse::<Level>().unwrap(), Level::Critical);
        // Longer than any name: only a number can match.
        assert_eq!(
            "00000000000000000003".parse::<Level>().unwrap(),
            Level::Error
        );
        assert!("informationinformation".parse::<Level>().is_err());
        assert!("".parse::<Level>().is_err());
    }

    #[test]
    fn parses_syslog_severities() {
        assert_eq!("3".parse::<Level>().unwrap(), Level::Error);
        assert_eq!(Level::from_syslog(0), Some(Level::Critical));
        assert_eq!(Level::from_syslog(7), Some(Level::Debug));
        assert_eq!(Level::from_syslog(8), None);
        assert!("9".parse::<Level>().is_err());
    }

    #[test]
    fn codes_round_trip_and_order() {
        for l in Level::ALL {
            assert_eq!(Level::from_code(l.code()), Some(l));
        }
        assert_eq!(Level::from_code(0), None);
        assert!(Level::Error > Level::Warn);
    }
}
