//! Identity's SQL. One query per operation, the same text on SQLite and PostgreSQL, except the row lock PostgreSQL
//! takes (`FOR UPDATE`) where SQLite's write transaction already holds the whole database.
//!
//! The secrets identity must read back (signing keys' private halves, TOTP secrets) are sealed here on the way in
//! and opened on the way out ([`phoenix_db::seal`]); the rest of the crate sees them in clear. A password-reset
//! token is sealed here too, for the event that mails it; identity keeps only its digest. Sessions (refresh tokens)
//! are in `store/sessions.rs`, password resets in `store/resets.rs`.

use phoenix_api::Role;
use phoenix_db::{Backend, Event, Pool, Sealer, Timestamp, Tx, dispatch};
use uuid::Uuid;

use crate::Error;
use crate::org::{Organization, OrganizationKind};
use crate::user::User;

mod resets;
mod sessions;

pub use sessions::{NewRefreshToken, RefreshRow, Rotation};
use sessions::{lock_user, revoke_sessions_except};

/// `text` as a LIKE pattern that matches only itself, under `ESCAPE '\'`: its wildcards and escape character
/// escaped.
fn like_literal(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// The row lock PostgreSQL needs for a read-then-write; SQLite's `BEGIN IMMEDIATE` holds the database already.
fn for_update(tx: &Tx) -> &'static str {
    match tx.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

#[derive(Clone)]
pub struct Store {
    pool: Pool,
    sealer: Sealer,
}

#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    password_hash: String,
    roles: String,
    organization_id: Option<Uuid>,
    totp_secret: Option<String>,
    totp_enabled: bool,
    totp_last_step: Option<i64>,
    created_at: Timestamp,
}

impl UserRow {
    fn into_user(self, sealer: &Sealer) -> Result<User, Error> {
        let row = self;
        let totp_secret = match &row.totp_secret {
            Some(stored) => Some(sealer.open_text(&totp_context(row.id), stored)?.value),
            None => None,
        };
        Ok(User {
            id: row.id,
            email: row.email,
            name: row.name,
            password_hash: row.password_hash,
            roles: decode_roles(&row.roles)?,
            organization_id: row.organization_id,
            totp_secret,
            totp_enabled: row.totp_enabled,
            totp_last_step: row.totp_last_step,
            created_at: row.created_at,
        })
    }
}

/// What a user's TOTP secret is sealed for.
/// Where TOTP secrets are kept, sealed.
const TOTP_SECRETS: phoenix_db::SealedColumn = phoenix_db::SealedColumn {
    table: "users",
    column: "totp_secret",
};

fn totp_context(user_id: Uuid) -> String {
    format!("identity.users.totp_secret:{user_id}")
}

/// What a signing key's private half is sealed for.
fn signing_key_context(kid: &str) -> String {
    format!("identity.signing_keys.private_pkcs8:{kid}")
}

const USER_COLUMNS: &str = "id, email, name, password_hash, roles, organization_id, totp_secret, totp_enabled, \
                            totp_last_step, created_at";

fn encode_roles(roles: &[Role]) -> String {
    roles.iter().map(|role| role.as_str()).collect::<Vec<_>>().join(",")
}

fn decode_roles(stored: &str) -> Result<Vec<Role>, Error> {
    stored
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| Error::Corrupt { what: "users.roles" }))
        .collect()
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub private_pkcs8: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

#[derive(Debug, sqlx::FromRow)]
struct OrganizationRow {
    id: Uuid,
    name: String,
    kind: String,
    created_at: Timestamp,
}

impl TryFrom<OrganizationRow> for Organization {
    type Error = Error;

    fn try_from(row: OrganizationRow) -> Result<Organization, Error> {
        Ok(Organization {
            id: row.id,
            name: row.name,
            kind: row.kind.parse::<OrganizationKind>().map_err(|_| Error::Corrupt {
                what: "organizations.kind",
            })?,
            created_at: row.created_at,
        })
    }
}

