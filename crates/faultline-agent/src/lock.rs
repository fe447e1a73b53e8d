//! Singleton per user: an OS lock on `agent.lock` in the state directory
//! (`File::try_lock`: `flock` on Unix, `LockFileEx` on Windows). The lock
//! belongs to the open file, so it vanishes with the process however it
//! ends: a crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another agent holds it.
    #[error("another faultline-agent is already running with state dir {dir}{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// The holder's pid, when it wrote one.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// Lock file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Held while the agent runs; released on drop or process exit.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock in `state_dir` (which must exist), or says who has it.
    pub fn acquire(state_dir: &Path) -> Result<InstanceLock, LockError> {
        let path = state_dir.join("agent.lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut s = String::new();
                let pid = file
                    .read_to_string(&mut s)
                    .ok()
                    .and_then(|_| s.trim().parse().ok());
                return Err(LockError::Held {
                    dir: state_dir.to_path_buf(),
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Best effort: the pid helps the message of a second instance.
        let _ = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| write!(file, "{}", std::process::id()))
            .and_then(|_| file.flush());
        Ok(InstanceLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_released_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let a = InstanceLock::acquire(d.path()).unwrap();
        let e = InstanceLock::acquire(d.path()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("already running"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(a);
        let _again = InstanceLock::acquire(d.path()).unwrap();
    }
}
