//! Hotel search: stays in a city or around a point, every night available, cheapest options first.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum HotelSort {
    #[default]
    Price,
    Distance,
    Stars,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HotelSearch {
    /// City name, case-insensitive (or give `latitude`, `longitude` and `radius_km`).
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// 0.1 to 100 km around the point (default 10).
    #[param(minimum = 0.1, maximum = 100)]
    pub radius_km: Option<f64>,
    #[param(value_type = String, format = Date)]
    pub check_in: Option<Day>,
    #[param(value_type = String, format = Date)]
    pub check_out: Option<Day>,
    /// Guests in all, 1 to 36 and at least one a room (default 2).
    #[param(minimum = 1, maximum = 36)]
    pub guests: Option<u32>,
    /// Rooms, 1 to 9 (default 1).
    #[param(minimum = 1, maximum = 9)]
    pub rooms: Option<u32>,
    /// Stay total bounds, minor units of the display currency (or of the hotel's when none is asked).
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Star ratings accepted, comma-separated (`4,5`).
    pub stars: Option<String>,
    /// Amenities all required, comma-separated (`pool,free_wifi`).
    pub amenities: Option<String>,
    /// Only refundable rate plans.
    pub refundable: Option<bool>,
    /// Result order (default: the first listed).
    #[param(inline)]
    pub sort: Option<HotelSort>,
    /// Display currency (ISO 4217); charges stay in the hotel's currency.
    pub currency: Option<String>,
    /// Results per page, 1 to 50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// A validated hotel search.
struct Stay {
    check_in: time::Date,
    check_out: time::Date,
    nights: Vec<time::Date>,
    guests: u32,
    rooms: u32,
    point: Option<(f64, f64, f64)>,
    stars: Option<Vec<u8>>,
    amenities: Vec<String>,
    display: Option<Currency>,
    offset: usize,
    limit: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HotelSearchResponse {
    pub check_in: Day,
    pub check_out: Day,
    pub nights: usize,
    pub rooms: u32,
    pub guests: u32,
    /// Hotels matching, over all pages.
    pub total: usize,
    pub results: Vec<HotelResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HotelSummary {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub city: String,
    pub country: String,
    pub latitude: f64,
    pub longitude: f64,
    pub stars: u8,
    pub amenities: Vec<String>,
}

impl From<&crate::hotel::Hotel> for HotelSummary {
    fn from(h: &crate::hotel::Hotel) -> HotelSummary {
        HotelSummary {
            id: h.id,
            name: h.name.clone(),
            address: h.address.clone(),
            city: h.city.clone(),
            country: h.country.clone(),
            latitude: h.latitude,
            longitude: h.longitude,
            stars: h.stars,
            amenities: h.amenities.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HotelResult {
    pub hotel: HotelSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_km: Option<f64>,
    /// The cheapest available options, cheapest first.
    pub options: Vec<StayOption>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StayOption {
    pub room_type_id: Uuid,
    pub room_type: String,
    pub rate_plan_id: Uuid,
    pub rate_plan: String,
    pub meal_plan: MealPlan,
    pub refundable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_cancellation_hours: Option<u32>,
    /// Fewest rooms of this type left over the stay's nights.
    pub rooms_left: i64,
    /// Price of one room each night, after dynamic pricing.
    pub nightly_minor: Vec<i64>,
    /// ISO 4217 currency charged.
    pub currency: String,
    #[schema(value_type = Object)]
    pub price: PriceBreakdown,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_total: Option<DisplayAmount>,
    /// Signed and short-lived: a booking presents it to prove this price.
    pub offer_id: String,
}

impl HotelSearch {
    fn validate(&self, today: time::Date) -> Result<Stay, Error> {
        let mut check = Check::default();
        let check_in = self.check_in.map(|d| d.0);
        let check_out = self.check_out.map(|d| d.0);
        check_stay_dates(&mut check, "", check_in, check_out, today);
        let guests = self.guests.unwrap_or(2);
        let rooms = self.rooms.unwrap_or(1);
        check_occupancy(&mut check, "", rooms, guests);
        let point = match (self.latitude, self.longitude, non_empty(&self.city)) {
            (Some(lat), Some(lon), _) => {
                check.point(lat, lon);
                let radius = radius(&mut check, self.radius_km, DEFAULT_RADIUS_KM);
                Some((lat, lon, radius))
            }
            (None, None, Some(city)) => {
                if city.chars().count() > 100 {
                    check.fail("city", "at most 100 characters");
                }
                if self.radius_km.is_some() {
                    check.fail("radius_km", "needs latitude and longitude");
                }
                None
            }
            (Some(_), None, _) => {
                check.fail("longitude", "required with latitude");
                None
            }
            (None, Some(_), _) => {
                check.fail("latitude", "required with longitude");
                None
            }
            (None, None, None) => {
                check.fail("city", "give a city, or latitude and longitude");
                None
            }
        };
        if self.sort == Some(HotelSort::Distance) && point.is_none() {
            check.fail("sort", "sorting by distance needs latitude and longitude");
        }
        for (field, price) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if price.is_some_and(|p| p < 0) {
                check.fail(field, "must not be negative");
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            check.fail("max_price", "must not be below min_price");
        }
        let stars = non_empty(&self.stars).map(|list| {
            list.split(',')
                .filter_map(|s| match s.trim().parse::<u8>() {
                    Ok(n) if (1..=5).contains(&n) => Some(n),
                    _ => {
                        check.fail("stars", "a comma-separated list of 1 to 5");
                        None
                    }
                })
                .collect::<Vec<u8>>()
        });
        let amenities: Vec<String> = non_empty(&self.amenities)
            .map(|list| {
                list.split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if amenities.len() > 20 {
            check.fail("amenities", "at most 20 amenities");
        }
        let display = display_currency(&mut check, &self.currency);
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        check.range("limit", limit, 1, MAX_PAGE);
        let offset = cursor_offset(&mut check, &self.cursor);
        check.finish()?;
        let (Some(check_in), Some(check_out)) = (check_in, check_out) else {
            return Err(Error::invalid("check_in", "required"));
        };
        Ok(Stay {
            check_in,
            check_out,
            nights: hotel::nights(check_in, check_out),
            guests,
            rooms,
            point,
            stars,
            amenities,
            display,
            offset,
            limit: limit as usize,
        })
    }
}

struct HotelCandidate {
    entry: Arc<HotelEntry>,
    distance_km: Option<f64>,
}

struct Ranked {
    candidate: HotelCandidate,
    options: Vec<(StayOption, OfferDraft)>,
    /// Cheapest total, as prices are compared: in the display currency, else in `catalog.sort_currency`.
    order: SortPrice,
}

impl Catalog {
    /// Hotels with every night of the stay available for the rooms asked, each with its cheapest options.
    pub async fn search_hotels(&self, query: &HotelSearch) -> Result<Bytes, Error> {
        let now = OffsetDateTime::now_utc();
        let stay = query.validate(crate::geo::earliest_today(now))?;
        self.count_search(crate::service::SearchKind::Hotel);
        let key = format!("hotels:{}", serde_json::to_string(query).unwrap_or_default());
        if let Some(hit) = self.cached_result(&key, self.result_max_age()) {
            metrics::counter!("catalog_search_results_total", "kind" => "hotels", "cache" => "hit").increment(1);
            return Ok(hit);
        }
        let generation = self.generation();
        let snapshot = self.snapshot();
        let mut candidates = hotel_candidates(&snapshot, &stay, query);
        // The check-in must not be past where the hotel is (validated above only against the earliest date anywhere).
        candidates.retain(|c| stay.check_in >= crate::geo::today_in(&c.entry.hotel.time_zone, now));
        let mut items = Vec::new();
        for c in &candidates {
            for room in c.entry.room_types.iter().filter(|r| room_fits(r, &stay)) {
                items.extend(stay.nights.iter().map(|n| hotel::room_item(room.id, *n)));
            }
        }
        let counts = self.availability().get(&items).await?;
        let options = self.options();
        let mut order = PriceOrder::new(&snapshot, stay.display.unwrap_or(options.sort_currency));
        let mut ranked = Vec::new();
        for candidate in candidates {
            let found = stay_options(
                &candidate.entry,
                &stay,
                &counts,
                query.refundable == Some(true),
                &snapshot,
                options,
            )?;
            if found.is_empty() {
                continue;
            }
            // Cheapest first as money: a hotel's rate plans may be priced in different currencies.
            let mut keyed = Vec::with_capacity(found.len());
            for (option, draft) in found {
                let money = Money::new(
                    option.price.total_minor,
                    Currency::parse(&option.currency).map_err(bad_money)?,
                );
                keyed.push((order.key(money), money, option, draft));
            }
            keyed.sort_by_key(|(key, ..)| *key);
            keyed.truncate(OPTIONS_PER_HOTEL);
            let cheapest_order = keyed[0].0;
            let mut found = Vec::with_capacity(keyed.len());
            for (_, money, mut option, draft) in keyed {
                option.display_total = display_amount(&snapshot, money, stay.display);
                found.push((option, draft));
            }
            let cheapest = &found[0].0;
            let bounded = query.min_price.is_some() || query.max_price.is_some();
            // Bounds are in the display currency when one is asked, else in each hotel's own.
            let bound_price = match (&cheapest.display_total, stay.display) {
                (Some(d), _) => d.amount_minor,
                // Bounds in a display currency this hotel's price cannot be converted to cannot be met.
                (None, Some(_)) if bounded => continue,
                _ => cheapest.price.total_minor,
            };
            if query.min_price.is_some_and(|m| bound_price < m) || query.max_price.is_some_and(|m| bound_price > m) {
                continue;
            }
            ranked.push(Ranked {
                candidate,
                options: found,
                order: cheapest_order,
            });
        }
        match query.sort.unwrap_or_default() {
            HotelSort::Price => ranked.sort_by(|a, b| {
                a.order
                    .cmp(&b.order)
                    .then_with(|| a.candidate.entry.hotel.id.cmp(&b.candidate.entry.hotel.id))
            }),
            HotelSort::Distance => ranked.sort_by(|a, b| {
                a.candidate
                    .distance_km
                    .unwrap_or(0.0)
                    .total_cmp(&b.candidate.distance_km.unwrap_or(0.0))
                    .then_with(|| a.order.cmp(&b.order))
            }),
            HotelSort::Stars => ranked.sort_by(|a, b| {
                b.candidate
                    .entry
                    .hotel
                    .stars
                    .cmp(&a.candidate.entry.hotel.stars)
                    .then_with(|| a.order.cmp(&b.order))
            }),
        }
        let total = ranked.len();
        let expires = self.offer_expiry();
        let results: Vec<HotelResult> = ranked
            .into_iter()
            .skip(stay.offset)
            .take(stay.limit)
            .map(|r| HotelResult {
                hotel: HotelSummary::from(&r.candidate.entry.hotel),
                distance_km: r.candidate.distance_km.map(|d| (d * 100.0).round() / 100.0),
                options: r
                    .options
                    .into_iter()
                    .map(|(mut option, draft)| {
                        option.offer_id = self.sign(draft.shown(Some(&option.nightly_minor), &option.price), expires);
                        option
                    })
                    .collect(),
            })
            .collect();
        let next = stay.offset + results.len();
        let response = HotelSearchResponse {
            check_in: Day(stay.check_in),
            check_out: Day(stay.check_out),
            nights: stay.nights.len(),
            rooms: stay.rooms,
            guests: stay.guests,
            total,
            results,
            next_cursor: (next < total).then(|| next.to_string()),
        };
        let value = Bytes::from(serde_json::to_vec(&response).map_err(|_| Error::Corrupt { what: "search result" })?);
        metrics::counter!("catalog_search_results_total", "kind" => "hotels", "cache" => "miss").increment(1);
        self.cache_result(key, generation, value.clone());
        Ok(value)
    }
}

fn room_fits(room: &crate::hotel::RoomType, stay: &Stay) -> bool {
    room.active && u32::from(room.max_occupancy) * stay.rooms >= stay.guests
}

fn hotel_candidates(snapshot: &Snapshot, stay: &Stay, query: &HotelSearch) -> Vec<HotelCandidate> {
    let matches = |entry: &HotelEntry| {
        let h = &entry.hotel;
        h.active
            && stay.stars.as_ref().is_none_or(|s| s.contains(&h.stars))
            && stay.amenities.iter().all(|a| h.amenities.contains(a))
    };
    match (stay.point, non_empty(&query.city)) {
        (Some((lat, lon, radius)), _) => snapshot
            .hotels
            .values()
            .filter(|e| matches(e))
            .filter_map(|e| {
                let d = crate::geo::distance_km(lat, lon, e.hotel.latitude, e.hotel.longitude);
                (d <= radius).then(|| HotelCandidate {
                    entry: e.clone(),
                    distance_km: Some(d),
                })
            })
            .collect(),
        (None, Some(city)) => snapshot
            .hotels_by_city
            .get(&city.to_lowercase())
            .into_iter()
            .flatten()
            .filter_map(|id| snapshot.hotels.get(id))
            .filter(|e| matches(e))
            .map(|e| HotelCandidate {
                entry: e.clone(),
                distance_km: None,
            })
            .collect(),
        (None, None) => Vec::new(),
    }
}

/// Every rate plan of the hotel sellable for the whole stay, priced. A plan that cannot be priced correctly (a fee
/// without an exchange rate into its currency) is left out, like one not sold on some night.
fn stay_options(
    entry: &HotelEntry,
    stay: &Stay,
    counts: &Counted,
    refundable_only: bool,
    snapshot: &Snapshot,
    options: &crate::Options,
) -> Result<Vec<(StayOption, OfferDraft)>, Error> {
    let mut found = Vec::new();
    for room in entry.room_types.iter().filter(|r| room_fits(r, stay)) {
        let Ok(nightly_counts) = night_counts(room.id, &stay.nights, stay.rooms, counts) else {
            continue; // some night is sold out, closed or not on sale
        };
        let rooms_left = nightly_counts.iter().map(|c| c.available()).min().unwrap_or(0);
        for plan in entry
            .rate_plans
            .iter()
            .filter(|p| p.active && p.room_type_id == room.id)
        {
            if refundable_only && !plan.refundable {
                continue;
            }
            let priced = price_stay(
                plan,
                stay.check_in,
                &nightly_counts,
                stay.rooms,
                stay.guests,
                snapshot,
                options,
            )?;
            let Ok(StayPrice {
                nightly_minor: nightly,
                price,
                currency,
            }) = priced
            else {
                continue;
            };
            let draft = OfferDraft {
                total: Money::new(price.total_minor, currency),
                details: OfferDetails::Hotel {
                    hotel_id: entry.hotel.id,
                    room_type_id: room.id,
                    rate_plan_id: plan.id,
                    check_in: Day(stay.check_in),
                    check_out: Day(stay.check_out),
                    rooms: stay.rooms,
                    guests: stay.guests,
                    refundable: plan.refundable,
                    free_cancellation_hours: plan.free_cancellation_hours,
                    nightly_minor: None,
                    price: None,
                },
            };
            found.push((
                StayOption {
                    room_type_id: room.id,
                    room_type: room.name.clone(),
                    rate_plan_id: plan.id,
                    rate_plan: plan.name.clone(),
                    meal_plan: plan.meal_plan,
                    refundable: plan.refundable,
                    free_cancellation_hours: plan.free_cancellation_hours,
                    rooms_left,
                    nightly_minor: nightly,
                    currency: plan.currency.clone(),
                    price,
                    display_total: None,
                    offer_id: String::new(),
                },
                draft,
            ));
        }
    }
    Ok(found)
}
