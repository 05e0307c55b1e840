//! A card provider simulated on a database of its own, with test tokens for every outcome.
//!
//! It behaves like a real provider where Phoenix depends on it: it deduplicates on idempotency keys (the same key
//! gets the stored first answer; the same key with other parameters is refused), allows one capture per
//! authorization (the rest is released), refuses to capture or refund more than it holds, and refuses to void a
//! captured payment. Its books live in its own `simulator_` tables on its own [`Pool`], so a test can open them after
//! the process that called it died and read exactly what money moved ([`Simulator::ledger`]).
//!
//! Test tokens, as a client's card form would return them:
//!
//! | token | outcome |
//! |---|---|
//! | `tok_visa`, `tok_mastercard` | authorized |
//! | `tok_decline` | declined `card_declined` |
//! | `tok_insufficient_funds` | declined `insufficient_funds` |
//! | `tok_expired_card` | declined `expired_card` |
//! | `tok_hang` | never answers (the request is recorded, then it waits forever) |
//! | `tok_flaky` | the first two attempts of each idempotency key on this card fail `Unavailable`, then it works |
//! | anything else | declined `invalid_token` |

use async_trait::async_trait;
use phoenix_db::{Backend, Migrations, Pool, Timestamp, Tx, dispatch};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Authorization, ListPage, Listed, Provider, ProviderError, ProviderPayment, ProviderStatus};

static SIMULATOR_MIGRATIONS: Migrations = Migrations {
    sqlite: sqlx::migrate!("migrations/simulator_sqlite"),
    postgres: sqlx::migrate!("migrations/simulator_postgres"),
};

/// The simulator's schema, for `Pool::migrate` on the simulator's own database.
pub fn simulator_migrations() -> &'static Migrations {
    &SIMULATOR_MIGRATIONS
}

/// Attempts of one idempotency key that fail on a `tok_flaky` card before one succeeds.
const FLAKY_FAILURES: i64 = 2;

/// Most rows [`Simulator::ledger`] and [`Simulator::payments`] return: they are for tests and inspection.
pub const MAX_LISTED: i64 = 10_000;

/// The simulated provider. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Simulator {
    pool: Pool,
}

/// One money movement the simulator made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: i64,
    /// The simulator's payment reference (`sim_...`).
    pub reference: String,
    pub kind: EntryKind,
    /// Authorized, captured, refunded, or (for a void) released.
    pub amount_minor: i64,
    pub idempotency_key: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Authorization,
    Capture,
    Refund,
    Void,
}

