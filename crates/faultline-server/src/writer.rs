//! The store writer: one thread that drains the in-process bus, commits
//! whatever is queued in one transaction (group commit), acknowledges each
//! batch, and hands the committed entries to the live hub and those at or
//! above the issue level to the issue processor.
//!
//! Invariant: a batch is acknowledged `Ok` only after the transaction that
//! holds it has committed; on failure every batch of the group gets the error
//! and nothing of it is visible.

use crate::issues::{Committed, IssueFeed};
use crate::live::Hub;
use faultline_bus::InProcessConsumer;
use faultline_model::{NewEntry, StoredEntry};
use faultline_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// `commits` counts committed groups, so upkeep can tell when ingest is idle.
pub fn spawn(
    mut consumer: InProcessConsumer,
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    issues: IssueFeed,
    max_commit_entries: usize,
    commits: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("faultline-writer".into())
        .spawn(move || {
            while let Some(mut group) = consumer.recv_group_blocking(max_commit_entries) {
                let started = Instant::now();
                let result = {
                    let batches: Vec<&[NewEntry]> =
                        group.iter().map(|d| d.entries.as_slice()).collect();
                    store.append(&batches)
                };
                metrics::histogram!("faultline_batch_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                match result {
                    Ok(ids) => {
                        commits.fetch_add(1, Ordering::Relaxed);
                        let n = ids.len();
                        let through = ids.iter().copied().max().unwrap_or(0);
                        let live = hub.has_subscribers();
                        let min_level = issues.min_level();
                        let mut committed = Vec::with_capacity(if live { n } else { 0 });
                        let mut errors = Vec::new();
                        let mut ids = ids.into_iter();
                        for mut d in group.drain(..) {
                            let entries = std::mem::take(&mut d.entries);
                            d.ack(Ok(()));
                            for (entry, id) in entries.into_iter().zip(ids.by_ref()) {
                                let is_event = entry.level >= min_level;
                                if !live && !is_event {
                                    continue;
                                }
                                let e = Arc::new(StoredEntry { id, entry });
                                if is_event {
                                    errors.push(e.clone());
                                }
                                if live {
                                    committed.push(e);
                                }
                            }
                        }
                        metrics::counter!("faultline_entries_stored_total").increment(n as u64);
                        if live {
                            hub.publish(&committed);
                        }
                        issues.committed(Committed {
                            entries: errors,
                            through,
                            committed_at: Instant::now(),
                        });
                    }
                    Err(e) => {
                        tracing::error!(error = %e, batches = group.len(), "commit failed; batches rejected");
                        let n: usize = group.iter().map(|d| d.entries.len()).sum();
                        metrics::counter!("faultline_entries_rejected_total", "reason" => "store_failed")
                            .increment(n as u64);
                        for d in group {
                            d.ack(Err(e.to_string()));
                        }
                    }
                }
            }
            tracing::info!("writer drained and stopped");
        })
        .expect("the OS can start the writer thread")
}
