//! `faultline send`: one entry from flags, or one entry per input line.
//!
//! # How lines travel
//! A reader thread reads the input (stdin or `--file`), turns each
//! non-blank line into one NDJSON entry and hands it over a bounded channel
//! to the [`Batcher`], which closes a batch at `--batch-size` entries, at
//! about 1 MiB, or when no line arrived for a moment (so `tail -f app.log |
//! faultline send` is live). Up to `--concurrency` batches are in flight.
//!
//! Nothing is lost silently: an entry counts as sent only when the server
//! answered `202` for its batch. Overload (503 + `Retry-After`) and
//! connection failures are retried with backoff for up to `--retry-for`;
//! a `413` splits the batch in two; any other refusal stops the run with the
//! server's reason, mapped back to input line numbers. A batch whose answer
//! was lost in transit is sent again, so delivery is at-least-once.
//!
//! The reader is a plain thread, not a blocking task, so a read stuck on an
//! idle stdin never keeps the runtime from shutting down after an error.

use super::ConnArgs;
use super::http::{self, Api, HttpError, RetryPolicy};
use super::timearg::{format_duration, parse_duration};
use anyhow::{Context, anyhow, bail};
use faultline_model::{Level, format_rfc3339_micros, now_micros};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// The server's default message limit; longer lines are cut to it.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// A batch is closed once its body reaches about this size.
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// A partial batch waits at most this long for more lines.
const LINGER: Duration = Duration::from_millis(250);
/// The `--file` progress bar.
const PROGRESS_TEMPLATE: &str =
    "{bar:40.cyan/blue} {binary_bytes}/{binary_total_bytes} · {msg} · eta {eta}";
/// Retry notes are printed at most this often.
const NOTE_INTERVAL: Duration = Duration::from_secs(5);

/// Arguments of `faultline send`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Examples:
  faultline send -l error --service api 'payment failed' --attr order=1234
  tail -F /var/log/app.log | faultline send --service api
  faultline send --file old.log --service api --level warn")]
pub struct SendArgs {
    #[command(flatten)]
    pub conn: ConnArgs,

    /// Message of a single entry
    #[arg(long, short = 'm', value_name = "TEXT", conflicts_with = "file")]
    pub message: Option<String>,

    /// Message of a single entry (same as --message)
    #[arg(value_name = "MESSAGE", conflicts_with_all = ["message", "file"])]
    pub positional: Option<String>,

    /// Send every non-blank line of this file as one entry ("-": stdin)
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,

    /// Service of the entries (default: the ingest token's service)
    #[arg(long, short = 's', value_name = "NAME")]
    pub service: Option<String>,

    /// Level of the entries: trace, debug, info, warn, error or critical
    #[arg(long, short = 'l', default_value = "info", value_parser = super::parse_level)]
    pub level: Level,

    /// Tag for the entries; repeat for several
    #[arg(long = "tag", short = 't', value_name = "TAG")]
    pub tags: Vec<String>,

    /// Attribute KEY=VALUE (a string), or KEY:=VALUE for a number or
    /// true/false; repeat for several
    #[arg(long = "attr", short = 'a', value_name = "KEY=VALUE", value_parser = parse_attr)]
    pub attrs: Vec<(String, Value)>,

    /// Host name to record on the entries
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Target project, for admin tokens (an ingest token knows its project)
    #[arg(long, short = 'p', value_name = "NAME")]
    pub project: Option<String>,

    /// Entries per request
    #[arg(long, default_value_t = 1000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,

    /// Requests in flight at once
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub concurrency: u32,

    /// Keep retrying an unreachable or overloaded server this long before
    /// giving up (0: do not retry)
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub retry_for: Duration,

    /// Do not print the summary line
    #[arg(long)]
    pub quiet: bool,
}

/// Parses `--attr`: `KEY=VALUE` is a string; `KEY:=VALUE` must be a JSON
/// number or boolean.
pub fn parse_attr(s: &str) -> Result<(String, Value), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))?;
    let (key, value) = match key.strip_suffix(':') {
        Some(key) => match serde_json::from_str::<Value>(value.trim()) {
            Ok(v @ (Value::Number(_) | Value::Bool(_))) => (key, v),
            _ => {
                return Err(format!(
                    "{key}:={value} needs a number or true/false (use {key}={value} for text)"
                ));
            }
        },
        None => (key, Value::String(value.to_string())),
    };
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("{s:?} has an empty key"));
    }
    Ok((key.to_string(), value))
}

