//! Signing in: password (and second factor) for a session, refresh-token rotation with reuse detection, signing out
//! of one session or of all of them.
//!
//! A session is a refresh-token family: one sign-in and every refresh token rotated from it. Each refresh token is
//! stored under the id (`jti`) of the access token issued with it, so a request's access token names its session
//! without a claim of its own; that is how a password change or enabling TOTP keeps the caller's session and ends
//! the others.

use std::net::IpAddr;

use phoenix_api::{Credential, Principal};
use phoenix_db::{Event, Timestamp};
use phoenix_ratelimit::Decision;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::email::Email;
use crate::password::Password;
use crate::secret::{random_token, sha256};
use crate::store::{NewRefreshToken, RefreshRow, Rotation};
use crate::user::User;
use crate::{Error, SOURCE, Service};

/// What a successful sign-in or refresh returns.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    /// The access token's id (`jti`), which the gateway hands on as `Credential::AccessToken { token_id }`. It is
    /// also the id of the refresh token issued with it, so it names the session (refresh-token family).
    pub token_id: Uuid,
    pub refresh_token: String,
    pub expires_in_secs: u64,
    pub user_id: Uuid,
}

/// A sign-in attempt.
pub struct Login<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// A TOTP code or a recovery code, for accounts with two-factor authentication.
    pub totp_code: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

/// What a failed sign-in (or a wrong second-factor code anywhere) counts against: its account and its client's
/// address. One budget per account for every way of guessing a code, so no path offers more guesses than sign-in.
pub(crate) struct FailureKeys {
    account: Option<String>,
    ip: Option<String>,
}

impl FailureKeys {
    /// `email` normalized (as stored), so every spelling of an address counts against one account.
    pub(crate) fn new(email: Option<&str>, client_ip: Option<IpAddr>) -> FailureKeys {
        FailureKeys {
            account: email.map(|e| format!("login:account:{e}")),
            ip: client_ip.map(|ip| format!("login:ip:{ip}")),
        }
    }
}

impl Service {
    /// Checks the credentials and opens a session (a new refresh-token family).
    ///
    /// An unknown email and a wrong password take as long and answer the same. Failures are counted per account and
    /// per client IP; past the quota every attempt is 429 until the window allows again, right password or not.
    pub async fn login(&self, attempt: Login<'_>) -> Result<Session, Error> {
        let email = Email::for_lookup(attempt.email);
        let keys = FailureKeys::new(email.as_ref().map(Email::as_str), attempt.client_ip);
        if let Some(retry_after_secs) = self.throttled_for(&keys).await? {
            return Err(Error::LoginThrottled { retry_after_secs });
        }

        let user = match &email {
            Some(email) => self.store().user_by_email(email.as_str()).await?,
            None => None,
        };
        let password = Password::unchecked(attempt.password);
        let hash = user.as_ref().map(|u| u.password_hash.as_str());
        let password_ok = self.inner.hasher.verify(&password, hash).await?;
        let Some(user) = user.filter(|_| password_ok) else {
            self.count_failure(&keys).await?;
            return Err(Error::InvalidCredentials);
        };
        if user.totp_enabled {
            let Some(code) = attempt.totp_code.filter(|c| !c.trim().is_empty()) else {
                return Err(Error::MfaRequired);
            };
            if !self.check_second_factor(&user, code).await? {
                self.count_failure(&keys).await?;
                return Err(Error::InvalidMfaCode);
            }
        }
        self.reset_failures(&keys).await?;
        self.open_session(&user).await
    }

    /// How long to wait, when the account or the address is over its quota of failures.
    pub(crate) async fn throttled_for(&self, keys: &FailureKeys) -> Result<Option<u64>, Error> {
        let options = &self.inner.options;
        let checks = [(&keys.account, options.account_quota()), (&keys.ip, options.ip_quota())];
        for (key, quota) in checks {
            if let Some(key) = key
                && let decision @ Decision::Limited { .. } = self.inner.limiter.peek(key, quota).await?
            {
                return Ok(Some(decision.retry_after_secs()));
            }
        }
        Ok(None)
    }

    /// Forgets the account's failures once both factors were right (not the address's: one good account does not
    /// vouch for everything else tried from there).
    pub(crate) async fn reset_failures(&self, keys: &FailureKeys) -> Result<(), Error> {
        if let Some(key) = &keys.account {
            self.inner.limiter.reset(key).await?;
        }
        Ok(())
    }

    pub(crate) async fn count_failure(&self, keys: &FailureKeys) -> Result<(), Error> {
        let options = &self.inner.options;
        if let Some(key) = &keys.account {
            self.inner.limiter.check(key, options.account_quota()).await?;
        }
        if let Some(key) = &keys.ip {
            self.inner.limiter.check(key, options.ip_quota()).await?;
        }
        Ok(())
    }

