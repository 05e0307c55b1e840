//! Wiring: turns a [`Config`] into the services this process runs and the HTTP surface it serves.
//!
//! Every infrastructure choice is made here, once: SQLite or PostgreSQL per service, memory or Redis for rate
//! limits, and for each role whether it runs in this process (a direct handle) or elsewhere (an HTTP client).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use futures::FutureExt;
use phoenix_db::{Pool, PoolOptions};
use phoenix_gateway::{Authenticator, Check, Gateway, RemoteRoute};
use phoenix_ratelimit::Limiter;
use tokio::net::TcpListener;
use utoipa::openapi::OpenApi;

use crate::config::{Bus, Config, DatabaseTarget, PaymentProvider, Role};

/// The services of this process, ready to serve.
pub struct App {
    config: Config,
    router: Router,
    pools: Vec<Pool>,
    services: Services,
    events: Events,
    /// The service databases whose outboxes this process relays.
    outboxes: Vec<(Role, Pool)>,
}

/// How events move in this process: the bus, the consumers subscribed to it, one relay per service database
/// with an outbox, and the pruning of old event rows. Dropping it stops them.
pub struct Events {
    pub bus: phoenix_events::Bus,
    subscriptions: Vec<phoenix_events::Subscription>,
    relays: Vec<phoenix_events::RelayTask>,
    _retention: phoenix_events::RetentionTask,
}

/// The services running in this process (a role elsewhere is `None` here).
#[derive(Clone, Default)]
pub struct Services {
    pub identity: Option<phoenix_identity::Service>,
    pub inventory: Option<phoenix_inventory::Service>,
    pub catalog: Option<phoenix_catalog::Catalog>,
    pub booking: Option<phoenix_booking::Service>,
    pub payment: Option<phoenix_payment::Service>,
    pub saga: Option<phoenix_saga::Orchestrator>,
    pub notification: Option<phoenix_notification::Service>,
    pub audit: Option<phoenix_audit::Service>,
    /// The simulated card provider, when payment runs here on it: its ledger is what the money really did.
    pub simulator: Option<phoenix_payment::Simulator>,
}

/// Opens (and migrates) a service's database.
pub async fn open_database(config: &Config, role: Role, migrations: &phoenix_db::Migrations) -> anyhow::Result<Pool> {
    let options = PoolOptions {
        max_connections: config.database_pool_size,
        ..PoolOptions::default()
    };
    let pool = match config.database_for(role)? {
        DatabaseTarget::Url(url) => Pool::connect(url.expose(), options).await,
        DatabaseTarget::File(dir) => Pool::open_in_dir(&dir, role.name(), options).await,
    }
    .with_context(|| format!("opening the {} database", role.name()))?;
    pool.migrate(migrations)
        .await
        .with_context(|| format!("migrating the {} database", role.name()))?;
    tracing::info!(service = role.name(), backend = %pool.backend(), "database ready");
    Ok(pool)
}

/// The migrations of a role's database (none for the gateway, which stores nothing).
pub fn migrations(role: Role) -> Option<&'static phoenix_db::Migrations> {
    Some(match role {
        Role::Identity => phoenix_identity::migrations(),
        Role::Inventory => phoenix_inventory::migrations(),
        Role::Catalog => phoenix_catalog::migrations(),
        Role::Booking => phoenix_booking::migrations(),
        Role::Payment => phoenix_payment::migrations(),
        Role::Saga => phoenix_saga::migrations(),
        Role::Notification => phoenix_notification::migrations(),
        Role::Audit => phoenix_audit::migrations(),
        Role::Gateway => return None,
    })
}

/// The configured event bus.
pub async fn event_bus(config: &Config) -> anyhow::Result<phoenix_events::Bus> {
    Ok(match &config.bus {
        Bus::InProcess => phoenix_events::Bus::in_process(),
        Bus::Nats(options) => phoenix_events::Bus::Nats(
            phoenix_events::Nats::connect(options.clone())
                .await
                .context("connecting to NATS")?,
        ),
    })
}

