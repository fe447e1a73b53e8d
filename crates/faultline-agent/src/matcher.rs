//! Which records become incidents.
//!
//! A record is an incident when (its level is at least `min_level`, or it
//! matches an `include` regex) and it matches no `exclude` regex. Records
//! without a level (plain text) only match through `include`.
//!
//! [`Matcher::may_match`] is a cheap pre-filter on the raw text (a literal
//! search for the level words at or above `min_level`), so a catch-up scan
//! parses only the lines that can matter. The same literals
//! ([`Matcher::needles`], [`Matcher::line_prefixes`]) let the tailer skip,
//! during a catch-up, the records that cannot pass it without even
//! framing them (`faultline_tail::ScanFilter`).

use faultline_model::Level;
use regex::Regex;

use crate::config::MatcherConfig;
use crate::parse::{Format, Parsed};

/// Compiled matcher of one source.
#[derive(Debug, Clone)]
pub struct Matcher {
    cfg: MatcherConfig,
    prefilter: Option<Regex>,
    /// The pre-filter's literals (empty: no pre-filter).
    literals: Vec<String>,
}

impl Matcher {
    /// Builds the matcher and its pre-filter.
    pub fn new(cfg: MatcherConfig) -> Matcher {
        // Words any format uses for levels at or above `min_level`, plus
        // `<` (syslog priorities carry no word). Below warn every line can
        // match: no pre-filter.
        let words: &[&str] = match cfg.min_level {
            Level::Critical => &["crit", "fatal", "emerg", "alert", "panic", "severe"],
            Level::Error => &["err", "crit", "fatal", "emerg", "alert", "panic", "severe"],
            Level::Warn => &[
                "warn", "err", "crit", "fatal", "emerg", "alert", "panic", "severe",
            ],
            _ => &[],
        };
        // Lower, upper and capitalised spellings as plain literals: a
        // literal set runs on the SIMD multi-literal search, where a
        // case-insensitive pattern measured 2x slower on a catch-up scan.
        let mut literals = Vec::new();
        if !words.is_empty() && cfg.include.is_empty() {
            for w in words {
                literals.push(w.to_string());
                literals.push(w.to_ascii_uppercase());
                let mut c = w.to_string();
                c[..1].make_ascii_uppercase();
                literals.push(c);
            }
        }
        let prefilter =
            (!literals.is_empty()).then(|| Regex::new(&literals.join("|")).expect("valid regex"));
        Matcher {
            cfg,
            prefilter,
            literals,
        }
    }

    /// The literals of the pre-filter: a record whose first line contains
    /// none of them (and does not start with one of
    /// [`Matcher::line_prefixes`]) is never an incident. `None` when there
    /// is no pre-filter (`include` regexes, or a level below warn).
    pub fn needles(&self) -> Option<&[String]> {
        (!self.literals.is_empty()).then_some(self.literals.as_slice())
    }

    /// Line starts that make a record a candidate besides
    /// [`Matcher::needles`]: `<` for syslog priorities (a level without a
    /// word), with the formats that read them. [`Matcher::may_match`] lets
    /// every `<` line through; with another format such a line can only
    /// get a level from a level word, which the needles find.
    pub fn line_prefixes(&self, format: Format) -> &'static [&'static str] {
        match format {
            Format::Auto | Format::Syslog => &["<"],
            _ => &[],
        }
    }

    /// False when the record cannot match whatever its parse; true when it
    /// may.
    pub fn may_match(&self, text: &str) -> bool {
        match &self.prefilter {
            // The header is on the first line; a JSON line is one line.
            Some(p) => {
                let line = first_line(text);
                // Syslog priorities carry no word.
                line.starts_with('<') || p.is_match(line)
            }
            None => true,
        }
    }

    /// Whether the parsed record is an incident.
    pub fn matches(&self, parsed: &Parsed, text: &str) -> bool {
        let by_level = parsed.level.is_some_and(|l| l >= self.cfg.min_level);
        let included = by_level || self.cfg.include.iter().any(|r| r.is_match(text));
        included && !self.cfg.exclude.iter().any(|r| r.is_match(text))
    }

    /// The configuration.
    pub fn config(&self) -> &MatcherConfig {
        &self.cfg
    }
}

