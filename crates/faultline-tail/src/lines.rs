//! Incremental line framing with a hard memory cap.
//!
//! [`LineSplitter`] is fed the bytes of one file in order and yields one
//! [`Line`] per `\n`. It never buffers more than `max_line_bytes + 1` bytes:
//! the rest of a longer line is skipped (counted, not stored) until its
//! newline, and the line is emitted truncated. Pure: no I/O, no clock.

use std::borrow::Cow;

use memchr::memchr;

/// One line of a file, with the byte range it occupies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Offset of the line's first byte.
    pub start: u64,
    /// Offset just past the line's `\n` (or past its last byte when it was
    /// flushed without one).
    pub end: u64,
    /// The text, without `\n` and a trailing `\r`; invalid UTF-8 replaced.
    pub text: String,
    /// Bytes beyond the cap were dropped.
    pub truncated: bool,
    /// Invalid UTF-8 was replaced with U+FFFD.
    pub lossy: bool,
    /// Emitted without a terminating newline (flush timeout, or the file
    /// ended for good: truncated, deleted, rotated away).
    pub partial: bool,
}

/// Whole lines of a file as one text: their texts (each as
/// [`Line::text`] has it) joined with `\n`. The context a catch-up
/// attaches to a record ([`crate::Record::lines_before`]); one allocation
/// for all the lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lines {
    text: String,
    count: usize,
}

impl Lines {
    /// The `count` complete lines of `raw` (each with its `\n`; the
    /// longest `longest` bytes without it), as a line cut at `max` reads.
    pub(crate) fn from_raw(raw: &[u8], count: usize, longest: usize, max: usize) -> Lines {
        if count == 0 {
            return Lines::default();
        }
        let body = &raw[..raw.len() - 1];
        // Usually the bytes are the text already: no `\r` to strip, no
        // line to cut, valid UTF-8 (then every line is: `\n` is ASCII).
        if longest <= max
            && memchr(b'\r', body).is_none()
            && let Ok(text) = std::str::from_utf8(body)
        {
            return Lines {
                text: text.to_owned(),
                count,
            };
        }
        let mut text = String::with_capacity(raw.len());
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                text.push('\n');
            }
            text.push_str(&line_text(line, max, false, false).0);
        }
        Lines { text, count }
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.count
    }

    /// No line.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The lines, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (self.count > 0)
            .then(|| self.text.split('\n'))
            .into_iter()
            .flatten()
    }

    /// The lines joined with `\n`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The lines joined with `\n`.
    pub fn into_string(self) -> String {
        self.text
    }

    /// The last `n` of `self`'s lines, then `later`'s.
    pub(crate) fn last_then(&self, n: usize, later: Lines) -> Lines {
        let keep = n.min(self.count);
        if keep == 0 {
            return later;
        }
        let mut text: String = self
            .iter()
            .skip(self.count - keep)
            .collect::<Vec<_>>()
            .join("\n");
        if !later.is_empty() {
            text.push('\n');
            text.push_str(&later.text);
        }
        Lines {
            text,
            count: keep + later.count,
        }
    }
}

/// Splits a byte stream into [`Line`]s.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    buf: Vec<u8>,
    line_start: u64,
    pos: u64,
    skipping: bool,
    /// The over-long line was already emitted by `flush`; the rest of it up
    /// to its newline is skipped without emitting anything more.
    tail_only: bool,
    skipped: u64,
}

impl LineSplitter {
    /// A splitter whose next byte is at `offset`, capping lines at `max`
    /// bytes (at least 1).
    pub fn new(offset: u64, max: usize) -> Self {
        LineSplitter {
            max: max.max(1),
            buf: Vec::new(),
            line_start: offset,
            pos: offset,
            skipping: false,
            tail_only: false,
            skipped: 0,
        }
    }

