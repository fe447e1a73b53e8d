//! Catch-up scanning: frames a large read without looking at every line.
//!
//! A consumer that only cares about some records (the agent: records with
//! a level word, and the lines around them) says so with a [`ScanFilter`].
//! For a read of at least [`ScanFilter::min_read`] bytes the tailer then
//! searches the buffer for the filter's needles (one SIMD multi-literal
//! pass, plus `memchr`/`memmem` for short needles and line prefixes) and
//! frames only the neighbourhood of each hit, line by line, exactly as
//! without the filter. The stretches between are skipped without being
//! split into lines, converted or matched against the multiline pattern.
//!
//! Exactness rests on one property of multiline framing: a line for which
//! [`MultilineRules::starts_record`] holds (a *starter*) starts a new record
//! whatever came before it. So framing that resumes at a starter produces
//! the very records a line-by-line framing produces from there on, and a
//! skip always goes from a starter to a starter (the record held before
//! the first one is completed by it and handed out). Record boundaries
//! near a hit are found by walking back over lines from the hit, testing
//! each for being a starter.
//!
//! What is handed out (a superset of what the filter asks for; every
//! record handed out is identical to the one a tailer without the filter
//! returns, offsets and flags included):
//! - every record that has a line containing a needle or a plain needle,
//!   or a line starting with a line prefix;
//! - the record before each record with a needle or prefix, and the
//!   record before the group of the last line of what a poll step reads
//!   of a file; the lines skipped just before such a record (at most
//!   `before`) go with the first record framed after the skip, in
//!   [`crate::Record::lines_before`];
//! - after each record with a needle or prefix, its next `after_lines`
//!   lines in [`crate::Record::lines_after`] when the read holds them all
//!   (the records they belong to need not be handed out then), otherwise
//!   the records after it until they hold `after_lines` lines;
//! - the record held at the end of a poll step, and everything framed
//!   outside the scan (reads shorter than `min_read`, the unfinished line
//!   at either end of a read, flushes). A read followed by another in the
//!   same step leaves its hit-free end to that one instead (read again,
//!   not counted twice against the step's budget);
//! - the first records of a region framed here until they hold
//!   `after_lines` lines, unless every record of the file handed out
//!   before it went through the scanner (which then knows what is still
//!   owed): others were handed out line by line, or the file is new (a
//!   consumer's after-context may span a rotation), so whatever
//!   after-context they still need is covered.
//!
//! So a consumer that keeps the last `before` lines of a log (taking each
//! record's `lines_before` before its own lines), and gives every error
//! waiting for lines after it the lines of the records that follow and
//! then their `lines_after` (which hold as many as any error waits for),
//! sees exactly what it would see without the filter, lines counted as
//! the record's text splits at `\n`; a poll step reads the same bytes,
//! and the offsets reached (what is acknowledged) at its end are the same
//! too. (One exception, with no right answer either way: two files of one
//! log read in turns, a consumer keeping one context for both. Line by
//! line it gives an error of one file the lines of whichever file is read
//! next; with the filter, an error's after-context may come from its own
//! file only.) Each error costs about three records instead of `before` +
//! `after_lines` of them (a 1 GiB catch-up with 0.1 % errors: 19,866
//! records handed out instead of 299,674).
//!
//! Skipped lines are not counted in [`crate::Counters::lines`] and a line
//! cut at the cap inside a skipped stretch is not reported.

use std::time::Instant;

use memchr::{memchr, memmem, memrchr};

use crate::lines::{Line, Lines, line_text, make_line};
use crate::multiline::{Aggregator, Frame, MultilineRules};

/// Default [`ScanFilter::min_read`]: 256 KiB.
pub const DEFAULT_MIN_READ: usize = 256 * 1024;

/// Bytes searched by every probe in turn (within the CPU's L2 cache).
const SEARCH_WINDOW: usize = 64 * 1024;

