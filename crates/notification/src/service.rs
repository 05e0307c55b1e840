//! The service's operations behind the HTTP API: access checks on objects, validation, and the store.

use phoenix_api::{Principal, Role};
use phoenix_db::Timestamp;
use uuid::Uuid;

use crate::handler::{EVENT_TYPES, Kind};
use crate::store::{
    Attempt, Channel, Delivery, Disabled, Endpoint, StoredPreferences, StoredTemplate, why_unavailable,
};
use crate::template::{self, LOCALES, Template};
use crate::{Error, Service, webhook};

/// Roles that manage their organization's webhooks.
pub const WEBHOOK_ROLES: &[Role] = &[Role::Agent, Role::Partner, Role::Operator, Role::Admin];

/// The longest endpoint description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 500;

/// The event types an endpoint subscribes to: known ones, each once, sorted. Duplicates are dropped before
/// anything is counted, so naming a type twice is no mistake.
fn parse_event_types(mut event_types: Vec<String>) -> Result<Vec<String>, String> {
    event_types.sort();
    event_types.dedup();
    if event_types.is_empty() {
        return Err("name at least one event type".to_owned());
    }
    match event_types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        Some(unknown) => Err(format!("unknown event type {unknown}")),
        None => Ok(event_types),
    }
}

/// A description is for people: counted in characters (not bytes, so accents cost no more), no control characters
/// and no invisible format characters.
fn check_description(description: &str) -> Result<(), String> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!("must be at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    if description.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    if phoenix_api::text::has_invisible_format(description) {
        return Err(phoenix_api::text::INVISIBLE_FORMAT.to_owned());
    }
    Ok(())
}

impl Service {
    /// A booking's delivery log, if `principal` may see it: the booking's customer, members (agent, partner,
    /// operator) of its organization, support and admins. Anyone else gets `NotFound`, as for an unknown booking.
    pub async fn delivery_log(
        &self,
        principal: &Principal,
        booking_id: Uuid,
    ) -> Result<(Vec<Delivery>, Vec<Attempt>), Error> {
        let not_found = Error::NotFound { what: "booking" };
        let Some(booking) = self.inner.store.booking(booking_id).await? else {
            return Err(not_found);
        };
        let own = booking.customer_id == principal.user_id;
        let organization = principal.has_any(&[Role::Agent, Role::Partner, Role::Operator])
            && principal.organization_id.is_some()
            && booking.organization_id == principal.organization_id;
        if !(own || organization || principal.sees_everything()) {
            return Err(not_found);
        }
        let mut deliveries = self.inner.store.deliveries_of_booking(booking_id).await?;
        let mut attempts = self.inner.store.attempts_of_booking(booking_id).await?;
        // A webhook call goes to an organization's own endpoint, whose URL may carry its token: shown to that
        // organization and to staff, never to the customer.
        let everything = principal.sees_everything();
        deliveries.retain(|d| {
            d.channel != Channel::Webhook
                || everything
                || (organization && d.organization_id == principal.organization_id)
        });
        attempts.retain(|a| deliveries.iter().any(|d| d.id == a.delivery_id));
        Ok((deliveries, attempts))
    }