pub async fn limiter(config: &Config) -> anyhow::Result<Limiter> {
    match &config.redis_url {
        Some(url) => Limiter::redis(url.expose(), "phoenix:ratelimit:")
            .await
            .context("connecting to Redis for rate limits"),
        None => Ok(Limiter::memory()),
    }
}

/// Identity on this process's database, for the CLI commands that manage it directly.
pub async fn identity_service(config: &Config) -> anyhow::Result<phoenix_identity::Service> {
    let pool = open_database(config, Role::Identity, phoenix_identity::migrations()).await?;
    phoenix_identity::Service::new(pool, config.identity.clone(), limiter(config).await?, config.sealer()?)
        .await
        .context("starting identity")
}

/// The OpenAPI document of the whole platform (whichever roles run here).
pub fn openapi() -> OpenApi {
    phoenix_gateway::openapi(vec![
        phoenix_identity::api().into_openapi(),
        phoenix_inventory::api().into_openapi(),
        phoenix_catalog::api().into_openapi(),
        phoenix_booking::api().into_openapi(),
        phoenix_payment::api().into_openapi(),
        phoenix_saga::api().into_openapi(),
        phoenix_notification::api().into_openapi(),
        phoenix_audit::api().into_openapi(),
    ])
}

/// The event consumers of the consuming roles running in this process, each bound to its service's database.
pub fn consumers(config: &Config, services: &Services) -> Vec<phoenix_events::Consumer> {
    let options = config.events.consumer.clone();
    let mut consumers = Vec::new();
    if let Some(audit) = &services.audit {
        for handler in audit.handlers() {
            consumers.push(phoenix_events::Consumer::new(
                audit.pool().clone(),
                handler,
                options.clone(),
            ));
        }
    }
    if let Some(notification) = &services.notification {
        consumers.push(phoenix_events::Consumer::new(
            notification.pool().clone(),
            notification.handler(),
            options.clone(),
        ));
    }
    if let Some(booking) = &services.booking {
        consumers.push(phoenix_events::Consumer::new(
            booking.pool().clone(),
            std::sync::Arc::new(phoenix_booking::RefundFollower),
            options.clone(),
        ));
    }
    consumers
}

/// The audit service on this process's database (for the CLI).
pub async fn audit_service(config: &Config) -> anyhow::Result<phoenix_audit::Service> {
    let pool = open_database(config, Role::Audit, phoenix_audit::migrations()).await?;
    Ok(phoenix_audit::Service::new(pool, config.audit.clone()))
}

/// The notification service on this process's database, without its delivery worker (for the CLI).
pub async fn notification_service(config: &Config) -> anyhow::Result<phoenix_notification::Service> {
    let pool = open_database(config, Role::Notification, phoenix_notification::migrations()).await?;
    phoenix_notification::Service::new(pool, config.notification.clone(), config.sealer()?)
        .await
        .context("starting notifications")
}

/// Inventory on this process's database (for benchmarks and tools).
pub async fn inventory_service(config: &Config) -> anyhow::Result<phoenix_inventory::Service> {
    let pool = open_database(config, Role::Inventory, phoenix_inventory::migrations()).await?;
    phoenix_inventory::Service::new(pool, config.inventory.clone(), phoenix_inventory::Clock::System)
        .await
        .context("starting inventory")
}

/// The catalog on this process's database, reaching inventory and identity in this process (when given) or at their
/// URLs.
pub async fn catalog_service(
    config: &Config,
    inventory: Option<&phoenix_inventory::Service>,
    identity: Option<&phoenix_identity::Service>,
) -> anyhow::Result<phoenix_catalog::Catalog> {
    let pool = open_database(config, Role::Catalog, phoenix_catalog::migrations()).await?;
    let inventory = match inventory {
        Some(service) => phoenix_inventory::Client::Local(service.clone()),
        None => phoenix_inventory::Client::Remote(remote_client(config, Role::Inventory, &config.services.inventory)?),
    };
    let identity = identity_client(config, identity)?;
    let signer = match &config.offer_signing_key {
        Some(key) => phoenix_catalog::offer::OfferSigner::new(key.expose().as_bytes()),
        None => phoenix_catalog::offer::OfferSigner::generate(),
    };
    phoenix_catalog::Catalog::new(pool, inventory, identity, config.catalog.clone(), signer)
        .await
        .context("starting the catalog")
}

