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
use faultline_alerts::ServiceCount;
use faultline_bus::InProcessConsumer;
use faultline_model::{NewEntry, StoredEntry};
use faultline_store::{Prepared, Store};
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
            let dropper = Dropper::start();
            while let Some(mut group) = consumer.recv_group_blocking(max_commit_entries) {
                let started = Instant::now();
                let result = {
                    let batches: Vec<(&[NewEntry], Option<&Prepared>)> = group
                        .iter()
                        .map(|d| (d.entries.as_slice(), d.prepared.as_ref()))
                        .collect();
                    store.append_prepared(&batches)
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
                        // Every batch is acknowledged before anything else
                        // is done with the entries.
                        let mut done: Vec<Vec<NewEntry>> = Vec::with_capacity(group.len());
                        for mut d in group.drain(..) {
                            done.push(std::mem::take(&mut d.entries));
                            d.ack(Ok(()));
                        }
                        metrics::counter!("faultline_entries_stored_total").increment(n as u64);
                        let counts = service_counts(&done);
                        let mut errors = Vec::new();
                        if live {
                            let committed: Vec<Arc<StoredEntry>> = done
                                .into_iter()
                                .flatten()
                                .zip(ids)
                                .map(|(entry, id)| Arc::new(StoredEntry { id, entry }))
                                .collect();
                            errors.extend(
                                committed
                                    .iter()
                                    .filter(|e| e.entry.level >= min_level)
                                    .cloned(),
                            );
                            hub.publish(&committed);
                        } else {
                            // Only the entries that become issue events are
                            // kept (moved out, leaving an empty entry that
                            // owns no memory); the rest is freed on another
                            // thread. Almost every batch holds an error, so
                            // freeing the others here would free nearly all.
                            let mut ids = ids.into_iter();
                            for batch in &mut done {
                                let batch_ids = ids.by_ref().take(batch.len());
                                for (entry, id) in batch.iter_mut().zip(batch_ids) {
                                    if entry.level >= min_level {
                                        let entry = std::mem::replace(entry, vacant(entry.level));
                                        errors.push(Arc::new(StoredEntry { id, entry }));
                                    }
                                }
                            }
                            dropper.drop_later(done);
                        }
                        issues.committed(Committed {
                            entries: errors,
                            through,
                            committed_at: Instant::now(),
                            counts,
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

/// Frees committed entries on a thread of its own: a group's entries are a
/// dozen small allocations each, made on the HTTP workers, and freeing them
/// took about a sixth of the writer's time, which delayed the next commit.
struct Dropper {
    send: Option<std::sync::mpsc::SyncSender<Vec<Vec<NewEntry>>>>,
}

impl Dropper {
    fn start() -> Dropper {
        let (send, recv) = std::sync::mpsc::sync_channel::<Vec<Vec<NewEntry>>>(16);
        let started = std::thread::Builder::new()
            .name("faultline-free".into())
            .spawn(move || {
                while let Ok(entries) = recv.recv() {
                    drop(entries);
                }
            });
        Dropper {
            // Without the thread, entries are freed by the writer.
            send: started.ok().map(|_| send),
        }
    }

    /// Frees `entries` on the thread, or here when it is behind.
    fn drop_later(&self, entries: Vec<Vec<NewEntry>>) {
        if let Some(send) = &self.send {
            let _ = send.try_send(entries);
        }
    }
}

/// An entry that owns no heap memory, left in place of one moved out.
fn vacant(level: faultline_model::Level) -> NewEntry {
    NewEntry {
        level,
        ..NewEntry::default()
    }
}

/// Entries and errors per (project, service) of a commit, for error-rate
/// rules (batches usually hold one service: one comparison per entry).
fn service_counts(batches: &[Vec<NewEntry>]) -> Vec<ServiceCount> {
    let mut out: Vec<ServiceCount> = Vec::new();
    for e in batches.iter().flatten() {
        let i = match out
            .iter()
            .rposition(|c| c.service == e.service && c.project == e.project)
        {
            Some(i) => i,
            None => {
                out.push(ServiceCount {
                    project: e.project.clone(),
                    service: e.service.clone(),
                    total: 0,
                    errors: 0,
                });
                out.len() - 1
            }
        };
        out[i].total += 1;
        out[i].errors += u64::from(e.level >= faultline_model::Level::Error);
    }
    out
}
