//! Where things are on each OS. Every function takes the environment as a
//! lookup function, so the rules are tested on any OS.

use std::path::PathBuf;

/// Reads the process environment (the `env` argument of the functions
/// below in production).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The home directory.
pub fn home(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if cfg!(windows) {
        env("USERPROFILE")
            .or_else(|| env("HOME"))
            .map(PathBuf::from)
    } else {
        env("HOME").map(PathBuf::from)
    }
}

/// The ShotGrid Toolkit log folder: `$SHOTGUN_HOME/logs` when set, else
/// Linux `~/.shotgun/logs`, macOS `~/Library/Logs/Shotgun`, Windows
/// `%APPDATA%\Shotgun\logs`.
pub fn shotgrid_log_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(h) = env("SHOTGUN_HOME") {
        return Some(PathBuf::from(h).join("logs"));
    }
    if cfg!(windows) {
        return env("APPDATA").map(|a| PathBuf::from(a).join("Shotgun").join("logs"));
    }
    let home = home(env)?;
    if cfg!(target_os = "macos") {
        Some(home.join("Library").join("Logs").join("Shotgun"))
    } else {
        Some(home.join(".shotgun").join("logs"))
    }
}

/// The agent's state directory: Linux `$XDG_STATE_HOME/faultline-agent`
/// (`~/.local/state/faultline-agent`), macOS `~/Library/Application
/// Support/faultline-agent`, Windows `%LOCALAPPDATA%\faultline-agent`.
pub fn default_state_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if cfg!(windows) {
        return env("LOCALAPPDATA")
            .or_else(|| env("APPDATA"))
            .map(|a| PathBuf::from(a).join("faultline-agent"));
    }
    if cfg!(target_os = "macos") {
        return home(env).map(|h| {
            h.join("Library")
                .join("Application Support")
                .join("faultline-agent")
        });
    }
    if let Some(x) = env("XDG_STATE_HOME") {
        return Some(PathBuf::from(x).join("faultline-agent"));
    }
    home(env).map(|h| h.join(".local").join("state").join("faultline-agent"))
}

/// The user's config directory for units: `$XDG_CONFIG_HOME` or
/// `~/.config`.
pub fn config_home(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home(env).map(|h| h.join(".config")))
}

/// The home directory.
pub fn home_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    home(env)
}

/// The login name: `USER`, `LOGNAME`, `USERNAME`, else (Unix) the name
/// of the uid that owns the process in `/etc/passwd`, else `unknown`.
pub fn user_login(env: &dyn Fn(&str) -> Option<String>) -> String {
    env("USER")
        .or_else(|| env("LOGNAME"))
        .or_else(|| env("USERNAME"))
        .or_else(login_from_passwd)
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(unix)]
fn login_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // `/proc/self` belongs to the process's user (Linux); elsewhere the
    // home directory is the user's.
    let meta = match std::fs::metadata("/proc/self") {
        Ok(m) => m,
        Err(_) => std::fs::metadata(std::env::var_os("HOME")?).ok()?,
    };
    let uid = meta.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd_name(&passwd, uid)
}

#[cfg(not(unix))]
fn login_from_passwd() -> Option<String> {
    None
}

/// The user name of `uid` in `/etc/passwd` text.
pub fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let _pw = f.next()?;
        (f.next()?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// The engine of a ShotGrid log file: `tk-maya` for `tk-maya.log` (and
/// `tk-maya.log.1`).
pub fn engine_from_path(path: &std::path::Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.split(".log").next()?;
    (stem.starts_with("tk-") && stem.len() > 3 && name.len() > stem.len()).then(|| stem.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn engine_names() {
        assert_eq!(
            engine_from_path(Path::new("/x/tk-maya.log")).as_deref(),
            Some("tk-maya")
        );
        assert_eq!(
            engine_from_path(Path::new("tk-desktop.log.1")).as_deref(),
            Some("tk-desktop")
        );
        assert_eq!(engine_from_path(Path::new("app.log")), None);
        assert_eq!(engine_from_path(Path::new("tk-.log")), None);
    }

    #[test]
    fn state_dir_follows_xdg() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/a".to_owned()),
            "XDG_STATE_HOME" => Some("/xdg".to_owned()),
            _ => None,
        };
        if cfg!(target_os = "linux") {
            assert_eq!(
                default_state_dir(&env).unwrap(),
                Path::new("/xdg/faultline-agent")
            );
        }
        assert!(!user_login(&|_| None).is_empty());
        assert_eq!(
            passwd_name(
                "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/bash\n",
                1000
            )
            .as_deref(),
            Some("alice")
        );
        assert_eq!(passwd_name("root:x:0:0::/root:/bin/sh\n", 7), None);
    }
}