/// Payment on this process's database, with the configured card provider (and the simulator, when it is that).
pub async fn payment_service(
    config: &Config,
) -> anyhow::Result<(phoenix_payment::Service, Option<phoenix_payment::Simulator>)> {
    let pool = open_database(config, Role::Payment, phoenix_payment::migrations()).await?;
    let (provider, simulator) = payment_provider(config).await?;
    Ok((
        phoenix_payment::Service::new(pool, config.payment.clone(), provider),
        simulator,
    ))
}

type Provider = (Arc<dyn phoenix_payment::Provider>, Option<phoenix_payment::Simulator>);

async fn payment_provider(config: &Config) -> anyhow::Result<Provider> {
    Ok(match &config.payment_provider {
        PaymentProvider::Simulated => {
            let simulator = phoenix_payment::Simulator::new(simulator_database(config).await?);
            (Arc::new(simulator.clone()), Some(simulator))
        }
        PaymentProvider::Stripe {
            base_url,
            secret_key,
            timeout_secs,
        } => (
            Arc::new(
                phoenix_payment::provider::stripe::Stripe::new(phoenix_payment::provider::stripe::StripeOptions {
                    base_url: base_url.clone(),
                    secret_key: secret_key.expose().to_owned(),
                    timeout_secs: *timeout_secs,
                })
                .context("starting the Stripe provider")?,
            ),
            None,
        ),
    })
}

/// The simulated provider keeps its ledger apart from payment's own books, as a real provider would: a database
/// of its own (`payment_simulator`), beside payment's.
pub async fn simulator_database(config: &Config) -> anyhow::Result<Pool> {
    // A stand-in for a card network: it should not crowd the services out of the server's connection budget.
    let options = PoolOptions {
        max_connections: 8,
        ..PoolOptions::default()
    };
    let pool = match config.database_for(Role::Payment)? {
        DatabaseTarget::Url(url) if config.databases.payment.is_none() => {
            let mut url = url::Url::parse(url.expose()).context("invalid configuration: database_url")?;
            let name = format!("{}_simulator", url.path().trim_start_matches('/'));
            url.set_path(&name);
            Pool::connect(url.as_str(), options).await
        }
        _ => Pool::open_in_dir(&config.data_dir, "payment_simulator", options).await,
    }
    .context("opening the payment simulator's ledger")?;
    pool.migrate(phoenix_payment::simulator_migrations())
        .await
        .context("migrating the payment simulator's ledger")?;
    Ok(pool)
}

/// Identity as another service in this process reaches it: directly when it runs here, else over its internal API.
fn identity_client(
    config: &Config,
    identity: Option<&phoenix_identity::Service>,
) -> anyhow::Result<phoenix_identity::Client> {
    Ok(match identity {
        Some(service) => phoenix_identity::Client::Local(service.clone()),
        None => phoenix_identity::Client::Remote(remote_client(config, Role::Identity, &config.services.identity)?),
    })
}

fn remote_client(config: &Config, role: Role, url: &Option<String>) -> anyhow::Result<phoenix_api::remote::Client> {
    let Some(url) = url else {
        bail!(
            "{role} does not run in this process: set services.{role} (PHOENIX_SERVICES__{upper}) to its URL",
            role = role.name(),
            upper = role.name().to_uppercase()
        );
    };
    let token = internal_token(config)?;
    Ok(phoenix_api::remote::Client::new(url, token, Duration::from_secs(10))?)
}

