//! Message normalisation: masking the variable parts of a message with
//! typed placeholders.
//!
//! The masker is a hand-written byte scanner (no regular expressions): one
//! pass over the message, one output buffer reused between calls, no
//! allocation per token. It produces two views of the masked message:
//!
//! * the *display* text, with typed placeholders (`<num>`, `<ip:port>` …),
//!   which is what users see in templates;
//! * the *key* bytes, where every placeholder is the same marker byte. Two
//!   messages group together when their keys agree, so a field that prints
//!   sometimes as `00100788` (`<num>`) and sometimes as `0065b4ca` (`<hex>`)
//!   does not split a group.
//!
//! Masking is idempotent: placeholders are recognised on input and kept, and
//! every rewrite produces text that the scanner maps to itself.

use crate::hash::hash_bytes;

/// A typed placeholder that replaces a variable part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// A value of unknown type: the right-hand side of `key=value`, or a
    /// position the template miner found to vary.
    Any,
    /// An integer or decimal number (`42`, `-3.5`, `1e-9`, `3.4.5`).
    Num,
    /// A hexadecimal number (`0x1f`, `065b4cac`).
    Hex,
    /// A hex digest of md5/sha1/sha256/sha512 length.
    Hash,
    /// A UUID (`8-4-4-4-12` hex).
    Uuid,
    /// An IPv4 or IPv6 address.
    Ip,
    /// An IPv4 address with a port.
    IpPort,
    /// A host name with a port (`db-1.local:5432`).
    HostPort,
    /// A domain name with a well-known top-level domain.
    Host,
    /// A URL (`scheme://…`).
    Url,
    /// An e-mail address.
    Email,
    /// A file-system path (`/var/log/x.log`, `./a`, `C:\x`, `a/b/c`).
    Path,
    /// A calendar date (`2016-04-25`, `06/10/2013`).
    Date,
    /// A time of day (`08:56:12,413`).
    Time,
    /// An ISO-8601 date and time in one token.
    DateTime,
    /// A duration with a unit (`10000ms`, `1h30m`, `21 ms`).
    Duration,
    /// A memory size with a unit (`8KB`, `93.0 B`, `1.5 GiB`).
    Size,
    /// A quoted string (`"…"`, or `'…'` that contains spaces).
    Quoted,
    /// An identifier that mixes letters and digits (`blk_-123`, `node7`).
    Id,
    /// A MAC address.
    Mac,
    /// A W3C `traceparent` value.
    TraceParent,
}

impl Placeholder {
    /// Every placeholder, in the order the scanner tries to recognise them
    /// on input (longer texts that share a prefix come first).
    pub const ALL: [Placeholder; 21] = [
        Placeholder::Any,
        Placeholder::Num,
        Placeholder::Hex,
        Placeholder::Hash,
        Placeholder::Uuid,
        Placeholder::IpPort,
        Placeholder::Ip,
        Placeholder::HostPort,
        Placeholder::Host,
        Placeholder::Url,
        Placeholder::Email,
        Placeholder::Path,
        Placeholder::DateTime,
        Placeholder::Date,
        Placeholder::Time,
        Placeholder::Duration,
        Placeholder::Size,
        Placeholder::Quoted,
        Placeholder::Id,
        Placeholder::Mac,
        Placeholder::TraceParent,
    ];

    /// Placeholders of one class are alike when runs of list values are
    /// collapsed (a list may print numbers in decimal and in hex).
    fn class(self) -> u32 {
        match self {
            Placeholder::Num | Placeholder::Hex | Placeholder::Hash | Placeholder::Id => 1,
            other => other as u32 + 2,
        }
    }

    /// The text of the placeholder, e.g. `<num>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Placeholder::Any => "<*>",
            Placeholder::Num => "<num>",
            Placeholder::Hex => "<hex>",
            Placeholder::Hash => "<hash>",
            Placeholder::Uuid => "<uuid>",
            Placeholder::Ip => "<ip>",
            Placeholder::IpPort => "<ip:port>",
            Placeholder::HostPort => "<host:port>",
            Placeholder::Host => "<host>",
            Placeholder::Url => "<url>",
            Placeholder::Email => "<email>",
            Placeholder::Path => "<path>",
            Placeholder::Date => "<date>",
            Placeholder::Time => "<time>",
            Placeholder::DateTime => "<datetime>",
            Placeholder::Duration => "<duration>",
            Placeholder::Size => "<size>",
            Placeholder::Quoted => "<quoted>",
            Placeholder::Id => "<id>",
            Placeholder::Mac => "<mac>",
            Placeholder::TraceParent => "<traceparent>",
        }
    }
}

/// The byte that stands for any placeholder in the grouping key.
pub(crate) const KEY_MARK: u8 = 0x01;

/// Token flag: the token contains at least one placeholder.
pub(crate) const F_HAS_PH: u8 = 1;
/// Token flag: placeholders and punctuation only, no letters.
pub(crate) const F_PURE: u8 = 2;
/// Token flag: an `UPPER_CASE` word: an enum value such as a state or an
/// event type. Those name distinct events and never become variables.
pub(crate) const F_ENUM: u8 = 4;
/// Token flag: the miner may turn this position into a variable when it
/// sees enough different values there.
pub(crate) const F_MERGEABLE: u8 = 8;

/// One token of a masked message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tok {
    /// Byte range in the display text.
    pub start: u32,
    pub end: u32,
    /// Start of the token in the key buffer.
    pub kstart: u32,
    /// Hash of the token's key bytes (placeholders all alike).
    pub hash: u64,
    /// Classes of the placeholders in the token (number-like ones alike),
    /// so that `<date> <time>` is not collapsed as a list.
    pub sig: u32,
    pub flags: u8,
}

