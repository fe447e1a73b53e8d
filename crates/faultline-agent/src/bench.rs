//! `faultline-agent bench`: figures for issue 4 (not timed tests).
//!
//! - `bench scan FILE`: catch-up scan of FILE through the real tailer,
//!   multiline framing, scan filter, pre-filter, parser and matcher (no
//!   delivery), and `grep -c ERROR FILE` in the same run; prints both
//!   throughputs and the ratio, then the full pipeline's.
//!   `--line-by-line` turns the tailer's scan filter off (every record
//!   framed and handed out, as before the filter existed).
//! - `bench generate FILE --mib N`: writes a ShotGrid-format log of N MiB
//!   with 0.1% ERROR records (with tracebacks).
//! - `bench latency [--faultline BIN] [--files N] [--follow N]`: writes
//!   errors into watched logs and times each until its incident reaches
//!   a built-in receiver or, with `--faultline`, until the real server
//!   (started on a temporary data directory) announces its issue.
//! - `bench idle --files N --secs S`: starts the real agent watching N
//!   files nobody writes and reports its CPU share and RSS (Linux).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use faultline_agent::matcher::Matcher;
use faultline_agent::parse::{Format, parse};
use faultline_tail::{MultilineConfig, ScanFilter, StartAt, Tailer, TailerConfig};

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    cmd: BenchCmd,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Catch-up scan of a file vs `grep -c ERROR`.
    Scan {
        /// The log file.
        file: PathBuf,
        /// Also time the tailer alone (framing and multiline, no
        /// matching), to show where the time goes.
        #[arg(long)]
        breakdown: bool,
        /// Frame and hand out every record (no scan filter).
        #[arg(long)]
        line_by_line: bool,
        /// Only the scan (not the full pipeline): for profiling.
        #[arg(long)]
        scan_only: bool,
        /// Pairs of `grep -c ERROR` and agent scan, run one after the
        /// other; the ratio reported is the median of the pairs' ratios
        /// (a shared machine moves single runs by ±30 %).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
    },
    /// Write a ShotGrid-format test log with 0.1% errors.
    Generate {
        /// Output file.
        file: PathBuf,
        /// Size in MiB.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
    },
    /// Detection latency: from the write of an ERROR record to its
    /// incident at a built-in receiver, or (`--faultline`) to its issue
    /// committed by the real server.
    Latency(LatencyRun),
    /// CPU and RSS of the agent watching idle files (Linux).
    Idle {
        /// Number of files.
        #[arg(long, default_value_t = 200)]
        files: usize,
        /// Measurement time in seconds.
        #[arg(long, default_value_t = 30)]
        secs: u64,
        /// The agent's `tail.rescan_interval` (default: the agent's default).
        #[arg(long)]
        rescan: Option<String>,
    },
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.cmd {
        BenchCmd::Scan {
            file,
            breakdown,
            line_by_line,
            scan_only,
            runs,
        } => scan(&file, breakdown, line_by_line, scan_only, runs),
        BenchCmd::Generate { file, mib } => generate(&file, mib),
        BenchCmd::Latency(run) => latency(&run),
        BenchCmd::Idle {
            files,
            secs,
            rescan,
        } => idle(files, secs, rescan),
    }
}

