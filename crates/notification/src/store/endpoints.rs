//! Webhook endpoints: organizations' registrations, their secrets sealed ([`phoenix_db::seal`]) and opened only
//! here, and the secret-free view the event handler plans deliveries from.

use phoenix_db::{Sealer, Timestamp, Tx, dispatch};
use sqlx::types::Json;
use uuid::Uuid;

use super::Store;
use crate::Error;

/// Endpoints per organization: bounded, like everything else.
pub const MAX_ENDPOINTS_PER_ORGANIZATION: i64 = 20;

/// A webhook endpoint with its secret in clear (never put this in a log). Stored with the secret sealed
/// ([`phoenix_db::seal`]); only [`Store`]'s reads open it.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub event_types: Json<Vec<String>>,
    pub description: Option<String>,
    pub secret: String,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    pub disabled_reason: Option<String>,
}

impl Endpoint {
    /// Whether the endpoint subscribes to events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.0.iter().any(|t| t == event_type)
    }
}

/// Why an endpoint stopped taking calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabled {
    /// Deleted by its organization (or an admin).
    Deleted,
    /// The receiver answered 410 Gone.
    Gone,
}

impl Disabled {
    /// As events name it.
    fn code(self) -> &'static str {
        match self {
            Disabled::Deleted => "deleted",
            Disabled::Gone => "gone",
        }
    }

    /// As `disabled_reason` holds it.
    fn as_str(self) -> &'static str {
        match self {
            Disabled::Deleted => "deleted",
            Disabled::Gone => "the endpoint answered 410 Gone",
        }
    }
}

/// Why a webhook can no longer go to `endpoint` (`None`: no such endpoint), in words for the delivery log and
/// support; `None` while it takes calls. Support must not read "deleted" when the receiver turned it off.
pub fn why_unavailable(endpoint: Option<&Endpoint>) -> Option<&'static str> {
    let endpoint = match endpoint {
        None => return Some("the endpoint was deleted"),
        Some(endpoint) => endpoint,
    };
    endpoint.disabled_at?;
    if endpoint.disabled_reason.as_deref() == Some(Disabled::Gone.as_str()) {
        Some("the endpoint was disabled after answering 410 Gone")
    } else {
        Some("the endpoint was deleted")
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("organization_id", &self.organization_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types.0)
            .field("secret", &"<redacted>")
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// An endpoint as stored: the secret sealed.
#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: Uuid,
    organization_id: Uuid,
    url: String,
    event_types: Json<Vec<String>>,
    description: Option<String>,
    secret: String,
    created_at: Timestamp,
    disabled_at: Option<Timestamp>,
    disabled_reason: Option<String>,
}

impl EndpointRow {
    fn open(self, sealer: &Sealer) -> Result<Endpoint, Error> {
        Ok(Endpoint {
            secret: sealer.open_text(&secret_context(self.id), &self.secret)?.value,
            id: self.id,
            organization_id: self.organization_id,
            url: self.url,
            event_types: self.event_types,
            description: self.description,
            created_at: self.created_at,
            disabled_at: self.disabled_at,
            disabled_reason: self.disabled_reason,
        })
    }
}

/// What an endpoint's secret is sealed for.
fn secret_context(endpoint_id: Uuid) -> String {
    format!("notification.webhook_endpoints.secret:{endpoint_id}")
}

/// Where an enabled endpoint takes which events: what the event handler needs, without the secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Subscription {
    pub id: Uuid,
    pub url: String,
    pub event_types: Json<Vec<String>>,
}

impl Subscription {
    /// Whether the endpoint subscribes to events of this type.
    pub fn wants(&self, event_type: &str) -> bool {
        self.event_types.0.iter().any(|t| t == event_type)
    }
}

const ENDPOINT_COLUMNS: &str = "SELECT id, organization_id, url, event_types, description, secret, created_at,
    disabled_at, disabled_reason FROM webhook_endpoints";

impl Store {
    /// The organization's enabled endpoints (at most [`MAX_ENDPOINTS_PER_ORGANIZATION`]), whatever they subscribe
    /// to: [`Subscription::wants`] says which event types.
    pub async fn subscriptions_of(tx: &mut Tx, organization_id: Uuid) -> Result<Vec<Subscription>, Error> {
        Ok(dispatch!(tx, conn => {
            sqlx::query_as(
                "SELECT id, url, event_types FROM webhook_endpoints
                 WHERE organization_id = $1 AND disabled_at IS NULL ORDER BY id LIMIT $2",
            )
            .bind(organization_id)
            .bind(MAX_ENDPOINTS_PER_ORGANIZATION)
            .fetch_all(conn)
            .await
        })?)
    }

