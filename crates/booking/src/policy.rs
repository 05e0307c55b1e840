//! Booking's rules as pure functions: which status may follow which, what a cancellation refunds, and which
//! traveller type an age makes. No I/O, no clock: the caller passes `now`.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;

/// Where a booking is in its life.
///
/// ```text
/// pending -> confirmed -> completed
///    |           |
///    v           v
///  failed    cancelling -> cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created; the booking saga is holding and paying.
    Pending,
    /// Held, paid and sold.
    Confirmed,
    /// The booking saga undid everything; `failure` says why.
    Failed,
    /// A cancellation was requested; the cancellation saga is refunding and releasing.
    Cancelling,
    /// Refunded (what the policy allowed) and released.
    Cancelled,
    /// Every item has ended.
    Completed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Confirmed,
        Status::Failed,
        Status::Cancelling,
        Status::Cancelled,
        Status::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Failed => "failed",
            Status::Cancelling => "cancelling",
            Status::Cancelled => "cancelled",
            Status::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// A saga is working on the booking: callers that wait, wait for it to leave this status.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Status::Pending | Status::Cancelling)
    }

    /// Whether a booking may move from `self` to `next`. Nothing ever moves back.
    pub fn may_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Pending, Confirmed)
                | (Pending, Failed)
                | (Confirmed, Cancelling)
                | (Confirmed, Completed)
                | (Cancelling, Cancelled)
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An item's cancellation terms, as the catalog quoted them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Terms {
    pub refundable: bool,
    /// Until this instant a refundable item is refunded in full.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub free_until: Option<OffsetDateTime>,
    /// Kept from a refundable item cancelled after `free_until` (and before it starts).
    pub fee_minor: i64,
}

/// What cancelling one item refunds `now`: in full while cancellation is free; the price less the fee after that
/// until the item starts (never below 0); nothing for a non-refundable or already started item.
pub fn item_refund_minor(price_minor: i64, terms: &Terms, starts_at: OffsetDateTime, now: OffsetDateTime) -> i64 {
    let price_minor = price_minor.max(0);
    if !terms.refundable || now >= starts_at {
        return 0;
    }
    if terms.free_until.is_some_and(|free_until| now < free_until) {
        return price_minor;
    }
    price_minor.saturating_sub(terms.fee_minor.max(0)).max(0)
}

/// One item as the refund policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priced {
    pub price_minor: i64,
    pub terms: Terms,
    pub starts_at: OffsetDateTime,
}

/// What a whole cancellation refunds and keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refund {
    pub refund_minor: i64,
    /// What is kept: the paid total less the refund.
    pub fee_minor: i64,
}

/// The refund for cancelling every item `now`, never more than `paid_minor`.
pub fn refund(items: &[Priced], paid_minor: i64, now: OffsetDateTime) -> Refund {
    let paid_minor = paid_minor.max(0);
    let refund_minor = items
        .iter()
        .map(|item| item_refund_minor(item.price_minor, &item.terms, item.starts_at, now))
        .fold(0i64, i64::saturating_add)
        .min(paid_minor);
    Refund {
        refund_minor,
        fee_minor: paid_minor - refund_minor,
    }
}

/// Who a traveller is, for prices and seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TravellerType {
    /// 12 years or older on the day of travel.
    Adult,
    /// 2 to 11 years old on the day of travel.
    Child,
    /// Under 2 on the day of travel; sits on an adult's lap.
    Infant,
}

impl TravellerType {
    pub fn as_str(self) -> &'static str {
        match self {
            TravellerType::Adult => "adult",
            TravellerType::Child => "child",
            TravellerType::Infant => "infant",
        }
    }
}

