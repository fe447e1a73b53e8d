//! The human table: each figure, its target and PASS/MISS.

use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Miss,
    /// A figure reported without a target.
    Info,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Miss => "MISS",
            Verdict::Info => "",
        }
    }
}

pub struct Row {
    pub figure: String,
    pub value: String,
    pub target: String,
    pub verdict: Verdict,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    /// A figure without a target.
    pub fn info(&mut self, figure: impl Into<String>, value: impl Into<String>) {
        self.rows.push(Row {
            figure: figure.into(),
            value: value.into(),
            target: String::new(),
            verdict: Verdict::Info,
        });
    }

    /// A figure that must be at most `limit`; `None` (not measured) misses.
    pub fn at_most(
        &mut self,
        figure: impl Into<String>,
        value: Option<f64>,
        limit: f64,
        unit: &str,
    ) {
        let (text, verdict) = match value {
            Some(v) => (
                format!("{} {unit}", fmt_num(v)),
                if v <= limit {
                    Verdict::Pass
                } else {
                    Verdict::Miss
                },
            ),
            None => ("not measured".to_string(), Verdict::Miss),
        };
        self.rows.push(Row {
            figure: figure.into(),
            value: text,
            target: format!("≤ {} {unit}", fmt_num(limit)),
            verdict,
        });
    }

    /// A figure that must be at least `limit`.
    pub fn at_least(&mut self, figure: impl Into<String>, value: f64, limit: f64, unit: &str) {
        self.rows.push(Row {
            figure: figure.into(),
            value: format!("{} {unit}", fmt_num(value)),
            target: format!("≥ {} {unit}", fmt_num(limit)),
            verdict: if value >= limit {
                Verdict::Pass
            } else {
                Verdict::Miss
            },
        });
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.rows.iter().filter(|r| r.verdict == verdict).count()
    }

    pub fn render(&self) -> String {
        let width = |f: fn(&Row) -> &str, title: &str| {
            self.rows
                .iter()
                .map(|r| f(r).chars().count())
                .chain([title.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let (wf, wv, wt) = (
            width(|r| &r.figure, "figure"),
            width(|r| &r.value, "value"),
            width(|r| &r.target, "target"),
        );
        let mut out = String::new();
        let line = |out: &mut String, f: &str, v: &str, t: &str, s: &str| {
            let pad = |s: &str, w: usize| format!("{s}{}", " ".repeat(w - s.chars().count()));
            let _ = writeln!(out, "{}  {}  {}  {s}", pad(f, wf), pad(v, wv), pad(t, wt));
        };
        line(&mut out, "figure", "value", "target", "");
        let _ = writeln!(out, "{}", "-".repeat(wf + wv + wt + 10));
        for r in &self.rows {
            line(&mut out, &r.figure, &r.value, &r.target, r.verdict.label());
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out.trim_end().to_string()
    }
}

/// Three significant-ish digits: 1234567 → "1234567", 12.345 → "12.3",
/// 0.1234 → "0.123", 0.0 → "0".
pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || (v.fract() == 0.0 && v.abs() < 1e15) {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_table() {
        let mut r = Report::default();
        r.at_most("p99", Some(12.5), 50.0, "ms");
        r.at_most("rss", Some(151.0), 150.0, "MB");
        r.at_most("lost", None, 1.0, "x");
        r.info("rate", "1000 entries/s");
        assert_eq!(r.count(Verdict::Pass), 1);
        assert_eq!(r.count(Verdict::Miss), 2);
        let text = r.render();
        assert!(text.contains("p99     12.5 ms"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("rss") && l.ends_with("MISS"))
        );
        assert_eq!(fmt_num(0.1234), "0.123");
        assert_eq!(fmt_num(1234.6), "1235");
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(3.0), "3");
    }
}
