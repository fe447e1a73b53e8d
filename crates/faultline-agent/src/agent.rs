//! Wiring: the lock, the spool, one worker thread per source, the sender
//! thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use crate::config::AgentConfig;
use crate::environment::StaticEnv;
use crate::lock::{InstanceLock, LockError};
use crate::pipeline::{Shared, start_source};
use crate::sender::Sender;
use crate::spool::{Spool, SpoolError};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No server URL anywhere.
    #[error("no server configured (use --server, FAULTLINE_SERVER or `server` in the config)")]
    NoServer,
    /// A source has no token.
    #[error(
        "no ingest token for source {0:?} (use --token, FAULTLINE_TOKEN, `token` or the source's `token`)"
    )]
    NoToken(String),
    /// Another instance runs.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The state directory cannot be created.
    #[error("cannot create state dir {path}: {source}")]
    StateDir {
        /// Where.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The spool cannot be opened.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The server URL or its TLS settings.
    #[error(transparent)]
    Client(#[from] crate::http::ClientError),
    /// A source cannot start.
    #[error("source {name:?}: {source}")]
    Source {
        /// Source name.
        name: String,
        /// Cause.
        source: faultline_tail::TailError,
    },
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// Creates the state directory (user-only on Unix).
pub fn ensure_state_dir(dir: &Path) -> Result<(), AgentError> {
    let err = |source| AgentError::StateDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Runs the agent until the process ends.
pub fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    if cfg.server.is_none() {
        return Err(AgentError::NoServer);
    }
    for s in &cfg.sources {
        if cfg.token_for(&s.name).is_none() {
            return Err(AgentError::NoToken(s.name.clone()));
        }
    }
    ensure_state_dir(&cfg.state_dir)?;
    let _lock = InstanceLock::acquire(&cfg.state_dir)?;
    let spool = Spool::open(
        &cfg.state_dir.join("spool"),
        &cfg.state_dir.join("dead-letter"),
        cfg.spool_max_bytes,
    )?;
    let waiting = spool.len();
    let shared = Shared::new(spool);
    let cfg = Arc::new(cfg);
    let env = Arc::new(StaticEnv::collect(&cfg.user, &cfg.env_extra));
    let mut workers = Vec::new();
    for s in &cfg.sources {
        let (w, b) = start_source(
            s.clone(),
            Arc::clone(&cfg),
            Arc::clone(&env),
            Arc::clone(&shared),
        )
        .map_err(|source| AgentError::Source {
            name: s.name.clone(),
            source,
        })?;
        tracing::info!(source = %s.name, paths = ?s.paths, "watching");
        workers.push((s.name.clone(), w, b));
    }
    let sender = Sender::new(Arc::clone(&cfg), Arc::clone(&shared))?;
    tracing::info!(
        server = cfg.server.as_deref().unwrap_or_default(),
        state_dir = %cfg.state_dir.display(),
        spooled = waiting,
        "faultline-agent started"
    );
    let mut handles = Vec::new();
    handles.push(
        thread::Builder::new()
            .name("sender".into())
            .spawn(move || sender.run())
            .map_err(AgentError::Thread)?,
    );
    for (name, w, b) in workers {
        handles.push(
            thread::Builder::new()
                .name(format!("tail-{name}"))
                .spawn(move || w.run())
                .map_err(AgentError::Thread)?,
        );
        handles.push(
            thread::Builder::new()
                .name(format!("incidents-{name}"))
                .spawn(move || {
                    b.run();
                })
                .map_err(AgentError::Thread)?,
        );
    }
    for h in handles {
        if h.join().is_err() {
            // A panicking thread: stop the others so the process exits and
            // the service manager restarts it (nothing acked is lost).
            shared.stop();
        }
    }
    Ok(())
}

/// What `check` prints: the settings and the files each source matches now.
pub fn describe(cfg: &AgentConfig) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "server: {}",
        cfg.server.as_deref().unwrap_or("(none: `run` needs one)")
    );
    let _ = writeln!(out, "state dir: {}", cfg.state_dir.display());
    let _ = writeln!(out, "user: {}", cfg.user);
    for s in &cfg.sources {
        let token = match cfg.token_for(&s.name) {
            Some(_) if s.token.is_some() => "own token",
            Some(_) => "global token",
            None => "NO TOKEN",
        };
        let _ = writeln!(
            out,
            "source {}: format {:?}, min level {}, start at {:?}, ship all lines: {}, service: {}, {token}",
            s.name,
            s.format,
            s.matcher.min_level,
            s.start_at,
            s.ship_all_lines,
            s.service.as_deref().unwrap_or("(token's)"),
        );
        for p in &s.paths {
            let _ = writeln!(out, "  watch {p}");
            let mut n = 0;
            if let Ok(paths) = glob::glob(p) {
                for f in paths.flatten().filter(|f| f.is_file()).take(50) {
                    let _ = writeln!(out, "    {}", f.display());
                    n += 1;
                }
            }
            if n == 0 {
                let _ = writeln!(out, "    (no file yet; new files are picked up)");
            }
        }
    }
    out
}
