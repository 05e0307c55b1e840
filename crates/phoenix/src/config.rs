//! Configuration: built-in defaults, then an optional TOML file, then `PHOENIX_*` environment variables
//! (`__` between levels: `PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN=500`), then command-line flags. Validated
//! once at start-up; an error names the setting at fault. Secrets (database URLs, the Redis URL, the internal token)
//! are [`Secret`]s: they never appear in `Debug` output or logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use phoenix_db::Sealer;
use serde::{Deserialize, Serialize};

/// A role the `phoenix` binary can play. `phoenix serve` with no `--role` plays them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The API gateway: credentials, rate limits, routing.
    Gateway,
    /// Users, sessions, MFA, API keys, organizations.
    Identity,
    /// Capacity buckets and holds.
    Inventory,
    /// Hotels, flights, prices and search.
    Catalog,
    /// Bookings, record locators, travellers, cancellation policy.
    Booking,
    /// Payments through the card provider.
    Payment,
    /// Booking and cancellation sagas.
    Saga,
    /// Email, SMS and webhooks on booking and payment events.
    Notification,
    /// The hash-chained audit log and analytics projections.
    Audit,
}

impl Role {
    pub const ALL: [Role; 9] = [
        Role::Gateway,
        Role::Identity,
        Role::Inventory,
        Role::Catalog,
        Role::Booking,
        Role::Payment,
        Role::Saga,
        Role::Notification,
        Role::Audit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Identity => "identity",
            Role::Inventory => "inventory",
            Role::Catalog => "catalog",
            Role::Booking => "booking",
            Role::Payment => "payment",
            Role::Saga => "saga",
            Role::Notification => "notification",
            Role::Audit => "audit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A value that must not be printed: `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The card provider behind payments: matched once at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentProvider {
    /// The built-in simulated provider, with its own ledger (a database of its own) and test tokens: `tok_visa`,
    /// `tok_decline`, `tok_insufficient_funds`, `tok_hang`, `tok_flaky`, ...
    #[default]
    Simulated,
    /// A Stripe-compatible API (PaymentIntents with manual capture).
    Stripe {
        /// `https://api.stripe.com` or a compatible server.
        base_url: String,
        secret_key: Secret,
        #[serde(default = "default_stripe_timeout_secs")]
        timeout_secs: u64,
    },
}

fn default_stripe_timeout_secs() -> u64 {
    10
}

/// The bus that carries events from outboxes to consumers: matched once at start-up, like the databases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Bus {
    /// In this process only: each outbox relay hands its events to the consumers running here. Roles in other
    /// processes see none of them (their events stay in the outbox until a shared bus is configured).
    #[default]
    InProcess,
    /// NATS JetStream, shared by every process.
    Nats(phoenix_events::NatsOptions),
}

/// How events move: the outbox relays and the consumers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Events {
    pub relay: phoenix_events::RelayOptions,
    pub consumer: phoenix_events::ConsumerOptions,
    /// How long published outbox rows and inbox rows are kept.
    pub retention: phoenix_events::RetentionOptions,
}

/// Per-service database URLs, overriding `database_url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Databases {
    pub identity: Option<Secret>,
    pub inventory: Option<Secret>,
    pub catalog: Option<Secret>,
    pub booking: Option<Secret>,
    pub payment: Option<Secret>,
    pub saga: Option<Secret>,
    pub notification: Option<Secret>,
    pub audit: Option<Secret>,
}

