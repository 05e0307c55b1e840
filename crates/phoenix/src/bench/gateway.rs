//! `phoenix bench gateway`: what authentication costs.
//!
//! Measures, in one run against one all-in-one server on loopback: Ed25519 access-token verification per second
//! (the work the token cache saves), then closed-loop throughput and latency of `GET /healthz` (no credentials, no
//! rate limit, no database) and of `GET /api/v1/auth/me` (bearer token through the whole gateway stack: request id,
//! IP and user rate limits, credential check, role check, a database read). Target: `/auth/me` keeps at least
//! 70 % of `/healthz` throughput.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::bench::{load, machine, today};
use crate::cli::BenchGateway;
use crate::{App, Config};

pub async fn run(options: BenchGateway) -> anyhow::Result<()> {
    let data = tempfile::tempdir().context("temporary data directory")?;
    let mut config = Config {
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    // Measure the machinery, not the quota: limits high enough never to trigger.
    config.gateway.rate_limit_per_user_per_min = u32::MAX / 2;
    config.gateway.rate_limit_per_ip_per_min = u32::MAX / 2;
    let app = App::build(config.clone()).await?;
    let identity = app
        .identity()
        .context("identity runs in the benchmark process")?
        .clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = stopped.await;
    }));

    let password = "a load-test passphrase of sufficient length";
    identity.register("bench@example.com", password, "Bench User").await?;
    let session = identity
        .login(phoenix_identity::Login {
            email: "bench@example.com",
            password,
            totp_code: None,
            client_ip: None,
        })
        .await?;
    let token = session.access_token;

    let verify_per_sec = verification_rate(&identity, &config, &token).await?;

    let warmup = Duration::from_secs(options.warmup_secs);
    let duration = Duration::from_secs(options.duration_secs);
    let healthz = load::get(&format!("{base}/healthz"), None, options.concurrency, warmup, duration).await?;
    let bearer = format!("Bearer {token}");
    let me = load::get(
        &format!("{base}/api/v1/auth/me"),
        Some(&bearer),
        options.concurrency,
        warmup,
        duration,
    )
    .await?;
    if healthz.errors > 0 || me.errors > 0 {
        bail!(
            "errors during the run: /healthz {}, /auth/me {}",
            healthz.errors,
            me.errors
        );
    }

    let ratio = me.per_sec() / healthz.per_sec();
    println!("phoenix bench gateway: {} on {}", today(), machine());
    println!(
        "concurrency {}, {} s measured per route in {} alternating rounds (each after {} s warm-up), build: {}",
        options.concurrency,
        options.duration_secs,
        options.rounds,
        options.warmup_secs,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!();
    println!("| measurement | rate | p50 | p99 |");
    println!("|---|---|---|---|");
    println!("| access-token verification (Ed25519, uncached, all cores) | {verify_per_sec:.0}/s | | |");
    for (name, report) in [("GET /healthz", &healthz), ("GET /api/v1/auth/me (bearer)", &me)] {
        println!(
            "| {name} | {:.0} req/s | {:.2} ms | {:.2} ms |",
            report.per_sec(),
            report.p50_ms(),
            report.p99_ms()
        );
    }
    println!();
    println!(
        "/auth/me keeps {:.0} % of /healthz throughput (target >= 70 %): {}",
        ratio * 100.0,
        if ratio >= 0.70 { "met" } else { "NOT met" }
    );

    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// Verifies the same token, bypassing the cache, on every core for two seconds.
async fn verification_rate(identity: &phoenix_identity::Service, config: &Config, token: &str) -> anyhow::Result<f64> {
    let authenticator = phoenix_gateway::Authenticator::new(
        phoenix_identity::Client::Local(identity.clone()),
        &config.identity.issuer,
        &config.identity.audience,
        1,
    );
    authenticator
        .verify_uncached(token)
        .await
        .context("the benchmark token must verify")?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let until = Instant::now() + Duration::from_secs(2);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let authenticator = authenticator.clone();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                if authenticator.verify_uncached(&token).await.is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}
