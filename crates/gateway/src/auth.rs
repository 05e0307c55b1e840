//! Credential checks: the only place in Phoenix that verifies a bearer token or an API key.
//!
//! Access tokens are EdDSA JWTs. The algorithm is pinned (the token's `alg` header cannot choose it), `typ` must
//! be `at+jwt`, and `iss`, `aud`, `exp`, `nbf`, `iat`, `sub` and `jti` are all required. Keys come from identity's
//! JWKS by `kid`; an unknown `kid` triggers at most one re-fetch a second, so a flood of forged kids cannot flood
//! identity. Verified tokens are cached until they expire: a client re-sends the same token on every request, and
//! an Ed25519 verification costs far more than the rest of the request.
//!
//! A signature outlives its session: signing out, signing out everywhere, a password change, TOTP turned on
//! elsewhere, a role change or a password reset end sessions at identity while their access tokens are still
//! unexpired. The gateway keeps the ids of those tokens ([`Authenticator::watch_revocations`] reads them from
//! identity: as soon as a session ends when identity runs in this process, a few milliseconds after the request
//! that ended it; every `gateway.revocation_poll_ms` otherwise) and refuses them with 401 `session_ended`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use phoenix_api::{Credential, Principal, Problem};
use phoenix_identity::{AccessClaims, MAX_REVOCATIONS_PAGE, RevocationCursor, TOKEN_TYPE};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

/// Why a credential was refused. Every variant is a 401 to the client; the distinction is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the Authorization header is not a bearer credential")]
    MalformedHeader,
    #[error("the token is not a valid access token")]
    InvalidToken,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the session this token belongs to has ended; sign in again")]
    SessionEnded,
}

impl From<Rejection> for Problem {
    fn from(rejection: Rejection) -> Problem {
        let code = match rejection {
            Rejection::Expired => "token_expired",
            Rejection::SessionEnded => "session_ended",
            _ => "invalid_token",
        };
        Problem::new(axum::http::StatusCode::UNAUTHORIZED, code, rejection.to_string())
    }
}

struct CachedToken {
    principal: Principal,
    exp: i64,
}

/// Verifies credentials. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    identity: phoenix_identity::Client,
    validation: Arc<Validation>,
    keys: Arc<RwLock<HashMap<String, DecodingKey>>>,
    last_fetch: Arc<Mutex<Option<Instant>>>,
    verified: Arc<quick_cache::sync::Cache<String, Arc<CachedToken>>>,
    revoked: Arc<Revoked>,
}

/// Access tokens of ended sessions, as read from identity.
#[derive(Default)]
struct Revoked {
    /// Token id -> Unix seconds after which the token has expired anyway (and the entry can go).
    tokens: std::sync::RwLock<HashMap<Uuid, i64>>,
    /// Where the last complete read got to; one read at a time.
    cursor: Mutex<Option<RevocationCursor>>,
}

/// How far back each read of identity's revocations starts before where the last one ended: a revocation whose
/// time was taken before a slow commit, or on an identity instance whose clock lags, is still seen.
const REREAD_SECS: i64 = 30;

const REFETCH_INTERVAL: Duration = Duration::from_secs(1);
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY_SECS: u64 = 30;

impl Authenticator {
    pub fn new(
        identity: phoenix_identity::Client,
        issuer: &str,
        audience: &str,
        cache_capacity: usize,
    ) -> Authenticator {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Authenticator {
            identity,
            validation: Arc::new(validation),
            keys: Arc::new(RwLock::new(HashMap::new())),
            last_fetch: Arc::new(Mutex::new(None)),
            verified: Arc::new(quick_cache::sync::Cache::new(cache_capacity.max(1))),
            revoked: Arc::new(Revoked::default()),
        }
    }

    /// Turns an `Authorization` header value into a principal.
    pub async fn authenticate(&self, header: &str) -> Result<Principal, Problem> {
        let credential = bearer(header).ok_or(Rejection::MalformedHeader)?;
        if phoenix_identity::looks_like_api_key(credential) {
            return self.identity.authenticate_api_key(credential).await;
        }
        Ok(self.verify_token(credential).await?)
    }