fn generate(file: &PathBuf, mib: u64) -> anyhow::Result<()> {
    let f = std::fs::File::create(file).with_context(|| format!("create {}", file.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let target = mib << 20;
    let mut written = 0u64;
    let mut i = 0u64;
    while written < target {
        let line = if i % 1000 == 999 {
            format!(
                "2026-11-22 06:40:{:02},{:03} [4242 ERROR sgtk.core.engine] failed to open shot sh{i:06}\nTraceback (most recent call last):\n  File \"/opt/tk/engine.py\", line 12, in load\n    raise ValueError('bad shot')\nValueError: bad shot sh{i:06}\n",
                i % 60,
                i % 1000
            )
        } else {
            format!(
                "2026-11-22 06:40:{:02},{:03} [4242 DEBUG sgtk.core.log] loaded app tk-multi-loader2 item {i} from /projects/show/seq/sh{:04}/comp\n",
                i % 60,
                i % 1000,
                i % 9999
            )
        };
        w.write_all(line.as_bytes())?;
        written += line.len() as u64;
        i += 1;
    }
    w.flush()?;
    println!(
        "wrote {} ({} MiB, {i} records)",
        file.display(),
        written >> 20
    );
    Ok(())
}

/// Reads `file` from the start through a tailer; `f` sees every record
/// handed out. Returns (records, seconds until every byte was read and
/// its records handed out but the last one, seconds until the last one
/// too, bytes skipped by the filter). The last record comes only after the
/// multiline timeout (nothing follows it): that wait is latency, not
/// throughput.
fn tail_all(
    file: &Path,
    size: u64,
    multiline: bool,
    filter: Option<ScanFilter>,
    mut f: impl FnMut(&str),
) -> anyhow::Result<(u64, f64, f64, u64)> {
    let mut cfg = TailerConfig::new([file.to_string_lossy().into_owned()]);
    cfg.start_at = StartAt::Beginning;
    cfg.multiline = multiline.then(MultilineConfig::default);
    cfg.watch = faultline_tail::WatchMode::Poll;
    cfg.max_read_per_poll = 64 << 20;
    cfg.scan_filter = filter;
    let cpu0 = thread_cpu_secs();
    let t = Instant::now();
    let mut tailer = Tailer::new(cfg)?;
    let mut records = Vec::new();
    let mut n = 0u64;
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut read_secs = None;
    loop {
        records.clear();
        tailer.poll(&mut records, Duration::from_millis(600));
        for r in &records {
            n += 1;
            f(&r.text);
        }
        // Acknowledgements are cumulative (one file): the last one is
        // enough, as the agent acknowledges once per step.
        if let Some(r) = records.last() {
            tailer.ack(r.ack());
        }
        let files = tailer.files();
        if read_secs.is_none() && files.iter().all(|f| f.read >= size) {
            read_secs = Some(t.elapsed().as_secs_f64());
            if let (Some(a), Some(b)) = (cpu0, thread_cpu_secs()) {
                println!("  (scan thread CPU until read: {:.3} s)", b - a);
            }
        }
        let done = files.iter().all(|f| f.emitted >= size);
        if (done && records.is_empty()) || Instant::now() > deadline {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((
        n,
        read_secs.unwrap_or(secs),
        secs,
        tailer.counters().bytes_skipped,
    ))
}

/// CPU time of the calling thread (Linux: `/proc/thread-self/schedstat`),
/// a figure less disturbed than wall time by other work on the machine.
fn thread_cpu_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e9)
}

/// Seconds `grep -c ERROR file` took, and its count.
fn time_grep(file: &Path) -> anyhow::Result<(f64, u64)> {
    let t = Instant::now();
    let out = std::process::Command::new("grep")
        .args(["-c", "ERROR"])
        .arg(file)
        .output()
        .context("run grep")?;
    let secs = t.elapsed().as_secs_f64();
    let count = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    Ok((secs, count))
}

/// The median of `v` (not empty).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn scan(
    file: &Path,
    breakdown: bool,
    line_by_line: bool,
    scan_only: bool,
    runs: u32,
) -> anyhow::Result<()> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("stat {}", file.display()))?
        .len();
    let mib = size as f64 / (1u64 << 20) as f64;
    // Warm the page cache for both, so neither pays the disk.
    let _ = std::process::Command::new("cat")
        .arg(file)
        .stdout(std::process::Stdio::null())
        .status();
    println!("file: {} ({mib:.0} MiB)", file.display());

    // The matcher and the filter the agent sets for a ShotGrid source with
    // the defaults (ERROR and above, 20 lines before, 10 after).
    let cfg = scan_config(file, &std::env::temp_dir())?;
    let matcher = Matcher::new(cfg.sources[0].matcher.clone(), cfg.sources[0].format);
    let filter = if line_by_line {
        None
    } else {
        faultline_agent::pipeline::scan_filter(&cfg, &cfg.sources[0], &matcher)
    };
    let (mut ratios, mut grep_times, mut agent_times) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let (grep_secs, grep_count) = time_grep(file)?;
        let mut matched = 0u64;
        let (n, agent_secs, agent_total, skipped) =
            tail_all(file, size, true, filter.clone(), |text| {
                if matcher.may_match(text) && matcher.matches(&parse(Format::Shotgrid, text), text)
                {
                    matched += 1;
                }
            })?;
        if n == 0 {
            bail!("no records read");
        }
        let skipped_mib = skipped as f64 / (1u64 << 20) as f64;
        println!(
            "run {run}: grep -c ERROR: {grep_count} lines in {grep_secs:.3} s = {:.0} MiB/s",
            mib / grep_secs
        );
        println!(
            "run {run}: agent scan:    {n} records handed out ({skipped_mib:.0} MiB skipped unframed), {matched} incidents in {agent_secs:.3} s = {:.0} MiB/s (the last record {agent_total:.2} s, after the multiline timeout)",
            mib / agent_secs
        );
        println!("run {run}: ratio agent/grep: {:.3}", grep_secs / agent_secs);
        ratios.push(grep_secs / agent_secs);
        grep_times.push(grep_secs);
        agent_times.push(agent_secs);
    }
    let grep_secs = median(&grep_times);
    let agent_secs = median(&agent_times);
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    println!(
        "ratio agent/grep: median {:.3} over {runs} runs ({lo:.3}–{hi:.3}); medians: grep {:.0} MiB/s, agent scan {:.0} MiB/s",
        median(&ratios),
        mib / grep_secs,
        mib / agent_secs
    );
    if scan_only {
        return Ok(());
    }
    let (records, stats, full_secs, full_total) = full_pipeline(file, size, !line_by_line)?;
    println!(
        "full pipeline (context, grouping, throttle, attachment, spool fsync; no network): {records} records handed out, {} incidents spooled, {} folded by the throttle, file read and handled in {full_secs:.3} s = {:.0} MiB/s, ratio {:.3} (all done {full_total:.2} s, after the context and multiline timeouts)",
        stats.spooled,
        stats.throttled,
        mib / full_secs,
        grep_secs / full_secs
    );
    if breakdown {
        let (_, lines_secs, _, _) = tail_all(file, size, false, None, |_| {})?;
        let (_, ml_secs, _, _) = tail_all(file, size, true, None, |_| {})?;
        println!(
            "breakdown: tailer without filter, lines only {:.0} MiB/s, + multiline {:.0} MiB/s; the agent scan above {:.0} MiB/s",
            mib / lines_secs,
            mib / ml_secs,
            mib / agent_secs
        );
    }
    Ok(())
}

