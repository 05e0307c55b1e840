use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Parser;
use phoenix::cli::{
    AuditCommand, BenchCommand, Cli, Command, EventsCommand, KeysCommand, PaymentsCommand, SeedCommand, UserCommand,
};
use phoenix::config::{Config, LogFormat, Role};
use phoenix::{App, app, bench, events, seed, shutdown_signal};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: search and the request paths allocate many small, short-lived values
/// across threads, where glibc's malloc spent about a sixth of the CPU of `phoenix bench search` (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.global.config.as_deref())?;
    if let Some(dir) = cli.global.data_dir {
        config.data_dir = dir;
    }
    if let Some(format) = cli.global.log_format {
        config.log_format = format;
    }
    // A benchmark's server must not spend its time writing access logs.
    let default_filter = if matches!(cli.command, Command::Bench(_)) {
        "warn"
    } else {
        "info,sqlx=warn"
    };
    init_logging(config.log_format, default_filter);
    match cli.command {
        Command::Serve(serve) => {
            if let Some(listen) = serve.listen {
                config.listen = listen;
            }
            if !serve.roles.is_empty() {
                config.roles = serve.roles;
            }
            let roles: Vec<&str> = config.local_roles().iter().map(|r| r.name()).collect();
            let app = App::build(config.clone()).await?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            tracing::info!(address = %listener.local_addr()?, roles = ?roles, "phoenix listening");
            app.serve(listener, shutdown_signal()).await
        }
        Command::Migrate(migrate) => {
            let roles = if migrate.roles.is_empty() {
                Role::ALL.to_vec()
            } else {
                migrate.roles
            };
            for role in roles {
                let Some(migrations) = app::migrations(role) else {
                    continue;
                };
                app::open_database(&config, role, migrations).await?.close().await;
                println!("{}: migrated", role.name());
            }
            Ok(())
        }
        Command::User(UserCommand::Create(create)) => {
            let password = read_password()?;
            let identity = app::identity_service(&config).await?;
            let name = create
                .name
                .unwrap_or_else(|| create.email.split('@').next().unwrap_or_default().to_owned());
            let user = identity
                .create_user(phoenix_identity::NewUser {
                    email: &create.email,
                    password: &password,
                    name: &name,
                    roles: &create.roles,
                    organization_id: create.organization_id,
                })
                .await?;
            println!(
                "{}",
                serde_json::json!({ "id": user.id, "email": user.email, "roles": user.roles })
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Rotate) => {
            let identity = app::identity_service(&config).await?;
            let kid = identity.rotate_signing_key().await?;
            println!("new signing key {kid}; the previous key verifies until its tokens expire");
            Ok(())
        }
        Command::Keys(KeysCommand::NewSecretsKey) => {
            println!("{}", phoenix_db::Sealer::generate_key()?);
            Ok(())
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&app::openapi())?);
            Ok(())
        }
        Command::Bench(BenchCommand::Booking(options)) => bench::booking::run(options).await,
        Command::Bench(BenchCommand::Gateway(options)) => bench::gateway::run(options).await,
        Command::Bench(BenchCommand::Inventory(options)) => bench::inventory::run(options).await,
        Command::Bench(BenchCommand::Search(options)) => bench::search::run(options).await,
        Command::Bench(BenchCommand::Events(options)) => bench::events::run(options).await,
        Command::Payments(PaymentsCommand::Reconcile(options)) => {
            let (payment, _) = app::payment_service(&config).await?;
            let report = phoenix_payment::reconcile(&payment, options.repair).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            let outstanding = report.differences_found - report.repaired;
            if outstanding > 0 || report.unchecked > 0 || report.listing_incomplete {
                bail!(
                    "{outstanding} difference(s) remain, {} payment(s) could not be checked{}",
                    report.unchecked,
                    if report.listing_incomplete {
                        ", the provider's books could not be read to the end"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Command::Events(EventsCommand::Relay(options)) => events::relay(&config, options).await,
        Command::Events(EventsCommand::DeadLetters(command)) => events::dead_letters(&config, command).await,
        Command::Audit(AuditCommand::Verify { anchors }) => events::verify_audit(&config, &anchors).await,
        Command::Seed(SeedCommand::Demo(options)) => {
            let seeded = seed::demo(&config, options.scale, options.days, false).await?;
            println!(
                "seeded {} organizations, {} hotels, {} schedules with {} departures; sign in as {} (password {})",
                seeded.organizations,
                seeded.hotels,
                seeded.schedules,
                seeded.departures,
                seed::DEMO_CUSTOMER,
                seed::DEMO_PASSWORD
            );
            Ok(())
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("PHOENIX_USER_PASSWORD") {
        return Ok(password);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password: set PHOENIX_USER_PASSWORD or pipe it on standard input");
    }
    Ok(password)
}

fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
    };
}