    pub async fn verify_token(&self, token: &str) -> Result<Principal, Rejection> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let principal = match self.verified.get(token) {
            Some(cached) if cached.exp + LEEWAY_SECS as i64 > now => cached.principal,
            Some(_) => return Err(Rejection::Expired),
            None => {
                let (principal, exp) = self.verify_signed(token, now).await?;
                self.verified
                    .insert(token.to_owned(), Arc::new(CachedToken { principal, exp }));
                principal
            }
        };
        match principal.credential {
            Credential::AccessToken { token_id } if self.revoked.contains(token_id) => Err(Rejection::SessionEnded),
            _ => Ok(principal),
        }
    }

    /// Keeps this authenticator's list of ended sessions current, in a task of its own: reads identity's
    /// revocations now, then every `every`, and at once whenever identity in this process ends a session. The task
    /// stops when the last clone of the authenticator is dropped. A failed read is logged and retried at the next
    /// tick; tokens already known stay refused.
    pub fn watch_revocations(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let revoked = Arc::downgrade(&self.revoked);
        let identity = self.identity.clone();
        let mut changed = identity.revocations_changed();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let woken = match changed.as_mut() {
                    Some(receiver) => tokio::select! {
                        _ = tick.tick() => true,
                        result = receiver.changed() => result.is_ok(),
                    },
                    None => {
                        tick.tick().await;
                        true
                    }
                };
                if !woken {
                    // Identity in this process is gone: only the ticks are left.
                    changed = None;
                    continue;
                }
                let Some(revoked) = revoked.upgrade() else {
                    return;
                };
                if let Err(problem) = revoked.sync(&identity).await {
                    tracing::warn!(%problem, "cannot read ended sessions from identity");
                }
            }
        })
    }

    /// Verifies a token without consulting or filling the cache (for the benchmark of what the cache saves).
    pub async fn verify_uncached(&self, token: &str) -> Result<Principal, Rejection> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        Ok(self.verify_signed(token, now).await?.0)
    }

    async fn verify_signed(&self, token: &str, now: i64) -> Result<(Principal, i64), Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::InvalidToken)?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(Rejection::InvalidToken);
        }
        let kid = header.kid.ok_or(Rejection::InvalidToken)?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Rejection::Expired,
            _ => Rejection::InvalidToken,
        })?;
        let claims = data.claims;
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err(Rejection::InvalidToken);
        }
        let principal = Principal {
            user_id: claims.sub,
            roles: claims.roles.into_iter().collect(),
            organization_id: claims.org,
            credential: Credential::AccessToken { token_id: claims.jti },
        };
        Ok((principal, claims.exp))
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, Rejection> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        self.refetch().await;
        self.keys.read().await.get(kid).cloned().ok_or(Rejection::UnknownKey)
    }

    /// Re-reads identity's JWKS, at most once per [`REFETCH_INTERVAL`].
    async fn refetch(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        match self.identity.jwks(true).await {
            Ok(set) => {
                let keys = set
                    .keys
                    .iter()
                    .filter_map(|jwk| {
                        let kid = jwk.common.key_id.clone()?;
                        DecodingKey::from_jwk(jwk).ok().map(|key| (kid, key))
                    })
                    .collect();
                *self.keys.write().await = keys;
            }
            Err(problem) => tracing::warn!(%problem, "cannot fetch signing keys from identity"),
        }
    }
}

impl Revoked {
    fn contains(&self, token_id: Uuid) -> bool {
        self.tokens
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains_key(&token_id)
    }

    /// Reads what identity has revoked since the last read (from [`REREAD_SECS`] before it), and forgets tokens that
    /// have expired anyway.
    async fn sync(&self, identity: &phoenix_identity::Client) -> Result<(), Problem> {
        let mut cursor = self.cursor.lock().await;
        let mut after = cursor.map(|at| at.rewound(REREAD_SECS));
        loop {
            let page = identity.revocations(after, MAX_REVOCATIONS_PAGE).await?;
            let mut tokens = self.tokens.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for token in &page.tokens {
                tokens.insert(token.token_id, token.expires_at);
            }
            drop(tokens);
            after = Some(page.next);
            if page.complete {
                break;
            }
        }
        *cursor = after;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut tokens = self.tokens.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens.retain(|_, expires_at| *expires_at + LEEWAY_SECS as i64 > now);
        Ok(())
    }
}

/// The credential of `Bearer <credential>` (scheme case-insensitive, as RFC 7235 says).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, credential) = header.trim().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty() && !credential.contains(' ')).then_some(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer a b"), None);
    }
}