fn idle(files: usize, secs: u64, rescan: Option<String>) -> anyhow::Result<()> {
    if !cfg!(target_os = "linux") {
        bail!("bench idle reads /proc: Linux only");
    }
    let dir = std::env::temp_dir().join(format!("faultline-agent-idle-{}", std::process::id()));
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    for i in 0..files {
        std::fs::write(
            logs.join(format!("tk-app{i}.log")),
            "2026-11-22 06:40:00,000 [1 INFO x] started\n",
        )?;
    }
    let config = dir.join("agent.toml");
    let mut text = String::new();
    if let Some(r) = &rescan {
        text.push_str(&format!("[tail]\nrescan_interval = {r:?}\n"));
    }
    std::fs::write(&config, text)?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--server", "http://127.0.0.1:9", "--token", "bench"])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--watch")
        .arg(logs.join("tk-*.log"))
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(3));
    let ticks = |pid: u32| -> anyhow::Result<u64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let after = s.rsplit_once(')').map(|x| x.1).unwrap_or_default();
        let f: Vec<&str> = after.split_whitespace().collect();
        Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
    };
    let pid = child.id();
    let t0 = ticks(pid)?;
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let t1 = ticks(pid)?;
    let wall = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or("VmRSS: ? kB")
        .to_owned();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    // USER_HZ is 100 on every Linux we ship for.
    let cpu = (t1 - t0) as f64 / 100.0 / wall * 100.0;
    println!("{files} idle files for {wall:.0} s: CPU {cpu:.3}% of one core, {rss}");
    Ok(())
}

