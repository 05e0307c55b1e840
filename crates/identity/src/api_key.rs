//! API keys: long-lived bearer credentials for partner systems. The key is shown once at creation; only its SHA-256
//! is stored. Format: `phx_<key id, 32 hex>_<secret, 43 base64url>`; the id makes lookup a primary-key read.

use phoenix_api::{Credential, Principal, Role};
use phoenix_db::{Event, Timestamp};
use uuid::Uuid;

use crate::secret::{random_token, sha256};
use crate::store::ApiKeyRow;
use crate::{Error, SOURCE, Service};

pub const PREFIX: &str = "phx_";

/// Roles allowed to hold API keys.
pub const ROLES: &[Role] = &[Role::Partner, Role::Admin];

/// Live (unrevoked, unexpired) keys one user may hold. The listing shows them all, so it is never cut short.
pub const MAX_LIVE_KEYS: u32 = 100;

/// A key as listed: never the secret.
pub type ApiKey = ApiKeyRow;

/// True when a bearer credential looks like an API key rather than a JWT.
pub fn looks_like_api_key(credential: &str) -> bool {
    credential.starts_with(PREFIX)
}

fn parse(key: &str) -> Option<(Uuid, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.len() != 43 {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

impl Service {
    /// Creates a key for `owner`; returns it with the full key string, which is never shown again.
    ///
    /// Only a signed-in session may: a key made with another key would outlive that key's revocation, so one leaked
    /// key could leave others behind. At most [`MAX_LIVE_KEYS`] live keys per user.
    pub async fn create_api_key(
        &self,
        owner: &Principal,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<(ApiKey, String), Error> {
        self.live_session(owner).await?;
        let name = crate::user::parse_name(name).map_err(|m| Error::invalid("name", m))?;
        if let Some(at) = expires_at
            && at <= Timestamp::now()
        {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        // Random, not time-ordered: the listed prefix is the id's first characters, and keys made in the same
        // minute must not share it.
        let id = Uuid::new_v4();
        let secret = random_token();
        let key = format!("{PREFIX}{}_{secret}", id.simple());
        let row = ApiKeyRow {
            id,
            user_id: owner.user_id,
            name,
            prefix: key[..PREFIX.len() + 8].to_owned(),
            secret_hash: sha256(&key),
            created_at: Timestamp::now(),
            expires_at,
            revoked_at: None,
        };
        let event = Event::new(
            SOURCE,
            "identity.api_key_created.v1",
            owner.user_id.to_string(),
            &serde_json::json!({
                "user_id": owner.user_id, "key_id": id,
            }),
        )?;
        if !self.store().insert_api_key(&row, MAX_LIVE_KEYS, &event).await? {
            return Err(Error::TooManyApiKeys { max: MAX_LIVE_KEYS });
        }
        Ok((row, key))
    }

    /// The owner's keys in creation order: every live one, and the [`MAX_LIVE_KEYS`] revoked or expired last.
    pub async fn api_keys(&self, owner: &Principal) -> Result<Vec<ApiKey>, Error> {
        let mut keys = self
            .store()
            .api_keys_of(owner.user_id, Timestamp::now(), MAX_LIVE_KEYS)
            .await?;
        keys.sort_by_key(|k| (k.created_at, k.id));
        Ok(keys)
    }

    /// Revokes one of the owner's keys (any key, for an admin). Someone else's key is "not found". Revoking a
    /// revoked key succeeds and changes nothing: the event is written once, by the call that revoked it.
    ///
    /// Needs a session, as creating does, so a leaked key cannot revoke its owner's other keys; except that a key may
    /// revoke itself, which can only take away what the key could do, and lets whoever finds a key leaked (or a
    /// partner system retiring it) kill it with nothing but the key. The check comes before the lookup, so a key
    /// learns nothing about other ids.
    pub async fn revoke_api_key(&self, actor: &Principal, id: Uuid) -> Result<(), Error> {
        let revokes_itself = actor.credential == Credential::ApiKey { key_id: id };
        if !revokes_itself {
            self.live_session(actor).await?;
        }
        let key = self.store().api_key(id).await?.ok_or(Error::ApiKeyNotFound)?;
        if key.user_id != actor.user_id && !actor.has(Role::Admin) {
            return Err(Error::ApiKeyNotFound);
        }
        let event = Event::new(
            SOURCE,
            "identity.api_key_revoked.v1",
            key.user_id.to_string(),
            &serde_json::json!({
                "user_id": key.user_id, "key_id": id, "revoked_by": actor.user_id,
            }),
        )?;
        self.store().revoke_api_key(id, &event).await?;
        Ok(())
    }

    /// The principal an API key stands for: its owner, with the owner's current roles and organization. Only while
    /// the owner holds one of [`ROLES`]: a partner re-roled as support must not find their old key reading
    /// everything support reads, nor a demoted one keep a credential their role could not make. The key works
    /// again if the role comes back; the owner lists and revokes it signed in either way.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, Error> {
        let (id, _) = parse(key).ok_or(Error::InvalidApiKey)?;
        let row = self.store().api_key(id).await?.ok_or(Error::InvalidApiKey)?;
        let matches = phoenix_api::internal::constant_time_eq(&row.secret_hash, &sha256(key));
        let live = row.revoked_at.is_none() && row.expires_at.is_none_or(|at| at > Timestamp::now());
        if !matches || !live {
            return Err(Error::InvalidApiKey);
        }
        let owner = self
            .store()
            .user_by_id(row.user_id)
            .await?
            .ok_or(Error::InvalidApiKey)?;
        if !owner.roles.iter().any(|role| ROLES.contains(role)) {
            return Err(Error::InvalidApiKey);
        }
        Ok(Principal {
            user_id: owner.id,
            roles: owner.roles.as_slice().into(),
            organization_id: owner.organization_id,
            credential: Credential::ApiKey { key_id: id },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_well_formed_keys() {
        let id = Uuid::now_v7();
        let key = format!("{PREFIX}{}_{}", id.simple(), "a".repeat(43));
        assert_eq!(parse(&key).map(|(i, _)| i), Some(id));
        assert!(parse("phx_short_x").is_none());
        assert!(parse(&format!("{PREFIX}{}", id.simple())).is_none());
        assert!(parse("eyJhbGciOiJFZERTQSJ9.e30.sig").is_none());
    }
}
