//! The `phoenix` binary: every Phoenix service in one executable.
//!
//! This crate owns configuration, the command line, and the wiring that decides, once at start-up, which roles run
//! in this process and on which infrastructure. It holds no business logic: that lives in the service crates.

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod seed;

pub use app::App;
pub use config::Config;