    /// Dead deliveries across bookings, newest first, with their attempts (support, admin: the caller checks the
    /// role): the queue support works through, replaying what can go again.
    pub async fn dead_deliveries(
        &self,
        channel: Option<Channel>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<(Vec<Delivery>, Vec<Attempt>), Error> {
        self.inner.store.dead_deliveries(channel, before, limit).await
    }

    /// Every attempt of a delivery, in order (support, admin: the caller checks the role).
    pub async fn attempts(&self, delivery_id: Uuid) -> Result<Vec<Attempt>, Error> {
        self.inner.store.attempts(delivery_id).await
    }

    /// Sends a delivery again (support, admin): a fresh round of attempts, the same webhook id. A webhook whose
    /// endpoint was deleted or disabled is refused here rather than queued only to be skipped.
    pub async fn replay(&self, id: Uuid) -> Result<Delivery, Error> {
        let delivery = self
            .inner
            .store
            .delivery(id)
            .await?
            .ok_or(Error::NotFound { what: "delivery" })?;
        if delivery.channel == Channel::Webhook {
            let endpoint = match delivery.endpoint_id {
                Some(endpoint_id) => self.inner.store.endpoint(endpoint_id).await?,
                None => None,
            };
            if let Some(reason) = why_unavailable(endpoint.as_ref()) {
                return Err(Error::EndpointUnavailable { reason });
            }
        }
        let now = Timestamp::now();
        let window = time::Duration::hours(i64::from(self.inner.options.retry_window_hours));
        if !self.inner.store.replay(id, now, now + window).await? {
            return match self.inner.store.delivery(id).await? {
                None => Err(Error::NotFound { what: "delivery" }),
                Some(delivery) => Err(Error::NotReplayable {
                    status: delivery.status.as_str(),
                }),
            };
        }
        self.inner
            .store
            .delivery(id)
            .await?
            .ok_or(Error::NotFound { what: "delivery" })
    }

    pub async fn preferences(&self, user_id: Uuid) -> Result<StoredPreferences, Error> {
        Ok(self
            .inner
            .store
            .preferences(user_id)
            .await?
            .unwrap_or_else(|| StoredPreferences {
                locale: self.inner.options.default_locale.clone(),
                opt_outs: Vec::new(),
            }))
    }

    pub async fn set_preferences(&self, user_id: Uuid, preferences: StoredPreferences) -> Result<(), Error> {
        if !LOCALES.contains(&preferences.locale.as_str()) {
            return Err(Error::invalid(
                "locale",
                format!("must be one of {}", LOCALES.join(", ")),
            ));
        }
        for (kind, channel) in &preferences.opt_outs {
            match Kind::parse(kind) {
                None => return Err(Error::invalid("opt_out", format!("unknown kind {kind}"))),
                Some(k) if k.is_transactional() => return Err(Error::Transactional { kind: kind.clone() }),
                Some(_) if *channel == Channel::Webhook => {
                    return Err(Error::invalid(
                        "opt_out",
                        "webhooks are not personal: delete the endpoint",
                    ));
                }
                Some(_) => {}
            }
        }
        let mut preferences = preferences;
        preferences
            .opt_outs
            .sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        preferences.opt_outs.dedup();
        self.inner.store.put_preferences(user_id, &preferences).await
    }

    /// Every template in effect: the admins' where they replaced one, else the built-in.
    pub async fn templates(
        &self,
    ) -> Result<Vec<(Kind, Channel, &'static str, Template, Option<StoredTemplate>)>, Error> {
        let stored = self.inner.store.templates().await?;
        let mut all = Vec::new();
        for kind in Kind::ALL {
            for channel in [Channel::Email, Channel::Sms] {
                for locale in LOCALES {
                    let custom = stored
                        .iter()
                        .find(|t| t.kind == kind.as_str() && t.channel == channel && t.locale == *locale)
                        .cloned();
                    let Some(builtin) = template::builtin(kind, channel, locale) else {
                        continue;
                    };
                    let effective = custom.as_ref().map_or(builtin, |c| c.template.clone());
                    all.push((kind, channel, *locale, effective, custom));
                }
            }
        }
        Ok(all)
    }

    /// Replaces a template after checking it renders with its kind's sample (a booking's notice, a reset link).
    pub async fn put_template(
        &self,
        principal: &Principal,
        kind: &str,
        channel: &str,
        locale: &str,
        template: Template,
    ) -> Result<(), Error> {
        let not_found = Error::NotFound { what: "template" };
        let kind = Kind::parse(kind).ok_or(Error::NotFound { what: "template" })?;
        let channel = Channel::parse(channel)
            .filter(|c| *c != Channel::Webhook)
            .ok_or(not_found)?;
        // Only what is sent has a template: no locale without built-ins, no password reset by SMS.
        if !LOCALES.contains(&locale) || template::builtin(kind, channel, locale).is_none() {
            return Err(Error::NotFound { what: "template" });
        }
        template
            .check_characters()
            .map_err(|(part, message)| Error::invalid(part, message))?;
        template
            .validate(kind, channel, locale)
            .map_err(|detail| Error::TemplateInvalid { detail })?;
        self.inner
            .store
            .put_template(&StoredTemplate {
                kind: kind.as_str().to_owned(),
                channel,
                locale: locale.to_owned(),
                template,
                updated_by: principal.user_id,
                updated_at: Timestamp::now(),
            })
            .await
    }

    /// Registers an endpoint for the principal's organization; returns it with its secret (shown once).
    pub async fn create_endpoint(
        &self,
        principal: &Principal,
        url: &str,
        event_types: Vec<String>,
        description: Option<String>,
    ) -> Result<Endpoint, Error> {
        let organization_id = principal.organization_id.ok_or(Error::NoOrganization)?;
        let url = webhook::parse_url(url, &webhook::Targets::of(&self.inner.options))
            .map_err(|message| Error::invalid("url", message))?;
        let event_types = parse_event_types(event_types).map_err(|message| Error::invalid("event_types", message))?;
        if let Some(description) = &description {
            check_description(description).map_err(|message| Error::invalid("description", message))?;
        }
        let secret = webhook::new_secret().map_err(|_| Error::Config {
            reason: "no randomness".to_owned(),
        })?;
        let endpoint = Endpoint {
            id: Uuid::now_v7(),
            organization_id,
            url: url.to_string(),
            event_types: sqlx::types::Json(event_types),
            description,
            secret,
            created_at: Timestamp::now(),
            disabled_at: None,
            disabled_reason: None,
        };
        if !self.inner.store.create_endpoint(&endpoint, principal.user_id).await? {
            return Err(Error::invalid(
                "url",
                "the organization has the most endpoints allowed (20)",
            ));
        }
        Ok(endpoint)
    }

    /// The organization's endpoints (every organization's for an admin without one).
    pub async fn endpoints(&self, principal: &Principal) -> Result<Vec<Endpoint>, Error> {
        match principal.organization_id {
            Some(organization_id) => self.inner.store.endpoints(Some(organization_id)).await,
            None if principal.has(Role::Admin) => self.inner.store.endpoints(None).await,
            None => Err(Error::NoOrganization),
        }
    }

    /// Deletes (disables) an endpoint of the principal's organization; another organization's is not found.
    pub async fn delete_endpoint(&self, principal: &Principal, id: Uuid) -> Result<(), Error> {
        let not_found = Error::NotFound {
            what: "webhook endpoint",
        };
        let Some(endpoint) = self.inner.store.endpoint(id).await? else {
            return Err(not_found);
        };
        let mine = Some(endpoint.organization_id) == principal.organization_id || principal.has(Role::Admin);
        if !mine || endpoint.disabled_at.is_some() {
            return Err(not_found);
        }
        self.inner
            .store
            .disable_endpoint(&endpoint, Disabled::Deleted, Some(principal.user_id))
            .await?;
        Ok(())
    }
}