/// What a consumer wants from a catch-up; set in
/// [`crate::TailerConfig::scan_filter`]. What is handed out: see "Catch-up
/// scan" in the crate documentation (every record with a needle or prefix
/// and its context, every record with a plain needle, records identical
/// to a line-by-line read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFilter {
    /// A record with a line that contains one of these is handed out with
    /// its context. Not empty, no `\n`, `\r` or U+FFFD.
    pub needles: Vec<String>,
    /// A record with a line that starts with one of these is handed out
    /// with its context. Not empty, no `\n`, `\r` or U+FFFD.
    pub line_prefixes: Vec<String>,
    /// A record with a line that contains one of these is handed out,
    /// without context. Not empty, no `\n`, `\r` or U+FFFD.
    pub plain_needles: Vec<String>,
    /// Lines a consumer keeps before each record with a needle or prefix
    /// (handed out as records or in [`crate::Record::lines_before`]).
    pub before: usize,
    /// Lines a consumer wants after each record with a needle or prefix
    /// (in [`crate::Record::lines_after`], or the records that follow).
    pub after_lines: usize,
    /// Reads shorter than this are framed line by line (live tailing).
    /// Default [`DEFAULT_MIN_READ`].
    pub min_read: usize,
}

impl ScanFilter {
    /// A filter for `needles`, without context.
    pub fn new<I, S>(needles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ScanFilter {
            needles: needles.into_iter().map(Into::into).collect(),
            line_prefixes: Vec::new(),
            plain_needles: Vec::new(),
            before: 0,
            after_lines: 0,
            min_read: DEFAULT_MIN_READ,
        }
    }
}

/// Needles of one kind, compiled for checking a line or a record's text
/// (short texts: one `memmem` per needle, no regex cache to keep).
#[derive(Debug)]
struct NeedleSet {
    needles: Vec<memmem::Finder<'static>>,
    /// Line prefixes, and the same after a `\n`.
    prefixes: Vec<Vec<u8>>,
    prefixes_nl: Vec<memmem::Finder<'static>>,
}

impl NeedleSet {
    fn new(needles: &[String], prefixes: &[String]) -> NeedleSet {
        NeedleSet {
            needles: needles
                .iter()
                .map(|n| memmem::Finder::new(n.as_bytes()).into_owned())
                .collect(),
            prefixes: prefixes.iter().map(|p| p.as_bytes().to_vec()).collect(),
            prefixes_nl: prefixes
                .iter()
                .map(|p| memmem::Finder::new(format!("\n{p}").as_bytes()).into_owned())
                .collect(),
        }
    }

    /// Whether `text` (a line, or lines joined with `\n`) has a needle or
    /// a line starting with a prefix.
    fn in_text(&self, text: &[u8]) -> bool {
        self.needles.iter().any(|f| f.find(text).is_some())
            || self.prefixes.iter().any(|p| text.starts_with(p))
            || self.prefixes_nl.iter().any(|f| f.find(text).is_some())
    }
}

/// Many needles at once: Teddy (SIMD) when the set allows, else an
/// Aho-Corasick automaton.
#[derive(Debug)]
enum Multi {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
}

impl Multi {
    fn new(needles: &[&String]) -> Option<Multi> {
        if needles.is_empty() {
            return None;
        }
        if let Some(s) = aho_corasick::packed::Searcher::new(needles.iter()) {
            return Some(Multi::Packed(s));
        }
        Some(Multi::Automaton(
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build(needles)
                .expect("literal needles build"),
        ))
    }

    fn starts(&self, hay: &[u8], out: &mut Vec<usize>, from: usize, to: usize) {
        let at = |m: aho_corasick::Match| from + m.start();
        match self {
            Multi::Packed(s) => out.extend(s.find_iter(hay).map(at).take_while(|&h| h < to)),
            Multi::Automaton(a) => out.extend(a.find_iter(hay).map(at).take_while(|&h| h < to)),
        }
    }
}

/// The shortest needle the multi-literal search takes; shorter ones get a
/// search of their own. The SIMD search (Teddy) tells candidates by the
/// first bytes of each needle, as many as the shortest one has: 2 are
/// enough when no needle starts with a lower-case letter (upper-case
/// level words, ` v`: pairs rare in log text), and that one pass is
/// faster than a 3-byte search plus a pass per 2-byte needle (search
/// alone over the 1 GiB bench file: 0.08 s instead of 0.12–0.15 s). A
/// needle starting with a
/// lower-case letter (`err`) would make its first two letters a candidate
/// wherever they occur in words, so then it takes 3.
fn multi_min_len(needles: &[&String]) -> usize {
    if needles.iter().any(|n| n.as_bytes()[0].is_ascii_lowercase()) {
        3
    } else {
        2
    }
}

