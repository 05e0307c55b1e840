//! Cancellation terms and the times a stay starts and ends: pure rules, tested table-driven.
//!
//! Hotels count in their own time zone: a stay starts at [`CHECK_IN_TIME`] on the check-in day and free
//! cancellation ends `free_cancellation_hours` earlier on the hotel's clock, so "48 hours before check-in" is 15:00
//! two days before arrival even when the clocks change in between. Flights count from the first departure.

use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time};

use crate::Error;
use crate::flight::to_utc;
use crate::pricing;

/// When a stay starts, at the hotel.
pub const CHECK_IN_TIME: Time = time::macros::time!(15:00);
/// When a stay ends, at the hotel.
pub const CHECK_OUT_TIME: Time = time::macros::time!(11:00);
/// How long before the first departure a refundable itinerary can be cancelled for free.
pub const FLIGHT_FREE_CANCELLATION: Duration = Duration::hours(24);

/// What cancelling an item returns; `fee_minor` is in the currency of the item's price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    pub refundable: bool,
    pub free_until: Option<OffsetDateTime>,
    pub fee_minor: i64,
}

impl Terms {
    /// Nothing is returned, ever: the whole price is kept.
    fn non_refundable(total_minor: i64) -> Terms {
        Terms {
            refundable: false,
            free_until: None,
            fee_minor: total_minor,
        }
    }
}

/// A date and wall-clock time in `zone`, as a UTC instant (a time in a daylight-saving gap moves forward by the
/// gap, as clocks do).
pub fn at_local(date: Date, time: Time, zone: &time_tz::Tz) -> OffsetDateTime {
    to_utc(PrimitiveDateTime::new(date, time), zone)
}

/// A stay's terms. Refundable: free until check-in less `free_cancellation_hours` on the hotel's clock (none given:
/// until check-in), then one night's price of the rooms booked (the first night's, at most the whole price).
pub fn hotel(
    refundable: bool,
    free_cancellation_hours: Option<u32>,
    check_in: Date,
    zone: &time_tz::Tz,
    first_night_minor: i64,
    rooms: u32,
    total_minor: i64,
) -> Result<Terms, Error> {
    if !refundable {
        return Ok(Terms::non_refundable(total_minor));
    }
    let hours = Duration::hours(i64::from(free_cancellation_hours.unwrap_or(0)));
    let deadline = PrimitiveDateTime::new(check_in, CHECK_IN_TIME).saturating_sub(hours);
    let night_minor = first_night_minor
        .checked_mul(i64::from(rooms))
        .ok_or(Error::Corrupt { what: "price" })?;
    Ok(Terms {
        refundable: true,
        free_until: Some(to_utc(deadline, zone)),
        fee_minor: night_minor.clamp(0, total_minor.max(0)),
    })
}

