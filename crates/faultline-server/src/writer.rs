//! The store writer: one thread that drains the in-process bus, commits
//! whatever is queued in one transaction (group commit), and hands the
//! committed entries to the live hub and those at or above the issue level
//! to the issue processor; a second thread makes the commits durable
//! (`Store::sync_appends`, one fsync for every commit since the last) and
//! acknowledges their batches, while the writer commits the next group.
//!
//! Invariant: a batch is acknowledged `Ok` only after the transaction that
//! holds it has committed and was made durable; on a failed commit every
//! batch of the group gets the error and nothing of it is visible. A failed
//! sync rejects its groups (committed and visible already: a retry may
//! store them twice) and every later one until faultline is restarted
//! (`/readyz` reports it).

use crate::issues::{Committed, IssueFeed};
use crate::live::Hub;
use faultline_alerts::ServiceCount;
use faultline_bus::{Delivery, InProcessConsumer};
use faultline_model::{NewEntry, StoredEntry};
use faultline_store::{Prepared, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// `commits` counts committed groups, so upkeep can tell when ingest is idle.
pub fn spawn(
    mut consumer: InProcessConsumer,
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    issues: IssueFeed,
    max_commit_entries: usize,
    commits: Arc<AtomicU64>,
    sync_failed: Arc<OnceLock<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("faultline-writer".into())
        .spawn(move || {
            let dropper = Dropper::start();
            let syncer = {
                let store = Arc::clone(&store);
                Syncer::start(
                    move || store.sync_appends().map_err(|e| e.to_string()),
                    sync_failed,
                )
            };
            while let Some(mut group) = consumer.recv_group_blocking(max_commit_entries) {
                let started = Instant::now();
                let result = {
                    let batches: Vec<(&[NewEntry], Option<&Prepared>)> = group
                        .iter()
                        .map(|d| (d.entries.as_slice(), d.prepared.as_ref()))
                        .collect();
                    store.append_prepared_unsynced(&batches)
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
                        // The batches go to be synced and acknowledged
                        // before anything else is done with the entries.
                        let mut done: Vec<Vec<NewEntry>> = Vec::with_capacity(group.len());
                        for d in &mut group {
                            done.push(std::mem::take(&mut d.entries));
                            d.prepared = None;
                        }
                        syncer.ack_when_durable(group);
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
            syncer.stop();
            tracing::info!("writer drained and stopped");
        })
        .expect("the OS can start the writer thread")
}

/// Makes committed groups durable and acknowledges their batches, on a
/// thread of its own: the fsync of a commit took about two thirds of the
/// writer's time per group, and the writer now commits the next group
/// meanwhile. Groups committed while a sync runs share the next one.
struct Syncer {
    send: Option<std::sync::mpsc::Sender<Vec<Delivery>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// `sync` makes every commit made before the call durable.
    /// `failed` is set to the error of the first failed sync.
    fn start(
        sync: impl Fn() -> Result<(), String> + Send + 'static,
        failed: Arc<OnceLock<String>>,
    ) -> Syncer {
        let (send, recv) = std::sync::mpsc::channel::<Vec<Delivery>>();
        let thread = std::thread::Builder::new()
            .name("faultline-sync".into())
            .spawn(move || {
                // After a failed sync nothing later is acknowledged: the
                // kernel may have dropped the unsynced pages, so a later
                // sync that succeeds says nothing about them, and WAL
                // recovery stops at the first bad frame. A restart runs
                // that recovery. (The groups rejected this way are
                // committed and visible already; a client that retries
                // may store them twice.)
                while let Ok(first) = recv.recv() {
                    let mut groups = vec![first];
                    groups.extend(recv.try_iter());
                    let result = match failed.get() {
                        Some(e) => Err(format!(
                            "an earlier WAL sync failed ({e}); restart faultline"
                        )),
                        None => {
                            let started = Instant::now();
                            let synced = sync();
                            metrics::histogram!("faultline_wal_sync_seconds")
                                .record(started.elapsed().as_secs_f64());
                            synced
                        }
                    };
                    if let Err(e) = &result {
                        let _ = failed.set(e.clone());
                        let n: usize = groups.iter().flatten().map(Delivery::len).sum();
                        tracing::error!(error = %e, entries = n, "sync failed; batches rejected");
                        metrics::counter!("faultline_entries_rejected_total", "reason" => "store_failed")
                            .increment(n as u64);
                    }
                    for d in groups.into_iter().flatten() {
                        d.ack(result.clone());
                    }
                }
            })
            .expect("the OS can start the sync thread");
        Syncer {
            send: Some(send),
            thread: Some(thread),
        }
    }

    fn ack_when_durable(&self, group: Vec<Delivery>) {
        if let Some(send) = &self.send {
            // The thread only ends when `send` is dropped.
            let _ = send.send(group);
        }
    }

    /// Acknowledges everything handed over, then ends the thread.
    fn stop(mut self) {
        self.send = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
                    project: e.project.to_string(),
                    service: e.service.to_string(),
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

#[cfg(test)]
mod tests {
    use super::Syncer;
    use faultline_bus::{Bus, BusError, InProcessBus};
    use faultline_model::NewEntry;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Batches are acknowledged after their sync; once a sync failed, no
    /// later batch is acknowledged, even when syncing would work again.
    #[test]
    fn nothing_is_acknowledged_after_a_failed_sync() {
        // Publishes run on the runtime's worker while this thread plays the
        // writer.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (bus, mut consumer) = InProcessBus::new(100, Duration::from_secs(5));
        let bus = Arc::new(bus);
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let failed = Arc::new(std::sync::OnceLock::new());
        let syncer = Syncer::start(
            move || {
                // The second sync fails, the others work.
                match counted.fetch_add(1, Ordering::SeqCst) {
                    1 => Err("EIO".to_string()),
                    _ => Ok(()),
                }
            },
            Arc::clone(&failed),
        );
        let mut results = Vec::new();
        for _ in 0..3 {
            let bus = Arc::clone(&bus);
            let publish = rt.spawn(async move { bus.publish(vec![NewEntry::default()]).await });
            let group = consumer
                .recv_group_blocking(100)
                .expect("the batch is queued");
            syncer.ack_when_durable(group);
            results.push(rt.block_on(publish).expect("the publish task ends"));
        }
        syncer.stop();
        assert_eq!(results[0], Ok(()));
        assert!(matches!(&results[1], Err(BusError::Failed(e)) if e == "EIO"));
        assert!(
            matches!(&results[2], Err(BusError::Failed(e)) if e.contains("earlier WAL sync failed")),
            "{:?}",
            results[2]
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2, "no sync after the failure");
        assert_eq!(failed.get().map(String::as_str), Some("EIO"), "for /readyz");
    }
}
