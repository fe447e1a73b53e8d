//! What an incident tells about the machine: OS and version, hostname,
//! user, CPU, RAM, uptime, agent version, the process that logged the
//! error, engine and tk-core versions seen in the log, and allow-listed
//! environment variables.
//!
//! Read directly from the OS (`/proc`, `/etc/os-release`; `sysctl` and
//! `sw_vers` on macOS; environment variables on Windows) rather than
//! through a system-information crate: a few files, no extra threads, no
//! build weight. On Linux the environment variables come from the logging
//! process itself (`/proc/<pid>/environ`, when it still runs and belongs
//! to the user), since that is the environment the error happened in;
//! otherwise from the agent's.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

/// The values that do not change while the agent runs.
#[derive(Debug, Clone, Default)]
pub struct StaticEnv {
    /// Key → value.
    pub values: BTreeMap<String, String>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn command(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Value of `key` in an `/etc/os-release`-style text.
pub fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// `model name` and logical CPU count from `/proc/cpuinfo` text.
pub fn cpuinfo_model(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let k = k.trim();
        (k == "model name" || k == "Hardware" || k == "cpu model").then(|| v.trim().to_owned())
    })
}

/// `MemTotal` in bytes from `/proc/meminfo` text.
pub fn meminfo_total(text: &str) -> Option<u64> {
    let l = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl StaticEnv {
    /// Collects them (a few file reads; on macOS a few short commands).
    pub fn collect(user: &str, extra: &BTreeMap<String, String>) -> StaticEnv {
        let mut v = BTreeMap::new();
        v.insert("agent_version".into(), env!("CARGO_PKG_VERSION").into());
        v.insert("user".into(), user.to_owned());
        v.insert("os_family".into(), std::env::consts::OS.into());
        v.insert("arch".into(), std::env::consts::ARCH.into());
        if let Ok(n) = std::thread::available_parallelism() {
            v.insert("cpu_count".into(), n.get().to_string());
        }
        let mut os = None;
        let mut host = None;
        let mut cpu = None;
        let mut ram = None;
        if cfg!(target_os = "linux") {
            let kernel = read("/proc/sys/kernel/osrelease");
            let pretty = read("/etc/os-release").and_then(|t| os_release_value(&t, "PRETTY_NAME"));
            os = Some(match (pretty, &kernel) {
                (Some(p), Some(k)) => format!("{p} (Linux {k})"),
                (None, Some(k)) => format!("Linux {k}"),
                (Some(p), None) => p,
                (None, None) => "Linux".into(),
            });
            if let Some(k) = kernel {
                v.insert("kernel".into(), k);
            }
            host = read("/proc/sys/kernel/hostname");
            cpu = read("/proc/cpuinfo").and_then(|t| cpuinfo_model(&t));
            ram = read("/proc/meminfo").and_then(|t| meminfo_total(&t));
        } else if cfg!(target_os = "macos") {
            let name = command("sw_vers", &["-productName"]).unwrap_or_else(|| "macOS".into());
            let ver = command("sw_vers", &["-productVersion"]).unwrap_or_default();
            os = Some(format!("{name} {ver}").trim().to_owned());
            host =
                command("scutil", &["--get", "ComputerName"]).or_else(|| command("hostname", &[]));
            cpu = command("sysctl", &["-n", "machdep.cpu.brand_string"]);
            ram = command("sysctl", &["-n", "hw.memsize"]).and_then(|s| s.parse().ok());
        } else if cfg!(windows) {
            os = command("cmd", &["/C", "ver"]).or_else(|| Some("Windows".into()));
            host = std::env::var("COMPUTERNAME").ok();
            cpu = std::env::var("PROCESSOR_IDENTIFIER").ok();
        }
        if host.is_none() {
            host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| command("hostname", &[]));
        }
        v.insert(
            "os".into(),
            os.unwrap_or_else(|| std::env::consts::OS.into()),
        );
        if let Some(h) = host {
            v.insert("hostname".into(), h);
        }
        if let Some(c) = cpu {
            v.insert("cpu".into(), c);
        }
        if let Some(r) = ram {
            v.insert("ram_bytes".into(), r.to_string());
            v.insert(
                "ram".into(),
                format!("{:.1} GiB", r as f64 / (1u64 << 30) as f64),
            );
        }
        for (k, val) in extra {
            v.insert(k.clone(), val.clone());
        }
        StaticEnv { values: v }
    }
}

/// Seconds since boot, when the OS says.
pub fn uptime_secs() -> Option<u64> {
    if cfg!(target_os = "linux") {
        let t = read("/proc/uptime")?;
        let s: f64 = t.split_whitespace().next()?.parse().ok()?;
        return Some(s as u64);
    }
    if cfg!(target_os = "macos") {
        // "{ sec = 1700000000, usec = 0 } ..."
        let t = command("sysctl", &["-n", "kern.boottime"])?;
        let sec: u64 = t
            .split("sec = ")
            .nth(1)?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        return now.checked_sub(sec);
    }
    None
}