/// An itinerary's terms. Refundable: free until [`FLIGHT_FREE_CANCELLATION`] before the first departure, then
/// `fee_bp` of the price.
pub fn flight(
    refundable: bool,
    first_departure: OffsetDateTime,
    total_minor: i64,
    fee_bp: u32,
) -> Result<Terms, Error> {
    if !refundable {
        return Ok(Terms::non_refundable(total_minor));
    }
    let fee_minor = pricing::share_bp(total_minor, fee_bp).map_err(|error| {
        tracing::error!(%error, "cancellation fee failed");
        Error::Corrupt { what: "price" }
    })?;
    Ok(Terms {
        refundable: true,
        free_until: Some(first_departure - FLIGHT_FREE_CANCELLATION),
        fee_minor,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn paris() -> &'static time_tz::Tz {
        crate::geo::time_zone("Europe/Paris").unwrap()
    }

    #[test]
    fn hotel_deadlines_count_on_the_hotels_clock() {
        // Paris moves clocks forward on 2026-03-29 and back on 2026-10-25.
        let cases = [
            // (check-in, hours, free until)
            (date!(2026 - 01 - 15), 48, datetime!(2026-01-13 14:00 UTC)),
            (date!(2026 - 07 - 15), 48, datetime!(2026-07-13 13:00 UTC)),
            // Check-in after the spring change (15:00 CEST = 13:00 UTC), deadline before it (15:00 CET = 14:00 UTC).
            (date!(2026 - 03 - 30), 48, datetime!(2026-03-28 14:00 UTC)),
            // Check-in after the autumn change (15:00 CET), deadline before it (15:00 CEST).
            (date!(2026 - 10 - 26), 48, datetime!(2026-10-24 13:00 UTC)),
            (date!(2026 - 07 - 15), 0, datetime!(2026-07-15 13:00 UTC)),
            (date!(2026 - 07 - 15), 3, datetime!(2026-07-15 10:00 UTC)),
            // 15:00 less 12 hours is 03:00 CEST on the day clocks change; less 13 hours is 02:00, a time that does
            // not exist there, which moves forward to 03:00 CEST as well.
            (date!(2026 - 03 - 29), 12, datetime!(2026-03-29 01:00 UTC)),
            (date!(2026 - 03 - 29), 13, datetime!(2026-03-29 01:00 UTC)),
        ];
        for (check_in, hours, expected) in cases {
            let terms = hotel(true, Some(hours), check_in, paris(), 10_000, 1, 30_000).unwrap();
            assert_eq!(terms.free_until, Some(expected), "{check_in} less {hours} h");
        }
        let none = hotel(true, None, date!(2026 - 07 - 15), paris(), 10_000, 1, 30_000).unwrap();
        assert_eq!(
            none.free_until,
            Some(datetime!(2026-07-15 13:00 UTC)),
            "no hours: until check-in"
        );
    }

    #[test]
    fn hotel_fee_is_one_night_of_the_rooms_and_never_above_the_price() {
        let cases = [
            // (first night, rooms, total, fee)
            (10_000, 1, 30_000, 10_000),
            (10_000, 2, 60_000, 20_000),
            (10_000, 3, 25_000, 25_000),
            (0, 2, 1_000, 0),
        ];
        for (night, rooms, total, fee) in cases {
            let terms = hotel(true, Some(24), date!(2026 - 07 - 15), paris(), night, rooms, total).unwrap();
            assert_eq!(terms.fee_minor, fee, "{rooms} rooms at {night}");
            assert!(terms.refundable);
        }
    }

    #[test]
    fn non_refundable_keeps_everything() {
        let stay = hotel(false, Some(48), date!(2026 - 07 - 15), paris(), 10_000, 1, 30_000).unwrap();
        let trip = flight(false, datetime!(2026-07-15 08:00 UTC), 45_000, 2_000).unwrap();
        for (terms, total) in [(stay, 30_000), (trip, 45_000)] {
            assert_eq!(
                terms,
                Terms {
                    refundable: false,
                    free_until: None,
                    fee_minor: total
                }
            );
        }
    }

    #[test]
    fn flight_terms_end_a_day_before_departure_and_keep_a_share() {
        let cases = [
            (45_000, 2_000, 9_000),
            (12_345, 2_000, 2_469),
            (12_345, 0, 0),
            (12_345, 10_000, 12_345),
        ];
        for (total, bp, fee) in cases {
            let terms = flight(true, datetime!(2026-03-29 06:30 UTC), total, bp).unwrap();
            assert_eq!(terms.fee_minor, fee, "{bp} bp of {total}");
            assert_eq!(terms.free_until, Some(datetime!(2026-03-28 06:30 UTC)));
        }
        assert!(flight(true, datetime!(2026-03-29 06:30 UTC), 100, 10_001).is_err());
    }

    #[test]
    fn stays_start_and_end_at_local_hours() {
        assert_eq!(
            at_local(date!(2026 - 03 - 30), CHECK_IN_TIME, paris()),
            datetime!(2026-03-30 13:00 UTC)
        );
        assert_eq!(
            at_local(date!(2026 - 01 - 02), CHECK_OUT_TIME, paris()),
            datetime!(2026-01-02 10:00 UTC)
        );
    }
}
