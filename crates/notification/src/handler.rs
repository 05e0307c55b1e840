//! From events to deliveries. The handler decides *who* hears about an event and *how* (email, SMS, webhooks),
//! never *when* (the event is the when) and never sends anything itself: it writes `pending` deliveries in the
//! event's transaction, which the worker sends.
//!
//! | event | customer (email, SMS) | organization's webhooks |
//! |---|---|---|
//! | `booking.confirmed.v1` | confirmation; a reminder due `reminder_lead_hours` before the start | subscribed endpoints |
//! | `booking.cancelled.v1` | cancellation (with the refund); pending reminders cancelled | subscribed endpoints |
//! | `booking.failed.v1` | failure; pending reminders cancelled | subscribed endpoints |
//! | `payment.refunded.v1` | refund (booking found by the payment's `reference`) | subscribed endpoints |
//! | other booking and payment events | none | subscribed endpoints |
//! | `identity.password_reset_requested.v1` | the reset link, by email only (the token stays sealed) | never |

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use phoenix_db::{Timestamp, Tx};
use phoenix_events::{CloudEvent, Handler, HandlerError};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Options;
use crate::store::{BookingRecord, Channel, NewDelivery, Store, StoredPreferences, Subscription};
use crate::template::{Notice, ResetNotice};

/// The booking and payment event types the service reads, which webhook endpoints may subscribe to; four also
/// notify the customer.
pub const EVENT_TYPES: &[&str] = &[
    "booking.created.v1",
    "booking.confirmed.v1",
    "booking.failed.v1",
    "booking.cancellation_requested.v1",
    "booking.cancelled.v1",
    "booking.completed.v1",
    "payment.authorized.v1",
    "payment.captured.v1",
    "payment.refunded.v1",
    "payment.voided.v1",
    "payment.failed.v1",
];

/// The account event types the service reads: they mail the account's owner and never go to webhooks (they are
/// personal, and carry a sealed secret).
pub const ACCOUNT_EVENT_TYPES: &[&str] = &[PASSWORD_RESET_REQUESTED];

/// Identity's request to mail a password-reset link.
pub const PASSWORD_RESET_REQUESTED: &str = "identity.password_reset_requested.v1";

/// What a customer notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Confirmed,
    Cancelled,
    Failed,
    Refunded,
    /// Before check-in or departure: the one kind a user may opt out of.
    Reminder,
    /// A link to set a new password (asked for with "forgot my password"): email only.
    PasswordReset,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Confirmed,
        Kind::Cancelled,
        Kind::Failed,
        Kind::Refunded,
        Kind::Reminder,
        Kind::PasswordReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Confirmed => "confirmed",
            Kind::Cancelled => "cancelled",
            Kind::Failed => "failed",
            Kind::Refunded => "refunded",
            Kind::Reminder => "reminder",
            Kind::PasswordReset => "password_reset",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Transactional messages (about a change the customer must know of) cannot be opted out of.
    pub fn is_transactional(self) -> bool {
        self != Kind::Reminder
    }

    fn of_event(event_type: &str) -> Option<Kind> {
        match event_type {
            "booking.confirmed.v1" => Some(Kind::Confirmed),
            "booking.cancelled.v1" => Some(Kind::Cancelled),
            "booking.failed.v1" => Some(Kind::Failed),
            "payment.refunded.v1" => Some(Kind::Refunded),
            _ => None,
        }
    }
}

/// The `kind` of webhook deliveries.
pub const WEBHOOK_KIND: &str = "webhook";

/// The summary every booking event carries.
#[derive(Debug, Deserialize)]
struct BookingSummary {
    booking_id: Uuid,
    locator: String,
    customer_id: Uuid,
    organization_id: Option<Uuid>,
    /// Who booked (the customer, or the agent who booked for them): the owner of the booking's payment.
    #[serde(default)]
    created_by: Option<Uuid>,
    contact_email: String,
    contact_phone: Option<String>,
    currency: String,
    total_minor: i64,
    refunded_minor: i64,
    /// What the cancellation itself refunded (`booking.cancelled.v1`): less than `refunded_minor` when the payment
    /// was refunded before. Absent from other events, and from cancellations recorded before it was.
    #[serde(default)]
    refund_minor: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    ends_at: OffsetDateTime,
}

