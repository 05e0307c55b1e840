//! Phoenix notifications: tells customers and partners what happened to their bookings and payments, and mails
//! account owners the password reset links identity asks for.
//!
//! Owns (in its own database): the messages to send and their delivery log (`deliveries`), the templates admins
//! edit, each user's notification preferences, the webhook endpoints of organizations, and a small projection of
//! bookings (contact, locator, owner) built from booking's events.
//!
//! It never decides *when* to notify: events do. The event [`Handler`](phoenix_events::Handler) (see
//! [`handler`]) only writes rows in the event's transaction (effectively once through the consumer's inbox); the
//! delivery worker ([`Service::start`]) claims due rows under a lease, renders and sends them (SMTP, an HTTP SMS
//! provider, Standard Webhooks), and retries failures with jittered exponential backoff until `max_attempts` or
//! `retry_window_hours`, after which a delivery is `dead` (listed, replayable).
//!
//! It never calls booking, payment or identity, and it never logs an SMTP password, an SMS API key, a webhook secret
//! or a password reset token. Webhook secrets, which signing needs back, are stored sealed ([`phoenix_db::seal`]);
//! a reset token arrives sealed by identity (the two share the secrets key), is stored as it came, and is opened
//! only to render the email that carries it.

mod error;
pub mod events;
pub mod handler;
mod http;
mod options;
pub mod sender;
mod service;
pub mod store;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;
mod worker;

use std::sync::Arc;

use phoenix_db::{Migrations, Pool, Sealer};
use uuid::Uuid;

pub use error::Error;
pub use handler::Kind;
pub use http::{
    DeadPage, DeliveryList, DeliveryView, EndpointCreated, EndpointList, EndpointView, NewEndpoint, OptOut,
    PATH_PREFIXES, Preferences, TemplateBody, TemplateList, TemplateView, api,
};
pub use options::{Options, SmsOptions, SmtpOptions, SmtpTls};
pub use store::{Attempt, Channel, Delivery, Status};
pub use worker::Pass;

static MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/sqlite"),
    postgres: sqlx::migrate!("migrations/postgres"),
};

/// The notification service's schema, for `Pool::migrate`.
pub fn migrations() -> &'static Migrations {
    &MIGRATIONS
}

/// The notification service: cheap to clone. Dropping every clone stops its worker.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: store::Store,
    options: Options,
    senders: sender::Senders,
    /// This instance, as the holder of delivery claims.
    owner: Uuid,
}

impl Service {
    /// The service on its (migrated) database, with its transports built from `options`: SMTP when
    /// `options.smtp` is set (else emails are only written to the delivery log), the SMS provider when
    /// `options.sms` is set (else no SMS is sent), and one HTTP client for webhooks. Webhook secrets are sealed
    /// with `sealer`; any stored otherwise (in clear, or under a previous key) is sealed again under its current
    /// key first, and one sealed with a key `sealer` does not have fails the start.
    pub async fn new(pool: Pool, options: Options, sealer: Sealer) -> Result<Service, Error> {
        options.validate().map_err(|reason| Error::Config { reason })?;
        let senders = sender::Senders::new(&options)?;
        let store = store::Store::new(pool, sealer);
        let sealed = store.seal_stored_secrets().await?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "notification: sealed stored webhook secrets under the current secrets key"
            );
        }
        Ok(Service {
            inner: Arc::new(Inner {
                store,
                options,
                senders,
                owner: Uuid::now_v7(),
            }),
        })
    }

    /// Starts the delivery worker in the background; it stops once every clone of the service is dropped.
    pub fn start(self) -> Service {
        worker::spawn(&self);
        self
    }

    /// The event handler to give a `phoenix_events::Consumer` on this service's pool.
    pub fn handler(&self) -> Arc<dyn phoenix_events::Handler> {
        Arc::new(handler::NotificationHandler::new(&self.inner.options))
    }

    pub fn pool(&self) -> &Pool {
        self.inner.store.pool()
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The deliveries of a booking, oldest first (unmasked: for tests and the service's own use).
    pub async fn deliveries_of_booking(&self, booking_id: Uuid) -> Result<Vec<Delivery>, Error> {
        self.inner.store.deliveries_of_booking(booking_id).await
    }

    /// One delivery by id.
    pub async fn delivery(&self, id: Uuid) -> Result<Option<Delivery>, Error> {
        self.inner.store.delivery(id).await
    }
}
