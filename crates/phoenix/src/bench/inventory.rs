//! `phoenix bench inventory`: holds per second of the batching engine against one transaction per hold.
//!
//! For each backend (SQLite, PostgreSQL) and each demand shape (one hot bucket; 10,000 buckets), on a fresh
//! database each time, `clients` closed-loop clients make 1-unit holds for a fixed time, first through the engine,
//! then through the baseline (`phoenix_inventory::baseline`: same guard, same rows, one commit per hold). Every
//! acknowledged hold is committed (`synchronous=FULL` on SQLite, `synchronous_commit=on` on PostgreSQL). After each
//! run the database is checked: no bucket over its limit, and every counter equal to its holds' lines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use phoenix_api::{Credential, Principal, Role, Roles};
use phoenix_db::{Pool, PoolOptions, Timestamp, dispatch};
use phoenix_inventory::hold::{Limits, NewHold};
use phoenix_inventory::{Clock, HoldRequest, Options, Service};
use uuid::Uuid;

use crate::bench::load::Report;
use crate::bench::{machine, today};
use crate::cli::{BenchBackend, BenchDemand, BenchInventory};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Hot,
    Spread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Engine,
    Baseline,
}

struct Run {
    backend: &'static str,
    shape: Shape,
    mode: Mode,
    report: Report,
}

pub async fn run(options: BenchInventory) -> anyhow::Result<()> {
    let backends: Vec<&'static str> = match options.backend {
        BenchBackend::Sqlite => vec!["sqlite"],
        BenchBackend::Postgres => vec!["postgres"],
        BenchBackend::Both => vec!["sqlite", "postgres"],
    };
    let mut runs = Vec::new();
    for backend in backends {
        for shape in [Shape::Hot, Shape::Spread] {
            let wanted = match options.demand {
                None => true,
                Some(BenchDemand::Hot) => shape == Shape::Hot,
                Some(BenchDemand::Spread) => shape == Shape::Spread,
            };
            if !wanted {
                continue;
            }
            let modes: &[Mode] = if options.engine_only {
                &[Mode::Engine]
            } else {
                &[Mode::Engine, Mode::Baseline]
            };
            for &mode in modes {
                eprintln!("running {backend} {shape:?} {mode:?} ...");
                let report = measure(&options, backend, shape, mode).await?;
                runs.push(Run {
                    backend,
                    shape,
                    mode,
                    report,
                });
            }
        }
    }
    print(&options, &runs);
    Ok(())
}

async fn measure(options: &BenchInventory, backend: &str, shape: Shape, mode: Mode) -> anyhow::Result<Report> {
    let database = Database::create(backend, &options.postgres_url).await?;
    let pool = database.pool.clone();
    let inventory_options = Options {
        max_open_holds_per_holder: i64::MAX / 2,
        ..Options::default()
    };
    let service = Service::new(pool.clone(), inventory_options, Clock::System).await?;
    let admin = principal(Role::Admin);
    let buckets = match shape {
        Shape::Hot => {
            service.put_item(&admin, "hot", 1_000_000_000, 0, None).await?;
            vec!["hot".to_owned()]
        }
        Shape::Spread => {
            let ids: Vec<String> = (0..options.buckets).map(|i| format!("bucket:{i}")).collect();
            // In waves, so the set-up stays within the writers' bounded queues.
            for wave in ids.chunks(500) {
                let creating: Vec<_> = wave
                    .iter()
                    .map(|id| {
                        let (service, admin, id) = (service.clone(), admin, id.clone());
                        tokio::spawn(async move { service.put_item(&admin, &id, 1_000_000, 0, None).await })
                    })
                    .collect();
                for task in creating {
                    task.await??;
                }
            }
            ids
        }
    };
    let buckets = Arc::new(buckets);
    let warmup = Duration::from_secs(options.warmup_secs);
    let duration = Duration::from_secs(options.duration_secs);
    let started = Instant::now();
    let measure_from = started + warmup;
    let until = measure_from + duration;
    let tasks: Vec<_> = (0..options.clients)
        .map(|client| {
            let (service, pool, buckets) = (service.clone(), pool.clone(), buckets.clone());
            let holder = principal(Role::Agent);
            tokio::spawn(async move {
                let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
                let (mut ok, mut failed) = (0u64, 0u64);
                let mut seed = (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let item = &buckets[(seed % buckets.len() as u64) as usize];
                    let held = match mode {
                        Mode::Engine => service.create_hold(&holder, one(item), None).await.is_ok(),
                        Mode::Baseline => baseline(&pool, &holder, item).await,
                    };
                    if sent >= measure_from {
                        if held {
                            ok += 1
                        } else {
                            failed += 1
                        }
                        let _ = histogram.record(sent.elapsed().as_micros().max(1) as u64);
                    }
                }
                (ok, failed, histogram)
            })
        })
        .collect();
    // Holds made count as requests, refused ones as errors.
    let report = Report::collect(duration, tasks).await?;
    verify(&pool).await?;
    drop(service);
    database.drop_it().await;
    Ok(report)
}

