//! The bus between a service's outbox relay and the consumers of its events.
//!
//! Two shapes, one contract: [`Bus::publish`] returns once every event of the batch is durable on the bus (or
//! applied, in-process), and every event reaches each consumer of its domain at least once, in order per subject.
//!
//! - In-process (the embedded default): publishing applies the batch to every consumer registered in this process,
//!   in order. The outbox is the durable queue: the relay marks events published only after every consumer has
//!   them, so a crash in between means a redelivery, which the consumers' inboxes absorb.
//! - NATS JetStream: see [`crate::nats`].

use std::sync::{Arc, RwLock};

use crate::nats::Nats;
use crate::{CloudEvent, Consumer, Error};

/// The configured bus, chosen once at start-up.
#[derive(Clone)]
pub enum Bus {
    InProcess(InProcess),
    Nats(Nats),
}

impl Bus {
    pub fn in_process() -> Bus {
        Bus::InProcess(InProcess::default())
    }

    /// Publishes `events` (one outbox batch, in outbox order). When it returns `Ok`, all of them are on the bus;
    /// on `Err`, some may be, and publishing the same batch again is safe (the bus drops duplicates by event id).
    pub async fn publish(&self, events: &[CloudEvent]) -> Result<(), Error> {
        match self {
            Bus::InProcess(bus) => bus.publish(events).await,
            Bus::Nats(bus) => bus.publish(events).await,
        }
    }

    /// Delivers this bus's events of the consumer's domains to it from now on. In-process, it is called by the
    /// publisher; on NATS, a task per domain pulls from the consumer's durable JetStream consumer. The tasks stop
    /// when the returned guard is dropped.
    pub fn subscribe(&self, consumer: Consumer) -> Subscription {
        match self {
            Bus::InProcess(bus) => bus.subscribe(consumer),
            Bus::Nats(bus) => bus.subscribe(consumer),
        }
    }

    /// Whether publishing reaches anyone: an in-process bus with no consumer in this process does not.
    pub fn has_audience(&self) -> bool {
        match self {
            Bus::InProcess(bus) => bus.consumers.read().map(|c| !c.is_empty()).unwrap_or(false),
            Bus::Nats(_) => true,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Bus::InProcess(_) => "in_process",
            Bus::Nats(_) => "nats",
        }
    }
}

/// Keeps a consumer subscribed; dropping it unsubscribes (and stops its tasks).
pub struct Subscription {
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
    pub(crate) on_drop: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(on_drop) = self.on_drop.take() {
            on_drop();
        }
    }
}

/// The in-process bus: consumers in this process, applied in the publisher's task.
#[derive(Clone, Default)]
pub struct InProcess {
    consumers: Arc<RwLock<Vec<(u64, Consumer)>>>,
}

impl InProcess {
    async fn publish(&self, events: &[CloudEvent]) -> Result<(), Error> {
        let consumers: Vec<Consumer> = match self.consumers.read() {
            Ok(consumers) => consumers.iter().map(|(_, c)| c.clone()).collect(),
            Err(_) => return Err(Error::Bus("in-process bus registry poisoned".to_owned())),
        };
        for consumer in consumers {
            let mine: Vec<CloudEvent> = events.iter().filter(|e| consumer.reads(e)).cloned().collect();
            if !mine.is_empty() {
                consumer.apply(&mine).await?;
            }
        }
        Ok(())
    }

    fn subscribe(&self, consumer: Consumer) -> Subscription {
        let key = uuid::Uuid::new_v4().as_u64_pair().0;
        if let Ok(mut consumers) = self.consumers.write() {
            consumers.push((key, consumer));
        }
        let registry = Arc::downgrade(&self.consumers);
        Subscription {
            tasks: Vec::new(),
            on_drop: Some(Box::new(move || {
                if let Some(registry) = registry.upgrade()
                    && let Ok(mut consumers) = registry.write()
                {
                    consumers.retain(|(k, _)| *k != key);
                }
            })),
        }
    }
}