    /// Opens a session for `user` as the sign-in checked it: a new refresh-token family and an access token with the
    /// user's current roles. Refused when the password changed or TOTP was turned on since `user` was read.
    async fn open_session(&self, user: &User) -> Result<Session, Error> {
        let (access_token, token_id) = self.access_token(user).await?;
        let refresh_token = random_token();
        let token = NewRefreshToken {
            id: token_id,
            family_id: Uuid::now_v7(),
            token_hash: &sha256(&refresh_token),
            expires_at: self.refresh_expiry(),
        };
        if !self.store().open_session(user, &token).await? {
            // Changed while we checked: what was checked no longer signs in (a retry meets the new credentials, roles
            // and organization).
            return Err(Error::InvalidCredentials);
        }
        Ok(self.session(user, access_token, token_id, refresh_token))
    }

    /// An access token carrying the user's current roles, and its id (`jti`): the id its refresh token is stored
    /// under, so that a request's token names its session.
    async fn access_token(&self, user: &User) -> Result<(String, Uuid), Error> {
        let (token, claims) = self
            .inner
            .keyring
            .issue(user.id, user.roles.clone(), user.organization_id)
            .await?;
        Ok((token, claims.jti))
    }

    fn session(&self, user: &User, access_token: String, token_id: Uuid, refresh_token: String) -> Session {
        Session {
            access_token,
            token_id,
            refresh_token,
            expires_in_secs: self.inner.options.access_token_ttl_secs,
            user_id: user.id,
        }
    }

    fn refresh_expiry(&self) -> Timestamp {
        Timestamp::now() + time::Duration::seconds(self.inner.options.refresh_token_ttl_secs as i64)
    }

    /// Trades a refresh token for a new pair. Each refresh token works once: presenting a used one means it was
    /// copied, so the whole family (every token descended from that sign-in) is revoked.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, Error> {
        let Some(row) = self.store().refresh_token_by_hash(&sha256(refresh_token)).await? else {
            return Err(Error::InvalidRefreshToken);
        };
        if row.revoked_at.is_some() || row.expires_at <= Timestamp::now() {
            return Err(Error::InvalidRefreshToken);
        }
        if row.used_at.is_some() {
            return self.reject_reuse(&row).await;
        }
        let user = self.user(row.user_id).await?;
        let (access_token, token_id) = self.access_token(&user).await?;
        let new_token = random_token();
        let new = NewRefreshToken {
            id: token_id,
            family_id: row.family_id,
            token_hash: &sha256(&new_token),
            expires_at: self.refresh_expiry(),
        };
        match self.store().rotate_refresh_token(&row, &new).await? {
            Rotation::Rotated => Ok(self.session(&user, access_token, token_id, new_token)),
            // Someone presented the same token a moment before us.
            Rotation::Reused => self.reject_reuse(&row).await,
            // The session ended (signed out everywhere, password changed) while we were at it.
            Rotation::Revoked => Err(Error::InvalidRefreshToken),
        }
    }

    async fn reject_reuse(&self, row: &RefreshRow) -> Result<Session, Error> {
        tracing::warn!(user_id = %row.user_id, family_id = %row.family_id, "refresh token reused: family revoked");
        let event = Event::new(
            SOURCE,
            "identity.refresh_token_reuse_detected.v1",
            row.user_id.to_string(),
            &serde_json::json!({ "user_id": row.user_id, "family_id": row.family_id }),
        )?;
        self.store()
            .revoke_refresh_family(row.user_id, row.family_id, Some(&event))
            .await?;
        self.sessions_ended();
        Err(Error::RefreshTokenReused)
    }

    /// Ends the session the refresh token belongs to. Unknown tokens are ignored: signing out twice is fine.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), Error> {
        if let Some(row) = self.store().refresh_token_by_hash(&sha256(refresh_token)).await? {
            self.store()
                .revoke_refresh_family(row.user_id, row.family_id, None)
                .await?;
            self.sessions_ended();
        }
        Ok(())
    }

    /// Signs `actor` out everywhere: every refresh token of theirs stops working, the caller's own included, and the
    /// gateway refuses their access tokens once it has read [`Service::revocations`] (at once in this process, within
    /// its poll interval elsewhere).
    pub async fn revoke_sessions(&self, actor: &Principal) -> Result<(), Error> {
        self.live_session(actor).await?;
        let event = Event::new(
            SOURCE,
            "identity.sessions_revoked.v1",
            actor.user_id.to_string(),
            &serde_json::json!({ "user_id": actor.user_id, "revoked_by": actor.user_id }),
        )?;
        self.store().revoke_sessions(actor.user_id, &event).await?;
        self.sessions_ended();
        Ok(())
    }
}

