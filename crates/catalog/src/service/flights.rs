//! Managing flights: schedules, the departures materialized from them and their buckets.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::availability::Counts;

impl Catalog {
    fn schedule_from(&self, id: Uuid, input: &ScheduleInput, check: &mut Check) -> Option<Schedule> {
        let departure_time = crate::store::parse_time(&input.departure_time);
        if departure_time.is_none() {
            check.fail("departure_time", "must be a local time as HH:MM");
        }
        let mut days = [false; 7];
        for (i, day) in input.days.iter().enumerate() {
            match usize::from(*day).checked_sub(1).filter(|d| *d < 7) {
                Some(d) if days[d] => check.fail(&format!("days[{i}]"), "each weekday once"),
                Some(d) => days[d] = true,
                None => check.fail(&format!("days[{i}]"), "ISO weekdays are 1 (Monday) to 7 (Sunday)"),
            }
        }
        if !input.flight_number.starts_with(&input.airline)
            || !(3..=6).contains(&input.flight_number.len())
            || !input.flight_number[input.airline.len().min(input.flight_number.len())..]
                .bytes()
                .all(|b| b.is_ascii_digit())
        {
            check.fail("flight_number", "must be the airline's code followed by 1 to 4 digits");
        }
        if Currency::parse(&input.currency).is_err() {
            check.fail("currency", "must be an ISO 4217 code");
        }
        let schedule = Schedule {
            id,
            airline: input.airline.clone(),
            flight_number: input.flight_number.clone(),
            origin: input.origin.clone(),
            destination: input.destination.clone(),
            departure_time: departure_time.unwrap_or(Time::MIDNIGHT),
            duration_minutes: input.duration_minutes,
            days,
            effective_from: input.effective_from.0,
            effective_to: input.effective_to.0,
            currency: input.currency.clone(),
            cabins: input.cabins.clone(),
        };
        let snapshot = self.snapshot();
        let zones = |code: &str| snapshot.zone(code);
        match schedule.validate_in(&zones) {
            Ok(()) => {}
            Err(flight::ScheduleError::UnknownAirport(code)) => {
                let field = if code == input.origin { "origin" } else { "destination" };
                check.fail(field, format!("unknown airport {code}"));
            }
            Err(flight::ScheduleError::Invalid(message)) => {
                let field = schedule_field(message);
                check.fail(field, message);
            }
        }
        Some(schedule)
    }

    fn airline_for_write(&self, actor: &Principal, code: &str) -> Result<Airline, Error> {
        let airline = self
            .snapshot()
            .airlines
            .get(code)
            .cloned()
            .ok_or_else(|| Error::invalid("airline", "no such airline"))?;
        if Self::may_manage(actor, airline.organization_id) {
            Ok(airline)
        } else {
            Err(Error::Forbidden)
        }
    }

    pub async fn create_schedule(&self, actor: &Principal, input: ScheduleInput) -> Result<ScheduleView, Error> {
        let mut check = Check::default();
        let schedule = self.schedule_from(Uuid::now_v7(), &input, &mut check);
        check.finish()?;
        let Some(schedule) = schedule else {
            return Err(Error::invalid("schedule", "invalid"));
        };
        let _writing = self.inner.writing.lock().await;
        let airline = self.airline_for_write(actor, &schedule.airline)?;
        self.save_schedule(actor, &airline, schedule, "catalog.schedule_created.v1")
            .await
    }

    pub fn schedule_for_manager(&self, actor: &Principal, id: Uuid) -> Result<ScheduleView, Error> {
        let snapshot = self.snapshot();
        let schedule = snapshot.schedules.get(&id).ok_or(Error::NotFound("schedule"))?;
        let owner = snapshot.airlines.get(&schedule.airline).map(|a| a.organization_id);
        if !owner.is_some_and(|o| Self::may_manage(actor, o)) {
            return Err(Error::NotFound("schedule"));
        }
        let n = snapshot.departures_of(id);
        Ok(ScheduleView::new(schedule, n))
    }

