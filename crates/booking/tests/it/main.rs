//! Booking's contract suite: every test runs against SQLite and against PostgreSQL, with a real catalog (and the
//! inventory and identity it needs) on databases of the same engine, in process. The saga is played by the test
//! through booking's [`Client`], as the saga service would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cancel;
mod create;
mod http;
mod idempotency;
mod outcomes;
mod refunds;
mod validation;
mod visibility;

use phoenix_api::{Credential, Principal, Role, Roles};
use phoenix_booking::orchestration::{Outcome, SagaKind};
use phoenix_booking::{Booking, BookingRequest, Client, Options, Service};
use phoenix_catalog::Catalog;
use phoenix_catalog::flight::{Cabin, CabinPlan, FareClass};
use phoenix_catalog::model::{AirlineInput, Day, HotelInput, PricesInput, RatePlanInput, RoomTypeInput, ScheduleInput};
use phoenix_catalog::offer::OfferSigner;
use phoenix_db::testing::TestDatabase;
use phoenix_db::{Backend, Pool};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A booking service with a catalog holding one hotel (two plans) and one daily flight.
pub struct World {
    pub booking: Service,
    pub client: Client,
    pub pool: Pool,
    pub catalog: Catalog,
    pub inventory: phoenix_inventory::Service,
    pub identity: phoenix_identity::Service,
    pub hotel: Hotel,
    _databases: Vec<TestDatabase>,
}

pub struct Hotel {
    pub hotel_id: Uuid,
    pub room_type_id: Uuid,
    /// Refundable, free until 72 hours before check-in.
    pub flexible: Uuid,
    /// Non-refundable.
    pub saver: Uuid,
}

/// The flight every world has, every day from day 1 to day 30: `PX10` Paris to London at 08:00, 10 economy seats,
/// fares `Y` (refundable) and `Q` (not).
pub const FLIGHT: &str = "PX10";

/// Bookings answer at once: no saga runs unless a test plays it.
pub fn quick() -> Options {
    Options {
        confirm_wait_ms: 0,
        ..Options::default()
    }
}

pub async fn world(pool: Pool) -> World {
    world_with(pool, quick()).await
}

pub async fn world_with(pool: Pool, options: Options) -> World {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let backend = pool.backend();
    let database = |migrations: &'static phoenix_db::Migrations| async move {
        match backend {
            Backend::Sqlite => TestDatabase::sqlite(migrations).await,
            Backend::Postgres => TestDatabase::postgres(migrations).await,
        }
    };
    let inventory_db = database(phoenix_inventory::migrations()).await;
    let identity_db = database(phoenix_identity::migrations()).await;
    let catalog_db = database(phoenix_catalog::migrations()).await;
    let identity = phoenix_identity::Service::new(
        identity_db.pool(),
        phoenix_identity::Options::default(),
        phoenix_ratelimit::Limiter::memory(),
        phoenix_db::testing::sealer(),
    )
    .await
    .unwrap();
    let inventory = phoenix_inventory::Service::new(
        inventory_db.pool(),
        phoenix_inventory::Options::default(),
        phoenix_inventory::Clock::System,
    )
    .await
    .unwrap();
    let catalog = Catalog::new(
        catalog_db.pool(),
        phoenix_inventory::Client::Local(inventory.clone()),
        phoenix_identity::Client::Local(identity.clone()),
        phoenix_catalog::Options::default(),
        OfferSigner::new(b"a test key that is long enough!!"),
    )
    .await
    .unwrap();
    let hotel = hotel(&catalog, &identity).await;
    airline(&catalog, &identity).await;
    let booking = Service::new(
        pool.clone(),
        options,
        phoenix_catalog::Client::Local(catalog.clone()),
        phoenix_identity::Client::Local(identity.clone()),
    );
    World {
        client: Client::Local(booking.clone()),
        booking,
        pool,
        catalog,
        inventory,
        identity,
        hotel,
        _databases: vec![inventory_db, identity_db, catalog_db],
    }
}

async fn organization(identity: &phoenix_identity::Service, kind: phoenix_identity::OrganizationKind) -> Uuid {
    let name = format!("Org {}", Uuid::now_v7().simple());
    identity.create_organization(&name, kind, None).await.unwrap().id
}