/// Where roles that do not run in this process listen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceUrls {
    pub identity: Option<String>,
    pub inventory: Option<String>,
    pub catalog: Option<String>,
    pub booking: Option<String>,
    pub payment: Option<String>,
    pub saga: Option<String>,
    pub notification: Option<String>,
    pub audit: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where embedded SQLite databases live.
    pub data_dir: PathBuf,
    /// Roles to run; empty means all.
    pub roles: Vec<Role>,
    pub log_format: LogFormat,
    /// A PostgreSQL URL such as `postgres://user@host/phoenix`: each service then uses its own database on that
    /// server, named `<database>_<service>` (`phoenix_identity`), created if missing. Unset: SQLite files.
    pub database_url: Option<Secret>,
    pub databases: Databases,
    /// Connections each service's database pool may open. The default keeps an all-in-one process on PostgreSQL
    /// (eight service databases and the payment simulator's) under PostgreSQL's default `max_connections` of 100,
    /// so a pool that must reconnect is not refused; raise it for a process running one role.
    pub database_pool_size: u32,
    /// Redis for rate limits shared by every replica. Unset: counted in this process's memory.
    pub redis_url: Option<Secret>,
    /// Shared secret between the gateway and services in other processes. Required when any role runs apart.
    pub internal_token: Option<Secret>,
    /// How long in-flight requests may take to finish after SIGINT or SIGTERM.
    pub shutdown_grace_secs: u64,
    pub services: ServiceUrls,
    pub gateway: phoenix_gateway::Options,
    pub identity: phoenix_identity::Options,
    pub inventory: phoenix_inventory::Options,
    pub catalog: phoenix_catalog::Options,
    pub booking: phoenix_booking::Options,
    pub payment: phoenix_payment::Options,
    /// The card provider payments go through.
    pub payment_provider: PaymentProvider,
    pub saga: phoenix_saga::Options,
    /// Email (SMTP), SMS and webhook delivery, templates' defaults, reminders.
    pub notification: phoenix_notification::Options,
    pub audit: phoenix_audit::Options,
    /// The event bus.
    pub bus: Bus,
    pub events: Events,
    /// Key that signs the catalog's price offers (at least 32 characters), the same on every catalog replica.
    /// Unset: a random key per process, so offers do not survive a restart.
    pub offer_signing_key: Option<Secret>,
    /// Key that seals the secrets services keep and must read back (identity's token-signing keys and TOTP
    /// secrets, notification's webhook secrets): base64 of 32 bytes (`phoenix keys new-secrets-key`), the same on
    /// every replica of identity and notification; required when either keeps its data on PostgreSQL. Unset with
    /// SQLite: the key in `<data_dir>/secrets.key`, created on first start.
    pub secrets_key: Option<Secret>,
    /// Keys that sealed before `secrets_key` (after a rotation): they open what they sealed, and identity and
    /// notification seal it again under `secrets_key` when they start.
    pub previous_secrets_keys: Vec<Secret>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./phoenix-data"),
            roles: Vec::new(),
            log_format: LogFormat::Text,
            database_url: None,
            databases: Databases::default(),
            database_pool_size: 10,
            redis_url: None,
            internal_token: None,
            shutdown_grace_secs: 20,
            services: ServiceUrls::default(),
            gateway: phoenix_gateway::Options::default(),
            identity: phoenix_identity::Options::default(),
            inventory: phoenix_inventory::Options::default(),
            catalog: phoenix_catalog::Options::default(),
            booking: phoenix_booking::Options::default(),
            payment: phoenix_payment::Options::default(),
            payment_provider: PaymentProvider::default(),
            saga: phoenix_saga::Options::default(),
            notification: phoenix_notification::Options::default(),
            audit: phoenix_audit::Options::default(),
            bus: Bus::default(),
            events: Events::default(),
            offer_signing_key: None,
            secrets_key: None,
            previous_secrets_keys: Vec::new(),
        }
    }
}

/// Environment variables with the `PHOENIX_` prefix that are not settings.
const NOT_SETTINGS: &[&str] = &["PHOENIX_CONFIG", "PHOENIX_USER_PASSWORD", "PHOENIX_LOG_FORMAT_OVERRIDE"];