impl EntryKind {
    fn as_str(self) -> &'static str {
        match self {
            EntryKind::Authorization => "authorization",
            EntryKind::Capture => "capture",
            EntryKind::Refund => "refund",
            EntryKind::Void => "void",
        }
    }

    fn parse(s: &str) -> Option<EntryKind> {
        [
            EntryKind::Authorization,
            EntryKind::Capture,
            EntryKind::Refund,
            EntryKind::Void,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A payment in the simulator's books, with the reference Phoenix gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatedPayment {
    pub payment: ProviderPayment,
    pub our_reference: String,
    /// `visa`, `mastercard` or `flaky`: never the token itself.
    pub card: String,
}

/// What a test token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Card {
    Visa,
    Mastercard,
    Flaky,
    Hang,
    Declined(&'static str),
}

impl Card {
    fn of(token: &str) -> Card {
        match token {
            "tok_visa" => Card::Visa,
            "tok_mastercard" => Card::Mastercard,
            "tok_flaky" => Card::Flaky,
            "tok_hang" => Card::Hang,
            "tok_decline" => Card::Declined("card_declined"),
            "tok_insufficient_funds" => Card::Declined("insufficient_funds"),
            "tok_expired_card" => Card::Declined("expired_card"),
            _ => Card::Declined("invalid_token"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Card::Visa => "visa",
            Card::Mastercard => "mastercard",
            Card::Flaky => "flaky",
            Card::Hang => "hang",
            Card::Declined(_) => "declined",
        }
    }
}

/// A final answer, stored under its idempotency key and replayed to repeats.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
enum Answer {
    Payment { payment: ProviderPayment },
    Declined { code: String, message: String },
    Rejected { message: String },
}

impl Answer {
    fn of(result: &Result<ProviderPayment, ProviderError>) -> Option<Answer> {
        match result {
            Ok(payment) => Some(Answer::Payment {
                payment: payment.clone(),
            }),
            Err(ProviderError::Declined { code, message }) => Some(Answer::Declined {
                code: code.clone(),
                message: message.clone(),
            }),
            Err(ProviderError::Rejected(message)) => Some(Answer::Rejected {
                message: message.clone(),
            }),
            // Not final: a repeat tries again.
            Err(_) => None,
        }
    }

    fn into_result(self) -> Result<ProviderPayment, ProviderError> {
        match self {
            Answer::Payment { payment } => Ok(payment),
            Answer::Declined { code, message } => Err(ProviderError::Declined { code, message }),
            Answer::Rejected { message } => Err(ProviderError::Rejected(message)),
        }
    }
}

/// What the simulator found under an idempotency key.
enum Admitted {
    /// Answered before: this again.
    Replay(Result<ProviderPayment, ProviderError>),
    /// Never answered; this is request number `attempts` (from 1) under the key.
    New { attempts: i64 },
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    reference: String,
    our_reference: String,
    card: String,
    status: String,
    currency: String,
    authorized_minor: i64,
    captured_minor: i64,
    refunded_minor: i64,
}

impl PaymentRow {
    fn payment(&self) -> Result<ProviderPayment, ProviderError> {
        let status = match self.status.as_str() {
            "authorized" => ProviderStatus::Authorized,
            "captured" => ProviderStatus::Captured,
            "voided" => ProviderStatus::Voided,
            _ => {
                return Err(ProviderError::Unavailable(
                    "the simulator's books are corrupt".to_owned(),
                ));
            }
        };
        Ok(ProviderPayment {
            reference: self.reference.clone(),
            status,
            currency: self.currency.clone(),
            authorized_minor: self.authorized_minor,
            captured_minor: self.captured_minor,
            refunded_minor: self.refunded_minor,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    seq: i64,
    reference: String,
    kind: String,
    amount_minor: i64,
    idempotency_key: String,
    at: Timestamp,
}

/// A settlement's effect on a payment's row: the movement it books, or why it is refused.
type Rule = fn(&mut PaymentRow, i64) -> Result<(EntryKind, i64), ProviderError>;

/// A keyed operation on an existing payment: its rule, and the same rule's accepting case in SQL for
/// [`settle_at_once`] (`$2` is the amount): when it applies, what it sets, what it moves.
struct Settlement {
    operation: &'static str,
    rule: Rule,
    when: &'static str,
    set: &'static str,
    moved: &'static str,
}

const CAPTURE: Settlement = Settlement {
    operation: "capture",
    rule: capture,
    when: "status = 'authorized' AND $2 BETWEEN 1 AND authorized_minor - captured_minor",
    set: "status = 'captured', captured_minor = captured_minor + $2",
    moved: "$2",
};

const REFUND: Settlement = Settlement {
    operation: "refund",
    rule: refund,
    when: "status = 'captured' AND $2 BETWEEN 1 AND captured_minor - refunded_minor",
    set: "refunded_minor = refunded_minor + $2",
    moved: "$2",
};

const VOID: Settlement = Settlement {
    operation: "void",
    rule: void,
    when: "status = 'authorized'",
    set: "status = 'voided'",
    moved: "authorized_minor",
};

const PAYMENT_COLUMNS: &str = "SELECT reference, our_reference, card, status, currency, authorized_minor,
    captured_minor, refunded_minor FROM simulator_payments";

/// The simulator's storage failing is, to its caller, the provider failing.
fn unavailable(error: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(format!("the simulator's storage failed: {error}"))
}

fn rejected(message: &str) -> ProviderError {
    ProviderError::Rejected(message.to_owned())
}

fn fingerprint(parts: &serde_json::Value) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.to_string().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Row locks for PostgreSQL; SQLite's `BEGIN IMMEDIATE` already serialises writers.
fn for_update(tx: &Tx) -> &'static str {
    match tx.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

impl Simulator {
    /// A simulator keeping its books in `pool` (migrated with [`simulator_migrations`]).
    pub fn new(pool: Pool) -> Simulator {
        Simulator { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Every money movement, oldest first (at most [`MAX_LISTED`]).
    pub async fn ledger(&self) -> Result<Vec<Entry>, phoenix_db::Error> {
        let rows: Vec<EntryRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT seq, reference, kind, amount_minor, idempotency_key, at FROM simulator_ledger
                 ORDER BY seq LIMIT $1",
            )
            .bind(MAX_LISTED)
            .fetch_all(conn)
            .await
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(Entry {
                    kind: EntryKind::parse(&row.kind)?,
                    seq: row.seq,
                    reference: row.reference,
                    amount_minor: row.amount_minor,
                    idempotency_key: row.idempotency_key,
                    at: row.at.datetime(),
                })
            })
            .collect())
    }

    /// Every payment in the books (at most [`MAX_LISTED`]).
    pub async fn payments(&self) -> Result<Vec<SimulatedPayment>, phoenix_db::Error> {
        let sql = format!("{PAYMENT_COLUMNS} ORDER BY created_at, reference LIMIT $1");
        let rows: Vec<PaymentRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(MAX_LISTED).fetch_all(conn).await
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(SimulatedPayment {
                    payment: row.payment().ok()?,
                    our_reference: row.our_reference,
                    card: row.card,
                })
            })
            .collect())
    }

    /// How many requests with an idempotency key reached the simulator: repeats answered from its records, failed
    /// attempts and requests still hanging included.
    pub async fn requests_received(&self) -> Result<i64, phoenix_db::Error> {
        let n: Option<i64> = dispatch!(&self.pool, conn => {
            sqlx::query_scalar("SELECT CAST(SUM(attempts) AS BIGINT) FROM simulator_requests").fetch_one(conn).await
        })?;
        Ok(n.unwrap_or(0))
    }

    async fn begin(&self) -> Result<Tx, ProviderError> {
        self.pool.begin().await.map_err(unavailable)
    }

    /// Finds (or records) the request under `key` and counts this attempt. A key first used for other parameters
    /// is refused, as Stripe does.
    async fn admit(
        &self,
        tx: &mut Tx,
        key: &str,
        operation: &str,
        fingerprint: &str,
    ) -> Result<Admitted, ProviderError> {
        if key.is_empty() || key.len() > 255 {
            return Err(rejected("an idempotency key of 1 to 255 characters is required"));
        }
        // One statement: record the request, or count another attempt of it (which locks its row until commit).
        // Every request counts, replays included: tests read how often the provider was asked.
        let found: (String, String, i64, Option<String>) = dispatch!(&mut *tx, conn => {
            sqlx::query_as(
                "INSERT INTO simulator_requests (idempotency_key, operation, fingerprint, attempts, created_at)
                 VALUES ($1, $2, $3, 1, $4)
                 ON CONFLICT (idempotency_key) DO UPDATE SET attempts = simulator_requests.attempts + 1
                 RETURNING operation, fingerprint, attempts, answer",
            )
            .bind(key)
            .bind(operation)
            .bind(fingerprint)
            .bind(Timestamp::now())
            .fetch_one(conn)
            .await
        })
        .map_err(unavailable)?;
        let (stored_operation, stored_fingerprint, attempts, answer) = found;
        if stored_operation != operation || stored_fingerprint != fingerprint {
            // Not counted: the transaction rolls back.
            return Err(rejected(
                "keys for idempotent requests can only be used with the same parameters they were first used with",
            ));
        }
        match answer {
            Some(answer) => {
                let answer: Answer = serde_json::from_str(&answer).map_err(unavailable)?;
                Ok(Admitted::Replay(answer.into_result()))
            }
            None => Ok(Admitted::New { attempts }),
        }
    }

    /// Stores a final answer under its key, with what the request `booked` (if anything), and commits.
    async fn finish(
        &self,
        mut tx: Tx,
        key: &str,
        result: Result<ProviderPayment, ProviderError>,
        booked: Option<Booked>,
    ) -> Result<ProviderPayment, ProviderError> {
        let answer = Answer::of(&result)
            .map(|answer| serde_json::to_string(&answer))
            .transpose()
            .map_err(unavailable)?;
        write(&mut tx, key, answer.as_deref(), booked.as_ref())
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        result
    }

    async fn locked_payment(&self, tx: &mut Tx, reference: &str) -> Result<Option<PaymentRow>, ProviderError> {
        let sql = format!("{PAYMENT_COLUMNS} WHERE reference = $1{}", for_update(tx));
        dispatch!(&mut *tx, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(reference).fetch_optional(conn).await
        })
        .map_err(unavailable)
    }

    /// A keyed operation on an existing payment: replay, flakiness, then its rule applied to the locked row.
    async fn settle(
        &self,
        reference: &str,
        key: &str,
        settlement: &Settlement,
        amount_minor: i64,
    ) -> Result<ProviderPayment, ProviderError> {
        let operation = settlement.operation;
        let fingerprint = fingerprint(&serde_json::json!([operation, reference, amount_minor]));
        if let Pool::Postgres(pool) = &self.pool
            && let Some(payment) = settle_at_once(pool, reference, key, settlement, amount_minor, &fingerprint).await?
        {
            return Ok(payment);
        }
        let mut tx = self.begin().await?;
        let attempts = match self.admit(&mut tx, key, operation, &fingerprint).await? {
            Admitted::Replay(answer) => {
                tx.commit().await.map_err(unavailable)?;
                return answer;
            }
            Admitted::New { attempts } => attempts,
        };
        let Some(mut row) = self.locked_payment(&mut tx, reference).await? else {
            return self.finish(tx, key, Err(rejected("no such payment")), None).await;
        };
        if row.card == Card::Flaky.name() && attempts <= FLAKY_FAILURES {
            tx.commit().await.map_err(unavailable)?;
            return Err(ProviderError::Unavailable("simulated outage (tok_flaky)".to_owned()));
        }
        match (settlement.rule)(&mut row, amount_minor) {
            Ok((kind, moved_minor)) => {
                let result = row.payment();
                let booked = Booked {
                    row,
                    new: false,
                    kind,
                    amount_minor: moved_minor,
                    at: Timestamp::now(),
                };
                self.finish(tx, key, result, Some(booked)).await
            }
            Err(error) => self.finish(tx, key, Err(error), None).await,
        }
    }
}

