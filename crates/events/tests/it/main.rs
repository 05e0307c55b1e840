//! The events contract suite: consumers on SQLite and PostgreSQL, the bus in-process and on NATS JetStream.

mod consumer;