    /// Replaces a schedule: departures are materialized again, new ones get buckets, existing ones are resized to
    /// the new cabins (inventory refuses to go below what is sold). Departures still to fly that the new schedule no
    /// longer has (or a cabin it drops) are closed in inventory, and the change is refused while travellers hold
    /// seats on them; so is a change that moves a held or sold departure's time (its travellers booked the old one).
    pub async fn update_schedule(
        &self,
        actor: &Principal,
        id: Uuid,
        input: ScheduleInput,
    ) -> Result<ScheduleView, Error> {
        let _writing = self.inner.writing.lock().await;
        let old = self
            .snapshot()
            .schedules
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("schedule"))?;
        self.airline_for_write(actor, &old.airline)?;
        let mut check = Check::default();
        let schedule = self.schedule_from(id, &input, &mut check);
        if input.airline != old.airline || input.flight_number != old.flight_number {
            check.fail("flight_number", "a schedule's airline and flight number cannot change");
        }
        check.finish()?;
        let Some(schedule) = schedule else {
            return Err(Error::invalid("schedule", "invalid"));
        };
        let airline = self.airline_for_write(actor, &schedule.airline)?;
        self.save_schedule(actor, &airline, schedule, "catalog.schedule_updated.v1")
            .await
    }

    /// Takes a schedule off sale: its departures still to fly are closed in inventory, and it is refused while
    /// travellers hold seats on them.
    pub async fn deactivate_schedule(&self, actor: &Principal, id: Uuid) -> Result<ScheduleView, Error> {
        let _writing = self.inner.writing.lock().await;
        let old = self
            .snapshot()
            .schedules
            .get(&id)
            .cloned()
            .ok_or(Error::NotFound("schedule"))?;
        let airline = self.airline_for_write(actor, &old.airline)?;
        let org = airline.organization_id;
        let closed = self.close_buckets(actor, org, &self.buckets_going(&old, None)).await?;
        let deactivated = async {
            let event = self.event(
                actor,
                "catalog.schedule_deactivated.v1",
                id.to_string(),
                serde_json::json!({ "schedule_id": id }),
            )?;
            self.inner.store.deactivate_schedule(id, &event).await
        }
        .await;
        if let Err(error) = deactivated {
            self.restore_buckets(actor, org, closed).await;
            return Err(error);
        }
        self.replace(|s| s.remove_schedule(id));
        Ok(ScheduleView::new(&old, 0))
    }

    async fn save_schedule(
        &self,
        actor: &Principal,
        airline: &Airline,
        schedule: Schedule,
        event_type: &'static str,
    ) -> Result<ScheduleView, Error> {
        let snapshot = self.snapshot();
        let zones = |code: &str| snapshot.zone(code);
        let departures = schedule
            .departures_in(&zones)
            .map_err(|e| Error::invalid("schedule", e.to_string()))?;
        let ids: Vec<String> = departures.iter().map(|d| d.id.clone()).collect();
        if self
            .inner
            .store
            .departure_taken(schedule.id, &schedule.flight_number, &ids)
            .await?
        {
            return Err(Error::Conflict(
                "flight_exists",
                format!(
                    "another schedule already flies {} on one of these dates",
                    schedule.flight_number
                ),
            ));
        }
        let existing: Vec<String> = snapshot
            .departures
            .values()
            .filter(|d| d.schedule.id == schedule.id)
            .map(|d| d.departure.id.clone())
            .collect();
        let mut staying: HashSet<String> = departure_items(&schedule, departures.iter(), None)
            .into_iter()
            .map(|item| item.item_id)
            .collect();
        // A departure that keeps its date but moves its time counts as going: its travellers would hold seats on a
        // flight at a time they never booked, so it is closed (and reopened at the new time below) like a dropped one.
        let retimed = self.departures_retimed(&schedule, &departures);
        for departure in departures.iter().filter(|d| retimed.contains(&d.id)) {
            for cabin in &schedule.cabins {
                staying.remove(&departure.seat_item(cabin.cabin));
            }
        }
        let org = Some(airline.organization_id);
        let closing = self.buckets_going(&schedule, Some(&staying));
        let closed = self.close_buckets(actor, airline.organization_id, &closing).await?;
        // The departures that stay take their (possibly new) cabins before anything is saved, and so do the buckets a
        // departure left behind when an earlier change took it off (closed, at no seats): a departure that sold more
        // than its new cabin refuses the change, and every bucket is put back as it was. Retimed departures stay
        // closed until the catalog answers with their new time, below.
        let (kept, fresh): (Vec<&Departure>, Vec<&Departure>) =
            departures.iter().partition(|d| existing.contains(&d.id));
        let (retimed, kept): (Vec<&Departure>, Vec<&Departure>) =
            kept.into_iter().partition(|d| retimed.contains(&d.id));
        let fresh = departure_items(&schedule, fresh.iter().copied(), org);
        let ids: Vec<String> = fresh.iter().map(|item| item.item_id.clone()).collect();
        let availability = &self.inner.availability;
        availability.invalidate(ids.iter().map(String::as_str));
        let counted = availability.get(&ids).await?;
        let (returning, new): (Vec<NewItem>, Vec<NewItem>) =
            fresh.into_iter().partition(|item| counted.get(&item.item_id).is_some());
        let resizing: Vec<(String, i64, i64)> = departure_items(&schedule, kept.iter().copied(), org)
            .into_iter()
            .chain(returning)
            .map(|item| (item.item_id, item.capacity, item.overbooking_limit))
            .collect();
        let resized = match self
            .resize_before_saving(actor, airline.organization_id, resizing)
            .await
        {
            Ok(resized) => resized,
            Err(error) => {
                self.restore_buckets(actor, airline.organization_id, closed).await;
                return Err(error);
            }
        };
        let saved = async {
            let event = self.event(
                actor,
                event_type,
                schedule.id.to_string(),
                serde_json::json!({ "schedule_id": schedule.id, "flight_number": schedule.flight_number,
                                    "departures": departures.len() }),
            )?;
            self.inner.store.save_schedule(&schedule, &departures, &event).await
        }
        .await;
        if let Err(error) = saved {
            self.restore_buckets(
                actor,
                airline.organization_id,
                resized.into_iter().chain(closed).collect(),
            )
            .await;
            return Err(error);
        }
        // From here the change stands. New departures get their buckets, and retimed ones reopen only once quotes
        // give their new time: a booking quoted before could otherwise hold a seat at the time it was told. Should
        // inventory fail now, the same change made again creates and reopens what is missing.
        let view = ScheduleView::new(&schedule, departures.len());
        let reopening = departure_items(&schedule, retimed.iter().copied(), org)
            .into_iter()
            .map(|item| (item.item_id, item.capacity, item.overbooking_limit))
            .collect();
        self.replace(|s| s.put_schedule(schedule, departures));
        self.create_items(actor, new).await?;
        let reopened = self
            .resize_items(actor, airline.organization_id, reopening, false)
            .await;
        availability.invalidate(reopened.iter().map(|(item, _)| item.as_str()));
        if let Some((_, Err(problem))) = reopened.into_iter().find(|(_, result)| result.is_err()) {
            return Err(Error::Upstream(problem));
        }
        Ok(view)
    }

    /// Resizes `items` (item, capacity, overbooking limit) for a change not saved yet. All or nothing: if one is
    /// refused (below what it holds and sold) or fails, those resized are put back and the refusal is the answer.
    /// Returns the buckets resized with their counters before, for [`Catalog::restore_buckets`] should the change
    /// fail after all.
    async fn resize_before_saving(
        &self,
        actor: &Principal,
        organization_id: Uuid,
        items: Vec<(String, i64, i64)>,
    ) -> Result<Vec<(String, Counts)>, Error> {
        let ids: Vec<String> = items.iter().map(|(item, _, _)| item.clone()).collect();
        let availability = &self.inner.availability;
        availability.invalidate(ids.iter().map(String::as_str));
        let before = availability.get(&ids).await?;
        let mut resized = Vec::new();
        let mut refused = None;
        for (item, result) in self.resize_items(actor, organization_id, items, false).await {
            match (result, before.get(&item)) {
                (Ok(_), Some(counts)) => resized.push((item, counts)),
                (Ok(_), None) => {}
                (Err(problem), _) => refused = Some(problem),
            }
        }
        availability.invalidate(ids.iter().map(String::as_str));
        match refused {
            None => Ok(resized),
            Some(problem) => {
                self.restore_buckets(actor, organization_id, resized).await;
                Err(Error::Upstream(problem))
            }
        }
    }

    /// The buckets of the cabins of `schedule`'s departures still to fly (as the catalog has them now) that a change
    /// leaves without a flight: all of them, or those whose seat bucket is not among `staying` (the changed
    /// schedule's buckets). Each cabin going gives its seat bucket and its fare classes' buckets; a fare class
    /// dropped from a cabin that stays is only taken off sale by the catalog (its travellers keep their seats).
    /// Departures already flown keep their buckets as they are.
    fn buckets_going(&self, schedule: &Schedule, staying: Option<&HashSet<String>>) -> Vec<String> {
        let now = OffsetDateTime::now_utc();
        let mut buckets: Vec<String> = self
            .snapshot()
            .departures
            .values()
            .filter(|d| d.schedule.id == schedule.id && d.departure.departs_at > now)
            .flat_map(|d| d.schedule.cabins.iter().map(move |cabin| (&d.departure, cabin)))
            .filter(|(departure, cabin)| {
                staying.is_none_or(|staying| !staying.contains(&departure.seat_item(cabin.cabin)))
            })
            .flat_map(|(departure, cabin)| {
                let fares = cabin.fares.iter().map(|fare| departure.fare_item(&fare.code));
                std::iter::once(departure.seat_item(cabin.cabin)).chain(fares)
            })
            .collect();
        buckets.sort_unstable();
        buckets
    }

    /// The ids of `schedule`'s departures still to fly (as the catalog has them now) that `departures` (the changed
    /// schedule's) keep on the same date at another departure or arrival time.
    fn departures_retimed(&self, schedule: &Schedule, departures: &[Departure]) -> HashSet<String> {
        let now = OffsetDateTime::now_utc();
        let changed: HashMap<&str, &Departure> = departures.iter().map(|d| (d.id.as_str(), d)).collect();
        self.snapshot()
            .departures
            .values()
            .filter(|d| d.schedule.id == schedule.id && d.departure.departs_at > now)
            .filter(|d| {
                changed.get(d.departure.id.as_str()).is_some_and(|new| {
                    (new.departs_at, new.arrives_at) != (d.departure.departs_at, d.departure.arrives_at)
                })
            })
            .map(|d| d.departure.id.clone())
            .collect()
    }

    /// Takes `buckets` off sale in inventory (no seats, no overbooking) before a schedule change removes their
    /// departures or cabins, and refuses the change (409 `departure_booked`) while any of them is held or sold:
    /// travellers would be left booked on a flight that no longer exists. Inventory itself refuses to shrink a bucket
    /// below what is held and sold, so a hold taken between the check and the close refuses the change too, and the
    /// buckets closed so far are put back as they were. Returns the buckets closed with their counters before, for
    /// [`Catalog::restore_buckets`] should the change fail after all.
    async fn close_buckets(
        &self,
        actor: &Principal,
        organization_id: Uuid,
        buckets: &[String],
    ) -> Result<Vec<(String, Counts)>, Error> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let availability = &self.inner.availability;
        availability.invalidate(buckets.iter().map(String::as_str));
        let counted = availability.get(buckets).await?;
        let taken: Vec<&str> = buckets
            .iter()
            .filter(|item| counted.get(item).is_some_and(|counts| counts.committed > 0))
            .map(String::as_str)
            .collect();
        if !taken.is_empty() {
            return Err(booked(&taken));
        }
        let closing = buckets
            .iter()
            .filter(|item| counted.get(item).is_some())
            .map(|item| (item.clone(), 0, 0))
            .collect();
        let mut closed = Vec::new();
        let mut refused = Vec::new();
        let mut failed = None;
        for (item, result) in self.resize_items(actor, organization_id, closing, false).await {
            match result {
                Ok(_) => {
                    if let Some(before) = counted.get(&item) {
                        closed.push((item, before));
                    }
                }
                Err(problem) if problem.code == "capacity_below_committed" => refused.push(item),
                Err(problem) => failed = Some(problem),
            }
        }
        availability.invalidate(buckets.iter().map(String::as_str));
        if refused.is_empty() && failed.is_none() {
            return Ok(closed);
        }
        self.restore_buckets(actor, organization_id, closed).await;
        refused.sort_unstable();
        Err(match failed {
            Some(problem) if refused.is_empty() => Error::Upstream(problem),
            _ => booked(&refused.iter().map(String::as_str).collect::<Vec<_>>()),
        })
    }

    /// Puts buckets [`Catalog::close_buckets`] closed (or a change resized) back as they were, for a change that did
    /// not happen. A bucket that cannot be put back (inventory unreachable, or holds taken meanwhile above a smaller
    /// size it had) is logged: it stays as the change left it until the change is made again or the bucket resized.
    async fn restore_buckets(&self, actor: &Principal, organization_id: Uuid, closed: Vec<(String, Counts)>) {
        let reopening = closed
            .into_iter()
            .map(|(item, before)| (item, before.capacity, before.limit - before.capacity))
            .collect();
        let reopened = self.resize_items(actor, organization_id, reopening, false).await;
        for (item, result) in &reopened {
            if let Err(problem) = result {
                tracing::error!(item, %problem, "a bucket changed for a schedule change that failed stays changed");
            }
        }
        self.inner
            .availability
            .invalidate(reopened.iter().map(|(item, _)| item.as_str()));
    }

    /// Creates the buckets of many schedules' departures at once and stores them, for seeding: one transaction
    /// per call, no per-schedule events beyond one summary event.
    pub async fn load_schedules(&self, actor: &Principal, schedules: Vec<Schedule>) -> Result<usize, Error> {
        let _writing = self.inner.writing.lock().await;
        let snapshot = self.snapshot();
        let zones = |code: &str| snapshot.zone(code);
        let mut all = Vec::with_capacity(schedules.len());
        let mut items = Vec::new();
        for schedule in schedules {
            let org = snapshot
                .airlines
                .get(&schedule.airline)
                .map(|a| a.organization_id)
                .ok_or_else(|| Error::invalid("airline", format!("no such airline {}", schedule.airline)))?;
            let departures = schedule
                .departures_in(&zones)
                .map_err(|e| Error::invalid("schedule", e.to_string()))?;
            items.extend(departure_items(&schedule, departures.iter(), Some(org)));
            all.push((schedule, departures));
        }
        let event = self.event(
            actor,
            "catalog.schedules_loaded.v1",
            "schedules",
            serde_json::json!({ "schedules": all.len() }),
        )?;
        self.inner.store.save_schedules(&all, &event).await?;
        drop(snapshot);
        self.create_items(actor, items).await?;
        let n: usize = all.iter().map(|(_, d)| d.len()).sum();
        self.replace(|s| {
            for (schedule, departures) in all {
                s.put_schedule(schedule, departures);
            }
        });
        Ok(n)
    }
}

