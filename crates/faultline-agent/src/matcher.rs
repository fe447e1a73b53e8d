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
    /// Line starts that pass the pre-filter whatever their words.
    prefixes: &'static [&'static str],
}

impl Matcher {
    /// Builds the matcher of a source whose lines have `format`, and its
    /// pre-filter.
    pub fn new(cfg: MatcherConfig, format: Format) -> Matcher {
        // Words any format uses for levels at or above `min_level`. Below
        // warn every line can match: no pre-filter.
        let words: &[&str] = match cfg.min_level {
            Level::Critical => &["crit", "fatal", "emerg", "alert", "panic", "severe"],
            Level::Error => &["err", "crit", "fatal", "emerg", "alert", "panic", "severe"],
            Level::Warn => &[
                "warn", "wrn", "err", "crit", "fatal", "emerg", "alert", "panic", "severe",
            ],
            _ => &[],
        };
        // The header formats (ShotGrid, Python, log4j, syslog, plain text)
        // read only upper-case level names; a JSON field may spell its level
        // any way. Each spelling is a plain literal: a literal set runs on
        // the SIMD multi-literal search, where a case-insensitive pattern
        // measured 2x slower on a catch-up scan; the upper-case set alone
        // (7 literals instead of 21) also lets fewer lines through.
        let any_case = matches!(format, Format::Auto | Format::Json);
        let mut literals = Vec::new();
        if !words.is_empty() && cfg.include.is_empty() {
            for w in words {
                literals.push(w.to_ascii_uppercase());
                if any_case {
                    literals.push(w.to_string());
                    let mut c = w.to_string();
                    c[..1].make_ascii_uppercase();
                    literals.push(c);
                }
            }
        }
        // A JSON level may also be a number (syslog severity or pino level,
        // `parse::numeric_level`): `"level":N` as compact or Python-style
        // JSON writes it, for each first digit of a number at or above
        // `min_level`.
        if any_case && !literals.is_empty() {
            for d in 0..=9 {
                let at_or_above =
                    |n: i64| crate::parse::numeric_level(n).is_some_and(|l| l >= cfg.min_level);
                // The numbers whose first digit is `d`: d itself, 10d..,
                // 100d.. (levels stop at 99).
                if at_or_above(d) || (d * 10..d * 10 + 10).any(at_or_above) {
                    literals.push(format!("\"level\":{d}"));
                    literals.push(format!("\"level\": {d}"));
                }
            }
        }
        let prefilter = (!literals.is_empty()).then(|| {
            Regex::new(
                &literals
                    .iter()
                    .map(|l| regex::escape(l))
                    .collect::<Vec<_>>()
                    .join("|"),
            )
            .expect("valid regex")
        });
        // Syslog priorities (`<11>`) carry a level without a word.
        let prefixes: &'static [&'static str] = match format {
            Format::Auto | Format::Syslog => &["<"],
            _ => &[],
        };
        Matcher {
            cfg,
            prefilter,
            literals,
            prefixes,
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
    /// word), with the formats that read them.
    pub fn line_prefixes(&self) -> &'static [&'static str] {
        self.prefixes
    }

