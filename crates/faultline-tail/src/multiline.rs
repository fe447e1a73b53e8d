//! Multiline records: a header line starts a record, continuation lines
//! (tracebacks, `at ...` frames, indented lines, anything without a header)
//! join it. Pure: the clock is passed in.

use std::time::{Duration, Instant};

use regex::Regex;

use crate::lines::{Line, Lines};

/// Default header pattern: a line starts a new record when it begins with a
/// timestamp or a level word.
///
/// Recognised starts: ISO-like dates (`2016-04-25 08:56:12,413`,
/// `2024-01-02T03:04:05Z`, `2024/01/02 03:04`), optionally in `[`; day-first
/// dates (`25/04/2016 08:56`, `[25/Apr/2016:08:56:12`); syslog
/// (`Jan  2 03:04:05`); a syslog priority (`<13>`); a bare time
/// (`08:56:12`); a level word (`ERROR`, `[WARN]`, `INFO:`, ... upper case);
/// and `{` (JSON lines).
pub const DEFAULT_START_PATTERN: &str = concat!(
    r"^(?:",
    r"\[?\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}",
    r"|\[?\d{2}/\d{2}/\d{4}[ T:]\d{2}:\d{2}",
    r"|\[?\d{2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}",
    r"|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d{2}:\d{2}:\d{2}",
    r"|<\d{1,3}>",
    r"|\d{2}:\d{2}:\d{2}",
    r"|\[?(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|CRITICAL|FATAL|SEVERE|EMERG|ALERT)\b",
    r"|\{",
    r")"
);

/// Compiled multiline rules (see [`crate::MultilineConfig`]).
#[derive(Debug, Clone)]
pub struct MultilineRules {
    pub(crate) start: Regex,
    pub(crate) continuation: Option<Regex>,
    pub(crate) max_lines: u32,
    pub(crate) max_bytes: usize,
    pub(crate) timeout: Duration,
}

impl MultilineRules {
    /// Compiles the rules.
    pub fn new(
        start: &str,
        continuation: Option<&str>,
        max_lines: u32,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Self, regex::Error> {
        Ok(MultilineRules {
            start: Regex::new(start)?,
            continuation: continuation.map(Regex::new).transpose()?,
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
            timeout,
        })
    }

    /// Whether `text` starts a new record whatever came before it: it is a
    /// header, or (with a continuation pattern) it cannot join a record.
    /// A line for which this is false joins the record held, if any.
    pub(crate) fn starts_record(&self, text: &str) -> bool {
        self.start.is_match(text)
            || self
                .continuation
                .as_ref()
                .is_some_and(|c| !c.is_match(text))
    }
}

/// A framed record before it is attached to a file: byte range, text and
/// flags. Built from one line or from several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the first byte of the first line.
    pub start: u64,
    /// Offset just past the last line.
    pub end: u64,
    /// Lines joined with `\n`.
    pub text: String,
    /// Number of lines.
    pub lines: u32,
    /// Some line was cut at the line cap.
    pub truncated: bool,
    /// Some line had invalid UTF-8.
    pub lossy: bool,
    /// The last line had no newline yet.
    pub partial: bool,
    /// The record hit a size cap and was cut there; the lines that follow
    /// start a new record.
    pub split: bool,
    /// Emitted by the flush timeout: no line followed it for that long.
    pub idle: bool,
    /// Lines a catch-up skipped just before it (see
    /// [`crate::Record::lines_before`]).
    pub lines_before: Lines,
    /// The lines that follow it in the file, when a catch-up scan attached
    /// them (see [`crate::Record::lines_after`]).
    pub lines_after: Lines,
}

impl Frame {
    /// Takes the lines skipped before it from `pending` (lines waiting
    /// for the record starting at an offset) when they are for it; drops
    /// them when that record was passed without being framed (a restart).
    pub(crate) fn take_lines_before(&mut self, pending: &mut Option<(u64, Lines)>) {
        match pending.take() {
            Some((at, lines)) if at == self.start => self.lines_before = lines,
            Some(later) if later.0 > self.start => *pending = Some(later),
            _ => {}
        }
    }
}

