//! Background upkeep: per-level retention, token last-used times, and the
//! store size gauge.

use crate::auth::Authenticator;
use crate::config::Config;
use faultline_model::{Level, now_micros};
use faultline_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Rows deleted per transaction, so the writer is never held up for long.
const CHUNK: usize = 5_000;

/// Deletes expired entries of every level and expired issue events;
/// returns how many.
pub fn sweep(store: &dyn Store, config: &Config, now: i64) -> faultline_store::Result<u64> {
    let mut total = 0u64;
    for level in Level::ALL {
        let keep = i64::try_from(config.retention_of(level).as_micros()).unwrap_or(i64::MAX);
        let before = now.saturating_sub(keep);
        loop {
            let n = store.delete_expired(level, before, CHUNK)?;
            total += n as u64;
            if n < CHUNK {
                break;
            }
        }
    }
    let keep = i64::try_from(config.event_retention.as_micros()).unwrap_or(i64::MAX);
    let before = now.saturating_sub(keep);
    loop {
        let n = store.delete_expired_events(before, CHUNK)?;
        total += n as u64;
        if n < CHUNK {
            break;
        }
    }
    Ok(total)
}

/// `activity` are the writer's count of committed groups and the handlers'
/// count of store calls: when neither moved for a whole tick, caches and
/// free heap pages are given back (once per idle period).
pub async fn run(
    config: Config,
    store: Arc<dyn Store>,
    auth: Arc<Authenticator>,
    activity: [Arc<AtomicU64>; 2],
    mut stop: watch::Receiver<bool>,
) {
    let mut last_activity = u64::MAX;
    let mut released = false;
    let mut sweep_tick = tokio::time::interval(config.sweep_interval);
    let mut touch_tick = tokio::time::interval(Duration::from_secs(2));
    let config = Arc::new(config);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = touch_tick.tick() => {
                let uses = auth.take_uses();
                let store = store.clone();
                let now_activity = activity
                    .iter()
                    .map(|a| a.load(Ordering::Relaxed))
                    .fold(0u64, u64::wrapping_add);
                let idle = now_activity == last_activity;
                let release = idle && !released;
                released = idle;
                last_activity = now_activity;
                let result = tokio::task::spawn_blocking(move || {
                    if !uses.is_empty() {
                        store.touch_tokens(&uses)?;
                    }
                    if release {
                        store.release_memory()?;
                        crate::memory::trim();
                    }
                    store.size_bytes()
                }).await;
                match result {
                    Ok(Ok(size)) => metrics::gauge!("faultline_store_size_bytes").set(size as f64),
                    Ok(Err(e)) => tracing::warn!(error = %e, "token bookkeeping failed"),
                    Err(e) => tracing::warn!(error = %e, "token bookkeeping panicked"),
                }
            }
            _ = sweep_tick.tick() => {
                let store = store.clone();
                let config = config.clone();
                let result = tokio::task::spawn_blocking(move || sweep(store.as_ref(), &config, now_micros())).await;
                match result {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => {
                        tracing::info!(deleted = n, "retention removed expired entries");
                        metrics::counter!("faultline_entries_expired_total").increment(n);
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "retention sweep failed"),
                    Err(e) => tracing::warn!(error = %e, "retention sweep panicked"),
                }
            }
        }
    }
    // Last flush of token uses.
    let uses = auth.take_uses();
    if !uses.is_empty() {
        let _ = tokio::task::spawn_blocking(move || store.touch_tokens(&uses)).await;
    }
}
