//! Sessions: refresh tokens (a session is a family of them), their rotation and revocation, the revocations the
//! gateway reads, their pruning, and the password change that ends a user's other sessions.
//!
//! Every transaction that writes a user's refresh tokens locks the user's row first ([`lock_user`]), so sign-in,
//! rotation and revocation of one user's sessions run one at a time on PostgreSQL as they do on SQLite. Without it,
//! a revocation's UPDATE (its snapshot taken while a rotation was in flight) would miss the token the rotation then
//! commits, leaving a live session behind a "sign out everywhere".

use phoenix_db::{Event, Timestamp, Tx, dispatch};
use uuid::Uuid;

use super::{Store, for_update};
use crate::Error;
use crate::user::User;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: Timestamp,
    pub used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// A revoked refresh token: the access token issued with it (same id) belongs to an ended session.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevokedRow {
    pub id: Uuid,
    pub issued_at: Timestamp,
    pub revoked_at: Timestamp,
}

/// A refresh token to store. Its `id` is the `jti` of the access token issued with it, which is how a request's
/// access token names the session (family) it belongs to.
pub struct NewRefreshToken<'a> {
    pub id: Uuid,
    pub family_id: Uuid,
    pub token_hash: &'a [u8],
    pub expires_at: Timestamp,
}

/// How a refresh token's rotation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// Used already: presented twice, so copied.
    Reused,
    /// Its session was ended (signed out, revoked by a password change) before it could be used.
    Revoked,
}