/// One way of finding candidate positions in a buffer.
#[derive(Debug)]
enum Probe {
    /// Needles of [`multi_min_len`] bytes or more (of every kind).
    Long(Multi),
    /// One short needle.
    Short(Box<memmem::Finder<'static>>),
    /// Line prefixes that start with `first`: verified at a line start.
    Prefix { first: u8, prefixes: Vec<Vec<u8>> },
}

impl Probe {
    /// Candidates starting in `hay[from..to]` (`hay`: a region that starts
    /// at a line start; `to_ext`: `to` plus room for the longest needle) go
    /// to `out`: at least one in every line that has a needle (or starts
    /// with a prefix) there, each in its line.
    fn find_all(
        &self,
        hay: &[u8],
        (from, to, to_ext): (usize, usize, usize),
        out: &mut Vec<usize>,
    ) {
        let win = &hay[from..to_ext];
        match self {
            // Non-overlapping matches: an occurrence skipped overlaps a
            // match, so it is in a line that has one.
            Probe::Long(m) => m.starts(win, out, from, to),
            Probe::Short(f) => {
                out.extend(f.find_iter(win).map(|h| from + h).take_while(|&h| h < to))
            }
            Probe::Prefix { first, prefixes } => {
                let mut q = from;
                while let Some(i) = memchr(*first, &hay[q..to]) {
                    let c = q + i;
                    if (c == 0 || hay[c - 1] == b'\n')
                        && prefixes.iter().any(|p| hay[c..].starts_with(p))
                    {
                        out.push(c);
                    }
                    q = c + 1;
                }
            }
        }
    }
}

/// A compiled [`ScanFilter`].
#[derive(Debug)]
pub(crate) struct Scanner {
    filter: ScanFilter,
    probes: Vec<Probe>,
    /// Length of the longest needle or prefix.
    longest: usize,
    context: NeedleSet,
    plain: NeedleSet,
}

impl Scanner {
    /// Compiles `filter`; an error names the bad needle.
    pub(crate) fn new(filter: ScanFilter) -> Result<Scanner, String> {
        for n in filter
            .needles
            .iter()
            .chain(&filter.line_prefixes)
            .chain(&filter.plain_needles)
        {
            // A needle found in a record's text must be in its bytes too:
            // no line break (lines are joined, `\r` stripped), no U+FFFD
            // (what invalid UTF-8 becomes).
            if n.is_empty() || n.contains(['\n', '\r', '\u{fffd}']) {
                return Err(format!(
                    "scan filter needle {n:?}: must be non-empty, without \\n, \\r or U+FFFD"
                ));
            }
        }
        let mut probes = Vec::new();
        let all: Vec<&String> = filter.needles.iter().chain(&filter.plain_needles).collect();
        let min = multi_min_len(&all);
        let long: Vec<&String> = all.iter().copied().filter(|n| n.len() >= min).collect();
        if let Some(m) = Multi::new(&long) {
            probes.push(Probe::Long(m));
        }
        for n in all.iter().filter(|n| n.len() < min) {
            probes.push(Probe::Short(Box::new(
                memmem::Finder::new(n.as_bytes()).into_owned(),
            )));
        }
        let mut firsts: Vec<u8> = filter
            .line_prefixes
            .iter()
            .map(|p| p.as_bytes()[0])
            .collect();
        firsts.sort_unstable();
        firsts.dedup();
        for first in firsts {
            probes.push(Probe::Prefix {
                first,
                prefixes: filter
                    .line_prefixes
                    .iter()
                    .filter(|p| p.as_bytes()[0] == first)
                    .map(|p| p.as_bytes().to_vec())
                    .collect(),
            });
        }
        let longest = filter
            .needles
            .iter()
            .chain(&filter.line_prefixes)
            .chain(&filter.plain_needles)
            .map(String::len)
            .max()
            .unwrap_or(1);
        Ok(Scanner {
            longest,
            context: NeedleSet::new(&filter.needles, &filter.line_prefixes),
            plain: NeedleSet::new(&filter.plain_needles, &[]),
            probes,
            filter,
        })
    }

