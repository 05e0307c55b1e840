//! Two-factor authentication: TOTP (RFC 6238, 6 digits, 30 s steps, one step of clock skew) and single-use
//! recovery codes. A TOTP code is accepted once: the last step used is stored.

use std::net::IpAddr;

use phoenix_api::Principal;
use phoenix_db::{Event, Timestamp};
use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::secret::{normalize_recovery_code, recovery_code, sha256};
use crate::session::FailureKeys;
use crate::user::User;
use crate::{Error, SOURCE, Service};

pub const RECOVERY_CODE_COUNT: usize = 10;

/// What an authenticator app needs to start producing codes.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    /// Base32, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/...`, for a QR code.
    pub otpauth_url: String,
}

impl Service {
    fn totp(&self, secret: &str, account: &str) -> Result<Totp, Error> {
        let secret = Secret::try_from_base32(secret).map_err(|e| Error::Totp(e.to_string()))?;
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_secret(secret)
            .with_account_name(account)
            .with_issuer(Some(self.inner.options.totp_issuer.as_str()))
            .build()
            .map_err(|e| Error::Totp(e.to_string()))
    }

    /// Generates a new secret, pending until [`Service::enable_totp`] sees a code made from it. Needs a session:
    /// an API key that could enrol a second factor could lock its owner out of their account.
    pub async fn setup_totp(&self, actor: &Principal) -> Result<TotpSetup, Error> {
        self.live_session(actor).await?;
        let user_id = actor.user_id;
        let user = self.user(user_id).await?;
        if user.totp_enabled {
            return Err(Error::MfaAlreadyEnabled);
        }
        let secret = Secret::generate().to_base32();
        let totp = self.totp(&secret, &user.email)?;
        let otpauth_url = totp.to_url().map_err(|e| Error::Totp(e.to_string()))?;
        if !self.store().set_pending_totp(user_id, &secret).await? {
            return Err(Error::MfaAlreadyEnabled);
        }
        Ok(TotpSetup { secret, otpauth_url })
    }

    /// Turns TOTP on once the user proves their app works; returns recovery codes, shown this once. Every other
    /// session of the user ends in the same transaction (a session stolen before must not survive its owner turning
    /// on a second factor); the caller's continues. Wrong codes count as failed sign-ins of the account and the
    /// address, and past their quota every code is refused (429).
    pub async fn enable_totp(
        &self,
        actor: &Principal,
        code: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Vec<String>, Error> {
        let token_id = self.live_session(actor).await?;
        let user_id = actor.user_id;
        let user = self.user(user_id).await?;
        if user.totp_enabled {
            return Err(Error::MfaAlreadyEnabled);
        }
        if user.totp_secret.is_none() {
            return Err(Error::MfaNotSetUp);
        }
        let keys = FailureKeys::new(Some(&user.email), client_ip);
        self.check_code(&keys, self.check_totp(&user, code)).await?;
        let codes: Vec<String> = (0..RECOVERY_CODE_COUNT).map(|_| recovery_code()).collect();
        let hashes: Vec<Vec<u8>> = codes.iter().map(|c| sha256(&normalize_recovery_code(c))).collect();
        let event = Event::new(
            SOURCE,
            "identity.mfa_enabled.v1",
            user_id.to_string(),
            &serde_json::json!({
                "user_id": user_id,
            }),
        )?;
        if !self.store().enable_totp(user_id, &hashes, token_id, &event).await? {
            return Err(Error::MfaAlreadyEnabled);
        }
        self.sessions_ended();
        self.forget_profile(user_id);
        Ok(codes)
    }

    /// Turns TOTP off; needs a current code or a recovery code. Wrong codes count as failed sign-ins
    /// of the account and the address, and past their quota every code is refused (429).
    pub async fn disable_totp(&self, actor: &Principal, code: &str, client_ip: Option<IpAddr>) -> Result<(), Error> {
        self.live_session(actor).await?;
        let user_id = actor.user_id;
        let user = self.user(user_id).await?;
        if !user.totp_enabled {
            return Err(Error::MfaNotEnabled);
        }
        let keys = FailureKeys::new(Some(&user.email), client_ip);
        self.check_code(&keys, self.check_second_factor(&user, code)).await?;
        let event = Event::new(
            SOURCE,
            "identity.mfa_disabled.v1",
            user_id.to_string(),
            &serde_json::json!({
                "user_id": user_id,
            }),
        )?;
        self.store().disable_totp(user_id, &event).await?;
        self.forget_profile(user_id);
        Ok(())
    }

    /// Runs `check` unless the account or address is over its quota of failures, counting a wrong code as a failed
    /// sign-in: a stolen session must not offer unlimited guesses at the second factor. A right code does not clear
    /// the count (a sign-in does), or whoever holds a session could reset the password throttle with codes of a
    /// secret they enrolled themselves.
    async fn check_code(
        &self,
        keys: &FailureKeys,
        check: impl Future<Output = Result<bool, Error>>,
    ) -> Result<(), Error> {
        if let Some(retry_after_secs) = self.throttled_for(keys).await? {
            return Err(Error::CodeThrottled { retry_after_secs });
        }
        if !check.await? {
            self.count_failure(keys).await?;
            return Err(Error::CodeRejected);
        }
        Ok(())
    }

    /// A six-digit code is checked as TOTP, anything else as a recovery code (spent on success).
    pub(crate) async fn check_second_factor(&self, user: &User, code: &str) -> Result<bool, Error> {
        let code = code.trim();
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            return self.check_totp(user, code).await;
        }
        let normalized = normalize_recovery_code(code);
        // Twenty characters; codes handed out before 2026-12-01 have ten and stay good until used or replaced.
        if !matches!(normalized.len(), 10 | 20) {
            return Ok(false);
        }
        self.store().use_recovery_code(user.id, &sha256(&normalized)).await
    }

    async fn check_totp(&self, user: &User, code: &str) -> Result<bool, Error> {
        let Some(secret) = &user.totp_secret else {
            return Ok(false);
        };
        let totp = self.totp(secret, &user.email)?;
        let now = Timestamp::now().unix_secs().max(0) as u64;
        let Some(step) = totp.check(code, now) else {
            return Ok(false);
        };
        self.store().claim_totp_step(user.id, step as i64).await
    }
}
