//! `phoenix bench booking`: confirmed bookings per second end to end, then proof that nothing was oversold and every
//! confirmed booking was charged exactly once.
//!
//! Each scenario starts the whole platform in this process on fresh storage (SQLite files in a temporary directory,
//! or fresh PostgreSQL databases that are dropped afterwards), sets up its world directly through the in-process
//! services, signs one customer in per client over HTTP, and has `clients` closed-loop clients `POST
//! /api/v1/bookings` over loopback for `duration_secs`: quote, pending booking, saga (hold, authorize on the simulated
//! provider, confirm the hold, capture, confirm the booking), answer. Only a 201 (confirmed) counts as a booking.
//!
//! - *spread*: stays of 1 to 3 nights in one of many hotels, room types and nights, each with plenty of rooms, so
//!   bookings rarely meet on a bucket and never sell one out;
//! - *flash*: every client books a seat on the same departure (`flash_seats` seats) until they are gone, then keeps
//!   trying: the sold-out 409s are rejections, not errors. Its rate is taken up to the last seat sold.
//!
//! Afterwards, once no booking is pending, it checks from the services' own records: every bucket's `sold` equals
//! the units of the confirmed bookings holding it, nothing is still held, `held + sold` is within capacity, every 201
//! names a confirmed booking of that total, and the simulated provider captured exactly the confirmed bookings'
//! totals (and left no authorization open). A broken check fails the command.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use phoenix_api::{Credential, PageParams, Principal, Role, Roles};
use phoenix_booking::{ListFilter, Status};
use phoenix_catalog::flight::{Cabin, CabinPlan, FareClass};
use phoenix_catalog::hotel::{Hotel, MealPlan, RatePlan, RoomType};
use phoenix_catalog::model::{AirlineInput, Day, ScheduleInput};
use phoenix_catalog::{HotelEntry, geo};
use phoenix_db::{Pool, PoolOptions, dispatch};
use phoenix_identity::OrganizationKind;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::bench::{machine, today};
use crate::cli::{BenchBooking, BenchScenario};
use crate::{App, Config, app};

/// Spread demand: hotels x room types x priced nights, each bucket with `SPREAD_ROOMS` rooms.
const SPREAD_HOTELS: usize = 200;
const SPREAD_ROOM_TYPES: usize = 3;
const SPREAD_NIGHTS: i64 = 60;
const SPREAD_ROOMS: i64 = 1_000;
/// Hotels loaded per catalog call.
const HOTELS_PER_LOAD: usize = 100;
/// Most seats a cabin may have (the catalog's limit): a flash sale of more seats splits them over two cabins.
const MAX_CABIN_SEATS: i64 = 1_000;
/// Longest wait for the sagas still running when the clients stop.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Every benchmark customer's password.
const PASSWORD: &str = "quiet-meadow-copper-lantern-77";
/// Customers signed in at once while setting up (each sign-in hashes a password).
const SIGN_IN_CONCURRENCY: usize = 8;
/// Distinct error messages kept for the report.
const MAX_ERROR_KINDS: usize = 20;
/// The services with a database of their own, as suffixes of the run's PostgreSQL database names.
const DATABASES: [&str; 7] = [
    "identity",
    "inventory",
    "catalog",
    "booking",
    "payment",
    "payment_simulator",
    "saga",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Spread,
    Flash,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Spread => "spread",
            Scenario::Flash => "flash",
        }
    }
}

/// What a scenario measured and what the verification found.
struct Outcome {
    scenario: Scenario,
    tally: Tally,
    elapsed: Duration,
    verification: Verification,
    step_ms: Vec<(String, f64)>,
}