/// A reusable message masker. Keep one per thread and call
/// [`Masker::mask`] for each message: the buffers are reused.
#[derive(Debug, Default, Clone)]
pub struct Masker {
    out: String,
    key: Vec<u8>,
    toks: Vec<Tok>,
    scratch: String,
}

/// Per-token counters while a token is being emitted.
#[derive(Default, Clone, Copy)]
struct TokAcc {
    start: usize,
    kstart: usize,
    upper: u32,
    lower: u32,
    has_ph: bool,
    sig: u32,
}

impl Masker {
    /// A masker with empty buffers.
    pub fn new() -> Masker {
        Masker::default()
    }

    /// Masks `msg` and returns the masked text (tokens joined by one space).
    pub fn mask(&mut self, msg: &str) -> &str {
        self.run(msg);
        &self.out
    }

    pub(crate) fn toks(&self) -> &[Tok] {
        &self.toks
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn tok_text(&self, t: &Tok) -> &str {
        &self.out[t.start as usize..t.end as usize]
    }

    /// Runs the scanner over `msg`, filling the buffers.
    pub(crate) fn run(&mut self, msg: &str) {
        self.out.clear();
        self.key.clear();
        self.toks.clear();
        let b = msg.as_bytes();
        let n = b.len();
        let mut i = 0;
        let mut carry_eq = false;
        let mut sq_closer = usize::MAX;
        loop {
            // Separators: whitespace and "rulers" (`......`, `*****`).
            while i < n {
                if is_ws(b[i]) {
                    i += 1;
                } else {
                    let r = ruler_len(b, i);
                    if r == 0 {
                        break;
                    }
                    i += r;
                }
            }
            if i >= n {
                break;
            }
            if !self.toks.is_empty() {
                self.out.push(' ');
                self.key.push(b' ');
            }
            let mut acc = TokAcc {
                start: self.out.len(),
                kstart: self.key.len(),
                ..TokAcc::default()
            };
            let feats = token_features(b, i);
            let mut after_eq = carry_eq && feats & T_EQ == 0;
            let mut open = true;
            while i < n && !is_ws(b[i]) {
                if ruler_len(b, i) > 0 {
                    break;
                }
                let c = b[i];
                if c == b'<'
                    && let Some(p) = parse_placeholder(&b[i..])
                {
                    self.emit_ph(&mut acc, p);
                    i += p.as_str().len();
                    // Dots right after a placeholder are the trailing dots a
                    // masked segment left behind (`0./x` → `<num>./x`): they
                    // never start a new segment, so masking stays idempotent.
                    let dots = b[i..].iter().take_while(|&&x| x == b'.').count();
                    if dots > 0 {
                        self.emit_raw(&mut acc, msg, i, i + dots);
                        i += dots;
                    }
                    open = false;
                    after_eq = false;
                    continue;
                }
                if open
                    && c == b'"'
                    && let Some(j) = memchr(b'"', b, i + 1)
                {
                    self.emit_ph(&mut acc, Placeholder::Quoted);
                    i = j + 1;
                    open = false;
                    after_eq = false;
                    continue;
                }
                if open
                    && c == b'\''
                    && i != sq_closer
                    && let Some(j) = close_single_quote(b, i + 1)
                {
                    if b[i + 1..j].iter().any(|&x| is_ws(x)) {
                        self.emit_ph(&mut acc, Placeholder::Quoted);
                        i = j + 1;
                        open = false;
                        after_eq = false;
                        continue;
                    }
                    // `'word'`: kept (its content is masked as usual);
                    // its closing quote never opens another string.
                    sq_closer = j;
                }
                if is_delim(c) {
                    if open
                        && c == b'/'
                        && let Some(j) = match_abs_path(b, i)
                    {
                        self.emit_ph(&mut acc, Placeholder::Path);
                        i = j;
                        open = false;
                        after_eq = false;
                        continue;
                    }
                    if c == b'\\'
                        && open
                        && let Some(j) = match_unc_path(b, i)
                    {
                        self.emit_ph(&mut acc, Placeholder::Path);
                        i = j;
                        open = false;
                        after_eq = false;
                        continue;
                    }
                    self.emit_raw(&mut acc, msg, i, i + 1);
                    after_eq = c == b'=';
                    open = true;
                    i += 1;
                    continue;
                }
                // A segment starts here.
                if let Some((p, j)) = match_typed(b, i, feats) {
                    self.emit_ph(&mut acc, p);
                    i = j;
                    open = false;
                    after_eq = false;
                    continue;
                }
                let j = seg_end(b, i);
                // Trailing dots end a sentence; they are not part of a value.
                let mut k = j;
                while k > i + 1 && b[k - 1] == b'.' {
                    k -= 1;
                }
                let next = if j < n { b[j] } else { b' ' };
                match classify_segment(&b[i..k], after_eq, next) {
                    Some(p) => {
                        self.emit_ph(&mut acc, p);
                        self.emit_raw(&mut acc, msg, k, j);
                    }
                    None => self.emit_raw(&mut acc, msg, i, j),
                }
                i = j;
                open = false;
                after_eq = false;
            }
            carry_eq = self.out.ends_with('=');
            self.finish_token(acc);
        }
    }

    #[inline]
    fn emit_ph(&mut self, acc: &mut TokAcc, p: Placeholder) {
        self.out.push_str(p.as_str());
        self.key.push(KEY_MARK);
        acc.has_ph = true;
        acc.sig = acc.sig.wrapping_mul(31).wrapping_add(p.class());
    }

    #[inline]
    fn emit_raw(&mut self, acc: &mut TokAcc, msg: &str, a: usize, z: usize) {
        let s = &msg[a..z];
        for &c in s.as_bytes() {
            let k = class(c);
            acc.upper += u32::from(k & C_UPPER != 0);
            acc.lower += u32::from(k & C_LOWER != 0);
        }
        self.out.push_str(s);
        self.key.extend_from_slice(s.as_bytes());
    }

    fn finish_token(&mut self, acc: TokAcc) {
        let start = acc.start;
        let end = self.out.len();
        let kstart = acc.kstart;
        if end == start {
            // Nothing was emitted (cannot happen for a non-empty token, but
            // keep the separator invariant either way).
            self.pop_separator(start, kstart);
            return;
        }
        // `93.0 KB` → `<size>`, `21 ms` → `<duration>`.
        if !acc.has_ph
            && let Some(prev) = self.toks.last().copied()
            && &self.out[prev.start as usize..prev.end as usize] == "<num>"
        {
            let text = &self.out[start..end];
            let core_len = text
                .trim_end_matches([',', ';', '.', ')', ']', '}', ':'])
                .len();
            if let Some(p) = unit_kind(&text[..core_len]) {
                self.scratch.clear();
                self.scratch.push_str(&text[core_len..]);
                self.toks.pop();
                self.out.truncate(prev.start as usize);
                self.key.truncate(prev.kstart as usize);
                let acc2 = TokAcc {
                    start: prev.start as usize,
                    kstart: prev.kstart as usize,
                    has_ph: true,
                    sig: p.class(),
                    ..TokAcc::default()
                };
                self.out.push_str(p.as_str());
                self.key.push(KEY_MARK);
                self.out.push_str(&self.scratch);
                self.key.extend_from_slice(self.scratch.as_bytes());
                self.finish_token(acc2);
                return;
            }
        }
        let kend = self.key.len();
        let letters = acc.upper + acc.lower;
        let mut flags = 0u8;
        if acc.has_ph {
            flags |= F_HAS_PH;
            if letters == 0 {
                flags |= F_PURE;
            }
        }
        let is_enum = !acc.has_ph && acc.lower == 0 && acc.upper >= 2;
        if is_enum {
            flags |= F_ENUM;
        } else if letters > 0 || acc.has_ph {
            flags |= F_MERGEABLE;
        }
        let hash = hash_bytes(&self.key[kstart..kend]);
        // A run of equal values (`blk_1 blk_2 blk_3`) is one list variable.
        if flags & F_PURE != 0
            && let Some(prev) = self.toks.last()
            && prev.flags & F_PURE != 0
            && prev.hash == hash
            && prev.sig == acc.sig
        {
            self.out.truncate(start);
            self.key.truncate(kstart);
            self.pop_separator(start, kstart);
            return;
        }
        self.toks.push(Tok {
            start: start as u32,
            end: end as u32,
            kstart: kstart as u32,
            hash,
            sig: acc.sig,
            flags,
        });
        self.date_words();
    }

    /// `Aug 9` and `Thu Aug 9` are dates: month and weekday names next to
    /// a day number vary with the date, they do not name events.
    fn date_words(&mut self) {
        let n = self.toks.len();
        if n < 2 {
            return;
        }
        let last = self.tok_text(&self.toks[n - 1]);
        let prev = self.tok_text(&self.toks[n - 2]);
        if last == "<num>" && is_month(prev) {
            self.replace_last(2, Placeholder::Date);
            self.date_words();
        } else if last == "<date>" && is_weekday(prev) {
            self.replace_last(2, Placeholder::Date);
        }
    }

    /// Replaces the last `k` tokens by one placeholder token.
    fn replace_last(&mut self, k: usize, p: Placeholder) {
        let first = self.toks[self.toks.len() - k];
        self.toks.truncate(self.toks.len() - k);
        self.out.truncate(first.start as usize);
        self.key.truncate(first.kstart as usize);
        let start = self.out.len();
        let kstart = self.key.len();
        let hash = hash_bytes(&[KEY_MARK]);
        if let Some(prev) = self.toks.last()
            && prev.flags & F_PURE != 0
            && prev.hash == hash
            && prev.sig == p.class()
        {
            // `<date> Jan 5` is one date, as a list of values is one.
            self.pop_separator(start, kstart);
            return;
        }
        self.out.push_str(p.as_str());
        self.key.push(KEY_MARK);
        self.toks.push(Tok {
            start: start as u32,
            end: self.out.len() as u32,
            kstart: kstart as u32,
            hash,
            sig: p.class(),
            flags: F_HAS_PH | F_PURE | F_MERGEABLE,
        });
    }

    fn pop_separator(&mut self, start: usize, kstart: usize) {
        if !self.toks.is_empty() && start > 0 {
            self.out.truncate(start - 1);
            self.key.truncate(kstart - 1);
        }
    }
}

fn is_month(s: &str) -> bool {
    matches!(
        s,
        "Jan"
            | "Feb"
            | "Mar"
            | "Apr"
            | "May"
            | "Jun"
            | "Jul"
            | "Aug"
            | "Sep"
            | "Sept"
            | "Oct"
            | "Nov"
            | "Dec"
            | "January"
            | "February"
            | "March"
            | "April"
            | "June"
            | "July"
            | "August"
            | "September"
            | "October"
            | "November"
            | "December"
    )
}

fn is_weekday(s: &str) -> bool {
    matches!(
        s.trim_end_matches(','),
        "Mon"
            | "Tue"
            | "Wed"
            | "Thu"
            | "Fri"
            | "Sat"
            | "Sun"
            | "Monday"
            | "Tuesday"
            | "Wednesday"
            | "Thursday"
            | "Friday"
            | "Saturday"
            | "Sunday"
    )
}

/// Masks one message with a fresh masker (convenience; prefer a reused
/// [`Masker`] on hot paths).
///
/// The result is a fixed point: masking it again changes nothing. One pass of
/// the scanner reaches that for real log text, but on arbitrary text a mask's
/// output can complete a pattern the first pass did not see (`A/¡//A`), so
/// the pass is repeated until nothing changes (at most a few times). The
/// grouper's hot path uses a single pass.
pub fn mask(msg: &str) -> String {
    let mut m = Masker::new();
    let mut cur = m.mask(msg).to_owned();
    for _ in 0..8 {
        let next = m.mask(&cur);
        if next == cur {
            break;
        }
        cur = next.to_owned();
    }
    cur
}

// Byte classes, looked up in one table on the hot path.
const C_WS: u16 = 1 << 9;
const C_DELIM: u16 = 1 << 10;
const C_RULER: u16 = 1 << 11;
const C_UPPER: u16 = 1 << 12;
const C_LOWER: u16 = 1 << 13;

const fn byte_class(c: u8) -> u16 {
    let mut k = match c {
        b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => C_WS,
        b'=' | b':' | b',' | b';' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'<' | b'>'
        | b'"' | b'\'' | b'@' | b'#' | b'|' | b'&' | b'!' | b'?' | b'*' | b'/' | b'\\' | b'+'
        | b'%' | b'`' => C_DELIM,
        b'A'..=b'Z' => C_UPPER,
        b'a'..=b'z' | 0x80..=0xff => C_LOWER,
        _ => 0,
    };
    if matches!(c, b'.' | b'*' | b'-' | b'=' | b'_' | b'~' | b'#') {
        k |= C_RULER;
    }
    k | match c {
        b'=' => T_EQ,
        b'/' => T_SLASH,
        b'@' => T_AT,
        b':' => T_COLON,
        b'.' => T_DOT,
        b'0'..=b'9' => T_DIGIT,
        b'-' => T_DASH,
        b'\\' => T_BACKSLASH,
        b'~' => T_TILDE,
        _ => 0,
    }
}

static CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = byte_class(i as u8);
        i += 1;
    }
    t
};

