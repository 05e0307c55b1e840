//! A booking and its parts. These types are also the API's views of them (the payment token is not among them: it
//! lives in one column until the saga takes it).

use phoenix_api::{Principal, Role};
use phoenix_catalog::model::Day;
use phoenix_catalog::quote::{Amount, Breakdown, ItemKind, QuoteItem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Locator;
use crate::orchestration::HoldLine;
use crate::policy::{Priced, Status, Terms, TravellerType};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Booking {
    pub id: Uuid,
    pub locator: Locator,
    pub status: Status,
    /// The user the booking is for.
    pub customer_id: Uuid,
    /// The booker's organization (agents and partners book for theirs).
    pub organization_id: Option<Uuid>,
    /// The user who made the booking.
    pub created_by: Uuid,
    pub currency: String,
    /// What the customer pays: the items' prices together.
    pub total_minor: i64,
    pub refunded_minor: i64,
    pub items: Vec<BookedItem>,
    pub travellers: Vec<Traveller>,
    pub contact: Contact,
    /// Set once confirmed: the inventory hold and the payment behind the booking.
    pub hold_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub failure: Option<Failure>,
    pub cancellation: Option<Cancellation>,
    /// Every status the booking had, oldest first.
    pub history: Vec<HistoryEntry>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Booking {
    /// Whether `viewer` may see (and so act on) this booking: any for support and admin; one booked for them; an
    /// organization's for its agents and partners; one of no organization for whoever made it. Having made an
    /// organization's booking gives no sight of it: an agent moved to another agency no longer sees what they booked
    /// for the first. Lists apply the same rule (`store::Scope`).
    pub fn visible_to(&self, viewer: &Principal) -> bool {
        viewer.sees_everything()
            || viewer.user_id == self.customer_id
            || match self.organization_id {
                Some(organization_id) => {
                    viewer.organization_id == Some(organization_id) && viewer.has_any(&[Role::Agent, Role::Partner])
                }
                None => viewer.user_id == self.created_by,
            }
    }

    /// The items as the refund policy reads them.
    pub fn priced_items(&self) -> Vec<Priced> {
        self.items
            .iter()
            .map(|item| Priced {
                price_minor: item.price_minor,
                terms: item.cancellation,
                starts_at: item.starts_at,
            })
            .collect()
    }

    /// Every unit to hold, one line per inventory item (an item booked twice is held once, for both).
    pub fn hold_lines(&self) -> Vec<HoldLine> {
        let mut lines: Vec<HoldLine> = Vec::new();
        for line in self.items.iter().flat_map(|item| &item.inventory_lines) {
            match lines.iter_mut().find(|l| l.item_id == line.item_id) {
                Some(existing) => existing.quantity += line.quantity,
                None => lines.push(line.clone()),
            }
        }
        lines
    }

    /// When the last item ends.
    pub fn ends_at(&self) -> OffsetDateTime {
        self.items
            .iter()
            .map(|item| item.ends_at)
            .max()
            .unwrap_or(self.created_at)
    }

    /// Whether `last_name` is any traveller's, as "manage my booking" forms compare names ([`crate::names`]):
    /// ignoring case, accents, spaces and punctuation, and taking each German umlaut or Nordic letter spelled out or
    /// not ("Mueller" finds "Müller", "OBRIEN" finds "O'Brien", "Mueller-Odegard" finds "Müller-Ødegård").
    pub fn has_traveller_named(&self, last_name: &str) -> bool {
        self.travellers
            .iter()
            .any(|t| crate::names::same_name(last_name, &t.last_name))
    }
}

/// A name as lookups compare it.
pub fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

/// One booked item: what was asked for and what the catalog quoted for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BookedItem {
    pub kind: ItemKind,
    pub description: String,
    pub price_minor: i64,
    /// How the supplier's price is made up (base, taxes, fees), in the supplier's currency.
    pub breakdown: Option<Breakdown>,
    /// The price in the supplier's currency, when the booking's currency is another.
    pub original_price: Option<Amount>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// The supplier (hotel chain or airline).
    pub organization_id: Uuid,
    pub cancellation: Terms,
    /// The inventory units the item takes.
    pub inventory_lines: Vec<HoldLine>,
    /// The item as requested.
    pub item: QuoteItem,
}

/// A traveller, as validated when the booking was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Traveller {
    /// 1 to 60 characters.
    #[schema(min_length = 1, max_length = 60)]
    pub first_name: String,
    #[schema(min_length = 1, max_length = 60)]
    pub last_name: String,
    #[serde(rename = "type")]
    pub traveller_type: TravellerType,
    /// Required for children and infants, and for everyone on a booking with a flight.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub date_of_birth: Option<Day>,
}

/// Who to tell about the booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    /// An address: one `@` between a local part and a dotted domain, at most 254 characters.
    #[schema(max_length = 254)]
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
}

/// Why a booking failed: a stable `code` (`payment_declined`, `insufficient_inventory`, ...) and words for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Failure {
    pub code: String,
    pub detail: String,
}

/// A requested cancellation: what the policy refunds for it, computed when it was requested, and once the booking is
/// cancelled, what the cancellation itself refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(from = "StoredCancellation")]
pub struct Cancellation {
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// The user who asked.
    pub requested_by: Uuid,
    pub reason: Option<String>,
    /// What this cancellation refunds. While the booking is `cancelling`: what it is to refund, the policy's
    /// refund. Once `cancelled`: what its refund returned to the card, which is less than the policy's when the
    /// payment had been partly refunded before (a goodwill refund) and only what was left could be.
    pub refund_minor: i64,
    /// What the policy refunds (everything paid when the fees are waived): the most this cancellation returns.
    pub policy_refund_minor: i64,
    /// What is kept: what was paid less the policy's refund, whatever was refunded before.
    pub fee_minor: i64,
    /// Once cancelled: what had been refunded on the booking's payment outside this cancellation (support's goodwill,
    /// say), so that this and `refund_minor` make the booking's `refunded_minor` at that moment. `null` while
    /// cancelling, and for cancellations recorded before it was (their `refund_minor` is the policy's).
    #[serde(default)]
    pub refunded_before_minor: Option<i64>,
    /// Support or an admin waived the terms: everything paid is refunded.
    #[serde(default)]
    pub fees_waived: bool,
}

/// A cancellation as stored, or as an older booking service wrote it: one from before `policy_refund_minor` has
/// only `refund_minor`, which was the policy's.
#[derive(Deserialize)]
struct StoredCancellation {
    #[serde(with = "time::serde::rfc3339")]
    requested_at: OffsetDateTime,
    requested_by: Uuid,
    reason: Option<String>,
    refund_minor: i64,
    #[serde(default)]
    policy_refund_minor: Option<i64>,
    fee_minor: i64,
    #[serde(default)]
    refunded_before_minor: Option<i64>,
    #[serde(default)]
    fees_waived: bool,
}

impl From<StoredCancellation> for Cancellation {
    fn from(stored: StoredCancellation) -> Cancellation {
        Cancellation {
            requested_at: stored.requested_at,
            requested_by: stored.requested_by,
            reason: stored.reason,
            refund_minor: stored.refund_minor,
            policy_refund_minor: stored.policy_refund_minor.unwrap_or(stored.refund_minor),
            fee_minor: stored.fee_minor,
            refunded_before_minor: stored.refunded_before_minor,
            fees_waived: stored.fees_waived,
        }
    }
}

/// One status the booking had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who moved it there (none for the platform's own sweeps).
    pub actor_id: Option<Uuid>,
    pub reason: Option<String>,
}
