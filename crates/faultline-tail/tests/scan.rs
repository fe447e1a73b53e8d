//! The catch-up scan filter against line-by-line framing: on generated
//! logs (errors with tracebacks across read boundaries, CRLF, blank and
//! orphan lines, over-long lines, invalid UTF-8, syslog priorities, a last
//! line without newline, multiline caps), a tailer with a [`ScanFilter`]
//! hands out a subsequence of what a tailer without one hands out, record
//! for record identical, and a consumer that keeps the lines before an
//! error and waits for lines after it sees exactly the same context.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use faultline_tail::{MultilineConfig, Record, ScanFilter, StartAt, Tailer, TailerConfig};
use proptest::prelude::*;

const NEEDLES: [&str; 6] = ["err", "ERR", "Err", "crit", "CRIT", "Crit"];
const PREFIXES: [&str; 1] = ["<"];
const PLAIN: [&str; 2] = [" v", "ersion"];

#[derive(Debug, Clone)]
enum Item {
    Info(u16),
    Version(u16),
    Error(u16, u8),
    Orphan(u16),
    Blank,
    Syslog(u8),
    Long(u16),
    Invalid(u16),
    /// A header line that holds a needle only in a continuation line.
    LateNeedle(u16),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        12 => any::<u16>().prop_map(Item::Info),
        1 => any::<u16>().prop_map(Item::Version),
        2 => (any::<u16>(), 0u8..5).prop_map(|(a, b)| Item::Error(a, b)),
        1 => any::<u16>().prop_map(Item::Orphan),
        1 => Just(Item::Blank),
        1 => (0u8..30).prop_map(Item::Syslog),
        1 => any::<u16>().prop_map(Item::Long),
        1 => any::<u16>().prop_map(Item::Invalid),
        1 => any::<u16>().prop_map(Item::LateNeedle),
    ]
}

fn render(items: &[Item], crlf: &[bool], last_newline: bool) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for it in items {
        let ts = |n: u16| format!("2026-11-22 06:40:{:02},{:03}", n % 60, n % 1000);
        match it {
            Item::Info(n) => lines.push(
                format!(
                    "{} [42 INFO sgtk.core] loaded item {n} from /p/sh{n}",
                    ts(*n)
                )
                .into(),
            ),
            Item::Version(n) => lines
                .push(format!("{} [42 DEBUG sgtk.core] Running tk-core v0.{n}.1", ts(*n)).into()),
            Item::Error(n, frames) => {
                lines.push(format!("{} [42 ERROR sgtk.core] failed shot {n}", ts(*n)).into());
                if *frames > 0 {
                    lines.push(b"Traceback (most recent call last):".to_vec());
                    for f in 0..*frames {
                        lines.push(format!("  File \"/x/m{f}.py\", line {f}, in <module>").into());
                    }
                    lines.push(format!("ValueError: bad {n}").into());
                }
            }
            Item::Orphan(n) => lines.push(format!("    continuation {n}").into()),
            Item::Blank => lines.push(Vec::new()),
            Item::Syslog(p) => lines.push(format!("<{p}>Jan  2 03:04:05 host app: x").into()),
            Item::Long(n) => {
                let mut l = format!("{} [42 INFO x] ", ts(*n)).into_bytes();
                l.extend(std::iter::repeat_n(
                    b'a' + (n % 26) as u8,
                    150 + (*n as usize % 200),
                ));
                if n % 3 == 0 {
                    l.extend_from_slice(b" ERROR at the far end");
                }
                lines.push(l);
            }
            Item::Invalid(n) => {
                let mut l = format!("{} [42 WARNING x] bad bytes ", ts(*n)).into_bytes();
                l.extend_from_slice(&[0xff, 0xfe, b'E', b'R', 0xc3]);
                if n % 2 == 0 {
                    l.extend_from_slice(b"R");
                }
                lines.push(l);
            }
            Item::LateNeedle(n) => {
                lines.push(format!("{} [42 INFO x] request {n}", ts(*n)).into());
                lines.push(format!("  detail: Critical path {n}").into());
            }
        }
    }
    let mut out = Vec::new();
    let count = lines.len();
    for (k, l) in lines.into_iter().enumerate() {
        out.extend_from_slice(&l);
        if k + 1 < count || last_newline {
            if crlf[k % crlf.len()] {
                out.push(b'\r');
            }
            out.push(b'\n');
        }
    }
    out
}

