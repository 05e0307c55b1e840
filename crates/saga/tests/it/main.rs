//! The saga orchestrator's contract suite: every test runs against SQLite and against PostgreSQL. The sagas'
//! behaviour against the real services (compensation at each step, replays, crashes) is tested end to end in the
//! `phoenix` crate; here, the storage rules that make recovery safe: one saga per booking and kind, one live lease
//! per saga however many instances race, and no progress saved by an instance that lost its lease; and the
//! cancellation's refund step against the real payment service, and a step whose call payment is still processing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod in_progress;
mod leases;
mod refunds;
