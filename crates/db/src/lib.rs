//! Storage for every Phoenix service.
//!
//! Each service owns one database: a SQLite file in the embedded default, or a PostgreSQL database when its
//! `database_url` says `postgres://`. This crate gives a service one handle for either ([`Pool`]), a transaction
//! handle ([`Tx`]) whose [`Tx::append_event`] writes an event to the service's outbox in the same transaction as the
//! change it describes, the migrations runner, a [`Timestamp`] that sorts correctly on both engines, and
//! [`GroupCommit`], which applies many callers' small writes in one transaction.
//!
//! Queries are written once: SQL uses `$1`-style parameters, which both engines accept, and [`dispatch!`] runs the
//! same expression against whichever pool or transaction the handle holds. Only DDL differs per engine, so each
//! service keeps `migrations/sqlite` and `migrations/postgres`.
//!
//! This crate never knows what a service stores; it owns only the outbox and the stored responses of idempotent
//! requests ([`idempotency`]), and the [`Sealer`] that encrypts the secrets a service must read back ([`seal`]).

mod error;
mod group;
pub mod idempotency;
mod outbox;
mod pool;
pub mod seal;
mod timestamp;

#[cfg(feature = "testing")]
pub mod testing;

pub use error::Error;
pub use group::{Closed, GroupCommit};
pub use outbox::{Event, OutboxRecord, PgQuery, bind_event_pg, chunks_under, event_part_pg};
pub use pool::{Backend, Migrations, Pool, PoolOptions, Tx};
pub use seal::{Opened, ResealError, SealError, SealedColumn, Sealer, reseal_column};
pub use timestamp::Timestamp;

/// The largest statement a batch sends to PostgreSQL in one message. sqlx 0.9.0 leaves Nagle's algorithm on
/// (sqlx issue 4335): a message larger than the socket's send buffer (16 KiB to start with) goes out in two writes,
/// and the second waits up to 40 ms for the server's delayed ACK. Batches split their statements to stay under
/// this size; measured in BENCHMARKS.md.
pub const MAX_MESSAGE_BYTES: usize = 15 * 1024;

/// Runs one expression against the engine a [`Pool`] or [`Tx`] holds, binding `$conn` to the engine's executor.
///
/// With a `Pool`, `$conn` is the engine's pool (`&SqlitePool` or `&PgPool`); with a `Tx`, it is a
/// `&mut` connection (reborrow it as `&mut *conn` to run several statements). Both arms must produce one type, so
/// map engine-specific results (`.map(|done| done.rows_affected())` after `execute`).
///
/// ```text
/// let n: i64 = phoenix_db::dispatch!(pool, conn => {
///     sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(conn).await
/// })?;
/// ```
#[macro_export]
macro_rules! dispatch {
    ($handle:expr, $conn:ident => $body:expr) => {
        match $crate::__Dispatch::dispatch($handle) {
            $crate::__Engine::Sqlite($conn) => $body,
            $crate::__Engine::Postgres($conn) => $body,
        }
    };
}

#[doc(hidden)]
pub enum __Engine<S, P> {
    Sqlite(S),
    Postgres(P),
}

#[doc(hidden)]
pub trait __Dispatch {
    type Sqlite;
    type Postgres;
    fn dispatch(self) -> __Engine<Self::Sqlite, Self::Postgres>;
}

impl<'a> __Dispatch for &'a Pool {
    type Sqlite = &'a sqlx::SqlitePool;
    type Postgres = &'a sqlx::PgPool;
    fn dispatch(self) -> __Engine<Self::Sqlite, Self::Postgres> {
        match self {
            Pool::Sqlite(pool) => __Engine::Sqlite(pool),
            Pool::Postgres(pool) => __Engine::Postgres(pool),
        }
    }
}

impl<'a> __Dispatch for &'a mut Tx {
    type Sqlite = &'a mut sqlx::SqliteConnection;
    type Postgres = &'a mut sqlx::PgConnection;
    fn dispatch(self) -> __Engine<Self::Sqlite, Self::Postgres> {
        match self {
            Tx::Sqlite(tx) => __Engine::Sqlite(&mut **tx),
            Tx::Postgres(tx) => __Engine::Postgres(&mut **tx),
        }
    }
}
