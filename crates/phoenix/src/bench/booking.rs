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

mod load;
mod platform;
mod verify;
mod world;

use load::*;
use platform::*;
use verify::*;
use world::*;

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
const DATABASES: [&str; 9] = [
    "identity",
    "inventory",
    "catalog",
    "booking",
    "payment",
    "payment_simulator",
    "saga",
    "notification",
    "audit",
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
    /// CPU used while the clients ran (Linux only).
    cpu: Option<super::cpu::Used>,
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
    let platform = match Platform::start(&storage, options.nats_url.as_deref()).await {
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
        let measured_from = phoenix_db::Timestamp::now();
        let started = Instant::now();
        let cpu_before = super::cpu::Sample::now();
        let duration = Duration::from_secs(options.duration_secs);
        let tally = drive(&platform.base, &world, tokens, duration).await?;
        let elapsed = started.elapsed();
        let cpu = cpu_before
            .zip(super::cpu::Sample::now())
            .map(|(before, after)| after.since(before));
        settle(&platform).await?;
        let step_ms = step_means(&steps_before, &step_times());
        let verification = verify(&platform, &world, &tally, measured_from).await?;
        anyhow::Ok(Outcome {
            scenario,
            tally,
            elapsed,
            verification,
            step_ms,
            cpu,
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

fn print(options: &BenchBooking, outcomes: &[Outcome]) {
    let backend = match (&options.database_url, &options.nats_url) {
        (Some(_), Some(_)) => "postgres + nats",
        (Some(_), None) => "postgres",
        (None, Some(_)) => "sqlite + nats",
        (None, None) => "sqlite",
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
    if let Some(cpu) = &outcome.cpu {
        // Spread: each confirmed booking's cost. Flash: the rejections after the sell-out share the same time.
        let unit = match outcome.scenario {
            Scenario::Spread => "confirmed booking",
            Scenario::Flash => "request",
        };
        let units = match outcome.scenario {
            Scenario::Spread => tally.confirmed.len(),
            Scenario::Flash => requests,
        };
        println!("  {}", cpu.describe(outcome.elapsed, units, unit));
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
