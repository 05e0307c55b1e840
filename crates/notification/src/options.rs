//! The service's settings. Every count and every wait is bounded; secrets never appear in `Debug`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Tuning and transports of the notification service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// SMTP server for email; `None` writes emails to the delivery log only (status `logged`).
    pub smtp: Option<SmtpOptions>,
    /// HTTP SMS provider; `None` sends no SMS.
    pub sms: Option<SmsOptions>,
    /// A booking's reminder is due this long before it starts (check-in or departure).
    pub reminder_lead_hours: u32,
    /// The locale of users without a preference (`en` or `de`).
    pub default_locale: String,
    /// Attempts of one delivery before it is dead.
    pub max_attempts: u32,
    /// Retries stop this long after a delivery first fell due, whatever `max_attempts` says.
    pub retry_window_hours: u32,
    /// First retry delay; doubles per attempt, with up to 25 % jitter, up to `backoff_max_ms`.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// How often the worker looks for due deliveries.
    pub poll_interval_ms: u64,
    /// Deliveries claimed per pass, and sent at once.
    pub batch_size: u32,
    pub max_concurrency: usize,
    /// Time limit of one send (SMTP conversation, SMS call, webhook call).
    pub send_timeout_ms: u64,
    /// How long a claim lasts: another replica may take a delivery whose claim ran out (its worker died).
    pub claim_secs: u64,
    /// Whether webhook endpoints may be on loopback, private, link-local or other non-public addresses. Off, an
    /// endpoint naming such an address is refused and one whose name resolves only to such addresses is not
    /// called, so a partner cannot make the platform call into its own network. On for a single host or a test.
    pub webhook_private_targets: bool,
    /// Non-public networks webhooks may call all the same (`["10.20.0.0/16"]`): a partner system inside the
    /// operator's network, without opening every private address.
    pub webhook_allowed_networks: Vec<ipnet::IpNet>,
    /// The page of the web site where a password is reset: the reset email links to it with the token in the URL's
    /// fragment (`#token=...`), which the page reads and posts to `/api/v1/auth/password-reset/confirm`.
    pub password_reset_url: String,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            smtp: None,
            sms: None,
            reminder_lead_hours: 24,
            default_locale: "en".to_owned(),
            max_attempts: 20,
            retry_window_hours: 24,
            backoff_base_ms: 30_000,
            backoff_max_ms: 2 * 3_600_000,
            poll_interval_ms: 1_000,
            batch_size: 50,
            max_concurrency: 8,
            send_timeout_ms: 10_000,
            claim_secs: 60,
            webhook_private_targets: false,
            webhook_allowed_networks: Vec::new(),
            password_reset_url: "http://localhost:8080/reset-password".to_owned(),
        }
    }
}

impl Options {
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                !(1..=1_000).contains(&self.max_attempts),
                "max_attempts must be 1 to 1000",
            ),
            (
                !(1..=720).contains(&self.retry_window_hours),
                "retry_window_hours must be 1 to 720",
            ),
            (
                self.reminder_lead_hours > 24 * 30,
                "reminder_lead_hours must be at most 720",
            ),
            (self.backoff_base_ms == 0, "backoff_base_ms must be positive"),
            (
                self.backoff_max_ms < self.backoff_base_ms,
                "backoff_max_ms must be at least backoff_base_ms",
            ),
            (self.poll_interval_ms == 0, "poll_interval_ms must be positive"),
            (!(1..=1_000).contains(&self.batch_size), "batch_size must be 1 to 1000"),
            (
                !(1..=256).contains(&self.max_concurrency),
                "max_concurrency must be 1 to 256",
            ),
            (
                !(100..=120_000).contains(&self.send_timeout_ms),
                "send_timeout_ms must be 100 to 120000",
            ),
            (
                self.claim_secs * 1_000 <= self.send_timeout_ms || self.claim_secs > 3_600,
                "claim_secs must exceed send_timeout_ms and be at most 3600",
            ),
            (
                !crate::template::LOCALES.contains(&self.default_locale.as_str()),
                "default_locale must be en or de",
            ),
        ];
        if let Some((_, message)) = checks.into_iter().find(|(bad, _)| *bad) {
            return Err(message.to_owned());
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate()?;
        }
        if let Some(sms) = &self.sms {
            sms.validate()?;
        }
        if self.webhook_allowed_networks.len() > 100 {
            return Err("webhook_allowed_networks may list at most 100 networks".to_owned());
        }
        self.password_reset_base()?;
        Ok(())
    }

    /// `password_reset_url`, which must be an absolute http(s) URL without a fragment (the token goes there).
    pub(crate) fn password_reset_base(&self) -> Result<url::Url, String> {
        match url::Url::parse(&self.password_reset_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.fragment().is_none() && url.has_host() => {
                Ok(url)
            }
            _ => Err("password_reset_url must be an http(s) URL without a fragment".to_owned()),
        }
    }

    pub(crate) fn send_timeout(&self) -> Duration {
        Duration::from_millis(self.send_timeout_ms)
    }

    /// The wait before attempt `attempt + 1`: exponential, capped, with up to 25 % random jitter so many failing
    /// deliveries do not retry together.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
            .min(self.backoff_max_ms);
        let jitter = (Uuid::new_v4().as_u128() % 1_000) as u64 * exponential / 4_000;
        Duration::from_millis(exponential + jitter)
    }
}

