//! What notification tells everyone else: who changed where an organization's webhooks go, and the templates
//! customers read. Each event is written to notification's outbox in the transaction of its change; the audit log
//! reads them (domain `notification`), so redirecting an organization's booking data to a new URL, or rewording
//! what customers are sent, is on the record with who did it.
//!
//! Never in these events: a webhook's secret, nor its URL beyond the host (a receiver's path or query often carries
//! its own token).

use phoenix_db::Event;
use serde_json::json;
use uuid::Uuid;

use crate::Error;
use crate::store::{Channel, Endpoint};

/// The `source` of notification's events.
pub const SOURCE: &str = "phoenix.notification";

pub const ENDPOINT_CREATED: &str = "notification.webhook_endpoint_created.v1";
pub const ENDPOINT_DISABLED: &str = "notification.webhook_endpoint_disabled.v1";
pub const TEMPLATE_CHANGED: &str = "notification.template_changed.v1";

/// An endpoint registered by `created_by`.
pub fn endpoint_created(endpoint: &Endpoint, created_by: Uuid) -> Result<Event, Error> {
    let data = json!({
        "endpoint_id": endpoint.id,
        "organization_id": endpoint.organization_id,
        "url_host": host_of(&endpoint.url),
        "event_types": endpoint.event_types.0,
        "created_by": created_by,
    });
    Ok(Event::new(SOURCE, ENDPOINT_CREATED, endpoint.id.to_string(), &data)?)
}

/// An endpoint no longer called: deleted by `actor_id`, or turned off by the receiver (`actor_id` none).
pub fn endpoint_disabled(endpoint: &Endpoint, reason: &str, actor_id: Option<Uuid>) -> Result<Event, Error> {
    let data = json!({
        "endpoint_id": endpoint.id,
        "organization_id": endpoint.organization_id,
        "url_host": host_of(&endpoint.url),
        "reason": reason,
        "actor_id": actor_id,
    });
    Ok(Event::new(SOURCE, ENDPOINT_DISABLED, endpoint.id.to_string(), &data)?)
}

/// A template replaced by `changed_by`. The text itself stays in notification's database.
pub fn template_changed(kind: &str, channel: Channel, locale: &str, changed_by: Uuid) -> Result<Event, Error> {
    let data = json!({
        "kind": kind,
        "channel": channel.as_str(),
        "locale": locale,
        "changed_by": changed_by,
    });
    let subject = format!("{kind}/{}/{locale}", channel.as_str());
    Ok(Event::new(SOURCE, TEMPLATE_CHANGED, subject, &data)?)
}

/// The host of a URL the service accepted (it parsed it on the way in); empty if it somehow does not parse.
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn only_the_host_of_a_url_is_told() {
        assert_eq!(
            host_of("https://hooks.example.com:8443/in/T0K3N?sig=abc"),
            "hooks.example.com"
        );
        assert_eq!(host_of("not a url"), "");
    }
}