fn internal_token(config: &Config) -> anyhow::Result<&str> {
    config.internal_token.as_ref().map(|t| t.expose()).context(
        "roles run in separate processes: set internal_token (PHOENIX_INTERNAL_TOKEN), the same on every process",
    )
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let limiter = limiter(&config).await?;
        let bus = event_bus(&config).await?;
        let mut pools = Vec::new();
        let mut readiness = Vec::new();
        let mut services = Services::default();
        // The databases whose outboxes this process relays.
        let mut outboxes: Vec<(Role, Pool)> = Vec::new();
        if let phoenix_events::Bus::Nats(nats) = &bus {
            readiness.push(bus_check(nats.clone()));
        }

        if config.runs(Role::Identity) {
            let pool = open_database(&config, Role::Identity, phoenix_identity::migrations()).await?;
            pools.push(pool.clone());
            readiness.push(pool_check("identity_db", pool.clone()));
            outboxes.push((Role::Identity, pool.clone()));
            let service =
                phoenix_identity::Service::new(pool, config.identity.clone(), limiter.clone(), config.sealer()?)
                    .await
                    .context("starting identity")?;
            services.identity = Some(service);
        }
        if config.runs(Role::Inventory) {
            let pool = open_database(&config, Role::Inventory, phoenix_inventory::migrations()).await?;
            pools.push(pool.clone());
            readiness.push(pool_check("inventory_db", pool.clone()));
            outboxes.push((Role::Inventory, pool.clone()));
            let service =
                phoenix_inventory::Service::new(pool, config.inventory.clone(), phoenix_inventory::Clock::System)
                    .await
                    .context("starting inventory")?;
            services.inventory = Some(service);
        }
        if config.runs(Role::Catalog) {
            let catalog = catalog_service(&config, services.inventory.as_ref(), services.identity.as_ref()).await?;
            pools.push(catalog.pool().clone());
            readiness.push(pool_check("catalog_db", catalog.pool().clone()));
            outboxes.push((Role::Catalog, catalog.pool().clone()));
            services.catalog = Some(catalog);
        }
        if config.runs(Role::Payment) {
            let (service, simulator) = payment_service(&config).await?;
            if let Some(simulator) = &simulator {
                pools.push(simulator.pool().clone());
            }
            services.simulator = simulator;
            pools.push(service.pool().clone());
            readiness.push(pool_check("payment_db", service.pool().clone()));
            outboxes.push((Role::Payment, service.pool().clone()));
            services.payment = Some(service);
        }
        if config.runs(Role::Booking) {
            let pool = open_database(&config, Role::Booking, phoenix_booking::migrations()).await?;
            pools.push(pool.clone());
            readiness.push(pool_check("booking_db", pool.clone()));
            outboxes.push((Role::Booking, pool.clone()));
            let catalog = match &services.catalog {
                Some(catalog) => phoenix_catalog::Client::Local(catalog.clone()),
                None => {
                    phoenix_catalog::Client::Remote(remote_client(&config, Role::Catalog, &config.services.catalog)?)
                }
            };
            let options = phoenix_booking::Options {
                max_total_minor: config.payment.max_amount_minor,
                ..config.booking.clone()
            };
            services.booking = Some(phoenix_booking::Service::new(
                pool,
                options,
                catalog,
                identity_client(&config, services.identity.as_ref())?,
            ));
        }
        if config.runs(Role::Saga) {
            let pool = open_database(&config, Role::Saga, phoenix_saga::migrations()).await?;
            pools.push(pool.clone());
            readiness.push(pool_check("saga_db", pool.clone()));
            let clients = saga_clients(&config, &services)?;
            services.saga = Some(phoenix_saga::Orchestrator::new(pool, clients, config.saga.clone()).start());
        }

        if config.runs(Role::Notification) {
            let service = notification_service(&config).await?;
            pools.push(service.pool().clone());
            readiness.push(pool_check("notification_db", service.pool().clone()));
            outboxes.push((Role::Notification, service.pool().clone()));
            services.notification = Some(service.start());
        }
        if config.runs(Role::Audit) {
            let service = audit_service(&config).await?;
            pools.push(service.pool().clone());
            readiness.push(pool_check("audit_db", service.pool().clone()));
            services.audit = Some(service);
        }
        // Consumers first, so the relays find them when they publish.
        let consumers = consumers(&config, &services);
        let retention = phoenix_events::Retention::new(
            outboxes.iter().map(|(_, pool)| pool.clone()).collect(),
            consumers.clone(),
            config.events.retention.clone(),
        )
        .start();
        let subscriptions = consumers.into_iter().map(|consumer| bus.subscribe(consumer)).collect();
        let relays = relays(&config, &bus, outboxes.clone());
        let router = if config.runs(Role::Gateway) {
            gateway_router(&config, &services, limiter, readiness)?
        } else {
            service_router(&config, &services, readiness)?
        };
        Ok(App {
            config,
            router,
            pools,
            services,
            events: Events {
                bus,
                subscriptions,
                relays,
                _retention: retention,
            },
            outboxes,
        })
    }

    /// The event bus and what runs on it in this process.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The service databases with an outbox in this process, by role.
    pub fn outboxes(&self) -> &[(Role, Pool)] {
        &self.outboxes
    }

    /// The services running in this process.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Identity, when it runs in this process.
    pub fn identity(&self) -> Option<&phoenix_identity::Service> {
        self.services.identity.as_ref()
    }

    /// Inventory, when it runs in this process.
    pub fn inventory(&self) -> Option<&phoenix_inventory::Service> {
        self.services.inventory.as_ref()
    }

    /// Bookings, when they run in this process.
    pub fn booking(&self) -> Option<&phoenix_booking::Service> {
        self.services.booking.as_ref()
    }

    /// Payment, when it runs in this process.
    pub fn payment(&self) -> Option<&phoenix_payment::Service> {
        self.services.payment.as_ref()
    }

    /// The saga orchestrator, when it runs in this process.
    pub fn saga(&self) -> Option<&phoenix_saga::Orchestrator> {
        self.services.saga.as_ref()
    }

    /// The catalog, when it runs in this process.
    pub fn catalog(&self) -> Option<&phoenix_catalog::Catalog> {
        self.services.catalog.as_ref()
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests up to
    /// `shutdown_grace_secs` to finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.config.shutdown_grace_secs);
        // The metrics recorder is installed on first use: before the first request, or what it records is lost.
        phoenix_gateway::telemetry::handle();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let upkeep = tokio::spawn(async {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                phoenix_gateway::telemetry::handle().run_upkeep();
            }
        });
        let app = self.router.into_make_service_with_connect_info::<SocketAddr>();
        let mut stopped = stop_rx.clone();
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: no new connections, finishing in-flight requests");
                let _ = stop_tx.send(true);
            })
            .into_future();
        let deadline = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => result.context("serving HTTP")?,
            () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests cut off after the grace period"),
        }
        upkeep.abort();
        // Background loops (saga, sweepers) hold their service weakly and stop once the last handle goes: drop the
        // handles before the pools close, so no loop is cut off mid-query.
        drop(self.services);
        drop(self.events);
        for pool in &self.pools {
            pool.close().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

impl Events {
    /// How many consumers this process runs on the bus.
    pub fn consumers(&self) -> usize {
        self.subscriptions.len()
    }

    /// How many outbox relays this process runs.
    pub fn relays(&self) -> usize {
        self.relays.len()
    }
}

/// The gateway in front of every role: local services' routers mounted in-process, the others reached over HTTP.
fn gateway_router(
    config: &Config,
    services: &Services,
    limiter: Limiter,
    mut readiness: Vec<Check>,
) -> anyhow::Result<Router> {
    let mut local = Vec::new();
    let mut remote = Vec::new();
    let mut remote_route = |role: Role, url: &Option<String>, prefixes: &'static [&'static str]| {
        let client = remote_client(config, role, url)?;
        remote.push(RemoteRoute {
            service: role.name(),
            prefixes,
            base_url: client.base_url().to_owned(),
        });
        readiness.push(remote_check(role.name(), client.clone()));
        anyhow::Ok(client)
    };
    let identity = match &services.identity {
        Some(service) => {
            local.push(phoenix_identity::api().with_state(service.clone()).split_for_parts().0);
            phoenix_identity::Client::Local(service.clone())
        }
        None => phoenix_identity::Client::Remote(remote_route(
            Role::Identity,
            &config.services.identity,
            phoenix_identity::PATH_PREFIXES,
        )?),
    };
    match &services.inventory {
        Some(service) => local.push(phoenix_inventory::api().with_state(service.clone()).split_for_parts().0),
        None => {
            remote_route(
                Role::Inventory,
                &config.services.inventory,
                phoenix_inventory::PATH_PREFIXES,
            )?;
        }
    }
    match &services.catalog {
        Some(catalog) => local.push(phoenix_catalog::api().with_state(catalog.clone()).split_for_parts().0),
        None => {
            remote_route(Role::Catalog, &config.services.catalog, phoenix_catalog::PATH_PREFIXES)?;
        }
    }
    match &services.booking {
        Some(service) => local.push(phoenix_booking::api().with_state(service.clone()).split_for_parts().0),
        None => {
            remote_route(Role::Booking, &config.services.booking, phoenix_booking::PATH_PREFIXES)?;
        }
    }
    match &services.payment {
        Some(service) => local.push(phoenix_payment::api().with_state(service.clone()).split_for_parts().0),
        None => {
            remote_route(Role::Payment, &config.services.payment, phoenix_payment::PATH_PREFIXES)?;
        }
    }
    match &services.saga {
        Some(saga) => local.push(phoenix_saga::api().with_state(saga.clone()).split_for_parts().0),
        None => {
            remote_route(Role::Saga, &config.services.saga, phoenix_saga::PATH_PREFIXES)?;
        }
    }
    match &services.notification {
        Some(service) => local.push(
            phoenix_notification::api()
                .with_state(service.clone())
                .split_for_parts()
                .0,
        ),
        None => {
            remote_route(
                Role::Notification,
                &config.services.notification,
                phoenix_notification::PATH_PREFIXES,
            )?;
        }
    }
    match &services.audit {
        Some(service) => local.push(phoenix_audit::api().with_state(service.clone()).split_for_parts().0),
        None => {
            remote_route(Role::Audit, &config.services.audit, phoenix_audit::PATH_PREFIXES)?;
        }
    }
    let internal = internal_routers(services);
    let authenticator = Authenticator::new(
        identity,
        &config.identity.issuer,
        &config.identity.audience,
        config.gateway.token_cache_capacity,
    );
    // Ends with the router (the task holds the authenticator's list of ended sessions weakly).
    authenticator.watch_revocations(Duration::from_millis(config.gateway.revocation_poll_ms));
    let gateway = Gateway {
        authenticator,
        limiter,
        local,
        internal_token: if remote.is_empty() {
            String::new()
        } else {
            internal_token(config)?.to_owned()
        },
        remote,
        internal,
        openapi: openapi(),
        readiness,
        options: config.gateway.clone(),
    };
    Ok(gateway.router()?)
}

