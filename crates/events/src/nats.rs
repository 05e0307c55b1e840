//! The bus on NATS JetStream.
//!
//! - One stream per domain (`PHOENIX_BOOKING` holds `phoenix.booking.>`), file storage, limits retention
//!   (`max_age_hours`), and an explicit duplicate window: each message carries `Nats-Msg-Id` = the event id, so a
//!   relay that publishes a batch again after a crash or a timeout stores nothing twice.
//! - Publishing keeps order per subject: the events of a batch go out in waves, the n-th event of every subject in
//!   wave n, and wave n+1 starts only when every message of wave n is acknowledged by the server. A failed wave fails
//!   the batch before any later event of the same subject is sent, so a retry cannot overtake.
//! - Each consuming service has a durable pull consumer per domain stream (named after it), explicit acks, and
//!   acknowledges a batch only after its effects are committed. A consumer that (re)starts with messages still
//!   unacknowledged is repositioned to its ack floor first, so redeliveries come before anything newer: effects stay
//!   in order per subject, and the inbox absorbs the duplicates.
//!
//! Durability of acknowledged messages: file storage, and `replicas = 3` in a cluster (a publish is acknowledged
//! once a quorum has it). A single server acknowledges after writing to its file store, which it syncs to disk
//! periodically: run JetStream clustered where a machine crash must not lose events.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::bus::Subscription;
use crate::{CloudEvent, Consumer, Error};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsOptions {
    pub url: String,
    /// Subjects are `<subject_prefix>.<event type>`: `phoenix.booking.confirmed.v1`.
    pub subject_prefix: String,
    /// Streams are `<stream_prefix>_<DOMAIN>`: `PHOENIX_BOOKING`.
    pub stream_prefix: String,
    /// How long the server remembers message ids to drop duplicates.
    pub duplicate_window_secs: u64,
    /// How long a stream keeps events (consumers that fall further behind lose them).
    pub max_age_hours: u64,
    /// Stream replicas: 3 in a JetStream cluster.
    pub replicas: usize,
    /// How long a publish waits for the server's acknowledgement.
    pub publish_timeout_secs: u64,
    /// Most messages a consumer takes per fetch (and applies in one transaction).
    pub fetch_batch: usize,
    /// How long the server waits for a consumer's ack before delivering again.
    pub ack_wait_secs: u64,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            url: "nats://127.0.0.1:4222".to_owned(),
            subject_prefix: "phoenix".to_owned(),
            stream_prefix: "PHOENIX".to_owned(),
            duplicate_window_secs: 120,
            max_age_hours: 7 * 24,
            replicas: 1,
            publish_timeout_secs: 5,
            fetch_batch: 256,
            ack_wait_secs: 30,
        }
    }
}

/// A connection to NATS JetStream, shared by this process's relays and consumers.
#[derive(Clone)]
pub struct Nats {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    options: NatsOptions,
    streams: tokio::sync::Mutex<HashSet<String>>,
}

fn bus_error(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Bus(format!("{context}: {e}"))
}

impl Nats {
    /// Connects (retrying in the background when the server is not up yet, so a process can start before NATS).
    pub async fn connect(options: NatsOptions) -> Result<Nats, Error> {
        let client = async_nats::ConnectOptions::new()
            .name("phoenix")
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(options.url.as_str())
            .await
            .map_err(|e| bus_error("connecting to NATS", e))?;
        let js = jetstream::context::ContextBuilder::new()
            .timeout(Duration::from_secs(options.publish_timeout_secs.max(1)))
            .build(client.clone());
        Ok(Nats {
            inner: Arc::new(Inner {
                client,
                js,
                options,
                streams: tokio::sync::Mutex::new(HashSet::new()),
            }),
        })
    }

    pub fn options(&self) -> &NatsOptions {
        &self.inner.options
    }

