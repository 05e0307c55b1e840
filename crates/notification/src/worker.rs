//! The delivery worker: claims due deliveries under a lease (so two replicas never send one at once), renders and
//! sends them, and records each attempt. A failure is retried with jittered exponential backoff until
//! `max_attempts` attempts or the delivery's retry window (`retry_window_hours` from when it fell due) runs out;
//! then the delivery is `dead`, listed in the log and replayable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use phoenix_db::Timestamp;

use crate::handler::Kind;
use crate::sender::{Failure, Sent};
use crate::store::{Channel, Delivery, Disabled, Status, Store, why_unavailable};
use crate::template::{self, Notice, ResetLink, ResetNotice, Template};
use crate::{Error, Service, webhook};

/// What one pass of [`Service::deliver_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    /// Delivered or logged.
    pub sent: usize,
    /// Failed, to be retried.
    pub retrying: usize,
    /// Failed for good.
    pub dead: usize,
    /// Not sent on purpose (opted out since, endpoint deleted).
    pub skipped: usize,
}

enum Outcome {
    Sent,
    Retrying,
    Dead,
    Skipped,
}

impl Service {
    /// Claims up to `batch_size` due deliveries and sends them, `max_concurrency` at a time. The worker calls it
    /// in a loop; tests call it directly.
    pub async fn deliver_due(&self) -> Result<Pass, Error> {
        let options = &self.inner.options;
        let now = Timestamp::now();
        let until = now + time::Duration::seconds(options.claim_secs as i64);
        let claimed = self
            .inner
            .store
            .claim_due(self.inner.owner, now, until, options.batch_size)
            .await?;
        let mut pass = Pass {
            claimed: claimed.len(),
            ..Pass::default()
        };
        let templates = Templates::default();
        let outcomes: Vec<Result<Outcome, Error>> = futures::stream::iter(claimed)
            .map(|delivery| self.deliver(delivery, &templates))
            .buffer_unordered(options.max_concurrency)
            .collect()
            .await;
        for outcome in outcomes {
            match outcome? {
                Outcome::Sent => pass.sent += 1,
                Outcome::Retrying => pass.retrying += 1,
                Outcome::Dead => pass.dead += 1,
                Outcome::Skipped => pass.skipped += 1,
            }
        }
        Ok(pass)
    }

    async fn deliver(&self, delivery: Delivery, templates: &Templates) -> Result<Outcome, Error> {
        let store = &self.inner.store;
        let now = Timestamp::now();
        if let Some(reason) = self.reason_to_skip(&delivery).await? {
            store.skip(delivery.id, self.inner.owner, reason, now).await?;
            count(&delivery, "skipped");
            return Ok(Outcome::Skipped);
        }
        let limit = self.inner.options.send_timeout() + Duration::from_secs(1);
        let result = match tokio::time::timeout(limit, self.send(&delivery, templates)).await {
            Ok(result) => result?,
            Err(_) => Err(Failure {
                error: "timed out".to_owned(),
                response_code: None,
                permanent: false,
                gone: false,
            }),
        };
        let now = Timestamp::now();
        let owner = self.inner.owner;
        match result {
            Ok(sent) => {
                store
                    .record_attempt(delivery.id, owner, sent.status, None, None, sent.response_code, now)
                    .await?;
                count(&delivery, sent.status.as_str());
                Ok(Outcome::Sent)
            }
            Err(failure) => {
                let attempts = delivery.attempts + 1;
                let next = now + time::Duration::try_from(self.inner.options.backoff(attempts)).unwrap_or_default();
                let dead =
                    failure.permanent || attempts >= self.inner.options.max_attempts || next > delivery.give_up_at;
                let status = if dead { Status::Dead } else { Status::Pending };
                let next = (!dead).then_some(next);
                store
                    .record_attempt(
                        delivery.id,
                        owner,
                        status,
                        next,
                        Some(&failure.error),
                        failure.response_code,
                        now,
                    )
                    .await?;
                tracing::warn!(delivery_id = %delivery.id, channel = delivery.channel.as_str(), attempts,
                    dead, error = %failure.error, "delivery failed");
                if failure.gone
                    && let Some(endpoint_id) = delivery.endpoint_id
                    && let Some(endpoint) = store.endpoint(endpoint_id).await?
                {
                    store.disable_endpoint(&endpoint, Disabled::Gone, None).await?;
                }
                count(&delivery, if dead { "dead" } else { "retry" });
                Ok(if dead { Outcome::Dead } else { Outcome::Retrying })
            }
        }
    }