/// The routes only other Phoenix services call, of the services running in this process.
fn internal_routers(services: &Services) -> Vec<Router> {
    let mut routers = Vec::new();
    if let Some(service) = &services.identity {
        routers.push(phoenix_identity::internal_router(service.clone()));
    }
    if let Some(service) = &services.inventory {
        routers.push(phoenix_inventory::internal_router(service.clone()));
    }
    if let Some(catalog) = &services.catalog {
        routers.push(phoenix_catalog::internal_router(catalog.clone()));
    }
    if let Some(service) = &services.booking {
        routers.push(phoenix_booking::internal_router(service.clone()));
    }
    if let Some(service) = &services.payment {
        routers.push(phoenix_payment::internal_router(service.clone()));
    }
    routers
}

/// What services serve when they run without the gateway in their process: their routes, behind the
/// internal-token check, plus their internal routes and the operational endpoints.
fn service_router(config: &Config, services: &Services, readiness: Vec<Check>) -> anyhow::Result<Router> {
    let token = internal_token(config)?;
    let mut router = Router::new();
    if let Some(service) = &services.identity {
        router = router.merge(phoenix_identity::api().with_state(service.clone()).split_for_parts().0);
    }
    if let Some(service) = &services.inventory {
        router = router.merge(phoenix_inventory::api().with_state(service.clone()).split_for_parts().0);
    }
    if let Some(catalog) = &services.catalog {
        router = router.merge(phoenix_catalog::api().with_state(catalog.clone()).split_for_parts().0);
    }
    if let Some(service) = &services.booking {
        router = router.merge(phoenix_booking::api().with_state(service.clone()).split_for_parts().0);
    }
    if let Some(service) = &services.payment {
        router = router.merge(phoenix_payment::api().with_state(service.clone()).split_for_parts().0);
    }
    if let Some(saga) = &services.saga {
        router = router.merge(phoenix_saga::api().with_state(saga.clone()).split_for_parts().0);
    }
    if let Some(service) = &services.notification {
        router = router.merge(
            phoenix_notification::api()
                .with_state(service.clone())
                .split_for_parts()
                .0,
        );
    }
    if let Some(service) = &services.audit {
        router = router.merge(phoenix_audit::api().with_state(service.clone()).split_for_parts().0);
    }
    let router = internal_routers(services)
        .into_iter()
        .fold(router, Router::merge)
        .layer(phoenix_api::internal::Layer::new(token));
    Ok(phoenix_gateway::service_router(
        router,
        Arc::new(openapi()),
        readiness,
        config.gateway.body_limit_bytes,
    ))
}

