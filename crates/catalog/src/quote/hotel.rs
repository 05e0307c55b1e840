//! Quoting a stay: the hotel, room type and rate plan checked together, the nights priced as search prices them.

use time::Date;

use super::*;
use crate::hotel::{RatePlan, RoomType, room_item};
use crate::search::{StayPrice, Unpriced, check_occupancy, check_stay_dates, night_counts, price_stay};
use crate::snapshot::HotelEntry;

/// A stay whose hotel, room type and rate plan are on sale and belong together. Its dates and occupancy are only
/// known valid once the whole request has passed its checks: nothing reads them before.
pub(super) struct Stay<'s> {
    entry: &'s HotelEntry,
    room: &'s RoomType,
    plan: &'s RatePlan,
    check_in: Date,
    check_out: Date,
    rooms: u32,
    guests: u32,
}

/// The stay `item` asks for, with every bad field recorded in `check` (`None` when the stay cannot be built).
pub(super) fn choose<'s>(
    snapshot: &'s Snapshot,
    item: &HotelItem,
    prefix: &str,
    now: time::OffsetDateTime,
    check: &mut Check,
) -> Option<Stay<'s>> {
    let field = |name: &str| format!("{prefix}{name}");
    let entry = snapshot.hotels.get(&item.hotel_id).filter(|e| e.hotel.active);
    // The hotel's own calendar decides what is past: a night already over there is not sold, whatever UTC says.
    let today = entry.map_or(now.date(), |e| crate::geo::today_in(&e.hotel.time_zone, now));
    check_stay_dates(check, prefix, Some(item.check_in.0), Some(item.check_out.0), today);
    check_occupancy(check, prefix, item.rooms, item.guests);
    let Some(entry) = entry else {
        check.fail(&field("hotel_id"), "no such hotel on sale");
        return None;
    };
    let room = entry.room_types.iter().find(|r| r.id == item.room_type_id && r.active);
    if room.is_none() {
        check.fail(&field("room_type_id"), "no such room type on sale in this hotel");
    }
    let plan = entry.rate_plans.iter().find(|p| p.id == item.rate_plan_id && p.active);
    match (room, plan) {
        (_, None) => check.fail(&field("rate_plan_id"), "no such rate plan on sale in this hotel"),
        (Some(r), Some(p)) if p.room_type_id != r.id => {
            check.fail(&field("rate_plan_id"), "not a rate plan of this room type")
        }
        _ => {}
    }
    // Only for a count of rooms that passed its own check: zero rooms sleep nobody, and saying so adds nothing.
    if let Some(room) = room.filter(|_| (1..=crate::pricing::MAX_ROOMS).contains(&item.rooms)) {
        let sleeps = u32::from(room.max_occupancy) * item.rooms;
        if sleeps < item.guests {
            check.fail(
                &field("guests"),
                format!("a {} sleeps at most {}", room.name, room.max_occupancy),
            );
        }
    }
    Some(Stay {
        entry,
        room: room?,
        plan: plan?,
        check_in: item.check_in.0,
        check_out: item.check_out.0,
        rooms: item.rooms,
        guests: item.guests,
    })
}

