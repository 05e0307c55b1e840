//! Event operations from the command line: running one service's outbox relay on its own, and (for consuming
//! services) listing and replaying dead letters.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::app;
use crate::cli::{DeadLettersCommand, Relay};
use crate::config::{Config, Role};

/// `phoenix events relay --service S`: publishes S's outbox to the configured bus until stopped (SIGINT/SIGTERM,
/// or a crash: the next relay takes over where the lease and the outbox say), or until it is empty.
pub async fn relay(config: &Config, options: Relay) -> anyhow::Result<()> {
    let Some(migrations) = app::migrations(options.service) else {
        bail!("{} has no outbox", options.service.name());
    };
    let pool = app::open_database(config, options.service, migrations).await?;
    let bus = app::event_bus(config).await?;
    if !matches!(bus, phoenix_events::Bus::Nats(_)) {
        bail!("a relay on its own needs a shared bus: set bus.kind = \"nats\" (PHOENIX_BUS__KIND=nats)");
    }
    let relay = phoenix_events::Relay::new(options.service.name(), pool.clone(), bus, config.events.relay.clone());
    let idle = Duration::from_millis(config.events.relay.poll_interval_ms.max(1));
    let mut failing = Duration::ZERO;
    let stop = crate::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let round = tokio::select! {
            round = relay.run_once() => round,
            () = &mut stop => break,
        };
        match round {
            Ok(0) => {
                let (backlog, _) = pool.unpublished_backlog().await.context("reading the outbox")?;
                if options.until_empty && backlog == 0 {
                    break;
                }
                tokio::time::sleep(idle).await;
            }
            Ok(_) => failing = Duration::ZERO,
            Err(e) => {
                failing = (failing * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                tracing::warn!(error = %e, "relay could not publish; retrying");
                tokio::time::sleep(failing).await;
            }
        }
    }
    pool.close().await;
    Ok(())
}

/// The consumer called `name`, on its service's database.
async fn consumer(config: &Config, name: &str) -> anyhow::Result<phoenix_events::Consumer> {
    let mut services = app::Services::default();
    match name {
        "audit" | "analytics" => services.audit = Some(app::audit_service(config).await?),
        "notification" => services.notification = Some(app::notification_service(config).await?),
        "booking" => {
            let pool = app::open_database(config, Role::Booking, phoenix_booking::migrations()).await?;
            let handler = std::sync::Arc::new(phoenix_booking::RefundFollower);
            return Ok(phoenix_events::Consumer::new(
                pool,
                handler,
                config.events.consumer.clone(),
            ));
        }
        _ => bail!("no consumer called {name:?}: audit, analytics, notification or booking"),
    }
    app::consumers(config, &services)
        .into_iter()
        .find(|c| c.name() == name)
        .with_context(|| format!("consumer {name} not found"))
}

/// `phoenix events dead-letters list|replay --consumer NAME`.
pub async fn dead_letters(config: &Config, command: DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List(options) => {
            let consumer = consumer(config, &options.consumer).await?;
            let letters = consumer
                .dead_letters(options.all, options.limit.clamp(1, 10_000))
                .await?;
            println!("{}", serde_json::to_string_pretty(&letters)?);
            consumer.pool().close().await;
            Ok(())
        }
        DeadLettersCommand::Replay(options) => {
            let consumer = consumer(config, &options.consumer).await?;
            let replay = consumer.replay_dead_letters().await?;
            println!("{}", serde_json::to_string_pretty(&replay)?);
            consumer.pool().close().await;
            if replay.still_failing > 0 {
                bail!("{} dead letter(s) still fail", replay.still_failing);
            }
            Ok(())
        }
    }
}

/// `phoenix audit verify`.
pub async fn verify_audit(config: &Config, anchors: &[phoenix_audit::Anchor]) -> anyhow::Result<()> {
    let pool = app::open_database(config, Role::Audit, phoenix_audit::migrations()).await?;
    let verification = phoenix_audit::verify_anchored(&pool, anchors).await?;
    pool.close().await;
    println!("{verification}");
    if !verification.is_intact() {
        bail!("the audit log has been tampered with");
    }
    Ok(())
}