/// Binds what a request `booked` under `key`: the payment's columns first ($1 to $5), the entry's ($6 to $8), then
/// what only a new payment has ($9 to $12). A macro: the query is either engine's.
macro_rules! bind_booked {
    ($query:expr, $booked:expr, $key:expr) => {{
        let (booked, key): (&Booked, &str) = ($booked, $key);
        let row = &booked.row;
        let query = $query
            .bind(&row.reference)
            .bind(&row.status)
            .bind(row.captured_minor)
            .bind(row.refunded_minor)
            .bind(booked.at)
            .bind(booked.kind.as_str())
            .bind(booked.amount_minor)
            .bind(key);
        if booked.new {
            query
                .bind(&row.our_reference)
                .bind(&row.card)
                .bind(&row.currency)
                .bind(row.authorized_minor)
        } else {
            query
        }
    }};
}

/// A request's effect on the books: the payment's row as it is now (`new`: opened by this request) and the
/// movement that made it so.
struct Booked {
    row: PaymentRow,
    new: bool,
    kind: EntryKind,
    amount_minor: i64,
    at: Timestamp,
}

/// Writes what a request `booked` and its final `answer` under `key`. On PostgreSQL that is one statement (a round
/// trip per write was most of the simulator's cost); SQLite takes them one by one.
async fn write(tx: &mut Tx, key: &str, answer: Option<&str>, booked: Option<&Booked>) -> Result<(), sqlx::Error> {
    const NEW_PAYMENT: &str = "INSERT INTO simulator_payments (reference, our_reference, card, status, currency,
            authorized_minor, captured_minor, refunded_minor, created_at, updated_at)
         VALUES ($1, $9, $10, $2, $11, $12, $3, $4, $5, $5)";
    const CHANGED_PAYMENT: &str = "UPDATE simulator_payments
         SET status = $2, captured_minor = $3, refunded_minor = $4, updated_at = $5 WHERE reference = $1";
    const ENTRY: &str = "INSERT INTO simulator_ledger (reference, kind, amount_minor, idempotency_key, at)
         VALUES ($1, $6, $7, $8, $5)";
    const ANSWER: &str = "UPDATE simulator_requests SET answer = $1 WHERE idempotency_key = $2";
    let Some(booked) = booked else {
        if let Some(answer) = answer {
            dispatch!(&mut *tx, conn => {
                sqlx::query(ANSWER).bind(answer).bind(key).execute(conn).await.map(|done| done.rows_affected())
            })?;
        }
        return Ok(());
    };
    let payment = if booked.new { NEW_PAYMENT } else { CHANGED_PAYMENT };
    match tx.backend() {
        Backend::Postgres => {
            // The answer is bound after the parameters the payment's statement takes.
            let answer_at = if booked.new { 13 } else { 9 };
            let sql = format!(
                "WITH payment AS ({payment}), entry AS ({ENTRY})
                 UPDATE simulator_requests SET answer = ${answer_at} WHERE idempotency_key = $8"
            );
            dispatch!(&mut *tx, conn => {
                bind_booked!(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), booked, key)
                    .bind(answer)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected())
            })?;
        }
        Backend::Sqlite => {
            for sql in [payment, ENTRY] {
                dispatch!(&mut *tx, conn => {
                    bind_booked!(sqlx::query(sql), booked, key).execute(conn).await.map(|done| done.rows_affected())
                })?;
            }
            if let Some(answer) = answer {
                dispatch!(&mut *tx, conn => {
                    sqlx::query(ANSWER).bind(answer).bind(key).execute(conn).await.map(|done| done.rows_affected())
                })?;
            }
        }
    }
    Ok(())
}

