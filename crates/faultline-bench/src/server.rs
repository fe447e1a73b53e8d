//! The server under test: started as a child process on a free loopback port
//! with a temporary data directory, and stopped (by its PID only) when the
//! guard is dropped, including on errors and panics. Also reads its memory
//! and CPU from `/proc`.

use anyhow::{Context, bail};
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A running `faultline server`; dropping it stops the process.
pub struct Server {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    exe: PathBuf,
    data_dir: PathBuf,
    log_path: PathBuf,
    // Removed last, after the process is gone.
    _tmp: tempfile::TempDir,
}

impl Server {
    /// Starts `exe server --listen 127.0.0.1:PORT --data-dir TMP/data` and
    /// waits until `GET /healthz` answers 200 (at most 30 s). `env` is added
    /// to the server's environment. `prepare` runs first, with the (new,
    /// empty) data directory, to put data there before the server opens it.
    /// With `keep`, the temporary directory stays after the run.
    pub async fn start(
        exe: &Path,
        env: &[(String, String)],
        http: &reqwest::Client,
        keep: bool,
        prepare: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Server> {
        let mut tmp = tempfile::Builder::new()
            .prefix("faultline-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        if keep {
            tmp.disable_cleanup(true);
        }
        let data_dir = tmp.path().join("data");
        std::fs::create_dir_all(&data_dir).context("cannot create the data directory")?;
        prepare(&data_dir)?;
        let log_path = tmp.path().join("server.log");
        let addr = free_port()?;
        let log = File::create(&log_path).context("cannot create the server log file")?;
        let child = Command::new(exe)
            .arg("server")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .env("FAULTLINE_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let mut server = Server {
            pid: child.id(),
            child,
            addr,
            exe: exe.to_path_buf(),
            data_dir,
            log_path,
            _tmp: tmp,
        };
        server.wait_healthy(http).await?;
        Ok(server)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}/healthz", self.base_url());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited with {status} before answering; its log:\n{}",
                    self.log_tail()
                );
            }
            let answered = http.get(&url).send().await;
            if answered.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "the server did not answer {url} within 30 s; its log:\n{}",
            self.log_tail()
        )
    }

    /// The last lines the server wrote to stderr.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Runs `faultline token create --data-dir DIR ARGS…` and returns the
    /// token it prints.
    pub fn create_token(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(&self.exe)
            .args(["token", "create", "--data-dir"])
            .arg(&self.data_dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {} token create", self.exe.display()))?;
        if !out.status.success() {
            bail!(
                "token create {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let token = String::from_utf8(out.stdout)
            .context("the token is not UTF-8")?
            .trim()
            .to_string();
        if token.is_empty() || token.contains(char::is_whitespace) {
            bail!("token create {args:?} printed {token:?}, not one token");
        }
        Ok(token)
    }

    /// Asks the server to stop (SIGTERM via `kill PID`), waits up to 10 s,
    /// then kills it. Only this child's PID is ever signalled.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bytes free on the file system of `path` (`df -Pk`), if known.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Resident set size of a process in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What a process's idle memory is made of.
#[derive(Debug, Clone, Copy)]
pub struct RssParts {
    /// `RssAnon`, KiB: the heap.
    pub anon_kib: u64,
    /// `RssFile`, KiB: mapped files (the binary, libraries, a memory-mapped
    /// database).
    pub file_kib: u64,
    /// Sockets the process holds open (its listener and the keep-alive
    /// connections the load left), each with buffers on the heap; `None`
    /// when its descriptors cannot be listed.
    pub sockets: Option<usize>,
}

/// The parts of a process's RSS (`/proc/PID/status`) and its open sockets
/// (`/proc/PID/fd`).
pub fn rss_parts(pid: u32) -> Option<RssParts> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let sockets = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        });
    Some(RssParts {
        anon_kib: field("RssAnon:")?,
        file_kib: field("RssFile:")?,
        sockets,
    })
}