/// Builds entry JSON. The fields every entry shares are serialised once.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// `,"level":…` and the other shared fields, or empty.
    common: String,
}

impl Encoder {
    pub fn new(
        service: Option<&str>,
        level: Level,
        tags: &[String],
        host: Option<&str>,
        attrs: &[(String, Value)],
    ) -> Encoder {
        let mut common = serde_json::Map::new();
        if let Some(s) = service {
            common.insert("service".into(), s.into());
        }
        common.insert("level".into(), level.as_str().into());
        if !tags.is_empty() {
            common.insert("tags".into(), tags.into());
        }
        if let Some(h) = host {
            common.insert("host".into(), h.into());
        }
        if !attrs.is_empty() {
            let map: serde_json::Map<String, Value> = attrs.iter().cloned().collect();
            common.insert("attributes".into(), Value::Object(map));
        }
        let json = Value::Object(common).to_string();
        // `{…}` → `,…` so it can follow the per-entry fields.
        let inner = &json[1..json.len() - 1];
        Encoder {
            common: if inner.is_empty() {
                String::new()
            } else {
                format!(",{inner}")
            },
        }
    }

    /// Appends one entry as an NDJSON line.
    pub fn encode(&self, message: &str, timestamp: Option<i64>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"message\":");
        serde_json::to_writer(&mut *out, message).expect("writing a string to a Vec cannot fail");
        if let Some(ts) = timestamp {
            out.extend_from_slice(b",\"timestamp\":\"");
            out.extend_from_slice(format_rfc3339_micros(ts).as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(self.common.as_bytes());
        out.extend_from_slice(b"}\n");
    }
}

/// Entries sent together, with where each came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// NDJSON: one entry per line, each ending in `\n`.
    pub body: Vec<u8>,
    /// End (after the `\n`) of each entry in `body`.
    ends: Vec<usize>,
    /// Input line number of each entry (1-based; 0 for a flag message).
    lines: Vec<u64>,
    /// Input bytes these entries stand for (for the progress bar).
    pub input_bytes: u64,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends an encoded entry (ending in `\n`).
    pub fn push(&mut self, json: &[u8], line: u64, input_bytes: u64) {
        debug_assert!(json.ends_with(b"\n"));
        self.body.extend_from_slice(json);
        self.ends.push(self.body.len());
        self.lines.push(line);
        self.input_bytes += input_bytes;
    }

    /// The JSON of entry `i`, without its newline.
    pub fn entry(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.body[start..self.ends[i] - 1]
    }

    /// Splits into two halves (for a server whose limits are smaller than
    /// our batches). Needs at least two entries.
    pub fn split(mut self) -> (Batch, Batch) {
        assert!(self.len() >= 2, "a batch of one entry cannot be split");
        let mid = self.len() / 2;
        let cut = self.ends[mid - 1];
        let tail_body = self.body.split_off(cut);
        let tail_ends = self
            .ends
            .split_off(mid)
            .into_iter()
            .map(|e| e - cut)
            .collect();
        let tail_lines = self.lines.split_off(mid);
        let head_bytes = self.input_bytes * mid as u64 / (mid + tail_lines.len()) as u64;
        let tail = Batch {
            body: tail_body,
            ends: tail_ends,
            lines: tail_lines,
            input_bytes: self.input_bytes - head_bytes,
        };
        self.input_bytes = head_bytes;
        (self, tail)
    }

    /// "lines 1001-2000" / "line 7" / "the entry", for error messages.
    fn describe(&self) -> String {
        match (self.lines.first(), self.lines.last()) {
            (Some(0), _) | (None, _) => "the entry".to_string(),
            (Some(a), Some(b)) if a == b => format!("line {a}"),
            (Some(a), Some(b)) => format!("lines {a}-{b}"),
            _ => unreachable!("first and last are both Some or both None"),
        }
    }
}

/// Groups encoded entries into batches by count and size.
#[derive(Debug)]
pub struct Batcher {
    max_entries: usize,
    max_bytes: usize,
    current: Batch,
}

