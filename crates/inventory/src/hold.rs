use phoenix_db::{Event, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::item::ItemId;
use crate::{Error, SOURCE};

/// Where a hold is in its life. `held` is the only state that can change; the others are final, except that a
/// `confirmed` hold may still be `released` (a cancelled booking returns its units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Held,
    Confirmed,
    Released,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Held => "held",
            Status::Confirmed => "confirmed",
            Status::Released => "released",
            Status::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "held" => Some(Status::Held),
            "confirmed" => Some(Status::Confirmed),
            "released" => Some(Status::Released),
            "expired" => Some(Status::Expired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Line {
    pub item_id: ItemId,
    pub quantity: i64,
}

/// A hold: units of one or more items, reserved together until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: Uuid,
    pub holder_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub reference: Option<String>,
    pub status: Status,
    pub lines: Vec<Line>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// When it was confirmed, released or expired (the last of these).
    pub closed_at: Option<Timestamp>,
    /// Made by a service on a client's behalf (the booking saga): confirmed and released only through that service,
    /// never over the public API, so a booking's units cannot go back on sale while the booking stands.
    pub managed: bool,
}

impl Hold {
    /// Held and past its expiry: it no longer counts, whether or not the sweeper has marked it yet.
    pub fn is_lapsed(&self, now: Timestamp) -> bool {
        self.status == Status::Held && self.expires_at <= now
    }

    /// `inventory.hold_created.v1`, the one shape of it wherever a hold is taken (the engine, the baseline).
    pub(crate) fn created_event(&self) -> Result<Event, Error> {
        let expires_at = time::serde::rfc3339::serialize(&self.expires_at.datetime(), serde_json::value::Serializer)
            .map_err(phoenix_db::Error::EncodeEvent)?;
        let data = serde_json::json!({
            "hold_id": self.id, "holder_id": self.holder_id, "lines": lines_json(&self.lines),
            "expires_at": expires_at, "reference": self.reference,
        });
        self.event("inventory.hold_created.v1", &data)
    }

    /// An event about this hold: its subject is the hold, its correlation id the hold's `reference` (the booking id
    /// for the saga's holds), so a booking flow's events can be found together.
    pub(crate) fn event(&self, event_type: &'static str, data: &serde_json::Value) -> Result<Event, Error> {
        let event = Event::new(SOURCE, event_type, self.id.to_string(), data)?;
        Ok(event.with_correlation_id(self.reference.clone()))
    }
}

pub(crate) fn lines_json(lines: &[Line]) -> serde_json::Value {
    lines
        .iter()
        .map(|l| serde_json::json!({"item_id": l.item_id, "quantity": l.quantity}))
        .collect()
}

/// Limits on what one hold may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_lines: usize,
    pub max_quantity: i64,
    pub min_ttl_secs: u64,
    pub max_ttl_secs: u64,
    pub default_ttl_secs: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_lines: 20,
            max_quantity: 1_000,
            min_ttl_secs: 10,
            max_ttl_secs: 3_600,
            default_ttl_secs: 900,
        }
    }
}

/// A request for a hold, parsed and within limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub lines: Vec<Line>,
    pub ttl_secs: u64,
    pub reference: Option<String>,
    pub holder_id: Uuid,
    pub organization_id: Option<Uuid>,
    /// See [`Hold::managed`].
    pub managed: bool,
}