#[inline]
fn class(c: u8) -> u16 {
    CLASS[c as usize]
}

#[inline]
fn is_ws(c: u8) -> bool {
    class(c) & C_WS != 0
}

/// Delimiters split a token into segments; they are kept verbatim.
#[inline]
fn is_delim(c: u8) -> bool {
    class(c) & C_DELIM != 0
}

/// Length of a "ruler" (three or more of the same filler character) at `i`,
/// or 0. Rulers (`......`, `*****`, `---`) are layout, not content.
#[inline]
fn ruler_len(b: &[u8], i: usize) -> usize {
    let c = b[i];
    if class(c) & C_RULER == 0 {
        return 0;
    }
    let mut j = i + 1;
    while j < b.len() && b[j] == c {
        j += 1;
    }
    if j - i >= 3 { j - i } else { 0 }
}

const T_EQ: u16 = 1;
const T_SLASH: u16 = 2;
const T_AT: u16 = 4;
const T_COLON: u16 = 8;
const T_DOT: u16 = 16;
const T_DIGIT: u16 = 32;
const T_DASH: u16 = 64;
const T_BACKSLASH: u16 = 128;
const T_TILDE: u16 = 256;

/// Which special characters the token starting at `i` contains: a cheap
/// filter that spares the typed matchers that cannot match.
#[inline]
fn token_features(b: &[u8], mut i: usize) -> u16 {
    let mut f = 0;
    while i < b.len() {
        let k = class(b[i]);
        if k & C_WS != 0 {
            break;
        }
        f |= k;
        i += 1;
    }
    f & 0x1ff
}