pub async fn run(options: BenchBooking) -> anyhow::Result<()> {
    if !(1..=2 * MAX_CABIN_SEATS).contains(&options.flash_seats) {
        bail!("--flash-seats must be between 1 and {}", 2 * MAX_CABIN_SEATS);
    }
    if options.clients == 0 || options.duration_secs == 0 {
        bail!("--clients and --duration-secs must be at least 1");
    }
    let scenarios = match options.scenario {
        BenchScenario::Spread => vec![Scenario::Spread],
        BenchScenario::Flash => vec![Scenario::Flash],
        BenchScenario::Both => vec![Scenario::Spread, Scenario::Flash],
    };
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        eprintln!("running {} ...", scenario.name());
        outcomes.push(measure(&options, scenario).await?);
    }
    print(&options, &outcomes);
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.verification.problems.is_empty())
        .map(|o| o.scenario.name())
        .collect();
    if !failed.is_empty() {
        bail!("verification failed: {}", failed.join(", "));
    }
    Ok(())
}

async fn measure(options: &BenchBooking, scenario: Scenario) -> anyhow::Result<Outcome> {
    let storage = Storage::create(options.database_url.as_deref()).await?;
    let platform = match Platform::start(&storage).await {
        Ok(platform) => platform,
        Err(error) => {
            storage.finish(false).await;
            return Err(error);
        }
    };
    let result = async {
        let world = Arc::new(match scenario {
            Scenario::Spread => World::spread(&platform).await?,
            Scenario::Flash => World::flash(&platform, options.flash_seats).await?,
        });
        let tokens = sign_in(&platform, options.clients).await?;
        let steps_before = step_times();
        let started = Instant::now();
        let duration = Duration::from_secs(options.duration_secs);
        let tally = drive(&platform.base, &world, tokens, duration).await?;
        let elapsed = started.elapsed();
        settle(&platform).await?;
        let step_ms = step_means(&steps_before, &step_times());
        let verification = verify(&platform, &world, &tally).await?;
        anyhow::Ok(Outcome {
            scenario,
            tally,
            elapsed,
            verification,
            step_ms,
        })
    }
    .await;
    let stopped = platform.stop().await;
    // A run whose checks failed keeps its databases to be looked at; any other run leaves nothing behind.
    let keep = result.as_ref().is_ok_and(|o| !o.verification.problems.is_empty());
    storage.finish(keep).await;
    stopped?;
    result
}

/// Where one scenario keeps its data.
struct Storage {
    dir: tempfile::TempDir,
    postgres: Option<Postgres>,
}

/// Fresh databases on a PostgreSQL server: `<name>_<run>_<service>`, none of which existed before this run.
struct Postgres {
    /// The `database_url` the platform is given: the server and `<name>_<run>`.
    url: String,
    /// The server's `postgres` database: where this run's names are checked to be free beforehand, and its
    /// databases dropped afterwards.
    admin_url: String,
    names: Vec<String>,
}

impl Storage {
    async fn create(database_url: Option<&str>) -> anyhow::Result<Storage> {
        let dir = tempfile::tempdir().context("temporary data directory")?;
        let Some(database_url) = database_url else {
            return Ok(Storage { dir, postgres: None });
        };
        let mut url = url::Url::parse(database_url).context("--database-url")?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            bail!("--database-url must be a postgres:// URL (leave it unset for SQLite)");
        }
        let prefix = match url.path().trim_start_matches('/') {
            "" => "phoenix_bench".to_owned(),
            name => name.to_owned(),
        };
        let run = format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..8]);
        let names: Vec<String> = DATABASES.iter().map(|service| format!("{run}_{service}")).collect();
        if names.iter().any(|n| {
            n.len() > 63
                || !n
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        }) {
            bail!("--database-url: the database name must be short lowercase letters, digits and underscores");
        }
        url.set_path("postgres");
        let admin_url = url.to_string();
        let admin = Pool::connect(&admin_url, admin_options())
            .await
            .context("connecting to PostgreSQL")?;
        let existing: Vec<String> = dispatch!(&admin, conn => {
            sqlx::query_scalar("SELECT datname FROM pg_database").fetch_all(conn).await
        })?;
        admin.close().await;
        if existing.iter().any(|name| names.contains(name)) {
            bail!("databases named {run}_* exist already: not touching them");
        }
        url.set_path(&run);
        Ok(Storage {
            dir,
            postgres: Some(Postgres {
                url: url.to_string(),
                admin_url,
                names,
            }),
        })
    }

    /// Drops this run's PostgreSQL databases, or keeps them (and says so) for a run that failed.
    async fn finish(self, keep: bool) {
        let Some(postgres) = self.postgres else {
            return;
        };
        if keep {
            eprintln!("kept for inspection: databases {}", postgres.names.join(", "));
            return;
        }
        let Ok(admin) = Pool::connect(&postgres.admin_url, admin_options()).await else {
            eprintln!("could not drop databases {}", postgres.names.join(", "));
            return;
        };
        for name in &postgres.names {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let dropped = dispatch!(&admin, conn => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await.map(|_| ())
            });
            if let Err(error) = dropped {
                eprintln!("could not drop database {name}: {error}");
            }
        }
        admin.close().await;
    }
}

