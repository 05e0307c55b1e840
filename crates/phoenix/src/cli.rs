//! The `phoenix` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{LogFormat, Role};

/// Phoenix: booking and payment for hotel rooms, flight seats and any other limited capacity.
///
/// One binary plays every role. `phoenix serve` runs them all in one process on embedded SQLite; `--role` runs
/// some of them, reaching the others over HTTP. Settings come from `--config FILE`, then `PHOENIX_*` environment
/// variables (`PHOENIX_GATEWAY__RATE_LIMIT_PER_USER_PER_MIN=500`), then flags.
#[derive(Debug, Parser)]
#[command(name = "phoenix", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// TOML configuration file.
    #[arg(long, global = true, env = "PHOENIX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded SQLite databases [default: ./phoenix-data].
    #[arg(long, global = true, env = "PHOENIX_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, env = "PHOENIX_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the platform (every role, or those named with --role).
    Serve(Serve),
    /// Apply each service's database migrations and exit (serve does this too).
    Migrate(Migrate),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the keys that sign access tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Print the OpenAPI document of the whole API.
    Openapi,
    /// Measure performance; results go to BENCHMARKS.md.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Load data.
    #[command(subcommand)]
    Seed(SeedCommand),
    /// Payment operations.
    #[command(subcommand)]
    Payments(PaymentsCommand),
    /// Event operations: relays and dead letters.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Audit log operations.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit log's hash chain from the first entry to the head. Exits non-zero, naming the first
    /// broken entry, when any entry was edited or deleted. Prints an anchor (`<position>:<hash>`) to keep outside
    /// the database: passed back with --anchor, it also catches a rewrite of the whole log from some entry on.
    Verify {
        /// An anchor an earlier verify printed; repeat for several.
        #[arg(long = "anchor", value_name = "POSITION:HASH")]
        anchors: Vec<phoenix_audit::Anchor>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Publish one service's outbox to the configured bus, as `serve` does for the services it runs: until
    /// stopped, or with --until-empty until nothing is left to publish.
    Relay(Relay),
    /// Events a consumer gave up on after its retries.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Print a consumer's dead letters as JSON (open ones; with --all, replayed ones too).
    List(DeadLettersList),
    /// Apply a consumer's open dead letters again, once their cause is fixed. Exits non-zero if any still fail.
    Replay(DeadLettersReplay),
}