/// A minimal HTTP receiver: records when each `latency-probe N` incident
/// arrived; answers 202.
fn receiver(
    arrivals: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<usize, Instant>>>,
) -> anyhow::Result<std::net::SocketAddr> {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let now_arrivals = std::sync::Arc::clone(&arrivals);
            let mut r = BufReader::new(conn.try_clone().expect("clone socket"));
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((n, v)) = l.split_once(':')
                    && n.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let at = Instant::now();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let text = v["message"].as_str().unwrap_or_default();
            if let Some(n) = text
                .split("latency-probe ")
                .nth(1)
                .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse::<usize>().ok())
            {
                now_arrivals.lock().expect("lock").entry(n).or_insert(at);
            }
            let _ = conn.write_all(
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
            );
        }
    });
    Ok(addr)
}

#[derive(Args)]
struct LatencyRun {
    /// Number of errors.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// The agent's `context.after` (lines waited for after an error).
    #[arg(long)]
    after: Option<usize>,
    /// The agent's `context.after_wait`.
    #[arg(long)]
    after_wait: Option<String>,
    /// The agent's `tail.multiline_timeout`.
    #[arg(long)]
    multiline_timeout: Option<String>,
    /// Lines written after each error (the application goes on logging).
    #[arg(long, default_value_t = 1)]
    follow: usize,
    /// Measure against the real server: start this `faultline` binary
    /// on a temporary data directory and time each error until its
    /// issue is announced on `/api/v1/issues/live` (committed, hence
    /// queryable). Without it, incidents go to a built-in receiver.
    #[arg(long)]
    faultline: Option<PathBuf>,
    /// Log files the errors are spread over (round robin).
    #[arg(long, default_value_t = 1)]
    files: usize,
    /// Pause between two errors, in milliseconds.
    #[arg(long, default_value_t = 20)]
    gap_ms: u64,
}

type Arrivals = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<usize, Instant>>>;