fn capture(row: &mut PaymentRow, amount_minor: i64) -> Result<(EntryKind, i64), ProviderError> {
    if row.status != "authorized" {
        return Err(rejected(&format!("cannot capture a payment that is {}", row.status)));
    }
    let available = row.authorized_minor - row.captured_minor;
    if amount_minor <= 0 || amount_minor > available {
        return Err(rejected(&format!("the amount to capture must be 1 to {available}")));
    }
    // One capture per authorization: what is not captured now is released.
    row.captured_minor += amount_minor;
    row.status = "captured".to_owned();
    Ok((EntryKind::Capture, amount_minor))
}

fn refund(row: &mut PaymentRow, amount_minor: i64) -> Result<(EntryKind, i64), ProviderError> {
    if row.status != "captured" {
        return Err(rejected(&format!("cannot refund a payment that is {}", row.status)));
    }
    let available = row.captured_minor - row.refunded_minor;
    if amount_minor <= 0 || amount_minor > available {
        return Err(rejected(&format!("the amount to refund must be 1 to {available}")));
    }
    row.refunded_minor += amount_minor;
    Ok((EntryKind::Refund, amount_minor))
}

fn void(row: &mut PaymentRow, _amount_minor: i64) -> Result<(EntryKind, i64), ProviderError> {
    if row.status != "authorized" {
        return Err(rejected(&format!("cannot void a payment that is {}", row.status)));
    }
    row.status = "voided".to_owned();
    Ok((EntryKind::Void, row.authorized_minor))
}

