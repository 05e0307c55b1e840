//! What search and quotes share about an itinerary: the checks on its passengers, the connection rule, and its
//! price. A quote prices with these very functions, so it equals what search shows for the same choice.

use super::*;

/// Passengers of an itinerary: 1 to 9 in all, at least one seated, an adult for each infant's lap. `total_field`
/// names the whole (`passengers`); `prefix` goes before the names of its members (`items[0].passengers.`).
pub(crate) fn check_passengers(check: &mut Check, total_field: &str, prefix: &str, passengers: &Passengers) {
    let Passengers {
        adults,
        children,
        infants,
    } = *passengers;
    let total = u64::from(adults) + u64::from(children) + u64::from(infants);
    if total == 0 || total > u64::from(pricing::MAX_TRAVELLERS) {
        check.fail(
            total_field,
            format!("1 to {} passengers in all", pricing::MAX_TRAVELLERS),
        );
    }
    if infants > adults {
        check.fail(&format!("{prefix}infants"), "each infant sits on an adult's lap");
    }
    if u64::from(adults) + u64::from(children) == 0 && total > 0 {
        check.fail(&format!("{prefix}adults"), "at least one passenger needs a seat");
    }
}

/// Whether `next` can follow `leg` in one itinerary: it leaves the airport `leg` lands at, within the connection
/// window.
pub(crate) fn connects(leg: &crate::flight::Departure, next: &crate::flight::Departure) -> bool {
    let gap = next.departs_at - leg.arrives_at;
    leg.destination == next.origin && (MIN_CONNECTION..=MAX_CONNECTION).contains(&gap)
}

/// An adult's fare in a cabin at its current load (dynamic pricing follows the cabin, not the fare class).
pub(crate) fn fare_price(fare: &FareClass, cabin: Counts, options: &crate::Options) -> Result<i64, Error> {
    options
        .dynamic_pricing
        .apply(fare.price_minor, cabin.committed, cabin.capacity)
        .map_err(pricing_error)
}

/// An itinerary's price in `currency` from the adult fare of each leg, for every passenger, with the flight fees
/// (fixed ones converted at the snapshot's exchange rates).
pub(crate) fn itinerary_price(
    fare_prices: &[i64],
    passengers: &Passengers,
    currency: Currency,
    snapshot: &Snapshot,
    options: &crate::Options,
) -> Result<Result<PriceBreakdown, NoRate>, Error> {
    priced(pricing::itinerary_total(
        fare_prices,
        &passengers.travellers(),
        &options.traveller_pricing,
        &options.fees,
        currency,
        |from| fx_rate(snapshot, from, currency),
    ))
}
