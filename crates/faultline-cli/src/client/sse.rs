//! A push parser for Server-Sent Events (the `text/event-stream` format of
//! the HTML standard, §9.2.6), fed with whatever byte chunks the network
//! delivers.
//!
//! Chunks may split a line, a UTF-8 sequence or a `\r\n` pair anywhere, so
//! the parser buffers bytes until it has a whole line and decodes only whole
//! lines (lossily: one bad byte must not end a live tail).

use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when the event had none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// The stream broke the format in a way we refuse to buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineTooLong(pub usize);

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "event stream line longer than {} bytes", self.0)
    }
}

impl std::error::Error for LineTooLong {}

/// Incremental SSE parser. Feed it chunks; it returns complete events.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a leading `\n` belongs to it.
    skip_lf: bool,
    /// No line has been processed yet (a UTF-8 BOM may be skipped).
    at_start: bool,
    event: String,
    data: String,
    has_data: bool,
    last_event_id: Option<String>,
    retry: Option<Duration>,
    max_line: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        // An entry's message is at most 256 KiB, which JSON escaping can grow
        // six-fold in the worst case; 4 MiB leaves room for everything else.
        SseParser::with_max_line(4 * 1024 * 1024)
    }
}

impl SseParser {
    pub fn with_max_line(max_line: usize) -> Self {
        SseParser {
            line: Vec::new(),
            skip_lf: false,
            at_start: true,
            event: String::new(),
            data: String::new(),
            has_data: false,
            last_event_id: None,
            retry: None,
            max_line,
        }
    }

    /// The last `id:` the server sent, to resume with `Last-Event-ID`.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref().filter(|s| !s.is_empty())
    }

    /// The reconnection delay the server asked for with `retry:`.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Forgets a half-received event, for a new connection. The last event
    /// id and the retry delay are kept, as the standard asks.
    pub fn reset_connection(&mut self) {
        self.line.clear();
        self.skip_lf = false;
        self.at_start = true;
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }

    /// Consumes a chunk and appends the events it completes to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), LineTooLong> {
        if self.skip_lf && !chunk.is_empty() {
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
            self.skip_lf = false;
        }
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            if self.line.len() + pos > self.max_line {
                return Err(LineTooLong(self.max_line));
            }
            if self.line.is_empty() {
                self.process_line(&chunk[..pos], out);
            } else {
                self.line.extend_from_slice(&chunk[..pos]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
                self.line = line;
                self.line.clear();
            }
            let was_cr = chunk[pos] == b'\r';
            chunk = &chunk[pos + 1..];
            if was_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
        }
        if self.line.len() + chunk.len() > self.max_line {
            return Err(LineTooLong(self.max_line));
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn process_line(&mut self, mut line: &[u8], out: &mut Vec<SseEvent>) {
        if self.at_start {
            // A byte-order mark may precede the first line.
            self.at_start = false;
            line = line
                .strip_prefix(b"\xEF\xBB\xBF".as_slice())
                .unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return; // comment, e.g. the server's `: ping`
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"id" if !value.contains('\0') => self.last_event_id = Some(value.into_owned()),
            b"retry" if value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data: std::mem::take(&mut self.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    const STREAM: &[u8] = "\u{feff}: ping\n\nevent: entry\ndata: {\"message\":\"héllo\"}\n\n\
        event: dropped\r\ndata: {\"dropped\": 3}\r\n\r\n\
        data: first\rdata:second\r\rid: 7\nretry: 1500\nevent: entry\nfield-without-colon\n\n\
        data: never finished"
        .as_bytes();

    fn expected() -> Vec<SseEvent> {
        vec![
            ev("entry", "{\"message\":\"héllo\"}"),
            ev("dropped", "{\"dropped\": 3}"),
            ev("message", "first\nsecond"),
        ]
    }

    #[test]
    fn parses_events_comments_and_all_line_endings() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(STREAM, &mut out).unwrap();
        assert_eq!(out, expected());
        assert_eq!(p.last_event_id(), Some("7"));
        assert_eq!(p.retry(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn any_split_into_chunks_gives_the_same_events() {
        // Covers lines, `\r\n` pairs and UTF-8 sequences cut at every place.
        for i in 0..=STREAM.len() {
            for j in i..=STREAM.len() {
                let got = parse_chunks(&[&STREAM[..i], &STREAM[i..j], &STREAM[j..]]);
                assert_eq!(got, expected(), "split at {i} and {j}");
            }
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), expected());
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_type_resets() {
        let got = parse_chunks(&[b"event: entry\n\ndata: x\n\n"]);
        assert_eq!(got, vec![ev("message", "x")]);
        let got = parse_chunks(&[b"data\n\n"]);
        assert_eq!(got, vec![ev("message", "")]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let got = parse_chunks(&[b"data: a\xffb\n\n"]);
        assert_eq!(got, vec![ev("message", "a\u{fffd}b")]);
    }

    #[test]
    fn over_long_lines_are_an_error() {
        let mut p = SseParser::with_max_line(8);
        let mut out = Vec::new();
        p.feed(b"data: 12", &mut out).unwrap();
        assert_eq!(p.feed(b"3\n", &mut out), Err(LineTooLong(8)));
        let mut p = SseParser::with_max_line(8);
        assert!(p.feed(b"data: 123456789", &mut out).is_err());
    }

    #[test]
    fn reset_drops_half_received_event() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.feed(b"event: entry\ndata: par", &mut out).unwrap();
        p.reset_connection();
        p.feed(b"data: whole\n\n", &mut out).unwrap();
        assert_eq!(out, vec![ev("message", "whole")]);
    }
}