/// Which input field a schedule validation message is about.
fn schedule_field(message: &str) -> &'static str {
    if message.starts_with("origin") {
        "destination"
    } else if message.starts_with("duration") {
        "duration_minutes"
    } else if message.starts_with("effective") {
        "effective_to"
    } else if message.contains("day of the week") {
        "days"
    } else {
        "cabins"
    }
}

/// The refusal of a schedule change that would drop (or retime) the departures of `buckets` (seat or fare bucket
/// ids) with travellers on them.
fn booked(buckets: &[&str]) -> Error {
    /// Departures a refusal names; the rest are counted.
    const NAMED: usize = 10;
    let mut departures: Vec<&str> = buckets.iter().filter_map(|item| item.split(':').nth(1)).collect();
    departures.sort_unstable();
    departures.dedup();
    let mut named = departures[..departures.len().min(NAMED)].join(", ");
    if departures.len() > NAMED {
        named.push_str(&format!(" and {} more", departures.len() - NAMED));
    }
    Error::Conflict(
        "departure_booked",
        format!(
            "travellers hold seats on {named}: cancel or move their bookings before the schedule drops these \
             departures or cabins or changes their times"
        ),
    )
}

/// The buckets of departures: one per cabin (seats plus overbooking) and one per fare class (its booking limit).
fn departure_items<'a>(
    schedule: &Schedule,
    departures: impl Iterator<Item = &'a Departure>,
    organization_id: Option<Uuid>,
) -> Vec<NewItem> {
    let mut items = Vec::new();
    for departure in departures {
        for cabin in &schedule.cabins {
            items.push(NewItem {
                item_id: departure.seat_item(cabin.cabin),
                capacity: cabin.seats,
                overbooking_limit: cabin.overbooking_limit,
                organization_id,
            });
            for fare in &cabin.fares {
                items.push(NewItem {
                    item_id: departure.fare_item(&fare.code),
                    capacity: fare.booking_limit,
                    overbooking_limit: 0,
                    organization_id,
                });
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_ten_booked_departures_once_each_and_counts_the_rest() {
        let seats: Vec<String> = (1..=12)
            .flat_map(|day| {
                let id = format!("PX1-2026-12-{day:02}");
                [
                    flight::seat_item(&id, flight::Cabin::Business),
                    flight::seat_item(&id, flight::Cabin::Economy),
                ]
            })
            .collect();
        // Fare buckets of the same departures name them no more often.
        let seats: Vec<String> = seats
            .into_iter()
            .flat_map(|seat| {
                let fare = seat.replace("seat:", "fare:").replace(":economy", ":Y");
                [seat, fare]
            })
            .collect();
        let seats: Vec<&str> = seats.iter().map(String::as_str).collect();
        let refusal = booked(&seats);
        let problem = phoenix_api::Problem::from(booked(&seats));
        let Error::Conflict("departure_booked", detail) = refusal else {
            panic!("a 409 departure_booked");
        };
        assert_eq!(
            problem.detail.as_deref(),
            Some(detail.as_str()),
            "the client is told why"
        );
        assert!(
            detail.starts_with("travellers hold seats on PX1-2026-12-01, PX1-2026-12-02,"),
            "{detail}"
        );
        assert!(detail.contains("PX1-2026-12-10 and 2 more:"), "{detail}");
        assert!(!detail.contains("PX1-2026-12-11"), "{detail}");
    }
}