impl Batcher {
    pub fn new(max_entries: usize, max_bytes: usize) -> Batcher {
        Batcher {
            max_entries: max_entries.max(1),
            max_bytes,
            current: Batch::default(),
        }
    }

    /// Adds an entry; batches that are complete go to `ready`. An entry
    /// bigger than `max_bytes` still travels, alone.
    pub fn push(&mut self, json: &[u8], line: u64, input_bytes: u64, ready: &mut Vec<Batch>) {
        if !self.current.is_empty() && self.current.body.len() + json.len() > self.max_bytes {
            ready.push(std::mem::take(&mut self.current));
        }
        self.current.push(json, line, input_bytes);
        if self.current.len() >= self.max_entries || self.current.body.len() >= self.max_bytes {
            ready.push(std::mem::take(&mut self.current));
        }
    }

    /// The partial batch, if any.
    pub fn take(&mut self) -> Option<Batch> {
        (!self.current.is_empty()).then(|| std::mem::take(&mut self.current))
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty()
    }
}

/// Reads one line into `buf` without its `\n`, keeping at most `cap`
/// bytes of it (the rest is skipped, so one enormous line cannot exhaust
/// memory). Returns the bytes consumed (0 at end of input) and whether the
/// line was longer than `cap`.
pub fn read_line_capped(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<(usize, bool)> {
    buf.clear();
    let mut consumed = 0;
    let mut over = false;
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((consumed, over));
        }
        let (content, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        let take = room.min(content.len());
        buf.extend_from_slice(&content[..take]);
        over |= take < content.len();
        r.consume(used);
        consumed += used;
        if done {
            return Ok((consumed, over));
        }
    }
}

/// What became of one input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// Empty or only whitespace: not sent.
    Blank,
    Message {
        text: String,
        /// Bytes that were not UTF-8 were replaced by U+FFFD.
        invalid_utf8: bool,
        /// The line was longer than the message limit and was cut.
        truncated: bool,
    },
}

/// Turns a raw line (without `\n`; `over` if the reader cut it) into a
/// message: strips a trailing `\r`, decodes UTF-8 lossily and enforces the
/// size limit at a character boundary.
pub fn prepare_line(raw: &[u8], over: bool, max: usize) -> Prepared {
    let mut raw = raw;
    if over {
        raw = trim_partial_char(raw);
    } else if let Some(r) = raw.strip_suffix(b"\r") {
        raw = r;
    }
    let (mut text, invalid_utf8) = match std::str::from_utf8(raw) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (String::from_utf8_lossy(raw).into_owned(), true),
    };
    if text.trim().is_empty() {
        return Prepared::Blank;
    }
    let mut truncated = over;
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        truncated = true;
    }
    Prepared::Message {
        text,
        invalid_utf8,
        truncated,
    }
}

