//! End-to-end tests: the real app on 127.0.0.1:0 with fresh databases, driven over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod binary;
mod bookings;
mod catalog;
mod common;
mod crash;
mod errors;
mod events;
mod events_crash;
mod inventory;
mod jwt;
mod kubernetes;
mod limits;
mod mfa;
mod openapi;
mod password_reset;
mod payments;
mod postgres;
mod process;
mod saga;
mod saga_crash;
mod saga_in_flight;
mod split;