#[inline]
fn memchr(c: u8, b: &[u8], from: usize) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|&x| x == c)
        .map(|p| p + from)
}

/// The closing `'` of a single-quoted string opened before `from`: one that
/// is not followed by a letter or digit (so `don't` does not close it).
fn close_single_quote(b: &[u8], from: usize) -> Option<usize> {
    let mut j = from;
    while j < b.len() {
        // A quote followed by a letter, a digit or a placeholder (what a
        // masked value left) is an apostrophe, not a closing quote.
        if b[j] == b'\''
            && (j + 1 == b.len()
                || !(b[j + 1].is_ascii_alphanumeric() || parse_placeholder(&b[j + 1..]).is_some()))
        {
            return Some(j);
        }
        j += 1;
    }
    None
}

fn parse_placeholder(b: &[u8]) -> Option<Placeholder> {
    if b.len() < 3 {
        return None;
    }
    Placeholder::ALL
        .into_iter()
        .find(|p| b.starts_with(p.as_str().as_bytes()))
}

/// End of a plain segment starting at `i`.
#[inline]
fn seg_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        let k = class(b[i]);
        if k & (C_WS | C_DELIM) != 0 || (k & C_RULER != 0 && ruler_len(b, i) > 0) {
            break;
        }
        i += 1;
    }
    i
}

#[inline]
fn is_path_char(c: u8) -> bool {
    !is_ws(c)
        && !matches!(
            c,
            b'"' | b'\''
                | b'<'
                | b'>'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b','
                | b';'
                | b'|'
                | b'='
                | b':'
                | b'`'
        )
}

/// End of the path-like run starting at `i`, with trailing dots removed.
fn path_run(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() && is_path_char(b[j]) {
        j += 1;
    }
    while j > i + 1 && b[j - 1] == b'.' {
        j -= 1;
    }
    j
}