/// The traveller type someone born on `date_of_birth` is on `travel_date` (airline age bands: under 2 infant,
/// under 12 child). `None` when they are not born yet.
pub fn traveller_type_on(date_of_birth: Date, travel_date: Date) -> Option<TravellerType> {
    if date_of_birth > travel_date {
        return None;
    }
    let mut age = travel_date.year() - date_of_birth.year();
    if (travel_date.month() as u8, travel_date.day()) < (date_of_birth.month() as u8, date_of_birth.day()) {
        age -= 1;
    }
    Some(match age {
        ..2 => TravellerType::Infant,
        2..12 => TravellerType::Child,
        _ => TravellerType::Adult,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn statuses_only_move_forward_along_the_lifecycle() {
        use Status::*;
        let allowed = [
            (Pending, Confirmed),
            (Pending, Failed),
            (Confirmed, Cancelling),
            (Confirmed, Completed),
            (Cancelling, Cancelled),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(from.may_become(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("PENDING"), None);
    }

    #[test]
    fn cancellation_refunds_follow_the_terms_and_the_clock() {
        let starts = datetime!(2030-06-10 14:00 UTC);
        let free = Some(datetime!(2030-06-08 14:00 UTC));
        let terms = |refundable, free_until, fee_minor| Terms {
            refundable,
            free_until,
            fee_minor,
        };
        // (case, price, terms, now, expected refund)
        let cases = [
            (
                "before the deadline refunds in full",
                10_000,
                terms(true, free, 2_500),
                datetime!(2030-06-01 0:00 UTC),
                10_000,
            ),
            (
                "after the deadline refunds less the fee",
                10_000,
                terms(true, free, 2_500),
                datetime!(2030-06-09 0:00 UTC),
                7_500,
            ),
            (
                "at the deadline the fee applies",
                10_000,
                terms(true, free, 2_500),
                datetime!(2030-06-08 14:00 UTC),
                7_500,
            ),
            (
                "a fee above the price refunds nothing",
                1_000,
                terms(true, free, 2_500),
                datetime!(2030-06-09 0:00 UTC),
                0,
            ),
            (
                "no free period charges the fee at once",
                10_000,
                terms(true, None, 1_000),
                datetime!(2030-01-01 0:00 UTC),
                9_000,
            ),
            (
                "non-refundable refunds nothing",
                10_000,
                terms(false, free, 0),
                datetime!(2030-06-01 0:00 UTC),
                0,
            ),
            (
                "a started item refunds nothing",
                10_000,
                terms(true, free, 0),
                datetime!(2030-06-10 14:00 UTC),
                0,
            ),
            (
                "a free period past the start ends at the start",
                10_000,
                terms(true, Some(datetime!(2030-07-01 0:00 UTC)), 0),
                datetime!(2030-06-11 0:00 UTC),
                0,
            ),
            (
                "a negative fee is no fee",
                10_000,
                terms(true, None, -5),
                datetime!(2030-06-01 0:00 UTC),
                10_000,
            ),
        ];
        for (case, price, terms, now, expected) in cases {
            assert_eq!(item_refund_minor(price, &terms, starts, now), expected, "{case}");
        }
    }

    #[test]
    fn a_whole_refund_sums_items_and_never_exceeds_what_was_paid() {
        let starts_at = datetime!(2030-06-10 14:00 UTC);
        let now = datetime!(2030-06-01 0:00 UTC);
        let item = |price_minor, refundable| Priced {
            price_minor,
            terms: Terms {
                refundable,
                free_until: Some(datetime!(2030-06-08 0:00 UTC)),
                fee_minor: 0,
            },
            starts_at,
        };
        let cases = [
            (vec![item(6_000, true), item(4_000, false)], 10_000, 6_000, 4_000),
            (vec![item(6_000, true), item(4_000, true)], 10_000, 10_000, 0),
            (vec![item(6_000, true), item(6_000, true)], 10_000, 10_000, 0),
            (vec![], 500, 0, 500),
        ];
        for (items, paid, refund_minor, fee_minor) in cases {
            assert_eq!(
                refund(&items, paid, now),
                Refund {
                    refund_minor,
                    fee_minor
                }
            );
        }
    }

    #[test]
    fn age_on_the_day_of_travel_makes_the_traveller_type() {
        let travel = date!(2030 - 06 - 10);
        let cases = [
            (date!(2030 - 06 - 10), Some(TravellerType::Infant)),
            (date!(2028 - 06 - 11), Some(TravellerType::Infant)),
            (date!(2028 - 06 - 10), Some(TravellerType::Child)),
            (date!(2018 - 06 - 11), Some(TravellerType::Child)),
            (date!(2018 - 06 - 10), Some(TravellerType::Adult)),
            (date!(1960 - 02 - 29), Some(TravellerType::Adult)),
            (date!(2030 - 06 - 11), None),
        ];
        for (born, expected) in cases {
            assert_eq!(traveller_type_on(born, travel), expected, "born {born}");
        }
    }
}