async fn hotel(catalog: &Catalog, identity: &phoenix_identity::Service) -> Hotel {
    let org = organization(identity, phoenix_identity::OrganizationKind::HotelChain).await;
    let ops = principal(&[Role::Operator], Some(org));
    let hotel = catalog
        .create_hotel(
            &ops,
            HotelInput {
                organization_id: None,
                name: "Hotel du Port".into(),
                description: "By the harbour".into(),
                address: "2 Quai du Port".into(),
                city: "Marseille".into(),
                country: "FR".into(),
                latitude: 43.2965,
                longitude: 5.3698,
                stars: 3,
                amenities: vec!["free_wifi".into()],
                time_zone: "Europe/Paris".into(),
            },
        )
        .await
        .unwrap();
    let room = catalog
        .create_room_type(
            &ops,
            hotel.id,
            RoomTypeInput {
                name: "Double".into(),
                max_occupancy: 2,
                beds: "1 double".into(),
                rooms: 4,
            },
        )
        .await
        .unwrap();
    let mut plans = Vec::new();
    for (name, refundable, hours) in [("Flexible", true, Some(72)), ("Saver", false, None)] {
        let plan = catalog
            .create_rate_plan(
                &ops,
                hotel.id,
                RatePlanInput {
                    room_type_id: room.id,
                    name: name.into(),
                    meal_plan: phoenix_catalog::hotel::MealPlan::Breakfast,
                    refundable,
                    free_cancellation_hours: hours,
                    currency: "EUR".into(),
                },
            )
            .await
            .unwrap();
        let prices = PricesInput {
            from: day(0),
            to: day(30),
            amount_minor: 8_000,
        };
        catalog.set_prices(&ops, hotel.id, plan.id, prices).await.unwrap();
        plans.push(plan.id);
    }
    Hotel {
        hotel_id: hotel.id,
        room_type_id: room.id,
        flexible: plans[0],
        saver: plans[1],
    }
}

async fn airline(catalog: &Catalog, identity: &phoenix_identity::Service) {
    let org = organization(identity, phoenix_identity::OrganizationKind::Airline).await;
    let input = AirlineInput {
        code: "PX".into(),
        name: "PX Airways".into(),
        organization_id: org,
    };
    catalog.create_airline(&admin(), input).await.unwrap();
    let fares = [("Y", 20_000, true), ("Q", 10_000, false)]
        .into_iter()
        .map(|(code, price_minor, refundable)| FareClass {
            code: code.into(),
            price_minor,
            refundable,
            change_fee_minor: 0,
            baggage_pieces: 1,
            booking_limit: 10,
        })
        .collect();
    let schedule = ScheduleInput {
        airline: "PX".into(),
        flight_number: FLIGHT.into(),
        origin: "CDG".into(),
        destination: "LHR".into(),
        departure_time: "08:00".into(),
        duration_minutes: 80,
        days: vec![1, 2, 3, 4, 5, 6, 7],
        effective_from: day(1),
        effective_to: day(30),
        currency: "EUR".into(),
        cabins: vec![CabinPlan {
            cabin: Cabin::Economy,
            seats: 10,
            overbooking_limit: 0,
            fares,
        }],
    };
    catalog
        .create_schedule(&principal(&[Role::Operator], Some(org)), schedule)
        .await
        .unwrap();
}

