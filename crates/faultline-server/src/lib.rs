//! # faultline-server
//!
//! The central faultline server. The path of a log entry:
//!
//! 1. `POST /api/v1/logs` ([`routes::ingest`]) authenticates the ingest
//!    token, reads the (possibly gzip) body within the size limit, and
//!    decodes and validates it with `faultline-ingest` — all or nothing.
//! 2. The batch is published on the [`Bus`](faultline_bus::Bus). The
//!    handler awaits the publish, which resolves only once the batch is
//!    durable, and then answers `202 {"accepted": N}`.
//! 3. With the in-process bus, the [`writer`] thread takes every queued batch,
//!    commits them in one transaction (group commit), acknowledges them, and
//!    hands the committed entries to the live [`live::Hub`].
//! 4. The hub offers each entry to matching live-tail subscribers (WebSocket
//!    or SSE) without ever waiting on a slow one.
//!
//! Reads (`GET /api/v1/logs`, services, admin API) run store calls on the
//! blocking pool; handlers never touch the store on the async threads.
//! Retention runs in the background ([`retention`]).

pub mod auth;
pub mod config;
pub mod delivery;
pub mod error;
mod http;
pub mod issues;
pub mod live;
mod memory;
pub mod metrics;
pub mod retention;
pub mod routes;
pub mod session;
mod state;
pub mod writer;

pub use config::{Config, ConfigError, RawConfig};
pub use state::AppState;

use faultline_bus::InProcessBus;
use faultline_model::TokenKind;
use faultline_store::{Store, StoreError};
use faultline_store_sqlite::{SqliteOptions, SqliteStore};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// Makes rustls use the ring crypto provider; call before building HTTP
/// clients (harmless when done twice).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// File name of the embedded database inside the data directory.
pub const DB_FILE: &str = "faultline.db";

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the store in {path}: {source}")]
    Store { path: PathBuf, source: StoreError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error("invalid alerting configuration: {0}")]
    Alerts(String),
}

/// Opens (creating if needed) the embedded store of a data directory.
pub fn open_store(data_dir: &Path, config: Option<&Config>) -> Result<SqliteStore, ServerError> {
    std::fs::create_dir_all(data_dir).map_err(|source| ServerError::DataDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let mut options = SqliteOptions::default();
    if let Some(c) = config {
        options.synchronous_full = c.synchronous_full;
        options.cache_size_kib = c.cache_size_kib;
    }
    let path = data_dir.join(DB_FILE);
    SqliteStore::open(&path, options).map_err(|source| ServerError::Store { path, source })
}

/// Runs the server until `shutdown` resolves, then stops accepting requests,
/// finishes the ones in flight, drains the queue into the store and returns.
///
/// `on_ready` is called with the bound address (useful with port 0).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr, Option<String>),
) -> Result<(), ServerError> {
    memory::configure();
    let prometheus = metrics::install();
    let store: Arc<dyn Store> = Arc::new(open_store(&config.data_dir, Some(&config))?);
    let store_err = |source| ServerError::Store {
        path: config.data_dir.clone(),
        source,
    };

    // Bind before anything is created, so a failed start changes nothing.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServerError::Serve)?;

    // First run: make an admin token and show it once.
    let first_admin = if store.has_admin_token().map_err(store_err)? {
        None
    } else {
        let (token, _) =
            auth::create_token(store.as_ref(), &TokenKind::Admin).map_err(store_err)?;
        Some(token)
    };

    for gauge in [
        "faultline_queue_depth",
        "faultline_live_subscribers",
        "faultline_store_size_bytes",
        "faultline_issue_processor_lag_seconds",
    ] {
        ::metrics::gauge!(gauge).set(0.0);
    }
    if let Ok(size) = store.size_bytes() {
        ::metrics::gauge!("faultline_store_size_bytes").set(size as f64);
    }

    let (bus, consumer) = InProcessBus::new(config.queue_capacity, config.queue_wait);
    let hub = live::Hub::new(config.live_buffer);
    let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sync_failed = Arc::new(std::sync::OnceLock::new());
    routes::alerts::apply_config(store.as_ref(), &config).map_err(ServerError::Alerts)?;
    let deliveries = Arc::new(tokio::sync::Notify::new());
    let (notices, _) = tokio::sync::broadcast::channel(256);
    let (issue_feed, issue_processor) = issues::spawn(
        store.clone(),
        config.issue_level,
        deliveries.clone(),
        notices.clone(),
    );
    let writer = writer::spawn(
        consumer,
        store.clone(),
        hub.clone(),
        issue_feed.clone(),
        config.max_commit_entries,
        commits.clone(),
        sync_failed.clone(),
    );
    let store_calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let auth = Arc::new(auth::Authenticator::new(store.clone()));
    let background = tokio::spawn(retention::run(
        config.clone(),
        store.clone(),
        auth.clone(),
        [commits, store_calls.clone()],
        stop_rx.clone(),
    ));
    let delivery = tokio::spawn(delivery::run(
        store.clone(),
        delivery::Settings {
            public_url: config.public_url.clone(),
            retry_base: config.retry_base,
            max_attempts: config.max_attempts,
        },
        deliveries.clone(),
        stop_rx.clone(),
    ));
    let grace = config.shutdown_grace;

    let state = Arc::new(AppState {
        config: Arc::new(config),
        store,
        bus: Arc::new(bus.clone()),
        hub,
        auth,
        issues: issue_feed.clone(),
        deliveries,
        notices,
        prometheus,
        shutdown: stop_rx.clone(),
        store_calls,
        sync_failed,
    });
    let app = routes::router(state);
    on_ready(addr, first_admin);

    let serve = http::serve(listener, app, async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests and draining the queue");
        // Ends live streams so their connections close.
        let _ = stop_tx.send(true);
    });
    let mut stopping = stop_rx;
    let result = tokio::select! {
        () = serve => Ok(()),
        _ = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace = ?grace, "requests still running after the grace period; closing them");
            Ok(())
        }
    };
    // Whatever was queued is committed; a batch published after this point
    // is refused (never acknowledged).
    bus.close();
    let _ = background.await;
    let _ = delivery.await;
    tokio::task::spawn_blocking(move || {
        let _ = writer.join();
        // Everything committed is in the store: the processor records the
        // rest, saves its state and stops.
        issue_feed.stop();
        let _ = issue_processor.join();
    })
    .await
    .ok();
    tracing::info!("stopped");
    result
}
