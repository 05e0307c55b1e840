//! Managing hotels: the hotel, its room types and rate plans, nightly prices and per-night capacity.

use super::*;

impl Catalog {
    pub async fn create_hotel(&self, actor: &Principal, input: HotelInput) -> Result<HotelView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        check.finish()?;
        let organization_id = Self::owner_for_new(actor, input.organization_id)?;
        self.require_kind(
            actor,
            organization_id,
            phoenix_identity::OrganizationKind::HotelChain,
            "a hotel chain",
        )
        .await?;
        let hotel = Hotel {
            id: Uuid::now_v7(),
            organization_id,
            name: input.name.trim().to_owned(),
            description: input.description,
            address: input.address,
            city: input.city.trim().to_owned(),
            country: input.country,
            latitude: input.latitude,
            longitude: input.longitude,
            stars: input.stars,
            amenities: input.amenities,
            time_zone: input.time_zone,
            active: true,
        };
        let _writing = self.inner.writing.lock().await;
        self.save_hotel(actor, hotel, Vec::new(), Vec::new(), "catalog.hotel_created.v1")
            .await
    }

    pub fn hotel_for_manager(&self, actor: &Principal, id: Uuid) -> Result<HotelDetails, Error> {
        let entry = self.hotel_for_read(actor, id)?;
        Ok(details(&entry))
    }

    pub async fn update_hotel(&self, actor: &Principal, id: Uuid, input: HotelInput) -> Result<HotelView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, id)?;
        if input.organization_id.is_some_and(|o| o != entry.hotel.organization_id) {
            check.fail("organization_id", "a hotel cannot move to another organization");
        }
        check.finish()?;
        let hotel = Hotel {
            name: input.name.trim().to_owned(),
            description: input.description,
            address: input.address,
            city: input.city.trim().to_owned(),
            country: input.country,
            latitude: input.latitude,
            longitude: input.longitude,
            stars: input.stars,
            amenities: input.amenities,
            time_zone: input.time_zone,
            ..entry.hotel.clone()
        };
        self.save_hotel(
            actor,
            hotel,
            entry.room_types.clone(),
            entry.rate_plans.clone(),
            "catalog.hotel_updated.v1",
        )
        .await
    }

    /// Takes a hotel off sale (search stops showing it; its data stays for existing bookings).
    pub async fn deactivate_hotel(&self, actor: &Principal, id: Uuid) -> Result<HotelView, Error> {
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, id)?;
        let hotel = Hotel {
            active: false,
            ..entry.hotel.clone()
        };
        self.save_hotel(
            actor,
            hotel,
            entry.room_types.clone(),
            entry.rate_plans.clone(),
            "catalog.hotel_deactivated.v1",
        )
        .await
    }

    async fn save_hotel(
        &self,
        actor: &Principal,
        hotel: Hotel,
        room_types: Vec<RoomType>,
        rate_plans: Vec<RatePlan>,
        event_type: &'static str,
    ) -> Result<HotelView, Error> {
        let event = self.event(
            actor,
            event_type,
            hotel.id.to_string(),
            serde_json::json!({ "hotel_id": hotel.id }),
        )?;
        self.inner.store.save_hotel(&hotel, &event).await?;
        let view = hotel.clone();
        self.replace(|s| {
            s.put_hotel(HotelEntry {
                hotel,
                room_types,
                rate_plans,
            })
        });
        Ok(view)
    }

    pub async fn create_room_type(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        input: RoomTypeInput,
    ) -> Result<RoomTypeView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let room = RoomType {
            id: Uuid::now_v7(),
            hotel_id,
            name: input.name.trim().to_owned(),
            max_occupancy: input.max_occupancy,
            beds: input.beds,
            rooms: input.rooms,
            active: true,
        };
        self.save_room_type(actor, &entry, room, "catalog.room_type_created.v1")
            .await
    }

    /// Changes a room type. A new number of rooms resizes every night from today that has a price and still has
    /// the old number on sale; a night given its own allotment, or closed out, keeps it. A night never goes below
    /// what is already held and sold: it keeps those rooms and sells no more.
    pub async fn update_room_type(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        id: Uuid,
        input: RoomTypeInput,
    ) -> Result<RoomTypeView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.room_type(id)?;
        let room = RoomType {
            name: input.name.trim().to_owned(),
            max_occupancy: input.max_occupancy,
            beds: input.beds,
            rooms: input.rooms,
            ..old.clone()
        };
        if room.rooms != old.rooms {
            let today = OffsetDateTime::now_utc().date();
            let nights: Vec<Date> = priced_nights(&entry, id).into_iter().filter(|n| *n >= today).collect();
            let following = self.nights_on(id, &nights, old.rooms).await?;
            self.resize_nights(actor, entry.hotel.organization_id, id, following, room.rooms)
                .await?;
        }
        self.save_room_type(actor, &entry, room, "catalog.room_type_updated.v1")
            .await
    }

    pub async fn deactivate_room_type(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        id: Uuid,
    ) -> Result<RoomTypeView, Error> {
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.room_type(id)?;
        let room = RoomType {
            active: false,
            ..old.clone()
        };
        self.save_room_type(actor, &entry, room, "catalog.room_type_deactivated.v1")
            .await
    }

    async fn save_room_type(
        &self,
        actor: &Principal,
        entry: &HotelEntry,
        room: RoomType,
        event_type: &'static str,
    ) -> Result<RoomTypeView, Error> {
        let event = self.event(
            actor,
            event_type,
            room.hotel_id.to_string(),
            serde_json::json!({ "hotel_id": room.hotel_id, "room_type_id": room.id }),
        )?;
        self.inner.store.save_room_type(&room, &event).await?;
        // Nights already priced by another plan of this room type get their buckets now.
        let nights = priced_nights(entry, room.id);
        self.create_buckets(actor, entry.hotel.organization_id, room.id, room.rooms, nights)
            .await?;
        let view = room.clone();
        let mut updated = entry.clone();
        match updated.room_types.iter_mut().find(|r| r.id == room.id) {
            Some(existing) => *existing = room,
            None => updated.room_types.push(room),
        }
        self.replace(|s| s.put_hotel(updated));
        Ok(view)
    }

    /// Sets the rooms on sale for a range of nights (an allotment, or 0 to close out). A night never goes below the
    /// rooms held and sold on it: it keeps those and sells no more, and the answer lists it.
    pub async fn set_capacity(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        room_type_id: Uuid,
        input: CapacityInput,
    ) -> Result<CalendarChange, Error> {
        let mut check = Check::default();
        check_span(&mut check, input.from, input.to);
        check.range("rooms", input.rooms, 0, 10_000);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        entry.room_type(room_type_id)?;
        let nights = hotel::nights(input.from.0, input.to.0 + Duration::days(1));
        let n = nights.len();
        // Never below what is held and sold: a night that already sold more than asked keeps those rooms (and
        // sells no more), so a close-out after sales works and no night refuses half way through the range.
        let kept = self
            .resize_nights(actor, entry.hotel.organization_id, room_type_id, nights, input.rooms)
            .await?;
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
        Ok(CalendarChange { nights: n, kept })
    }

    /// The nights among `nights` whose bucket has `rooms` on sale (or no bucket yet), read afresh from inventory:
    /// those follow the room type's number. An allotment equal to the old number cannot be told from it.
    async fn nights_on(&self, room_type_id: Uuid, nights: &[Date], rooms: i64) -> Result<Vec<Date>, Error> {
        let items: Vec<String> = nights
            .iter()
            .map(|night| hotel::room_item(room_type_id, *night))
            .collect();
        let availability = &self.inner.availability;
        availability.invalidate(items.iter().map(String::as_str));
        let counted = availability.get(&items).await?;
        Ok(nights
            .iter()
            .zip(&items)
            .filter(|(_, item)| counted.get(item).is_none_or(|counts| counts.capacity == rooms))
            .map(|(night, _)| *night)
            .collect())
    }

    /// Puts `rooms` on sale on each of `nights` ([`RESIZING`] at a time), never below what is held and sold: a
    /// night that sold more keeps those rooms and sells no more. Returns the nights kept above `rooms`.
    async fn resize_nights(
        &self,
        actor: &Principal,
        organization_id: Uuid,
        room_type_id: Uuid,
        nights: Vec<Date>,
        rooms: i64,
    ) -> Result<Vec<KeptNight>, Error> {
        let night_of: HashMap<String, Date> = nights
            .into_iter()
            .map(|night| (hotel::room_item(room_type_id, night), night))
            .collect();
        let items = night_of.keys().map(|item| (item.clone(), rooms, 0)).collect();
        let resized = self.resize_items(actor, organization_id, items, true).await;
        self.inner
            .availability
            .invalidate(resized.iter().map(|(item, _)| item.as_str()));
        let mut kept = Vec::new();
        for (item, result) in resized {
            let bucket = result.map_err(Error::Upstream)?;
            if let (true, Some(night)) = (bucket.capacity > rooms, night_of.get(&item)) {
                kept.push(KeptNight {
                    night: Day(*night),
                    rooms: bucket.capacity,
                });
            }
        }
        kept.sort_by_key(|k| k.night);
        Ok(kept)
    }

    async fn create_buckets(
        &self,
        actor: &Principal,
        organization_id: Uuid,
        room_type_id: Uuid,
        rooms: i64,
        nights: Vec<Date>,
    ) -> Result<(), Error> {
        let items: Vec<NewItem> = nights
            .into_iter()
            .map(|night| NewItem {
                item_id: hotel::room_item(room_type_id, night),
                capacity: rooms,
                overbooking_limit: 0,
                organization_id: Some(organization_id),
            })
            .collect();
        self.create_items(actor, items).await
    }

    pub async fn create_rate_plan(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        input: RatePlanInput,
    ) -> Result<RatePlanView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        if !entry.room_types.iter().any(|r| r.id == input.room_type_id) {
            return Err(Error::invalid("room_type_id", "no such room type in this hotel"));
        }
        let plan = RatePlan {
            id: Uuid::now_v7(),
            hotel_id,
            room_type_id: input.room_type_id,
            name: input.name.trim().to_owned(),
            meal_plan: input.meal_plan,
            refundable: input.refundable,
            free_cancellation_hours: input.free_cancellation_hours,
            currency: input.currency,
            prices: BTreeMap::new(),
            active: true,
        };
        self.save_rate_plan(actor, &entry, plan, "catalog.rate_plan_created.v1")
            .await
    }

    /// Changes a rate plan's terms; its room type and currency are fixed once created (its prices are in it).
    pub async fn update_rate_plan(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        id: Uuid,
        input: RatePlanInput,
    ) -> Result<RatePlanView, Error> {
        let mut check = Check::default();
        input.check(&mut check);
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.rate_plan(id)?;
        if input.room_type_id != old.room_type_id {
            check.fail("room_type_id", "a rate plan's room type cannot change");
        }
        if input.currency != old.currency {
            check.fail("currency", "a rate plan's currency cannot change");
        }
        check.finish()?;
        let plan = RatePlan {
            name: input.name.trim().to_owned(),
            meal_plan: input.meal_plan,
            refundable: input.refundable,
            free_cancellation_hours: input.free_cancellation_hours,
            ..old.clone()
        };
        self.save_rate_plan(actor, &entry, plan, "catalog.rate_plan_updated.v1")
            .await
    }

    pub async fn deactivate_rate_plan(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        id: Uuid,
    ) -> Result<RatePlanView, Error> {
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.rate_plan(id)?;
        let plan = RatePlan {
            active: false,
            prices: BTreeMap::new(),
            ..old.clone()
        };
        let mut view = self
            .save_rate_plan(actor, &entry, plan, "catalog.rate_plan_deactivated.v1")
            .await?;
        view.priced_nights = old.prices.len();
        Ok(view)
    }

    /// Prices every night of a range; nights without a bucket for the plan's room type get one.
    pub async fn set_prices(
        &self,
        actor: &Principal,
        hotel_id: Uuid,
        plan_id: Uuid,
        input: PricesInput,
    ) -> Result<CalendarChange, Error> {
        let mut check = Check::default();
        check_span(&mut check, input.from, input.to);
        check.range("amount_minor", input.amount_minor, 1, 1_000_000_000);
        check.finish()?;
        let _writing = self.inner.writing.lock().await;
        let entry = self.hotel_for_write(actor, hotel_id)?;
        let old = entry.rate_plan(plan_id)?;
        let room = entry.room_type(old.room_type_id)?.clone();
        let nights = hotel::nights(input.from.0, input.to.0 + Duration::days(1));
        let mut delta = old.clone();
        delta.prices = nights.iter().map(|n| (*n, input.amount_minor)).collect();
        let event = self.event(
            actor,
            "catalog.rates_changed.v1",
            hotel_id.to_string(),
            serde_json::json!({ "hotel_id": hotel_id, "rate_plan_id": plan_id, "from": input.from,
                                "to": input.to, "amount_minor": input.amount_minor }),
        )?;
        self.inner.store.save_rate_plan(&delta, &event).await?;
        self.create_buckets(actor, entry.hotel.organization_id, room.id, room.rooms, nights.clone())
            .await?;
        let mut plan = old.clone();
        plan.prices.extend(delta.prices);
        let mut updated = (*entry).clone();
        if let Some(existing) = updated.rate_plans.iter_mut().find(|p| p.id == plan_id) {
            *existing = plan;
        }
        self.replace(|s| s.put_hotel(updated));
        Ok(CalendarChange {
            nights: nights.len(),
            kept: Vec::new(),
        })
    }

    async fn save_rate_plan(
        &self,
        actor: &Principal,
        entry: &HotelEntry,
        plan: RatePlan,
        event_type: &'static str,
    ) -> Result<RatePlanView, Error> {
        let event = self.event(
            actor,
            event_type,
            plan.hotel_id.to_string(),
            serde_json::json!({ "hotel_id": plan.hotel_id, "rate_plan_id": plan.id }),
        )?;
        // Terms only: prices are saved by `set_prices`.
        let terms = RatePlan {
            prices: BTreeMap::new(),
            ..plan.clone()
        };
        self.inner.store.save_rate_plan(&terms, &event).await?;
        let mut kept = plan;
        if let Some(old) = entry.rate_plans.iter().find(|p| p.id == kept.id)
            && kept.active
        {
            kept.prices = old.prices.clone();
        }
        let view = RatePlanView::from(&kept);
        let mut updated = entry.clone();
        match updated.rate_plans.iter_mut().find(|p| p.id == kept.id) {
            Some(existing) => *existing = kept,
            None => updated.rate_plans.push(kept),
        }
        self.replace(|s| s.put_hotel(updated));
        Ok(view)
    }

    /// Stores many hotels with their room types and priced rate plans and creates their buckets, for seeding.
    pub async fn load_hotels(&self, actor: &Principal, hotels: Vec<HotelEntry>) -> Result<usize, Error> {
        let _writing = self.inner.writing.lock().await;
        let event = self.event(
            actor,
            "catalog.hotels_loaded.v1",
            "hotels",
            serde_json::json!({ "hotels": hotels.len() }),
        )?;
        self.inner.store.save_hotels(&hotels, &event).await?;
        let mut items = Vec::new();
        for entry in &hotels {
            for room in &entry.room_types {
                for night in priced_nights(entry, room.id) {
                    items.push(NewItem {
                        item_id: hotel::room_item(room.id, night),
                        capacity: room.rooms,
                        overbooking_limit: 0,
                        organization_id: Some(entry.hotel.organization_id),
                    });
                }
            }
        }
        self.create_items(actor, items).await?;
        let n = hotels.len();
        self.replace(|s| {
            for entry in hotels {
                s.put_hotel(entry);
            }
        });
        Ok(n)
    }
}

/// Nights that some active plan of the room type has a price for.
fn priced_nights(entry: &HotelEntry, room_type_id: Uuid) -> Vec<Date> {
    let mut nights: Vec<Date> = entry
        .rate_plans
        .iter()
        .filter(|p| p.room_type_id == room_type_id && p.active)
        .flat_map(|p| p.prices.keys().copied())
        .collect();
    nights.sort_unstable();
    nights.dedup();
    nights
}

pub(crate) fn details(entry: &HotelEntry) -> HotelDetails {
    HotelDetails {
        hotel: entry.hotel.clone(),
        room_types: entry.room_types.clone(),
        rate_plans: entry.rate_plans.iter().map(RatePlanView::from).collect(),
    }
}
