//! The catalog's contract suite: every test runs against SQLite and against PostgreSQL, with inventory on a
//! database of the same engine, in process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod events;
mod fees;
mod flights;
mod hotels;
mod isolation;
mod quote;
mod quote_flights;
mod quote_remote;
mod sorting;

use phoenix_api::{Credential, Principal, Role, Roles};
use phoenix_catalog::model::{Day, HotelInput, PricesInput, RatePlanInput, RoomTypeInput};
use phoenix_catalog::offer::OfferSigner;
use phoenix_catalog::{Catalog, Error, Options};
use phoenix_db::testing::TestDatabase;
use phoenix_db::{Backend, Pool};
use phoenix_inventory::HoldRequest;
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

/// A catalog with an inventory of its own.
pub struct World {
    pub catalog: Catalog,
    pub inventory: phoenix_inventory::Service,
    pub inventory_db: TestDatabase,
    pub identity: phoenix_identity::Service,
    _identity_db: TestDatabase,
}

pub async fn world(pool: Pool) -> World {
    world_with(pool, Options::default()).await
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
    let catalog = catalog_on(pool, &inventory, &identity, options).await;
    World {
        catalog,
        inventory,
        inventory_db,
        identity,
        _identity_db: identity_db,
    }
}

/// A catalog on `pool` using `inventory` and `identity` in process.
pub async fn catalog_on(
    pool: Pool,
    inventory: &phoenix_inventory::Service,
    identity: &phoenix_identity::Service,
    options: Options,
) -> Catalog {
    let inventory = phoenix_inventory::Client::Local(inventory.clone());
    let identity = phoenix_identity::Client::Local(identity.clone());
    let signer = OfferSigner::new(b"a test key that is long enough!!");
    Catalog::new(pool, inventory, identity, options, signer).await.unwrap()
}

/// A new organization of `kind` in identity.
pub async fn organization(world: &World, kind: phoenix_identity::OrganizationKind) -> Uuid {
    let name = format!("Org {}", Uuid::now_v7().simple());
    world.identity.create_organization(&name, kind, None).await.unwrap().id
}

/// A new hotel chain.
pub async fn chain(world: &World) -> Uuid {
    organization(world, phoenix_identity::OrganizationKind::HotelChain).await
}

/// A new airline organization.
pub async fn airline_org(world: &World) -> Uuid {
    organization(world, phoenix_identity::OrganizationKind::Airline).await
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

pub fn operator(org: Uuid) -> Principal {
    principal(&[Role::Operator], Some(org))
}

pub fn admin() -> Principal {
    principal(&[Role::Admin], None)
}

pub fn agent() -> Principal {
    principal(&[Role::Agent], Some(Uuid::now_v7()))
}

pub fn eur() -> phoenix_catalog::money::Currency {
    phoenix_catalog::money::Currency::parse("EUR").unwrap()
}

pub fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// `n` days from today.
pub fn day(n: i64) -> Day {
    Day(today() + Duration::days(n))
}

pub fn hotel_input(city: &str) -> HotelInput {
    HotelInput {
        organization_id: None,
        name: "Hotel Lumiere".into(),
        description: "By the river".into(),
        address: "1 Quai de la Seine".into(),
        city: city.into(),
        country: "FR".into(),
        latitude: 48.8566,
        longitude: 2.3522,
        stars: 4,
        amenities: vec!["free_wifi".into(), "spa".into()],
        time_zone: "Europe/Paris".into(),
    }
}

/// A hotel's ids, as `hotel` made them.
pub struct HotelIds {
    pub hotel: Uuid,
    pub room_type: Uuid,
    pub rate_plan: Uuid,
}

/// A hotel of `org` in `city` with one room type of `rooms` rooms and one refundable EUR plan priced
/// `price(night_index)` for nights 10 to 29 from today.
pub async fn hotel(world: &World, org: Uuid, city: &str, rooms: i64, price: impl Fn(i64) -> i64) -> HotelIds {
    hotel_of(world, org, hotel_input(city), rooms, 10..30, price).await
}

/// [`hotel`], described by `input`, priced for the nights `nights` (days from today, UTC).
pub async fn hotel_of(
    world: &World,
    org: Uuid,
    input: HotelInput,
    rooms: i64,
    nights: std::ops::Range<i64>,
    price: impl Fn(i64) -> i64,
) -> HotelIds {
    let actor = operator(org);
    let c = &world.catalog;
    let hotel = c.create_hotel(&actor, input).await.unwrap();
    let room = c
        .create_room_type(
            &actor,
            hotel.id,
            RoomTypeInput {
                name: "Double".into(),
                max_occupancy: 2,
                beds: "1 queen".into(),
                rooms,
            },
        )
        .await
        .unwrap();
    let plan = c
        .create_rate_plan(
            &actor,
            hotel.id,
            RatePlanInput {
                room_type_id: room.id,
                name: "Flexible".into(),
                meal_plan: phoenix_catalog::hotel::MealPlan::Breakfast,
                refundable: true,
                free_cancellation_hours: Some(48),
                currency: "EUR".into(),
            },
        )
        .await
        .unwrap();
    for n in nights {
        c.set_prices(
            &actor,
            hotel.id,
            plan.id,
            PricesInput {
                from: day(n),
                to: day(n),
                amount_minor: price(n),
            },
        )
        .await
        .unwrap();
    }
    HotelIds {
        hotel: hotel.id,
        room_type: room.id,
        rate_plan: plan.id,
    }
}

/// Holds `quantity` of `item` as an agent would.
pub async fn hold(world: &World, item: &str, quantity: i64) {
    hold_as(&world.inventory, &agent(), item, quantity).await.unwrap();
}

/// Holds `quantity` of `item` for `holder`, who may release it.
pub async fn hold_as(
    inventory: &phoenix_inventory::Service,
    holder: &Principal,
    item: &str,
    quantity: i64,
) -> Result<phoenix_inventory::Hold, phoenix_inventory::Error> {
    let request = HoldRequest {
        lines: vec![(item.to_owned(), quantity)],
        ttl_secs: None,
        reference: None,
    };
    inventory.create_hold(holder, request, None).await
}

/// The fields a 422 names.
pub fn invalid_fields(result: Result<impl std::fmt::Debug, Error>) -> Vec<String> {
    match result {
        Err(Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected 422 invalid fields, got {other:?}"),
    }
}