/// Whether `name` matches one of the `*`-wildcard `patterns`
/// (case-insensitive on Windows, where variable names are).
pub fn name_allowed(name: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        if cfg!(windows) {
            wildcard(&p.to_ascii_uppercase(), &name.to_ascii_uppercase())
        } else {
            wildcard(p, name)
        }
    })
}

fn wildcard(p: &str, s: &str) -> bool {
    match p.split_once('*') {
        None => p == s,
        Some((head, rest)) => {
            let Some(s) = s.strip_prefix(head) else {
                return false;
            };
            if rest.is_empty() {
                return true;
            }
            (0..=s.len()).any(|i| s.is_char_boundary(i) && wildcard(rest, &s[i..]))
        }
    }
}

/// Allow-listed variables: of process `pid` when readable (Linux), else
/// of the agent. Second value: where they came from.
pub fn variables(
    pid: Option<u32>,
    patterns: &[String],
) -> (BTreeMap<String, String>, &'static str) {
    let mut out = BTreeMap::new();
    if patterns.is_empty() {
        return (out, "none");
    }
    if cfg!(target_os = "linux")
        && let Some(pid) = pid
        && let Ok(bytes) = std::fs::read(format!("/proc/{pid}/environ"))
    {
        for kv in bytes.split(|b| *b == 0) {
            let kv = String::from_utf8_lossy(kv);
            if let Some((k, v)) = kv.split_once('=')
                && name_allowed(k, patterns)
            {
                out.insert(k.to_owned(), v.to_owned());
            }
        }
        return (out, "process");
    }
    for (k, v) in std::env::vars_os() {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue;
        };
        if name_allowed(k, patterns) {
            out.insert(k.to_owned(), v.to_owned());
        }
    }
    (out, "agent")
}

/// The command name of process `pid`, when the OS tells (Linux).
pub fn process_name(pid: u32) -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = cmd.split(|b| *b == 0).next()?;
    let s = String::from_utf8_lossy(argv0);
    let base = s.rsplit(['/', '\\']).next()?.to_owned();
    (!base.is_empty()).then_some(base)
}

static VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(tk-[a-z0-9_-]+?)[\s:,]+(?:v(?:ersion)?[\s:]*)?(v?\d+\.\d+(?:\.\d+)*)\b")
        .expect("valid regex")
});

/// Component versions a log line reveals, e.g. `Running tk-core
/// v0.20.5` or `tk-maya version: v0.12.1`: (component, version).
pub fn versions_in(line: &str) -> Vec<(String, String)> {
    if !line.contains("tk-") {
        return Vec::new();
    }
    VERSION
        .captures_iter(line)
        .map(|c| {
            let v = c[2].to_owned();
            let v = if v.starts_with('v') {
                v
            } else {
                format!("v{v}")
            };
            (c[1].to_owned(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_texts() {
        assert_eq!(
            os_release_value(
                "NAME=\"Rocky\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n",
                "PRETTY_NAME"
            )
            .as_deref(),
            Some("Rocky Linux 9.3 (Blue Onyx)")
        );
        assert_eq!(
            cpuinfo_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n").as_deref(),
            Some("AMD EPYC 7B13")
        );
        assert_eq!(
            meminfo_total("MemTotal:       16384 kB\nMemFree: 1 kB"),
            Some(16384 * 1024)
        );
    }

    #[test]
    fn wildcards() {
        let p = vec![
            "TK_*".to_owned(),
            "SHOTGUN_*".to_owned(),
            "EXACT".to_owned(),
        ];
        assert!(name_allowed("TK_DEBUG", &p));
        assert!(name_allowed("SHOTGUN_HOME", &p));
        assert!(name_allowed("EXACT", &p));
        assert!(!name_allowed("EXACTLY", &p));
        assert!(!name_allowed("PATH", &p));
        assert!(wildcard("A*B*C", "AxxBxxC"));
        assert!(!wildcard("A*B*C", "AxxBxx"));
    }

    #[test]
    fn collects_this_machine() {
        let e = StaticEnv::collect(
            "alice",
            &BTreeMap::from([("site".to_owned(), "paris".to_owned())]),
        );
        for k in ["os", "user", "agent_version", "cpu_count", "site"] {
            assert!(e.values.contains_key(k), "{k}: {:?}", e.values);
        }
        if cfg!(target_os = "linux") {
            assert!(e.values.contains_key("ram_bytes"));
            assert!(uptime_secs().is_some());
            // Our own process: its environment and name are readable.
            let (vars, from) = variables(Some(std::process::id()), &["PATH".to_owned()]);
            assert_eq!(from, "process");
            assert!(vars.contains_key("PATH"));
            assert!(process_name(std::process::id()).is_some());
        }
    }

    #[test]
    fn versions_from_log_lines() {
        assert_eq!(
            versions_in("Running tk-core v0.20.5 in /opt/sg"),
            [("tk-core".to_owned(), "v0.20.5".to_owned())]
        );
        assert_eq!(
            versions_in("tk-maya version: 0.12.1, tk-core: v0.19.18"),
            [
                ("tk-maya".to_owned(), "v0.12.1".to_owned()),
                ("tk-core".to_owned(), "v0.19.18".to_owned())
            ]
        );
        assert!(versions_in("nothing here v1.2").is_empty());
    }
}