/// How email leaves: an SMTP relay.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpOptions {
    pub host: String,
    #[serde(default = "SmtpOptions::default_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The sender, `Phoenix <bookings@example.com>` or a bare address.
    pub from: String,
}

impl SmtpOptions {
    fn default_port() -> u16 {
        587
    }

    fn validate(&self) -> Result<(), String> {
        if self.host.trim().is_empty() {
            return Err("smtp.host must not be empty".to_owned());
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err("smtp.from must be an email address".to_owned());
        }
        if self.username.is_some() != self.password.is_some() {
            return Err("smtp.username and smtp.password go together".to_owned());
        }
        Ok(())
    }
}

/// The password is never shown.
impl std::fmt::Debug for SmtpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (a relay on loopback, or tests).
    None,
    /// Plain connection upgraded with STARTTLS, required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// An HTTP SMS provider: `POST {base_url}/messages` with `{"to", "body"}` and `Authorization: Bearer {api_key}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsOptions {
    pub base_url: String,
    pub api_key: String,
    /// Optional sender id passed as `from`.
    #[serde(default)]
    pub from: Option<String>,
}

impl SmsOptions {
    fn validate(&self) -> Result<(), String> {
        match url::Url::parse(&self.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err("sms.base_url must be an http(s) URL".to_owned()),
        }
        if self.api_key.is_empty() {
            return Err("sms.api_key must not be empty".to_owned());
        }
        Ok(())
    }
}

/// The API key is never shown.
impl std::fmt::Debug for SmsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsOptions")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("from", &self.from)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let options = Options::default();
        for (attempt, base_ms) in [(1, 30_000), (2, 60_000), (3, 120_000), (9, 7_200_000), (50, 7_200_000)] {
            for _ in 0..50 {
                let wait = options.backoff(attempt).as_millis() as u64;
                assert!(
                    (base_ms..=base_ms + base_ms / 4).contains(&wait),
                    "attempt {attempt}: {wait} ms"
                );
            }
        }
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let options = Options {
            smtp: Some(SmtpOptions {
                host: "smtp.example.com".to_owned(),
                port: 587,
                tls: SmtpTls::Starttls,
                username: Some("mailer".to_owned()),
                password: Some("hunter2-smtp".to_owned()),
                from: "bookings@example.com".to_owned(),
            }),
            sms: Some(SmsOptions {
                base_url: "https://sms.example.com".to_owned(),
                api_key: "sk_live_secret".to_owned(),
                from: None,
            }),
            ..Options::default()
        };
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2-smtp") && !shown.contains("sk_live_secret"),
            "{shown}"
        );
        assert_eq!(options.validate(), Ok(()));
    }

    #[test]
    fn the_defaults_are_valid_and_bad_settings_are_named() {
        assert_eq!(Options::default().validate(), Ok(()));
        let bad = Options {
            max_attempts: 0,
            ..Options::default()
        };
        assert!(bad.validate().unwrap_err().contains("max_attempts"));
        let bad = Options {
            default_locale: "xx".to_owned(),
            ..Options::default()
        };
        assert!(bad.validate().unwrap_err().contains("default_locale"));
        for url in [
            "",
            "reset-password",
            "ftp://example.com/reset",
            "https://example.com/reset#token=",
        ] {
            let bad = Options {
                password_reset_url: url.to_owned(),
                ..Options::default()
            };
            assert!(bad.validate().unwrap_err().contains("password_reset_url"), "{url:?}");
        }
    }
}
