//! Entries as text for people: `time level service message`, one line per
//! entry.
//!
//! Messages are untrusted text; before they reach a terminal, control
//! characters (newlines of tracebacks, and escape sequences that could
//! rewrite the screen) are shown escaped.

use serde_json::Value;
use std::io::{self, IsTerminal, Write};

/// How lines are drawn.
#[derive(Debug, Clone)]
pub struct Style {
    /// Colour the level with ANSI escapes.
    pub color: bool,
    /// Cut lines to this many columns.
    pub width: Option<usize>,
}

impl Style {
    /// Colour and truncation only when stdout is a terminal; `NO_COLOR` and
    /// `TERM=dumb` turn colour off as well.
    pub fn for_stdout(no_color: bool) -> Style {
        let tty = io::stdout().is_terminal();
        let color = tty
            && !no_color
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        Style {
            color,
            width: if tty { Some(terminal_width()) } else { None },
        }
    }
}

/// Formats entries, widening the service column as wider names appear (so
/// a live tail does not need to know every service up front).
#[derive(Debug, Clone)]
pub struct LineFormatter {
    style: Style,
    service_width: usize,
}

/// The service column never grows beyond this; longer names are cut.
const MAX_SERVICE_WIDTH: usize = 24;

impl LineFormatter {
    pub fn new(style: Style) -> Self {
        LineFormatter {
            style,
            service_width: 8,
        }
    }

    /// Lets the service column fit these entries before the first is drawn.
    pub fn fit(&mut self, entries: &[Value]) {
        for e in entries {
            let w = display_width(str_field(e, "service"));
            self.service_width = self.service_width.max(w.min(MAX_SERVICE_WIDTH));
        }
    }

    /// One entry as one line (without the newline).
    pub fn line(&mut self, entry: &Value) -> String {
        self.fit(std::slice::from_ref(entry));
        let time = short_time(str_field(entry, "timestamp"));
        let level = str_field(entry, "level");
        let (label, color) = level_label(level);
        let service = sanitize(str_field(entry, "service"));
        let service = truncate_to_width(&service, MAX_SERVICE_WIDTH);
        let service_pad = self.service_width.saturating_sub(display_width(&service));
        let mut message = sanitize(str_field(entry, "message"));
        if let Some(width) = self.style.width {
            // time + 2 + level(5) + 2 + service + 2
            let used = display_width(&time) + 2 + 5 + 2 + self.service_width + 2;
            message = truncate_to_width(&message, width.saturating_sub(used).max(10));
        }
        let level_cell = if self.style.color {
            format!("{color}{label:<5}\x1b[0m")
        } else {
            format!("{label:<5}")
        };
        format!(
            "{time}  {level_cell}  {service}{:service_pad$}  {message}",
            ""
        )
    }
}

fn str_field<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry.get(name).and_then(Value::as_str).unwrap_or("")
}

/// Short label and ANSI colour of a level.
fn level_label(level: &str) -> (String, &'static str) {
    match level {
        "trace" => ("TRACE".into(), "\x1b[2m"),
        "debug" => ("DEBUG".into(), "\x1b[34m"),
        "info" => ("INFO".into(), "\x1b[32m"),
        "warn" => ("WARN".into(), "\x1b[33m"),
        "error" => ("ERROR".into(), "\x1b[31m"),
        "critical" => ("CRIT".into(), "\x1b[1;97;41m"),
        other => (sanitize(&other.to_uppercase()), ""),
    }
}

/// `2024-03-01T12:34:56.123456Z` → `2024-03-01T12:34:56.123Z`; anything
/// else is shown as it came.
pub fn short_time(ts: &str) -> String {
    if let Some((head, frac)) = ts.split_once('.')
        && let Some(digits) = frac.strip_suffix('Z')
        && digits.len() > 3
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return format!("{head}.{}Z", &digits[..3]);
    }
    sanitize(ts)
}