    /// False when the record cannot match whatever its parse; true when it
    /// may.
    pub fn may_match(&self, text: &str) -> bool {
        match &self.prefilter {
            // The header is on the first line; a JSON line is one line.
            Some(p) => {
                let line = first_line(text);
                self.prefixes.iter().any(|x| line.starts_with(x)) || p.is_match(line)
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
        with_format(min, include, exclude, Format::Auto)
    }

    fn with_format(min: Level, include: &[&str], exclude: &[&str], format: Format) -> Matcher {
        let cfg = MatcherConfig {
            min_level: min,
            include: include.iter().map(|r| Regex::new(r).unwrap()).collect(),
            exclude: exclude.iter().map(|r| Regex::new(r).unwrap()).collect(),
        };
        Matcher::new(cfg, format)
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
        assert!(is_incident(&m, r#"{"level":50,"msg":"x"}"#), "pino error");
        assert!(is_incident(&m, r#"{"level": 3, "msg": "x"}"#), "GELF error");
        assert!(!is_incident(&m, r#"{"level":30,"msg":"x"}"#), "pino info");
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
    /// never an incident, whatever the spelling of its level; `<` only
    /// matters where syslog priorities parse.
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
        let templates = [
            "<11>Jan  2 03:04:05 host app: x",
            "<3>1 2024-01-02T03:04:05Z h a 1 - - x",
            "<2>Jan  2 03:04:05 host app: disk",
            "<html> x",
            "<13> {}: y",
            "2016-04-25 08:56:12,413 [1 {} x] y",
            "{}:root:x",
            "2016-04-25 08:56:12,413 - app - {} - x",
            r#"{"level":"{}","msg":"x"}"#,
            r#"{"severity": "{}", "message": "x"}"#,
            r#"  {"level":"{}","msg":"x"}"#,
            "2024-01-02 03:04:05 [main] {} a.B - x",
            "12:00:01.5 {} [main] a.B: x",
            "Jan  2 03:04:05 host app[1]: {} y",
            "plain {} thing",
            "nothing here",
        ];
        let names = [
            "trace",
            "debug",
            "info",
            "notice",
            "warn",
            "wrn",
            "warning",
            "error",
            "err",
            "severe",
            "critical",
            "crit",
            "fatal",
            "alert",
            "emerg",
            "emergency",
            "panic",
        ];
        let mut lines: Vec<String> = [
            r#"{"level":3,"msg":"x"}"#,
            r#"{"level": 2, "msg": "x"}"#,
            r#"{"level":4,"msg":"x"}"#,
            r#"{"level":45,"msg":"x"}"#,
            r#"{"level":50,"msg":"x"}"#,
            r#"{"level": 60, "msg": "x"}"#,
            r#"{"level" : 50,"msg":"x"}"#,
            r#"{"level":  3,"msg":"x"}"#,
            r#"{ "level":"ERror" }"#,
            r#"{"level":99,"msg":"x"}"#,
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        for t in templates {
            for n in names {
                let mut cap = n.to_string();
                cap[..1].make_ascii_uppercase();
                for spelling in [n.to_string(), n.to_ascii_uppercase(), cap] {
                    lines.push(t.replace("{}", &spelling));
                }
            }
        }
        let mut matched = 0;
        for min in [Level::Warn, Level::Error, Level::Critical] {
            for f in formats {
                let m = with_format(min, &[], &[], f);
                let needles = m.needles().expect("a pre-filter");
                for line in &lines {
                    // Without the pre-filter: what the parse alone says.
                    if m.matches(&parse(f, line), line) {
                        matched += 1;
                        assert!(m.may_match(line), "{min:?} {f:?} {line}");
                        let covered = needles.iter().any(|n| line.contains(n.as_str()))
                            || m.line_prefixes().iter().any(|p| line.starts_with(p));
                        assert!(covered, "{min:?} {f:?} {line}");
                    }
                }
            }
        }
        assert!(matched > 500, "the lines exercise the formats: {matched}");
        // The header formats read upper-case names only, so their needles
        // are upper case; JSON (and auto, which reads JSON) needs them all.
        let sg = with_format(Level::Error, &[], &[], Format::Shotgrid);
        assert_eq!(sg.needles().unwrap().len(), 7);
        assert!(sg.line_prefixes().is_empty());
        assert!(!sg.may_match("<11>Jan  2 03:04:05 host app: x"));
        // 21 words and `"level":N` / `"level": N` for 9 first digits (not
        // 4: syslog 4 and pino 40-49 are warnings).
        assert_eq!(m(Level::Error, &[], &[]).needles().unwrap().len(), 39);
        assert!(!is_incident(
            &m(Level::Error, &[], &[]),
            "2016-04-25 08:56:12,413 [1 error x] y"
        ));
        assert!(m(Level::Error, &["x"], &[]).needles().is_none());
        assert!(m(Level::Info, &[], &[]).needles().is_none());
    }
}
