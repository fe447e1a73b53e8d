//! The live-tail hub: fans committed entries out to subscribers.
//!
//! Invariant: publishing never blocks. Each subscriber has a bounded queue;
//! when it is full the entry is skipped for that subscriber only and counted,
//! and the subscriber is told `{"dropped": N}` when it catches up.

use faultline_model::{LogFilter, StoredEntry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

struct Subscriber {
    id: u64,
    filter: LogFilter,
    tx: mpsc::Sender<Arc<StoredEntry>>,
    dropped: Arc<AtomicU64>,
}

/// Subscribers of the live tail.
pub struct Hub {
    subs: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
    buffer: usize,
}

/// One live subscription; unsubscribes when dropped.
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    rx: mpsc::Receiver<Arc<StoredEntry>>,
    dropped: Arc<AtomicU64>,
}

impl Hub {
    pub fn new(buffer: usize) -> Arc<Hub> {
        Arc::new(Hub {
            subs: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            buffer,
        })
    }

    pub fn subscribe(self: &Arc<Self>, filter: LogFilter) -> Subscription {
        let (tx, rx) = mpsc::channel(self.buffer);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subs = self.subs.lock().expect("hub lock poisoned");
        subs.push(Subscriber {
            id,
            filter,
            tx,
            dropped: dropped.clone(),
        });
        metrics::gauge!("faultline_live_subscribers").set(subs.len() as f64);
        Subscription {
            hub: self.clone(),
            id,
            rx,
            dropped,
        }
    }

    /// Whether anybody listens (so the writer can skip building entries).
    pub fn has_subscribers(&self) -> bool {
        !self.subs.lock().expect("hub lock poisoned").is_empty()
    }

    /// Offers entries to every matching subscriber without waiting.
    pub fn publish(&self, entries: &[Arc<StoredEntry>]) {
        let subs = self.subs.lock().expect("hub lock poisoned");
        for s in subs.iter() {
            for e in entries {
                if !s.filter.matches(&e.entry) {
                    continue;
                }
                if s.tx.try_send(e.clone()).is_err() {
                    s.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// What a subscriber receives next.
pub enum LiveItem {
    Entry(Arc<StoredEntry>),
    Dropped(u64),
}

impl Subscription {
    /// The next entry, or a dropped notice first when entries were skipped.
    /// `None` when the hub is gone.
    pub async fn next(&mut self) -> Option<LiveItem> {
        if let Some(n) = self.take_dropped() {
            return Some(LiveItem::Dropped(n));
        }
        let e = self.rx.recv().await?;
        Some(LiveItem::Entry(e))
    }

    /// Skipped entries since the last notice, if any.
    pub fn take_dropped(&self) -> Option<u64> {
        match self.dropped.swap(0, Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut subs = self.hub.subs.lock().expect("hub lock poisoned");
        subs.retain(|s| s.id != self.id);
        metrics::gauge!("faultline_live_subscribers").set(subs.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_model::{Level, NewEntry};

    fn stored(id: i64, service: &str) -> Arc<StoredEntry> {
        Arc::new(StoredEntry {
            id,
            entry: NewEntry {
                project: "p".into(),
                service: service.into(),
                level: Level::Info,
                message: "m".into(),
                tags: vec![],
                timestamp: id,
                received_at: id,
                host: None,
                attributes: Default::default(),
                trace_id: None,
                span_id: None,
            },
        })
    }

    #[tokio::test]
    async fn slow_subscriber_gets_dropped_notice_and_never_blocks() {
        let hub = Hub::new(2);
        let mut sub = hub.subscribe(LogFilter::default());
        let mut only_web = hub.subscribe(LogFilter {
            services: vec!["web".into()],
            ..Default::default()
        });
        let batch: Vec<_> = (1..=5).map(|i| stored(i, "api")).collect();
        hub.publish(&batch);
        hub.publish(&[stored(6, "web")]);
        match sub.next().await {
            Some(LiveItem::Dropped(n)) => assert_eq!(n, 4),
            _ => panic!("expected a dropped notice"),
        }
        for want in [1, 2] {
            match sub.next().await {
                Some(LiveItem::Entry(e)) => assert_eq!(e.id, want),
                _ => panic!("expected entry {want}"),
            }
        }
        match only_web.next().await {
            Some(LiveItem::Entry(e)) => assert_eq!(e.id, 6),
            _ => panic!("expected the web entry"),
        }
        assert!(only_web.take_dropped().is_none());
        drop(sub);
        drop(only_web);
        assert!(!hub.has_subscribers());
    }
}