impl Stay<'_> {
    fn nights(&self) -> Vec<Date> {
        crate::hotel::nights(self.check_in, self.check_out)
    }

    /// One bucket per night of the room type, for every room booked.
    pub(super) fn lines(&self) -> Vec<InventoryLine> {
        self.nights()
            .into_iter()
            .map(|night| InventoryLine {
                item_id: room_item(self.room.id, night),
                quantity: i64::from(self.rooms),
            })
            .collect()
    }

    /// What an offer showed, if it was made for this very stay (hotel, room type, plan, dates, rooms and guests).
    pub(super) fn shown(&self, total: Money, details: OfferDetails) -> Option<Shown> {
        let OfferDetails::Hotel {
            hotel_id,
            room_type_id,
            rate_plan_id,
            check_in,
            check_out,
            rooms,
            guests,
            refundable,
            free_cancellation_hours,
            nightly_minor,
            price,
        } = details
        else {
            return None;
        };
        let same = hotel_id == self.entry.hotel.id
            && room_type_id == self.room.id
            && rate_plan_id == self.plan.id
            && check_in == Day(self.check_in)
            && check_out == Day(self.check_out)
            && rooms == self.rooms
            && guests == self.guests;
        same.then(|| Shown {
            total,
            breakdown: price,
            refundable,
            free_cancellation_hours,
            nightly_minor: nightly_minor.unwrap_or_default(),
        })
    }

    /// The stay priced as search prices it now, or at the price `shown`; `Err` when a night is closed or short, or
    /// when it cannot be priced now (a fee without an exchange rate), offer or not: search would not show it.
    pub(super) fn price(
        &self,
        snapshot: &Snapshot,
        counts: &Counted,
        shown: Option<Shown>,
        options: &crate::Options,
    ) -> Result<Result<Draft, Refusal>, Error> {
        let nightly_counts = match night_counts(self.room.id, &self.nights(), self.rooms, counts) {
            Ok(found) => found,
            Err(night) => {
                return Ok(Err(Refusal::Unavailable(format!(
                    "not {} {} of this type on sale on the night of {night}",
                    self.rooms,
                    plural(i64::from(self.rooms), "room")
                ))));
            }
        };
        let priced = price_stay(
            self.plan,
            self.check_in,
            &nightly_counts,
            self.rooms,
            self.guests,
            snapshot,
            options,
        )?;
        let now = match priced {
            Ok(now) => now,
            Err(Unpriced::NotSold) => {
                return Ok(Err(Refusal::Unavailable(
                    "the rate plan is not sold for every night of the stay".into(),
                )));
            }
            Err(Unpriced::NoRate(no_rate)) => return Ok(Err(Refusal::NoRate(no_rate.0))),
        };
        Ok(Ok(self.draft(now, shown)?))
    }

    fn draft(&self, now: StayPrice, shown: Option<Shown>) -> Result<Draft, Error> {
        let zone = crate::geo::time_zone(&self.entry.hotel.time_zone).ok_or(Error::Corrupt {
            what: "hotel time zone",
        })?;
        let first_night_now = now.nightly_minor.first().copied().unwrap_or(0);
        let shown = shown.unwrap_or_else(|| Shown {
            total: Money::new(now.price.total_minor, now.currency),
            breakdown: Some(now.price),
            refundable: self.plan.refundable,
            free_cancellation_hours: self.plan.free_cancellation_hours,
            nightly_minor: now.nightly_minor,
        });
        let terms = terms::hotel(
            shown.refundable,
            shown.free_cancellation_hours,
            self.check_in,
            zone,
            shown.nightly_minor.first().copied().unwrap_or(first_night_now),
            self.rooms,
            shown.total.amount_minor,
        )?;
        Ok(Draft {
            kind: ItemKind::Hotel,
            description: self.description(),
            lines: self.lines(),
            starts_at: terms::at_local(self.check_in, CHECK_IN_TIME, zone),
            ends_at: terms::at_local(self.check_out, CHECK_OUT_TIME, zone),
            organization_id: self.entry.hotel.organization_id,
            terms,
            shown,
        })
    }

    fn description(&self) -> String {
        let n_nights = (self.check_out - self.check_in).whole_days();
        format!(
            "{}, {} ({}): {n_nights} {} from {} to {}, {} {}, {} {}",
            self.entry.hotel.name,
            self.room.name,
            self.plan.name,
            plural(n_nights, "night"),
            self.check_in,
            self.check_out,
            self.rooms,
            plural(i64::from(self.rooms), "room"),
            self.guests,
            plural(i64::from(self.guests), "guest"),
        )
    }
}

pub(super) fn plural(n: i64, word: &str) -> String {
    if n == 1 { word.to_owned() } else { format!("{word}s") }
}
