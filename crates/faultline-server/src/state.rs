use crate::auth::Authenticator;
use crate::config::Config;
use crate::issues::IssueFeed;
use crate::live::Hub;
use faultline_bus::Bus;
use faultline_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio::sync::watch;

/// What handlers share. Only the router holds the bus, so dropping the router
/// lets the writer drain and stop.
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn Bus>,
    pub hub: Arc<Hub>,
    pub auth: Arc<Authenticator>,
    /// The issue processor (rules changes).
    pub issues: IssueFeed,
    /// Wakes the notification delivery task.
    pub deliveries: Arc<tokio::sync::Notify>,
    /// New issues and regressions as they are committed (the UI's
    /// notifications).
    pub notices: crate::issues::Notices,
    pub prometheus: PrometheusHandle,
    /// Turns true when the server shuts down (ends live streams).
    pub shutdown: watch::Receiver<bool>,
    /// Store calls made by handlers, so upkeep can tell when the server is
    /// idle (see retention.rs).
    pub store_calls: Arc<std::sync::atomic::AtomicU64>,
    /// Why a WAL sync failed, once one did: ingest then refuses everything
    /// until a restart, and `/readyz` says so.
    pub sync_failed: Arc<std::sync::OnceLock<String>>,
}

impl AppState {
    /// Runs a store call on the blocking pool.
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> faultline_store::Result<T> + Send + 'static,
    ) -> Result<T, crate::error::ApiError> {
        self.store_calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?
            .map_err(Into::into)
    }
}