/// Makes text safe and single-line: `\n` and `\t` become `\n` and `\t`
/// escapes, `\r` is dropped, other control characters become `\u{…}`.
pub fn sanitize(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => {}
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Columns a character takes in a terminal: 0 for combining marks, 2 for
/// East Asian wide characters (Hangul, CJK, fullwidth forms, most emoji),
/// else 1. An approximation of UAX #11 that covers what logs contain.
fn char_width(c: char) -> usize {
    let u = u32::from(c);
    if matches!(u, 0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F | 0x1AB0..=0x1AFF | 0x20D0..=0x20FF)
    {
        return 0;
    }
    let wide = matches!(u,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xA960..=0xA97F
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

pub fn display_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Cuts `s` to at most `width` columns, ending with `…` when cut.
pub fn truncate_to_width(s: &str, width: usize) -> String {
    if display_width(s) <= width {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w + 1 > width {
            break;
        }
        used += w;
        out.push(c);
    }
    if width > 0 {
        out.push('…');
    }
    out
}

/// Columns of the terminal on stdout: `$COLUMNS`, else what `stty` says
/// about stdout, else 80.
pub fn terminal_width() -> usize {
    if let Some(w) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
    {
        return w;
    }
    stty_width().unwrap_or(80)
}

#[cfg(unix)]
fn stty_width() -> Option<usize> {
    // No terminal-size crate is a dependency; `stty size` on a copy of our
    // stdout (a terminal, or we would not ask) is portable across Unixes.
    use std::os::fd::AsFd;
    use std::process::{Command, Stdio};
    let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
    let out = Command::new("stty")
        .arg("size")
        .stdin(Stdio::from(fd))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let cols = text.split_whitespace().nth(1)?.parse::<usize>().ok()?;
    (cols > 0).then_some(cols)
}

#[cfg(not(unix))]
fn stty_width() -> Option<usize> {
    None
}

/// Writes lines to stdout; a closed pipe (`faultline logs | head`) ends the
/// output quietly instead of failing.
pub struct Out {
    stdout: io::Stdout,
    closed: bool,
}

impl Out {
    pub fn new() -> Self {
        Out {
            stdout: io::stdout(),
            closed: false,
        }
    }

    /// Writes `line` and a newline. `Ok(false)` once the reader went away.
    pub fn line(&mut self, line: &str) -> io::Result<bool> {
        if self.closed {
            return Ok(false);
        }
        let mut lock = self.stdout.lock();
        let res = lock
            .write_all(line.as_bytes())
            .and_then(|()| lock.write_all(b"\n"));
        self.handle(res)
    }

    pub fn flush(&mut self) -> io::Result<bool> {
        if self.closed {
            return Ok(false);
        }
        let res = self.stdout.lock().flush();
        self.handle(res)
    }

    fn handle(&mut self, res: io::Result<()>) -> io::Result<bool> {
        match res {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(level: &str, service: &str, message: &str) -> Value {
        json!({
            "id": 1, "project": "p", "service": service, "level": level,
            "message": message, "timestamp": "2024-03-01T12:34:56.123456Z",
        })
    }

    #[test]
    fn plain_lines_have_aligned_columns() {
        let mut f = LineFormatter::new(Style {
            color: false,
            width: None,
        });
        assert_eq!(
            f.line(&entry("error", "api", "boom")),
            "2024-03-01T12:34:56.123Z  ERROR  api       boom"
        );
        assert_eq!(
            f.line(&entry("critical", "billing-worker", "x")),
            "2024-03-01T12:34:56.123Z  CRIT   billing-worker  x"
        );
    }

    #[test]
    fn colour_wraps_only_the_level() {
        let mut f = LineFormatter::new(Style {
            color: true,
            width: None,
        });
        let line = f.line(&entry("warn", "api", "slow"));
        assert!(line.contains("\x1b[33mWARN \x1b[0m"), "{line:?}");
        assert!(line.ends_with("  slow"));
    }

    #[test]
    fn messages_are_cut_to_the_terminal_width() {
        let mut f = LineFormatter::new(Style {
            color: true,
            width: Some(60),
        });
        let line = f.line(&entry("info", "api", &"x".repeat(200)));
        let visible = line.replace("\x1b[32m", "").replace("\x1b[0m", "");
        assert_eq!(display_width(&visible), 60, "{visible}");
        assert!(visible.ends_with('…'));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            sanitize("Traceback:\n\tFile \"x\"\r\n\x1b[2Jgone"),
            "Traceback:\\n\\tFile \"x\"\\n\\u{1b}[2Jgone"
        );
        assert_eq!(sanitize("plain"), "plain");
    }

    #[test]
    fn wide_characters_count_double() {
        assert_eq!(display_width("로그 오류"), 9);
        assert_eq!(truncate_to_width("로그 오류", 6), "로그 …");
        assert_eq!(truncate_to_width("로그오류", 5), "로그…");
        assert_eq!(truncate_to_width("short", 10), "short");
        assert_eq!(truncate_to_width("abcdef", 4), "abc…");
    }

    #[test]
    fn odd_timestamps_pass_through() {
        assert_eq!(
            short_time("2024-03-01T12:34:56.1Z"),
            "2024-03-01T12:34:56.1Z"
        );
        assert_eq!(short_time("1700000000"), "1700000000");
    }
}