impl Config {
    /// Reads the file (if any) and the environment over the defaults, and validates the result.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(key, _)| key.starts_with("PHOENIX_"))
            .filter(|(key, _)| !NOT_SETTINGS.contains(&key.as_str()) && !key.starts_with("PHOENIX_TEST_"))
            .collect();
        Config::load_from(file, env)
    }

    pub fn load_from(file: Option<&Path>, env: HashMap<String, String>) -> anyhow::Result<Config> {
        let mut builder = config::Config::builder()
            .add_source(config::Config::try_from(&Config::default()).context("default configuration")?);
        if let Some(file) = file {
            if !file.exists() {
                bail!("configuration file {} does not exist", file.display());
            }
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("PHOENIX")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("roles")
                .with_list_parse_key("gateway.cors_allowed_origins")
                .with_list_parse_key("gateway.trusted_proxies")
                .with_list_parse_key("notification.webhook_allowed_networks")
                .with_list_parse_key("previous_secrets_keys")
                .source(Some(env.into_iter().collect())),
        );
        let config: Config = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks everything that deserialising cannot: ranges, URLs, and that each remote role has an address.
    pub fn validate(&self) -> anyhow::Result<()> {
        let bus_max_age = match &self.bus {
            Bus::Nats(nats) => Some(nats.max_age_hours),
            Bus::InProcess => None,
        };
        self.events
            .retention
            .validate(bus_max_age)
            .map_err(|e| anyhow::anyhow!("invalid configuration: events.retention.{e}"))?;
        if !(1..=1_000).contains(&self.database_pool_size) {
            bail!("invalid configuration: database_pool_size must be 1 to 1000");
        }
        self.gateway
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.identity
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.catalog
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.booking
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: booking.{e}"))?;
        self.payment
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        self.saga
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: saga.{e}"))?;
        self.notification
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: notification.{e}"))?;
        self.audit
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: audit.{e}"))?;
        if let PaymentProvider::Stripe { base_url, .. } = &self.payment_provider
            && url::Url::parse(base_url)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
        {
            bail!("invalid configuration: payment_provider.base_url must be an http:// or https:// URL");
        }
        if let Bus::Nats(nats) = &self.bus {
            if url::Url::parse(&nats.url)
                .map(|u| !matches!(u.scheme(), "nats" | "tls"))
                .unwrap_or(true)
            {
                bail!("invalid configuration: bus.url must be a nats:// URL");
            }
            if !(1..=5).contains(&nats.replicas) {
                bail!("invalid configuration: bus.replicas must be between 1 and 5");
            }
            if !(1..=10_000).contains(&nats.fetch_batch) {
                bail!("invalid configuration: bus.fetch_batch must be between 1 and 10000");
            }
        }
        if !(1..=10_000).contains(&self.events.relay.batch_size) {
            bail!("invalid configuration: events.relay.batch_size must be between 1 and 10000");
        }
        if !(1..=100).contains(&self.events.consumer.max_attempts) {
            bail!("invalid configuration: events.consumer.max_attempts must be between 1 and 100");
        }
        if let Some(key) = &self.offer_signing_key
            && key.expose().len() < 32
        {
            bail!("invalid configuration: offer_signing_key must be at least 32 characters");
        }
        for key in self.secrets_key.iter().chain(&self.previous_secrets_keys) {
            Sealer::from_base64(key.expose(), &[])
                .map_err(|e| anyhow::anyhow!("invalid configuration: secrets_key / previous_secrets_keys: {e}"))?;
        }
        if let Some(url) = &self.database_url
            && !(url.expose().starts_with("postgres://") || url.expose().starts_with("postgresql://"))
        {
            bail!("invalid configuration: database_url must be a postgres:// URL (leave it unset for SQLite)");
        }
        for (name, url) in [
            ("identity", &self.databases.identity),
            ("inventory", &self.databases.inventory),
            ("catalog", &self.databases.catalog),
            ("booking", &self.databases.booking),
            ("payment", &self.databases.payment),
            ("saga", &self.databases.saga),
            ("notification", &self.databases.notification),
            ("audit", &self.databases.audit),
        ] {
            if let Some(url) = url
                && !(url.expose().starts_with("postgres") || url.expose().starts_with("sqlite:"))
            {
                bail!("invalid configuration: databases.{name} must be a postgres:// or sqlite:// URL");
            }
        }
        if let Some(url) = &self.redis_url
            && !(url.expose().starts_with("redis://") || url.expose().starts_with("rediss://"))
        {
            bail!("invalid configuration: redis_url must be a redis:// URL");
        }
        if let Some(token) = &self.internal_token
            && token.expose().len() < 32
        {
            bail!("invalid configuration: internal_token must be at least 32 characters");
        }
        if !(1..=600).contains(&self.shutdown_grace_secs) {
            bail!("invalid configuration: shutdown_grace_secs must be between 1 and 600");
        }
        for (name, url) in [
            ("services.identity", &self.services.identity),
            ("services.inventory", &self.services.inventory),
            ("services.catalog", &self.services.catalog),
            ("services.booking", &self.services.booking),
            ("services.payment", &self.services.payment),
            ("services.saga", &self.services.saga),
            ("services.notification", &self.services.notification),
            ("services.audit", &self.services.audit),
        ] {
            if let Some(url) = url
                && url::Url::parse(url)
                    .map(|u| !matches!(u.scheme(), "http" | "https"))
                    .unwrap_or(true)
            {
                bail!("invalid configuration: {name} must be an http:// or https:// URL");
            }
        }
        Ok(())
    }

    /// The roles this process plays.
    pub fn local_roles(&self) -> Vec<Role> {
        if self.roles.is_empty() {
            Role::ALL.to_vec()
        } else {
            let mut roles = self.roles.clone();
            roles.dedup();
            roles
        }
    }

    pub fn runs(&self, role: Role) -> bool {
        self.roles.is_empty() || self.roles.contains(&role)
    }

    /// What seals the secrets identity and notification store: `secrets_key` (with `previous_secrets_keys`), else
    /// the key file in `data_dir`, created with a new random key if missing. Without `secrets_key`, a process whose
    /// identity or notification keep their data on a database server is refused.
    pub fn sealer(&self) -> anyhow::Result<Sealer> {
        let (current, source) = match &self.secrets_key {
            Some(key) => (key.expose().to_owned(), "secrets_key".to_owned()),
            None => {
                let path = self.data_dir.join(SECRETS_KEY_FILE);
                // A database server is shared by replicas, which must share the key too: a key file each would
                // seal what the others cannot open.
                let shared = [Role::Identity, Role::Notification]
                    .into_iter()
                    .find(|&role| self.runs(role) && matches!(self.database_for(role), Ok(DatabaseTarget::Url(_))));
                if let Some(role) = shared {
                    bail!(
                        "invalid configuration: secrets_key (PHOENIX_SECRETS_KEY) is required when {} keeps its data \
                         in a database server: every replica must seal with the same key (`phoenix keys \
                         new-secrets-key` makes one)",
                        role.name()
                    );
                }
                (key_file(&path)?, format!("the key file {}", path.display()))
            }
        };
        let previous: Vec<&str> = self.previous_secrets_keys.iter().map(Secret::expose).collect();
        Sealer::from_base64(&current, &previous).map_err(|e| anyhow::anyhow!("invalid configuration: {source}: {e}"))
    }

    /// Where `service` keeps its data: its own URL, else its database on the `database_url` server, else a SQLite
    /// file under `data_dir`.
    pub fn database_for(&self, service: Role) -> anyhow::Result<DatabaseTarget> {
        let own = match service {
            Role::Identity => &self.databases.identity,
            Role::Inventory => &self.databases.inventory,
            Role::Catalog => &self.databases.catalog,
            Role::Booking => &self.databases.booking,
            Role::Payment => &self.databases.payment,
            Role::Saga => &self.databases.saga,
            Role::Notification => &self.databases.notification,
            Role::Audit => &self.databases.audit,
            Role::Gateway => &None,
        };
        if let Some(url) = own {
            return Ok(DatabaseTarget::Url(url.clone()));
        }
        if let Some(base) = &self.database_url {
            let mut url = url::Url::parse(base.expose()).context("invalid configuration: database_url")?;
            let base_name = url.path().trim_start_matches('/');
            let base_name = if base_name.is_empty() { "phoenix" } else { base_name };
            let name = format!("{base_name}_{}", service.name());
            url.set_path(&name);
            return Ok(DatabaseTarget::Url(Secret::new(url.to_string())));
        }
        Ok(DatabaseTarget::File(self.data_dir.clone()))
    }
}

