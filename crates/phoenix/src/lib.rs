//! The `phoenix` binary: every Phoenix service in one executable.
//!
//! This crate owns configuration, the command line, and the wiring that decides, once at start-up, which roles run
//! in this process and on which infrastructure. It holds no business logic: that lives in the service crates.

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod events;
pub mod seed;

pub use app::App;
pub use config::Config;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
