//! Passwords: the policy every new one meets, argon2id hashing on a bounded pool, and changing one.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use phoenix_api::Principal;
use phoenix_db::Event;
use tokio::sync::Semaphore;

use crate::email::Email;
use crate::session::FailureKeys;
use crate::user::User;
use crate::{Error, SOURCE, Service};

/// A password that meets the policy. Only ever hashed, never stored or logged.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeakPassword(&'static str);

/// A few of the passwords every credential-stuffing list starts with; the length rule already excludes most.
const COMMON: &[&str] = &[
    "password1234",
    "password12345",
    "password123456",
    "123456789012",
    "1234567890123",
    "qwertyuiop12",
    "qwertyuiopas",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "administrator",
    "passwordpassword",
    "changeme1234",
    "trustno11234",
    "abc123abc123",
    "football1234",
    "baseball1234",
    "monkey123456",
    "superman1234",
    "qwerty123456",
    "1q2w3e4r5t6y",
    "zaq12wsxcde3",
];

impl Password {
    pub const MIN_CHARS: usize = 12;
    /// Bounded so that hashing cost cannot be driven up by huge inputs.
    pub const MAX_CHARS: usize = 256;

    /// Checks the policy: 12 to 256 characters, not a well-known password, not one character or a simple sequence
    /// repeated, and not built from the account's own email or name.
    pub fn parse(raw: &str, email_local_part: &str, name: &str) -> Result<Password, WeakPassword> {
        let n_chars = raw.chars().count();
        if n_chars < Self::MIN_CHARS {
            return Err(WeakPassword("must be at least 12 characters"));
        }
        if n_chars > Self::MAX_CHARS {
            return Err(WeakPassword("must be at most 256 characters"));
        }
        let lower = raw.to_lowercase();
        if COMMON.contains(&lower.as_str()) {
            return Err(WeakPassword("is a commonly used password"));
        }
        let mut distinct: Vec<char> = lower.chars().collect();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 5 {
            return Err(WeakPassword("must use at least 5 different characters"));
        }
        if is_sequence(&lower) {
            return Err(WeakPassword("must not be a simple sequence"));
        }
        for own in [email_local_part, name] {
            let own = own.trim().to_lowercase();
            if own.chars().count() >= 4 && lower.contains(&own) {
                return Err(WeakPassword("must not contain your email or name"));
            }
        }
        Ok(Password(raw.to_owned()))
    }

    /// For verifying a login attempt, where the policy does not apply.
    pub fn unchecked(raw: &str) -> Password {
        Password(raw.to_owned())
    }
}

/// True for runs like `abcdefghijkl` or `987654321098`: each character one up (or one down) from the last, digits
/// wrapping from 9 to 0.
fn is_sequence(s: &str) -> bool {
    let codes: Vec<i64> = s.chars().map(|c| i64::from(u32::from(c))).collect();
    let steps: Vec<i64> = codes.windows(2).map(|w| w[1] - w[0]).collect();
    steps.iter().all(|d| *d == 1 || *d == -9) || steps.iter().all(|d| *d == -1 || *d == 9)
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed")]
    Join(#[from] tokio::task::JoinError),
    #[error("password hashing pool closed")]
    Closed,
}

/// Argon2id with at least the OWASP minimum (19 MiB, t=2, p=1). Hashing runs on the blocking pool, and a
/// semaphore bounds how many run at once: each takes 19 MiB and a core, so a flood of logins queues instead of
/// exhausting memory.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
}

impl Hasher {
    pub fn new(max_concurrent: usize) -> Hasher {
        Hasher {
            params: Params::DEFAULT,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub async fn hash(&self, password: &Password) -> Result<String, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Closed)?;
        let argon2 = self.argon2();
        let password = password.0.clone();
        tokio::task::spawn_blocking(move || {
            argon2
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| HashError::Hash(e.to_string()))
        })
        .await?
    }

    /// Verifies `password` against `hash`; with no hash (unknown account) it verifies against a dummy so that the
    /// answer takes as long either way and timing does not reveal which emails have accounts.
    pub async fn verify(&self, password: &Password, hash: Option<&str>) -> Result<bool, HashError> {
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Closed)?;
        let argon2 = self.argon2();
        let password = password.0.clone();
        let known = hash.is_some();
        let hash = match hash {
            Some(hash) => hash.to_owned(),
            None => dummy_hash(&argon2)?,
        };
        let matches =
            tokio::task::spawn_blocking(move || argon2.verify_password(password.as_bytes(), hash.as_str()).is_ok())
                .await?;
        Ok(known && matches)
    }
}