    /// Reads shorter than this are framed line by line.
    pub(crate) fn min_read(&self) -> usize {
        self.filter.min_read
    }

    /// Frames `region` (complete lines only, starting at a line start at
    /// file offset `base`, splitter clean) into `ff`, skipping what nobody
    /// wants (see the module docs). Returns how much of it was consumed:
    /// all of it, or with `defer` (the caller reads on from there) possibly
    /// less — when nothing is wanted near the end, framing stops at a
    /// starter before the records the end would need and leaves them to
    /// the next read, which sees what follows them.
    pub(crate) fn frame_region(
        &self,
        region: &[u8],
        base: u64,
        defer: bool,
        ff: &mut FileFraming<'_>,
        out: &mut RegionStats,
    ) -> usize {
        debug_assert_eq!(region.last(), Some(&b'\n'));
        let n = region.len();
        let hits = self.hits(region);
        // Unless the scanner framed everything of this file so far (and
        // knows what is owed), what came before was framed line by line or
        // is another file of the same log: whatever after-context it still
        // needs, the first `after_lines` lines here cover it.
        if !ff.after_exact {
            *ff.after_left = (*ff.after_left).max(self.filter.after_lines);
        }
        // Starters found walking back, lowest last: reused when the same
        // lines are framed forwards.
        let mut memo: Vec<(usize, bool)> = Vec::new();
        let mut p = 0;
        while p < n {
            let e = line_end(region, p);
            let memo_starts = take_memo(&mut memo, p);
            let line = ff.line(region, base, (p, e));
            let starts = memo_starts.unwrap_or_else(|| ff.starts(&line.text));
            if !starts || *ff.after_left > 0 {
                ff.push(self, &hits, (region, base), line, starts, out);
                p = e;
                continue;
            }
            // A starter with no after-context owed: the record held is
            // complete (this line would complete it anyway).
            ff.flush(self, &hits, (region, base));
            if *ff.after_left > 0 {
                ff.push(self, &hits, (region, base), line, true, out);
                p = e;
                continue;
            }
            let plan = self.choose(&hits, region, p, ff);
            let target = plan.target;
            memo.clear();
            let w = scan_back(region, target, plan.need, p, ff, &mut memo).min(plan.cap);
            out.skipped += (w - p) as u64;
            if w > p && plan.need < self.filter.before {
                // The records framed from `w` do not hold the `before`
                // lines: the last lines skipped go with the first one,
                // after those left for a record now skipped too.
                let mut lines = ff.lines_back(region, (p, w), self.filter.before);
                if let Some((_, older)) = ff.lines_before.take()
                    && lines.len() < self.filter.before
                {
                    lines = older.last_then(self.filter.before - lines.len(), lines);
                }
                *ff.lines_before = Some((base + w as u64, lines));
            }
            if plan.at_end && defer && w > 0 {
                // Aggregator empty, splitter clean at a starter: the next
                // read resumes here as if framing had gone on.
                return w;
            }
            p = w;
            let target_end = line_end(region, target);
            while p < target_end {
                let e = line_end(region, p);
                let memo_starts = take_memo(&mut memo, p);
                let line = ff.line(region, base, (p, e));
                let starts = memo_starts.unwrap_or_else(|| ff.starts(&line.text));
                ff.push(self, &hits, (region, base), line, starts, out);
                p = e;
            }
            memo.clear();
        }
        n
    }