/// `/var/log/x`, `/default-rack`, `/mapreduce/*`: a slash at an open
/// position followed by a name. Not `/10.0.0.1` (an address), not `/`.
fn match_abs_path(b: &[u8], i: usize) -> Option<usize> {
    let j = path_run(b, i);
    if j <= i + 1 {
        return None;
    }
    if match_ipv4(b, i + 1).is_some() {
        return None;
    }
    if !b[i + 1..j].iter().any(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(j)
}

fn match_unc_path(b: &[u8], i: usize) -> Option<usize> {
    // `\\<num>` is what a too-short `\\0` leaves behind: not a path, so
    // masking stays idempotent.
    if b.get(i + 1) != Some(&b'\\') || b.get(i + 2) == Some(&b'<') {
        return None;
    }
    let mut j = i + 2;
    while j < b.len() && !is_ws(b[j]) {
        j += 1;
    }
    (j > i + 3).then_some(j)
}

#[inline]
fn boundary(b: &[u8], j: usize) -> bool {
    j >= b.len() || !(b[j].is_ascii_alphanumeric() || b[j] == b'_')
}

fn digits(b: &[u8], i: usize, max: usize) -> usize {
    let mut j = i;
    while j < b.len() && j - i < max && b[j].is_ascii_digit() {
        j += 1;
    }
    j - i
}

fn hexes(b: &[u8], i: usize) -> usize {
    let mut j = i;
    while j < b.len() && b[j].is_ascii_hexdigit() {
        j += 1;
    }
    j - i
}

/// IPv4 with an optional `:port`.
fn match_ipv4(b: &[u8], i: usize) -> Option<(Placeholder, usize)> {
    let mut j = i;
    for k in 0..4 {
        let d = digits(b, j, 3);
        if d == 0 {
            return None;
        }
        let v: u32 = b[j..j + d]
            .iter()
            .fold(0, |a, &c| a * 10 + u32::from(c - b'0'));
        if v > 255 {
            return None;
        }
        j += d;
        if k < 3 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
    }
    if j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
        return None;
    }
    // `1.2.3.4.5` or `5.36.59.76.dsl.example.net` is something else.
    if b.get(j) == Some(&b'.') && b.get(j + 1).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    if b.get(j) == Some(&b':') {
        let d = digits(b, j + 1, 5);
        if d > 0 && boundary(b, j + 1 + d) {
            return Some((Placeholder::IpPort, j + 1 + d));
        }
    }
    Some((Placeholder::Ip, j))
}

/// `HH:MM[:SS][.frac]` with an optional `Z`.
fn match_time(b: &[u8], i: usize) -> Option<usize> {
    let h = digits(b, i, 2);
    if h == 0 || b.get(i + h) != Some(&b':') {
        return None;
    }
    let mut j = i + h + 1;
    if digits(b, j, 2) != 2 {
        return None;
    }
    j += 2;
    if b.get(j) == Some(&b':') && digits(b, j + 1, 2) == 2 {
        j += 3;
        if matches!(b.get(j), Some(b'.' | b',')) {
            let f = digits(b, j + 1, 9);
            if f > 0 {
                j += 1 + f;
            }
        }
    }
    if b.get(j) == Some(&b'Z') {
        j += 1;
    }
    boundary(b, j).then_some(j)
}

/// `YYYY-MM-DD`, `YYYY/MM/DD`, `DD/MM/YYYY`, `MM-DD-YYYY`, optionally
/// followed by `T` and a time (ISO 8601) and a zone.
fn match_date(b: &[u8], i: usize) -> Option<(Placeholder, usize)> {
    let a = digits(b, i, 4);
    let sep = *b.get(i + a)?;
    if !matches!(sep, b'-' | b'/' | b'.') {
        return None;
    }
    let mut j = i + a + 1;
    let m = digits(b, j, 2);
    if m == 0 || b.get(j + m) != Some(&sep) {
        return None;
    }
    j += m + 1;
    let c = digits(b, j, 4);
    let ok = (a == 4 && (1..=2).contains(&c))
        || ((1..=2).contains(&a) && (c == 4 || (c == 2 && sep != b'.')));
    if !ok {
        return None;
    }
    j += c;
    if b.get(j) == Some(&b'T') {
        if let Some(k) = match_time(b, j + 1) {
            let mut k = k;
            if matches!(b.get(k), Some(b'+' | b'-')) && digits(b, k + 1, 2) == 2 {
                k += 3;
                if b.get(k) == Some(&b':') && digits(b, k + 1, 2) == 2 {
                    k += 3;
                }
            }
            return Some((Placeholder::DateTime, k));
        }
        // `2024-01-02T03:04:05+0200` and other shapes end at a boundary.
        let mut k = j + 1;
        while k < b.len() && (b[k].is_ascii_digit() || matches!(b[k], b':' | b'.' | b'+' | b'-')) {
            k += 1;
        }
        if b.get(k) == Some(&b'Z') {
            k += 1;
        }
        return boundary(b, k).then_some((Placeholder::DateTime, k));
    }
    boundary(b, j).then_some((Placeholder::Date, j))
}

fn match_uuid_like(b: &[u8], i: usize) -> Option<(Placeholder, usize)> {
    // uuid: 8-4-4-4-12, traceparent: 2-32-16-2
    let groups = |lens: &[usize]| -> Option<usize> {
        let mut j = i;
        for (k, &l) in lens.iter().enumerate() {
            if hexes(b, j) != l {
                return None;
            }
            j += l;
            if k + 1 < lens.len() {
                if b.get(j) != Some(&b'-') {
                    return None;
                }
                j += 1;
            }
        }
        boundary(b, j).then_some(j)
    };
    if let Some(j) = groups(&[8, 4, 4, 4, 12]) {
        return Some((Placeholder::Uuid, j));
    }
    if let Some(j) = groups(&[2, 32, 16, 2]) {
        return Some((Placeholder::TraceParent, j));
    }
    None
}

