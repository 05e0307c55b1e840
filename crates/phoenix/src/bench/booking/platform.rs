//! The platform under test: fresh storage per scenario (SQLite files or PostgreSQL databases dropped after), the
//! whole app in this process, and the wait until no booking is in flight.

use super::world::*;
use super::*;

/// Where one scenario keeps its data.
pub(super) struct Storage {
    pub(super) dir: tempfile::TempDir,
    pub(super) postgres: Option<Postgres>,
}

/// Fresh databases on a PostgreSQL server: `<name>_<run>_<service>`, none of which existed before this run.
pub(super) struct Postgres {
    /// The `database_url` the platform is given: the server and `<name>_<run>`.
    pub(super) url: String,
    /// The server's `postgres` database: where this run's names are checked to be free beforehand, and its
    /// databases dropped afterwards.
    pub(super) admin_url: String,
    pub(super) names: Vec<String>,
}

impl Storage {
    pub(super) async fn create(database_url: Option<&str>) -> anyhow::Result<Storage> {
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
    pub(super) async fn finish(self, keep: bool) {
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

pub(super) fn admin_options() -> PoolOptions {
    PoolOptions {
        max_connections: 1,
        ..PoolOptions::default()
    }
}

/// The whole platform, serving on loopback, and the in-process handles the set-up and the checks use.
pub(super) struct Platform {
    pub(super) base: String,
    pub(super) identity: phoenix_identity::Service,
    pub(super) inventory: phoenix_inventory::Service,
    pub(super) catalog: phoenix_catalog::Catalog,
    pub(super) booking: phoenix_booking::Service,
    /// The simulated provider's books, opened at the start: once the platform is busy, PostgreSQL may have no
    /// connection left to give.
    pub(super) ledger: Pool,
    /// The audit service's database, and every outbox it hears from: the events' lag is read from them.
    pub(super) audit: Pool,
    pub(super) outboxes: Vec<Pool>,
    pub(super) stop: tokio::sync::oneshot::Sender<()>,
    pub(super) server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Platform {
    pub(super) async fn start(storage: &Storage, nats_url: Option<&str>) -> anyhow::Result<Platform> {
        let mut config = Config {
            data_dir: storage.dir.path().to_owned(),
            ..Config::default()
        };
        config.database_url = storage
            .postgres
            .as_ref()
            .map(|p| crate::config::Secret::new(p.url.clone()));
        // A key of the run's own, as a deployment on PostgreSQL sets one.
        config.secrets_key = Some(crate::config::Secret::new(phoenix_db::Sealer::generate_key()?));
        // Out of the way: the gateway's limits per user and per address, and inventory's bound on open holds.
        config.gateway.rate_limit_per_user_per_min = u32::MAX / 2;
        config.gateway.rate_limit_per_ip_per_min = u32::MAX / 2;
        config.inventory.max_open_holds_per_holder = i64::MAX / 2;
        if let Some(url) = nats_url {
            // Streams of this run's own, removed with the server's retention (an hour).
            let tag = Uuid::new_v4().simple().to_string();
            config.bus = crate::config::Bus::Nats(phoenix_events::NatsOptions {
                url: url.to_owned(),
                subject_prefix: format!("bench{tag}"),
                stream_prefix: format!("BENCH{}", tag.to_uppercase()),
                max_age_hours: 1,
                ..phoenix_events::NatsOptions::default()
            });
        }
        config.validate()?;
        let app = App::build(config.clone()).await?;
        let missing = || anyhow::anyhow!("every role runs in this process");
        let identity = app.identity().cloned().ok_or_else(missing)?;
        let inventory = app.inventory().cloned().ok_or_else(missing)?;
        let catalog = app.catalog().cloned().ok_or_else(missing)?;
        let booking = app.booking().cloned().ok_or_else(missing)?;
        let ledger = app::simulator_database(&config).await?;
        let audit = app.services().audit.as_ref().ok_or_else(missing)?.pool().clone();
        let outboxes = app.outboxes().iter().map(|(_, pool)| pool.clone()).collect();
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
            audit,
            outboxes,
            stop,
            server,
        })
    }

    /// Stops serving and closes the databases; the handles go first so that the services' background loops end
    /// with the server.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
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

/// Waits until no booking is pending: requests answered 202 leave sagas running after the clients stop. Gives up
/// after `SETTLE_TIMEOUT` (the verification then reports the bookings still pending).
pub(super) async fn settle(platform: &Platform) -> anyhow::Result<()> {
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