#[derive(Debug, Args)]
pub struct DeadLettersList {
    /// The consumer: audit, analytics, notification or booking.
    #[arg(long)]
    pub consumer: String,
    /// Include dead letters already replayed.
    #[arg(long)]
    pub all: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct DeadLettersReplay {
    /// The consumer: audit, analytics, notification or booking.
    #[arg(long)]
    pub consumer: String,
}

#[derive(Debug, Args)]
pub struct Relay {
    /// The service whose outbox to publish.
    #[arg(long, value_enum)]
    pub service: Role,
    /// Exit once the outbox has nothing left to publish.
    #[arg(long)]
    pub until_empty: bool,
}

#[derive(Debug, Subcommand)]
pub enum PaymentsCommand {
    /// Compare every payment with the provider's view of it and print the differences as JSON; with --repair,
    /// bring our books in line with the provider (the provider's ledger is where the money really is) and void
    /// authorizations we hold as failed. Exits non-zero when differences remain.
    Reconcile(Reconcile),
}

#[derive(Debug, Args)]
pub struct Reconcile {
    /// Fix what can be fixed instead of only reporting it.
    #[arg(long)]
    pub repair: bool,
}

#[derive(Debug, Subcommand)]
pub enum SeedCommand {
    /// Load the demo dataset into an empty catalog: 50 cities, about 2,000 hotels with 60 nights of prices, a few
    /// thousand flights a day for 60 days, their organizations and operators, and a demo customer
    /// (demo@phoenix.example). Every demo account's password is sunny-harbour-lantern-42.
    Demo(SeedDemo),
}

#[derive(Debug, Args)]
pub struct SeedDemo {
    /// Multiplies hotels and flights (1 to 20).
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Days of flights and nights of hotel prices, from today.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct Serve {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "PHOENIX_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// A role to run; repeat for several. Roles not run here are reached at services.<role>.
    #[arg(long = "role", value_enum, value_name = "ROLE")]
    pub roles: Vec<Role>,
}

#[derive(Debug, Args)]
pub struct Migrate {
    /// Only these services' databases; repeat for several [default: all].
    #[arg(long = "role", value_enum, value_name = "ROLE")]
    pub roles: Vec<Role>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user non-interactively. The password is read from PHOENIX_USER_PASSWORD, or else from the first
    /// line of standard input.
    Create(UserCreate),
}

#[derive(Debug, Args)]
pub struct UserCreate {
    #[arg(long)]
    pub email: String,
    /// A role; repeat for several (customer, agent, partner, support, operator, admin).
    #[arg(long = "role", value_name = "ROLE", required = true)]
    pub roles: Vec<phoenix_api::Role>,
    /// Display name [default: the part of the email before @].
    #[arg(long)]
    pub name: Option<String>,
    /// The organization, for agent, partner and operator roles.
    #[arg(long, value_name = "UUID")]
    pub organization_id: Option<uuid::Uuid>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing with a new key. The previous key keeps verifying tokens until they expire.
    Rotate,
    /// Print a new random key for `secrets_key` (PHOENIX_SECRETS_KEY), which seals stored secrets. To rotate, set
    /// it as `secrets_key` and move the old key to `previous_secrets_keys`: services seal again at start.
    NewSecretsKey,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Confirmed bookings per second end to end (quote, saga, payment), spread demand and a flash sale, verified.
    Booking(BenchBooking),
    /// Token verification rate, and authenticated GET /api/v1/auth/me against GET /healthz through the gateway.
    Gateway(BenchGateway),
    /// Holds per second: the batching engine against one transaction per hold, on SQLite and PostgreSQL.
    Inventory(BenchInventory),
    /// Hotel and flight searches per second and their latency on the demo dataset, cold and warm cache.
    Search(BenchSearch),
    /// Events per second from an outbox to the audit consumer, in-process and through NATS JetStream.
    Events(BenchEvents),
}

#[derive(Debug, Args)]
pub struct BenchEvents {
    /// Events written to the outbox before the relay starts.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    #[arg(long, value_enum, default_value_t = BenchBackend::Both)]
    pub backend: BenchBackend,
    /// NATS server for the NATS runs [default: skip them].
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
    /// PostgreSQL server for the PostgreSQL runs (a fresh database is created and dropped per run).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
}

#[derive(Debug, Args)]
pub struct BenchBooking {
    /// Concurrent clients, each a customer of its own making one booking at a time.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds each scenario is measured.
    #[arg(long, default_value_t = 15)]
    pub duration_secs: u64,
    /// A PostgreSQL server and database name prefix (`postgres://postgres@127.0.0.1:5432/phoenix_bench`): each
    /// scenario runs on fresh databases `<name>_<run>_<service>`, dropped afterwards [default: SQLite in a temporary
    /// directory].
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    #[arg(long, value_enum, default_value_t = BenchScenario::Both)]
    pub scenario: BenchScenario,
    /// Seats of the flash sale's departure (1 to 2000; more than 1000 are split over two cabins).
    #[arg(long, default_value_t = 1_000)]
    pub flash_seats: i64,
    /// Carry events over NATS JetStream at this URL (`nats://127.0.0.1:4222`) [default: the in-process bus].
    #[arg(long, value_name = "URL")]
    pub nats_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchScenario {
    /// Stays spread over many hotels, room types and nights with plenty of rooms.
    Spread,
    /// Every client after the seats of one departure until they are gone.
    Flash,
    /// Spread, then flash.
    Both,
}

#[derive(Debug, Args)]
pub struct BenchSearch {
    /// Concurrent clients, each making one search at a time.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds each phase is measured.
    #[arg(long, default_value_t = 15)]
    pub duration_secs: u64,
    /// Share of hotel searches in the mix, in percent (the rest are flight searches, half with connections).
    #[arg(long, default_value_t = 50)]
    pub hotel_percent: u32,
    /// Where the demo dataset is seeded (a fresh temporary directory when unset).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDemand {
    /// Every hold on one bucket.
    Hot,
    /// Holds spread over many buckets.
    Spread,
}

#[derive(Debug, Args)]
pub struct BenchInventory {
    /// Concurrent clients, each making one hold at a time.
    #[arg(long, default_value_t = 256)]
    pub clients: usize,
    /// Seconds each run is measured.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Seconds of warm-up before each run.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Buckets the spread demand is spread over.
    #[arg(long, default_value_t = 10_000)]
    pub buckets: usize,
    #[arg(long, value_enum, default_value_t = BenchBackend::Both)]
    pub backend: BenchBackend,
    /// Only this demand shape [default: both].
    #[arg(long, value_enum)]
    pub demand: Option<BenchDemand>,
    /// Skip the one-transaction-per-hold baseline.
    #[arg(long)]
    pub engine_only: bool,
    /// PostgreSQL server for the PostgreSQL runs (a fresh database is created and dropped per run).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres_url: String,
}

#[derive(Debug, Args)]
pub struct BenchGateway {
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds each route is measured, in total.
    #[arg(long, default_value_t = 20)]
    pub duration_secs: u64,
    /// Alternating rounds the measurement is split into.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Seconds of warm-up before each round.
    #[arg(long, default_value_t = 1)]
    pub warmup_secs: u64,
}
