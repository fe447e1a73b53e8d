//! `install` / `uninstall`: run the agent at login as the user.
//!
//! - Linux: a systemd user unit `$XDG_CONFIG_HOME/systemd/user/faultline-agent.service`
//!   (`~/.config/...`), then `systemctl --user daemon-reload` and
//!   `enable --now` when systemctl is available.
//! - macOS: a launchd agent `~/Library/LaunchAgents/io.faultline.agent.plist`,
//!   then `launchctl load -w`.
//! - Windows: a scheduled task (see `docs/AGENT.md`); `install` prints the
//!   `schtasks` command.
//!
//! The server URL and token go into the unit's environment (the file is
//! made readable by the user only), never on the command line, where
//! other users could see them in the process list.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the service runs with.
#[derive(Debug, Clone, Default)]
pub struct ServiceSpec {
    /// Absolute path of the agent binary.
    pub exe: PathBuf,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `FAULTLINE_SERVER`.
    pub server: Option<String>,
    /// `FAULTLINE_TOKEN`.
    pub token: Option<String>,
    /// `--watch` globs.
    pub watch: Vec<String>,
}

/// Where the unit goes on Linux.
pub fn systemd_unit_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    crate::platform::config_home(env).map(|c| {
        c.join("systemd")
            .join("user")
            .join("faultline-agent.service")
    })
}

/// Where the plist goes on macOS.
pub fn launchd_plist_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    crate::platform::home_dir(env).map(|h| {
        h.join("Library")
            .join("LaunchAgents")
            .join("io.faultline.agent.plist")
    })
}

fn args(spec: &ServiceSpec) -> Vec<String> {
    let mut a = vec![spec.exe.to_string_lossy().into_owned(), "run".into()];
    if let Some(c) = &spec.config {
        a.push("--config".into());
        a.push(c.to_string_lossy().into_owned());
    }
    if let Some(s) = &spec.state_dir {
        a.push("--state-dir".into());
        a.push(s.to_string_lossy().into_owned());
    }
    for w in &spec.watch {
        a.push("--watch".into());
        a.push(w.clone());
    }
    a
}

fn systemd_quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    format!("\"{escaped}\"")
}

/// The systemd user unit.
pub fn systemd_unit(spec: &ServiceSpec) -> String {
    let mut u = String::new();
    u.push_str("[Unit]\nDescription=faultline agent: turns errors in local logs into faultline incidents\nAfter=network-online.target\n\n[Service]\nType=simple\n");
    let exec: Vec<String> = args(spec).iter().map(|a| systemd_quote(a)).collect();
    let _ = writeln!(u, "ExecStart={}", exec.join(" "));
    for (k, v) in [
        ("FAULTLINE_SERVER", &spec.server),
        ("FAULTLINE_TOKEN", &spec.token),
    ] {
        if let Some(v) = v {
            let _ = writeln!(u, "Environment={}", systemd_quote(&format!("{k}={v}")));
        }
    }
    // A second instance exits 1 by design: do not restart-loop on it.
    u.push_str("Restart=on-failure\nRestartSec=10\nRestartPreventExitStatus=3\nNice=10\nIOSchedulingClass=idle\n\n[Install]\nWantedBy=default.target\n");
    u
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The launchd agent.
pub fn launchd_plist(spec: &ServiceSpec) -> String {
    let mut p = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n  <key>Label</key><string>io.faultline.agent</string>\n  <key>ProgramArguments</key>\n  <array>\n",
    );
    for a in args(spec) {
        let _ = writeln!(p, "    <string>{}</string>", xml(&a));
    }
    p.push_str("  </array>\n  <key>EnvironmentVariables</key>\n  <dict>\n");
    for (k, v) in [
        ("FAULTLINE_SERVER", &spec.server),
        ("FAULTLINE_TOKEN", &spec.token),
    ] {
        if let Some(v) = v {
            let _ = writeln!(p, "    <key>{k}</key><string>{}</string>", xml(v));
        }
    }
    p.push_str("  </dict>\n  <key>RunAtLoad</key><true/>\n  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>\n  <key>ProcessType</key><string>Background</string>\n  <key>LowPriorityIO</key><true/>\n</dict>\n</plist>\n");
    p
}

/// The Windows scheduled-task command.
pub fn schtasks_command(spec: &ServiceSpec) -> String {
    let cmd: Vec<String> = args(spec)
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("\\\"{a}\\\"")
            } else {
                a.clone()
            }
        })
        .collect();
    format!(
        "schtasks /Create /TN \"faultline-agent\" /SC ONLOGON /RL LIMITED /F /TR \"{}\"",
        cmd.join(" ")
    )
}