pub fn principal(roles: &[Role], organization_id: Option<Uuid>) -> Principal {
    Principal {
        user_id: Uuid::now_v7(),
        roles: Roles::from(roles),
        organization_id,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

pub fn customer() -> Principal {
    principal(&[Role::Customer], None)
}

pub fn admin() -> Principal {
    principal(&[Role::Admin], None)
}

pub fn support() -> Principal {
    principal(&[Role::Support], None)
}

pub fn agent(organization_id: Uuid) -> Principal {
    principal(&[Role::Agent], Some(organization_id))
}

/// `who` signed in again after an admin gave them `roles` in `organization_id`: the same user, a new token.
pub fn signed_in_again(who: &Principal, roles: &[Role], organization_id: Option<Uuid>) -> Principal {
    Principal {
        user_id: who.user_id,
        ..principal(roles, organization_id)
    }
}

/// `n` days from today.
pub fn day(n: i64) -> Day {
    Day(OffsetDateTime::now_utc().date() + Duration::days(n))
}

impl World {
    /// A user identity knows, with `roles` in `organization_id` (which must exist), signed in.
    pub async fn user(&self, roles: &[Role], organization_id: Option<Uuid>) -> Principal {
        let email = format!("user-{}@example.test", Uuid::now_v7().simple());
        let user = self
            .identity
            .create_user(phoenix_identity::NewUser {
                email: &email,
                password: "a long enough test password",
                name: "Test User",
                roles,
                organization_id,
            })
            .await
            .unwrap();
        Principal {
            user_id: user.id,
            ..principal(roles, organization_id)
        }
    }

    /// An organization identity knows.
    pub async fn organization(&self, kind: phoenix_identity::OrganizationKind) -> Uuid {
        organization(&self.identity, kind).await
    }

    /// A stay of `nights` from day `from` with `plan`, as a request item.
    pub fn stay(&self, plan: Uuid, from: i64, nights: i64, rooms: u32, guests: u32) -> Value {
        json!({
            "kind": "hotel", "hotel_id": self.hotel.hotel_id, "room_type_id": self.hotel.room_type_id,
            "rate_plan_id": plan, "check_in": day(from), "check_out": day(from + nights),
            "rooms": rooms, "guests": guests
        })
    }

    /// The flight on day `on` in fare `fare` for `adults`, `children` and `infants`.
    pub fn flight(&self, on: i64, fare: &str, adults: u32, children: u32, infants: u32) -> Value {
        json!({
            "kind": "flight", "departure_ids": [format!("{FLIGHT}-{}", day(on).0)], "cabin": "economy",
            "fare_codes": [fare], "passengers": {"adults": adults, "children": children, "infants": infants}
        })
    }

    /// Books `items` for `travellers` (adults born in 1990 unless a test builds its own) and unwraps the answer.
    pub async fn book(&self, actor: &Principal, items: Vec<Value>, n_travellers: usize) -> Booking {
        let request = request(items, adults(n_travellers));
        self.booking.create(actor, request, &key()).await.unwrap().booking
    }

    /// Plays the booking saga to its confirmation for every pending request.
    pub async fn confirm_all(&self) -> Vec<Uuid> {
        let mut confirmed = Vec::new();
        for request in self.client.saga_requests(100).await.unwrap() {
            if request.kind != SagaKind::Booking {
                continue;
            }
            self.client
                .acknowledge(&[(request.booking_id, request.kind)])
                .await
                .unwrap();
            let outcome = Outcome::Confirmed {
                hold_id: Uuid::now_v7(),
                payment_id: Uuid::now_v7(),
                captured_minor: request.amount_minor,
            };
            self.client.record_outcome(request.booking_id, &outcome).await.unwrap();
            confirmed.push(request.booking_id);
        }
        confirmed
    }

    /// A confirmed booking of `items` for one adult, made by `actor`.
    pub async fn confirmed(&self, actor: &Principal, items: Vec<Value>) -> Booking {
        let booking = self.book(actor, items, 1).await;
        assert!(self.confirm_all().await.contains(&booking.id));
        self.booking.get(actor, booking.id).await.unwrap()
    }
}

pub fn adults(n: usize) -> Value {
    let names = ["Lee", "Okafor", "Silva", "Novak"];
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"first_name": "Ann", "last_name": names[i % names.len()], "type": "adult",
                       "date_of_birth": "1990-04-02"})
            })
            .collect(),
    )
}

/// A request for `items` and `travellers` (a JSON array) paid with a test token.
pub fn request(items: Vec<Value>, travellers: Value) -> BookingRequest {
    serde_json::from_value(json!({
        "items": items,
        "travellers": travellers,
        "contact": {"email": "ann@example.com", "phone": "+33 6 12 34 56 78"},
        "payment_token": "tok_visa",
    }))
    .unwrap()
}

pub fn key() -> String {
    Uuid::new_v4().to_string()
}

/// Events of `event_type` in booking's outbox.
pub async fn events_of(pool: &Pool, event_type: &str) -> Vec<Value> {
    pool.unpublished_events(10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .map(|e| e.data.0)
        .collect()
}

pub async fn n_bookings(pool: &Pool) -> i64 {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_scalar("SELECT COUNT(*) FROM bookings").fetch_one(conn).await
    })
    .unwrap()
}