fn admin_options() -> PoolOptions {
    PoolOptions {
        max_connections: 1,
        ..PoolOptions::default()
    }
}

/// The whole platform, serving on loopback, and the in-process handles the set-up and the checks use.
struct Platform {
    base: String,
    identity: phoenix_identity::Service,
    inventory: phoenix_inventory::Service,
    catalog: phoenix_catalog::Catalog,
    booking: phoenix_booking::Service,
    /// The simulated provider's books, opened at the start: once the platform is busy, PostgreSQL may have no
    /// connection left to give.
    ledger: Pool,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Platform {
    async fn start(storage: &Storage) -> anyhow::Result<Platform> {
        let mut config = Config {
            data_dir: storage.dir.path().to_owned(),
            ..Config::default()
        };
        config.database_url = storage
            .postgres
            .as_ref()
            .map(|p| crate::config::Secret::new(p.url.clone()));
        // Out of the way: the gateway's limits per user and per address, and inventory's bound on open holds.
        config.gateway.rate_limit_per_user_per_min = u32::MAX / 2;
        config.gateway.rate_limit_per_ip_per_min = u32::MAX / 2;
        config.inventory.max_open_holds_per_holder = i64::MAX / 2;
        config.validate()?;
        let app = App::build(config.clone()).await?;
        let missing = || anyhow::anyhow!("every role runs in this process");
        let identity = app.identity().cloned().ok_or_else(missing)?;
        let inventory = app.inventory().cloned().ok_or_else(missing)?;
        let catalog = app.catalog().cloned().ok_or_else(missing)?;
        let booking = app.booking().cloned().ok_or_else(missing)?;
        let ledger = app::simulator_database(&config).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Platform {
            base,
            identity,
            inventory,
            catalog,
            booking,
            ledger,
            stop,
            server,
        })
    }

    /// Stops serving and closes the databases; the handles go first so that the services' background loops end
    /// with the server.
    async fn stop(self) -> anyhow::Result<()> {
        let Platform {
            stop,
            server,
            ledger,
            identity,
            inventory,
            catalog,
            booking,
            ..
        } = self;
        drop((identity, inventory, catalog, booking));
        ledger.close().await;
        let _ = stop.send(());
        server.await.context("server task")?
    }
}

