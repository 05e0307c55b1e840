//! Phoenix events: how a change in one service reaches every service that cares about it.
//!
//! Every service writes its events to its outbox in the same transaction as the change (`phoenix-db`). This crate
//! owns what happens next:
//!
//! - [`CloudEvent`], the envelope on the bus (CloudEvents 1.0 with correlation id and W3C trace context);
//! - [`Relay`], one per service database, which publishes the outbox to the bus in order per subject and marks
//!   what was published;
//! - [`Bus`], in-process (the embedded default) or NATS JetStream (one stream per domain, durable consumers,
//!   `Nats-Msg-Id` dedupe);
//! - [`Consumer`], which applies a [`Handler`]'s effect and records the event id in the same transaction on the
//!   consuming service's database (effectively once), and keeps dead letters after bounded retries, which
//!   admins list over HTTP ([`admin`]) and replay from the command line.
//!
//! [`Retention`] deletes published outbox rows and inbox rows once they are old enough to be of no further use.
//!
//! Delivery is at least once everywhere; an event is marked published only after the bus has it.

pub mod admin;
mod bus;
mod consumer;
mod envelope;
pub mod nats;
mod relay;
mod retention;

pub use bus::{Bus, InProcess, Subscription};
pub use consumer::{Applied, Consumer, ConsumerOptions, DeadLetter, Handler, HandlerError, Replay, dead_letters};
pub use envelope::{CloudEvent, SPEC_VERSION, domain_of};
pub use nats::{Nats, NatsOptions};
pub use relay::{Relay, RelayOptions, RelayTask};
pub use retention::{Pruned, Retention, RetentionOptions, RetentionTask};

/// What can go wrong moving events.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
    #[error("event bus: {0}")]
    Bus(String),
    #[error("encoding an event: {0}")]
    Encode(String),
}
