//! The outbox relay dies between publishing a batch and marking it published, 20 times while 10,000 changes are
//! made, and the NATS server is killed and restarted 3 times. Downstream, every committed event arrives and is
//! applied once, none from a rolled-back transaction does, and each subject's events are applied in outbox order;
//! the audit log holds one entry per committed event, its hash chain intact.
//!
//! Real processes throughout: `phoenix events relay` aborting itself (fault injection) at the worst moment, and a
//! NATS server of the test's own, killed with SIGKILL.

use std::collections::{HashMap, HashSet};
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use phoenix::config::Role;
use phoenix_db::{Event, Pool, Tx};
use phoenix_events::{Bus, CloudEvent, Consumer, ConsumerOptions, Handler, HandlerError, Nats, NatsOptions};
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

use crate::common::{NatsServer, PostgresDatabases};
use crate::process::PHOENIX;

const CHANGES: usize = 10_000;
const CRASHES: usize = 20;
const NATS_RESTARTS_AT: [usize; 3] = [4, 10, 16];

/// The consumer's database has only what every database has (its inbox), and the ledger below.
static NO_TABLES: phoenix_db::Migrations = phoenix_db::Migrations {
    sqlite: sqlx::migrate::Migrator::DEFAULT,
    postgres: sqlx::migrate::Migrator::DEFAULT,
};

/// Records each event it applies, in the order applied.
struct Ledger;

#[async_trait]
impl Handler for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn domains(&self) -> &'static [&'static str] {
        &["booking"]
    }

    async fn apply(&self, tx: &mut Tx, event: &CloudEvent) -> Result<(), HandlerError> {
        phoenix_db::dispatch!(tx, conn => {
            sqlx::query("INSERT INTO ledger (event_id, subject, sequence) VALUES ($1, $2, $3)")
                .bind(event.id)
                .bind(&event.subject)
                .bind(event.sequence)
                .execute(conn)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}

async fn ledger_database(pool: &Pool) {
    let ddl = match pool.backend() {
        phoenix_db::Backend::Sqlite => {
            "CREATE TABLE IF NOT EXISTS ledger (applied INTEGER PRIMARY KEY AUTOINCREMENT,
             event_id BLOB NOT NULL UNIQUE, subject TEXT NOT NULL, sequence BIGINT NOT NULL)"
        }
        phoenix_db::Backend::Postgres => {
            "CREATE TABLE IF NOT EXISTS ledger (applied BIGSERIAL PRIMARY KEY,
             event_id UUID NOT NULL UNIQUE, subject TEXT NOT NULL, sequence BIGINT NOT NULL)"
        }
    };
    phoenix_db::dispatch!(pool, conn => sqlx::query(ddl).execute(conn).await.map(|_| ())).expect("ledger table");
}

async fn ledger(pool: &Pool) -> Vec<(Uuid, String, i64)> {
    phoenix_db::dispatch!(pool, conn => {
        sqlx::query_as("SELECT event_id, subject, sequence FROM ledger ORDER BY applied").fetch_all(conn).await
    })
    .expect("read ledger")
}

/// Writes `n` events in transactions of one to four events over 40 subjects; every seventh transaction rolls
/// back. Returns the ids committed and the ids rolled back.
async fn write_changes(pool: Pool, first: usize, n: usize) -> (Vec<Uuid>, Vec<Uuid>) {
    let (mut committed, mut rolled_back) = (Vec::new(), Vec::new());
    let mut i = first;
    while i < first + n {
        let size = 1 + i % 4;
        let mut tx = pool.begin().await.expect("begin");
        let mut ids = Vec::new();
        for _ in 0..size.min(first + n - i) {
            let data = serde_json::json!({ "change": i });
            let event = Event::new(
                "phoenix.booking",
                "booking.confirmed.v1",
                format!("booking-{}", i % 40),
                &data,
            )
            .expect("event");
            tx.append_event(&event).await.expect("append");
            ids.push(event.id);
            i += 1;
        }
        if (i / 4).is_multiple_of(7) {
            drop(tx);
            rolled_back.extend(ids);
        } else {
            tx.commit().await.expect("commit");
            committed.extend(ids);
        }
    }
    (committed, rolled_back)
}

