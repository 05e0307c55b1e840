//! `phoenix seed demo`: a realistic, deterministic dataset for trying Phoenix out and for `phoenix bench search`.
//!
//! Loads, on this configuration's databases: hotel-chain and airline organizations with one operator each and a
//! demo customer (identity); the demo airlines, about 2,000 hotels across 50 cities with 60 nights of prices, and a
//! few thousand flights a day for 60 days (catalog); and every bucket those need (inventory). The data itself comes
//! from `phoenix_catalog::demo`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use phoenix_api::{Credential, Principal, Role};
use phoenix_catalog::demo::{self, DemoOptions, Organizations};
use phoenix_identity::OrganizationKind;
use uuid::Uuid;

use crate::app;
use crate::config::Config;

/// The password of every demo account.
pub const DEMO_PASSWORD: &str = "sunny-harbour-lantern-42";
pub const DEMO_CUSTOMER: &str = "demo@phoenix.example";

/// Hotels or schedules loaded per transaction: big enough to be quick, small enough for a smooth progress bar.
const HOTELS_PER_STEP: usize = 100;
const SCHEDULES_PER_STEP: usize = 200;

/// What a seed loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub organizations: usize,
    pub hotels: usize,
    pub schedules: usize,
    pub departures: usize,
}

pub async fn demo(config: &Config, scale: u32, days: u32, quiet: bool) -> anyhow::Result<Seeded> {
    if !(1..=20).contains(&scale) {
        bail!("--scale must be between 1 and 20");
    }
    if !(1..=365).contains(&days) {
        bail!("--days must be between 1 and 365");
    }
    let started = Instant::now();
    let identity = app::identity_service(config).await?;
    let inventory = app::inventory_service(config).await?;
    let catalog = app::catalog_service(config, Some(&inventory), Some(&identity)).await?;
    if !catalog.snapshot().hotels.is_empty() || !catalog.snapshot().schedules.is_empty() {
        bail!("the catalog already holds hotels or flights: seed demo loads into an empty catalog");
    }
    let options = DemoOptions {
        scale,
        start: time::OffsetDateTime::now_utc().date(),
        days,
    };
    let planned = demo::organizations(scale);
    let schedules = demo::schedules(&options);
    let hotel_steps = (demo::HOTELS_PER_SCALE * scale) as usize / HOTELS_PER_STEP + 1;
    let steps = planned.hotel_chains.len()
        + planned.airlines.len()
        + hotel_steps
        + schedules.len().div_ceil(SCHEDULES_PER_STEP);
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
            .context("progress bar template")?,
    );
    bar.enable_steady_tick(Duration::from_millis(200));

    // Organizations and their operators, with the ids identity gives them.
    bar.set_message("organizations and operators");
    let mut orgs = Organizations {
        hotel_chains: Vec::new(),
        airlines: Vec::new(),
    };
    for (kinds, planned, made) in [
        (
            OrganizationKind::HotelChain,
            &planned.hotel_chains,
            &mut orgs.hotel_chains,
        ),
        (OrganizationKind::Airline, &planned.airlines, &mut orgs.airlines),
    ] {
        for (_, name) in planned {
            let org = identity.create_organization(name, kinds, None).await?;
            let slug: String = name
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_lowercase();
            identity
                .create_user(phoenix_identity::NewUser {
                    email: &format!("ops@{slug}.demo.phoenix.example"),
                    password: DEMO_PASSWORD,
                    name: &format!("{name} operations"),
                    roles: &[Role::Operator],
                    organization_id: Some(org.id),
                })
                .await
                .with_context(|| format!("creating the operator of {name}"))?;
            made.push((org.id, name.clone()));
            bar.inc(1);
        }
    }
    identity
        .create_user(phoenix_identity::NewUser {
            email: DEMO_CUSTOMER,
            password: DEMO_PASSWORD,
            name: "Demo Traveller",
            roles: &[Role::Customer],
            organization_id: None,
        })
        .await
        .context("creating the demo customer")?;

    // The catalog, loaded as an admin would.
    let admin = Principal {
        user_id: Uuid::nil(),
        roles: [Role::Admin].into(),
        organization_id: None,
        credential: Credential::AccessToken { token_id: Uuid::nil() },
    };
    bar.set_message("airlines");
    for airline in demo::airlines(&orgs) {
        catalog
            .create_airline(
                &admin,
                phoenix_catalog::model::AirlineInput {
                    code: airline.code,
                    name: airline.name,
                    organization_id: airline.organization_id,
                },
            )
            .await?;
    }
    // Fixed fees are in their own currency: every currency the demo sells in needs a rate from theirs.
    bar.set_message("exchange rates");
    for rate in demo::fx_rates(catalog.options()) {
        catalog.set_fx_rate(&admin, &rate.base, &rate.quote, &rate.rate).await?;
    }
    // Hotels were generated for the planned ids: give them to the organizations identity made.
    let hotels = demo::hotels(&orgs, &options);
    let n_hotels = hotels.len();
    bar.set_length(
        (bar.length().unwrap_or(0) + n_hotels.div_ceil(HOTELS_PER_STEP) as u64).saturating_sub(hotel_steps as u64),
    );
    bar.set_message("hotels, room types, prices and room-night buckets");
    let mut hotels = hotels.into_iter().peekable();
    while hotels.peek().is_some() {
        let step: Vec<_> = hotels.by_ref().take(HOTELS_PER_STEP).collect();
        catalog.load_hotels(&admin, step).await?;
        bar.inc(1);
    }
    bar.set_message("flight schedules, departures and seat buckets");
    let n_schedules = schedules.len();
    let mut departures = 0;
    let mut schedules = schedules.into_iter().peekable();
    while schedules.peek().is_some() {
        let step: Vec<_> = schedules.by_ref().take(SCHEDULES_PER_STEP).collect();
        departures += catalog.load_schedules(&admin, step).await?;
        bar.inc(1);
    }
    bar.finish_with_message(format!("done in {:.1} s", started.elapsed().as_secs_f64()));
    // Stop the catalog (and its change-feed follower) before closing the databases under it.
    let pools = [catalog.pool().clone(), inventory.pool().clone()];
    drop(catalog);
    for pool in pools {
        pool.close().await;
    }
    Ok(Seeded {
        organizations: orgs.hotel_chains.len() + orgs.airlines.len(),
        hotels: n_hotels,
        schedules: n_schedules,
        departures,
    })
}