impl Store {
    /// Opens a session (a new refresh-token family) for `user` as the sign-in read it. False, with nothing written,
    /// when the account's password changed or two-factor authentication was turned on since: a sign-in that checked
    /// the old credentials must not outlive their change. False too when its roles or organization changed since:
    /// the access token was issued with the ones read, and the change ended every session it could see, so a
    /// session opened after it with the old roles would keep them for the token's life (a demoted admin signing in
    /// over and over would hold one).
    pub async fn open_session(&self, user: &User, token: &NewRefreshToken<'_>) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        let Some(now) = lock_user(&mut tx, user.id).await? else {
            return Ok(false);
        };
        if now.password_hash != user.password_hash || (now.totp_enabled && !user.totp_enabled) {
            return Ok(false);
        }
        if now.roles != super::encode_roles(&user.roles) || now.organization_id != user.organization_id {
            return Ok(false);
        }
        insert_refresh(&mut tx, token, user.id).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn refresh_token_by_hash(&self, token_hash: &[u8]) -> Result<Option<RefreshRow>, Error> {
        let row = dispatch!(&self.pool, conn => {
            sqlx::query_as::<_, RefreshRow>(
                "SELECT id, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens
                 WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(conn)
            .await
        })?;
        Ok(row)
    }

    /// Marks `old` used and issues its successor in the same family, atomically, unless `old` was used or revoked
    /// by the time its user's lock was ours (a concurrent refresh won, or the session was ended).
    pub async fn rotate_refresh_token(&self, old: &RefreshRow, new: &NewRefreshToken<'_>) -> Result<Rotation, Error> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, old.user_id).await?;
        let now = Timestamp::now();
        let claimed: u64 = dispatch!(&mut tx, conn => {
            sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(old.id)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        if claimed == 0 {
            let revoked: Option<Option<Timestamp>> = dispatch!(&mut tx, conn => {
                sqlx::query_scalar("SELECT revoked_at FROM refresh_tokens WHERE id = $1")
                    .bind(old.id)
                    .fetch_optional(conn)
                    .await
            })?;
            return Ok(match revoked {
                Some(Some(_)) => Rotation::Revoked,
                _ => Rotation::Reused,
            });
        }
        insert_refresh(&mut tx, new, old.user_id).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated)
    }

    /// Revokes every token of a family (logout, or a stolen token detected by its reuse), with its event if any.
    pub async fn revoke_refresh_family(
        &self,
        user_id: Uuid,
        family_id: Uuid,
        event: Option<&Event>,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        dispatch!(&mut tx, conn => {
            sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                .bind(Timestamp::now())
                .bind(family_id)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        if let Some(event) = event {
            tx.append_event(event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the session `token_id` names (the refresh token stored under that id, and so its family) is one of
    /// `user_id`'s and not revoked. A family is revoked as a whole, so any of its tokens tells.
    pub async fn session_open(&self, user_id: Uuid, token_id: Uuid) -> Result<bool, Error> {
        let revoked: Option<Option<Timestamp>> = dispatch!(&self.pool, conn => {
            sqlx::query_scalar("SELECT revoked_at FROM refresh_tokens WHERE id = $1 AND user_id = $2")
                .bind(token_id)
                .bind(user_id)
                .fetch_optional(conn)
                .await
        })?;
        Ok(matches!(revoked, Some(None)))
    }

    /// Refresh tokens revoked after `after` (revocation time, then id), issued at or after `issued_since`, in that
    /// order, at most `limit`: each names an access token (its `jti`) whose session has ended. Those issued before
    /// `issued_since` are left out, as their access tokens have expired.
    pub async fn revoked_tokens(
        &self,
        after: (Timestamp, Uuid),
        issued_since: Timestamp,
        limit: u32,
    ) -> Result<Vec<RevokedRow>, Error> {
        let rows = dispatch!(&self.pool, conn => {
            sqlx::query_as::<_, RevokedRow>(
                "SELECT id, issued_at, revoked_at FROM refresh_tokens
                 WHERE revoked_at IS NOT NULL AND (revoked_at > $1 OR (revoked_at = $1 AND id > $2))
                   AND issued_at >= $3
                 ORDER BY revoked_at, id
                 LIMIT $4",
            )
            .bind(after.0)
            .bind(after.1)
            .bind(issued_since)
            .bind(i64::from(limit))
            .fetch_all(conn)
            .await
        })?;
        Ok(rows)
    }

    /// Deletes at most `limit` refresh tokens that expired before `before`: such a token no longer refreshes nor
    /// detects reuse (an expired token is refused before either), and its access token expired long before.
    pub async fn prune_refresh_tokens(&self, before: Timestamp, limit: u32) -> Result<u64, Error> {
        let deleted = dispatch!(&self.pool, conn => {
            sqlx::query(
                "DELETE FROM refresh_tokens
                 WHERE id IN (SELECT id FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
            )
            .bind(before)
            .bind(i64::from(limit))
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(deleted)
    }

    /// Revokes every session of a user (signing out everywhere), with its event.
    pub async fn revoke_sessions(&self, user_id: Uuid, event: &Event) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        revoke_sessions_except(&mut tx, user_id, None).await?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the password hash, if it is still `old_hash`, and ends every session of the user but the one the
    /// access token `keep` was issued in, with the event, all in one transaction. False, with nothing written, when
    /// the password was changed by someone else since `old_hash` was read.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        old_hash: &str,
        new_hash: &str,
        keep: Uuid,
        event: &Event,
    ) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        match lock_user(&mut tx, user_id).await? {
            Some(now) if now.password_hash == old_hash => {}
            _ => return Ok(false),
        }
        dispatch!(&mut tx, conn => {
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(new_hash)
                .bind(Timestamp::now())
                .bind(user_id)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        revoke_sessions_except(&mut tx, user_id, Some(keep)).await?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// What a locked user's row says about their credentials now.
pub(super) struct Credentials {
    pub(super) password_hash: String,
    pub(super) totp_enabled: bool,
    /// As stored (`encode_roles`).
    pub(super) roles: String,
    pub(super) organization_id: Option<Uuid>,
}

/// Locks a user's row for the rest of the transaction (PostgreSQL; SQLite's `BEGIN IMMEDIATE` holds the whole
/// database already) and reads their credentials; `None` when there is no such user.
pub(super) async fn lock_user(tx: &mut Tx, user_id: Uuid) -> Result<Option<Credentials>, Error> {
    let sql = format!(
        "SELECT password_hash, totp_enabled, roles, organization_id FROM users WHERE id = $1{}",
        for_update(tx)
    );
    let row: Option<(String, bool, String, Option<Uuid>)> = dispatch!(tx, conn => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(user_id).fetch_optional(conn).await
    })?;
    Ok(
        row.map(|(password_hash, totp_enabled, roles, organization_id)| Credentials {
            password_hash,
            totp_enabled,
            roles,
            organization_id,
        }),
    )
}

/// Revokes every refresh token of `user_id` except those of the family the access token `keep` was issued in (a
/// refresh token's id is the `jti` of the access token issued with it). An access token that names no family of
/// the user (one issued before ids were shared) keeps nothing. The caller holds the user's lock.
pub(super) async fn revoke_sessions_except(tx: &mut Tx, user_id: Uuid, keep: Option<Uuid>) -> Result<(), Error> {
    dispatch!(tx, conn => {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1
             WHERE user_id = $2 AND revoked_at IS NULL
               AND family_id NOT IN (SELECT family_id FROM refresh_tokens WHERE id = $3 AND user_id = $2)",
        )
        .bind(Timestamp::now())
        .bind(user_id)
        .bind(keep)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(())
}

async fn insert_refresh(tx: &mut Tx, token: &NewRefreshToken<'_>, user_id: Uuid) -> Result<(), Error> {
    dispatch!(tx, conn => {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, issued_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token.id)
        .bind(token.family_id)
        .bind(user_id)
        .bind(token.token_hash)
        .bind(Timestamp::now())
        .bind(token.expires_at)
        .execute(conn)
        .await
        .map(|done| done.rows_affected())
    })?;
    Ok(())
}