fn one(item: &str) -> HoldRequest {
    HoldRequest {
        lines: vec![(item.to_owned(), 1)],
        ttl_secs: None,
        reference: None,
    }
}

async fn baseline(pool: &Pool, holder: &Principal, item: &str) -> bool {
    let Ok(request) = NewHold::parse(
        &[(item.to_owned(), 1)],
        None,
        None,
        holder.user_id,
        None,
        &Limits::default(),
    ) else {
        return false;
    };
    matches!(
        phoenix_inventory::baseline::hold(pool, &request, Timestamp::now()).await,
        Ok(Some(_))
    )
}

fn principal(role: Role) -> Principal {
    Principal {
        user_id: Uuid::now_v7(),
        roles: Roles::from([role]),
        organization_id: None,
        credential: Credential::AccessToken {
            token_id: Uuid::now_v7(),
        },
    }
}

/// Nothing oversold, and every counter equal to the units in its held lines.
async fn verify(pool: &Pool) -> anyhow::Result<()> {
    let (over, mismatched): (i64, i64) = dispatch!(pool, conn => {
        sqlx::query_as(
            "SELECT
                (SELECT count(*) FROM buckets WHERE held + sold > capacity + overbooking_limit),
                (SELECT count(*) FROM buckets b WHERE b.held <> (SELECT COALESCE(CAST(SUM(l.quantity) AS BIGINT), 0)
                     FROM hold_lines l WHERE l.item_id = b.item_id AND l.active = TRUE))",
        )
        .fetch_one(conn)
        .await
    })?;
    if over > 0 || mismatched > 0 {
        bail!("verification failed: {over} buckets oversold, {mismatched} counters not matching their holds");
    }
    Ok(())
}

struct Database {
    pool: Pool,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    async fn create(backend: &str, postgres_url: &str) -> anyhow::Result<Database> {
        let migrations = phoenix_inventory::migrations();
        let options = PoolOptions {
            max_connections: 32,
            ..PoolOptions::default()
        };
        if backend == "sqlite" {
            let dir = tempfile::tempdir()?;
            let pool = Pool::connect(&format!("sqlite://{}", dir.path().join("bench.db").display()), options).await?;
            pool.migrate(migrations).await?;
            return Ok(Database {
                pool,
                postgres: None,
                _dir: Some(dir),
            });
        }
        let name = format!("phoenix_bench_{}", Uuid::new_v4().simple());
        let mut url = url::Url::parse(postgres_url).context("--postgres-url")?;
        url.set_path(&name);
        let pool = Pool::connect(url.as_str(), options)
            .await
            .context("connecting to PostgreSQL")?;
        pool.migrate(migrations).await?;
        Ok(Database {
            pool,
            postgres: Some((postgres_url.to_owned(), name)),
            _dir: None,
        })
    }

    async fn drop_it(self) {
        self.pool.close().await;
        if let Some((admin_url, name)) = self.postgres
            && let Ok(admin) = Pool::connect(&admin_url, PoolOptions::default()).await
        {
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = dispatch!(&admin, conn => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await.map(|_| ())
            });
            admin.close().await;
        }
    }
}

fn print(options: &BenchInventory, runs: &[Run]) {
    println!("phoenix bench inventory: {} on {}", today(), machine());
    println!(
        "{} clients, 1-unit holds, {} s measured after {} s warm-up per run, fresh database per run, build: {}",
        options.clients,
        options.duration_secs,
        options.warmup_secs,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!();
    println!("| backend | demand | design | holds/s | p50 | p99 | refused | engine ÷ baseline |");
    println!("|---|---|---|---|---|---|---|---|");
    for run in runs {
        let ratio = match run.mode {
            Mode::Engine => runs
                .iter()
                .find(|r| r.backend == run.backend && r.shape == run.shape && r.mode == Mode::Baseline)
                .map(|b| {
                    format!(
                        "{:.1}x",
                        run.report.per_sec() / b.report.per_sec().max(f64::MIN_POSITIVE)
                    )
                })
                .unwrap_or_default(),
            Mode::Baseline => String::new(),
        };
        let demand = match run.shape {
            Shape::Hot => "one hot bucket".to_owned(),
            Shape::Spread => format!("{} buckets", options.buckets),
        };
        let design = match run.mode {
            Mode::Engine => "batching engine",
            Mode::Baseline => "one transaction per hold",
        };
        println!(
            "| {} | {demand} | {design} | {:.0} | {:.1} ms | {:.1} ms | {} | {ratio} |",
            run.backend,
            run.report.per_sec(),
            run.report.p50_ms(),
            run.report.p99_ms(),
            run.report.errors,
        );
    }
    println!();
    println!("verified after every run: no bucket over its limit, every counter equal to its holds");
}
