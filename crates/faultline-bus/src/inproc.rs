use crate::{BoxFuture, Bus, BusError};
use faultline_model::NewEntry;
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// One published batch on its way to the writer.
#[derive(Debug)]
pub struct Delivery {
    pub entries: Vec<NewEntry>,
    /// What the store prepared for the entries before they were queued.
    pub prepared: Option<Box<dyn Any + Send>>,
    len: usize,
    ack: oneshot::Sender<Result<(), String>>,
    permits: u32,
    shared: Arc<Shared>,
}

impl Delivery {
    /// How many entries the batch had when it was published.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch had no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tells the publisher its batch is durable (or why it is not). The
    /// entries may have been taken out of the delivery before.
    pub fn ack(self, result: Result<(), String>) {
        self.shared.depth.fetch_sub(self.len, Ordering::Relaxed);
        self.shared.room.add_permits(self.permits as usize);
        // The publisher may have gone away (client disconnected): the batch
        // is stored all the same, there is nobody left to tell.
        let _ = self.ack.send(result);
    }
}

#[derive(Debug)]
struct Shared {
    room: Semaphore,
    depth: AtomicUsize,
    capacity: usize,
}

enum Msg {
    Delivery(Delivery),
    /// Sent by [`InProcessBus::close`]: the consumer stops here.
    Close,
}

/// The embedded bus: a bounded in-memory queue to the store writer.
#[derive(Debug, Clone)]
pub struct InProcessBus {
    tx: mpsc::UnboundedSender<Msg>,
    shared: Arc<Shared>,
    wait: Duration,
}

/// The receiving side, owned by the writer.
#[derive(Debug)]
pub struct InProcessConsumer {
    rx: mpsc::UnboundedReceiver<Msg>,
    closed: bool,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Delivery(d) => d.fmt(f),
            Msg::Close => f.write_str("Close"),
        }
    }
}

impl InProcessBus {
    /// A bus that holds at most `capacity_entries` entries not yet durable; a
    /// publisher waits up to `wait` for room.
    pub fn new(capacity_entries: usize, wait: Duration) -> (InProcessBus, InProcessConsumer) {
        let (tx, rx) = mpsc::unbounded_channel();
        let capacity = capacity_entries.clamp(1, Semaphore::MAX_PERMITS);
        let shared = Arc::new(Shared {
            room: Semaphore::new(capacity),
            depth: AtomicUsize::new(0),
            capacity,
        });
        (
            InProcessBus { tx, shared, wait },
            InProcessConsumer { rx, closed: false },
        )
    }

    /// Stops taking batches: later publishes fail with [`BusError::Closed`],
    /// the consumer finishes what was queued before and then stops. A batch
    /// that slipped in after the close is answered `Closed` (never
    /// acknowledged, so never counted as stored).
    pub fn close(&self) {
        self.shared.room.close();
        let _ = self.tx.send(Msg::Close);
    }
}

impl Bus for InProcessBus {
    fn publish(&self, entries: Vec<NewEntry>) -> BoxFuture<'_, Result<(), BusError>> {
        self.publish_prepared(entries, None)
    }

    fn publish_prepared(
        &self,
        entries: Vec<NewEntry>,
        prepared: Option<Box<dyn Any + Send>>,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        Box::pin(async move {
            // A batch larger than the whole queue still goes through alone.
            let permits = entries.len().clamp(1, self.shared.capacity) as u32;
            let permit = tokio::time::timeout(self.wait, self.shared.room.acquire_many(permits))
                .await
                .map_err(|_| BusError::Overloaded)?
                .map_err(|_| BusError::Closed)?;
            permit.forget();
            self.shared
                .depth
                .fetch_add(entries.len(), Ordering::Relaxed);
            let (ack, done) = oneshot::channel();
            let delivery = Delivery {
                len: entries.len(),
                entries,
                prepared,
                ack,
                permits,
                shared: self.shared.clone(),
            };
            if let Err(mpsc::error::SendError(Msg::Delivery(d))) =
                self.tx.send(Msg::Delivery(delivery))
            {
                d.shared.depth.fetch_sub(d.len, Ordering::Relaxed);
                return Err(BusError::Closed);
            }
            match done.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(BusError::Failed(e)),
                // The writer dropped the delivery without answering: it was
                // not stored.
                Err(_) => Err(BusError::Closed),
            }
        })
    }

    fn depth(&self) -> usize {
        self.shared.depth.load(Ordering::Relaxed)
    }
}