    /// A reminder whose user opted out after it was scheduled, or a webhook whose endpoint was deleted or disabled.
    async fn reason_to_skip(&self, delivery: &Delivery) -> Result<Option<&'static str>, Error> {
        let store = &self.inner.store;
        match delivery.channel {
            Channel::Webhook => {
                let endpoint = match delivery.endpoint_id {
                    Some(id) => store.endpoint(id).await?,
                    None => None,
                };
                Ok(why_unavailable(endpoint.as_ref()))
            }
            Channel::Sms if !self.inner.senders.sms_enabled() => Ok(Some("no SMS provider is configured")),
            Channel::Email | Channel::Sms if delivery.kind == Kind::PasswordReset.as_str() => {
                // Retries stop at the expiry (`give_up_at`), but a replay or a late pass could still find one.
                let expired = serde_json::from_value::<ResetNotice>(delivery.payload.clone())
                    .is_ok_and(|notice| notice.expires_at <= time::OffsetDateTime::now_utc());
                Ok(expired.then_some("the reset link has expired"))
            }
            Channel::Email | Channel::Sms => {
                if delivery.kind != Kind::Reminder.as_str() {
                    return Ok(None);
                }
                let Some(customer_id) = delivery.customer_id else {
                    return Ok(None);
                };
                let preferences = store.preferences(customer_id).await?;
                Ok(preferences
                    .is_some_and(|p| p.opted_out(&delivery.kind, delivery.channel))
                    .then_some("the user opted out"))
            }
        }
    }

    async fn send(&self, delivery: &Delivery, templates: &Templates) -> Result<Result<Sent, Failure>, Error> {
        let senders = &self.inner.senders;
        if delivery.channel == Channel::Webhook {
            let Some(endpoint) = (match delivery.endpoint_id {
                Some(id) => self.inner.store.endpoint(id).await?,
                None => None,
            }) else {
                return Ok(Err(permanent("the endpoint was deleted")));
            };
            let body = serde_json::to_vec(&delivery.payload).unwrap_or_default();
            let id = webhook::message_id(delivery.id);
            let timestamp = Timestamp::now().unix_secs();
            return Ok(senders
                .webhook(&delivery.recipient, &endpoint.secret, &id, timestamp, body)
                .await);
        }
        let rendered = match self.render(delivery, templates).await? {
            Ok(rendered) => rendered,
            Err(error) => return Ok(Err(permanent(&error))),
        };
        Ok(match delivery.channel {
            Channel::Email => senders.email(&delivery.recipient, &rendered).await,
            _ => senders.sms(&delivery.recipient, &rendered.text).await,
        })
    }

    /// Renders a customer notice with the admins' template for its kind, channel and locale, or the built-in one.
    async fn render(
        &self,
        delivery: &Delivery,
        templates: &Templates,
    ) -> Result<Result<template::Rendered, String>, Error> {
        let Some(kind) = Kind::parse(&delivery.kind) else {
            return Ok(Err(format!("unknown notification kind {}", delivery.kind)));
        };
        let stored = templates
            .get(&self.inner.store, kind, delivery.channel, &delivery.locale)
            .await?;
        let Some(template) = stored.or_else(|| template::builtin(kind, delivery.channel, &delivery.locale)) else {
            return Ok(Err("no template".to_owned()));
        };
        if kind == Kind::PasswordReset {
            return Ok(self.render_reset(delivery, &template));
        }
        let notice: Notice = match serde_json::from_value(delivery.payload.clone()) {
            Ok(notice) => notice,
            Err(e) => return Ok(Err(format!("stored notice is not valid: {e}"))),
        };
        Ok(template.render(&notice, delivery.channel, &delivery.locale))
    }

    /// A password reset email: its token opened from the sealed form it is stored in, for this render only, and put
    /// in a link to `password_reset_url`. The rendered email is sent and dropped, never stored or logged.
    fn render_reset(&self, delivery: &Delivery, template: &Template) -> Result<template::Rendered, String> {
        let notice: ResetNotice = serde_json::from_value(delivery.payload.clone())
            .map_err(|e| format!("stored reset notice is not valid: {e}"))?;
        let token = self
            .inner
            .store
            .open_reset_token(notice.user_id, &notice.sealed_token)
            .map_err(|e| {
                format!("the reset token does not open (identity and notification need the same secrets_key): {e}")
            })?;
        let base = self.inner.options.password_reset_base()?;
        let now = time::OffsetDateTime::now_utc();
        let link = ResetLink::new(&notice.name, &base, &token, notice.expires_at, now);
        template.render_reset(&link, delivery.channel, &delivery.locale)
    }
}

/// The admins' templates a pass has looked up: each kind, channel and locale is read once a pass, so an edited
/// template applies from the next pass on. The lock is held over a read, so the pass's first look-ups of different
/// templates take turns (a pass needs a handful).
#[derive(Default)]
struct Templates(tokio::sync::Mutex<HashMap<(Kind, Channel, String), Option<Template>>>);

impl Templates {
    async fn get(&self, store: &Store, kind: Kind, channel: Channel, locale: &str) -> Result<Option<Template>, Error> {
        let mut known = self.0.lock().await;
        let key = (kind, channel, locale.to_owned());
        if let Some(template) = known.get(&key) {
            return Ok(template.clone());
        }
        let stored = store.template(kind.as_str(), channel, locale).await?;
        known.insert(key, stored.clone());
        Ok(stored)
    }
}

fn permanent(error: &str) -> Failure {
    Failure {
        error: error.to_owned(),
        response_code: None,
        permanent: true,
        gone: false,
    }
}

fn count(delivery: &Delivery, outcome: &'static str) {
    metrics::counter!("phoenix_notifications_total", "channel" => delivery.channel.as_str(), "outcome" => outcome)
        .increment(1);
}

/// Runs the worker until the last clone of the service is dropped: a pass every `poll_interval_ms`, and at once
/// again while passes come back full.
pub(crate) fn spawn(service: &Service) {
    let weak = Arc::downgrade(&service.inner);
    let every = Duration::from_millis(service.inner.options.poll_interval_ms);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { break };
            let service = Service { inner };
            loop {
                match service.deliver_due().await {
                    Ok(pass) if pass.claimed as u32 >= service.inner.options.batch_size => continue,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::warn!(error = %phoenix_api::ErrorChain(&error), "delivering notifications failed");
                        break;
                    }
                }
            }
        }
    });
}