impl BookingSummary {
    fn notice(&self) -> Notice {
        Notice {
            booking_id: self.booking_id,
            locator: self.locator.clone(),
            currency: self.currency.clone(),
            total_minor: self.total_minor,
            refunded_minor: self.refunded_minor,
            amount_minor: self.refund_minor,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
        }
    }
}

/// The part of a payment event the refund notice needs.
#[derive(Debug, Deserialize)]
struct PaymentSummary {
    /// Who paid: the booker, for a booking's payment.
    owner_id: Uuid,
    organization_id: Option<Uuid>,
    currency: String,
    refunded_minor: i64,
    /// The booking id when the saga made the payment; any text when a client did (see [`Plan::paid_booking`]).
    reference: Option<String>,
    operation: Option<Operation>,
}

#[derive(Debug, Deserialize)]
struct Operation {
    amount_minor: i64,
}

/// The data of `identity.password_reset_requested.v1`.
#[derive(Deserialize)]
struct ResetRequested {
    user_id: Uuid,
    email: String,
    name: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    /// Sealed by identity with the shared secrets key; kept sealed here until the email is rendered.
    sealed_token: String,
}

/// The consumer side of the service (name `notification`, domains `booking`, `payment` and `identity`).
pub struct NotificationHandler {
    reminder_lead: time::Duration,
    retry_window: time::Duration,
    sms_enabled: bool,
    default_locale: String,
}

impl NotificationHandler {
    pub(crate) fn new(options: &Options) -> NotificationHandler {
        NotificationHandler {
            reminder_lead: time::Duration::hours(i64::from(options.reminder_lead_hours)),
            retry_window: time::Duration::hours(i64::from(options.retry_window_hours)),
            sms_enabled: options.sms.is_some(),
            default_locale: options.default_locale.clone(),
        }
    }
}

#[async_trait]
impl Handler for NotificationHandler {
    fn name(&self) -> &'static str {
        "notification"
    }

    fn domains(&self) -> &'static [&'static str] {
        &["booking", "payment", "identity"]
    }

    fn wants(&self, event_type: &str) -> bool {
        EVENT_TYPES.contains(&event_type) || ACCOUNT_EVENT_TYPES.contains(&event_type)
    }

    async fn apply(&self, tx: &mut Tx, event: &CloudEvent) -> Result<(), HandlerError> {
        self.apply_batch(tx, &[event]).await
    }

    /// Plans every event of the batch in order, reading each customer's preferences and each organization's
    /// endpoints once, then writes the bookings and deliveries the batch made in a few multi-row statements.
    async fn apply_batch(&self, tx: &mut Tx, events: &[&CloudEvent]) -> Result<(), HandlerError> {
        let mut batch = Batch::default();
        let now = Timestamp::now();
        // Every customer a booking event of the batch notifies, read at once (refunds find theirs as they go).
        let customers: Vec<Uuid> = events
            .iter()
            .filter(|event| event.domain() == "booking" && Kind::of_event(&event.event_type).is_some())
            .filter_map(|event| Customer::deserialize(&event.data).ok())
            .map(|customer| customer.customer_id)
            .collect();
        batch.read_preferences(tx, customers).await?;
        for event in events {
            let mut plan = Plan {
                handler: self,
                event,
                now,
                batch: &mut batch,
            };
            if event.event_type == PASSWORD_RESET_REQUESTED {
                let requested: ResetRequested = serde_json::from_value(event.data.clone())?;
                plan.password_reset(tx, requested).await?;
            } else if event.domain() == "booking" {
                let booking: BookingSummary = serde_json::from_value(event.data.clone())?;
                plan.booking_event(tx, &booking).await?;
                if let Some(organization_id) = booking.organization_id {
                    plan.webhooks(tx, organization_id, None).await?;
                }
            } else {
                let payment: PaymentSummary = serde_json::from_value(event.data.clone())?;
                plan.payment_event(tx, &payment).await?;
                if let Some(organization_id) = payment.organization_id {
                    plan.webhooks(tx, organization_id, Some(&payment)).await?;
                }
            }
        }
        batch.write(tx, now).await.map_err(storage)
    }
}