/// MAC addresses and IPv6 addresses (`fe80::1`, `2001:db8:0:0:0:0:2:1`).
fn match_colon_hex(b: &[u8], i: usize) -> Option<(Placeholder, usize)> {
    let mut j = i;
    let mut colons = 0;
    let mut double = false;
    let mut group = 0;
    let mut max_group = 0;
    let mut has_digit = false;
    let mut all_two = true;
    while j < b.len() {
        let c = b[j];
        if c.is_ascii_hexdigit() {
            group += 1;
            has_digit |= c.is_ascii_digit();
        } else if c == b':' {
            if j > i && b[j - 1] == b':' {
                double = true;
            }
            if group != 2 {
                all_two = false;
            }
            max_group = max_group.max(group);
            group = 0;
            colons += 1;
        } else {
            break;
        }
        j += 1;
    }
    max_group = max_group.max(group);
    if group != 2 {
        all_two = false;
    }
    if !has_digit || max_group > 4 || !boundary(b, j) || b[j - 1] == b':' && !double {
        return None;
    }
    if colons >= 5 && all_two {
        return Some((Placeholder::Mac, j));
    }
    if colons == 7 || (double && colons >= 2) {
        return Some((Placeholder::Ip, j));
    }
    None
}

fn match_url(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'+' | b'.' | b'-')) {
        j += 1;
    }
    if j == i || !b[i].is_ascii_alphabetic() || !b[j..].starts_with(b"://") {
        return None;
    }
    j += 3;
    while j < b.len() && !is_ws(b[j]) && !matches!(b[j], b'"' | b'\'' | b'<' | b'>' | b'`') {
        j += 1;
    }
    while j > i
        && matches!(
            b[j - 1],
            b'.' | b',' | b';' | b':' | b'!' | b'?' | b')' | b']' | b'}'
        )
    {
        j -= 1;
    }
    Some(j)
}

fn is_host_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
}

/// Well-known top-level domains; a dotted name ending in one is a host.
fn is_tld(s: &[u8]) -> bool {
    matches!(
        s,
        b"com"
            | b"net"
            | b"org"
            | b"io"
            | b"edu"
            | b"gov"
            | b"mil"
            | b"biz"
            | b"info"
            | b"dev"
            | b"app"
            | b"cloud"
            | b"local"
            | b"localdomain"
            | b"internal"
            | b"lan"
            | b"corp"
            | b"uk"
            | b"de"
            | b"fr"
            | b"jp"
            | b"cn"
            | b"kr"
            | b"ru"
            | b"br"
            | b"au"
            | b"ca"
            | b"nl"
            | b"es"
            | b"it"
            | b"pl"
            | b"se"
            | b"ch"
            | b"us"
            | b"eu"
            | b"tw"
            | b"hk"
            | b"sg"
            | b"om"
    )
}

fn host_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut dots = 0;
    let mut last_dot = 0;
    while j < b.len() && is_host_char(b[j]) {
        if b[j] == b'.' {
            dots += 1;
            last_dot = j;
        }
        j += 1;
    }
    // A trailing dot ends a sentence, not a name.
    if j > i && b[j - 1] == b'.' {
        j -= 1;
        dots -= 1;
        last_dot = b[i..j]
            .iter()
            .rposition(|&c| c == b'.')
            .map_or(0, |p| p + i);
    }
    if dots == 0 || !boundary(b, j) {
        return None;
    }
    is_tld(&b[last_dot + 1..j]).then_some(j)
}

fn match_email(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    while j < b.len()
        && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'.' | b'_' | b'%' | b'+' | b'-'))
    {
        j += 1;
    }
    if j == i || b.get(j) != Some(&b'@') {
        return None;
    }
    let d = j + 1;
    let mut k = d;
    while k < b.len() && is_host_char(b[k]) {
        k += 1;
    }
    while k > d && b[k - 1] == b'.' {
        k -= 1;
    }
    let dom = &b[d..k];
    let last = dom.iter().rposition(|&c| c == b'.')?;
    let tld = &dom[last + 1..];
    (tld.len() >= 2 && tld.iter().all(|c| c.is_ascii_alphabetic()) && boundary(b, k)).then_some(k)
}

/// `db-1.example:5432`, `mesos-slave-07:55904`, `localhost:8080`.
fn match_host_port(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let mut letter = false;
    let mut hostish = false;
    while j < b.len() && is_host_char(b[j]) {
        letter |= b[j].is_ascii_alphabetic();
        hostish |= matches!(b[j], b'.' | b'-') || b[j].is_ascii_digit();
        j += 1;
    }
    if !letter || b.get(j) != Some(&b':') {
        return None;
    }
    if !hostish && &b[i..j] != b"localhost" {
        return None;
    }
    let d = digits(b, j + 1, 5);
    (d > 0 && boundary(b, j + 1 + d) && b.get(j + 1 + d) != Some(&b'.')).then_some(j + 1 + d)
}

/// Relative paths with at least two slashes (`a/b/c`), `./x`, `../x`, `~/x`,
/// and Windows paths (`C:\x`).
fn match_rel_path(b: &[u8], i: usize) -> Option<usize> {
    let c = b[i];
    if c.is_ascii_alphabetic() && b.get(i + 1) == Some(&b':') && b.get(i + 2) == Some(&b'\\') {
        let mut j = i + 3;
        while j < b.len() && !is_ws(b[j]) && !matches!(b[j], b'"' | b'\'' | b'<' | b'>' | b',') {
            j += 1;
        }
        return Some(j);
    }
    if (c == b'.' || c == b'~') && {
        let r = &b[i..];
        r.starts_with(b"./") || r.starts_with(b"../") || r.starts_with(b"~/")
    } {
        let j = path_run(b, i);
        return (j > i + 2).then_some(j);
    }
    let j = path_run(b, i);
    let run = &b[i..j];
    let slashes = run.iter().filter(|&&x| x == b'/').count();
    if slashes >= 2
        && run.iter().any(|x| x.is_ascii_alphabetic())
        && !run.windows(2).any(|w| w == b"//")
    {
        return Some(j);
    }
    None
}