#[derive(Debug, Clone)]
struct Setup {
    multiline: Option<(u32, usize, bool)>,
    budget: usize,
    before: usize,
    after: usize,
    flush_now: bool,
    /// Reads shorter than this go line by line (mixes both paths).
    min_read: usize,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![
            1 => Just(None),
            3 => (1u32..8, 60usize..2000, any::<bool>()).prop_map(Some),
        ],
        prop_oneof![1usize..64, 64usize..600, 600usize..5000],
        0usize..5,
        0usize..6,
        any::<bool>(),
        prop_oneof![Just(1usize), 1usize..3000],
    )
        .prop_map(
            |(multiline, budget, before, after, flush_now, min_read)| Setup {
                multiline,
                budget,
                before,
                after,
                flush_now,
                min_read,
            },
        )
}

fn config(dir: &Path, s: &Setup, filter: bool) -> TailerConfig {
    let mut c = TailerConfig::new([dir.join("*.log*").to_string_lossy().into_owned()]);
    c.start_at = StartAt::Beginning;
    c.rescan_interval = Duration::ZERO;
    c.watch = faultline_tail::WatchMode::Poll;
    c.max_line_bytes = 120;
    c.max_read_per_poll = s.budget;
    c.partial_line_timeout = s.flush_now.then_some(Duration::ZERO);
    c.multiline = s
        .multiline
        .map(|(max_lines, max_bytes, cont)| MultilineConfig {
            max_lines,
            max_bytes,
            continuation_pattern: cont.then(|| r"^(?:\s|Traceback|\w*Error)".to_owned()),
            timeout: if s.flush_now {
                Duration::ZERO
            } else {
                Duration::from_secs(3600)
            },
            ..MultilineConfig::default()
        });
    if filter {
        c.scan_filter = Some(ScanFilter {
            needles: NEEDLES.iter().map(|s| s.to_string()).collect(),
            line_prefixes: PREFIXES.iter().map(|s| s.to_string()).collect(),
            plain_needles: PLAIN.iter().map(|s| s.to_string()).collect(),
            before: s.before,
            after_lines: s.after,
            min_read: s.min_read,
        });
    }
    c
}

/// What identifies a record across two tailers (file ids are random).
type Key = (String, u64, u64, String, u32, [bool; 4]);

fn key(r: &Record) -> Key {
    (
        r.file
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned(),
        r.offset_start,
        r.offset_end,
        r.text.clone(),
        r.lines,
        [r.truncated, r.lossy, r.partial, r.split],
    )
}

/// A record as the consumer sees it: its key, `lines_before`,
/// `lines_after`.
type Rec = (Key, Vec<String>, Vec<String>);

/// Reads everything (three empty polls in a row).
fn drain(cfg: TailerConfig) -> (Vec<Rec>, Tailer) {
    let mut t = Tailer::new(cfg).unwrap();
    let mut out = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        if t.poll(&mut out, Duration::ZERO) == 0 && !t.has_backlog() {
            empty += 1;
        } else {
            empty = 0;
        }
    }
    let recs = out
        .iter()
        .map(|r| {
            let lines = |l: &faultline_tail::Lines| l.iter().map(str::to_owned).collect();
            (key(r), lines(&r.lines_before), lines(&r.lines_after))
        })
        .collect();
    (recs, t)
}

fn wanted(text: &str) -> bool {
    NEEDLES.iter().any(|n| text.contains(n))
        || text
            .split('\n')
            .any(|l| PREFIXES.iter().any(|p| l.starts_with(p)))
}

/// The agent's way of keeping context, on one log: the last `before`
/// lines seen (a record's `lines_before`, then its own lines); `after`
/// lines after a wanted record (those of the records seen after it, each
/// followed by its `lines_after`). Returns (record, before lines, after
/// lines) per wanted one.
type Ctx = (Key, Vec<String>, Vec<String>);

fn consumer(records: &[Rec], before: usize, after: usize) -> Vec<Ctx> {
    fn keep<'a>(ring: &mut std::collections::VecDeque<&'a str>, l: &'a str, before: usize) {
        if before > 0 {
            if ring.len() == before {
                ring.pop_front();
            }
            ring.push_back(l);
        }
    }
    let mut ring: std::collections::VecDeque<&str> = Default::default();
    let mut pending: Vec<Ctx> = Vec::new();
    for (k, lines_before, lines_after) in records {
        let text = k.3.as_str();
        for l in lines_before {
            keep(&mut ring, l, before);
        }
        for p in &mut pending {
            for l in text
                .split('\n')
                .chain(lines_after.iter().map(String::as_str))
            {
                if p.2.len() >= after {
                    break;
                }
                p.2.push(l.to_owned());
            }
        }
        if wanted(text.split('\n').next().unwrap()) {
            let b = ring.iter().map(|l| l.to_string()).collect();
            let a = lines_after.iter().take(after).cloned().collect();
            pending.push((k.clone(), b, a));
        }
        for l in text.split('\n') {
            keep(&mut ring, l, before);
        }
    }
    pending
}