fn relay_command(data: &std::path::Path, env: &[(String, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(PHOENIX);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg("--data-dir")
        .arg(data)
        .args(["events", "relay", "--service", "booking"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

async fn relay_crashes_and_nats_restarts_lose_nothing(database_url: Option<String>) {
    let mut nats = NatsServer::start();
    let data = tempfile::tempdir().expect("data dir");
    let mut env = vec![
        ("PHOENIX_BUS__KIND".to_owned(), "nats".to_owned()),
        ("PHOENIX_BUS__URL".to_owned(), nats.url()),
        ("PHOENIX_BUS__PUBLISH_TIMEOUT_SECS".to_owned(), "2".to_owned()),
        ("PHOENIX_EVENTS__RELAY__BATCH_SIZE".to_owned(), "50".to_owned()),
        ("PHOENIX_EVENTS__RELAY__POLL_INTERVAL_MS".to_owned(), "10".to_owned()),
        // A crashed relay's lease must not hold up the next one for long.
        ("PHOENIX_EVENTS__RELAY__LEASE_SECS".to_owned(), "1".to_owned()),
    ];
    if let Some(url) = &database_url {
        env.push(("PHOENIX_DATABASE_URL".to_owned(), url.clone()));
        env.push(("PHOENIX_SECRETS_KEY".to_owned(), crate::process::SECRETS_KEY.to_owned()));
    }
    let mut config = phoenix::Config::default();
    config.data_dir = data.path().to_owned();
    config.database_url = database_url.clone().map(phoenix::config::Secret::new);
    let producer = phoenix::app::open_database(&config, Role::Booking, phoenix_booking::migrations())
        .await
        .expect("booking database");
    let consumer_db = match &database_url {
        Some(_) => phoenix_db::testing::TestDatabase::postgres(&NO_TABLES).await,
        None => phoenix_db::testing::TestDatabase::sqlite(&NO_TABLES).await,
    };
    ledger_database(&consumer_db.pool()).await;
    let bus = Bus::Nats(
        Nats::connect(NatsOptions {
            url: nats.url(),
            ..NatsOptions::default()
        })
        .await
        .expect("connect"),
    );
    let _subscription = bus.subscribe(Consumer::new(
        consumer_db.pool(),
        Arc::new(Ledger),
        ConsumerOptions::default(),
    ));
    // The audit service, with its own database, hears the same events.
    let audit_db = match &database_url {
        Some(_) => phoenix_db::testing::TestDatabase::postgres(phoenix_audit::migrations()).await,
        None => phoenix_db::testing::TestDatabase::sqlite(phoenix_audit::migrations()).await,
    };
    let audit = phoenix_audit::Service::new(audit_db.pool(), phoenix_audit::Options::default());
    let _audit_subscriptions: Vec<_> = audit
        .handlers()
        .into_iter()
        .map(|handler| bus.subscribe(Consumer::new(audit_db.pool(), handler, ConsumerOptions::default())))
        .collect();

    let (mut committed, mut rolled_back) = (Vec::new(), Vec::new());
    let per_round = CHANGES / CRASHES;
    for round in 0..CRASHES {
        let writer = tokio::spawn(write_changes(producer.clone(), round * per_round, per_round));
        let restart = NATS_RESTARTS_AT.contains(&round);
        if restart {
            nats.kill();
        }
        let mut relay = relay_command(data.path(), &env)
            .env(
                "PHOENIX_EVENTS__RELAY__ABORT_AFTER_PUBLISHES",
                (1 + round % 3).to_string(),
            )
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start relay");
        let mut log = tokio::io::BufReader::new(relay.stderr.take().expect("stderr")).lines();
        if restart {
            // NATS comes back only once the relay has failed to publish to it (and the consumer lost it too).
            loop {
                let line = tokio::time::timeout(Duration::from_secs(60), log.next_line())
                    .await
                    .expect("the relay tried to publish while NATS was down")
                    .expect("relay log")
                    .expect("the relay is still running");
                if line.contains("could not publish") {
                    break;
                }
            }
            nats.run();
        }
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        let status = tokio::time::timeout(Duration::from_secs(120), relay.wait())
            .await
            .expect("the relay reached its crash point")
            .expect("relay status");
        assert_eq!(
            status.signal(),
            Some(6),
            "the relay aborted between publish and mark: {status:?}"
        );
        let (ok, undone) = writer.await.expect("writer");
        committed.extend(ok);
        rolled_back.extend(undone);
    }
    // A last relay, without faults, publishes what is left.
    let status = relay_command(data.path(), &env)
        .arg("--until-empty")
        .status()
        .await
        .expect("final relay");
    assert!(status.success(), "{status:?}");
    assert_eq!(producer.unpublished_backlog().await.expect("backlog").0, 0);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let applied = loop {
        let applied = ledger(&consumer_db.pool()).await;
        if applied.len() >= committed.len() || tokio::time::Instant::now() > deadline {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let ids: HashSet<Uuid> = applied.iter().map(|r| r.0).collect();
    assert_eq!(ids.len(), applied.len(), "each event applied once");
    let expected: HashSet<Uuid> = committed.iter().copied().collect();
    let missing = expected.difference(&ids).count();
    assert_eq!(missing, 0, "{missing} committed events never arrived");
    assert!(
        rolled_back.iter().all(|id| !ids.contains(id)),
        "an event of a rolled-back transaction arrived"
    );
    assert_eq!(ids.len(), committed.len());
    let mut last: HashMap<&str, i64> = HashMap::new();
    for (_, subject, sequence) in &applied {
        let previous = last.insert(subject.as_str(), *sequence);
        assert!(previous.is_none_or(|p| p < *sequence), "{subject} applied out of order");
    }
    assert!(!rolled_back.is_empty() && committed.len() + rolled_back.len() == CHANGES);

    // The audit log: one entry per distinct committed event, none for a rolled-back one, its chain intact.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let audited: Vec<Uuid> = loop {
        let audited: Vec<Uuid> = phoenix_db::dispatch!(&audit_db.pool(), conn => {
            sqlx::query_scalar("SELECT event_id FROM audit_entries").fetch_all(conn).await
        })
        .expect("audit entries");
        if audited.len() >= committed.len() || tokio::time::Instant::now() > deadline {
            break audited;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let audited_ids: HashSet<Uuid> = audited.iter().copied().collect();
    assert_eq!(audited.len(), audited_ids.len(), "one audit entry per event");
    assert_eq!(audited_ids, expected, "audit entries are exactly the committed events");
    let verified = phoenix_audit::verify(&audit_db.pool()).await.expect("verify");
    assert!(verified.is_intact(), "{verified}");
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    relay_crashes_and_nats_restarts_lose_nothing(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let databases = PostgresDatabases::new();
    relay_crashes_and_nats_restarts_lose_nothing(Some(databases.url.clone())).await;
}