    /// Adds an endpoint unless the organization has [`MAX_ENDPOINTS_PER_ORGANIZATION`] already (false then), with
    /// its `notification.webhook_endpoint_created.v1` event. The count and the insert are one statement, and on
    /// PostgreSQL the organization is locked for the transaction first, so endpoints registered at the same moment
    /// cannot pass the cap together (SQLite runs one writer at a time).
    pub async fn create_endpoint(&self, endpoint: &Endpoint, created_by: Uuid) -> Result<bool, Error> {
        let event = crate::events::endpoint_created(endpoint, created_by)?;
        let mut tx = self.pool.begin().await?;
        if let phoenix_db::Backend::Postgres = self.pool.backend() {
            dispatch!(&mut tx, conn => {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text, 0))")
                    .bind(endpoint.organization_id)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })?;
        }
        let inserted = dispatch!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, organization_id, url, event_types, description, secret,
                     created_by, created_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8
                 WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE organization_id = $2 AND disabled_at IS NULL)
                     < $9",
            )
            .bind(endpoint.id)
            .bind(endpoint.organization_id)
            .bind(&endpoint.url)
            .bind(&endpoint.event_types)
            .bind(&endpoint.description)
            .bind(self.sealer.seal_text(&secret_context(endpoint.id), &endpoint.secret))
            .bind(created_by)
            .bind(endpoint.created_at)
            .bind(MAX_ENDPOINTS_PER_ORGANIZATION)
            .execute(conn)
            .await
            .map(|done| done.rows_affected() == 1)
        })?;
        if !inserted {
            return Ok(false);
        }
        tx.append_event(&event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The live endpoints of one organization, or of all (`None`), oldest first.
    pub async fn endpoints(&self, organization_id: Option<Uuid>) -> Result<Vec<Endpoint>, Error> {
        let sql = format!(
            "{ENDPOINT_COLUMNS} WHERE disabled_at IS NULL AND ($1 IS NULL OR organization_id = $1)
             ORDER BY created_at, id LIMIT 1000"
        );
        let rows: Vec<EndpointRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(organization_id).fetch_all(conn).await
        })?;
        rows.into_iter().map(|row| row.open(&self.sealer)).collect()
    }

    pub async fn endpoint(&self, id: Uuid) -> Result<Option<Endpoint>, Error> {
        let sql = format!("{ENDPOINT_COLUMNS} WHERE id = $1");
        let row: Option<EndpointRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
        })?;
        row.map(|row| row.open(&self.sealer)).transpose()
    }

    /// Seals under the current key every endpoint secret that is not (kept in clear before sealing existed, or
    /// sealed with a previous key), disabled endpoints' too; returns how many. Fails, naming the key, if a secret
    /// was sealed with a key this process does not have. A row is rewritten only if unchanged since it was read.
    pub async fn seal_stored_secrets(&self) -> Result<u64, Error> {
        const SECRETS: phoenix_db::SealedColumn = phoenix_db::SealedColumn {
            table: "webhook_endpoints",
            column: "secret",
        };
        phoenix_db::reseal_column(&self.pool, &self.sealer, SECRETS, secret_context)
            .await
            .map_err(|e| match e {
                phoenix_db::ResealError::Db(e) => Error::Db(e),
                phoenix_db::ResealError::Sealed(e) => Error::Sealed(e),
            })
    }

    /// Disables an endpoint (deleted by its organization, or gone at the receiver) with its
    /// `notification.webhook_endpoint_disabled.v1` event naming `actor_id` (none when the receiver turned it off);
    /// false, and no event, when it already was.
    pub async fn disable_endpoint(
        &self,
        endpoint: &Endpoint,
        why: Disabled,
        actor_id: Option<Uuid>,
    ) -> Result<bool, Error> {
        let event = crate::events::endpoint_disabled(endpoint, why.code(), actor_id)?;
        let mut tx = self.pool.begin().await?;
        let n = dispatch!(&mut tx, conn => {
            sqlx::query(
                "UPDATE webhook_endpoints SET disabled_at = $2, disabled_reason = $3
                 WHERE id = $1 AND disabled_at IS NULL",
            )
            .bind(endpoint.id)
            .bind(Timestamp::now())
            .bind(why.as_str())
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        if n != 1 {
            return Ok(false);
        }
        tx.append_event(&event).await?;
        tx.commit().await?;
        Ok(true)
    }
}
