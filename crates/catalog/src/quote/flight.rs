//! Quoting an itinerary: its legs checked to connect, each in the cabin and fare class asked, priced as search
//! prices them.

use super::*;
use crate::flight::FareClass;
use crate::search::{
    MAX_CONNECTION, MAX_DAYS_AHEAD, MIN_CONNECTION, check_passengers, connects, fare_price, itinerary_price,
};
use crate::snapshot::DepartureEntry;
use crate::store::Airline;

/// Longest departure id echoed back in an error.
const MAX_ECHOED_CHARS: usize = 40;

/// An itinerary whose legs exist, each with the cabin and fare class asked. Whether they connect and how many
/// passengers fly are only known valid once the whole request has passed its checks.
pub(super) struct Trip<'s> {
    legs: Vec<Leg<'s>>,
    cabin: Cabin,
    passengers: Passengers,
    /// The first leg's airline, which supplies the itinerary.
    airline: Option<&'s Airline>,
}

struct Leg<'s> {
    entry: &'s DepartureEntry,
    fare: &'s FareClass,
}

/// The itinerary `item` asks for, with every bad field recorded in `check` (`None` when it cannot be built).
pub(super) fn choose<'s>(
    snapshot: &'s Snapshot,
    item: &FlightItem,
    prefix: &str,
    now: OffsetDateTime,
    check: &mut Check,
) -> Option<Trip<'s>> {
    let field = |name: &str| format!("{prefix}{name}");
    check_passengers(check, &field("passengers"), &field("passengers."), &item.passengers);
    let n_legs = item.departure_ids.len();
    if !(1..=MAX_LEGS).contains(&n_legs) {
        check.fail(&field("departure_ids"), "one leg, or two for a connection");
        return None;
    }
    if item.fare_codes.len() != n_legs {
        check.fail(&field("fare_codes"), "one fare code per leg");
        return None;
    }
    let legs = legs(snapshot, item, prefix, check)?;
    check_route(check, prefix, &legs, now);
    Some(Trip {
        airline: snapshot.airlines.get(&legs[0].entry.departure.airline),
        legs,
        cabin: item.cabin,
        passengers: item.passengers,
    })
}

/// The legs asked: each departure, in the cabin asked, in the fare class asked. A missing cabin is named once,
/// however many legs lack it.
fn legs<'s>(snapshot: &'s Snapshot, item: &FlightItem, prefix: &str, check: &mut Check) -> Option<Vec<Leg<'s>>> {
    let mut entries = Vec::with_capacity(item.departure_ids.len());
    for (leg_idx, id) in item.departure_ids.iter().enumerate() {
        match snapshot.departures.get(id) {
            Some(entry) => entries.push(entry.as_ref()),
            None => {
                let shown: String = id.chars().take(MAX_ECHOED_CHARS).collect();
                check.fail(
                    &format!("{prefix}departure_ids[{leg_idx}]"),
                    format!("no such departure {shown}"),
                );
            }
        }
    }
    if entries.len() != item.departure_ids.len() {
        return None;
    }
    let cabin = item.cabin;
    let plans: Vec<_> = entries
        .iter()
        .map(|e| e.schedule.cabins.iter().find(|c| c.cabin == cabin))
        .collect();
    if let Some(leg_idx) = plans.iter().position(Option::is_none) {
        let flight_number = &entries[leg_idx].departure.flight_number;
        check.fail(
            &format!("{prefix}cabin"),
            format!("{flight_number} has no {} cabin", cabin.as_str()),
        );
        return None;
    }
    let mut legs = Vec::with_capacity(entries.len());
    for (leg_idx, ((entry, plan), code)) in entries.into_iter().zip(plans).zip(&item.fare_codes).enumerate() {
        match plan.and_then(|p| p.fares.iter().find(|f| f.code == *code)) {
            Some(fare) => legs.push(Leg { entry, fare }),
            None => check.fail(
                &format!("{prefix}fare_codes[{leg_idx}]"),
                format!(
                    "not a fare class of the {} cabin of {}",
                    cabin.as_str(),
                    entry.departure.flight_number
                ),
            ),
        }
    }
    (legs.len() == item.departure_ids.len()).then_some(legs)
}

