//! What search and quotes share about a stay: the checks on its dates and occupancy, the counters of its nights,
//! and its price. A quote prices with these very functions, so it equals what search shows for the same choice.

use super::*;

/// The dates of a stay, for search and quotes alike: check-in from today up to [`MAX_DAYS_AHEAD`], check-out after
/// it and at most [`MAX_NIGHTS`] later. `prefix` goes before each field name (`items[0].`).
pub(crate) fn check_stay_dates(
    check: &mut Check,
    prefix: &str,
    check_in: Option<time::Date>,
    check_out: Option<time::Date>,
    today: time::Date,
) {
    let field = |name: &str| format!("{prefix}{name}");
    match check_in {
        None => check.fail(&field("check_in"), "required"),
        Some(d) if d < today => check.fail(&field("check_in"), "must not be in the past"),
        Some(d) if (d - today).whole_days() > MAX_DAYS_AHEAD => {
            check.fail(&field("check_in"), format!("at most {MAX_DAYS_AHEAD} days ahead"))
        }
        Some(_) => {}
    }
    match (check_in, check_out) {
        (_, None) => check.fail(&field("check_out"), "required"),
        (Some(i), Some(o)) if o <= i => check.fail(&field("check_out"), "must be after check_in"),
        (Some(i), Some(o)) if (o - i).whole_days() > MAX_NIGHTS => {
            check.fail(&field("check_out"), format!("a stay has at most {MAX_NIGHTS} nights"))
        }
        _ => {}
    }
}

/// Rooms and guests of a stay: 1 to 9 rooms, 1 to 36 guests, at least one guest per room.
pub(crate) fn check_occupancy(check: &mut Check, prefix: &str, rooms: u32, guests: u32) {
    check.range(&format!("{prefix}rooms"), rooms, 1, pricing::MAX_ROOMS);
    check.range(&format!("{prefix}guests"), guests, 1, pricing::MAX_GUESTS);
    if rooms > guests {
        check.fail(&format!("{prefix}rooms"), "at least one guest per room");
    }
}

/// The counters of every night of a stay when each has `rooms` rooms of the type left; else the first night that
/// does not (sold out, closed, or without a bucket).
pub(crate) fn night_counts(
    room_type_id: Uuid,
    nights: &[time::Date],
    rooms: u32,
    counts: &Counted,
) -> Result<Vec<Counts>, time::Date> {
    let mut found = Vec::with_capacity(nights.len());
    let mut item = String::with_capacity(64);
    for night in nights {
        item.clear();
        hotel::write_room_item(&mut item, room_type_id, *night);
        match counts.get(&item) {
            Some(c) if c.available() >= i64::from(rooms) => found.push(c),
            _ => return Err(*night),
        }
    }
    Ok(found)
}

/// A stay priced with a rate plan: one room's price each night (after dynamic pricing) and the stay's breakdown.
pub(crate) struct StayPrice {
    pub nightly_minor: Vec<i64>,
    pub price: PriceBreakdown,
    pub currency: Currency,
}

/// Why a stay has no price now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unpriced {
    /// A night without a price, or a plan in a currency the catalog does not know: the plan is not on sale.
    NotSold,
    /// A fixed fee that applies has no exchange rate into the plan's currency.
    NoRate(NoRate),
}

/// Prices a stay starting `check_in` with `plan`, each night at the load of its counters, its fixed fees converted
/// at the snapshot's exchange rates, for search and quotes alike.
pub(crate) fn price_stay(
    plan: &hotel::RatePlan,
    check_in: time::Date,
    nightly_counts: &[Counts],
    rooms: u32,
    guests: u32,
    snapshot: &Snapshot,
    options: &crate::Options,
) -> Result<Result<StayPrice, Unpriced>, Error> {
    let Some(base) = plan.nightly(check_in, nightly_counts.len() as u32) else {
        return Ok(Err(Unpriced::NotSold));
    };
    let Ok(currency) = Currency::parse(&plan.currency) else {
        return Ok(Err(Unpriced::NotSold));
    };
    let mut nightly_minor = Vec::with_capacity(base.len());
    for (price, c) in base.iter().zip(nightly_counts) {
        nightly_minor.push(
            options
                .dynamic_pricing
                .apply(*price, c.committed, c.capacity)
                .map_err(pricing_error)?,
        );
    }
    let price = pricing::stay_total(&nightly_minor, rooms, guests, &options.fees, currency, |from| {
        fx_rate(snapshot, from, currency)
    });
    let price = match priced(price)? {
        Ok(price) => price,
        Err(no_rate) => return Ok(Err(Unpriced::NoRate(no_rate))),
    };
    Ok(Ok(StayPrice {
        nightly_minor,
        price,
        currency,
    }))
}