/// A field of a hold request that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl NewHold {
    /// Checks every line and the TTL; reports all that is wrong, field by field.
    pub fn parse(
        lines: &[(String, i64)],
        ttl_secs: Option<u64>,
        reference: Option<String>,
        holder_id: Uuid,
        organization_id: Option<Uuid>,
        limits: &Limits,
    ) -> Result<NewHold, Vec<Invalid>> {
        let mut errors = Vec::new();
        let mut invalid = |field: String, message: String| errors.push(Invalid { field, message });
        if lines.is_empty() {
            invalid("lines".into(), "must hold at least one item".into());
        }
        if lines.len() > limits.max_lines {
            invalid("lines".into(), format!("at most {} lines", limits.max_lines));
        }
        let mut parsed: Vec<Line> = Vec::with_capacity(lines.len());
        for (i, (item, quantity)) in lines.iter().enumerate() {
            let item_id = match ItemId::parse(item) {
                Ok(id) => Some(id),
                Err(e) => {
                    invalid(format!("lines[{i}].item_id"), e.to_string());
                    None
                }
            };
            if !(1..=limits.max_quantity).contains(quantity) {
                invalid(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {}", limits.max_quantity),
                );
            }
            if let Some(item_id) = item_id {
                if parsed.iter().any(|l| l.item_id == item_id) {
                    invalid(
                        format!("lines[{i}].item_id"),
                        "appears twice: put the whole quantity on one line".into(),
                    );
                } else {
                    parsed.push(Line {
                        item_id,
                        quantity: *quantity,
                    });
                }
            }
        }
        let ttl_secs = ttl_secs.unwrap_or(limits.default_ttl_secs);
        if !(limits.min_ttl_secs..=limits.max_ttl_secs).contains(&ttl_secs) {
            invalid(
                "ttl_secs".into(),
                format!("must be between {} and {}", limits.min_ttl_secs, limits.max_ttl_secs),
            );
        }
        if let Some(reference) = &reference
            && (reference.is_empty() || reference.chars().count() > 128 || reference.chars().any(char::is_control))
        {
            invalid("reference".into(), "1 to 128 printable characters".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NewHold {
            lines: parsed,
            ttl_secs,
            reference,
            holder_id,
            organization_id,
            managed: false,
        })
    }

    /// A digest of what was asked, to tell a retry from a different request under the same idempotency key.
    pub fn fingerprint(&self) -> Vec<u8> {
        let mut lines: Vec<(&str, i64)> = self.lines.iter().map(|l| (l.item_id.as_str(), l.quantity)).collect();
        lines.sort_unstable();
        let canonical = serde_json::json!({
            "lines": lines,
            "ttl_secs": self.ttl_secs,
            "reference": self.reference,
        });
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.to_string().as_bytes())
            .as_ref()
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[(&str, i64)], ttl: Option<u64>) -> Result<NewHold, Vec<Invalid>> {
        let lines: Vec<(String, i64)> = lines.iter().map(|(i, q)| (i.to_string(), *q)).collect();
        NewHold::parse(&lines, ttl, None, Uuid::nil(), None, &Limits::default())
    }

    #[test]
    fn validation_table() {
        let fields = |r: Result<NewHold, Vec<Invalid>>| -> Vec<String> {
            r.err().unwrap_or_default().into_iter().map(|e| e.field).collect()
        };
        assert!(parse(&[("a", 1), ("b", 1000)], None).is_ok());
        assert_eq!(parse(&[("a", 1)], None).unwrap().ttl_secs, 900);
        assert_eq!(fields(parse(&[], None)), vec!["lines"]);
        assert_eq!(fields(parse(&[("a", 0)], None)), vec!["lines[0].quantity"]);
        assert_eq!(fields(parse(&[("a", -3)], None)), vec!["lines[0].quantity"]);
        assert_eq!(fields(parse(&[("a", 1_000_001)], None)), vec!["lines[0].quantity"]);
        assert_eq!(fields(parse(&[("a b", 1)], None)), vec!["lines[0].item_id"]);
        assert_eq!(fields(parse(&[("a", 1), ("a", 2)], None)), vec!["lines[1].item_id"]);
        assert_eq!(fields(parse(&[("a", 1)], Some(5))), vec!["ttl_secs"]);
        assert_eq!(fields(parse(&[("a", 1)], Some(86_400))), vec!["ttl_secs"]);
        let many: Vec<(String, i64)> = (0..21).map(|i| (format!("i{i}"), 1)).collect();
        let many: Vec<(&str, i64)> = many.iter().map(|(i, q)| (i.as_str(), *q)).collect();
        assert_eq!(fields(parse(&many, None)), vec!["lines"]);
    }

    #[test]
    fn fingerprint_ignores_line_order_but_not_quantities() {
        let a = parse(&[("a", 1), ("b", 2)], None).unwrap();
        let b = parse(&[("b", 2), ("a", 1)], None).unwrap();
        let c = parse(&[("a", 1), ("b", 3)], None).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
