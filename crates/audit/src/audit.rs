//! The audit consumer: every event of every domain becomes one entry of the append-only, hash-chained log.
//!
//! The entry says who did what to which object, when, and carries the event's payload with personal data masked
//! ([`crate::mask`]). Who did it (the *actor*) is read from the payload by [`actor_of`].

use async_trait::async_trait;
use phoenix_db::{Timestamp, Tx};
use phoenix_events::{CloudEvent, Handler, HandlerError};
use serde_json::Value;

use crate::{mask, store};

/// The consumer's durable name.
pub const NAME: &str = "audit";

/// Every domain that writes events today.
pub const DOMAINS: &[&str] = &["identity", "inventory", "catalog", "booking", "payment", "notification"];

/// Payload fields naming the actor, most specific first. `operation.actor_id` is a payment operation's actor;
/// `changed_by`/`revoked_by` name the admin (or user) who changed someone else's roles or key, so they come before
/// `user_id`, which then names the account acted on; `requested_by` names who asked to cancel a booking, before
/// `created_by` (who made it).
const ACTOR_FIELDS: &[&[&str]] = &[
    &["actor_id"],
    &["operation", "actor_id"],
    &["changed_by"],
    &["revoked_by"],
    &["requested_by"],
    &["created_by"],
    &["user_id"],
    &["customer_id"],
    &["holder_id"],
];

/// Who an event's change was made by: the first of `actor_id`, `operation.actor_id`, `changed_by`,
/// `revoked_by`, `requested_by`, `created_by`, `user_id`, `customer_id`, `holder_id` in its data that is a non-empty string,
/// else the event's source (`phoenix.catalog`: the service acted on its own, or did not say for whom).
pub fn actor_of(event: &CloudEvent) -> String {
    ACTOR_FIELDS
        .iter()
        .find_map(|path| {
            let value = path.iter().try_fold(&event.data, |value, key| value.get(key))?;
            value.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
        })
        .unwrap_or_else(|| event.source.clone())
}

/// An entry before it has its place in the chain.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub event_id: uuid::Uuid,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub source: String,
    pub occurred_at: Timestamp,
    pub recorded_at: Timestamp,
    pub correlation_id: Option<String>,
    /// The masked payload as JSON text: what is stored and hashed.
    pub payload: String,
}

impl NewEntry {
    pub fn from_event(event: &CloudEvent, recorded_at: Timestamp) -> Result<NewEntry, HandlerError> {
        let masked: Value = mask::payload(&event.data);
        Ok(NewEntry {
            event_id: event.id,
            actor: actor_of(event),
            action: event.event_type.clone(),
            subject: event.subject.clone(),
            source: event.source.clone(),
            occurred_at: Timestamp::from_datetime(event.time),
            recorded_at,
            correlation_id: event.correlationid.clone(),
            payload: serde_json::to_string(&masked)?,
        })
    }
}

/// Appends one entry per event, in the consumer's transaction.
pub struct AuditHandler;

#[async_trait]
impl Handler for AuditHandler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn domains(&self) -> &'static [&'static str] {
        DOMAINS
    }

    async fn apply(&self, tx: &mut Tx, event: &CloudEvent) -> Result<(), HandlerError> {
        self.apply_batch(tx, &[event]).await
    }

    /// The whole batch joins the chain at once: one move of the head, multi-row inserts.
    async fn apply_batch(&self, tx: &mut Tx, events: &[&CloudEvent]) -> Result<(), HandlerError> {
        let recorded_at = Timestamp::now();
        let entries = events
            .iter()
            .map(|event| NewEntry::from_event(event, recorded_at))
            .collect::<Result<Vec<_>, _>>()?;
        store::append(tx, &entries).await?;
        Ok(())
    }
}

/// Which entries to list: all given filters must match. Newest first.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub subject: Option<String>,
    /// Occurred at or after.
    pub from: Option<Timestamp>,
    /// Occurred before.
    pub to: Option<Timestamp>,
    /// Entries before this position (the previous page's last).
    pub before: Option<i64>,
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(data: Value) -> CloudEvent {
        CloudEvent {
            specversion: "1.0".into(),
            id: uuid::Uuid::now_v7(),
            source: "phoenix.catalog".into(),
            event_type: "catalog.hotel_created.v1".into(),
            subject: "h-1".into(),
            time: time::OffsetDateTime::UNIX_EPOCH,
            datacontenttype: "application/json".into(),
            data,
            correlationid: None,
            traceparent: None,
            sequence: 1,
        }
    }

    #[test]
    fn the_actor_is_the_most_specific_field_present_else_the_source() {
        let cases = [
            (json!({"actor_id": "a", "user_id": "u"}), "a"),
            (json!({"operation": {"actor_id": "op"}, "owner_id": "o"}), "op"),
            (json!({"user_id": "u", "changed_by": "admin"}), "admin"),
            (json!({"created_by": "agent", "customer_id": "c"}), "agent"),
            (json!({"requested_by": "support", "created_by": "agent"}), "support"),
            (json!({"customer_id": "c"}), "c"),
            (json!({"holder_id": "h"}), "h"),
            (json!({"operation": null, "actor_id": ""}), "phoenix.catalog"),
            (json!({"hotel_id": "h-1"}), "phoenix.catalog"),
            (json!(null), "phoenix.catalog"),
        ];
        for (data, actor) in cases {
            assert_eq!(actor_of(&event(data.clone())), actor, "{data}");
        }
    }
}