/// A `faultline server` started for the latency run; killed on drop.
struct RealServer {
    child: std::process::Child,
    url: String,
    ingest: String,
    admin: String,
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(bin: &Path, dir: &Path) -> anyhow::Result<RealServer> {
    let data = dir.join("server-data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let token = |args: &[&str]| -> anyhow::Result<String> {
        let out = std::process::Command::new(bin)
            .args(["token", "create", "--data-dir"])
            .arg(&data)
            .args(args)
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "token create: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let ingest = token(&["--project", "bench", "--service", "maya"])?;
    let admin = token(&["--admin"])?;
    let child = std::process::Command::new(bin)
        .args(["server", "--listen", &listen, "--data-dir"])
        .arg(&data)
        .env("FAULTLINE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("server.stderr"))?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let server = RealServer {
        child,
        url: format!("http://{listen}"),
        ingest,
        admin,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = std::net::TcpStream::connect(&listen) {
            let _ = c.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
            let mut reply = String::new();
            let _ = std::io::Read::read_to_string(&mut c, &mut reply);
            if reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200") {
                return Ok(server);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the server did not become ready (see {})",
                dir.join("server.stderr").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Follows `/api/v1/issues/live` and notes when each probe's issue is
/// announced (the processor announces a new issue after its commit).
fn follow_notices(server: &RealServer, arrivals: Arrivals) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut conn = std::net::TcpStream::connect(&addr)?;
    // HTTP/1.0: the stream comes without chunked framing.
    write!(
        conn,
        "GET /api/v1/issues/live?project=bench HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
        server.admin
    )?;
    let mut r = BufReader::new(conn);
    let mut status = String::new();
    r.read_line(&mut status)?;
    if !status.contains(" 200") {
        bail!("live issues: {}", status.trim());
    }
    std::thread::spawn(move || {
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let at = Instant::now();
            let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap_or_default();
            if let Some(n) = v["title"].as_str().and_then(probe_number) {
                arrivals.lock().expect("lock").entry(n).or_insert(at);
            }
        }
    });
    Ok(())
}

/// Probe `n`'s exception name: letters only (digits would be masked by
/// the grouping, and every probe must be an issue of its own).
fn probe_name(mut n: usize) -> String {
    let mut s = String::from("Probe");
    loop {
        s.push(char::from(b'A' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            break;
        }
    }
    s.push_str("Error");
    s
}

fn probe_number(title: &str) -> Option<usize> {
    let start = title.find("Probe")? + 5;
    let rest = &title[start..];
    let end = rest.find("Error")?;
    let mut n = 0usize;
    for (i, c) in rest[..end].bytes().enumerate() {
        if !c.is_ascii_uppercase() {
            return None;
        }
        n += usize::from(c - b'A') * 26usize.pow(i as u32);
    }
    Some(n)
}

fn latency(run: &LatencyRun) -> anyhow::Result<()> {
    let count = run.count;
    let arrivals: Arrivals = Default::default();
    let dir = std::env::temp_dir().join(format!("faultline-agent-lat-{}", std::process::id()));
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let server = match &run.faultline {
        Some(bin) => Some(start_server(bin, &dir)?),
        None => None,
    };
    let (url, token) = match &server {
        Some(s) => {
            follow_notices(s, std::sync::Arc::clone(&arrivals))?;
            (s.url.clone(), s.ingest.clone())
        }
        None => {
            let addr = receiver(std::sync::Arc::clone(&arrivals))?;
            (format!("http://{addr}"), "bench".to_owned())
        }
    };
    let mut cfg = String::from("[throttle]\nwindow = \"0s\"\n[context]\n");
    if let Some(a) = run.after {
        cfg.push_str(&format!("after = {a}\n"));
    }
    if let Some(w) = &run.after_wait {
        cfg.push_str(&format!("after_wait = {w:?}\n"));
    }
    cfg.push_str("[tail]\n");
    if let Some(m) = &run.multiline_timeout {
        cfg.push_str(&format!("multiline_timeout = {m:?}\n"));
    }
    let config = dir.join("agent.toml");
    std::fs::write(&config, cfg)?;
    let paths: Vec<PathBuf> = (0..run.files.max(1))
        .map(|i| logs.join(format!("tk-engine{}.log", probe_name(i).to_lowercase())))
        .collect();
    for p in &paths {
        std::fs::write(p, "")?;
    }
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--server", &url, "--token", &token])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--watch")
        .arg(logs.join("tk-*.log"))
        .env("FAULTLINE_LOG", "info,faultline_agent=debug")
        .stderr(std::fs::File::create(dir.join("agent.stderr"))?)
        .spawn()?;
    std::thread::sleep(Duration::from_secs(2));
    let mut files = paths
        .iter()
        .map(|p| std::fs::OpenOptions::new().append(true).open(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut written = Vec::with_capacity(count);
    for i in 0..count {
        let name = probe_name(i);
        let mut block = format!(
            "2026-11-22 06:40:00,000 [4242 ERROR sgtk.core.engine] latency-probe {i}\nTraceback (most recent call last):\n  File \"/opt/tk/engine.py\", line 12, in load\n{name}: probe {i} failed\n"
        );
        for _ in 0..run.follow {
            block.push_str("2026-11-22 06:40:00,001 [4242 INFO sgtk.core.engine] carrying on\n");
        }
        written.push(Instant::now());
        files[i % run.files.max(1)].write_all(block.as_bytes())?;
        std::thread::sleep(Duration::from_millis(run.gap_ms));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().expect("lock").len() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(server);
    let got = arrivals.lock().expect("lock").clone();
    let missing: Vec<usize> = (0..count).filter(|i| !got.contains_key(i)).collect();
    if missing.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!(
            "missing {missing:?}; agent state and log kept in {}",
            dir.display()
        );
    }
    let mut lat: Vec<Duration> = got
        .iter()
        .filter_map(|(i, at)| written.get(*i).map(|w| at.saturating_duration_since(*w)))
        .collect();
    if lat.is_empty() {
        bail!("no incident arrived");
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let target = if run.faultline.is_some() {
        "issue announced by the real server (committed)"
    } else {
        "received by the built-in receiver"
    };
    println!(
        "{} of {count} errors arrived; write → {target}: p50 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
    Ok(())
}

/// The agent's configuration of a ShotGrid source reading `file` from its
/// start, defaults otherwise.
fn scan_config(file: &Path, state: &Path) -> anyhow::Result<faultline_agent::config::AgentConfig> {
    use faultline_agent::config::{AgentConfig, Overrides, RawConfig, RawSource};
    let raw = RawConfig {
        server: Some("http://127.0.0.1:9".into()),
        token: Some("bench".into()),
        state_dir: Some(state.to_path_buf()),
        sources: vec![RawSource {
            name: Some("scan".into()),
            paths: vec![file.to_string_lossy().into_owned()],
            format: Some("shotgrid".into()),
            start_at: Some("beginning".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    Ok(AgentConfig::build(
        raw,
        Overrides::default(),
        &faultline_agent::platform::process_env,
    )?)
}

/// The real tail and incident threads of the agent (context ring,
/// versions, grouping, throttle, attachments, spool with fsync), without
/// the network. Returns (records, incident counters, seconds until the
/// worker read and handled every byte, seconds until everything was
/// spooled: the last errors wait for `after_wait` and the multiline
/// timeout, as nothing follows them).
fn full_pipeline(
    file: &Path,
    size: u64,
    scan_filter: bool,
) -> anyhow::Result<(u64, faultline_agent::pipeline::BuilderStats, f64, f64)> {
    use faultline_agent::pipeline::{Shared, start_source};
    use std::sync::Arc;
    let state = std::env::temp_dir().join(format!("faultline-agent-scan-{}", std::process::id()));
    let mut cfg = scan_config(file, &state)?;
    cfg.scan_filter = scan_filter;
    let cfg = Arc::new(cfg);
    std::fs::create_dir_all(&state)?;
    let spool = faultline_agent::spool::Spool::open(
        &state.join("spool"),
        &state.join("dead-letter"),
        cfg.spool_max_bytes,
    )?;
    let shared = Shared::new(spool);
    let env = Arc::new(faultline_agent::environment::StaticEnv::collect(
        &cfg.user,
        &cfg.env_extra,
    ));
    let t = Instant::now();
    let (mut worker, builder) = start_source(
        cfg.sources[0].clone(),
        Arc::clone(&cfg),
        env,
        Arc::clone(&shared),
    )?;
    let b = std::thread::spawn(move || builder.run());
    let deadline = Instant::now() + Duration::from_secs(3600);
    let mut read_secs = None;
    loop {
        worker.step(Duration::from_millis(600));
        let files = worker.files();
        if read_secs.is_none() && files.iter().all(|f| f.read >= size) {
            read_secs = Some(t.elapsed().as_secs_f64());
        }
        let done = files.iter().all(|f| f.emitted >= size);
        if (done && !worker.has_pending()) || Instant::now() > deadline {
            break;
        }
    }
    let records = worker.stats.records;
    drop(worker);
    let stats = b
        .join()
        .map_err(|_| anyhow::anyhow!("incident thread panicked"))?;
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&state);
    Ok((records, stats, read_secs.unwrap_or(secs), secs))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[0.5, 0.1, 0.3]), 0.3);
        assert_eq!(median(&[0.4, 0.1, 0.3, 0.2]), 0.25);
    }
}