/// What a batch of events makes, written once the whole batch is planned, and what it read, kept for the batch.
#[derive(Default)]
struct Batch {
    /// The latest record of each booking the batch's events told of.
    bookings: BTreeMap<Uuid, BookingRecord>,
    deliveries: Vec<NewDelivery>,
    preferences: HashMap<Uuid, Option<StoredPreferences>>,
    endpoints: HashMap<Uuid, Vec<Subscription>>,
}

/// The one field of a booking event the batch reads ahead.
#[derive(Deserialize)]
struct Customer {
    customer_id: Uuid,
}

impl Batch {
    /// Reads the preferences of the users not read yet, in one go.
    async fn read_preferences(&mut self, tx: &mut Tx, mut user_ids: Vec<Uuid>) -> Result<(), HandlerError> {
        user_ids.sort_unstable();
        user_ids.dedup();
        user_ids.retain(|id| !self.preferences.contains_key(id));
        if user_ids.is_empty() {
            return Ok(());
        }
        let mut found = Store::preferences_of_in(tx, &user_ids).await.map_err(storage)?;
        for user_id in user_ids {
            let stored = found.remove(&user_id);
            self.preferences.insert(user_id, stored);
        }
        Ok(())
    }

    async fn preferences(&mut self, tx: &mut Tx, user_id: Uuid) -> Result<Option<StoredPreferences>, HandlerError> {
        if let Some(known) = self.preferences.get(&user_id) {
            return Ok(known.clone());
        }
        let stored = Store::preferences_in(tx, user_id).await.map_err(storage)?;
        self.preferences.insert(user_id, stored.clone());
        Ok(stored)
    }

    /// A booking as known so far: told earlier in this batch, else stored.
    async fn booking(&self, tx: &mut Tx, booking_id: Uuid) -> Result<Option<BookingRecord>, HandlerError> {
        match self.bookings.get(&booking_id) {
            Some(record) => Ok(Some(record.clone())),
            None => Store::booking_in(tx, booking_id).await.map_err(storage),
        }
    }

    /// Cancels the booking's pending reminders, those this batch planned included: the deliveries planned so far
    /// are written first (cancellations are rare), so the log shows the same as one event at a time would.
    async fn cancel_reminders(&mut self, tx: &mut Tx, booking_id: Uuid, now: Timestamp) -> Result<u64, HandlerError> {
        Store::insert_deliveries(tx, &self.deliveries, now)
            .await
            .map_err(storage)?;
        self.deliveries.clear();
        Store::cancel_reminders(tx, booking_id, now).await.map_err(storage)
    }

    async fn write(self, tx: &mut Tx, now: Timestamp) -> Result<(), crate::Error> {
        let bookings: Vec<&BookingRecord> = self.bookings.values().collect();
        Store::upsert_bookings(tx, &bookings, now).await?;
        Store::insert_deliveries(tx, &self.deliveries, now).await
    }
}

fn storage(error: crate::Error) -> HandlerError {
    HandlerError(format!("storage: {error}"))
}

/// The deliveries one event makes.
struct Plan<'a> {
    handler: &'a NotificationHandler,
    event: &'a CloudEvent,
    now: Timestamp,
    batch: &'a mut Batch,
}

/// Who a customer notice goes to.
struct Audience {
    booking_id: Uuid,
    customer_id: Uuid,
    organization_id: Option<Uuid>,
    email: String,
    phone: Option<String>,
}