/// Drops an incomplete UTF-8 sequence at the end (where a cut landed).
fn trim_partial_char(raw: &[u8]) -> &[u8] {
    let n = raw.len();
    for back in 1..=n.min(4) {
        let b = raw[n - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if need > back { &raw[..n - back] } else { raw };
    }
    raw
}

/// Strictly increasing event times for the lines of one run, so entries
/// read in the same microsecond keep their input order in queries.
#[derive(Debug, Default)]
struct Clock {
    last: i64,
}

impl Clock {
    fn next(&mut self) -> i64 {
        self.last = now_micros().max(self.last + 1);
        self.last
    }
}

/// Counters shared by the reader thread and the summary.
#[derive(Debug, Default)]
struct ReadStats {
    lines: AtomicU64,
    entries: AtomicU64,
    invalid_utf8: AtomicU64,
    truncated: AtomicU64,
}

/// What the reader thread hands over.
enum Item {
    Entry {
        json: Vec<u8>,
        line: u64,
        input_bytes: u64,
    },
    /// End of input; the bytes of trailing blank lines.
    Done {
        input_bytes: u64,
    },
    Failed(anyhow::Error),
}

enum Input {
    Stdin,
    File(File),
}

/// Shared by the delivery tasks.
struct Ctx {
    api: Api,
    project: Option<String>,
    policy: RetryPolicy,
    progress: ProgressBar,
    sent: AtomicU64,
    /// Most entries per request the server took so far after refusing a
    /// bigger one with 413; later batches are split to it up front.
    max_entries: AtomicUsize,
    last_note: Mutex<Option<Instant>>,
    /// "of app.log" / "of stdin", for error messages.
    source: String,
}

impl Ctx {
    /// Prints a note on stderr (above the progress bar), at most every few
    /// seconds so several tasks retrying at once do not flood the terminal.
    fn note_retry(&self, cause: &str, delay: Duration) {
        let mut last = self.last_note.lock().expect("note lock is never poisoned");
        if last.is_some_and(|t| t.elapsed() < NOTE_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        let msg = format!("faultline: {cause}; retrying in {}", format_duration(delay));
        self.progress.suspend(|| eprintln!("{msg}"));
    }
}

pub async fn run(args: SendArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.conn, Some(Duration::from_secs(60)))?;
    let encoder = Encoder::new(
        args.service.as_deref(),
        args.level,
        &args.tags,
        args.host.as_deref(),
        &args.attrs,
    );
    let message = args.message.clone().or_else(|| args.positional.clone());
    let (input, source, size) = match (&message, &args.file) {
        (Some(_), _) => (None, String::new(), None),
        (None, Some(path)) if path.as_os_str() == "-" => {
            (Some(Input::Stdin), "of stdin".into(), None)
        }
        (None, Some(path)) => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            let size = file
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            (
                Some(Input::File(file)),
                format!("of {}", path.display()),
                size,
            )
        }
        (None, None) if !io::stdin().is_terminal() => (Some(Input::Stdin), "of stdin".into(), None),
        (None, None) => {
            bail!("nothing to send: give a message (-m TEXT), --file PATH, or pipe lines on stdin")
        }
    };
    let progress = match size {
        Some(len) if len > 0 && io::stderr().is_terminal() => {
            let style = ProgressStyle::with_template(PROGRESS_TEMPLATE)
                .expect("the progress template is valid")
                .progress_chars("=> ");
            let pb = ProgressBar::new(len).with_style(style);
            pb.set_message("0 entries");
            pb
        }
        _ => ProgressBar::hidden(),
    };
    let ctx = Arc::new(Ctx {
        api,
        project: args.project.clone(),
        policy: RetryPolicy {
            give_up_after: args.retry_for,
        },
        progress,
        sent: AtomicU64::new(0),
        max_entries: AtomicUsize::new(usize::MAX),
        last_note: Mutex::new(None),
        source,
    });
    let started = Instant::now();

    let Some(input) = input else {
        let message = message.expect("no input means a message was given");
        if message.trim().is_empty() {
            bail!("the message is empty");
        }
        if message.len() > MAX_MESSAGE_BYTES {
            bail!(
                "the message is {} bytes; the server accepts at most {MAX_MESSAGE_BYTES}",
                message.len()
            );
        }
        let mut json = Vec::new();
        encoder.encode(&message, None, &mut json);
        let mut batch = Batch::default();
        batch.push(&json, 0, 0);
        deliver(ctx.clone(), batch).await?;
        if !args.quiet {
            eprintln!("sent 1 entry");
        }
        return Ok(());
    };

    let stats = Arc::new(ReadStats::default());
    let (tx, mut rx) = mpsc::channel::<Item>(4096);
    {
        let stats = stats.clone();
        let source = ctx.source.clone();
        std::thread::Builder::new()
            .name("faultline-send-reader".into())
            .spawn(move || read_input(input, &encoder, &stats, &tx, &source))
            .context("cannot start the input reader thread")?;
    }

    let concurrency = args.concurrency as usize;
    let mut batcher = Batcher::new(args.batch_size as usize, MAX_BATCH_BYTES);
    let mut ready: Vec<Batch> = Vec::new();
    let mut inflight: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let mut linger_until: Option<tokio::time::Instant> = None;
    let mut failure: Option<anyhow::Error> = None;
    'read: loop {
        let item = match linger_until {
            Some(deadline) => tokio::time::timeout_at(deadline, rx.recv()).await.ok(),
            None => Some(rx.recv().await),
        };
        let mut eof = false;
        match item {
            // The linger time passed without a new line: send what we have.
            None => ready.extend(batcher.take()),
            Some(None) => {
                failure = Some(anyhow!("the input reader stopped unexpectedly"));
                ready.extend(batcher.take());
                eof = true;
            }
            Some(Some(Item::Entry {
                json,
                line,
                input_bytes,
            })) => batcher.push(&json, line, input_bytes, &mut ready),
            Some(Some(Item::Done { input_bytes })) => {
                ctx.progress.inc(input_bytes);
                ready.extend(batcher.take());
                eof = true;
            }
            Some(Some(Item::Failed(e))) => {
                failure = Some(e);
                ready.extend(batcher.take());
                eof = true;
            }
        }
        linger_until = match (batcher.is_empty(), linger_until) {
            (true, _) => None,
            (false, None) => Some(tokio::time::Instant::now() + LINGER),
            (false, Some(d)) => Some(d),
        };
        for batch in ready.drain(..) {
            while inflight.len() >= concurrency {
                let done = inflight.join_next().await.expect("the set is not empty");
                if let Err(e) = flatten(done) {
                    failure.get_or_insert(e);
                    break 'read;
                }
            }
            inflight.spawn(deliver(ctx.clone(), batch));
        }
        while let Some(done) = inflight.try_join_next() {
            if let Err(e) = flatten(done) {
                failure.get_or_insert(e);
                break 'read;
            }
        }
        if eof {
            break;
        }
    }
    // Stops the reader (its next send fails) and lets in-flight batches
    // finish, so the summary counts everything the server acknowledged.
    drop(rx);
    while let Some(done) = inflight.join_next().await {
        if let Err(e) = flatten(done) {
            failure.get_or_insert(e);
        }
    }
    ctx.progress.finish_and_clear();

    let sent = ctx.sent.load(Ordering::Relaxed);
    // After a failure the error line says it all unless part of the input
    // did get through, which the user needs to know before re-sending.
    if (!args.quiet && failure.is_none()) || (failure.is_some() && sent > 0) {
        let mut summary = format!("sent {}", plural(sent, "entry", "entries"));
        if failure.is_some() {
            let read = stats.entries.load(Ordering::Relaxed);
            summary = format!("sent {sent} of {}", plural(read, "entry", "entries"));
            summary.push_str(" read before stopping");
        } else {
            summary.push_str(&format!(" in {}", format_duration(started.elapsed())));
        }
        let invalid = stats.invalid_utf8.load(Ordering::Relaxed);
        if invalid > 0 {
            summary.push_str(&format!(
                ", {} with invalid UTF-8 (converted lossily)",
                plural(invalid, "line", "lines")
            ));
        }
        let truncated = stats.truncated.load(Ordering::Relaxed);
        if truncated > 0 {
            summary.push_str(&format!(
                ", {} cut to {} KiB",
                plural(truncated, "line", "lines"),
                MAX_MESSAGE_BYTES / 1024
            ));
        }
        eprintln!("{summary}");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn flatten(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    r.map_err(|e| anyhow!("a sending task failed: {e}"))?
}

/// The reader thread: lines → encoded entries on `tx`, until the input
/// ends, fails, or the receiver goes away.
fn read_input(
    input: Input,
    encoder: &Encoder,
    stats: &ReadStats,
    tx: &mpsc::Sender<Item>,
    source: &str,
) {
    const BUF: usize = 256 * 1024;
    let item = match input {
        Input::Stdin => {
            let stdin = io::stdin();
            let mut r = BufReader::with_capacity(BUF, stdin.lock());
            read_lines(&mut r, encoder, stats, tx, source)
        }
        Input::File(f) => read_lines(
            &mut BufReader::with_capacity(BUF, f),
            encoder,
            stats,
            tx,
            source,
        ),
    };
    if let Some(item) = item {
        let _ = tx.blocking_send(item);
    }
}

/// Returns the final item to send, or None when the receiver went away.
fn read_lines(
    r: &mut impl BufRead,
    encoder: &Encoder,
    stats: &ReadStats,
    tx: &mpsc::Sender<Item>,
    source: &str,
) -> Option<Item> {
    let mut clock = Clock::default();
    let mut raw = Vec::new();
    let mut line_no = 0u64;
    // Bytes of blank lines, carried into the next entry's progress.
    let mut carried = 0u64;
    loop {
        let (consumed, over) = match read_line_capped(r, &mut raw, MAX_MESSAGE_BYTES) {
            Ok((0, _)) => {
                return Some(Item::Done {
                    input_bytes: carried,
                });
            }
            Ok(x) => x,
            Err(e) => {
                let e =
                    anyhow::Error::new(e).context(format!("reading line {} {source}", line_no + 1));
                return Some(Item::Failed(e));
            }
        };
        line_no += 1;
        stats.lines.fetch_add(1, Ordering::Relaxed);
        carried += consumed as u64;
        let Prepared::Message {
            text,
            invalid_utf8,
            truncated,
        } = prepare_line(&raw, over, MAX_MESSAGE_BYTES)
        else {
            continue;
        };
        if invalid_utf8 {
            stats.invalid_utf8.fetch_add(1, Ordering::Relaxed);
        }
        if truncated {
            stats.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let mut json = Vec::with_capacity(text.len() + 128);
        encoder.encode(&text, Some(clock.next()), &mut json);
        stats.entries.fetch_add(1, Ordering::Relaxed);
        let item = Item::Entry {
            json,
            line: line_no,
            input_bytes: std::mem::take(&mut carried),
        };
        if tx.blocking_send(item).is_err() {
            return None;
        }
    }
}

/// Sends one batch until the server accepts it, splitting it on 413 (and
/// up front once a 413 taught us the server's limit).
async fn deliver(ctx: Arc<Ctx>, batch: Batch) -> anyhow::Result<()> {
    let mut queue = vec![batch];
    while let Some(batch) = queue.pop() {
        if batch.len() > ctx.max_entries.load(Ordering::Relaxed) {
            let (head, tail) = batch.split();
            queue.push(tail);
            queue.push(head);
            continue;
        }
        let what = match batch.describe().as_str() {
            "the entry" => "sending the entry".to_string(),
            d => format!("sending {d} {}", ctx.source),
        };
        let resp = http::send_with_retry(
            || {
                let mut req = ctx
                    .api
                    .request(Method::POST, "api/v1/logs")
                    .header(CONTENT_TYPE, "application/x-ndjson")
                    .body(batch.body.clone());
                if let Some(p) = &ctx.project {
                    req = req.query(&[("project", p)]);
                }
                req
            },
            ctx.policy,
            |cause, delay| ctx.note_retry(cause, delay),
        )
        .await
        .with_context(|| what.clone())?;
        let status = resp.status();
        if status.is_success() {
            let accepted = resp
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v.get("accepted").and_then(Value::as_u64))
                .unwrap_or(batch.len() as u64);
            let sent = ctx.sent.fetch_add(accepted, Ordering::Relaxed) + accepted;
            ctx.progress.inc(batch.input_bytes);
            ctx.progress.set_message(plural(sent, "entry", "entries"));
        } else if status == StatusCode::PAYLOAD_TOO_LARGE && batch.len() >= 2 {
            ctx.max_entries
                .fetch_min(batch.len().div_ceil(2), Ordering::Relaxed);
            let (head, tail) = batch.split();
            queue.push(tail);
            queue.push(head);
        } else {
            let err = HttpError::from_response(resp).await;
            return Err(anyhow!("{err}{}", bad_entries(&err, &batch))).context(what);
        }
    }
    Ok(())
}

/// "; line 17 ("disk ful…"): message: must not be empty" for up to three
/// entries the server named, mapped back to input lines.
fn bad_entries(err: &HttpError, batch: &Batch) -> String {
    let Some(body) = &err.body else {
        return String::new();
    };
    if batch.lines.first() == Some(&0) {
        return String::new(); // a flag message: the user knows which entry
    }
    let mut named: Vec<(usize, String)> = Vec::new();
    if let Some(entries) = body.get("entries").and_then(Value::as_array) {
        for e in entries {
            let Some(i) = e.get("index").and_then(Value::as_u64) else {
                continue;
            };
            let field = e.get("field").and_then(Value::as_str).unwrap_or("");
            let reason = e.get("reason").and_then(Value::as_str).unwrap_or("invalid");
            let why = if field.is_empty() {
                reason.to_string()
            } else {
                format!("{field}: {reason}")
            };
            named.push((i as usize, why));
        }
    } else if let Some(i) = body.get("index").and_then(Value::as_u64) {
        named.push((i as usize, String::new()));
    }
    let total = named.len();
    let mut out = String::new();
    for (i, why) in named.iter().take(3) {
        let Some(&line) = batch.lines.get(*i) else {
            continue;
        };
        let preview = serde_json::from_slice::<Value>(batch.entry(*i))
            .ok()
            .and_then(|v| {
                v.get("message")
                    .and_then(Value::as_str)
                    .map(|m| http::shorten(m, 40))
            })
            .unwrap_or_default();
        out.push_str(&format!("; line {line} ({preview:?})"));
        if !why.is_empty() {
            out.push_str(&format!(": {why}"));
        }
    }
    if total > 3 {
        out.push_str(&format!("; and {} more", total - 3));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_are_strings_unless_typed() {
        assert_eq!(
            parse_attr("order=1234"),
            Ok(("order".into(), Value::String("1234".into())))
        );
        assert_eq!(
            parse_attr("url=http://x/?a=b"),
            Ok(("url".into(), Value::String("http://x/?a=b".into())))
        );
        assert_eq!(
            parse_attr("empty="),
            Ok(("empty".into(), Value::String(String::new())))
        );
        assert_eq!(
            parse_attr("retries:=3"),
            Ok(("retries".into(), serde_json::json!(3)))
        );
        assert_eq!(
            parse_attr("ratio:=0.5"),
            Ok(("ratio".into(), serde_json::json!(0.5)))
        );
        assert_eq!(parse_attr("ok:=true"), Ok(("ok".into(), Value::Bool(true))));
        assert!(parse_attr("retries:=three").is_err());
        assert!(parse_attr("obj:={}").is_err());
        assert!(parse_attr("novalue").is_err());
        assert!(parse_attr("=x").is_err());
    }

    #[test]
    fn encoder_writes_valid_ndjson_with_shared_fields() {
        let enc = Encoder::new(
            Some("api"),
            Level::Error,
            &["db".into(), "prod".into()],
            Some("web-1"),
            &[
                ("order".into(), "12".into()),
                ("n".into(), serde_json::json!(3)),
            ],
        );
        let mut out = Vec::new();
        enc.encode(
            "quote \" and\nnewline",
            Some(1_700_000_000_000_000),
            &mut out,
        );
        enc.encode("second", None, &mut out);
        let lines: Vec<Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines[0],
            serde_json::json!({
                "message": "quote \" and\nnewline",
                "timestamp": "2023-11-14T22:13:20.000000Z",
                "service": "api", "level": "error", "tags": ["db", "prod"], "host": "web-1",
                "attributes": {"order": "12", "n": 3},
            })
        );
        assert_eq!(lines[1]["message"], "second");
        assert!(lines[1].get("timestamp").is_none());

        let bare = Encoder::new(None, Level::Info, &[], None, &[]);
        let mut out = Vec::new();
        bare.encode("x", None, &mut out);
        assert_eq!(out, b"{\"message\":\"x\",\"level\":\"info\"}\n");
    }

    fn line(i: u64) -> Vec<u8> {
        format!("{{\"message\":\"m{i}\"}}\n").into_bytes()
    }

    #[test]
    fn batches_close_by_count_and_by_size() {
        let mut b = Batcher::new(3, 1_000_000);
        let mut ready = Vec::new();
        for i in 1..=7 {
            b.push(&line(i), i, 10, &mut ready);
        }
        assert_eq!(ready.iter().map(Batch::len).collect::<Vec<_>>(), vec![3, 3]);
        let rest = b.take().unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest.describe(), "line 7");
        assert_eq!(ready[1].describe(), "lines 4-6");
        assert_eq!(ready[0].input_bytes, 30);
        assert!(b.take().is_none());

        // Each line is 17 bytes: 2 fit under 40, the third would not.
        let mut b = Batcher::new(100, 40);
        let mut ready = Vec::new();
        for i in 1..=5 {
            b.push(&line(i), i, 1, &mut ready);
        }
        assert_eq!(ready.iter().map(Batch::len).collect::<Vec<_>>(), vec![2, 2]);
        assert!(ready.iter().all(|r| r.body.len() <= 40));
        // An entry larger than the limit goes alone.
        let mut b = Batcher::new(100, 10);
        let mut ready = Vec::new();
        b.push(&line(1), 1, 1, &mut ready);
        b.push(&line(2), 2, 1, &mut ready);
        assert_eq!(ready.len(), 2);
        assert!(b.is_empty());
    }

    #[test]
    fn batches_split_in_halves_and_keep_entries() {
        let mut batch = Batch::default();
        for i in 1..=5 {
            batch.push(&line(i), i, 10);
        }
        assert_eq!(batch.entry(0), b"{\"message\":\"m1\"}");
        assert_eq!(batch.entry(4), b"{\"message\":\"m5\"}");
        let (a, b) = batch.clone().split();
        assert_eq!((a.len(), b.len()), (2, 3));
        assert_eq!(a.describe(), "lines 1-2");
        assert_eq!(b.describe(), "lines 3-5");
        assert_eq!(b.entry(0), b"{\"message\":\"m3\"}");
        assert_eq!(a.input_bytes + b.input_bytes, 50);
        let mut joined = a.body.clone();
        joined.extend_from_slice(&b.body);
        assert_eq!(joined, batch.body);
    }

    #[test]
    fn long_lines_are_capped_while_reading() {
        let data = b"short\r\nabcdefghij\nlast-without-newline";
        let mut r = io::BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line_capped(&mut r, &mut buf, 8).unwrap(), (7, false));
        assert_eq!(buf, b"short\r");
        assert_eq!(read_line_capped(&mut r, &mut buf, 8).unwrap(), (11, true));
        assert_eq!(buf, b"abcdefgh");
        assert_eq!(read_line_capped(&mut r, &mut buf, 8).unwrap(), (20, true));
        assert_eq!(read_line_capped(&mut r, &mut buf, 100).unwrap(), (0, false));
        // Exactly at the cap is not "over".
        let mut r = &b"12345678\n"[..];
        assert_eq!(read_line_capped(&mut r, &mut buf, 8).unwrap(), (9, false));
    }

    fn msg(text: &str, invalid_utf8: bool, truncated: bool) -> Prepared {
        Prepared::Message {
            text: text.into(),
            invalid_utf8,
            truncated,
        }
    }

    #[test]
    fn lines_become_messages() {
        assert_eq!(
            prepare_line(b"hello\r", false, 100),
            msg("hello", false, false)
        );
        assert_eq!(prepare_line(b"", false, 100), Prepared::Blank);
        assert_eq!(prepare_line(b"  \t\r", false, 100), Prepared::Blank);
        assert_eq!(
            prepare_line(b"caf\xe9 ok", false, 100),
            msg("caf\u{fffd} ok", true, false)
        );
        // Cut inside a multi-byte character by the reader: no false
        // "invalid UTF-8", and the partial character is dropped.
        assert_eq!(
            prepare_line("ab한".as_bytes()[..4].as_ref(), true, 100),
            msg("ab", false, true)
        );
        // Lossy replacement may grow the text past the limit: cut again at
        // a character boundary.
        assert_eq!(
            prepare_line(b"\xff\xff", false, 4),
            msg("\u{fffd}", true, true)
        );
    }

    #[test]
    fn clock_never_repeats() {
        let mut c = Clock::default();
        let times: Vec<i64> = (0..1000).map(|_| c.next()).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rejected_entries_are_named_by_input_line() {
        let mut batch = Batch::default();
        for i in 1..=5 {
            batch.push(&line(i + 100), i + 100, 1);
        }
        let err = HttpError::from_parts(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid entries","detail":"2 entries","entries":[
                {"index":1,"field":"message","reason":"too long"},
                {"index":3,"field":"","reason":"entry must be a JSON object"}]}"#,
        );
        assert_eq!(
            format!("{err}{}", bad_entries(&err, &batch)),
            "server said 400 Bad Request: invalid entries: 2 entries; \
             line 102 (\"m102\"): message: too long; line 104 (\"m104\"): entry must be a JSON object"
        );
        let err = HttpError::from_parts(
            StatusCode::BAD_REQUEST,
            br#"{"error":"malformed json","detail":"eof","index":0}"#,
        );
        assert_eq!(bad_entries(&err, &batch), "; line 101 (\"m101\")");
    }

    #[test]
    fn progress_template_is_valid() {
        ProgressStyle::with_template(PROGRESS_TEMPLATE).unwrap();
    }
}