/// A password change, as asked.
pub struct PasswordChange<'a> {
    pub current_password: &'a str,
    pub new_password: &'a str,
    /// A TOTP code or a recovery code, for accounts with two-factor authentication.
    pub totp_code: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

impl Service {
    /// Changes the signed-in user's password. The new one meets the registration policy and differs from the
    /// current one; the current one (and the second factor, when TOTP is on) is checked as at sign-in, and a wrong
    /// one counts as a failed sign-in of the account and the address, so this is no way around sign-in throttling.
    ///
    /// The new hash, the end of every other session of the user (the caller's continues) and the event commit
    /// together. Needs a session: an API key gets [`Error::SessionRequired`].
    pub async fn change_password(&self, actor: &Principal, change: PasswordChange<'_>) -> Result<(), Error> {
        let token_id = self.live_session(actor).await?;
        let user = self.user(actor.user_id).await?;
        let new_password = new_password(&user, change.current_password, change.new_password)?;
        let keys = FailureKeys::new(Some(&user.email), change.client_ip);
        if let Some(retry_after_secs) = self.throttled_for(&keys).await? {
            return Err(Error::LoginThrottled { retry_after_secs });
        }
        let current = Password::unchecked(change.current_password);
        if !self.inner.hasher.verify(&current, Some(&user.password_hash)).await? {
            self.count_failure(&keys).await?;
            return Err(Error::CurrentPasswordRejected);
        }
        if user.totp_enabled {
            let Some(code) = change.totp_code.filter(|c| !c.trim().is_empty()) else {
                return Err(Error::MfaCodeRequired);
            };
            if !self.check_second_factor(&user, code).await? {
                self.count_failure(&keys).await?;
                return Err(Error::CodeRejected);
            }
        }
        let new_hash = self.inner.hasher.hash(&new_password).await?;
        let event = Event::new(
            SOURCE,
            "identity.password_changed.v1",
            user.id.to_string(),
            &serde_json::json!({ "user_id": user.id, "changed_by": actor.user_id }),
        )?;
        let changed = self
            .store()
            .change_password(user.id, &user.password_hash, &new_hash, token_id, &event)
            .await?;
        if !changed {
            // Another change won since we read the hash: the password given is no longer the current one.
            return Err(Error::CurrentPasswordRejected);
        }
        self.sessions_ended();
        self.forget_profile(user.id);
        self.reset_failures(&keys).await
    }
}

/// The new password, checked as at registration (against the account's own email and name), and refused when it
/// is the current one.
fn new_password(user: &User, current: &str, new: &str) -> Result<Password, Error> {
    let password = new_password_for(user, new)?;
    if new == current {
        return Err(Error::invalid("new_password", "must differ from the current password"));
    }
    Ok(password)
}

/// A new password for `user` (a change or a reset), checked as at registration against the account's own email
/// and name; a weak one is a field error on `new_password`.
pub(crate) fn new_password_for(user: &User, new: &str) -> Result<Password, Error> {
    let local_part = Email::for_lookup(&user.email)
        .map(|e| e.local_part().to_owned())
        .unwrap_or_default();
    Password::parse(new, &local_part, &user.name).map_err(|e| Error::invalid("new_password", e.to_string()))
}

fn dummy_hash(argon2: &Argon2<'static>) -> Result<String, HashError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash.clone());
    }
    let hash = argon2
        .hash_password(b"phoenix-dummy-password-for-timing")
        .map_err(|e| HashError::Hash(e.to_string()))?
        .to_string();
    Ok(DUMMY.get_or_init(|| hash).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_table() {
        let cases = [
            ("short", false),
            ("password1234", false),
            ("aaaaaaaaaaaaaaaa", false),
            ("abcabcabcabc", false),
            ("abcdefghijklmnop", false),
            ("123456789012", false),
            ("annlee-secret-99", false),
            ("correct horse battery", true),
            ("Tr0ub4dor&3xyz", true),
        ];
        for (raw, ok) in cases {
            assert_eq!(Password::parse(raw, "annlee", "Ann Lee").is_ok(), ok, "{raw:?}");
        }
        assert!(Password::parse(&"x1".repeat(200), "a", "b").is_err());
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = Hasher::new(2);
        let password = Password::parse("correct horse battery", "ann", "Ann").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        assert!(
            !hasher
                .verify(&Password::unchecked("wrong horse battery"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(!hasher.verify(&password, None).await.unwrap());
    }
}