    /// Whether the connection to the server is up (for readiness).
    pub fn connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.inner.options.subject_prefix)
    }

    pub fn stream_name(&self, domain: &str) -> String {
        format!("{}_{}", self.inner.options.stream_prefix, domain.to_uppercase())
    }

    /// The stream of `domain`, created if missing.
    pub async fn stream(&self, domain: &str) -> Result<stream::Stream, Error> {
        let options = &self.inner.options;
        let name = self.stream_name(domain);
        let config = stream::Config {
            name: name.clone(),
            subjects: vec![format!("{}.{domain}.>", options.subject_prefix)],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: Duration::from_secs(options.max_age_hours.max(1) * 3600),
            duplicate_window: Duration::from_secs(options.duplicate_window_secs.max(1)),
            num_replicas: options.replicas.max(1),
            ..stream::Config::default()
        };
        let stream = self
            .inner
            .js
            .get_or_create_stream(config)
            .await
            .map_err(|e| bus_error("creating the stream", e))?;
        self.inner.streams.lock().await.insert(name);
        Ok(stream)
    }

    pub(crate) async fn publish(&self, events: &[CloudEvent]) -> Result<(), Error> {
        let domains: HashSet<&str> = events.iter().map(CloudEvent::domain).collect();
        for domain in domains {
            let known = self.inner.streams.lock().await.contains(&self.stream_name(domain));
            if !known {
                self.stream(domain).await?;
            }
        }
        let timeout = Duration::from_secs(self.inner.options.publish_timeout_secs.max(1));
        for wave in waves(events) {
            let mut acks = Vec::with_capacity(wave.len());
            for event in wave {
                let message = jetstream::message::PublishMessage::build()
                    .payload(event.to_bytes().into())
                    .message_id(event.id.to_string());
                let ack = self
                    .inner
                    .js
                    .send_publish(self.subject(&event.event_type), message)
                    .await
                    .map_err(|e| bus_error("publishing", e))?;
                acks.push(ack);
            }
            for ack in acks {
                tokio::time::timeout(timeout, ack)
                    .await
                    .map_err(|_| Error::Bus("publishing: no acknowledgement in time".to_owned()))?
                    .map_err(|e| bus_error("publishing", e))?;
            }
        }
        Ok(())
    }

    pub(crate) fn subscribe(&self, consumer: Consumer) -> Subscription {
        let tasks = consumer
            .domains()
            .iter()
            .map(|domain| {
                let nats = self.clone();
                let consumer = consumer.clone();
                tokio::spawn(async move { nats.consume_forever(consumer, domain).await })
            })
            .collect();
        Subscription { tasks, on_drop: None }
    }

    async fn consume_forever(self, consumer: Consumer, domain: &'static str) {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.consume(&consumer, domain).await {
                Ok(()) => delay = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(consumer = consumer.name(), domain, error = %e, "event consumer interrupted; resuming");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Pulls, applies and acknowledges batches until something fails.
    async fn consume(&self, consumer: &Consumer, domain: &str) -> Result<(), Error> {
        let stream = self.stream(domain).await?;
        let pull = self.positioned(&stream, consumer.name()).await?;
        loop {
            let mut batch = pull
                .fetch()
                .max_messages(self.inner.options.fetch_batch.max(1))
                .expires(Duration::from_secs(1))
                .messages()
                .await
                .map_err(|e| bus_error("fetching", e))?;
            let mut messages = Vec::new();
            while let Some(message) = batch.next().await {
                messages.push(message.map_err(|e| bus_error("fetching", e))?);
            }
            if messages.is_empty() {
                continue;
            }
            let mut events = Vec::with_capacity(messages.len());
            for message in &messages {
                match CloudEvent::from_bytes(&message.payload) {
                    Ok(event) => events.push(event),
                    Err(e) => {
                        metrics::counter!("phoenix_events_malformed_total", "consumer" => consumer.name()).increment(1);
                        tracing::error!(consumer = consumer.name(), subject = %message.subject, error = %e,
                            "message on the bus is not a CloudEvent; skipped");
                    }
                }
            }
            consumer.apply(&events).await?;
            for message in &messages {
                message.ack().await.map_err(|e| bus_error("acknowledging", e))?;
            }
        }
    }

    /// The consumer's durable JetStream consumer on `stream`, positioned so that nothing unacknowledged is
    /// overtaken: one that has unacknowledged messages is recreated at its ack floor.
    async fn positioned(&self, stream: &stream::Stream, name: &str) -> Result<consumer::PullConsumer, Error> {
        let existing = stream.get_consumer::<consumer::pull::Config>(name).await;
        let deliver_policy = match existing {
            Ok(mut pull) => {
                let info = pull.info().await.map_err(|e| bus_error("reading the consumer", e))?;
                if info.num_ack_pending == 0 {
                    return Ok(pull);
                }
                let start_sequence = info.ack_floor.stream_sequence + 1;
                tracing::info!(
                    consumer = name,
                    start_sequence,
                    pending = info.num_ack_pending,
                    "repositioning the consumer at its ack floor"
                );
                stream
                    .delete_consumer(name)
                    .await
                    .map_err(|e| bus_error("repositioning the consumer", e))?;
                consumer::DeliverPolicy::ByStartSequence { start_sequence }
            }
            Err(_) => consumer::DeliverPolicy::All,
        };
        let options = &self.inner.options;
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(name.to_owned()),
                deliver_policy,
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(options.ack_wait_secs.max(1)),
                max_ack_pending: i64::try_from(options.fetch_batch.max(1) * 2).unwrap_or(i64::MAX),
                ..consumer::pull::Config::default()
            })
            .await
            .map_err(|e| bus_error("creating the consumer", e))
    }
}

/// Splits a batch into waves: wave n holds the n-th event of every subject, in batch order.
pub(crate) fn waves(events: &[CloudEvent]) -> Vec<Vec<&CloudEvent>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut waves: Vec<Vec<&CloudEvent>> = Vec::new();
    for event in events {
        let n = seen.entry(event.subject.as_str()).or_insert(0);
        if waves.len() <= *n {
            waves.push(Vec::new());
        }
        waves[*n].push(event);
        *n += 1;
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(subject: &str, sequence: i64) -> CloudEvent {
        CloudEvent {
            specversion: "1.0".to_owned(),
            id: uuid::Uuid::now_v7(),
            source: "phoenix.booking".to_owned(),
            event_type: "booking.created.v1".to_owned(),
            subject: subject.to_owned(),
            time: time::OffsetDateTime::now_utc(),
            datacontenttype: "application/json".to_owned(),
            data: serde_json::Value::Null,
            correlationid: None,
            traceparent: None,
            sequence,
        }
    }

    #[test]
    fn waves_hold_the_nth_event_of_each_subject() {
        let batch = vec![
            event("a", 1),
            event("b", 2),
            event("a", 3),
            event("c", 4),
            event("a", 5),
            event("b", 6),
        ];
        let sequences: Vec<Vec<i64>> = waves(&batch)
            .iter()
            .map(|wave| wave.iter().map(|e| e.sequence).collect())
            .collect();
        assert_eq!(sequences, vec![vec![1, 2, 4], vec![3, 6], vec![5]]);
    }
}