    /// Offset of the next byte to feed (= bytes consumed so far).
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Whether bytes of an unfinished line are held.
    pub fn has_pending(&self) -> bool {
        !self.tail_only && self.pos > self.line_start
    }

    /// Bytes dropped so far because lines exceeded the cap.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// Whether the next byte fed starts a line: nothing held, no over-long
    /// line being skipped.
    pub(crate) fn is_clean(&self) -> bool {
        self.buf.is_empty() && !self.skipping && !self.tail_only && self.pos == self.line_start
    }

    /// Moves a clean splitter past complete lines that were framed
    /// elsewhere (the catch-up scan); `offset` must be a line start.
    pub(crate) fn advance_clean(&mut self, offset: u64) {
        debug_assert!(self.is_clean() && offset >= self.pos);
        self.pos = offset;
        self.line_start = offset;
    }

    /// Forgets everything and restarts at `offset` (after a truncation).
    pub fn reset(&mut self, offset: u64) {
        self.buf.clear();
        self.buf.shrink_to(64 * 1024);
        self.line_start = offset;
        self.pos = offset;
        self.skipping = false;
        self.tail_only = false;
    }

    /// Feeds the next bytes of the file; complete lines go to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut impl FnMut(Line)) {
        let mut rest = data;
        while !rest.is_empty() {
            match memchr(b'\n', rest) {
                Some(i) => {
                    let end = self.pos + i as u64 + 1;
                    if self.tail_only {
                        self.skipped += i as u64;
                        self.tail_only = false;
                        self.skipping = false;
                        self.pos = end;
                        self.line_start = end;
                        rest = &rest[i + 1..];
                        continue;
                    }
                    let line = if self.buf.is_empty() && !self.skipping {
                        // Fast path: the whole line is in this chunk.
                        make_line(self.line_start, end, &rest[..i], self.max, false, false)
                    } else {
                        self.append(&rest[..i]);
                        let l = make_line(
                            self.line_start,
                            end,
                            &self.buf,
                            self.max,
                            self.skipping,
                            false,
                        );
                        self.buf.clear();
                        if self.buf.capacity() > 64 * 1024 {
                            self.buf.shrink_to(64 * 1024);
                        }
                        l
                    };
                    self.skipping = false;
                    self.pos = end;
                    self.line_start = end;
                    out(line);
                    rest = &rest[i + 1..];
                }
                None => {
                    self.append(rest);
                    self.pos += rest.len() as u64;
                    break;
                }
            }
        }
    }

    /// Emits the held unfinished line, if any, as a `partial` line. Bytes of
    /// the same physical line that arrive later form a new line that starts
    /// where this one ended, so nothing is read twice or skipped. When the
    /// line was already over the cap, the splitter keeps skipping until the
    /// next newline.
    pub fn flush(&mut self) -> Option<Line> {
        if !self.has_pending() {
            return None;
        }
        let was_skipping = self.skipping;
        let line = make_line(
            self.line_start,
            self.pos,
            &self.buf,
            self.max,
            was_skipping,
            true,
        );
        self.buf.clear();
        self.line_start = self.pos;
        // The rest of an over-long line is still dropped, silently.
        self.tail_only = was_skipping;
        Some(line)
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.skipping {
            self.skipped += bytes.len() as u64;
            return;
        }
        // Keep one byte past the cap so a trailing '\r' can be stripped
        // without calling the line truncated.
        let room = (self.max + 1).saturating_sub(self.buf.len());
        if bytes.len() <= room {
            self.buf.extend_from_slice(bytes);
        } else {
            self.buf.extend_from_slice(&bytes[..room]);
            self.skipped += (bytes.len() - room) as u64;
            self.skipping = true;
        }
    }
}

