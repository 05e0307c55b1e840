use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use phoenix_api::{Credential, Principal, Role};
use phoenix_db::{Event, Pool, Sealer, Timestamp};
use phoenix_ratelimit::{Limiter, Quota};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::email::Email;
use crate::org::{Organization, OrganizationKind};
use crate::password::{Hasher, Password};
use crate::store::Store;
use crate::token::{Keyring, TokenSettings};
use crate::user::{User, check_roles, parse_name};
use crate::{Error, SOURCE};

/// Identity's settings, with the defaults the platform ships.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// The `iss` claim of access tokens.
    pub issuer: String,
    /// The `aud` claim of access tokens.
    pub audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Failed sign-ins allowed per account per window before 429; wrong codes when enabling or disabling TOTP count
    /// as failed sign-ins.
    pub login_failures_per_account: u32,
    /// Failed sign-ins (and wrong TOTP codes) allowed per client IP per window before 429.
    pub login_failures_per_ip: u32,
    pub login_failure_window_secs: u64,
    /// Argon2 hashes computed at once (each takes 19 MiB and a core); more wait their turn.
    pub max_concurrent_password_hashes: usize,
    /// How long a profile read for `/auth/me` may be served from memory. Changes made through this process show at
    /// once; changes made by another identity replica show within this time.
    pub profile_cache_ttl_secs: u64,
    /// The issuer shown by authenticator apps.
    pub totp_issuer: String,
    /// How long a password-reset token (the link in the email) works.
    pub password_reset_ttl_secs: u64,
    /// Password-reset emails one address gets per window. Past it a request is answered as any other (202) and
    /// sends nothing, so the answer tells nothing about the address.
    pub password_resets_per_account: u32,
    /// Password-reset requests one client IP may make per window before 429.
    pub password_resets_per_ip: u32,
    pub password_reset_window_secs: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            issuer: "phoenix".to_owned(),
            audience: "phoenix-api".to_owned(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            login_failures_per_account: 5,
            login_failures_per_ip: 50,
            login_failure_window_secs: 15 * 60,
            max_concurrent_password_hashes: 4,
            profile_cache_ttl_secs: 5,
            totp_issuer: "Phoenix".to_owned(),
            password_reset_ttl_secs: 30 * 60,
            password_resets_per_account: 3,
            password_resets_per_ip: 30,
            password_reset_window_secs: 3600,
        }
    }
}

impl Options {
    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.issuer.trim().is_empty() {
            return Err("identity.issuer must not be empty".to_owned());
        }
        if self.audience.trim().is_empty() {
            return Err("identity.audience must not be empty".to_owned());
        }
        if !(60..=24 * 3600).contains(&self.access_token_ttl_secs) {
            return Err("identity.access_token_ttl_secs must be between 60 and 86400".to_owned());
        }
        if self.refresh_token_ttl_secs < self.access_token_ttl_secs {
            return Err("identity.refresh_token_ttl_secs must be at least access_token_ttl_secs".to_owned());
        }
        if self.login_failures_per_account == 0 || self.login_failures_per_ip == 0 {
            return Err("identity.login_failures_per_account and _per_ip must be at least 1".to_owned());
        }
        if self.login_failure_window_secs == 0 {
            return Err("identity.login_failure_window_secs must be at least 1".to_owned());
        }
        if self.profile_cache_ttl_secs > 300 {
            return Err("identity.profile_cache_ttl_secs must be at most 300".to_owned());
        }
        if self.max_concurrent_password_hashes == 0 {
            return Err("identity.max_concurrent_password_hashes must be at least 1".to_owned());
        }
        if !(60..=24 * 3600).contains(&self.password_reset_ttl_secs) {
            return Err("identity.password_reset_ttl_secs must be between 60 and 86400".to_owned());
        }
        if self.password_resets_per_account == 0 || self.password_resets_per_ip == 0 {
            return Err("identity.password_resets_per_account and _per_ip must be at least 1".to_owned());
        }
        if self.password_reset_window_secs == 0 {
            return Err("identity.password_reset_window_secs must be at least 1".to_owned());
        }
        Ok(())
    }

    pub(crate) fn account_quota(&self) -> Quota {
        Quota {
            limit: self.login_failures_per_account,
            period: Duration::from_secs(self.login_failure_window_secs),
        }
    }

    pub(crate) fn ip_quota(&self) -> Quota {
        Quota {
            limit: self.login_failures_per_ip,
            period: Duration::from_secs(self.login_failure_window_secs),
        }
    }

    pub(crate) fn reset_account_quota(&self) -> Quota {
        Quota {
            limit: self.password_resets_per_account,
            period: Duration::from_secs(self.password_reset_window_secs),
        }
    }

    pub(crate) fn reset_ip_quota(&self) -> Quota {
        Quota {
            limit: self.password_resets_per_ip,
            period: Duration::from_secs(self.password_reset_window_secs),
        }
    }
}

