//! The envelope every event travels in: CloudEvents 1.0 (structured JSON mode) with two extension attributes,
//! `correlationid` and `traceparent` (W3C trace context), and `sequence`, the event's position in its source's
//! outbox.

use phoenix_db::OutboxRecord;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The CloudEvents version this envelope follows.
pub const SPEC_VERSION: &str = "1.0";

/// A CloudEvent as it crosses the bus. `subject` is the entity the event is about (a booking id, a hold id): the
/// bus keeps order per subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: Uuid,
    /// The service that wrote it, for example `phoenix.booking`.
    pub source: String,
    /// Versioned type, for example `booking.confirmed.v1`: `<domain>.<name>.v<version>`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub subject: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub datacontenttype: String,
    pub data: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Position in the source's outbox: increases with every event the source writes.
    pub sequence: i64,
}

impl CloudEvent {
    /// The domain of the event's type (`booking` for `booking.confirmed.v1`): one stream per domain.
    pub fn domain(&self) -> &str {
        domain_of(&self.event_type)
    }

    /// The envelope as JSON bytes (what the bus carries).
    pub fn to_bytes(&self) -> Vec<u8> {
        // A struct of strings, numbers and a JSON value always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<CloudEvent, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// A field of `data`, as a string (a convenience for consumers: `event.str("locator")`).
    pub fn str(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(serde_json::Value::as_str)
    }

    /// A field of `data`, as an integer.
    pub fn i64(&self, field: &str) -> Option<i64> {
        self.data.get(field).and_then(serde_json::Value::as_i64)
    }
}

impl From<OutboxRecord> for CloudEvent {
    fn from(record: OutboxRecord) -> CloudEvent {
        CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: record.id,
            source: record.source,
            event_type: record.event_type,
            subject: record.subject,
            time: record.occurred_at.datetime(),
            datacontenttype: "application/json".to_owned(),
            data: record.data.0,
            correlationid: record.correlation_id,
            traceparent: record.traceparent,
            sequence: record.seq,
        }
    }
}

/// The domain of an event type: the part before the first dot.
pub fn domain_of(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_as_structured_cloudevents_json() {
        let event = CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: Uuid::now_v7(),
            source: "phoenix.booking".to_owned(),
            event_type: "booking.confirmed.v1".to_owned(),
            subject: "b-1".to_owned(),
            time: time::macros::datetime!(2026-11-29 10:00:00 UTC),
            datacontenttype: "application/json".to_owned(),
            data: serde_json::json!({ "locator": "ABC123", "total_minor": 12_000 }),
            correlationid: Some("req-1".to_owned()),
            traceparent: None,
            sequence: 7,
        };
        let json: serde_json::Value = serde_json::from_slice(&event.to_bytes()).expect("json");
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "booking.confirmed.v1");
        assert_eq!(json["time"], "2026-11-29T10:00:00Z");
        assert_eq!(json["correlationid"], "req-1");
        assert!(json.get("traceparent").is_none(), "absent extensions are left out");
        assert_eq!(CloudEvent::from_bytes(&event.to_bytes()).expect("parse"), event);
        assert_eq!(event.domain(), "booking");
        assert_eq!(event.str("locator"), Some("ABC123"));
        assert_eq!(event.i64("total_minor"), Some(12_000));
    }
}