#[async_trait]
impl Provider for Simulator {
    fn name(&self) -> &'static str {
        "simulated"
    }

    async fn authorize(&self, authorization: &Authorization) -> Result<ProviderPayment, ProviderError> {
        let card = Card::of(&authorization.token);
        let fingerprint = fingerprint(&serde_json::json!([
            "authorize",
            authorization.amount_minor,
            authorization.currency,
            authorization.token,
            authorization.reference,
        ]));
        let key = authorization.idempotency_key.as_str();
        if let (Pool::Postgres(pool), Card::Visa | Card::Mastercard) = (&self.pool, card)
            && let Some(answer) = authorize_at_once(pool, authorization, card, &fingerprint).await?
        {
            return answer;
        }
        let mut tx = self.begin().await?;
        let attempts = match self.admit(&mut tx, key, "authorize", &fingerprint).await? {
            Admitted::Replay(answer) => {
                tx.commit().await.map_err(unavailable)?;
                return answer;
            }
            Admitted::New { attempts } => attempts,
        };
        match card {
            Card::Hang => {
                // The request arrived (it is on the books); its answer never will.
                tx.commit().await.map_err(unavailable)?;
                std::future::pending::<()>().await;
                unreachable!("a pending future never completes")
            }
            Card::Flaky if attempts <= FLAKY_FAILURES => {
                tx.commit().await.map_err(unavailable)?;
                Err(ProviderError::Unavailable("simulated outage (tok_flaky)".to_owned()))
            }
            Card::Declined(code) => {
                let result = Err(ProviderError::Declined {
                    code: code.to_owned(),
                    message: format!("the card was declined ({code})"),
                });
                self.finish(tx, key, result, None).await
            }
            Card::Visa | Card::Mastercard | Card::Flaky => match open(authorization, card) {
                Ok(booked) => {
                    let result = booked.row.payment();
                    self.finish(tx, key, result, Some(booked)).await
                }
                Err(error) => self.finish(tx, key, Err(error), None).await,
            },
        }
    }

    async fn capture(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        self.settle(reference, idempotency_key, &CAPTURE, amount_minor).await
    }

    async fn refund(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        self.settle(reference, idempotency_key, &REFUND, amount_minor).await
    }

    async fn void(&self, reference: &str, idempotency_key: &str) -> Result<ProviderPayment, ProviderError> {
        self.settle(reference, idempotency_key, &VOID, 0).await
    }

    async fn fetch(&self, reference: &str) -> Result<ProviderPayment, ProviderError> {
        let sql = format!("{PAYMENT_COLUMNS} WHERE reference = $1");
        let row: Option<PaymentRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(reference).fetch_optional(conn).await
        })
        .map_err(unavailable)?;
        row.ok_or_else(|| rejected("no such payment"))?.payment()
    }

    async fn find(&self, reference: &str) -> Result<Option<ProviderPayment>, ProviderError> {
        let sql = format!("{PAYMENT_COLUMNS} WHERE our_reference = $1 ORDER BY created_at LIMIT 1");
        let row: Option<PaymentRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(reference).fetch_optional(conn).await
        })
        .map_err(unavailable)?;
        row.map(|row| row.payment()).transpose()
    }

    /// The books in the order of the provider's references, [`LIST_PAGE`] a page.
    async fn list(&self, after: Option<&str>) -> Result<ListPage, ProviderError> {
        let sql = format!("{PAYMENT_COLUMNS} WHERE reference > $1 ORDER BY reference LIMIT $2");
        let rows: Vec<PaymentRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(after.unwrap_or(""))
                .bind(LIST_PAGE)
                .fetch_all(conn)
                .await
        })
        .map_err(unavailable)?;
        let next = (rows.len() as i64 == LIST_PAGE)
            .then(|| rows.last().map(|row| row.reference.clone()))
            .flatten();
        let payments = rows
            .into_iter()
            .map(|row| {
                Ok(Listed {
                    payment: row.payment()?,
                    our_reference: row.our_reference,
                })
            })
            .collect::<Result<_, ProviderError>>()?;
        Ok(ListPage { payments, next })
    }
}