/// The identity service: cheap to clone, one per process.
#[derive(Clone)]
pub struct Service {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) options: Options,
    pub(crate) hasher: Hasher,
    pub(crate) keyring: Keyring,
    pub(crate) limiter: Limiter,
    /// Profiles recently read, for the hot `/auth/me`. Never used for decisions: sign-in, refresh, MFA and API keys
    /// read the database.
    profiles: quick_cache::sync::Cache<Uuid, (Arc<User>, Instant)>,
    /// Counts sessions ended in this process ([`Service::revocations_changed`]).
    pub(crate) revocations: tokio::sync::watch::Sender<u64>,
}

const PROFILE_CACHE_CAPACITY: usize = 100_000;
/// How often expired refresh tokens are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3_600);
/// Rows one delete takes at most, so that no pass holds locks for long.
const PRUNE_BATCH: u32 = 5_000;

/// What a new account needs.
pub struct NewUser<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub name: &'a str,
    pub roles: &'a [Role],
    pub organization_id: Option<Uuid>,
}

impl Service {
    /// Starts identity on a migrated database: seals under `sealer`'s current key any stored secret that is not
    /// (see [`phoenix_db::seal`]), then loads (or creates) the signing keys. Fails if a stored secret was sealed
    /// with a key `sealer` does not have.
    pub async fn new(pool: Pool, options: Options, limiter: Limiter, sealer: Sealer) -> Result<Service, Error> {
        let store = Store::new(pool, sealer);
        let sealed = store.seal_stored_secrets().await?;
        if sealed > 0 {
            tracing::info!(sealed, "identity: sealed stored secrets under the current secrets key");
        }
        let settings = TokenSettings {
            issuer: options.issuer.clone(),
            audience: options.audience.clone(),
            access_ttl: Duration::from_secs(options.access_token_ttl_secs),
        };
        let keyring = Keyring::load(store.clone(), settings).await?;
        let service = Service {
            inner: Arc::new(Inner {
                hasher: Hasher::new(options.max_concurrent_password_hashes),
                store,
                options,
                keyring,
                limiter,
                profiles: quick_cache::sync::Cache::new(PROFILE_CACHE_CAPACITY),
                revocations: tokio::sync::watch::Sender::new(0),
            }),
        };
        service.spawn_pruner();
        Ok(service)
    }

    /// Deletes refresh tokens that expired more than a day ago, [`PRUNE_BATCH`] at a time, until none is left;
    /// returns how many. Every sign-in and every refresh adds a row, so without this the table only grows.
    pub async fn prune_refresh_tokens(&self) -> Result<u64, Error> {
        let before = Timestamp::now() - time::Duration::days(1);
        let mut pruned = 0;
        loop {
            let n = self.store().prune_refresh_tokens(before, PRUNE_BATCH).await?;
            pruned += n;
            if n < u64::from(PRUNE_BATCH) {
                return Ok(pruned);
            }
        }
    }