/// What the clients book: stays spread over many buckets, or seats on one departure.
enum World {
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

struct StayChoice {
    hotel_id: Uuid,
    room_type_id: Uuid,
    rate_plan_id: Uuid,
}

/// `n` days from today, as a date.
fn day(n: i64) -> time::Date {
    time::OffsetDateTime::now_utc().date() + time::Duration::days(n)
}

fn principal(role: Role, organization_id: Option<Uuid>) -> Principal {
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
    async fn spread(platform: &Platform) -> anyhow::Result<World> {
        let chain = platform
            .identity
            .create_organization("Bench Hotels", OrganizationKind::HotelChain)
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
    async fn flash(platform: &Platform, seats: i64) -> anyhow::Result<World> {
        let airline = platform
            .identity
            .create_organization("Bench Air", OrganizationKind::Airline)
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
    fn body(&self, client: usize, random: &mut Random) -> Bytes {
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
    fn buckets(&self) -> Vec<String> {
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
fn room_with_plan(hotel: &Hotel, kind: usize, number: usize, nights: &[time::Date]) -> (RoomType, RatePlan) {
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
async fn sign_in(platform: &Platform, clients: usize) -> anyhow::Result<Vec<String>> {
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

/// xorshift64*: plenty for picking what to book.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// What the clients saw.
struct Tally {
    /// Latency of the 201s, in microseconds.
    confirmed: Histogram<u64>,
    /// Latency of the rejections (402, 409), in microseconds.
    rejected: Histogram<u64>,
    /// Id and total of every booking answered 201.
    bookings: Vec<(Uuid, i64)>,
    /// Answered 202: still with the saga when the booking's wait ended.
    pending: u64,
    /// Rejections by problem code.
    rejections: BTreeMap<String, u64>,
    errors: u64,
    /// Errors by what they said (the first `MAX_ERROR_KINDS` kinds).
    error_kinds: BTreeMap<String, u64>,
    /// When the last 201 arrived, from the start.
    last_confirmed: Duration,
}

impl Tally {
    fn new() -> anyhow::Result<Tally> {
        Ok(Tally {
            confirmed: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            rejected: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            bookings: Vec::new(),
            pending: 0,
            rejections: BTreeMap::new(),
            errors: 0,
            error_kinds: BTreeMap::new(),
            last_confirmed: Duration::ZERO,
        })
    }

    fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.confirmed.add(other.confirmed)?;
        self.rejected.add(other.rejected)?;
        self.bookings.extend(other.bookings);
        self.pending += other.pending;
        for (code, n) in other.rejections {
            *self.rejections.entry(code).or_default() += n;
        }
        self.errors += other.errors;
        for (kind, n) in other.error_kinds {
            self.error(kind, n);
        }
        self.last_confirmed = self.last_confirmed.max(other.last_confirmed);
        Ok(())
    }

    fn error(&mut self, kind: String, n: u64) {
        if self.error_kinds.len() < MAX_ERROR_KINDS || self.error_kinds.contains_key(&kind) {
            *self.error_kinds.entry(kind).or_default() += n;
        }
    }

    fn n_rejected(&self) -> u64 {
        self.rejections.values().sum()
    }
}

/// How the platform answered one booking request.
enum Answer {
    Confirmed { id: Uuid, total_minor: i64 },
    Pending,
    Rejected(String),
    Error(String),
}

#[derive(Deserialize)]
struct Created {
    id: Uuid,
    status: String,
    total_minor: i64,
}

#[derive(Deserialize)]
struct ProblemCode {
    code: String,
}

fn answer(status: StatusCode, body: &[u8]) -> Answer {
    match status {
        StatusCode::CREATED => match serde_json::from_slice::<Created>(body) {
            Ok(created) if created.status == "confirmed" => Answer::Confirmed {
                id: created.id,
                total_minor: created.total_minor,
            },
            Ok(created) => Answer::Error(format!("201 with status {}", created.status)),
            Err(_) => Answer::Error("201 without a booking".to_owned()),
        },
        StatusCode::ACCEPTED => Answer::Pending,
        StatusCode::PAYMENT_REQUIRED | StatusCode::CONFLICT => {
            match serde_json::from_slice::<ProblemCode>(body).map(|p| p.code) {
                Ok(code) if code != "idempotency_key_in_use" => Answer::Rejected(format!("{} {code}", status.as_u16())),
                Ok(code) => Answer::Error(format!("{} {code}", status.as_u16())),
                Err(_) => Answer::Error(format!("{} without a problem", status.as_u16())),
            }
        }
        status => {
            let code = serde_json::from_slice::<ProblemCode>(body)
                .map(|p| p.code)
                .unwrap_or_default();
            Answer::Error(format!("{} {code}", status.as_u16()))
        }
    }
}

/// One client per token, each sending its next booking as soon as the last is answered, for `duration`.
async fn drive(base: &str, world: &Arc<World>, tokens: Vec<String>, duration: Duration) -> anyhow::Result<Tally> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(tokens.len())
        .build(connector);
    let uri: hyper::Uri = format!("{base}/api/v1/bookings").parse().context("bookings URL")?;
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.into_iter().enumerate() {
        let client = BookingClient {
            http: client.clone(),
            uri: uri.clone(),
            authorization: hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("access token as a header")?,
            world: world.clone(),
            index,
        };
        tasks.push(tokio::spawn(client.run(started, until)));
    }
    let mut tally = Tally::new()?;
    for task in tasks {
        tally.merge(task.await.context("booking client")??)?;
    }
    Ok(tally)
}

/// One closed-loop client: one customer, one request at a time.
struct BookingClient {
    http: Client<HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
    authorization: hyper::header::HeaderValue,
    world: Arc<World>,
    index: usize,
}

impl BookingClient {
    async fn run(self, started: Instant, until: Instant) -> anyhow::Result<Tally> {
        let mut tally = Tally::new()?;
        let mut random = Random((self.index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        loop {
            // Built before the clock starts: the generator's own work is not the platform's latency.
            let body = self.world.body(self.index, &mut random);
            let request = Request::post(self.uri.clone())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header(hyper::header::AUTHORIZATION, self.authorization.clone())
                .header("idempotency-key", Uuid::new_v4().to_string())
                .body(Full::new(body))
                .context("booking request")?;
            let sent = Instant::now();
            if sent >= until {
                break;
            }
            let answered = match self.http.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    match response.into_body().collect().await {
                        Ok(body) => answer(status, &body.to_bytes()),
                        Err(error) => Answer::Error(format!("reading the answer: {error}")),
                    }
                }
                Err(error) => Answer::Error(format!("sending: {error}")),
            };
            let micros = sent.elapsed().as_micros().max(1) as u64;
            match answered {
                Answer::Confirmed { id, total_minor } => {
                    tally.confirmed.record(micros)?;
                    tally.bookings.push((id, total_minor));
                    tally.last_confirmed = started.elapsed();
                }
                Answer::Pending => tally.pending += 1,
                Answer::Rejected(code) => {
                    tally.rejected.record(micros)?;
                    *tally.rejections.entry(code).or_default() += 1;
                }
                Answer::Error(kind) => {
                    tally.errors += 1;
                    tally.error(kind, 1);
                }
            }
        }
        Ok(tally)
    }
}

/// Waits until no booking is pending: requests answered 202 leave sagas running after the clients stop. Gives up
/// after `SETTLE_TIMEOUT` (the verification then reports the bookings still pending).
async fn settle(platform: &Platform) -> anyhow::Result<()> {
    let admin = principal(Role::Admin, None);
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let filter = ListFilter {
            status: Some(Status::Pending),
            customer_id: None,
        };
        let page = PageParams {
            limit: Some(1),
            cursor: None,
        };
        let pending = platform.booking.list(&admin, filter, &page).await?;
        if pending.items.is_empty() || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the checks found: one line per check, and what broke.
struct Verification {
    lines: Vec<String>,
    problems: Vec<String>,
    /// Every bucket of the world is sold out.
    sold_out: bool,
}

/// The confirmed bookings, as the booking service has them.
#[derive(Default)]
struct Books {
    by_status: BTreeMap<&'static str, u64>,
    /// Status and total of every booking.
    bookings: HashMap<Uuid, (Status, i64)>,
    /// Units the confirmed bookings hold, by bucket.
    units: HashMap<String, i64>,
    confirmed_total_minor: i64,
    currencies: BTreeMap<String, u64>,
}

async fn books(booking: &phoenix_booking::Service) -> anyhow::Result<Books> {
    let admin = principal(Role::Admin, None);
    let mut books = Books::default();
    let mut cursor = None;
    loop {
        let page = PageParams {
            limit: Some(booking.options().max_page_size),
            cursor,
        };
        let page = booking.list(&admin, ListFilter::default(), &page).await?;
        for b in &page.items {
            *books.by_status.entry(b.status.as_str()).or_default() += 1;
            books.bookings.insert(b.id, (b.status, b.total_minor));
            if b.status != Status::Confirmed {
                continue;
            }
            books.confirmed_total_minor += b.total_minor;
            *books.currencies.entry(b.currency.clone()).or_default() += 1;
            for line in b.items.iter().flat_map(|item| &item.inventory_lines) {
                *books.units.entry(line.item_id.clone()).or_default() += line.quantity;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(books),
        }
    }
}

async fn verify(platform: &Platform, world: &World, tally: &Tally) -> anyhow::Result<Verification> {
    let books = books(&platform.booking).await?;
    let mut verification = Verification {
        lines: Vec::new(),
        problems: Vec::new(),
        sold_out: false,
    };
    let n_confirmed = books.by_status.get("confirmed").copied().unwrap_or(0);
    let statuses: Vec<String> = books.by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    verification.lines.push(format!("bookings: {}", statuses.join(", ")));
    let in_flight: u64 = ["pending", "cancelling"]
        .iter()
        .filter_map(|s| books.by_status.get(s))
        .sum();
    if in_flight > 0 {
        verification.problems.push(format!(
            "{in_flight} bookings still in flight {} s after the clients stopped",
            SETTLE_TIMEOUT.as_secs()
        ));
    }
    let unconfirmed = tally
        .bookings
        .iter()
        .filter(|(id, total)| books.bookings.get(id) != Some(&(Status::Confirmed, *total)))
        .count();
    if unconfirmed > 0 {
        verification.problems.push(format!(
            "{unconfirmed} bookings answered 201 are not confirmed at that total"
        ));
    }
    check_buckets(platform, world, &books, &mut verification).await?;
    check_provider(platform, &books, n_confirmed, &mut verification).await?;
    Ok(verification)
}

/// Every bucket of the world (and any other a confirmed booking holds): `sold` equal to the confirmed units,
/// nothing held once no booking is in flight, `held + sold` within the bucket's limit.
async fn check_buckets(
    platform: &Platform,
    world: &World,
    books: &Books,
    verification: &mut Verification,
) -> anyhow::Result<()> {
    let mut ids = world.buckets();
    let known: std::collections::HashSet<&String> = ids.iter().collect();
    let others: Vec<String> = books.units.keys().filter(|id| !known.contains(id)).cloned().collect();
    ids.extend(others);
    let (mut mismatched, mut held, mut oversold, mut sold_units, mut found) = (0u64, 0i64, 0u64, 0i64, 0usize);
    let mut sold_out = 0usize;
    for chunk in ids.chunks(platform.inventory.options().max_availability_items) {
        for bucket in platform.inventory.availability(chunk).await? {
            found += 1;
            let confirmed = books.units.get(bucket.item_id.as_str()).copied().unwrap_or(0);
            mismatched += u64::from(bucket.sold != confirmed);
            held += bucket.held;
            oversold += u64::from(bucket.held + bucket.sold > bucket.capacity + bucket.overbooking_limit);
            sold_out += usize::from(bucket.sold >= bucket.capacity + bucket.overbooking_limit);
            sold_units += bucket.sold;
        }
    }
    verification.lines.push(format!(
        "inventory: {found} buckets, {sold_units} units sold, {sold_out} sold out; every bucket's sold = its \
         confirmed bookings' units: {}; nothing held: {}; held + sold <= capacity everywhere: {}",
        yes(mismatched == 0),
        yes(held == 0),
        yes(oversold == 0)
    ));
    verification.sold_out = found > 0 && sold_out == found;
    if found != ids.len() {
        verification
            .problems
            .push(format!("{} buckets missing from inventory", ids.len() - found));
    }
    if mismatched > 0 {
        verification.problems.push(format!(
            "{mismatched} buckets whose sold differs from their confirmed bookings"
        ));
    }
    if held > 0 {
        verification
            .problems
            .push(format!("{held} units still held with no booking in flight"));
    }
    if oversold > 0 {
        verification.problems.push(format!("{oversold} buckets oversold"));
    }
    Ok(())
}

/// The simulated provider's own books: captured exactly the confirmed bookings' totals, once each, and holds no
/// authorization open.
async fn check_provider(
    platform: &Platform,
    books: &Books,
    n_confirmed: u64,
    verification: &mut Verification,
) -> anyhow::Result<()> {
    let sums: (i64, i64, i64, i64, i64) = dispatch!(&platform.ledger, conn => {
        sqlx::query_as(
            "SELECT
                (SELECT COUNT(*) FROM simulator_payments WHERE status = 'captured'),
                (SELECT CAST(COALESCE(SUM(captured_minor), 0) AS BIGINT) FROM simulator_payments),
                (SELECT CAST(COALESCE(SUM(refunded_minor), 0) AS BIGINT) FROM simulator_payments),
                (SELECT COUNT(*) FROM simulator_payments WHERE status = 'authorized'),
                (SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM simulator_ledger WHERE kind = 'capture')",
        )
        .fetch_one(conn)
        .await
    })?;
    let (captured_n, captured_minor, refunded_minor, open_n, ledger_captured_minor) = sums;
    let currencies: Vec<String> = books.currencies.keys().cloned().collect();
    verification.lines.push(format!(
        "provider: {captured_n} payments captured, {} {} in all (ledger {}), {open_n} authorizations open; \
         confirmed bookings' totals {}",
        money(captured_minor),
        currencies.join("+"),
        money(ledger_captured_minor),
        money(books.confirmed_total_minor),
    ));
    if captured_minor != books.confirmed_total_minor || ledger_captured_minor != captured_minor {
        verification.problems.push(format!(
            "captured {} (ledger {}) but confirmed bookings total {}",
            money(captured_minor),
            money(ledger_captured_minor),
            money(books.confirmed_total_minor)
        ));
    }
    if captured_n as u64 != n_confirmed {
        verification.problems.push(format!(
            "{captured_n} payments captured for {n_confirmed} confirmed bookings"
        ));
    }
    if open_n > 0 || refunded_minor > 0 {
        verification.problems.push(format!(
            "{open_n} authorizations left open, {} refunded",
            money(refunded_minor)
        ));
    }
    if books.currencies.len() > 1 {
        verification.problems.push(format!(
            "bookings in several currencies ({}): totals not comparable",
            currencies.join(", ")
        ));
    }
    Ok(())
}

fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Seconds spent in each saga step so far and how many times it ran, from this process's metrics.
fn step_times() -> HashMap<String, (f64, f64)> {
    let mut steps: HashMap<String, (f64, f64)> = HashMap::new();
    for line in phoenix_gateway::telemetry::render().lines() {
        let (rest, is_sum) = match (
            line.strip_prefix("phoenix_saga_step_seconds_sum{"),
            line.strip_prefix("phoenix_saga_step_seconds_count{"),
        ) {
            (Some(rest), _) => (rest, true),
            (_, Some(rest)) => (rest, false),
            _ => continue,
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Some(step) = labels
            .split(',')
            .find_map(|label| label.strip_prefix("step=\""))
            .map(|s| s.trim_end_matches('"'))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let entry = steps.entry(step.to_owned()).or_default();
        if is_sum {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    steps
}

/// Mean milliseconds of each saga step between two readings, in the order the steps run.
fn step_means(before: &HashMap<String, (f64, f64)>, after: &HashMap<String, (f64, f64)>) -> Vec<(String, f64)> {
    const ORDER: [&str; 8] = [
        "hold_inventory",
        "authorize_payment",
        "confirm_hold",
        "capture_payment",
        "confirm_booking",
        "void_payment",
        "release_hold",
        "fail_booking",
    ];
    ORDER
        .iter()
        .filter_map(|step| {
            let (sum, count) = after.get(*step).copied()?;
            let (sum_before, count_before) = before.get(*step).copied().unwrap_or_default();
            let n = count - count_before;
            (n > 0.0).then(|| ((*step).to_owned(), (sum - sum_before) / n * 1000.0))
        })
        .collect()
}

fn print(options: &BenchBooking, outcomes: &[Outcome]) {
    let backend = if options.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!("phoenix bench booking: {} on {}", today(), machine());
    println!(
        "{backend}, {} clients, {} s per scenario, fresh platform and databases per scenario, build: {}",
        options.clients,
        options.duration_secs,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!();
    println!(
        "| backend | scenario | confirmed/s | over | p50 | p99 | max | confirmed (201) | 202 | rejected | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for outcome in outcomes {
        let tally = &outcome.tally;
        let n = tally.confirmed.len();
        // A flash sale's rate is the rate it sold at: until the last seat, not until the clients stopped.
        let window = match outcome.scenario {
            Scenario::Flash if outcome.verification.sold_out => tally.last_confirmed,
            _ => outcome.elapsed,
        };
        let over = match outcome.scenario {
            Scenario::Flash if outcome.verification.sold_out => format!("{:.2} s to sell out", window.as_secs_f64()),
            Scenario::Flash => format!("{:.1} s, not sold out", window.as_secs_f64()),
            Scenario::Spread => format!("{:.1} s", window.as_secs_f64()),
        };
        let ms = |q: f64| tally.confirmed.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {backend} | {} | {:.0} | {over} | {:.1} ms | {:.1} ms | {:.1} ms | {n} | {} | {} | {} |",
            outcome.scenario.name(),
            n as f64 / window.as_secs_f64().max(f64::MIN_POSITIVE),
            ms(0.5),
            ms(0.99),
            tally.confirmed.max() as f64 / 1000.0,
            tally.pending,
            tally.n_rejected(),
            tally.errors,
        );
    }
    for outcome in outcomes {
        print_details(options, outcome);
    }
}

fn print_details(options: &BenchBooking, outcome: &Outcome) {
    let tally = &outcome.tally;
    println!();
    match outcome.scenario {
        Scenario::Spread => println!(
            "spread: {SPREAD_HOTELS} hotels x {SPREAD_ROOM_TYPES} room types x {SPREAD_NIGHTS} nights ({} buckets of \
             {SPREAD_ROOMS} rooms), stays of 1 to 3 nights, 1 room, 1 guest, card tok_visa",
            SPREAD_HOTELS * SPREAD_ROOM_TYPES * SPREAD_NIGHTS as usize
        ),
        Scenario::Flash if options.flash_seats > MAX_CABIN_SEATS => println!(
            "flash: one departure, {} seats ({} economy, {} business), every client books one seat (half of them in \
             each cabin) until the run ends, card tok_visa",
            options.flash_seats,
            options.flash_seats - options.flash_seats / 2,
            options.flash_seats / 2
        ),
        Scenario::Flash => println!(
            "flash: one departure, {} economy seats, every client books one seat until the run ends, card tok_visa",
            options.flash_seats
        ),
    }
    let requests = tally.confirmed.len() + tally.pending + tally.n_rejected() + tally.errors;
    println!(
        "  requests: {requests} ({:.0}/s over {:.1} s)",
        requests as f64 / outcome.elapsed.as_secs_f64(),
        outcome.elapsed.as_secs_f64()
    );
    if !tally.rejections.is_empty() {
        let codes: Vec<String> = tally
            .rejections
            .iter()
            .map(|(code, n)| format!("{code} x{n}"))
            .collect();
        println!(
            "  rejections: {}; p50 {:.1} ms, p99 {:.1} ms",
            codes.join(", "),
            tally.rejected.value_at_quantile(0.5) as f64 / 1000.0,
            tally.rejected.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    if !tally.error_kinds.is_empty() {
        let kinds: Vec<String> = tally
            .error_kinds
            .iter()
            .map(|(kind, n)| format!("{kind} x{n}"))
            .collect();
        println!("  errors: {}", kinds.join(", "));
    }
    if !outcome.step_ms.is_empty() {
        let steps: Vec<String> = outcome
            .step_ms
            .iter()
            .map(|(step, ms)| format!("{step} {ms:.1}"))
            .collect();
        println!("  saga steps, mean ms: {}", steps.join(", "));
    }
    for line in &outcome.verification.lines {
        println!("  {line}");
    }
    if outcome.verification.problems.is_empty() {
        println!("  verified");
    } else {
        println!("  VERIFICATION FAILED: {}", outcome.verification.problems.join("; "));
    }
}
