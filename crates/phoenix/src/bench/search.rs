//! `phoenix bench search`: searches per second and their latency on the demo dataset.
//!
//! Seeds the default demo dataset into a fresh data directory (or uses one already seeded), starts the whole
//! platform in this process, and drives `GET /api/v1/search/hotels` and `GET /api/v1/search/flights` over
//! loopback from `clients` closed-loop clients with a fixed, seeded mix of random cities, routes, dates and party
//! sizes. Two phases: cold (just started: the availability cache is empty and every query is new) and warm (the
//! same queries again). Targets: hotel search p99 <= 20 ms, flight search with connections p99 <= 30 ms,
//! >= 2,000 searches/s overall.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use phoenix_catalog::geo;

use crate::bench::{machine, today};
use crate::cli::BenchSearch;
use crate::{App, Config};

/// Distinct queries in the mix: more than the cold phase can send, so cold queries are never repeated.
const QUERIES: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hotel,
    Flight,
}

struct Phase {
    hotel: Histogram<u64>,
    flight: Histogram<u64>,
    errors: u64,
    elapsed: Duration,
}

impl Phase {
    fn total(&self) -> u64 {
        self.hotel.len() + self.flight.len()
    }
}

pub async fn run(options: BenchSearch) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("temporary data directory")?;
    let data_dir = options.data_dir.clone().unwrap_or_else(|| temp.path().to_owned());
    let mut config = Config {
        data_dir,
        ..Config::default()
    };
    config.gateway.rate_limit_per_user_per_min = u32::MAX / 2;
    config.gateway.rate_limit_per_ip_per_min = u32::MAX / 2;
    let seeded = Instant::now();
    match crate::seed::demo(&config, 1, 60, true).await {
        Ok(s) => println!(
            "seeded {} hotels and {} departures in {:.1} s",
            s.hotels,
            s.departures,
            seeded.elapsed().as_secs_f64()
        ),
        Err(e) if e.to_string().contains("already holds") => println!("using the dataset already seeded"),
        Err(e) => return Err(e),
    }

    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));

    let queries = Arc::new(mix(&base, options.hotel_percent)?);
    let duration = Duration::from_secs(options.duration_secs);
    let cold = phase(&queries, options.clients, duration).await?;
    let warm = phase(&queries, options.clients, duration).await?;
    if cold.errors + warm.errors > 0 {
        bail!("errors during the run: cold {}, warm {}", cold.errors, warm.errors);
    }

    println!("phoenix bench search: {} on {}", today(), machine());
    println!(
        "{} clients, {} s per phase, {} % hotel searches, demo dataset at scale 1, build: {}",
        options.clients,
        options.duration_secs,
        options.hotel_percent,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!();
    println!("| phase | searches/s | hotel p50 | hotel p99 | flight p50 | flight p99 |");
    println!("|---|---|---|---|---|---|");
    for (name, p) in [("cold", &cold), ("warm", &warm)] {
        let ms = |h: &Histogram<u64>, q| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            p.total() as f64 / p.elapsed.as_secs_f64(),
            ms(&p.hotel, 0.5),
            ms(&p.hotel, 0.99),
            ms(&p.flight, 0.5),
            ms(&p.flight, 0.99)
        );
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// A deterministic mix of search URLs.
fn mix(base: &str, hotel_percent: u32) -> anyhow::Result<Vec<(Kind, hyper::Uri)>> {
    let mut state: u64 = 0x5eed_5eed_5eed_5eed;
    let mut next = move |n: usize| {
        // xorshift64*: plenty for picking benchmark queries.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    };
    let cities = geo::cities();
    let today = time::OffsetDateTime::now_utc().date();
    let mut queries = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let start = today + time::Duration::days(1 + next(45) as i64);
        let url = if next(100) < hotel_percent as usize {
            let city = &cities[next(cities.len())];
            let nights = 1 + next(7) as i64;
            let guests = 1 + next(4);
            let end = start + time::Duration::days(nights);
            (
                Kind::Hotel,
                format!(
                    "{base}/api/v1/search/hotels?city={}&check_in={start}&check_out={end}&guests={guests}",
                    city.name.replace(' ', "%20")
                ),
            )
        } else {
            let from = &cities[next(cities.len())];
            let mut to = &cities[next(cities.len())];
            while to.name == from.name {
                to = &cities[next(cities.len())];
            }
            let adults = 1 + next(3);
            (
                Kind::Flight,
                format!(
                    "{base}/api/v1/search/flights?origin={}&destination={}&date={start}&adults={adults}",
                    from.airports[0], to.airports[0]
                ),
            )
        };
        queries.push((url.0, url.1.parse().context("benchmark URL")?));
    }
    Ok(queries)
}

/// `clients` clients send the next query of the shared list as soon as the last is answered, for `duration`.
async fn phase(queries: &Arc<Vec<(Kind, hyper::Uri)>>, clients: usize, duration: Duration) -> anyhow::Result<Phase> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build(connector);
    let cursor = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, queries, cursor) = (client.clone(), queries.clone(), cursor.clone());
        tasks.push(tokio::spawn(async move {
            let new = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3);
            let (mut hotel, mut flight) = (new()?, new()?);
            let mut errors = 0u64;
            while Instant::now() < until {
                let (kind, uri) = &queries[cursor.fetch_add(1, Ordering::Relaxed) % queries.len()];
                let mut request = Request::new(Empty::<Bytes>::new());
                *request.uri_mut() = uri.clone();
                let sent = Instant::now();
                let ok = match client.request(request).await {
                    Ok(response) => response.status() == 200 && response.into_body().collect().await.is_ok(),
                    Err(_) => false,
                };
                let micros = sent.elapsed().as_micros().max(1) as u64;
                if !ok {
                    errors += 1;
                }
                let histogram = if *kind == Kind::Hotel { &mut hotel } else { &mut flight };
                let _ = histogram.record(micros);
            }
            anyhow::Ok((hotel, flight, errors))
        }));
    }
    let mut phase = Phase {
        hotel: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        flight: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (hotel, flight, errors) = task.await.context("search client")??;
        phase.hotel.add(hotel)?;
        phase.flight.add(flight)?;
        phase.errors += errors;
    }
    phase.elapsed = started.elapsed();
    // The warm phase replays the same queries from the start.
    Ok(phase)
}