/// The file under `data_dir` that holds the secrets key when `secrets_key` is not set.
pub const SECRETS_KEY_FILE: &str = "secrets.key";

/// Reads the key in `path`, or writes a new random one there (readable by its owner only) if there is none. The
/// new file appears whole or not at all, so processes starting together on one data directory agree on the key.
fn key_file(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(key) => return Ok(key.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading the secrets key {}", path.display())),
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = Sealer::generate_key()?;
    let temp = dir.join(format!(".{SECRETS_KEY_FILE}.{}", uuid::Uuid::new_v4()));
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("creating {}", temp.display()))?;
        file.write_all(format!("{key}\n").as_bytes())?;
        file.sync_all()?;
    }
    // A hard link fails if the name exists: whoever links first wins, and everyone else reads the winner's key.
    let linked = std::fs::hard_link(&temp, path);
    let _ = std::fs::remove_file(&temp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a secrets key; keep it with the data, or set secrets_key");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read_to_string(path)?.trim().to_owned()),
        Err(e) => Err(e).with_context(|| format!("writing the secrets key {}", path.display())),
    }
}

/// A service's database, resolved from configuration.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    Url(Secret),
    /// A SQLite file named after the service in this directory.
    File(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = Config::load_from(None, HashMap::new()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.gateway.rate_limit_per_user_per_min, 100);
        assert_eq!(config.gateway.rate_limit_per_ip_per_min, 10_000);
        assert_eq!(config.gateway.body_limit_bytes, 1024 * 1024);
        assert_eq!(config.local_roles(), Role::ALL.to_vec());
        assert_eq!(config.database_pool_size, 10);
    }

    #[test]
    fn environment_overrides_nested_settings_and_lists() {
        let config = Config::load_from(
            None,
            env(&[
                ("PHOENIX_LISTEN", "0.0.0.0:9000"),
                ("PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN", "500"),
                ("PHOENIX_ROLES", "identity,gateway"),
                ("PHOENIX_IDENTITY__ISSUER", "https://auth.example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.gateway.rate_limit_per_user_per_min, 500);
        assert_eq!(config.roles, vec![Role::Identity, Role::Gateway]);
        assert_eq!(config.identity.issuer, "https://auth.example.com");
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phoenix.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\n[gateway]\nbody_limit_bytes = 4096\n",
        )
        .unwrap();
        let config = Config::load_from(Some(&path), env(&[("PHOENIX_LISTEN", "127.0.0.1:7001")])).unwrap();
        assert_eq!(config.listen.port(), 7001);
        assert_eq!(config.gateway.body_limit_bytes, 4096);
    }

    #[test]
    fn webhook_networks_come_from_the_file_or_the_environment_and_must_be_networks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("phoenix.toml");
        std::fs::write(&path, "[notification]\nwebhook_allowed_networks = [\"10.20.0.0/16\"]\n").unwrap();
        let config = Config::load_from(Some(&path), HashMap::new()).unwrap();
        let networks: Vec<String> = config
            .notification
            .webhook_allowed_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(networks, ["10.20.0.0/16"]);
        let key = "PHOENIX_NOTIFICATION__WEBHOOK_ALLOWED_NETWORKS";
        let config = Config::load_from(None, env(&[(key, "10.20.0.0/16,fd12:3456::/32")])).unwrap();
        assert_eq!(config.notification.webhook_allowed_networks.len(), 2);
        let error = Config::load_from(None, env(&[(key, "10.20.0.0/33")])).unwrap_err();
        assert!(error.to_string().contains("invalid configuration"), "{error}");
    }

    #[test]
    fn bad_settings_are_named() {
        let cases = [
            (
                env(&[("PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN", "lots")]),
                "rate_limit_per_user_per_min",
            ),
            (
                env(&[("PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN", "0")]),
                "rate_limit_per_user_per_min",
            ),
            (env(&[("PHOENIX_LISTEN", "nowhere")]), "listen"),
            (env(&[("PHOENIX_DATABASE_URL", "mysql://x")]), "database_url"),
            (env(&[("PHOENIX_INTERNAL_TOKEN", "short")]), "internal_token"),
            (env(&[("PHOENIX_SERVICES__IDENTITY", "ftp://x")]), "services.identity"),
            (env(&[("PHOENIX_NO_SUCH_SETTING", "1")]), "no_such_setting"),
            (env(&[("PHOENIX_DATABASE_POOL_SIZE", "0")]), "database_pool_size"),
            (env(&[("PHOENIX_SECRETS_KEY", "c2hvcnQ=")]), "secrets_key"),
            (env(&[("PHOENIX_SECRETS_KEY", "not base64!")]), "secrets_key"),
            (
                env(&[("PHOENIX_PREVIOUS_SECRETS_KEYS", "c2hvcnQ=")]),
                "previous_secrets_keys",
            ),
            (
                env(&[
                    ("PHOENIX_BUS__KIND", "nats"),
                    ("PHOENIX_EVENTS__RETENTION__INBOX_HOURS", "24"),
                ]),
                "inbox_hours",
            ),
        ];
        for (env, setting) in cases {
            let error = Config::load_from(None, env).unwrap_err().to_string();
            assert!(error.contains(setting), "{error:?} should name {setting}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let config = Config::load_from(
            None,
            env(&[
                ("PHOENIX_DATABASE_URL", "postgres://app:hunter2hunter2@db/phoenix"),
                ("PHOENIX_INTERNAL_TOKEN", "0123456789abcdef0123456789abcdef-secret"),
            ]),
        )
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("-secret"));
    }

    #[test]
    fn the_secrets_key_comes_from_configuration_or_a_key_file_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let in_dir = env(&[("PHOENIX_DATA_DIR", data_dir.to_str().unwrap())]);
        let config = Config::load_from(None, in_dir.clone()).unwrap();
        let made = config.sealer().unwrap();
        let file = data_dir.join(SECRETS_KEY_FILE);
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        // The next start reads the same key, and so does a process configured with it.
        assert_eq!(
            Config::load_from(None, in_dir).unwrap().sealer().unwrap().key_id(),
            made.key_id()
        );
        let key = std::fs::read_to_string(&file).unwrap();
        let configured = Config::load_from(None, env(&[("PHOENIX_SECRETS_KEY", key.trim())])).unwrap();
        assert_eq!(configured.sealer().unwrap().key_id(), made.key_id());

        // On a database server, replicas must share one key: none configured is refused, naming the setting.
        let server = env(&[
            ("PHOENIX_DATA_DIR", data_dir.to_str().unwrap()),
            ("PHOENIX_DATABASE_URL", "postgres://localhost/phoenix"),
        ]);
        let error = Config::load_from(None, server.clone())
            .unwrap()
            .sealer()
            .unwrap_err()
            .to_string();
        assert!(error.contains("secrets_key") && error.contains("identity"), "{error}");
        let mut booking_only = Config::load_from(None, server).unwrap();
        booking_only.roles = vec![Role::Booking];
        assert_eq!(
            booking_only.sealer().unwrap().key_id(),
            made.key_id(),
            "no stored secrets there"
        );

        // A damaged key file stops the start, named.
        let damaged = dir.path().join("damaged");
        std::fs::create_dir_all(&damaged).unwrap();
        std::fs::write(damaged.join(SECRETS_KEY_FILE), "not a key\n").unwrap();
        let config = Config::load_from(None, env(&[("PHOENIX_DATA_DIR", damaged.to_str().unwrap())])).unwrap();
        let error = config.sealer().unwrap_err().to_string();
        assert!(
            error.contains("the key file") && error.contains(SECRETS_KEY_FILE),
            "{error}"
        );

        // A rotation: the new key seals, the previous ones (a list) open.
        let (new, old) = (Sealer::generate_key().unwrap(), Sealer::generate_key().unwrap());
        let rotated = Config::load_from(
            None,
            env(&[
                ("PHOENIX_SECRETS_KEY", &new),
                ("PHOENIX_PREVIOUS_SECRETS_KEYS", &format!("{old},{}", key.trim())),
            ]),
        )
        .unwrap();
        assert_eq!(rotated.previous_secrets_keys.len(), 2);
        let sealer = rotated.sealer().unwrap();
        let sealed = made.seal_text("context", "secret");
        assert_eq!(sealer.open_text("context", &sealed).unwrap().value, "secret");
        assert_eq!(sealer.key_id(), Sealer::from_base64(&new, &[]).unwrap().key_id());
        assert!(!format!("{rotated:?}").contains(&new));
    }

    #[test]
    fn the_bus_is_chosen_by_kind() {
        let config = Config::load_from(None, HashMap::new()).unwrap();
        assert_eq!(config.bus, Bus::InProcess);
        let config = Config::load_from(
            None,
            env(&[
                ("PHOENIX_BUS__KIND", "nats"),
                ("PHOENIX_BUS__URL", "nats://10.0.0.5:4222"),
                ("PHOENIX_BUS__REPLICAS", "3"),
            ]),
        )
        .unwrap();
        let Bus::Nats(nats) = config.bus else {
            panic!("expected NATS");
        };
        assert_eq!(nats.url, "nats://10.0.0.5:4222");
        assert_eq!(nats.replicas, 3);
        assert_eq!(nats.duplicate_window_secs, 120, "unset fields keep their defaults");
        let error = Config::load_from(None, env(&[("PHOENIX_BUS__KIND", "kafka")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("kafka"), "{error}");
        let error = Config::load_from(
            None,
            env(&[("PHOENIX_BUS__KIND", "nats"), ("PHOENIX_BUS__URL", "http://x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("bus.url"), "{error}");
    }

    #[test]
    fn each_service_gets_its_own_postgres_database() {
        let config = Config::load_from(
            None,
            env(&[("PHOENIX_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/phoenix")]),
        )
        .unwrap();
        let DatabaseTarget::Url(url) = config.database_for(Role::Identity).unwrap() else {
            panic!("expected a URL");
        };
        assert_eq!(url.expose(), "postgres://postgres@127.0.0.1:5432/phoenix_identity");
    }
}