    /// At a starter `p` with nothing owed: what to frame next.
    ///
    /// Invariant at every such `p`: every line before `p` was handed out
    /// in a record, or is among the last `before` lines waiting to go with
    /// the next record framed ([`crate::Record::lines_before`]). A target
    /// (a line wanting context, or the end of the read) is framed with the
    /// record before it: when the read ends in the target's group, the
    /// record completed last is handed out, so the position reached is the
    /// same as line by line. A record wanted alone (plain needle) is framed
    /// alone when the next target is more than one group after it;
    /// otherwise framing starts at it and goes on through the target.
    fn choose(&self, hits: &Hits, region: &[u8], p: usize, ff: &FileFraming<'_>) -> Plan {
        let n = region.len();
        // No hit: the end of the read.
        let last = line_start(region, n - 1);
        let plan = |target, need, cap, at_end| Plan {
            target,
            need,
            cap,
            at_end,
        };
        let Some(k) = hits.next(p) else {
            return plan(last, 1, usize::MAX, true);
        };
        let l = hits.lines[k].start;
        let le = line_end(region, l);
        // One record before a target is framed, the lines before it go
        // with it ([`crate::Record::lines_before`]).
        if hits.lines[k].wants_context() {
            return plan(l, 1, usize::MAX, false);
        }
        // The start of the plain line's group.
        let group = scan_back(region, l, 0, p, ff, &mut Vec::new());
        // Look for a line wanting context in the rest of the plain line's
        // group and the 2 groups after it.
        let mut next = k + 1;
        let mut q = le;
        let mut groups = 0;
        loop {
            if q >= n {
                return plan(last, 1, group, true);
            }
            let qe = line_end(region, q);
            if ff.starts_raw(&region[q..qe - 1]) {
                groups += 1;
                if groups > 2 {
                    return plan(group, 0, usize::MAX, false);
                }
            }
            if let Some(h) = hits.lines.get(next).filter(|h| h.start == q) {
                if h.wants_context() {
                    return plan(q, 1, group, false);
                }
                next += 1;
            }
            q = qe;
        }
    }

    /// The lines of `region` with a hit, classified.
    fn hits(&self, region: &[u8]) -> Hits {
        let mut at = Vec::new();
        // Window by window, so that every probe after the first finds the
        // bytes in the cache.
        let n = region.len();
        let mut from = 0;
        while from < n {
            let to = (from + SEARCH_WINDOW).min(n);
            let to_ext = (to + self.longest.saturating_sub(1)).min(n);
            for p in &self.probes {
                p.find_all(region, (from, to, to_ext), &mut at);
            }
            from = to;
        }
        at.sort_unstable();
        let mut lines: Vec<HitLine> = Vec::new();
        for h in at {
            if lines.last().is_some_and(|l| h < l.end) {
                continue;
            }
            let start = line_start(region, h);
            let end = line_end(region, start);
            let raw = &region[start..end - 1];
            lines.push(HitLine {
                start,
                end,
                context: self.context.in_text(raw),
                plain: self.plain.in_text(raw),
            });
        }
        Hits { lines }
    }
}

/// A line of a region with a hit.
#[derive(Debug)]
struct HitLine {
    start: usize,
    /// Just past its `\n`.
    end: usize,
    /// It has a needle or prefix (its records want context).
    context: bool,
    /// It has a plain needle.
    plain: bool,
}

impl HitLine {
    /// Anything but a line with only plain needles.
    fn wants_context(&self) -> bool {
        self.context || !self.plain
    }
}

/// The lines of a region with a hit, in order.
#[derive(Debug)]
struct Hits {
    lines: Vec<HitLine>,
}

impl Hits {
    /// Index of the first hit line starting at or after `from`.
    fn next(&self, from: usize) -> Option<usize> {
        let k = self.lines.partition_point(|l| l.start < from);
        (k < self.lines.len()).then_some(k)
    }