/// The first `n` lines after record `k` in its file, from the records a
/// tailer handed out (in file order within each file).
fn lines_after_in_file(records: &[Rec], k: &Key, n: usize) -> Vec<String> {
    let at = records
        .iter()
        .position(|r| r.0 == *k)
        .expect("record present");
    records[at + 1..]
        .iter()
        .filter(|r| r.0.0 == k.0)
        .flat_map(|r| r.0.3.split('\n'))
        .take(n)
        .map(str::to_owned)
        .collect()
}

fn check(dir: &Path, s: &Setup) -> Result<(), TestCaseError> {
    let (slow, ts) = drain(config(dir, s, false));
    let (fast, tf) = drain(config(dir, s, true));
    // A subsequence, record for record identical.
    let mut it = slow.iter();
    for (r, _, _) in &fast {
        prop_assert!(
            it.any(|x| x.0 == *r),
            "not in the line-by-line records: {r:?}"
        );
    }
    // Every record with a needle or a plain needle is there.
    let got: HashSet<&Key> = fast.iter().map(|r| &r.0).collect();
    for (r, _, _) in &slow {
        if wanted(&r.3) || PLAIN.iter().any(|p| r.3.contains(p)) {
            prop_assert!(got.contains(r), "missing {r:?}");
        }
    }
    // The consumer sees the same context.
    let (cs, cf) = (
        consumer(&slow, s.before, s.after),
        consumer(&fast, s.before, s.after),
    );
    prop_assert_eq!(cs.len(), cf.len());
    for (a, b) in cs.iter().zip(&cf) {
        prop_assert_eq!(&a.0, &b.0);
        prop_assert_eq!(&a.1, &b.1);
        // An error's `lines_after` are the lines that follow it in its
        // own file; line by line, the consumer takes the lines of the
        // records that come next, which may be of the log's other file
        // (the tailer reads both in turns).
        let own = fast
            .iter()
            .find(|r| r.0 == b.0)
            .is_some_and(|r| !r.2.is_empty());
        let want = if own {
            lines_after_in_file(&slow, &b.0, s.after)
        } else {
            a.2.clone()
        };
        // Without flushes the line-by-line tailer still holds the last
        // record: `lines_after` may hold lines of it (complete lines of
        // the file) that its records do not give yet.
        prop_assert!(
            b.2.starts_with(&want) && (want.len() < s.after || want == b.2),
            "after-context {:?} vs {:?}",
            want,
            b.2
        );
    }
    // Same positions at the end (what would be acknowledged).
    let pos = |t: &Tailer| {
        let mut v: Vec<(String, u64, u64)> = t
            .files()
            .iter()
            .map(|f| {
                let name = f
                    .file
                    .path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                (name, f.read, f.emitted)
            })
            .collect();
        v.sort();
        v
    };
    prop_assert_eq!(pos(&ts), pos(&tf));
    prop_assert_eq!(ts.counters().bytes_read, tf.counters().bytes_read);
    Ok(())
}

proptest! {
    // 100 cases unless PROPTEST_CASES says otherwise (stress runs).
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(100),
        ..ProptestConfig::default()
    })]

    #[test]
    fn filtered_scan_is_line_by_line_where_it_matters(
        items in proptest::collection::vec(item(), 0..120),
        crlf in proptest::collection::vec(proptest::bool::weighted(0.2), 1..7),
        last_newline in any::<bool>(),
        s in setup(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("app.log"), render(&items, &crlf, last_newline)).unwrap();
        check(dir.path(), &s)?;
    }

    /// Two files of one log (a rotated one and the current one): context
    /// crosses from one to the other.
    #[test]
    fn filtered_scan_keeps_context_across_files(
        a in proptest::collection::vec(item(), 0..60),
        b in proptest::collection::vec(item(), 0..60),
        s in setup(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("app.log.1"), render(&a, &[false], true)).unwrap();
        fs::write(dir.path().join("app.log"), render(&b, &[false, true], false)).unwrap();
        // Each file read whole in a step: with a small budget the tailer
        // reads the two in turns, and a consumer keeping context per log
        // mixes their lines (with `lines_after` in file order, without in
        // the order read), which no right answer compares to.
        let s = Setup { budget: 1 << 20, ..s };
        check(dir.path(), &s)?;
    }
}