/// Where a reader of [`Service::revocations`] got to: the last ended session it was given (when it ended, to the
/// microsecond, then its token id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationCursor {
    pub revoked_at_micros: i64,
    pub token_id: Uuid,
}

impl RevocationCursor {
    /// The same place `secs` earlier: where to read again from, so that a revocation committed late (its time
    /// taken before a slow commit, or on an instance whose clock lags) is still seen.
    pub fn rewound(self, secs: i64) -> RevocationCursor {
        RevocationCursor {
            revoked_at_micros: self.revoked_at_micros.saturating_sub(secs.saturating_mul(1_000_000)),
            token_id: Uuid::nil(),
        }
    }
}

/// An access token whose session has ended, and until when it would otherwise be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedToken {
    /// The access token's `jti`.
    pub token_id: Uuid,
    /// Unix seconds after which the token has expired anyway (an upper bound: its refresh token's issue time plus
    /// the access tokens' lifetime).
    pub expires_at: i64,
}

/// A page of ended sessions, in the order they ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocations {
    pub tokens: Vec<RevokedToken>,
    /// Where to read on from (the last token's place, or the place asked for when there was none).
    pub next: RevocationCursor,
    /// Whether this page reached the newest revocation (fewer than the limit were left).
    pub complete: bool,
}

/// Most ended sessions one call of [`Service::revocations`] returns.
pub const MAX_REVOCATIONS_PAGE: u32 = 1_000;

impl Service {
    /// Access tokens whose sessions ended after `after`, oldest first, at most `limit` (and
    /// [`MAX_REVOCATIONS_PAGE`]): how the gateway learns to refuse an ended session's access token before it expires
    /// (signed out, signed out everywhere, a password change or TOTP turned on elsewhere, a refresh token reused).
    /// Without `after`, or with one older than any access token still valid, it starts from the oldest revocation
    /// that still matters; revocations of tokens expired by now are never returned.
    pub async fn revocations(&self, after: Option<RevocationCursor>, limit: u32) -> Result<Revocations, Error> {
        let limit = limit.clamp(1, MAX_REVOCATIONS_PAGE);
        let ttl = time::Duration::seconds(self.inner.options.access_token_ttl_secs as i64);
        // A token is accepted until `exp` plus the gateway's leeway (30 s): keep a minute's margin.
        let issued_since = Timestamp::now() - ttl - time::Duration::seconds(60);
        let start = match after {
            Some(cursor) if cursor.revoked_at_micros >= issued_since.unix_micros() => {
                (Timestamp::from_unix_micros(cursor.revoked_at_micros), cursor.token_id)
            }
            _ => (issued_since, Uuid::nil()),
        };
        let rows = self.store().revoked_tokens(start, issued_since, limit).await?;
        let complete = rows.len() < limit as usize;
        let next = rows.last().map_or(start, |row| (row.revoked_at, row.id));
        let tokens = rows
            .into_iter()
            .map(|row| RevokedToken {
                token_id: row.id,
                expires_at: (row.issued_at + ttl).unix_secs(),
            })
            .collect();
        Ok(Revocations {
            tokens,
            next: RevocationCursor {
                revoked_at_micros: next.0.unix_micros(),
                token_id: next.1,
            },
            complete,
        })
    }

    /// A receiver that changes whenever this process ends a session, so a gateway in the same process can read
    /// [`Service::revocations`] at once instead of at its next poll.
    pub fn revocations_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.revocations.subscribe()
    }

    /// Tells [`Service::revocations_changed`]'s receivers that a session ended.
    pub(crate) fn sessions_ended(&self) {
        self.inner
            .revocations
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}

impl Service {
    /// The session a request came with ([`require_session`]), still open: an access token outlives its session
    /// (requests are served on its signature alone), but what only the account's owner should do (change the
    /// password or second factor, manage sessions and API keys) is refused from a session that was ended, signed
    /// out, or ended by a password change or TOTP turned on elsewhere (401 `session_ended`). Otherwise a thief
    /// whose session was ended could still enrol a second factor and lock the owner out, or leave an API key behind.
    /// An access token that names no session (issued before sessions were named) counts as ended.
    pub(crate) async fn live_session(&self, principal: &Principal) -> Result<Uuid, Error> {
        let token_id = require_session(principal)?;
        match self.store().session_open(principal.user_id, token_id).await? {
            true => Ok(token_id),
            false => Err(Error::SessionEnded),
        }
    }
}

/// The id of the access token a request came with, which names its session. What only an account's owner at a
/// keyboard should do (change the password or second factor, manage sessions and API keys) needs one: an API key,
/// or a service acting for the user, gets [`Error::SessionRequired`].
pub(crate) fn require_session(principal: &Principal) -> Result<Uuid, Error> {
    match principal.credential {
        Credential::AccessToken { token_id } => Ok(token_id),
        _ => Err(Error::SessionRequired),
    }
}
