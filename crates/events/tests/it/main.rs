//! The events contract suite: consumers on SQLite and PostgreSQL, the relay and the bus in-process and on NATS
//! JetStream.

mod consumer;
mod relay;
mod retention;

mod migrations {
    /// No tables of a service's own: the outbox, inbox and dead letters come with every database.
    pub static MIGRATIONS: phoenix_db::Migrations = phoenix_db::Migrations {
        sqlite: sqlx::migrate::Migrator::DEFAULT,
        postgres: sqlx::migrate::Migrator::DEFAULT,
    };
}
