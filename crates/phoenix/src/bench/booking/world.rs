//! What the scenarios book: many hotels for spread demand, one departure for the flash sale, set up through the
//! in-process services; and the customers who book, signed in over HTTP.

use super::load::*;
use super::platform::*;
use super::*;

/// What the clients book: stays spread over many buckets, or seats on one departure.
pub(super) enum World {
    Spread {
        stays: Vec<StayChoice>,
    },
    /// Seats of one departure, in one cabin (or two, when there are more seats than a cabin may have).
    Flash {
        departure_id: String,
        /// Each cabin with its one fare class.
        cabins: Vec<(Cabin, &'static str)>,
    },
}

pub(super) struct StayChoice {
    pub(super) hotel_id: Uuid,
    pub(super) room_type_id: Uuid,
    pub(super) rate_plan_id: Uuid,
}

/// `n` days from today, as a date.
pub(super) fn day(n: i64) -> time::Date {
    time::OffsetDateTime::now_utc().date() + time::Duration::days(n)
}

pub(super) fn principal(role: Role, organization_id: Option<Uuid>) -> Principal {
    Principal {
        user_id: Uuid::now_v7(),
        roles: Roles::from([role]),
        organization_id,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

impl World {
    /// `SPREAD_HOTELS` hotels across the demo cities, each with `SPREAD_ROOM_TYPES` room types of `SPREAD_ROOMS`
    /// rooms and one refundable plan priced for `SPREAD_NIGHTS` nights from tomorrow.
    pub(super) async fn spread(platform: &Platform) -> anyhow::Result<World> {
        let chain = platform
            .identity
            .create_organization("Bench Hotels", OrganizationKind::HotelChain, None)
            .await?;
        let cities = geo::cities();
        let nights: Vec<time::Date> = (1..=SPREAD_NIGHTS).map(day).collect();
        let mut entries = Vec::with_capacity(SPREAD_HOTELS);
        let mut stays = Vec::new();
        for number in 0..SPREAD_HOTELS {
            let city = &cities[number % cities.len()];
            let hotel = Hotel {
                id: Uuid::now_v7(),
                organization_id: chain.id,
                name: format!("Bench Hotel {number}"),
                description: String::new(),
                address: format!("{number} Bench Street"),
                city: city.name.to_owned(),
                country: city.country.to_owned(),
                latitude: city.latitude,
                longitude: city.longitude,
                stars: 3,
                amenities: Vec::new(),
                time_zone: city.time_zone.to_owned(),
                active: true,
            };
            let mut entry = HotelEntry {
                hotel,
                room_types: Vec::new(),
                rate_plans: Vec::new(),
            };
            for kind in 0..SPREAD_ROOM_TYPES {
                let (room, plan) = room_with_plan(&entry.hotel, kind, number, &nights);
                stays.push(StayChoice {
                    hotel_id: entry.hotel.id,
                    room_type_id: room.id,
                    rate_plan_id: plan.id,
                });
                entry.room_types.push(room);
                entry.rate_plans.push(plan);
            }
            entries.push(entry);
        }
        let admin = principal(Role::Admin, None);
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let load: Vec<HotelEntry> = entries.by_ref().take(HOTELS_PER_LOAD).collect();
            platform.catalog.load_hotels(&admin, load).await?;
        }
        Ok(World::Spread { stays })
    }

    /// One departure in a week, Paris to London, with `seats` seats in economy (or split between economy and
    /// business), each cabin with one fare class that may sell all of its seats.
    pub(super) async fn flash(platform: &Platform, seats: i64) -> anyhow::Result<World> {
        let airline = platform
            .identity
            .create_organization("Bench Air", OrganizationKind::Airline, None)
            .await?;
        let input = AirlineInput {
            code: "BX".into(),
            name: "Bench Air".into(),
            organization_id: airline.id,
        };
        platform
            .catalog
            .create_airline(&principal(Role::Admin, None), input)
            .await?;
        let cabin = |cabin, code: &str, seats, price_minor| CabinPlan {
            cabin,
            seats,
            overbooking_limit: 0,
            fares: vec![FareClass {
                code: code.into(),
                price_minor,
                refundable: false,
                change_fee_minor: 0,
                baggage_pieces: 1,
                booking_limit: seats,
            }],
        };
        let (plans, cabins) = if seats <= MAX_CABIN_SEATS {
            (
                vec![cabin(Cabin::Economy, "Y", seats, 9_900)],
                vec![(Cabin::Economy, "Y")],
            )
        } else {
            let plans = vec![
                cabin(Cabin::Economy, "Y", seats - seats / 2, 9_900),
                cabin(Cabin::Business, "J", seats / 2, 39_900),
            ];
            (plans, vec![(Cabin::Economy, "Y"), (Cabin::Business, "J")])
        };
        let on = day(7);
        let schedule = ScheduleInput {
            airline: "BX".into(),
            flight_number: "BX1".into(),
            origin: "CDG".into(),
            destination: "LHR".into(),
            departure_time: "08:00".into(),
            duration_minutes: 80,
            days: vec![1, 2, 3, 4, 5, 6, 7],
            effective_from: Day(on),
            effective_to: Day(on),
            currency: "EUR".into(),
            cabins: plans,
        };
        let operator = principal(Role::Operator, Some(airline.id));
        platform.catalog.create_schedule(&operator, schedule).await?;
        Ok(World::Flash {
            departure_id: format!("BX1-{on}"),
            cabins,
        })
    }

    /// The booking request client `client` sends next.
    pub(super) fn body(&self, client: usize, random: &mut Random) -> Bytes {
        let item = match self {
            World::Spread { stays } => {
                let stay = &stays[random.below(stays.len())];
                let nights = 1 + random.below(3) as i64;
                let check_in = 1 + random.below((SPREAD_NIGHTS - nights + 1) as usize) as i64;
                json!({
                    "kind": "hotel", "hotel_id": stay.hotel_id, "room_type_id": stay.room_type_id,
                    "rate_plan_id": stay.rate_plan_id, "check_in": day(check_in).to_string(),
                    "check_out": day(check_in + nights).to_string(), "rooms": 1, "guests": 1
                })
            }
            World::Flash { departure_id, cabins } => {
                let (cabin, fare) = cabins[client % cabins.len()];
                json!({
                    "kind": "flight", "departure_ids": [departure_id], "cabin": cabin, "fare_codes": [fare],
                    "passengers": {"adults": 1, "children": 0, "infants": 0}
                })
            }
        };
        let body = json!({
            "items": [item],
            "travellers": [{"first_name": "Ann", "last_name": "Lee", "type": "adult", "date_of_birth": "1990-04-02"}],
            "contact": {"email": "ann@example.com", "phone": "+33 6 12 34 56 78"},
            "payment_token": "tok_visa",
        });
        Bytes::from(body.to_string())
    }

    /// Every bucket of the world.
    pub(super) fn buckets(&self) -> Vec<String> {
        match self {
            World::Spread { stays } => stays
                .iter()
                .flat_map(|s| (1..=SPREAD_NIGHTS).map(|n| phoenix_catalog::hotel::room_item(s.room_type_id, day(n))))
                .collect(),
            World::Flash { departure_id, cabins } => cabins
                .iter()
                .flat_map(|(cabin, fare)| {
                    [
                        phoenix_catalog::flight::seat_item(departure_id, *cabin),
                        phoenix_catalog::flight::fare_item(departure_id, fare),
                    ]
                })
                .collect(),
        }
    }
}

/// Room type `kind` of a hotel, and its one rate plan priced for `nights`.
pub(super) fn room_with_plan(hotel: &Hotel, kind: usize, number: usize, nights: &[time::Date]) -> (RoomType, RatePlan) {
    let room = RoomType {
        id: Uuid::now_v7(),
        hotel_id: hotel.id,
        name: ["Single", "Double", "Family"][kind % 3].to_owned(),
        max_occupancy: 2,
        beds: "1 double".to_owned(),
        rooms: SPREAD_ROOMS,
        active: true,
    };
    let price_minor = 6_000 + 1_000 * kind as i64 + 100 * (number % 40) as i64;
    let plan = RatePlan {
        id: Uuid::now_v7(),
        hotel_id: hotel.id,
        room_type_id: room.id,
        name: "Flexible".to_owned(),
        meal_plan: MealPlan::RoomOnly,
        refundable: true,
        free_cancellation_hours: Some(24),
        currency: "EUR".to_owned(),
        prices: nights.iter().map(|night| (*night, price_minor)).collect(),
        active: true,
    };
    (room, plan)
}

/// One customer per client, created in identity and signed in over HTTP: their access tokens.
pub(super) async fn sign_in(platform: &Platform, clients: usize) -> anyhow::Result<Vec<String>> {
    let http = reqwest::Client::new();
    let mut tokens = Vec::with_capacity(clients);
    for wave in (0..clients).collect::<Vec<_>>().chunks(SIGN_IN_CONCURRENCY) {
        let signing_in = wave.iter().map(|&i| {
            let (http, identity, base) = (http.clone(), platform.identity.clone(), platform.base.clone());
            async move {
                let email = format!("customer{i}@bench.phoenix.example");
                identity
                    .create_user(phoenix_identity::NewUser {
                        email: &email,
                        password: PASSWORD,
                        name: &format!("Customer {i}"),
                        roles: &[Role::Customer],
                        organization_id: None,
                    })
                    .await
                    .with_context(|| format!("creating {email}"))?;
                let reply = http
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await?;
                if reply.status() != StatusCode::OK {
                    bail!("signing in {email}: {}", reply.status());
                }
                let body: serde_json::Value = reply.json().await?;
                body["access_token"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no access token in the login answer")
            }
        });
        for token in futures::future::join_all(signing_in).await {
            tokens.push(token?);
        }
    }
    Ok(tokens)
}