fn no_home() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, "no home directory")
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    faultline_tail::write_atomic(path, text.as_bytes()).map_err(std::io::Error::other)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(cmd).args(args).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{cmd} {}` failed ({s})", args.join(" "))),
        Err(e) => Err(format!("`{cmd}` not available: {e}")),
    }
}

/// Installs for the current OS; returns what to tell the user.
pub fn install(
    spec: &ServiceSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::io::Result<String> {
    if cfg!(target_os = "macos") {
        let p = launchd_plist_path(env).ok_or_else(no_home)?;
        write_private(&p, &launchd_plist(spec))?;
        let _ = run("launchctl", &["unload", &p.to_string_lossy()]);
        return Ok(
            match run("launchctl", &["load", "-w", &p.to_string_lossy()]) {
                Ok(()) => format!("installed and started launchd agent {}", p.display()),
                Err(e) => format!("wrote {}; could not load it: {e}", p.display()),
            },
        );
    }
    if cfg!(windows) {
        return Ok(format!(
            "on Windows, register the agent as a scheduled task (set FAULTLINE_SERVER and FAULTLINE_TOKEN as user environment variables first):\n  {}",
            schtasks_command(spec)
        ));
    }
    let p = systemd_unit_path(env).ok_or_else(no_home)?;
    write_private(&p, &systemd_unit(spec))?;
    let started = run("systemctl", &["--user", "daemon-reload"]).and_then(|()| {
        run(
            "systemctl",
            &["--user", "enable", "--now", "faultline-agent.service"],
        )
    });
    Ok(match started {
        Ok(()) => format!("installed and started systemd user unit {}", p.display()),
        Err(e) => format!(
            "wrote {}; systemd user services are not available here ({e}); start it with `systemctl --user enable --now faultline-agent` in a user session, or run `faultline-agent run` from your session's autostart",
            p.display()
        ),
    })
}

/// Uninstalls for the current OS.
pub fn uninstall(env: &dyn Fn(&str) -> Option<String>) -> std::io::Result<String> {
    if cfg!(target_os = "macos") {
        let p = launchd_plist_path(env).ok_or_else(no_home)?;
        let _ = run("launchctl", &["unload", "-w", &p.to_string_lossy()]);
        return Ok(remove(&p));
    }
    if cfg!(windows) {
        return Ok("on Windows: schtasks /Delete /TN \"faultline-agent\" /F".into());
    }
    let p = systemd_unit_path(env).ok_or_else(no_home)?;
    let stopped = run(
        "systemctl",
        &["--user", "disable", "--now", "faultline-agent.service"],
    );
    let msg = remove(&p);
    let _ = run("systemctl", &["--user", "daemon-reload"]);
    Ok(match stopped {
        Ok(()) => format!("stopped the service; {msg}"),
        Err(e) => format!("{msg} (systemctl: {e})"),
    })
}

fn remove(p: &Path) -> String {
    match std::fs::remove_file(p) {
        Ok(()) => format!("removed {}", p.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("{} was not installed", p.display())
        }
        Err(e) => format!("cannot remove {}: {e}", p.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            exe: "/opt/fl/faultline-agent".into(),
            config: Some("/home/a/my agent.toml".into()),
            state_dir: None,
            server: Some("http://fl:8470".into()),
            token: Some("fl_secret$x".into()),
            watch: vec!["/var/log/*.log".into()],
        }
    }

    #[test]
    fn systemd_unit_runs_the_agent_with_env() {
        let u = systemd_unit(&spec());
        assert!(u.contains("ExecStart=\"/opt/fl/faultline-agent\" \"run\" \"--config\" \"/home/a/my agent.toml\" \"--watch\" \"/var/log/*.log\"\n"), "{u}");
        assert!(
            u.contains("Environment=\"FAULTLINE_TOKEN=fl_secret$$x\""),
            "{u}"
        );
        assert!(u.contains("WantedBy=default.target"));
        let env = |k: &str| (k == "HOME").then(|| "/home/a".to_owned());
        assert_eq!(
            systemd_unit_path(&env).unwrap(),
            Path::new("/home/a/.config/systemd/user/faultline-agent.service")
        );
    }

    #[test]
    fn launchd_and_schtasks() {
        let p = launchd_plist(&spec());
        assert!(p.contains("<string>/home/a/my agent.toml</string>"));
        assert!(p.contains("<key>FAULTLINE_SERVER</key><string>http://fl:8470</string>"));
        let s = schtasks_command(&spec());
        assert!(
            s.starts_with("schtasks /Create /TN \"faultline-agent\" /SC ONLOGON"),
            "{s}"
        );
        assert!(s.contains("\\\"/home/a/my agent.toml\\\""), "{s}");
    }

    #[test]
    fn writes_private_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/unit.service");
        write_private(&p, "x").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