impl From<Line> for Frame {
    fn from(l: Line) -> Self {
        Frame {
            start: l.start,
            end: l.end,
            text: l.text,
            lines: 1,
            truncated: l.truncated,
            lossy: l.lossy,
            partial: l.partial,
            split: false,
            idle: false,
            lines_before: Lines::default(),
            lines_after: Lines::default(),
        }
    }
}

/// Groups lines into records for one file.
#[derive(Debug, Default)]
pub struct Aggregator {
    current: Option<(Frame, Instant)>,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Aggregator::default()
    }

    /// Adds the next line; records completed by it go to `out`.
    pub fn push(&mut self, rules: &MultilineRules, line: Line, now: Instant, out: &mut Vec<Frame>) {
        let starts = rules.starts_record(&line.text);
        self.push_classified(rules, line, starts, now, out);
    }

    /// [`Aggregator::push`] with `starts = rules.starts_record(&line.text)`
    /// already known.
    pub(crate) fn push_classified(
        &mut self,
        rules: &MultilineRules,
        line: Line,
        starts: bool,
        now: Instant,
        out: &mut Vec<Frame>,
    ) {
        if let Some((cur, at)) = &mut self.current {
            if !starts {
                let fits = cur.lines < rules.max_lines
                    && cur.text.len() + 1 + line.text.len() <= rules.max_bytes;
                if fits {
                    cur.text.push('\n');
                    cur.text.push_str(&line.text);
                    cur.lines += 1;
                    cur.end = line.end;
                    cur.truncated |= line.truncated;
                    cur.lossy |= line.lossy;
                    cur.partial = line.partial;
                    *at = now;
                    return;
                }
                let (mut done, _) = self.current.take().expect("checked above");
                done.split = true;
                out.push(done);
                self.current = Some((Frame::from(line), now));
                return;
            }
            out.extend(self.current.take().map(|(f, _)| f));
        }
        self.current = Some((Frame::from(line), now));
    }

    /// Emits the held record when no line joined it for `rules.timeout`.
    pub fn flush_due(&mut self, rules: &MultilineRules, now: Instant, out: &mut Vec<Frame>) {
        if let Some((_, at)) = &self.current
            && now.saturating_duration_since(*at) >= rules.timeout
        {
            out.extend(self.current.take().map(|(mut f, _)| {
                f.idle = true;
                f
            }));
        }
    }

    /// Emits the held record unconditionally.
    pub fn flush(&mut self, out: &mut Vec<Frame>) {
        out.extend(self.current.take().map(|(f, _)| f));
    }

    /// When the held record will be due, if one is held.
    pub fn deadline(&self, rules: &MultilineRules) -> Option<Instant> {
        self.current.as_ref().map(|(_, at)| *at + rules.timeout)
    }

    /// Whether a record is held.
    pub fn is_holding(&self) -> bool {
        self.current.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::LineSplitter;

    fn rules() -> MultilineRules {
        MultilineRules::new(
            DEFAULT_START_PATTERN,
            None,
            500,
            1 << 20,
            Duration::from_millis(500),
        )
        .unwrap()
    }

    fn group(text: &str, rules: &MultilineRules) -> Vec<Frame> {
        let now = Instant::now();
        let mut s = LineSplitter::new(0, 1 << 20);
        let mut lines = Vec::new();
        s.feed(text.as_bytes(), &mut |l| lines.push(l));
        lines.extend(s.flush());
        let mut agg = Aggregator::new();
        let mut out = Vec::new();
        for l in lines {
            agg.push(rules, l, now, &mut out);
        }
        agg.flush(&mut out);
        out
    }

    #[test]
    fn default_pattern_recognises_common_headers() {
        let r = rules();
        for h in [
            "2016-04-25 08:56:12,413 [44862 DEBUG sgtk.core.log] message",
            "2024-01-02T03:04:05.123Z INFO x",
            "[2024-01-02 03:04:05] ERROR y",
            "2024/01/02 03:04:05 z",
            "Jan  2 03:04:05 host sshd[1]: hi",
            "Dec 31 23:59:59 host x",
            "25/04/2016 08:56:12 x",
            "[25/Apr/2016:08:56:12 +0000] x",
            "<13>1 2024-01-02T03:04:05Z host",
            "08:56:12 x",
            "ERROR:root:boom",
            "WARNING: careful",
            "[WARN] careful",
            "INFO x",
            r#"{"level":"error"}"#,
        ] {
            assert!(r.start.is_match(h), "{h}");
        }
        for c in [
            "Traceback (most recent call last):",
            "  File \"/x.py\", line 3, in <module>",
            "\tat com.example.Foo.bar(Foo.java:10)",
            "Caused by: java.lang.IllegalStateException: x",
            "\t... 12 more",
            "ValueError: boom",
            "java.lang.RuntimeException: top",
            "    raise ValueError('boom')",
            "",
            "Errors are fine here",
        ] {
            assert!(!r.start.is_match(c), "{c}");
        }
    }

    #[test]
    fn python_traceback_joins_its_error_line() {
        let log = "\
2016-04-25 08:56:12,413 [44862 DEBUG sgtk.core.log] starting
2016-04-25 08:56:13,001 [44862 ERROR sgtk.core.engine] failed to load
Traceback (most recent call last):
  File \"/opt/tk/engine.py\", line 12, in load
    raise ValueError('boom')
ValueError: boom
2016-04-25 08:56:14,000 [44862 INFO sgtk.core.log] next
";
        let f = group(log, &rules());
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].lines, 1);
        assert_eq!(f[1].lines, 5);
        assert!(
            f[1].text
                .starts_with("2016-04-25 08:56:13,001 [44862 ERROR")
        );
        assert!(f[1].text.ends_with("ValueError: boom"));
        assert_eq!(
            f[2].text,
            "2016-04-25 08:56:14,000 [44862 INFO sgtk.core.log] next"
        );
        // Ranges tile the input.
        assert_eq!(f[0].start, 0);
        assert_eq!(f[0].end, f[1].start);
        assert_eq!(f[1].end, f[2].start);
        assert_eq!(f[2].end, log.len() as u64);
    }

    #[test]
    fn java_stack_trace_with_caused_by() {
        let log = "\
2024-03-01 10:00:00.123 ERROR [main] c.e.App - request failed
java.lang.RuntimeException: top
\tat com.example.App.run(App.java:10)
\tat com.example.App.main(App.java:3)
Caused by: java.lang.IllegalStateException: inner
\tat com.example.Dep.call(Dep.java:7)
\t... 2 more
2024-03-01 10:00:01.000 INFO [main] c.e.App - ok
";
        let f = group(log, &rules());
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].lines, 7);
        assert!(
            f[0].text
                .contains("Caused by: java.lang.IllegalStateException: inner")
        );
        assert!(f[0].text.ends_with("\t... 2 more"));
        assert_eq!(f[1].lines, 1);
    }

    #[test]
    fn lines_before_any_header_form_one_record() {
        let f = group("orphan 1\n  orphan 2\n2024-01-01 00:00:00 x\n", &rules());
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].text, "orphan 1\n  orphan 2");
    }

    #[test]
    fn continuation_pattern_makes_other_lines_standalone() {
        let r = MultilineRules::new(
            DEFAULT_START_PATTERN,
            Some(r"^(?:\s|Traceback|Caused by:|\w+(?:\.\w+)*(?:Error|Exception)\b)"),
            500,
            1 << 20,
            Duration::from_millis(500),
        )
        .unwrap();
        let f = group(
            "2024-01-01 00:00:00 ERROR x\nTraceback (most recent call last):\n  File \"a\"\nValueError: v\nplain line\nanother\n",
            &r,
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].lines, 4);
        assert_eq!(f[1].text, "plain line");
        assert_eq!(f[2].text, "another");
    }

    #[test]
    fn caps_split_records_without_losing_lines() {
        let r = MultilineRules::new(
            DEFAULT_START_PATTERN,
            None,
            3,
            1 << 20,
            Duration::from_secs(1),
        )
        .unwrap();
        let log = "2024-01-01 00:00:00 ERROR x\n a\n b\n c\n d\n";
        let f = group(log, &r);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].lines, 3);
        assert!(f[0].split);
        assert_eq!(f[1].text, " c\n d");
        let r = MultilineRules::new(DEFAULT_START_PATTERN, None, 100, 40, Duration::from_secs(1))
            .unwrap();
        let f = group(log, &r);
        assert!(f.iter().all(|f| f.text.len() <= 40));
        let joined: Vec<&str> = f.iter().flat_map(|f| f.text.split('\n')).collect();
        assert_eq!(joined.len(), 5);
    }

    #[test]
    fn timeout_flushes_the_last_record() {
        let r = rules();
        let t0 = Instant::now();
        let mut agg = Aggregator::new();
        let mut out = Vec::new();
        let mut s = LineSplitter::new(0, 1024);
        let mut lines = Vec::new();
        s.feed(b"2024-01-01 00:00:00 ERROR x\n  frame\n", &mut |l| {
            lines.push(l)
        });
        for l in lines {
            agg.push(&r, l, t0, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(agg.deadline(&r), Some(t0 + r.timeout));
        agg.flush_due(&r, t0 + Duration::from_millis(499), &mut out);
        assert!(out.is_empty());
        agg.flush_due(&r, t0 + Duration::from_millis(500), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].lines, 2);
        assert!(out[0].idle, "emitted by the timeout");
        assert!(!agg.is_holding());
        // A record ended by the next header is not idle.
        let mut lines = Vec::new();
        s.feed(
            b"2024-01-01 00:00:01 INFO a\n2024-01-01 00:00:02 INFO b\n",
            &mut |l| lines.push(l),
        );
        out.clear();
        for l in lines {
            agg.push(&r, l, t0, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert!(!out[0].idle);
    }

    proptest::proptest! {
        /// Whatever the lines, records tile the input, keep every line in
        /// order, start with a header unless they follow a split or start
        /// the file, and respect the caps.
        #[test]
        fn grouping_is_a_partition(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::string::string_regex("2024-01-0[1-9] 00:00:0[0-9] [A-Z]{4} [a-z ]{0,12}").unwrap(),
                    proptest::string::string_regex("[ \t][a-z ]{0,20}").unwrap(),
                    proptest::string::string_regex("[A-Za-z]{0,10}: [a-z]{0,10}").unwrap(),
                ],
                0..40,
            ),
            max_lines in 1u32..6,
            max_bytes in 10usize..200,
        ) {
            let r = MultilineRules::new(DEFAULT_START_PATTERN, None, max_lines, max_bytes, Duration::from_secs(1)).unwrap();
            let mut text = lines.join("\n");
            if !lines.is_empty() { text.push('\n'); }
            let f = group(&text, &r);
            let mut at = 0;
            let mut all = Vec::new();
            for (i, fr) in f.iter().enumerate() {
                proptest::prop_assert_eq!(fr.start, at);
                at = fr.end;
                proptest::prop_assert!(fr.lines <= max_lines);
                proptest::prop_assert!(fr.lines == 1 || fr.text.len() <= max_bytes);
                let first = fr.text.split('\n').next().unwrap();
                if i > 0 && !f[i - 1].split {
                    proptest::prop_assert!(r.start.is_match(first));
                }
                all.extend(fr.text.split('\n').map(str::to_owned));
            }
            proptest::prop_assert_eq!(at, text.len() as u64);
            proptest::prop_assert_eq!(all, lines);
        }
    }
}