/// The legs make one itinerary, one way, still to leave, sold in one currency.
fn check_route(check: &mut Check, prefix: &str, legs: &[Leg<'_>], now: OffsetDateTime) {
    let field = |name: &str| format!("{prefix}{name}");
    let first = &legs[0].entry.departure;
    let last = &legs[legs.len() - 1].entry.departure;
    if first.departs_at <= now {
        check.fail(&field("departure_ids[0]"), "has already left");
    } else if (first.local_date - now.date()).whole_days() > MAX_DAYS_AHEAD {
        check.fail(
            &field("departure_ids[0]"),
            format!("at most {MAX_DAYS_AHEAD} days ahead"),
        );
    }
    let mut connected = true;
    for (leg_idx, pair) in legs.windows(2).enumerate() {
        if !connects(&pair[0].entry.departure, &pair[1].entry.departure) {
            connected = false;
            check.fail(
                &field(&format!("departure_ids[{}]", leg_idx + 1)),
                format!(
                    "does not connect: it must leave from where the previous leg lands, {} minutes to {} hours after",
                    MIN_CONNECTION.whole_minutes(),
                    MAX_CONNECTION.whole_hours()
                ),
            );
        }
    }
    // Only legs that connect make a trip that can come back where it started.
    if connected && legs.len() > 1 && last.destination == first.origin {
        check.fail(
            &field("departure_ids"),
            "an itinerary goes one way: quote the way back as another item",
        );
    }
    let currency = &legs[0].entry.schedule.currency;
    if legs.iter().any(|l| l.entry.schedule.currency != *currency) {
        check.fail(
            &field("departure_ids"),
            "legs sold in different currencies are not one itinerary",
        );
    }
}

impl Trip<'_> {
    /// On every leg: the cabin's bucket and the fare class's, one unit per seated passenger.
    pub(super) fn lines(&self) -> Vec<InventoryLine> {
        let seats = self.passengers.seats();
        let mut lines = Vec::with_capacity(self.legs.len() * 2);
        for leg in &self.legs {
            let departure = &leg.entry.departure;
            for item_id in [departure.seat_item(self.cabin), departure.fare_item(&leg.fare.code)] {
                lines.push(InventoryLine {
                    item_id,
                    quantity: seats,
                });
            }
        }
        lines
    }

    /// What an offer showed, if it was made for this very itinerary (legs, cabin, fares and passengers).
    pub(super) fn shown(&self, total: Money, details: OfferDetails) -> Option<Shown> {
        let OfferDetails::Flight {
            departure_ids,
            cabin,
            fare_codes,
            passengers,
            refundable,
            price,
        } = details
        else {
            return None;
        };
        let same = departure_ids.iter().eq(self.legs.iter().map(|l| &l.entry.departure.id))
            && fare_codes.iter().eq(self.legs.iter().map(|l| &l.fare.code))
            && cabin == self.cabin
            && passengers == self.passengers;
        same.then_some(Shown {
            total,
            breakdown: price,
            refundable,
            free_cancellation_hours: None,
            nightly_minor: Vec::new(),
        })
    }

    /// The itinerary priced as search prices it now, or at the price `shown`; `Err` when a leg is short of seats,
    /// or when it cannot be priced now (a fee without an exchange rate), offer or not: search would not show it.
    pub(super) fn price(
        &self,
        snapshot: &Snapshot,
        counts: &Counted,
        shown: Option<Shown>,
        options: &crate::Options,
    ) -> Result<Result<Draft, Refusal>, Error> {
        let seats = self.passengers.seats();
        let mut fares = Vec::with_capacity(self.legs.len());
        for leg in &self.legs {
            let departure = &leg.entry.departure;
            let cabin = counts.get(&departure.seat_item(self.cabin));
            let fare = counts.get(&departure.fare_item(&leg.fare.code));
            match (cabin, fare) {
                // As search counts it: a fare class has room for the seats it and its cabin both have left.
                (Some(c), Some(f)) if c.available().min(f.available()) >= seats => {
                    fares.push(fare_price(leg.fare, c, options)?)
                }
                _ => {
                    return Ok(Err(Refusal::Unavailable(format!(
                        "not {seats} {} left in fare class {} on {}",
                        hotel::plural(seats, "seat"),
                        leg.fare.code,
                        departure.id
                    ))));
                }
            }
        }
        // Every leg is sold in this one currency (`check_route`).
        let currency =
            Currency::parse(&self.legs[0].entry.schedule.currency).map_err(|_| Error::Corrupt { what: "currency" })?;
        let now = match itinerary_price(&fares, &self.passengers, currency, snapshot, options)? {
            Ok(now) => now,
            Err(no_rate) => return Ok(Err(Refusal::NoRate(no_rate.0))),
        };
        Ok(Ok(self.draft(now, currency, shown, options)?))
    }

    fn draft(
        &self,
        now: PriceBreakdown,
        currency: Currency,
        shown: Option<Shown>,
        options: &crate::Options,
    ) -> Result<Draft, Error> {
        let airline = self.airline.ok_or(Error::Corrupt { what: "airline" })?;
        let shown = shown.unwrap_or_else(|| Shown {
            total: Money::new(now.total_minor, currency),
            breakdown: Some(now),
            refundable: self.legs.iter().all(|l| l.fare.refundable),
            free_cancellation_hours: None,
            nightly_minor: Vec::new(),
        });
        let first = &self.legs[0].entry.departure;
        let last = &self.legs[self.legs.len() - 1].entry.departure;
        let terms = terms::flight(
            shown.refundable,
            first.departs_at,
            shown.total.amount_minor,
            options.flight_cancellation_fee_bp,
        )?;
        Ok(Draft {
            kind: ItemKind::Flight,
            description: self.description(),
            lines: self.lines(),
            starts_at: first.departs_at,
            ends_at: last.arrives_at,
            organization_id: airline.organization_id,
            terms,
            shown,
        })
    }

    fn description(&self) -> String {
        let numbers: Vec<&str> = self
            .legs
            .iter()
            .map(|l| l.entry.departure.flight_number.as_str())
            .collect();
        let mut route: Vec<&str> = vec![self.legs[0].entry.departure.origin.as_str()];
        route.extend(self.legs.iter().map(|l| l.entry.departure.destination.as_str()));
        let n_passengers = i64::from(self.passengers.adults)
            + i64::from(self.passengers.children)
            + i64::from(self.passengers.infants);
        format!(
            "{} {} on {}, {}, {n_passengers} {}",
            numbers.join(" + "),
            route.join("-"),
            self.legs[0].entry.departure.local_date,
            self.cabin.as_str().replace('_', " "),
            hotel::plural(n_passengers, "passenger"),
        )
    }
}
