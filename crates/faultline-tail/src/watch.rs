//! OS change notifications, coalesced. The notify callback runs on the
//! watcher's own thread and only records *what* changed (a bounded set of
//! paths, or "rescan") and wakes the poller; all file work happens in
//! [`crate::Tailer::poll`]. Memory stays bounded however fast files change.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

/// Above this many distinct changed paths, ask for a full pass instead.
const MAX_PENDING_PATHS: usize = 4096;

/// What changed since the last [`Watcher::take`].
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Files whose data changed.
    pub paths: HashSet<PathBuf>,
    /// Something structural happened (create, rename, delete, overflow):
    /// re-evaluate the globs.
    pub rescan: bool,
    /// Notifications received.
    pub events: u64,
    /// Watcher errors (bounded).
    pub errors: Vec<String>,
    /// Renames seen as (from, to) pairs (bounded): a file renamed from a
    /// matched name to another name is followed even when no rescan saw it
    /// under its matched name.
    pub renames: Vec<(PathBuf, PathBuf)>,
    /// The "from" half of a rename whose "to" half has not arrived yet.
    rename_from: Option<(PathBuf, Option<usize>)>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: SyncSender<()>,
}

/// Why a directory could not be watched.
#[derive(Debug)]
pub(crate) struct WatchError {
    /// An OS resource limit (too many watches): fall back to polling.
    pub is_limit: bool,
    pub message: String,
}

/// Notify watcher plus the wake-up channel the poller sleeps on.
pub(crate) struct Watcher {
    inner: Option<RecommendedWatcher>,
    shared: Arc<Shared>,
    wake_rx: Receiver<()>,
    watched: HashMap<PathBuf, bool>,
}

impl Watcher {
    /// A watcher; with `notify == false`, or when the OS watcher cannot be
    /// created, only the sleep/wake part works (polling mode) and the
    /// error is returned for reporting.
    pub(crate) fn new(notify: bool) -> (Self, Option<String>) {
        let (wake, wake_rx) = sync_channel(1);
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake,
        });
        let mut err = None;
        let inner = if notify {
            let s = Arc::clone(&shared);
            match notify::recommended_watcher(move |res| on_event(&s, res)) {
                Ok(w) => Some(w),
                Err(e) => {
                    err = Some(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        (
            Watcher {
                inner,
                shared,
                wake_rx,
                watched: HashMap::new(),
            },
            err,
        )
    }

    /// Whether OS notifications are active.
    pub(crate) fn is_notifying(&self) -> bool {
        self.inner.is_some()
    }

    /// Drops the OS watcher (after a fatal watcher error): polling only.
    pub(crate) fn disable(&mut self) {
        self.inner = None;
        self.watched.clear();
    }

    /// Makes sure every existing root directory is watched. Returns the
    /// failures; a failure other than a vanished directory usually means
    /// the OS limit on watches was reached.
    pub(crate) fn sync_roots(&mut self, roots: &[(PathBuf, bool)]) -> Vec<(PathBuf, WatchError)> {
        let mut failures = Vec::new();
        let Some(w) = self.inner.as_mut() else {
            return failures;
        };
        for (dir, recursive) in roots {
            let exists = dir.is_dir();
            let watched = self.watched.contains_key(dir);
            if exists && !watched {
                let mode = if *recursive {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                match w.watch(dir, mode) {
                    Ok(()) => {
                        self.watched.insert(dir.clone(), *recursive);
                    }
                    Err(e) => {
                        let is_limit = match &e.kind {
                            notify::ErrorKind::MaxFilesWatch => true,
                            notify::ErrorKind::Io(io) => {
                                // ENOSPC (inotify watches) / EMFILE (instances).
                                matches!(io.raw_os_error(), Some(24) | Some(28))
                            }
                            _ => false,
                        };
                        failures.push((
                            dir.clone(),
                            WatchError {
                                is_limit,
                                message: e.to_string(),
                            },
                        ));
                    }
                }
            } else if !exists && watched {
                let _ = w.unwatch(dir);
                self.watched.remove(dir);
            }
        }
        failures
    }

    /// Sleeps until a notification arrives or `timeout` passes.
    pub(crate) fn wait(&self, timeout: Duration) {
        let _ = self.wake_rx.recv_timeout(timeout);
    }

    /// Takes what changed.
    pub(crate) fn take(&self) -> Pending {
        std::mem::take(
            &mut *self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Whether `path` is one of the watched roots (tests).
    #[cfg(test)]
    pub(crate) fn watches(&self, path: &std::path::Path) -> bool {
        self.watched.contains_key(path)
    }
}

fn on_event(shared: &Shared, res: notify::Result<notify::Event>) {
    {
        let mut p = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.events += 1;
        match res {
            Ok(ev) => {
                if ev.need_rescan() {
                    p.rescan = true;
                }
                match ev.kind {
                    // Our own opens and reads show up as access events.
                    EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                        add_paths(&mut p, ev.paths)
                    }
                    EventKind::Access(_) => return,
                    EventKind::Modify(ModifyKind::Data(_)) => add_paths(&mut p, ev.paths),
                    EventKind::Modify(ModifyKind::Name(mode)) => {
                        p.rescan = true;
                        let tracker = ev.tracker();
                        match (mode, ev.paths.as_slice()) {
                            (RenameMode::Both, [from, to]) => add_rename(&mut p, from, to),
                            (RenameMode::From, [from]) => {
                                p.rename_from = Some((from.clone(), tracker));
                            }
                            (RenameMode::To, [to]) => {
                                if let Some((from, t)) = p.rename_from.take()
                                    && t == tracker
                                {
                                    add_rename(&mut p, &from, to);
                                }
                            }
                            _ => {}
                        }
                    }
                    _ => {
                        p.rescan = true;
                        add_paths(&mut p, ev.paths);
                    }
                }
            }
            Err(e) => {
                p.rescan = true;
                if p.errors.len() < 16 {
                    p.errors.push(e.to_string());
                }
            }
        }
    }
    match shared.wake.try_send(()) {
        Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
    }
}

fn add_rename(p: &mut Pending, from: &std::path::Path, to: &std::path::Path) {
    if p.renames.len() < 256 {
        p.renames.push((from.to_path_buf(), to.to_path_buf()));
    }
}

fn add_paths(p: &mut Pending, paths: Vec<PathBuf>) {
    for path in paths {
        if p.paths.len() >= MAX_PENDING_PATHS {
            p.rescan = true;
            return;
        }
        p.paths.insert(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn notifies_on_write_and_create() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, err) = Watcher::new(true);
        assert!(err.is_none(), "{err:?}");
        assert!(
            w.sync_roots(&[(dir.path().to_path_buf(), false)])
                .is_empty()
        );
        assert!(w.watches(dir.path()));
        let f = dir.path().join("a.log");
        std::fs::write(&f, "x\n").unwrap();
        let t0 = Instant::now();
        let mut got = Pending::default();
        while t0.elapsed() < Duration::from_secs(5) {
            w.wait(Duration::from_millis(100));
            let p = w.take();
            got.rescan |= p.rescan;
            got.paths.extend(p.paths);
            if got.rescan && got.paths.contains(&f) {
                break;
            }
        }
        assert!(got.rescan);
        assert!(got.paths.contains(&f));
    }
}