/// Payments a page of [`Simulator::list`](Provider::list) holds.
pub const LIST_PAGE: i64 = 100;

/// PostgreSQL, a card that answers at once: the request with its answer, the payment and its ledger entry in one
/// statement, no transaction (four round trips fewer than [`Simulator::authorize`]'s general path). A repeat of
/// the key gets the stored answer and is counted. `None` leaves the request to the general path, uncounted: the
/// key was used with other parameters, or has no answer yet, or the request is refused.
async fn authorize_at_once(
    pool: &sqlx::PgPool,
    authorization: &Authorization,
    card: Card,
    fingerprint: &str,
) -> Result<Option<Result<ProviderPayment, ProviderError>>, ProviderError> {
    let key = authorization.idempotency_key.as_str();
    if key.is_empty() || key.len() > 255 {
        return Ok(None);
    }
    let Ok(booked) = open(authorization, card) else {
        return Ok(None);
    };
    let payment = booked.row.payment()?;
    let answer = serde_json::to_string(&Answer::Payment {
        payment: payment.clone(),
    })
    .map_err(unavailable)?;
    // $1 to $12 as `bind_booked!` binds a new payment, then the fingerprint and the answer.
    let query = sqlx::query_scalar::<_, Option<String>>(
        "WITH request AS (
             INSERT INTO simulator_requests (idempotency_key, operation, fingerprint, attempts, created_at, answer)
             VALUES ($8, 'authorize', $13, 1, $5, $14)
             ON CONFLICT (idempotency_key) DO UPDATE SET attempts = simulator_requests.attempts + 1
                 WHERE simulator_requests.operation = excluded.operation
                   AND simulator_requests.fingerprint = excluded.fingerprint
                   AND simulator_requests.answer IS NOT NULL
             RETURNING answer),
         payment AS (
             INSERT INTO simulator_payments (reference, our_reference, card, status, currency, authorized_minor,
                 captured_minor, refunded_minor, created_at, updated_at)
             SELECT $1, $9, $10, $2, $11, $12, $3, $4, $5, $5 FROM request WHERE answer = $14),
         entry AS (
             INSERT INTO simulator_ledger (reference, kind, amount_minor, idempotency_key, at)
             SELECT $1, $6, $7, $8, $5 FROM request WHERE answer = $14)
         SELECT answer FROM request",
    );
    let stored: Option<Option<String>> = bind_booked!(query, &booked, key)
        .bind(fingerprint)
        .bind(&answer)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    Ok(match stored {
        Some(Some(stored)) if stored == answer => Some(Ok(payment)),
        Some(Some(stored)) => {
            let stored: Answer = serde_json::from_str(&stored).map_err(unavailable)?;
            Some(stored.into_result())
        }
        Some(None) | None => None,
    })
}

