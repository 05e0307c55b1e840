//! Password resets: a user's single-use reset token (its digest; the token itself only sealed, for the event that
//! mails it), and spending it to set a new password.

use phoenix_db::{Event, Timestamp, dispatch};
use uuid::Uuid;

use super::Store;
use super::sessions::{lock_user, revoke_sessions_except};
use crate::Error;

impl Store {
    /// `token` sealed for the event that mails it to `user_id` (see [`crate::password_reset`]): identity keeps only
    /// its digest, and the event carries it sealed.
    pub fn seal_reset_token(&self, user_id: Uuid, token: &str) -> String {
        self.sealer
            .seal_text(&crate::password_reset::reset_token_context(user_id), token)
    }

    /// Stores `user_id`'s new reset token (its digest) with the event that mails it, in one transaction. It replaces
    /// the user's token before, used or not (one row per user), so an earlier link stops working.
    pub async fn replace_password_reset(
        &self,
        user_id: Uuid,
        token_hash: &[u8],
        expires_at: Timestamp,
        event: &Event,
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        dispatch!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO password_resets (user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id) DO UPDATE SET token_hash = excluded.token_hash,
                     created_at = excluded.created_at, expires_at = excluded.expires_at, used_at = NULL",
            )
            .bind(user_id)
            .bind(token_hash)
            .bind(Timestamp::now())
            .bind(expires_at)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user whose current reset token has the digest `token_hash`, if that token is unused and unexpired at
    /// `now`.
    pub async fn password_reset_user(&self, token_hash: &[u8], now: Timestamp) -> Result<Option<Uuid>, Error> {
        let user_id = dispatch!(&self.pool, conn => {
            sqlx::query_scalar(
                "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
            )
            .bind(token_hash)
            .bind(now)
            .fetch_optional(conn)
            .await
        })?;
        Ok(user_id)
    }

    /// Spends `user_id`'s reset token and sets the password, all in one transaction: the token marked used, the new
    /// hash, every session of the user ended, and the event. False, with nothing written, when by the time the
    /// user's lock was ours the token was no longer unused, unexpired at `now` and the user's current one (a racing
    /// confirmation won, or a newer request replaced it): of racing confirmations of one token, exactly one wins.
    pub async fn reset_password(
        &self,
        user_id: Uuid,
        token_hash: &[u8],
        new_hash: &str,
        now: Timestamp,
        event: &Event,
    ) -> Result<bool, Error> {
        let mut tx = self.begin().await?;
        if lock_user(&mut tx, user_id).await?.is_none() {
            return Ok(false);
        }
        let claimed: u64 = dispatch!(&mut tx, conn => {
            sqlx::query(
                "UPDATE password_resets SET used_at = $1
                 WHERE user_id = $2 AND token_hash = $3 AND used_at IS NULL AND expires_at > $1",
            )
            .bind(now)
            .bind(user_id)
            .bind(token_hash)
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        if claimed == 0 {
            return Ok(false);
        }
        dispatch!(&mut tx, conn => {
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(new_hash)
                .bind(now)
                .bind(user_id)
                .execute(conn)
                .await
                .map(|done| done.rows_affected())
        })?;
        revoke_sessions_except(&mut tx, user_id, None).await?;
        tx.append_event(event).await?;
        tx.commit().await?;
        Ok(true)
    }
}