impl Plan<'_> {
    async fn booking_event(&mut self, tx: &mut Tx, booking: &BookingSummary) -> Result<(), HandlerError> {
        let record = BookingRecord {
            booking_id: booking.booking_id,
            locator: booking.locator.clone(),
            customer_id: booking.customer_id,
            organization_id: booking.organization_id,
            contact_email: booking.contact_email.clone(),
            contact_phone: booking.contact_phone.clone(),
            summary: sqlx::types::Json(self.event.data.clone()),
        };
        self.batch.bookings.insert(record.booking_id, record);
        let Some(kind) = Kind::of_event(&self.event.event_type) else {
            return Ok(());
        };
        if matches!(kind, Kind::Cancelled | Kind::Failed) {
            let n = self.batch.cancel_reminders(tx, booking.booking_id, self.now).await?;
            if n > 0 {
                tracing::info!(booking_id = %booking.booking_id, cancelled = n, "reminders cancelled");
            }
        }
        let audience = Audience {
            booking_id: booking.booking_id,
            customer_id: booking.customer_id,
            organization_id: booking.organization_id,
            email: booking.contact_email.clone(),
            phone: booking.contact_phone.clone(),
        };
        let notice = booking.notice();
        let preferences = self.batch.preferences(tx, booking.customer_id).await?;
        self.notify(&audience, preferences.as_ref(), kind, &notice, self.now);
        if kind == Kind::Confirmed {
            let due = Timestamp::from_datetime(booking.starts_at - self.handler.reminder_lead);
            // A booking made closer to its start than the lead gets no reminder: the confirmation is enough.
            if due > self.now {
                self.notify(&audience, preferences.as_ref(), Kind::Reminder, &notice, due);
            }
        }
        Ok(())
    }

    async fn payment_event(&mut self, tx: &mut Tx, payment: &PaymentSummary) -> Result<(), HandlerError> {
        if Kind::of_event(&self.event.event_type) != Some(Kind::Refunded) {
            return Ok(());
        }
        let Some(booking) = self.paid_booking(tx, payment).await? else {
            // A refund of a payment no booking event told us of (made outside a booking): the organization's
            // webhooks still hear of it; there is no customer address to write to.
            tracing::info!(event_id = %self.event.id, "refund of an unknown booking: no customer notice");
            return Ok(());
        };
        let summary: BookingSummary = serde_json::from_value(booking.summary.0.clone())?;
        let mut notice = summary.notice();
        notice.currency = payment.currency.clone();
        notice.refunded_minor = payment.refunded_minor;
        notice.amount_minor = Some(
            payment
                .operation
                .as_ref()
                .map_or(payment.refunded_minor, |o| o.amount_minor),
        );
        let audience = Audience {
            booking_id: booking.booking_id,
            customer_id: booking.customer_id,
            organization_id: booking.organization_id,
            email: booking.contact_email,
            phone: booking.contact_phone,
        };
        let preferences = self.batch.preferences(tx, audience.customer_id).await?;
        self.notify(&audience, preferences.as_ref(), Kind::Refunded, &notice, self.now);
        Ok(())
    }

    /// The reset link, by email to the account's address in the user's locale: transactional (it cannot be opted
    /// out of) and never sent to webhooks. The token stays sealed in the delivery; the worker opens it only to
    /// render the email. A request whose link expired before it was read (old events replayed, a long outage) is
    /// mailed nothing, as the link would not work; a token that came unsealed is neither kept nor mailed.
    async fn password_reset(&mut self, tx: &mut Tx, requested: ResetRequested) -> Result<(), HandlerError> {
        let expires_at = Timestamp::from_datetime(requested.expires_at);
        if expires_at <= self.now {
            tracing::info!(event_id = %self.event.id, "password reset expired before it was read: not mailed");
            return Ok(());
        }
        if !Store::is_sealed_text(&requested.sealed_token) {
            tracing::warn!(event_id = %self.event.id, "password reset token not sealed: not kept, not mailed");
            return Ok(());
        }
        let preferences = self.batch.preferences(tx, requested.user_id).await?;
        let locale = preferences
            .as_ref()
            .map_or(self.handler.default_locale.as_str(), |p| p.locale.as_str())
            .to_owned();
        let notice = ResetNotice {
            user_id: requested.user_id,
            name: requested.name,
            expires_at: requested.expires_at,
            sealed_token: requested.sealed_token,
        };
        self.batch.deliveries.push(NewDelivery {
            event_id: self.event.id,
            event_type: self.event.event_type.clone(),
            kind: Kind::PasswordReset.as_str().to_owned(),
            channel: Channel::Email,
            recipient: requested.email,
            endpoint_id: None,
            booking_id: None,
            customer_id: Some(requested.user_id),
            organization_id: None,
            locale,
            payload: serde_json::to_value(&notice)?,
            due_at: self.now,
            // No retry after the link has expired: it would not work.
            give_up_at: (self.now + self.handler.retry_window).min(expires_at),
        });
        Ok(())
    }

    /// The booking `payment` pays for: the one its reference names, if whoever booked it made the payment. A
    /// payment's reference is free text on the public API, so a stranger could name someone else's booking (its id
    /// is shown to anyone with the locator and last name): that payment's refund must not write to the booking's
    /// customer, nor its webhook calls show in the booking's delivery log.
    async fn paid_booking(
        &mut self,
        tx: &mut Tx,
        payment: &PaymentSummary,
    ) -> Result<Option<BookingRecord>, HandlerError> {
        let Some(booking_id) = payment.reference.as_deref().and_then(|r| r.parse::<Uuid>().ok()) else {
            return Ok(None);
        };
        let Some(booking) = self.batch.booking(tx, booking_id).await? else {
            return Ok(None);
        };
        let summary: BookingSummary = serde_json::from_value(booking.summary.0.clone())?;
        if summary.created_by != Some(payment.owner_id) {
            tracing::warn!(event_id = %self.event.id, %booking_id, "a payment names a booking its payer did not make");
            return Ok(None);
        }
        Ok(Some(booking))
    }

    /// The customer's email (always, for transactional kinds) and SMS (with a phone and a provider), in their
    /// locale, minus what they opted out of.
    fn notify(
        &mut self,
        audience: &Audience,
        preferences: Option<&StoredPreferences>,
        kind: Kind,
        notice: &Notice,
        due: Timestamp,
    ) {
        let locale = preferences
            .map_or(self.handler.default_locale.as_str(), |p| p.locale.as_str())
            .to_owned();
        let payload = serde_json::to_value(notice).unwrap_or_default();
        let mut channels = vec![(Channel::Email, audience.email.clone())];
        if let (Some(phone), true) = (&audience.phone, self.handler.sms_enabled) {
            channels.push((Channel::Sms, phone.clone()));
        }
        for (channel, recipient) in channels {
            if !kind.is_transactional() && preferences.is_some_and(|p| p.opted_out(kind.as_str(), channel)) {
                continue;
            }
            self.batch.deliveries.push(NewDelivery {
                event_id: self.event.id,
                event_type: self.event.event_type.clone(),
                kind: kind.as_str().to_owned(),
                channel,
                recipient,
                endpoint_id: None,
                booking_id: Some(audience.booking_id),
                customer_id: Some(audience.customer_id),
                organization_id: audience.organization_id,
                locale: locale.clone(),
                payload: payload.clone(),
                due_at: due,
                give_up_at: due + self.handler.retry_window,
            });
        }
    }

    /// One delivery per endpoint of the organization subscribed to the event's type: the CloudEvent itself, shown
    /// in the delivery log of the booking it is about (a booking event's subject, or the booking `payment` pays for).
    async fn webhooks(
        &mut self,
        tx: &mut Tx,
        organization_id: Uuid,
        payment: Option<&PaymentSummary>,
    ) -> Result<(), HandlerError> {
        let known = match self.batch.endpoints.entry(organization_id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(Store::subscriptions_of(tx, organization_id).await.map_err(storage)?),
        };
        let endpoints: Vec<Subscription> = known
            .iter()
            .filter(|e| e.wants(&self.event.event_type))
            .cloned()
            .collect();
        if endpoints.is_empty() {
            return Ok(());
        }
        let payload = serde_json::to_value(self.event)?;
        let booking_id = match payment {
            None => self.event.subject.parse().ok(),
            Some(payment) => self.paid_booking(tx, payment).await?.map(|b| b.booking_id),
        };
        for endpoint in endpoints {
            self.batch.deliveries.push(NewDelivery {
                event_id: self.event.id,
                event_type: self.event.event_type.clone(),
                kind: WEBHOOK_KIND.to_owned(),
                channel: Channel::Webhook,
                recipient: endpoint.url.clone(),
                endpoint_id: Some(endpoint.id),
                booking_id,
                customer_id: None,
                organization_id: Some(organization_id),
                locale: self.handler.default_locale.clone(),
                payload: payload.clone(),
                due_at: self.now,
                give_up_at: self.now + self.handler.retry_window,
            });
        }
        Ok(())
    }
}