    /// Whether a line in `from..to` has a needle or prefix.
    fn context_in(&self, from: usize, to: usize) -> bool {
        let k = self.lines.partition_point(|l| l.start < from);
        self.lines[k..]
            .iter()
            .take_while(|l| l.start < to)
            .any(|l| l.context)
    }
}

/// What [`Scanner::choose`] decided.
struct Plan {
    /// The line framing must go through.
    target: usize,
    /// Records before the target's that must be framed too.
    need: usize,
    /// A starter framing must start at or before (`usize::MAX`: none).
    cap: usize,
    /// The target is the end of the region (nothing wanted before it).
    at_end: bool,
}

/// Walks back from the line at `target` to the starter that begins the
/// `need`-th starter-delimited group before the target's, never below
/// `floor` (a starter). Each group holds at least one record, so framing
/// from there gives at least `need` records before the target's record.
fn scan_back(
    region: &[u8],
    target: usize,
    need: usize,
    floor: usize,
    ff: &FileFraming<'_>,
    memo: &mut Vec<(usize, bool)>,
) -> usize {
    let mut q = target;
    let mut e = line_end(region, q);
    let mut starters = 0;
    loop {
        if q <= floor {
            return floor;
        }
        let starts = ff.starts_raw(&region[q..e - 1]);
        memo.push((q, starts));
        if starts {
            starters += 1;
            if starters > need {
                return q;
            }
        }
        e = q;
        q = line_start(region, q - 1);
    }
}

fn take_memo(memo: &mut Vec<(usize, bool)>, p: usize) -> Option<bool> {
    match memo.last() {
        Some(&(q, s)) if q == p => {
            memo.pop();
            Some(s)
        }
        _ => None,
    }
}

/// Start of the line holding byte `i`.
fn line_start(region: &[u8], i: usize) -> usize {
    memrchr(b'\n', &region[..i]).map_or(0, |j| j + 1)
}

/// Just past the `\n` of the line starting at `p` (the region ends with one).
fn line_end(region: &[u8], p: usize) -> usize {
    p + memchr(b'\n', &region[p..]).expect("region ends with a newline") + 1
}

/// Counts of a framed region.
#[derive(Debug, Default)]
pub(crate) struct RegionStats {
    /// Bytes skipped (not framed).
    pub skipped: u64,
    /// Offsets of framed lines cut at the cap.
    pub truncated: Vec<u64>,
    /// Framed lines with invalid UTF-8.
    pub lossy: u64,
}

/// The framing state of one file, borrowed from the tailer.
pub(crate) struct FileFraming<'a> {
    pub rules: Option<&'a MultilineRules>,
    pub agg: Option<&'a mut Aggregator>,
    pub max_line: usize,
    pub now: Instant,
    pub after_left: &'a mut usize,
    /// `after_left` is exact: every record handed out before this region
    /// went through the scanner.
    pub after_exact: bool,
    /// Where [`Scanner::frame_region`] leaves the lines it skipped before
    /// a record, for that record ([`crate::Record::lines_before`]).
    pub lines_before: &'a mut Option<(u64, Lines)>,
    pub frames: &'a mut Vec<Frame>,
}

