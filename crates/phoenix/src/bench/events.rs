//! `phoenix bench events`: events per second from a service's outbox to a consumer, through the in-process bus and
//! through NATS JetStream, on SQLite and PostgreSQL.
//!
//! Each run fills a fresh outbox with `events` booking events (200 subjects, written before the clock starts),
//! subscribes the audit service (the consumer with the most work per event: masking, hashing, one chained entry
//! each) and starts one relay; the rate is events over the time until the audit log holds all of them, checked
//! once each.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use phoenix_db::{Event, Pool, PoolOptions, dispatch};
use phoenix_events::{Bus, Consumer, ConsumerOptions, Nats, NatsOptions, Relay, RelayOptions};
use uuid::Uuid;

use crate::bench::{machine, today};
use crate::cli::{BenchBackend, BenchEvents};

/// Events written per transaction while filling the outbox.
const FILL_BATCH: usize = 500;

pub async fn run(options: BenchEvents) -> anyhow::Result<()> {
    if options.events == 0 {
        bail!("--events must be at least 1");
    }
    let backends = match options.backend {
        BenchBackend::Sqlite => vec![false],
        BenchBackend::Postgres => vec![true],
        BenchBackend::Both => vec![false, true],
    };
    let mut rows = Vec::new();
    for postgres in backends {
        for nats in [false, true] {
            if nats && options.nats_url.is_none() {
                continue;
            }
            let name = format!(
                "{} + {}",
                if postgres { "postgres" } else { "sqlite" },
                if nats { "nats" } else { "in-process" }
            );
            eprintln!("running {name} ...");
            let nats_url = if nats { options.nats_url.as_deref() } else { None };
            let rate = measure(&options, postgres, nats_url)
                .await
                .with_context(|| name.clone())?;
            rows.push((name, rate));
        }
    }
    println!("phoenix bench events: {} on {}", today(), machine());
    println!(
        "{} events over 200 subjects, relay batch {}, consumer: audit, build: {}",
        options.events,
        RelayOptions::default().batch_size,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!();
    println!("| storage + bus | events/s outbox to audit | time |");
    println!("|---|---|---|");
    for (name, (rate, elapsed)) in rows {
        println!("| {name} | {rate:.0} | {:.2} s |", elapsed.as_secs_f64());
    }
    Ok(())
}

/// A database for one run: a temporary SQLite file, or a fresh PostgreSQL database dropped afterwards.
struct Database {
    pool: Pool,
    postgres: Option<String>,
    _dir: tempfile::TempDir,
}

impl Database {
    async fn create(
        options: &BenchEvents,
        postgres: bool,
        migrations: &phoenix_db::Migrations,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (pool, name) = if postgres {
            let name = format!("phoenix_bench_events_{}", Uuid::new_v4().simple());
            let mut url = url::Url::parse(&options.postgres_url).context("--postgres-url")?;
            url.set_path(&name);
            (Pool::connect(url.as_str(), PoolOptions::default()).await?, Some(name))
        } else {
            (
                Pool::open_in_dir(dir.path(), "bench", PoolOptions::default()).await?,
                None,
            )
        };
        pool.migrate(migrations).await?;
        Ok(Database {
            pool,
            postgres: name,
            _dir: dir,
        })
    }

    async fn drop_now(self, options: &BenchEvents) {
        self.pool.close().await;
        if let Some(name) = self.postgres
            && let Ok(mut url) = url::Url::parse(&options.postgres_url)
        {
            url.set_path("postgres");
            if let Ok(admin) = Pool::connect(url.as_str(), PoolOptions::default()).await {
                let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                let _ =
                    dispatch!(&admin, conn => sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await.map(|_| ()));
                admin.close().await;
            }
        }
    }
}

async fn measure(options: &BenchEvents, postgres: bool, nats_url: Option<&str>) -> anyhow::Result<(f64, Duration)> {
    let producer = Database::create(options, postgres, phoenix_booking::migrations()).await?;
    let consumer = Database::create(options, postgres, phoenix_audit::migrations()).await?;
    let result = async {
        fill(&producer.pool, options.events).await?;
        let bus = match nats_url {
            None => Bus::in_process(),
            Some(url) => {
                let tag = Uuid::new_v4().simple().to_string();
                Bus::Nats(
                    Nats::connect(NatsOptions {
                        url: url.to_owned(),
                        subject_prefix: format!("bench{tag}"),
                        stream_prefix: format!("BENCH{}", tag.to_uppercase()),
                        max_age_hours: 1,
                        ..NatsOptions::default()
                    })
                    .await?,
                )
            }
        };
        let audit = phoenix_audit::Service::new(consumer.pool.clone(), phoenix_audit::Options::default());
        let _subscriptions: Vec<_> = audit
            .handlers()
            .into_iter()
            .map(|handler| {
                bus.subscribe(Consumer::new(
                    consumer.pool.clone(),
                    handler,
                    ConsumerOptions::default(),
                ))
            })
            .collect();
        let started = Instant::now();
        let _relay = Relay::new("booking", producer.pool.clone(), bus.clone(), RelayOptions::default()).start();
        let deadline = started + Duration::from_secs(600);
        loop {
            let n: i64 = dispatch!(&consumer.pool, conn => {
                sqlx::query_scalar("SELECT COUNT(DISTINCT event_id) FROM audit_entries").fetch_one(conn).await
            })?;
            if n as usize >= options.events {
                break;
            }
            if Instant::now() > deadline {
                bail!("only {n} of {} events audited after 10 minutes", options.events);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let verified = phoenix_audit::verify(&consumer.pool).await?;
        if !verified.is_intact() {
            bail!("{verified}");
        }
        anyhow::Ok((options.events as f64 / elapsed.as_secs_f64(), elapsed))
    }
    .await;
    producer.drop_now(options).await;
    consumer.drop_now(options).await;
    result
}

/// Writes `n` booking events into the outbox, `FILL_BATCH` per transaction.
async fn fill(pool: &Pool, n: usize) -> anyhow::Result<()> {
    let mut written = 0;
    while written < n {
        let mut tx = pool.begin().await?;
        let events: Vec<Event> = (written..(written + FILL_BATCH).min(n))
            .map(|i| {
                let data = serde_json::json!({
                    "booking_id": Uuid::now_v7(), "locator": "ABC123", "status": "confirmed",
                    "contact_email": "ann@example.com", "currency": "EUR", "total_minor": 24_000 + i as i64,
                });
                Event::new(
                    "phoenix.booking",
                    "booking.confirmed.v1",
                    format!("booking-{}", i % 200),
                    &data,
                )
            })
            .collect::<Result<_, _>>()?;
        tx.append_events(&events).await?;
        tx.commit().await?;
        written += events.len();
    }
    Ok(())
}