/// A big catch-up through the real read sizes (1 MiB chunks, 0.1% errors
/// with tracebacks): most bytes are skipped, and what matters is the same.
#[test]
fn big_catch_up_skips_most_and_keeps_every_error_with_context() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.log");
    let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
    for i in 0..60_000u32 {
        if i % 1000 == 999 {
            write!(
                f,
                "2026-11-22 06:40:00,000 [1 ERROR sgtk.core] failed {i}\nTraceback (most recent call last):\n  File \"/x.py\", line 1, in <module>\nValueError: bad {i}\n"
            )
            .unwrap();
        } else {
            writeln!(
                f,
                "2026-11-22 06:40:00,000 [1 DEBUG sgtk.core] loaded app tk-multi-loader2 item {i} from /projects/show/seq/sh{i:04}/comp"
            )
            .unwrap();
        }
    }
    f.flush().unwrap();
    drop(f);
    let s = Setup {
        multiline: Some((500, 1 << 20, false)),
        budget: 4 << 20,
        before: 20,
        after: 10,
        flush_now: true,
        min_read: faultline_tail::DEFAULT_MIN_READ,
    };
    let mut slow_cfg = config(dir.path(), &s, false);
    let mut fast_cfg = config(dir.path(), &s, true);
    for c in [&mut slow_cfg, &mut fast_cfg] {
        c.max_line_bytes = 1 << 20;
    }
    let (slow, _) = drain(slow_cfg);
    let (fast, tf) = drain(fast_cfg);
    assert_eq!(slow.len(), 60_000);
    assert!(
        fast.len() < slow.len() / 40,
        "{} of {} handed out",
        fast.len(),
        slow.len()
    );
    assert!(tf.counters().bytes_skipped > fs::metadata(&path).unwrap().len() * 8 / 10);
    // The context came mostly as lines, not records.
    let with = |f: fn(&Rec) -> bool| fast.iter().filter(|r| f(r)).count();
    assert!(
        with(|r| r.1.len() == 20) >= 55,
        "{}",
        with(|r| r.1.len() == 20)
    );
    assert!(
        with(|r| r.2.len() == 10) >= 55,
        "{}",
        with(|r| r.2.len() == 10)
    );
    let c = consumer(&slow, 20, 10);
    assert_eq!(c.len(), 60);
    assert_eq!(c, consumer(&fast, 20, 10));
}

/// Errors packed around the ends of the 1 MiB reads of a catch-up: a read
/// that leaves its end to the next one (lines waiting to go with a record
/// it did not frame) and a next one that skips again right away still give
/// every error its context.
#[test]
fn context_across_the_reads_of_a_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.log");
    let mut f = std::io::BufWriter::new(fs::File::create(&path).unwrap());
    let mut written = 0usize;
    let mut i = 0u32;
    while written < 3 << 20 {
        // Within 8 KiB of a MiB boundary, an error every 5 to 11 lines.
        let near = (written + 8192) % (1 << 20) < 16384;
        let line = if near && i.is_multiple_of(5 + i % 7) {
            format!("2026-11-22 06:40:00,000 [1 ERROR sgtk.core] failed {i}\n  at frame {i}\n")
        } else {
            format!(
                "2026-11-22 06:40:00,000 [1 DEBUG sgtk.core] loaded item {i} from /p/sh{i:05}\n"
            )
        };
        f.write_all(line.as_bytes()).unwrap();
        written += line.len();
        i += 1;
    }
    f.flush().unwrap();
    drop(f);
    for before in [3, 20] {
        let s = Setup {
            multiline: Some((500, 1 << 20, false)),
            budget: 64 << 20,
            before,
            after: 4,
            flush_now: true,
            min_read: faultline_tail::DEFAULT_MIN_READ,
        };
        let (slow, _) = drain(config(dir.path(), &s, false));
        let (fast, tf) = drain(config(dir.path(), &s, true));
        assert!(tf.counters().bytes_skipped > (2 << 20));
        let c = consumer(&slow, before, 4);
        assert!(c.len() > 50, "{}", c.len());
        assert_eq!(c, consumer(&fast, before, 4));
    }
}

#[test]
fn a_needle_that_cannot_be_found_in_the_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["", "a\nb", "x\r", "\u{fffd}"] {
        let mut c = TailerConfig::new([dir.path().join("*.log").to_string_lossy().into_owned()]);
        c.scan_filter = Some(ScanFilter::new([bad]));
        assert!(
            matches!(
                Tailer::new(c),
                Err(faultline_tail::TailError::ScanFilter(_))
            ),
            "{bad:?}"
        );
    }
}