impl InProcessConsumer {
    /// Blocks until at least one delivery is queued, then takes more that are
    /// already waiting, up to about `max_entries` entries in all. Returns
    /// `None` once every publisher is gone and the queue is drained.
    pub fn recv_group_blocking(&mut self, max_entries: usize) -> Option<Vec<Delivery>> {
        if self.closed {
            return None;
        }
        let first = match self.rx.blocking_recv()? {
            Msg::Delivery(d) => d,
            Msg::Close => {
                self.closed = true;
                return None;
            }
        };
        let mut n = first.entries.len();
        let mut group = vec![first];
        while n < max_entries {
            match self.rx.try_recv() {
                Ok(Msg::Delivery(d)) => {
                    n += d.entries.len();
                    group.push(d);
                }
                Ok(Msg::Close) => {
                    self.closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        Some(group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(msg: &str) -> NewEntry {
        NewEntry {
            project: "p".into(),
            service: "s".into(),
            message: msg.into(),
            ..NewEntry::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publish_resolves_after_ack_and_groups_batches() {
        let (bus, mut consumer) = InProcessBus::new(100, Duration::from_secs(5));
        let writer = std::thread::spawn(move || {
            let mut seen = 0;
            while let Some(group) = consumer.recv_group_blocking(1000) {
                for d in group {
                    seen += d.entries.len();
                    d.ack(Ok(()));
                }
            }
            seen
        });
        let a = bus.publish(vec![entry("a"), entry("b")]);
        let b = bus.publish(vec![entry("c")]);
        let (ra, rb) = tokio::join!(a, b);
        assert_eq!(ra, Ok(()));
        assert_eq!(rb, Ok(()));
        assert_eq!(bus.depth(), 0);
        drop(bus);
        assert_eq!(writer.join().unwrap(), 3);
    }

    #[tokio::test]
    async fn full_queue_is_overloaded_not_blocking_forever() {
        let (bus, _consumer) = InProcessBus::new(2, Duration::from_millis(50));
        let bus2 = bus.clone();
        // Takes all the room and is never acknowledged.
        let pending = tokio::spawn(async move { bus2.publish(vec![entry("a"), entry("b")]).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(bus.depth(), 2);
        assert_eq!(
            bus.publish(vec![entry("c")]).await,
            Err(BusError::Overloaded)
        );
        pending.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_drains_queued_batches_then_refuses() {
        let (bus, mut consumer) = InProcessBus::new(100, Duration::from_secs(1));
        let b2 = bus.clone();
        let queued = tokio::spawn(async move { b2.publish(vec![entry("a")]).await });
        while bus.depth() == 0 {
            tokio::task::yield_now().await;
        }
        bus.close();
        let writer = std::thread::spawn(move || {
            let mut seen = 0;
            while let Some(group) = consumer.recv_group_blocking(10) {
                for d in group {
                    seen += d.entries.len();
                    d.ack(Ok(()));
                }
            }
            seen
        });
        assert_eq!(queued.await.unwrap(), Ok(()));
        assert_eq!(bus.publish(vec![entry("b")]).await, Err(BusError::Closed));
        assert_eq!(writer.join().unwrap(), 1);
    }

    #[tokio::test]
    async fn failed_store_is_reported() {
        let (bus, mut consumer) = InProcessBus::new(10, Duration::from_secs(1));
        std::thread::spawn(move || {
            while let Some(group) = consumer.recv_group_blocking(10) {
                for d in group {
                    d.ack(Err("disk full".into()));
                }
            }
        });
        assert_eq!(
            bus.publish(vec![entry("a")]).await,
            Err(BusError::Failed("disk full".into()))
        );
    }
}