    /// Prunes refresh tokens every [`PRUNE_INTERVAL`] while the service lives (the task holds it weakly).
    fn spawn_pruner(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                match (Service { inner }).prune_refresh_tokens().await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "expired refresh tokens deleted"),
                    Err(error) => {
                        tracing::warn!(error = %phoenix_api::ErrorChain(&error), "pruning refresh tokens failed");
                    }
                }
            }
        });
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    pub fn pool(&self) -> &Pool {
        self.inner.store.pool()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// A self-service sign-up: a customer account.
    pub async fn register(&self, email: &str, password: &str, name: &str) -> Result<User, Error> {
        self.create_user(NewUser {
            email,
            password,
            name,
            roles: &[Role::Customer],
            organization_id: None,
        })
        .await
    }

    /// Creates an account with the given roles (registration, and `phoenix user create`).
    pub async fn create_user(&self, new: NewUser<'_>) -> Result<User, Error> {
        let mut errors = phoenix_api::FieldErrors::default();
        let email = errors.check("email", Email::parse(new.email));
        let name = errors.check("name", parse_name(new.name));
        let password = match (&email, &name) {
            (Some(email), Some(name)) => {
                errors.check("password", Password::parse(new.password, email.local_part(), name))
            }
            _ => errors.check("password", Password::parse(new.password, "", "")),
        };
        let roles = errors.check("roles", check_roles(new.roles, new.organization_id));
        let (Some(email), Some(name), Some(password), Some(roles)) = (email, name, password, roles) else {
            return Err(Error::Invalid(errors.into_errors()));
        };
        self.check_membership(&roles, new.organization_id).await?;
        let user = User {
            id: Uuid::now_v7(),
            email: email.as_str().to_owned(),
            name,
            password_hash: self.inner.hasher.hash(&password).await?,
            roles,
            organization_id: new.organization_id,
            totp_secret: None,
            totp_enabled: false,
            totp_last_step: None,
            created_at: Timestamp::now(),
        };
        let event = Event::new(
            SOURCE,
            "identity.user_registered.v1",
            user.id.to_string(),
            &serde_json::json!({ "user_id": user.id, "roles": user.roles }),
        )?;
        self.store().insert_user(&user, &event).await?;
        Ok(user)
    }

    pub async fn user(&self, id: Uuid) -> Result<User, Error> {
        self.store().user_by_id(id).await?.ok_or(Error::UserNotFound)
    }

    /// A user's organization, for other services (served from the profile cache, like profiles).
    pub async fn membership(&self, id: Uuid) -> Result<crate::client::Membership, Error> {
        let user = self.cached_user(id).await?;
        Ok(crate::client::Membership {
            user_id: user.id,
            organization_id: user.organization_id,
        })
    }

    /// A user as `viewer` may see it: themself, or anyone for support and admin. Others get "not found", so a
    /// probe cannot tell whether an id exists. Served from the profile cache.
    pub async fn profile_for(&self, viewer: &Principal, id: Uuid) -> Result<Arc<User>, Error> {
        if viewer.user_id != id && !viewer.sees_everything() {
            return Err(Error::UserNotFound);
        }
        self.cached_user(id).await
    }

    async fn cached_user(&self, id: Uuid) -> Result<Arc<User>, Error> {
        let ttl = Duration::from_secs(self.inner.options.profile_cache_ttl_secs);
        if let Some((user, at)) = self.inner.profiles.get(&id)
            && at.elapsed() < ttl
        {
            return Ok(user);
        }
        let user = Arc::new(self.user(id).await?);
        self.inner.profiles.insert(id, (user.clone(), Instant::now()));
        Ok(user)
    }

    /// Drops a user's cached profile after this process changed it.
    pub(crate) fn forget_profile(&self, id: Uuid) {
        self.inner.profiles.remove(&id);
    }

    pub async fn list_users(&self, email: Option<&str>, after: Option<Uuid>, limit: u32) -> Result<Vec<User>, Error> {
        self.store().list_users(email, after, limit).await
    }

    /// The organization exists, and each role belongs to its kind ([`crate::org::may_hold`]).
    async fn check_membership(&self, roles: &[Role], organization_id: Option<Uuid>) -> Result<(), Error> {
        let Some(org) = organization_id else {
            return Ok(());
        };
        let Some(org) = self.store().organization(org).await? else {
            return Err(Error::invalid("organization_id", "no such organization"));
        };
        match roles.iter().find(|role| !crate::org::may_hold(org.kind, **role)) {
            Some(role) => Err(Error::invalid(
                "roles",
                format!(
                    "{} is not a role in an organization of kind {}",
                    role.as_str(),
                    org.kind.as_str()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Replaces a user's roles and organization, and ends every session of the user (an admin changing their own
    /// roles keeps the session they asked from). An access token carries the roles it was issued with, so the
    /// user's tokens must not outlive the change: a demoted admin's token could otherwise give the role back. The
    /// refresh tokens stop at once, the access tokens at the gateway's next read of [`Service::revocations`]; the
    /// user signs in again and gets the new roles. API keys act with their owner's current roles and carry on.
    pub async fn set_roles(
        &self,
        actor: &Principal,
        user_id: Uuid,
        roles: &[Role],
        organization_id: Option<Uuid>,
    ) -> Result<User, Error> {
        let roles = check_roles(roles, organization_id).map_err(|m| Error::invalid("roles", m))?;
        if actor.user_id == user_id && actor.has(Role::Admin) && !roles.contains(&Role::Admin) {
            return Err(Error::CannotRemoveOwnAdmin);
        }
        self.check_membership(&roles, organization_id).await?;
        let event = Event::new(
            SOURCE,
            "identity.user_roles_changed.v1",
            user_id.to_string(),
            &serde_json::json!({
                "user_id": user_id, "roles": roles, "organization_id": organization_id, "changed_by": actor.user_id,
            }),
        )?;
        let keep = match actor.credential {
            Credential::AccessToken { token_id } if actor.user_id == user_id => Some(token_id),
            _ => None,
        };
        if !self
            .store()
            .set_roles(user_id, &roles, organization_id, &event, keep)
            .await?
        {
            return Err(Error::UserNotFound);
        }
        self.sessions_ended();
        self.forget_profile(user_id);
        self.user(user_id).await
    }

    /// Creates an organization. `created_by` is the admin who asked (none from the command line), named in
    /// `identity.organization_created.v1` so the audit log says who.
    pub async fn create_organization(
        &self,
        name: &str,
        kind: OrganizationKind,
        created_by: Option<Uuid>,
    ) -> Result<Organization, Error> {
        let name = parse_name(name).map_err(|m| Error::invalid("name", m))?;
        let org = Organization {
            id: Uuid::now_v7(),
            name,
            kind,
            created_at: Timestamp::now(),
        };
        let event = Event::new(
            SOURCE,
            "identity.organization_created.v1",
            org.id.to_string(),
            &serde_json::json!({
                "organization_id": org.id,
                "name": org.name,
                "kind": org.kind,
                "created_by": created_by,
            }),
        )?;
        self.store().insert_organization(&org, &event).await?;
        Ok(org)
    }

    pub async fn organization(&self, id: Uuid) -> Result<Organization, Error> {
        self.store().organization(id).await?.ok_or(Error::OrganizationNotFound)
    }

    pub async fn list_organizations(&self, after: Option<Uuid>, limit: u32) -> Result<Vec<Organization>, Error> {
        self.store().list_organizations(after, limit).await
    }

    /// The public keys that verify access tokens. `fresh` re-reads them (after an unknown `kid`).
    pub async fn jwks(&self, fresh: bool) -> Result<JwkSet, Error> {
        self.inner.keyring.jwks(fresh).await
    }

    /// Starts signing with a new key; the old one verifies until its tokens expire. Returns the new `kid`.
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        self.inner.keyring.rotate().await
    }

    pub async fn ready(&self) -> bool {
        self.pool().ping().await
    }
}