impl Store {
    pub fn new(pool: Pool, sealer: Sealer) -> Store {
        Store { pool, sealer }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx, Error> {
        Ok(self.pool.begin().await?)
    }

    // Users

    /// Inserts a user and its event; a taken email is [`Error::EmailTaken`], even when two registrations race.
    pub async fn insert_user(&self, user: &User, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        let roles = encode_roles(&user.roles);
        let inserted: Result<u64, sqlx::Error> = dispatch!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, roles, organization_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (email) DO NOTHING",
            )
            .bind(user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(&roles)
            .bind(user.organization_id)
            .bind(user.created_at)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        });
        if inserted? == 0 {
            return Err(Error::EmailTaken);
        }
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        let row: Option<UserRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(email).fetch_optional(conn).await
        })?;
        row.map(|row| row.into_user(&self.sealer)).transpose()
    }

    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row: Option<UserRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(conn).await
        })?;
        row.map(|row| row.into_user(&self.sealer)).transpose()
    }

    /// Users in id (creation) order after `after`, optionally only those whose email contains `email` as typed:
    /// `%` and `_` are plain characters, and case does not matter (stored emails are lowercase; PostgreSQL's LIKE
    /// minds case, SQLite's does not).
    pub async fn list_users(&self, email: Option<&str>, after: Option<Uuid>, limit: u32) -> Result<Vec<User>, Error> {
        let pattern = email.map(|e| format!("%{}%", like_literal(&e.to_lowercase())));
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE ($1 IS NULL OR email LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR id > $2)
             ORDER BY id LIMIT $3"
        );
        let rows: Vec<UserRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(pattern.as_deref())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(conn)
                .await
        })?;
        rows.into_iter().map(|row| row.into_user(&self.sealer)).collect()
    }

    /// Replaces a user's roles and organization and ends every session of theirs but the one the access token
    /// `keep` was issued in, with the event, in one transaction. False, with nothing written, for no such user.
    pub async fn set_roles(
        &self,
        user_id: Uuid,
        roles: &[Role],
        organization_id: Option<Uuid>,
        event: &Event,
        keep: Option<Uuid>,
    ) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        if lock_user(&mut tx, user_id).await?.is_none() {
            return Ok(false);
        }
        let updated: u64 = dispatch!(&mut tx, conn => {
            sqlx::query("UPDATE users SET roles = $1, organization_id = $2, updated_at = $3 WHERE id = $4")
                .bind(encode_roles(roles))
                .bind(organization_id)
                .bind(Timestamp::now())
                .bind(user_id)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        if updated == 0 {
            return Ok(false);
        }
        revoke_sessions_except(&mut tx, user_id, keep).await?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(true)
    }

    // Multi-factor authentication

    /// Stores a new, not yet enabled, TOTP secret. Refused (false) while TOTP is enabled.
    pub async fn set_pending_totp(&self, user_id: Uuid, secret: &str) -> Result<bool, Error> {
        let updated: u64 = dispatch!(&self.pool, conn => {
            sqlx::query(
                "UPDATE users SET totp_secret = $1, totp_last_step = NULL, updated_at = $2
                 WHERE id = $3 AND totp_enabled = $4",
            )
            .bind(self.sealer.seal_text(&totp_context(user_id), secret))
            .bind(Timestamp::now())
            .bind(user_id)
            .bind(false)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Records that the TOTP code of `step` was used; false if that step (or a later one) already was, so a code
    /// is accepted once (RFC 6238 section 5.2).
    pub async fn claim_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool, Error> {
        let updated: u64 = dispatch!(&self.pool, conn => {
            sqlx::query(
                "UPDATE users SET totp_last_step = $1
                 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
            )
            .bind(step)
            .bind(user_id)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated == 1)
    }

    /// Turns TOTP on with new recovery codes and ends every session of the user but the one the access token
    /// `keep` was issued in, with the event, in one transaction. False, with nothing written, when TOTP is on already.
    pub async fn enable_totp(
        &self,
        user_id: Uuid,
        recovery_hashes: &[Vec<u8>],
        keep: Uuid,
        event: &Event,
    ) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        match lock_user(&mut tx, user_id).await? {
            Some(now) if !now.totp_enabled => {}
            _ => return Ok(false),
        }
        dispatch!(&mut tx, conn => {
            sqlx::query("UPDATE users SET totp_enabled = $1, updated_at = $2 WHERE id = $3")
                .bind(true)
                .bind(Timestamp::now())
                .bind(user_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?;
            for hash in recovery_hashes {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(user_id)
                    .bind(hash)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok::<(), sqlx::Error>(())
        })?;
        revoke_sessions_except(&mut tx, user_id, Some(keep)).await?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn disable_totp(&self, user_id: Uuid, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, conn => {
            sqlx::query(
                "UPDATE users SET totp_enabled = $1, totp_secret = NULL, totp_last_step = NULL, updated_at = $2
                 WHERE id = $3",
            )
            .bind(false)
            .bind(Timestamp::now())
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?;
            Ok::<(), sqlx::Error>(())
        })?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends a recovery code; false if it does not exist or was already used.
    pub async fn use_recovery_code(&self, user_id: Uuid, code_hash: &[u8]) -> Result<bool, Error> {
        let updated: u64 = dispatch!(&self.pool, conn => {
            sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
            )
            .bind(Timestamp::now())
            .bind(user_id)
            .bind(code_hash)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(updated == 1)
    }

    // API keys

    /// Adds a key with its event unless its owner has `max_live` live (unrevoked, unexpired) keys already: false
    /// then, with nothing written. The owner's row is locked first, so racing creations cannot pass the cap.
    pub async fn insert_api_key(&self, key: &ApiKeyRow, max_live: u32, event: &Event) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        let lock = format!("SELECT id FROM users WHERE id = $1{}", for_update(&tx));
        dispatch!(&mut tx, conn => {
            sqlx::query(sqlx::AssertSqlSafe(lock)).bind(key.user_id).fetch_optional(conn).await.map(|_| ())
        })?;
        let live: i64 = dispatch!(&mut tx, conn => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_keys
                 WHERE user_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(key.user_id)
            .bind(key.created_at)
            .fetch_one(conn)
            .await
        })?;
        if live >= i64::from(max_live) {
            return Ok(false);
        }
        dispatch!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(key.id)
            .bind(key.user_id)
            .bind(&key.name)
            .bind(&key.prefix)
            .bind(&key.secret_hash)
            .bind(key.created_at)
            .bind(key.expires_at)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn api_key(&self, id: Uuid) -> Result<Option<ApiKeyRow>, Error> {
        let row = dispatch!(&self.pool, conn => {
            sqlx::query_as::<_, ApiKeyRow>(
                "SELECT id, user_id, name, prefix, secret_hash, created_at, expires_at, revoked_at
                 FROM api_keys WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(conn)
            .await
        })?;
        Ok(row)
    }

    /// A user's live keys (the first `limit`) and, of the others (revoked or expired), the `limit` made last.
    pub async fn api_keys_of(&self, user_id: Uuid, now: Timestamp, limit: u32) -> Result<Vec<ApiKeyRow>, Error> {
        const LIVE: &str = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)";
        let live = self.api_keys_where(user_id, now, limit, LIVE, "created_at, id").await?;
        let dead = self
            .api_keys_where(
                user_id,
                now,
                limit,
                &format!("NOT ({LIVE})"),
                "created_at DESC, id DESC",
            )
            .await?;
        Ok([live, dead].concat())
    }

    /// The first `limit` of a user's keys that meet `condition` (on `$2`, now) in `order`.
    async fn api_keys_where(
        &self,
        user_id: Uuid,
        now: Timestamp,
        limit: u32,
        condition: &str,
        order: &str,
    ) -> Result<Vec<ApiKeyRow>, Error> {
        let sql = format!(
            "SELECT id, user_id, name, prefix, secret_hash, created_at, expires_at, revoked_at
             FROM api_keys WHERE user_id = $1 AND {condition} ORDER BY {order} LIMIT $3"
        );
        let rows = dispatch!(&self.pool, conn => {
            sqlx::query_as::<_, ApiKeyRow>(sqlx::AssertSqlSafe(sql))
                .bind(user_id)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(conn)
                .await
        })?;
        Ok(rows)
    }

    /// Revokes a live key with its event. False, with no event, when it was revoked already.
    pub async fn revoke_api_key(&self, id: Uuid, event: &Event) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        let revoked = dispatch!(&mut tx, conn => {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(Timestamp::now())
                .bind(id)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        if revoked == 0 {
            return Ok(false);
        }
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(true)
    }

    // Organizations

    pub async fn insert_organization(&self, org: &Organization, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        let inserted: u64 = dispatch!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO organizations (id, name, kind, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(org.id)
            .bind(&org.name)
            .bind(org.kind.as_str())
            .bind(org.created_at)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        if inserted == 0 {
            return Err(Error::OrganizationNameTaken);
        }
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn organization(&self, id: Uuid) -> Result<Option<Organization>, Error> {
        let row: Option<OrganizationRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as("SELECT id, name, kind, created_at FROM organizations WHERE id = $1")
                .bind(id)
                .fetch_optional(conn)
                .await
        })?;
        row.map(Organization::try_from).transpose()
    }

    pub async fn list_organizations(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Organization>, Error> {
        let rows: Vec<OrganizationRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT id, name, kind, created_at FROM organizations WHERE ($1 IS NULL OR id > $1)
                 ORDER BY id LIMIT $2",
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await
        })?;
        rows.into_iter().map(Organization::try_from).collect()
    }

    // Signing keys

    pub async fn active_signing_key(&self) -> Result<Option<SigningKeyRow>, Error> {
        let row = dispatch!(&self.pool, conn => {
            sqlx::query_as::<_, SigningKeyRow>(
                "SELECT kid, private_pkcs8, public_key, created_at, retired_at FROM signing_keys
                 WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1",
            )
            .fetch_optional(conn)
            .await
        })?;
        row.map(|row| self.open_signing_key(row)).transpose()
    }

    /// Adds `key` as the signing key, retiring the one before it, in one transaction.
    pub async fn insert_signing_key(&self, key: &SigningKeyRow) -> Result<(), Error> {
        let sealed = self.sealer.seal(&signing_key_context(&key.kid), &key.private_pkcs8);
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, conn => {
            sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
                .bind(key.created_at)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO signing_keys (kid, private_pkcs8, public_key, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&key.kid)
            .bind(&sealed)
            .bind(&key.public_key)
            .bind(key.created_at)
            .execute(&mut *conn)
            .await?;
            Ok::<(), sqlx::Error>(())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// The signing key and keys retired after `horizon`, newest first.
    pub async fn published_signing_keys(&self, horizon: Timestamp) -> Result<Vec<SigningKeyRow>, Error> {
        let rows = dispatch!(&self.pool, conn => {
            sqlx::query_as::<_, SigningKeyRow>(
                "SELECT kid, private_pkcs8, public_key, created_at, retired_at FROM signing_keys
                 WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC",
            )
            .bind(horizon)
            .fetch_all(conn)
            .await
        })?;
        rows.into_iter().map(|row| self.open_signing_key(row)).collect()
    }

    fn open_signing_key(&self, mut row: SigningKeyRow) -> Result<SigningKeyRow, Error> {
        row.private_pkcs8 = self
            .sealer
            .open(&signing_key_context(&row.kid), &row.private_pkcs8)?
            .value;
        Ok(row)
    }

    // Sealing

    /// Seals under the current key every stored secret that is not: kept in clear before sealing existed, or
    /// sealed with a previous key. Returns how many it sealed. Fails, naming the key, if a secret was sealed with a
    /// key this process does not have, so a replica started with the wrong key stops at once instead of failing
    /// sign-ins. Each row is rewritten only if unchanged since it was read, so a concurrent change wins.
    pub async fn seal_stored_secrets(&self) -> Result<u64, Error> {
        let mut sealed = 0;
        let keys: Vec<(String, Vec<u8>)> = dispatch!(&self.pool, conn => {
            sqlx::query_as("SELECT kid, private_pkcs8 FROM signing_keys").fetch_all(conn).await
        })?;
        for (kid, stored) in keys {
            let Some(resealed) = self.sealer.reseal(&signing_key_context(&kid), &stored)? else {
                continue;
            };
            sealed += dispatch!(&self.pool, conn => {
                sqlx::query("UPDATE signing_keys SET private_pkcs8 = $1 WHERE kid = $2 AND private_pkcs8 = $3")
                    .bind(&resealed)
                    .bind(&kid)
                    .bind(&stored)
                    .execute(conn)
                    .await
                    .map(|done| done.rows_affected())
            })?;
        }
        sealed += phoenix_db::reseal_column(&self.pool, &self.sealer, TOTP_SECRETS, totp_context)
            .await
            .map_err(|e| match e {
                phoenix_db::ResealError::Db(e) => Error::Db(e),
                phoenix_db::ResealError::Sealed(e) => Error::Sealed(e),
            })?;
        Ok(sealed)
    }
}