impl FileFraming<'_> {
    /// The complete line `region[p..e]` as the splitter would make it.
    fn line(&self, region: &[u8], base: u64, (p, e): (usize, usize)) -> Line {
        make_line(
            base + p as u64,
            base + e as u64,
            &region[p..e - 1],
            self.max_line,
            false,
            false,
        )
    }

    /// The last `before` lines of `region[from..to]` (whole lines, `from`
    /// a line start).
    fn lines_back(&self, region: &[u8], (from, to): (usize, usize), before: usize) -> Lines {
        let (mut q, mut count, mut longest) = (to, 0, 0);
        while q > from && count < before {
            let e = q;
            q = line_start(region, q - 1).max(from);
            longest = longest.max(e - q - 1);
            count += 1;
        }
        Lines::from_raw(&region[q..to], count, longest, self.max_line)
    }

    /// The `n` lines from `region[from..]`, when it holds that many.
    fn lines_ahead(&self, region: &[u8], from: usize, n: usize) -> Option<Lines> {
        let (mut p, mut longest) = (from, 0);
        for _ in 0..n {
            if p >= region.len() {
                return None;
            }
            let e = line_end(region, p);
            longest = longest.max(e - p - 1);
            p = e;
        }
        Some(Lines::from_raw(&region[from..p], n, longest, self.max_line))
    }

    /// Whether a line with this text is a starter; every line is one
    /// without multiline rules.
    fn starts(&self, text: &str) -> bool {
        self.rules.is_none_or(|r| r.starts_record(text))
    }

    /// [`FileFraming::starts`] of a raw line (without its `\n`).
    fn starts_raw(&self, raw: &[u8]) -> bool {
        match self.rules {
            Some(r) => r.starts_record(&line_text(raw, self.max_line, false, false).0),
            None => true,
        }
    }

    /// Frames one complete line of the region.
    fn push(
        &mut self,
        sc: &Scanner,
        hits: &Hits,
        at: (&[u8], u64),
        line: Line,
        starts: bool,
        out: &mut RegionStats,
    ) {
        if line.truncated {
            out.truncated.push(line.start);
        }
        out.lossy += u64::from(line.lossy);
        let k = self.frames.len();
        match (self.rules, self.agg.as_deref_mut()) {
            (Some(r), Some(a)) => a.push_classified(r, line, starts, self.now, self.frames),
            _ => self.frames.push(line.into()),
        }
        self.account(sc, hits, at, k);
    }

    /// Hands out the record held.
    fn flush(&mut self, sc: &Scanner, hits: &Hits, at: (&[u8], u64)) {
        if let Some(a) = self.agg.as_deref_mut() {
            let k = self.frames.len();
            a.flush(self.frames);
            self.account(sc, hits, at, k);
        }
    }

    /// Keeps `after_left` (lines still owed to a consumer's after-context)
    /// up to date for the frames from `k` on: a frame with a needle or
    /// prefix owes `after_lines` again, unless the region holds them after
    /// it (they go with it, and cover every line owed before); the others
    /// pay with their lines. Needles are told by the hits of the
    /// region for frames within it (a line whose text has a needle has it
    /// in its bytes too), by their text for the others.
    fn account(&mut self, sc: &Scanner, hits: &Hits, (region, base): (&[u8], u64), k: usize) {
        let after = sc.filter.after_lines;
        for i in k..self.frames.len() {
            // Before the next skip leaves lines for another record.
            self.frames[i].take_lines_before(self.lines_before);
            let f = &self.frames[i];
            let wanted = match f.start.checked_sub(base) {
                Some(a) => hits.context_in(a as usize, (f.end - base) as usize),
                None => sc.context.in_text(f.text.as_bytes()),
            };
            if !wanted {
                *self.after_left = self.after_left.saturating_sub(f.lines as usize);
                continue;
            }
            let ahead = match f.end.checked_sub(base) {
                Some(e) if after > 0 => self.lines_ahead(region, e as usize, after),
                _ => None,
            };
            match ahead {
                // Every after-context owed is in these lines.
                Some(lines) => {
                    self.frames[i].lines_after = lines;
                    *self.after_left = 0;
                }
                None => *self.after_left = after,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windowed search finds exactly the lines a line-by-line check
    /// finds, needles across window edges included: with 2-byte needles
    /// searched on their own (a needle starts with a lower-case letter)
    /// and in the multi-literal search.
    #[test]
    fn hits_are_every_line_with_a_needle() {
        // (needles, probes: ` v` apart or in the multi-literal search)
        for (needles, probes) in [
            (["ERROR", "crit", "ersion"], 3),
            (["ERROR", "CRIT", "Ersion"], 2),
        ] {
            let mut f = ScanFilter::new(needles);
            f.line_prefixes = vec!["<1".into()];
            f.plain_needles = vec![" v".into()];
            let sc = Scanner::new(f).unwrap();
            assert_eq!(sc.probes.len(), probes);
            let mut all = needles.to_vec();
            all.push(" v");
            every_line_with_a_needle_is_hit(&sc, &all);
        }
    }

    fn every_line_with_a_needle_is_hit(sc: &Scanner, needles: &[&str]) {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut pieces = needles.to_vec();
        pieces.extend(["<1", "<2", "x", "abc ", "\n", "ERRO", "v", " "]);
        let mut region = Vec::new();
        while region.len() < 3 * SEARCH_WINDOW + 1000 {
            // Needles straddle window edges now and then.
            let edge = SEARCH_WINDOW - (region.len() % SEARCH_WINDOW);
            if edge < 4 && next() % 2 == 0 {
                region.extend_from_slice(needles.concat().as_bytes());
            }
            region.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize].as_bytes());
        }
        region.push(b'\n');
        let hits = sc.hits(&region);
        let mut want = Vec::new();
        let mut start = 0;
        for (i, &b) in region.iter().enumerate() {
            if b == b'\n' {
                let line = &region[start..i];
                let has = needles
                    .iter()
                    .any(|n| memmem::find(line, n.as_bytes()).is_some())
                    || line.starts_with(b"<1");
                if has {
                    want.push(start);
                }
                start = i + 1;
            }
        }
        let got: Vec<usize> = hits.lines.iter().map(|l| l.start).collect();
        assert_eq!(got, want);
        assert!(want.len() > 100);
    }
}