fn first_line(text: &str) -> &str {
    match text.find('\n') {
        Some(i) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{Format, parse};

    fn m(min: Level, include: &[&str], exclude: &[&str]) -> Matcher {
        Matcher::new(MatcherConfig {
            min_level: min,
            include: include.iter().map(|r| Regex::new(r).unwrap()).collect(),
            exclude: exclude.iter().map(|r| Regex::new(r).unwrap()).collect(),
        })
    }

    fn is_incident(m: &Matcher, text: &str) -> bool {
        m.may_match(text) && m.matches(&parse(Format::Auto, text), text)
    }

    const SG: &str = "2016-04-25 08:56:12,413 [1 {} sgtk.core] message";

    #[test]
    fn default_is_error_and_critical() {
        let m = m(Level::Error, &[], &[]);
        for (lvl, want) in [
            ("DEBUG", false),
            ("INFO", false),
            ("WARNING", false),
            ("ERROR", true),
            ("CRITICAL", true),
        ] {
            assert_eq!(is_incident(&m, &SG.replace("{}", lvl)), want, "{lvl}");
        }
        assert!(!is_incident(&m, "an error happened somewhere"), "no level");
        assert!(is_incident(&m, "<11>Jan  2 03:04:05 host app: x"));
        assert!(is_incident(&m, r#"{"level":"fatal","msg":"x"}"#));
    }

    #[test]
    fn include_and_exclude() {
        let m = m(Level::Error, &["Traceback \\(most recent"], &["harmless"]);
        assert!(is_incident(&m, "Traceback (most recent call last):"));
        assert!(!is_incident(
            &m,
            &SG.replace("{}", "ERROR")
                .replace("message", "harmless thing")
        ));
        assert!(is_incident(&m, &SG.replace("{}", "ERROR")));
        let warn = self::m(Level::Warn, &[], &[]);
        assert!(is_incident(&warn, &SG.replace("{}", "WARNING")));
        assert!(!is_incident(&warn, &SG.replace("{}", "INFO")));
    }

    #[test]
    fn prefilter_never_hides_a_match() {
        let m = m(Level::Error, &[], &[]);
        for line in [
            "ERROR:root:x",
            "2024-01-02 03:04:05 [main] ERROR a.B - x",
            "<3>1 2024-01-02T03:04:05Z h a 1 - - x",
            r#"{"severity":"Critical","message":"x"}"#,
            "2016-04-25 08:56:12,413 [1 CRITICAL x] y",
        ] {
            assert!(m.may_match(line), "{line}");
            assert!(m.matches(&parse(Format::Auto, line), line), "{line}");
        }
        assert!(!m.may_match("2016-04-25 08:56:12,413 [1 INFO x] all good"));
    }

    /// What the catch-up scan relies on: a record whose first line holds
    /// no needle and does not start with a line prefix of its format is
    /// never an incident; `<` only matters where syslog priorities parse.
    #[test]
    fn needles_and_prefixes_cover_every_match() {
        let formats = [
            Format::Auto,
            Format::Shotgrid,
            Format::Python,
            Format::Log4j,
            Format::Syslog,
            Format::Json,
            Format::Plain,
        ];
        let lines = [
            "<11>Jan  2 03:04:05 host app: x",
            "<3>1 2024-01-02T03:04:05Z h a 1 - - x",
            "<2>Jan  2 03:04:05 host app: disk",
            "<html> x",
            "<13> WARNING: y",
            "2016-04-25 08:56:12,413 [1 ERROR x] y",
            "2016-04-25 08:56:12,413 [1 WARNING x] y",
            "ERROR:root:x",
            "CRITICAL:root:x",
            r#"{"level":"error","msg":"x"}"#,
            r#"{"level":"info","msg":"x"}"#,
            "2024-01-02 03:04:05 [main] FATAL a.B - x",
            "plain SEVERE thing",
            "nothing here",
        ];
        for min in [Level::Warn, Level::Error, Level::Critical] {
            let m = m(min, &[], &[]);
            let needles = m.needles().expect("a pre-filter");
            for f in formats {
                for line in lines {
                    if m.may_match(line) && m.matches(&parse(f, line), line) {
                        let covered = needles.iter().any(|n| line.contains(n.as_str()))
                            || m.line_prefixes(f).iter().any(|p| line.starts_with(p));
                        assert!(covered, "{min:?} {f:?} {line}");
                    }
                }
            }
        }
        assert!(m(Level::Error, &["x"], &[]).needles().is_none());
        assert!(m(Level::Info, &[], &[]).needles().is_none());
    }
}