/// Typed values recognised at the start of a segment; `f` are the
/// features of the whole token.
fn match_typed(b: &[u8], i: usize, f: u16) -> Option<(Placeholder, usize)> {
    let c = b[i];
    if c.is_ascii_digit() {
        if let Some(r) = match_ipv4(b, i) {
            return Some(r);
        }
        if let Some(r) = match_date(b, i) {
            return Some(r);
        }
        if let Some(j) = match_time(b, i) {
            return Some((Placeholder::Time, j));
        }
    }
    if f & T_DIGIT != 0 && c.is_ascii_hexdigit() {
        if f & T_DASH != 0
            && let Some(r) = match_uuid_like(b, i)
        {
            return Some(r);
        }
        if f & T_COLON != 0
            && let Some(r) = match_colon_hex(b, i)
        {
            return Some(r);
        }
    }
    if f & (T_COLON | T_SLASH) == (T_COLON | T_SLASH)
        && c.is_ascii_alphabetic()
        && let Some(j) = match_url(b, i)
    {
        return Some((Placeholder::Url, j));
    }
    if f & (T_SLASH | T_BACKSLASH) != 0
        && (c.is_ascii_alphanumeric() || matches!(c, b'.' | b'~' | b'_' | b'-'))
        && let Some(j) = match_rel_path(b, i)
    {
        return Some((Placeholder::Path, j));
    }
    if f & T_DOT != 0 && (c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-')) {
        if f & T_AT != 0
            && let Some(j) = match_email(b, i)
        {
            return Some((Placeholder::Email, j));
        }
        if let Some(j) = host_end(b, i)
            && !(f & T_COLON != 0 && b.get(j) == Some(&b':'))
        {
            return Some((Placeholder::Host, j));
        }
    }
    if f & (T_COLON | T_DIGIT) == (T_COLON | T_DIGIT)
        && c.is_ascii_alphanumeric()
        && let Some(j) = match_host_port(b, i)
    {
        return Some((Placeholder::HostPort, j));
    }
    None
}

/// Duration and size units that may follow a number.
fn unit_kind(s: &str) -> Option<Placeholder> {
    match s {
        "ns" | "us" | "µs" | "ms" | "s" | "sec" | "secs" | "min" | "mins" => {
            Some(Placeholder::Duration)
        }
        "B" | "KB" | "kB" | "MB" | "GB" | "TB" | "PB" | "KiB" | "MiB" | "GiB" | "TiB" => {
            Some(Placeholder::Size)
        }
        _ => None,
    }
}

/// Number at the start of `s` (sign, digits, dotted parts, exponent);
/// returns its length.
fn number_len(s: &[u8]) -> usize {
    let mut j = 0;
    if matches!(s.first(), Some(b'-' | b'+')) {
        j = 1;
    }
    let d = digits(s, j, usize::MAX);
    if d == 0 {
        return 0;
    }
    j += d;
    while s.get(j) == Some(&b'.') && s.get(j + 1).is_some_and(|c| c.is_ascii_digit()) {
        j += 1 + digits(s, j + 1, usize::MAX);
    }
    if matches!(s.get(j), Some(b'e' | b'E')) {
        let mut k = j + 1;
        if matches!(s.get(k), Some(b'-' | b'+')) {
            k += 1;
        }
        let d = digits(s, k, usize::MAX);
        if d > 0 {
            j = k + d;
        }
    }
    j
}

fn classify_number_suffix(s: &[u8]) -> Option<Placeholder> {
    let n = number_len(s);
    if n == 0 {
        return None;
    }
    if n == s.len() {
        return Some(Placeholder::Num);
    }
    let rest = &s[n..];
    // Ordinals: 1st, 2nd, 3rd, 4th.
    if matches!(rest, b"st" | b"nd" | b"rd" | b"th") {
        return Some(Placeholder::Num);
    }
    if let Ok(u) = std::str::from_utf8(rest) {
        if let Some(p) = unit_kind(u) {
            return Some(p);
        }
        if matches!(
            u,
            "k" | "K" | "M" | "G" | "T" | "KB" | "kb" | "mb" | "gb" | "b"
        ) {
            return Some(Placeholder::Size);
        }
    }
    // Compound durations: 1h30m, 2m30.5s, 100ms.
    let mut j = 0;
    let mut parts = 0;
    while j < s.len() {
        let d = number_len(&s[j..]);
        if d == 0 || (j > 0 && matches!(s[j], b'-' | b'+')) {
            return None;
        }
        j += d;
        let u0 = j;
        while j < s.len() && s[j].is_ascii_alphabetic() {
            j += 1;
        }
        let unit = &s[u0..j];
        if !matches!(unit, b"d" | b"h" | b"m" | b"s" | b"ms" | b"us" | b"ns") {
            return None;
        }
        parts += 1;
    }
    (parts > 0).then_some(Placeholder::Duration)
}