/// The text of a line as [`make_line`] builds it: one trailing `\r`
/// stripped (when the line is complete), the cap applied on a UTF-8
/// boundary, invalid UTF-8 replaced. Borrowed when the bytes are valid
/// UTF-8. Returns (text, truncated, lossy).
pub(crate) fn line_text(
    bytes: &[u8],
    max: usize,
    mut truncated: bool,
    partial: bool,
) -> (Cow<'_, str>, bool, bool) {
    let mut b = bytes;
    if !truncated && !partial && b.last() == Some(&b'\r') {
        b = &b[..b.len() - 1];
    }
    if b.len() > max {
        b = &b[..max];
        truncated = true;
    }
    if truncated {
        // Do not turn a character cut by the cap into U+FFFD.
        if let Err(e) = std::str::from_utf8(b)
            && e.error_len().is_none()
        {
            b = &b[..e.valid_up_to()];
        }
    }
    match std::str::from_utf8(b) {
        Ok(s) => (Cow::Borrowed(s), truncated, false),
        Err(_) => (String::from_utf8_lossy(b), truncated, true),
    }
}

/// Builds a line from its bytes: strips one trailing `\r` (when the line is
/// complete), applies the cap on a UTF-8 boundary, converts lossily.
pub(crate) fn make_line(
    start: u64,
    end: u64,
    bytes: &[u8],
    max: usize,
    truncated: bool,
    partial: bool,
) -> Line {
    let (text, truncated, lossy) = line_text(bytes, max, truncated, partial);
    Line {
        start,
        end,
        text: text.into_owned(),
        truncated,
        lossy,
        partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Joined lines read as each line alone reads: `\r` stripped, cut at
    /// the cap on a character boundary, invalid UTF-8 replaced.
    #[test]
    fn lines_read_as_each_line_does() {
        let raw: &[u8] =
            b"plain\nwith cr\r\n\nlong line here\nbad \xff byte\ncaf\xc3\xa9 au lait\n";
        let texts: Vec<String> = raw[..raw.len() - 1]
            .split(|&b| b == b'\n')
            .map(|l| line_text(l, 8, false, false).0.into_owned())
            .collect();
        let l = Lines::from_raw(raw, 6, 14, 8);
        assert_eq!(l.iter().collect::<Vec<_>>(), texts);
        assert_eq!(l.iter().nth(5), Some("caf\u{e9} au"));
        // The fast path: the bytes are the text.
        let l = Lines::from_raw(b"a\n\nbc\n", 3, 2, 8);
        assert_eq!((l.as_str(), l.len()), ("a\n\nbc", 3));
        assert_eq!(l.iter().collect::<Vec<_>>(), ["a", "", "bc"]);
        // One empty line is not no line.
        let one = Lines::from_raw(b"\n", 1, 0, 8);
        assert_eq!(one.iter().collect::<Vec<_>>(), [""]);
        assert!(Lines::default().iter().next().is_none());
        // The last lines of one, then another.
        let m = l.last_then(2, one.clone());
        assert_eq!(m.iter().collect::<Vec<_>>(), ["", "bc", ""]);
        assert_eq!(m.len(), 3);
        assert_eq!(Lines::default().last_then(2, one.clone()), one);
        assert_eq!(l.last_then(0, Lines::default()), Lines::default());
    }

    fn split(chunks: &[&[u8]], max: usize) -> (Vec<Line>, LineSplitter) {
        let mut s = LineSplitter::new(0, max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |l| out.push(l));
        }
        (out, s)
    }

    #[test]
    fn splits_on_newline_and_strips_cr() {
        let (lines, s) = split(&[b"a\r\nbb\nc"], 100);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "a");
        assert_eq!((lines[0].start, lines[0].end), (0, 3));
        assert_eq!(lines[1].text, "bb");
        assert_eq!((lines[1].start, lines[1].end), (3, 6));
        assert!(s.has_pending());
        assert_eq!(s.position(), 7);
    }

    #[test]
    fn line_across_chunks_is_joined() {
        let (lines, _) = split(&[b"hel", b"lo wo", b"rld\r", b"\nnext\n"], 100);
        assert_eq!(lines[0].text, "hello world");
        assert_eq!((lines[0].start, lines[0].end), (0, 13));
        assert_eq!(lines[1].text, "next");
        assert_eq!(lines[1].start, 13);
    }

    #[test]
    fn empty_lines_are_lines() {
        let (lines, _) = split(&[b"\n\r\n\n"], 10);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.text.is_empty()));
    }

    #[test]
    fn invalid_utf8_is_lossy_and_flagged() {
        let (lines, _) = split(&[b"ok \xff\xfe end\n"], 100);
        assert!(lines[0].lossy);
        assert_eq!(lines[0].text, "ok \u{fffd}\u{fffd} end");
    }

    #[test]
    fn long_line_is_capped_and_rest_skipped_without_buffering() {
        let mut s = LineSplitter::new(0, 8);
        let mut out = Vec::new();
        let big = vec![b'x'; 1 << 20];
        for _ in 0..100 {
            s.feed(&big, &mut |l| out.push(l));
        }
        assert!(out.is_empty());
        assert!(s.buf.capacity() < 1024, "must not buffer the long line");
        s.feed(b"\nshort\n", &mut |l| out.push(l));
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "xxxxxxxx");
        assert!(out[0].truncated);
        assert_eq!(out[0].end, 100 * (1 << 20) + 1);
        assert_eq!(out[1].text, "short");
        assert!(!out[1].truncated);
        assert_eq!(s.skipped_bytes(), 100 * (1 << 20) - 9);
    }

    #[test]
    fn cap_exactly_with_crlf_is_not_truncated() {
        let (lines, _) = split(&[b"12345678\r\n"], 8);
        assert_eq!(lines[0].text, "12345678");
        assert!(!lines[0].truncated);
        let (lines, _) = split(&[b"123456789\n"], 8);
        assert_eq!(lines[0].text, "12345678");
        assert!(lines[0].truncated);
    }

    #[test]
    fn cap_does_not_split_a_character() {
        // "é" is two bytes; a cap of 4 falls inside the third "é".
        let (lines, _) = split(&["ééé\n".as_bytes()], 5);
        assert_eq!(lines[0].text, "éé");
        assert!(lines[0].truncated);
        assert!(!lines[0].lossy);
    }

    #[test]
    fn flush_emits_partial_and_continues_without_overlap() {
        let (mut lines, mut s) = split(&[b"a\nhalf"], 100);
        let p = s.flush().unwrap();
        assert!(p.partial);
        assert_eq!((p.start, p.end, p.text.as_str()), (2, 6, "half"));
        assert!(s.flush().is_none());
        s.feed(b" rest\n", &mut |l| lines.push(l));
        let last = lines.last().unwrap();
        assert_eq!((last.start, last.end, last.text.as_str()), (6, 12, " rest"));
    }

    #[test]
    fn flush_of_overlong_line_keeps_skipping() {
        let (_, mut s) = split(&[b"0123456789abcdef"], 4);
        let p = s.flush().unwrap();
        assert!(p.partial && p.truncated);
        assert_eq!(p.text, "0123");
        assert_eq!(p.end, 16);
        let mut out = Vec::new();
        s.feed(b"more of the same line\nnew\n", &mut |l| out.push(l));
        // The rest of the long line is skipped silently; the next line
        // starts after its newline.
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "new");
        assert_eq!(out[0].start, 16 + 22);
        assert!(s.flush().is_none());
    }

    #[test]
    fn offsets_cover_the_stream_exactly() {
        let data = b"one\ntwo\r\n\nthree\nfour";
        for cut in 0..data.len() {
            let (mut lines, mut s) = split(&[&data[..cut], &data[cut..]], 100);
            lines.extend(s.flush());
            let mut at = 0;
            for l in &lines {
                assert_eq!(l.start, at);
                at = l.end;
            }
            assert_eq!(at, data.len() as u64);
        }
    }
}