/// User + system CPU time of a process in clock ticks (`/proc/PID/stat`);
/// `None` for the benchmark's own process means `self`.
pub fn cpu_ticks(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may contain spaces): state is
    // field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time of the whole machine, all cores, in clock ticks: (busy, iowait)
/// from the first line of `/proc/stat`.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    Some((busy, *v.get(4)?))
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
pub fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Samples a process's RSS every `period` on its own thread, for at most
/// `limit` (the sampler stops by itself).
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, u64)>>>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32, period: Duration, limit: Duration) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let samples = samples.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + limit;
                while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                    if let Some(kib) = rss_kib(pid) {
                        samples
                            .lock()
                            .expect("the sampler lock is never poisoned")
                            .push((Instant::now(), kib));
                    }
                    std::thread::sleep(period);
                }
            })
        };
        RssSampler {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Largest RSS (KiB) sampled in `[from, to]`.
    pub fn max_between(&self, from: Instant, to: Instant) -> Option<u64> {
        self.samples
            .lock()
            .expect("the sampler lock is never poisoned")
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(_, kib)| *kib)
            .max()
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Wall time and CPU of the server and of the benchmark over one phase.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
    /// CPU used by the server, in cores (1.0 = one core busy all the time).
    pub server_cores: f64,
    /// CPU used by this benchmark process (load generator), in cores.
    pub bench_cores: f64,
    /// CPU used by everything else on the machine, in cores.
    pub other_cores: f64,
    /// Time the machine's cores waited for I/O, in cores.
    pub iowait_cores: f64,
    /// Largest server RSS sampled during the phase, KiB.
    pub rss_max_kib: Option<u64>,
}

impl Window {
    pub fn secs(&self) -> f64 {
        (self.end - self.start).as_secs_f64()
    }
}

/// Starts measuring a phase; [`Meter::end`] returns its [`Window`].
pub struct Meter {
    pid: u32,
    ticks_per_sec: f64,
    start: Instant,
    server0: u64,
    bench0: u64,
    machine0: (u64, u64),
}

impl Meter {
    pub fn begin(pid: u32, ticks_per_sec: f64) -> Meter {
        Meter {
            pid,
            ticks_per_sec,
            start: Instant::now(),
            server0: cpu_ticks(Some(pid)).unwrap_or(0),
            bench0: cpu_ticks(None).unwrap_or(0),
            machine0: machine_ticks().unwrap_or((0, 0)),
        }
    }

    pub fn end(&self, sampler: &RssSampler) -> Window {
        let end = Instant::now();
        let secs = (end - self.start).as_secs_f64().max(1e-9);
        let cores = |t0: u64, t1: Option<u64>| {
            t1.map_or(0.0, |t1| {
                t1.saturating_sub(t0) as f64 / self.ticks_per_sec / secs
            })
        };
        let server_cores = cores(self.server0, cpu_ticks(Some(self.pid)));
        let bench_cores = cores(self.bench0, cpu_ticks(None));
        let machine = machine_ticks();
        let busy = cores(self.machine0.0, machine.map(|m| m.0));
        Window {
            start: self.start,
            end,
            server_cores,
            bench_cores,
            other_cores: (busy - server_cores - bench_cores).max(0.0),
            iowait_cores: cores(self.machine0.1, machine.map(|m| m.1)),
            rss_max_kib: sampler.max_between(self.start, end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_rss_and_cpu() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|k| k > 0));
        assert!(rss_parts(pid).is_some_and(|p| p.anon_kib > 0));
        // A socket of our own is counted.
        let _listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        assert!(
            rss_parts(pid)
                .and_then(|p| p.sockets)
                .is_some_and(|n| n >= 1)
        );
        assert!(cpu_ticks(None).is_some());
        assert!(cpu_ticks(Some(pid)).is_some());
        assert!(machine_ticks().is_some());
    }
}