/// What a plain segment (no delimiters inside) becomes.
fn classify_segment(seg: &[u8], after_eq: bool, next: u8) -> Option<Placeholder> {
    let has_digit = seg.iter().any(|c| c.is_ascii_digit());
    if !has_digit {
        if after_eq && !seg.is_empty() {
            return Some(Placeholder::Any);
        }
        return None;
    }
    // `jk2_init(` is a function name and `PSR0=` a key, not values.
    if matches!(next, b'(' | b'=') && seg[0].is_ascii_alphabetic() && !after_eq {
        return None;
    }
    if let Some(p) = classify_number_suffix(seg) {
        return Some(p);
    }
    if seg.len() > 2
        && (seg.starts_with(b"0x") || seg.starts_with(b"0X"))
        && seg[2..].iter().all(|c| c.is_ascii_hexdigit())
    {
        return Some(Placeholder::Hex);
    }
    if seg.iter().all(|c| c.is_ascii_hexdigit()) {
        return Some(if matches!(seg.len(), 32 | 40 | 64 | 128) {
            Placeholder::Hash
        } else {
            Placeholder::Hex
        });
    }
    Some(Placeholder::Id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask(s)
    }

    #[test]
    fn numbers() {
        assert_eq!(m("took 42 steps"), "took <num> steps");
        assert_eq!(m("value -3.5e-2, next 7."), "value <num>, next <num>.");
        assert_eq!(m("ratio 0.023958297"), "ratio <num>");
        assert_eq!(m("the 3rd try"), "the <num> try");
    }

    #[test]
    fn hex_and_hashes() {
        assert_eq!(m("iar 001007a8 dear 0x12af93a0"), "iar <hex> dear <hex>");
        assert_eq!(
            m("commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"),
            "commit <hash>"
        );
        assert_eq!(
            m("digest d41d8cd98f00b204e9800998ecf8427e"),
            "digest <hash>"
        );
        assert_eq!(m("obj com.huawei.g.c@8a2a501"), "obj com.huawei.g.c@<hex>");
    }

    #[test]
    fn uuid_and_traceparent() {
        assert_eq!(
            m("req 123e4567-e89b-12d3-a456-426614174000 done"),
            "req <uuid> done"
        );
        assert_eq!(
            m("traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "traceparent <traceparent>"
        );
    }

    #[test]
    fn ips_and_ports() {
        assert_eq!(m("from 10.1.2.3 port 22"), "from <ip> port <num>");
        assert_eq!(m("to /10.10.34.12:3888"), "to /<ip:port>");
        assert_eq!(m("[client 125.30.38.52] denied"), "[client <ip>] denied");
        assert_eq!(m("peer fe80::1ff:fe23:4567:890a up"), "peer <ip> up");
        assert_eq!(m("mac 00:1a:2b:3c:4d:5e"), "mac <mac>");
        assert_eq!(m("server mesos-slave-07:55904 ok"), "server <host:port> ok");
        assert_eq!(m("connect localhost:8080"), "connect <host:port>");
    }

    #[test]
    fn urls_emails_hosts() {
        assert_eq!(
            m("GET https://example.com/a?b=1 failed"),
            "GET <url> failed"
        );
        assert_eq!(m("mail bob.smith@example.co.uk now"), "mail <email> now");
        assert_eq!(m("resolve api.example.com."), "resolve <host>.");
        // Java packages are not hosts.
        assert_eq!(m("class com.huawei.health"), "class com.huawei.health");
    }

    #[test]
    fn paths() {
        assert_eq!(m("open /var/log/app.log: denied"), "open <path>: denied");
        assert_eq!(m("chdir(/LAPACK_440d/BLAS) failed"), "chdir(<path>) failed");
        assert_eq!(m("load ./runtime_malloc"), "load <path>");
        assert_eq!(m(r"file C:\Users\bob\x.txt gone"), "file <path> gone");
        assert_eq!(m("rel a/b/c.txt"), "rel <path>");
        assert_eq!(m("load/store unit"), "load/store unit");
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(m("at 2016-04-25 08:56:12,413 x"), "at <date> <time> x");
        assert_eq!(m("at 2016-04-25T08:56:12.413Z"), "at <datetime>");
        assert_eq!(m("at 2024-01-02T03:04:05+02:00"), "at <datetime>");
        assert_eq!(
            m("built on 06/10/2013 17:26 GMT"),
            "built on <date> <time> GMT"
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(
            m("timeout of 10000ms exceeded"),
            "timeout of <duration> exceeded"
        );
        assert_eq!(m("took 21 ms"), "took <duration>");
        assert_eq!(m("up 1h30m"), "up <duration>");
        assert_eq!(
            m("(estimated size 93.0 B, free 317.1 KB)"),
            "(estimated size <size>, free <size>)"
        );
        assert_eq!(m("cap 8GiB"), "cap <size>");
    }

    #[test]
    fn quoted() {
        assert_eq!(
            m(r#"user "John Smith" said "hi""#),
            "user <quoted> said <quoted>"
        );
        assert_eq!(m("name 'a b c' ok"), "name <quoted> ok");
        assert_eq!(m("can't find 'x'"), "can't find 'x'");
    }

    #[test]
    fn key_values() {
        assert_eq!(m("user=root uid=0 tty=ssh"), "user=<*> uid=<num> tty=<*>");
        assert_eq!(m("logname= uid=0"), "logname= uid=<num>");
        assert_eq!(m("packageName = com.huawei.health"), "packageName = <*>");
        assert_eq!(
            m("PendingReds:0 vCores:-27>"),
            "PendingReds:<num> vCores:<num>>"
        );
        assert_eq!(m("headroom=<memory:0, x"), "headroom=<memory:<num>, x");
    }

    #[test]
    fn identifiers() {
        assert_eq!(
            m("Deleting block blk_-1046472716157313227"),
            "Deleting block <id>"
        );
        assert_eq!(
            m("jk2_init() Found child 1000"),
            "jk2_init() Found child <num>"
        );
        assert_eq!(m("generating core.10019"), "generating <id>");
    }

    #[test]
    fn lists_and_rulers() {
        assert_eq!(m("delete blk_1 blk_2 blk_3 now"), "delete <id> now");
        assert_eq!(m("REPORT : 0 0 0 0"), "REPORT : <num>");
        assert_eq!(m("illegal instruction......0"), "illegal instruction <num>");
        assert_eq!(m("******* GOODBYE x ********"), "GOODBYE x");
        assert_eq!(m("retry shortly ..."), "retry shortly");
    }

    #[test]
    fn idempotent_examples() {
        for s in [
            "headroom=<memory:0, vCores:-27>",
            "Received block blk_-1090213273274684471 of size 67108864 from /10.251.214.130",
            "Times: total = 1072, boot = 856, init = 210, finish = 6",
            "a = b = c",
            "x=\"y\" z='w v'",
        ] {
            let once = m(s);
            assert_eq!(m(&once), once, "input {s:?}");
        }
    }
}
