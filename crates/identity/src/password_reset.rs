//! "Forgot my password": a single-use token mailed to the account's address, and a new password set with it.
//!
//! A request names an email address and gets the same answer whether an account has it or not, in the same time:
//! the account is looked up, and its token issued, after the answer is decided (in a task of its own), so neither
//! the answer nor its timing says which addresses have accounts. Requests are counted per client address (past
//! `password_resets_per_ip`: 429) and per email address (past `password_resets_per_account`: answered as any other,
//! with nothing sent), so the form can flood neither a mailbox nor the outbox.
//!
//! The token is random (256 bits) and kept as its SHA-256 digest only. It works once, until
//! `password_reset_ttl_secs`, and only while it is the account's newest: a new request replaces it. It leaves
//! identity once, sealed with the shared secrets key ([`phoenix_db::Sealer::seal_text`], bound to the user by
//! [`reset_token_context`]) in `identity.password_reset_requested.v1`, written in the transaction that stores its
//! digest; notification opens it only to write the email.
//!
//! Confirming sets the password (the registration policy), spends the token and ends every session of the account
//! in one transaction. A second factor stays on: whoever reads the mailbox still needs it to sign in.

use std::net::IpAddr;

use phoenix_db::{Event, Timestamp};
use phoenix_ratelimit::Decision;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::email::Email;
use crate::password::new_password_for;
use crate::secret::{random_token, sha256};
use crate::session::FailureKeys;
use crate::{Error, SOURCE, Service};

/// The event that asks notification to mail a reset token.
pub const PASSWORD_RESET_REQUESTED: &str = "identity.password_reset_requested.v1";
/// The event of a password set with a reset token.
pub const PASSWORD_RESET: &str = "identity.password_reset.v1";

/// What a user's reset token is sealed for in [`PASSWORD_RESET_REQUESTED`]: notification opens it under the same
/// context, so a sealed token copied into another user's event does not open.
pub fn reset_token_context(user_id: Uuid) -> String {
    format!("identity.password_reset:{user_id}")
}

/// The longest token looked up: an issued one has 43 characters.
const MAX_TOKEN_CHARS: usize = 128;

/// The data of [`PASSWORD_RESET_REQUESTED`]. `email` and `name` are personal data, which the audit log masks by
/// these keys; the token is only ever sealed.
#[derive(Serialize)]
struct Requested<'a> {
    user_id: Uuid,
    email: &'a str,
    name: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    sealed_token: String,
}

/// A reset request that was let through: its token is being issued in the background (nothing is, for an address
/// without an account or over its quota). Dropping it leaves the work to finish on its own.
#[must_use = "dropping it is fine, but then nothing says when the token is issued"]
pub struct ResetRequested(Option<tokio::task::JoinHandle<Result<(), Error>>>);

impl ResetRequested {
    /// Waits until the token and its event are stored, or it is known that nothing was to be.
    pub async fn issued(self) -> Result<(), Error> {
        match self.0 {
            None => Ok(()),
            Some(task) => task.await.map_err(Error::ResetTask)?,
        }
    }
}

impl Service {
    /// "Forgot my password" for `email`, asked from `client_ip`. A malformed address is a field error on `email`;
    /// past its quota the client's address gets [`Error::PasswordResetThrottled`]. Otherwise the request is
    /// accepted whether or not an account has the address; for one that has, unless the address is past its quota
    /// of emails, a new token (replacing any earlier one) and `identity.password_reset_requested.v1` are stored
    /// together, after this returns.
    pub async fn request_password_reset(
        &self,
        email: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<ResetRequested, Error> {
        let email = Email::parse(email).map_err(|e| Error::invalid("email", e.to_string()))?;
        let options = &self.inner.options;
        if let Some(ip) = client_ip {
            let decision = self
                .inner
                .limiter
                .check(&format!("password_reset:ip:{ip}"), options.reset_ip_quota())
                .await?;
            if let Decision::Limited { .. } = decision {
                return Err(Error::PasswordResetThrottled {
                    retry_after_secs: decision.retry_after_secs(),
                });
            }
        }
        // Counted for every address, with an account or not, so that going over the quota says nothing either.
        let address = self
            .inner
            .limiter
            .check(
                &format!("password_reset:account:{email}"),
                options.reset_account_quota(),
            )
            .await?;
        if !address.is_allowed() {
            tracing::info!("password reset not mailed: the address asked too often");
            return Ok(ResetRequested(None));
        }
        let service = self.clone();
        Ok(ResetRequested(Some(phoenix_api::trace::spawn(async move {
            let issued = service.issue_password_reset(&email).await;
            if let Err(error) = &issued {
                tracing::warn!(error = %phoenix_api::ErrorChain(error), "issuing a password reset token failed");
            }
            issued
        }))))
    }

    /// Stores a new reset token for the account of `email`, if there is one, with the event that mails it.
    async fn issue_password_reset(&self, email: &Email) -> Result<(), Error> {
        let Some(user) = self.store().user_by_email(email.as_str()).await? else {
            return Ok(());
        };
        let token = random_token();
        let ttl = time::Duration::seconds(self.inner.options.password_reset_ttl_secs as i64);
        let expires_at = Timestamp::now() + ttl;
        let data = Requested {
            user_id: user.id,
            email: &user.email,
            name: &user.name,
            expires_at: expires_at.datetime(),
            sealed_token: self.store().seal_reset_token(user.id, &token),
        };
        let event = Event::new(SOURCE, PASSWORD_RESET_REQUESTED, user.id.to_string(), &data)?;
        self.store()
            .replace_password_reset(user.id, &sha256(&token), expires_at, &event)
            .await
    }

    /// Sets a new password with a reset token. An unknown, used, expired or replaced token is
    /// [`Error::InvalidResetToken`], the same for each; a new password the registration policy refuses is a field
    /// error on `new_password` (and leaves the token as it was).
    ///
    /// The new hash, the token spent and the end of every session of the user (refresh tokens at once, access tokens
    /// at the gateway's next read of [`Service::revocations`]) commit together with `identity.password_reset.v1`; of
    /// confirmations racing with one token exactly one wins. The account's failed sign-ins are forgotten; TOTP, if
    /// on, stays on.
    pub async fn confirm_password_reset(&self, token: &str, new_password: &str) -> Result<(), Error> {
        if token.is_empty() || token.len() > MAX_TOKEN_CHARS {
            return Err(Error::InvalidResetToken);
        }
        let token_hash = sha256(token);
        let Some(user_id) = self.store().password_reset_user(&token_hash, Timestamp::now()).await? else {
            return Err(Error::InvalidResetToken);
        };
        let user = self.user(user_id).await?;
        let password = new_password_for(&user, new_password)?;
        let new_hash = self.inner.hasher.hash(&password).await?;
        let event = Event::new(
            SOURCE,
            PASSWORD_RESET,
            user.id.to_string(),
            &serde_json::json!({ "user_id": user.id }),
        )?;
        let reset = self
            .store()
            .reset_password(user.id, &token_hash, &new_hash, Timestamp::now(), &event)
            .await?;
        if !reset {
            // Spent by a racing confirmation, replaced or expired while the new password was hashed.
            return Err(Error::InvalidResetToken);
        }
        self.sessions_ended();
        self.forget_profile(user.id);
        self.reset_failures(&FailureKeys::new(Some(&user.email), None)).await
    }
}
