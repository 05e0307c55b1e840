//! The bus between a service's outbox relay and the consumers of its events.
//!
//! Two shapes, one contract: [`Bus::publish`] returns once every event of the batch is durable on the bus (or
//! applied, in-process), and every event reaches each consumer of its domain at least once, in order per subject.
//!
//! - In-process (the embedded default): publishing hands the batch to every consumer registered in this process
//!   and returns once each has applied it (see [`InProcess`]). The outbox is the durable queue: the relay marks
//!   events published only after every consumer has them, so a crash in between means a redelivery, which the
//!   consumers' inboxes absorb.
//! - NATS JetStream: see [`crate::nats`].

use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

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

    /// Delivers this bus's events of the consumer's domains to it from now on. In-process, a task of the
    /// consumer's own applies what publishers hand it; on NATS, a task per domain pulls from the consumer's durable
    /// JetStream consumer. The tasks stop when the returned guard is dropped.
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

/// Events one in-process consumer applies in one go at most, when several relays deliver at once.
const COALESCE_EVENTS: usize = 2_000;

/// The in-process bus: each consumer in this process has one task that applies what the relays deliver.
///
/// A relay's publish hands its batch to the task of every consumer reading its domain and waits until each has
/// applied it. A task takes every delivery waiting for it (up to [`COALESCE_EVENTS`] events) and applies them as one
/// batch, in arrival order, in one transaction: relays of different services never queue on a consumer's locks
/// (the audit chain's head), and one commit serves them all. Order per subject holds because a subject's events
/// come from one outbox, whose relay waits for each batch before sending the next.
#[derive(Clone, Default)]
pub struct InProcess {
    consumers: Arc<RwLock<Vec<Worker>>>,
}

#[derive(Clone)]
struct Worker {
    key: u64,
    consumer: Consumer,
    deliveries: mpsc::Sender<Delivery>,
}

struct Delivery {
    events: Vec<CloudEvent>,
    done: oneshot::Sender<Result<(), String>>,
}

impl InProcess {
    async fn publish(&self, events: &[CloudEvent]) -> Result<(), Error> {
        let workers: Vec<Worker> = match self.consumers.read() {
            Ok(consumers) => consumers.clone(),
            Err(_) => return Err(Error::Bus("in-process bus registry poisoned".to_owned())),
        };
        let mut waiting = Vec::with_capacity(workers.len());
        for worker in workers {
            let mine: Vec<CloudEvent> = events.iter().filter(|e| worker.consumer.reads(e)).cloned().collect();
            if mine.is_empty() {
                continue;
            }
            let (done, applied) = oneshot::channel();
            worker
                .deliveries
                .send(Delivery { events: mine, done })
                .await
                .map_err(|_| stopped(&worker.consumer))?;
            waiting.push((worker.consumer, applied));
        }
        for (consumer, applied) in waiting {
            applied
                .await
                .map_err(|_| stopped(&consumer))?
                .map_err(|e| Error::Bus(format!("consumer {}: {e}", consumer.name())))?;
        }
        Ok(())
    }

    fn subscribe(&self, consumer: Consumer) -> Subscription {
        let key = uuid::Uuid::new_v4().as_u64_pair().0;
        let (deliveries, inbox) = mpsc::channel(64);
        let task = tokio::spawn(apply_deliveries(consumer.clone(), inbox));
        if let Ok(mut consumers) = self.consumers.write() {
            consumers.push(Worker {
                key,
                consumer,
                deliveries,
            });
        }
        let registry = Arc::downgrade(&self.consumers);
        Subscription {
            tasks: vec![task],
            on_drop: Some(Box::new(move || {
                if let Some(registry) = registry.upgrade()
                    && let Ok(mut consumers) = registry.write()
                {
                    consumers.retain(|w| w.key != key);
                }
            })),
        }
    }
}

fn stopped(consumer: &Consumer) -> Error {
    Error::Bus(format!("consumer {} has stopped", consumer.name()))
}

/// One consumer's task: applies deliveries as they come, several at once when they queue up, and answers each.
async fn apply_deliveries(consumer: Consumer, mut inbox: mpsc::Receiver<Delivery>) {
    while let Some(first) = inbox.recv().await {
        let mut events = first.events;
        let mut answers = vec![first.done];
        while events.len() < COALESCE_EVENTS {
            let Ok(next) = inbox.try_recv() else { break };
            events.extend(next.events);
            answers.push(next.done);
        }
        let outcome = consumer.apply(&events).await.map(|_| ()).map_err(|e| e.to_string());
        for answer in answers {
            // A relay that stopped waiting publishes the batch again later; the inbox absorbs the repeat.
            let _ = answer.send(outcome.clone());
        }
    }
}