/// The saga's handles on booking, inventory and payment: direct when they run here, HTTP otherwise.
fn saga_clients(config: &Config, services: &Services) -> anyhow::Result<phoenix_saga::Clients> {
    Ok(phoenix_saga::Clients {
        booking: match &services.booking {
            Some(service) => phoenix_booking::Client::Local(service.clone()),
            None => phoenix_booking::Client::Remote(remote_client(config, Role::Booking, &config.services.booking)?),
        },
        inventory: match &services.inventory {
            Some(service) => phoenix_inventory::Client::Local(service.clone()),
            None => {
                phoenix_inventory::Client::Remote(remote_client(config, Role::Inventory, &config.services.inventory)?)
            }
        },
        payment: match &services.payment {
            Some(service) => phoenix_payment::Client::Local(service.clone()),
            None => phoenix_payment::Client::Remote(remote_client(config, Role::Payment, &config.services.payment)?),
        },
    })
}

/// One relay per service database with an outbox. An in-process bus with no consumer in this process reaches no
/// one: then the events stay in the outboxes (nothing is lost) until a shared bus is configured.
fn relays(config: &Config, bus: &phoenix_events::Bus, outboxes: Vec<(Role, Pool)>) -> Vec<phoenix_events::RelayTask> {
    if !bus.has_audience() {
        if !outboxes.is_empty() {
            tracing::info!("no event consumers in this process and the bus is in-process: events stay in the outboxes");
        }
        return Vec::new();
    }
    outboxes
        .into_iter()
        .map(|(role, pool)| {
            phoenix_events::Relay::new(role.name(), pool, bus.clone(), config.events.relay.clone()).start()
        })
        .collect()
}

fn bus_check(nats: phoenix_events::Nats) -> Check {
    Check {
        name: "event_bus",
        probe: Arc::new(move || {
            let connected = nats.connected();
            async move { connected }.boxed()
        }),
        // Events wait in the outboxes while the bus is away.
        required: false,
    }
}

fn pool_check(name: &'static str, pool: Pool) -> Check {
    Check {
        name,
        probe: Arc::new(move || {
            let pool = pool.clone();
            async move { pool.ping().await }.boxed()
        }),
        required: true,
    }
}

fn remote_check(name: &'static str, client: phoenix_api::remote::Client) -> Check {
    Check {
        name,
        probe: Arc::new(move || {
            let client = client.clone();
            async move { client.healthy().await }.boxed()
        }),
        // Requests for the other roles are still served; this role's answer 503 until it is back.
        required: false,
    }
}
