//! # faultline-bus
//!
//! The bus sits between ingest and processing. Ingest endpoints publish a
//! validated batch and answer the client only when [`Bus::publish`] resolves,
//! which happens once the batch is durable. What "durable" means is the
//! implementation's business:
//!
//! - [`InProcessBus`] (the embedded default) hands the batch to the store
//!   writer through a bounded queue; the writer acknowledges after its group
//!   commit.
//! - A Kafka bus (later) acknowledges once the broker has the batch; processors
//!   in a consumer group then write it to the store.
//!
//! Backpressure is explicit: the in-process queue holds a bounded number of
//! entries, and a publish that cannot get room within its deadline fails with
//! [`BusError::Overloaded`] instead of queueing without bound.

mod inproc;

pub use inproc::{Delivery, InProcessBus, InProcessConsumer};

use faultline_model::NewEntry;
use std::future::Future;
use std::pin::Pin;

/// Why a batch could not be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The queue stayed full for the whole deadline; retry later.
    #[error("ingest queue is full")]
    Overloaded,
    /// The bus is shutting down and takes no new batches.
    #[error("ingest is shutting down")]
    Closed,
    /// The batch was taken but could not be made durable.
    #[error("batch could not be stored: {0}")]
    Failed(String),
}

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where ingest puts validated batches.
pub trait Bus: Send + Sync {
    /// Publishes one batch; resolves `Ok` only once the batch is durable. A
    /// batch is never split: it is stored whole or not at all.
    fn publish(&self, batch: Vec<NewEntry>) -> BoxFuture<'_, Result<(), BusError>>;

    /// [`Bus::publish`] with what the store prepared for the batch off the
    /// writer (`faultline_store::Store::prepare`); a bus that cannot carry
    /// it to the writer drops it (the store then does that work itself).
    fn publish_prepared(
        &self,
        batch: Vec<NewEntry>,
        prepared: Option<Box<dyn std::any::Any + Send>>,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        drop(prepared);
        self.publish(batch)
    }

    /// Entries published but not yet durable.
    fn depth(&self) -> usize;
}