/// PostgreSQL, a settlement the rules accept of a card that answers at once: the payment's change, its ledger entry
/// and the request with its answer in one statement, no transaction (four round trips fewer than
/// [`Simulator::settle`]'s general path). `None` leaves the request to the general path, uncounted: the key was
/// used before (a replay, or a reuse to refuse), the card is flaky, the payment unknown or the rules refuse.
/// Racing settlements of one payment queue on its row, and a loser finds the row changed.
async fn settle_at_once(
    pool: &sqlx::PgPool,
    reference: &str,
    key: &str,
    settlement: &Settlement,
    amount_minor: i64,
    fingerprint: &str,
) -> Result<Option<ProviderPayment>, ProviderError> {
    if key.is_empty() || key.len() > 255 {
        return Ok(None);
    }
    let Settlement { when, set, moved, .. } = settlement;
    // The answer is built as `Answer::Payment` serializes.
    let sql = format!(
        "WITH payment AS (
             UPDATE simulator_payments SET {set}, updated_at = $3
             WHERE reference = $1 AND card <> 'flaky' AND {when}
               AND NOT EXISTS (SELECT 1 FROM simulator_requests WHERE idempotency_key = $4)
             RETURNING reference, our_reference, card, status, currency, authorized_minor, captured_minor,
                 refunded_minor, {moved} AS moved_minor),
         request AS (
             INSERT INTO simulator_requests (idempotency_key, operation, fingerprint, attempts, created_at, answer)
             SELECT $4, $5, $6, 1, $3, json_build_object('answer', 'payment', 'payment', json_build_object(
                 'reference', reference, 'status', status, 'currency', currency,
                 'authorized_minor', authorized_minor, 'captured_minor', captured_minor,
                 'refunded_minor', refunded_minor))::text
             FROM payment),
         entry AS (
             INSERT INTO simulator_ledger (reference, kind, amount_minor, idempotency_key, at)
             SELECT reference, $5, moved_minor, $4, $3 FROM payment)
         SELECT reference, our_reference, card, status, currency, authorized_minor, captured_minor, refunded_minor
         FROM payment"
    );
    let row: Result<Option<PaymentRow>, sqlx::Error> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(reference)
        .bind(amount_minor)
        .bind(Timestamp::now())
        .bind(key)
        .bind(settlement.operation)
        .bind(fingerprint)
        .fetch_optional(pool)
        .await;
    match row {
        Ok(row) => row.map(|row| row.payment()).transpose(),
        // The key was just taken by a request the general path will answer as.
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(None),
        Err(error) => Err(unavailable(error)),
    }
}

/// A new authorization, to be booked.
fn open(authorization: &Authorization, card: Card) -> Result<Booked, ProviderError> {
    if authorization.amount_minor <= 0 {
        return Err(rejected("the amount must be positive"));
    }
    let row = PaymentRow {
        reference: format!("sim_{}", Uuid::now_v7().simple()),
        our_reference: authorization.reference.clone(),
        card: card.name().to_owned(),
        status: "authorized".to_owned(),
        currency: authorization.currency.clone(),
        authorized_minor: authorization.amount_minor,
        captured_minor: 0,
        refunded_minor: 0,
    };
    Ok(Booked {
        row,
        new: true,
        kind: EntryKind::Authorization,
        amount_minor: authorization.amount_minor,
        at: Timestamp::now(),
    })
}
