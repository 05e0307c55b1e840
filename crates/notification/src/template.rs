//! Templates: what each notification says, per kind, channel and locale. Built-in defaults in English and German
//! for every kind and channel; admins may replace any of them (stored in `templates`), and a replacement must
//! render with a sample notice before it is saved.
//!
//! Templates are MiniJinja with strict undefined variables (a typo is refused at save time, not at send time),
//! HTML auto-escaping in HTML bodies, and fuel (a bounded amount of work per render). A booking's notices see the
//! values of [`Context`] (amounts already formatted as money and dates as dates in the message's locale); a
//! password reset email sees those of [`ResetContext`] (the link, and until when it works).

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::handler::Kind;
use crate::store::Channel;

/// The locales with built-in templates.
pub const LOCALES: &[&str] = &["en", "de"];

/// The longest SMS body sent (four concatenated segments); longer renders are cut.
pub const MAX_SMS_CHARS: usize = 612;

/// Work one render may do (MiniJinja fuel): admins' templates cannot loop for ever.
const FUEL: u64 = 100_000;

/// What a customer notice is about: the part of an event the templates need, stored with each delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub booking_id: Uuid,
    pub locator: String,
    pub currency: String,
    pub total_minor: i64,
    pub refunded_minor: i64,
    /// The amount of this refund: a refund notice's, or what a cancellation itself refunded.
    #[serde(default)]
    pub amount_minor: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
}

impl Notice {
    /// What a template is tried with before it is saved.
    pub fn sample() -> Notice {
        Notice {
            booking_id: Uuid::nil(),
            locator: "ABC123".to_owned(),
            currency: "EUR".to_owned(),
            total_minor: 123_450,
            refunded_minor: 23_450,
            amount_minor: Some(23_450),
            starts_at: time::macros::datetime!(2026-12-24 15:00 UTC),
            ends_at: time::macros::datetime!(2026-12-27 11:00 UTC),
        }
    }
}

/// What a password reset email is made from, stored with its delivery. The token stays as identity sealed it
/// until the email is rendered to be sent ([`crate::store::Store::open_reset_token`]), so neither the database nor
/// the delivery log holds it in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetNotice {
    pub user_id: Uuid,
    /// The account's name, to greet.
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub sealed_token: String,
}

/// The token of [`ResetLink::sample`].
const SAMPLE_TOKEN: &str = "sample-token";
/// A second token of the same length: a part that renders differently with it depends on the token.
const OTHER_SAMPLE_TOKEN: &str = "tokens-other";

/// A password reset email about to be rendered: the link carries the opened token. Not `Debug`, not stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetLink {
    pub name: String,
    /// `password_reset_url` with `#token=<token>`.
    pub reset_url: String,
    pub expires_at: OffsetDateTime,
    /// Whole minutes the link still works, rounded up.
    pub valid_minutes: i64,
}

impl ResetLink {
    /// The link to `base` (the `password_reset_url` option) for `token`, in the URL's fragment: a browser sends
    /// neither the fragment to the server nor in a `Referer`, so the token stays out of web servers' logs.
    pub fn new(name: &str, base: &url::Url, token: &str, expires_at: OffsetDateTime, now: OffsetDateTime) -> ResetLink {
        let mut url = base.clone();
        url.set_fragment(Some(&format!("token={token}")));
        let left = (expires_at - now).whole_seconds().max(0);
        ResetLink {
            name: name.to_owned(),
            reset_url: url.to_string(),
            expires_at,
            valid_minutes: (left + 59) / 60,
        }
    }

    /// What a template is tried with before it is saved.
    pub fn sample() -> ResetLink {
        ResetLink::sample_with(SAMPLE_TOKEN)
    }

    fn sample_with(token: &str) -> ResetLink {
        ResetLink {
            name: "Ann Lee".to_owned(),
            reset_url: format!("https://example.com/reset-password#token={token}"),
            expires_at: time::macros::datetime!(2026-12-24 15:30 UTC),
            valid_minutes: 30,
        }
    }
}

/// The variables a password reset template sees.
#[derive(Debug, Clone, Serialize)]
pub struct ResetContext {
    pub name: String,
    /// The link to set a new password (it holds the token: it works once).
    pub reset_url: String,
    /// Until when the link works, as a date-time (with `UTC`).
    pub expires_at: String,
    /// Whole minutes the link still works when the email is sent.
    pub valid_minutes: i64,
}

impl ResetContext {
    pub fn new(link: &ResetLink, locale: &str) -> ResetContext {
        ResetContext {
            name: link.name.clone(),
            reset_url: link.reset_url.clone(),
            expires_at: date_time(link.expires_at, locale),
            valid_minutes: link.valid_minutes,
        }
    }
}

/// The variables a template sees.
#[derive(Debug, Clone, Serialize)]
pub struct Context {
    pub locator: String,
    pub booking_id: String,
    pub currency: String,
    /// The booking's total, as money (`EUR 1,234.50`, `1.234,50 EUR`).
    pub total: String,
    /// Refunded so far, as money.
    pub refunded: String,
    /// This refund's amount (a refund's, or a cancellation's own), as money; the refunded total when the event
    /// does not say.
    pub amount: String,
    /// Whether this refund (or, when the event does not say, anything) returned money.
    pub has_refund: bool,
    /// Dates (`24 Dec 2026`, `24.12.2026`) and date-times (with `UTC`).
    pub starts_on: String,
    pub starts_at: String,
    pub ends_on: String,
    pub ends_at: String,
}

impl Context {
    pub fn new(notice: &Notice, locale: &str) -> Context {
        Context {
            locator: notice.locator.clone(),
            booking_id: notice.booking_id.to_string(),
            currency: notice.currency.clone(),
            total: money(notice.total_minor, &notice.currency, locale),
            refunded: money(notice.refunded_minor, &notice.currency, locale),
            amount: money(
                notice.amount_minor.unwrap_or(notice.refunded_minor),
                &notice.currency,
                locale,
            ),
            has_refund: notice.amount_minor.unwrap_or(notice.refunded_minor) > 0,
            starts_on: date(notice.starts_at, locale),
            starts_at: date_time(notice.starts_at, locale),
            ends_on: date(notice.ends_at, locale),
            ends_at: date_time(notice.ends_at, locale),
        }
    }
}

/// A context as template variables (strings, flags and whole numbers).
fn variables(context: &impl Serialize) -> minijinja::Value {
    let json = serde_json::to_value(context).unwrap_or_default();
    let pairs = json.as_object().into_iter().flatten().map(|(name, value)| {
        let value = match value {
            serde_json::Value::Bool(b) => minijinja::Value::from(*b),
            serde_json::Value::String(s) => minijinja::Value::from(s.clone()),
            serde_json::Value::Number(n) if n.is_i64() => minijinja::Value::from(n.as_i64().unwrap_or_default()),
            other => minijinja::Value::from(other.to_string()),
        };
        (name.clone(), value)
    });
    minijinja::Value::from_pairs(pairs.collect::<Vec<_>>())
}

/// One template: the email's three parts, or an SMS's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub text: String,
    pub html: Option<String>,
}

impl Template {
    /// Checks the parts the channel needs are there, and that every part renders with the kind's sample (a
    /// booking's notice, or a reset link).
    pub fn validate(&self, kind: Kind, channel: Channel, locale: &str) -> Result<(), String> {
        match channel {
            Channel::Email if self.subject.is_none() || self.html.is_none() => {
                return Err("an email template needs subject, text and html".to_owned());
            }
            Channel::Sms if self.subject.is_some() || self.html.is_some() => {
                return Err("an SMS template has text only".to_owned());
            }
            Channel::Webhook => return Err("webhooks send the event itself and have no template".to_owned()),
            _ => {}
        }
        let parts = [("subject", self.subject.as_deref()), ("text", Some(self.text.as_str()))];
        if let Some((part, _)) = parts.iter().find(|(_, p)| p.is_some_and(|p| p.trim().is_empty())) {
            return Err(format!("{part} must not be empty"));
        }
        let limits = [
            ("subject", self.subject.as_deref(), 500),
            ("text", Some(self.text.as_str()), 20_000),
        ];
        for (part, source, max) in limits.into_iter().chain([("html", self.html.as_deref(), 100_000)]) {
            if source.is_some_and(|s| s.len() > max) {
                return Err(format!("{part} is longer than {max} bytes"));
            }
        }
        if kind != Kind::PasswordReset {
            return self.render(&Notice::sample(), channel, locale).map(|_| ());
        }
        let rendered = self.render_reset(&ResetLink::sample(), channel, locale)?;
        // The subject is logged when no SMTP server is configured, and shown in every list of mails: the token goes
        // in the body only. Not only the link as such: a subject that renders differently for another token (the
        // link reversed, sliced, upper-cased) carries some of it.
        let other = self.render_reset(&ResetLink::sample_with(OTHER_SAMPLE_TOKEN), channel, locale)?;
        if rendered.subject.as_deref().is_some_and(|s| s.contains(SAMPLE_TOKEN)) || rendered.subject != other.subject {
            return Err("subject must not contain the reset link".to_owned());
        }
        // The text part is what every mail reader shows: without the link the email is of no use.
        if !rendered.text.contains(SAMPLE_TOKEN) {
            return Err("text must contain the reset link ({{ reset_url }})".to_owned());
        }
        Ok(())
    }

    /// Refuses control characters where they do not belong, naming the part: any in the subject, which becomes one
    /// header line (a CR/LF there would start another header: `Bcc:`), and any but line breaks and tabs in the
    /// bodies.
    pub fn check_characters(&self) -> Result<(), (&'static str, &'static str)> {
        if self.subject.as_deref().is_some_and(|s| s.chars().any(char::is_control)) {
            return Err(("subject", "must be one line without control characters"));
        }
        let in_body = |c: char| !c.is_control() || matches!(c, '\n' | '\r' | '\t');
        let bodies = [("text", Some(self.text.as_str())), ("html", self.html.as_deref())];
        match bodies
            .into_iter()
            .find(|(_, body)| body.is_some_and(|b| !b.chars().all(in_body)))
        {
            Some((part, _)) => Err((
                part,
                "must not contain control characters other than line breaks and tabs",
            )),
            None => Ok(()),
        }
    }

    /// Renders every part for a booking's `notice` in `locale`.
    pub fn render(&self, notice: &Notice, channel: Channel, locale: &str) -> Result<Rendered, String> {
        self.render_with(variables(&Context::new(notice, locale)), channel)
    }

    /// Renders every part of a password reset email for `link` in `locale`.
    pub fn render_reset(&self, link: &ResetLink, channel: Channel, locale: &str) -> Result<Rendered, String> {
        self.render_with(variables(&ResetContext::new(link, locale)), channel)
    }

    fn render_with(&self, context: minijinja::Value, channel: Channel) -> Result<Rendered, String> {
        let env = environment();
        let part = |name: &str, source: &str| {
            env.render_named_str(name, source, context.clone())
                .map_err(|e| describe(name, &e))
        };
        let subject = match &self.subject {
            // One line: a template's stray newline must not become a header continuation.
            Some(source) => Some(
                part("subject.txt", source)?
                    .replace(['\r', '\n'], " ")
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let mut text = part("text.txt", &self.text)?;
        if channel == Channel::Sms {
            text = text.trim().chars().take(MAX_SMS_CHARS).collect();
        }
        let html = match &self.html {
            Some(source) => Some(part("body.html", source)?),
            None => None,
        };
        Ok(Rendered { subject, text, html })
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // The default callback escapes names ending in `.html`: the HTML body only.
    env
}

fn describe(part: &str, error: &minijinja::Error) -> String {
    let part = part.split('.').next().unwrap_or(part);
    match error.line() {
        Some(line) => format!("{part}, line {line}: {}", error.kind()),
        None => format!("{part}: {}", error.kind()),
    }
    .trim()
    .to_owned()
        + &error.detail().map(|d| format!(" ({d})")).unwrap_or_default()
}

/// Decimal digits of the minor unit of an ISO 4217 currency.
fn exponent(currency: &str) -> u32 {
    // Events only carry currencies the platform accepts; two decimals is the safe reading of anything else.
    phoenix_api::currency::exponent(currency).unwrap_or(2)
}

/// An amount as money in `locale`: `EUR 1,234.50` (en), `1.234,50 EUR` (de).
pub fn money(amount_minor: i64, currency: &str, locale: &str) -> String {
    let exp = exponent(currency);
    let scale = 10u64.pow(exp);
    let sign = if amount_minor < 0 { "-" } else { "" };
    let abs = amount_minor.unsigned_abs();
    let (major, minor) = (abs / scale, abs % scale);
    let (group, decimal) = if locale == "de" { ('.', ',') } else { (',', '.') };
    let digits = major.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(c);
    }
    let number = if exp == 0 {
        grouped
    } else {
        format!("{grouped}{decimal}{minor:0width$}", width = exp as usize)
    };
    if locale == "de" {
        format!("{sign}{number} {currency}")
    } else {
        format!("{sign}{currency} {number}")
    }
}

const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A date in `locale` (UTC: the events carry instants, not the place's zone).
pub fn date(at: OffsetDateTime, locale: &str) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    if locale == "de" {
        format!("{:02}.{:02}.{}", at.day(), u8::from(at.month()), at.year())
    } else {
        format!(
            "{} {} {}",
            at.day(),
            MONTHS_EN[usize::from(u8::from(at.month())) - 1],
            at.year()
        )
    }
}

pub fn date_time(at: OffsetDateTime, locale: &str) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", date(at, locale), at.hour(), at.minute())
}

/// The built-in template of a kind, channel and locale (English when the locale has none); none for a password
/// reset by SMS, which is not sent.
pub fn builtin(kind: Kind, channel: Channel, locale: &str) -> Option<Template> {
    let de = locale == "de";
    if kind == Kind::PasswordReset {
        return (channel == Channel::Email).then(|| reset_email(de));
    }
    let (subject, text, html) = match (kind, de) {
        (Kind::Confirmed, false) => (
            "Your booking {{ locator }} is confirmed",
            "Your booking {{ locator }} is confirmed.\n\nFrom {{ starts_at }} to {{ ends_at }}.\nTotal paid: {{ total }}.\n\nThank you for booking with us.",
            "Your booking <strong>{{ locator }}</strong> is confirmed.</p><p>From {{ starts_at }} to {{ ends_at }}.<br>Total paid: {{ total }}.</p><p>Thank you for booking with us.",
        ),
        (Kind::Confirmed, true) => (
            "Ihre Buchung {{ locator }} ist bestätigt",
            "Ihre Buchung {{ locator }} ist bestätigt.\n\nVom {{ starts_at }} bis {{ ends_at }}.\nGezahlt: {{ total }}.\n\nVielen Dank für Ihre Buchung.",
            "Ihre Buchung <strong>{{ locator }}</strong> ist bestätigt.</p><p>Vom {{ starts_at }} bis {{ ends_at }}.<br>Gezahlt: {{ total }}.</p><p>Vielen Dank für Ihre Buchung.",
        ),
        (Kind::Cancelled, false) => (
            "Your booking {{ locator }} is cancelled",
            "Your booking {{ locator }} ({{ starts_on }} to {{ ends_on }}) is cancelled.\n{% if has_refund %}We refund {{ amount }} to your original payment method.{% if amount != refunded %} Refunded in total: {{ refunded }}.{% endif %}{% else %}No refund is due under the booking's terms.{% endif %}",
            "Your booking <strong>{{ locator }}</strong> ({{ starts_on }} to {{ ends_on }}) is cancelled.</p><p>{% if has_refund %}We refund {{ amount }} to your original payment method.{% if amount != refunded %} Refunded in total: {{ refunded }}.{% endif %}{% else %}No refund is due under the booking's terms.{% endif %}",
        ),
        (Kind::Cancelled, true) => (
            "Ihre Buchung {{ locator }} ist storniert",
            "Ihre Buchung {{ locator }} ({{ starts_on }} bis {{ ends_on }}) ist storniert.\n{% if has_refund %}Wir erstatten {{ amount }} auf Ihr ursprüngliches Zahlungsmittel.{% if amount != refunded %} Insgesamt erstattet: {{ refunded }}.{% endif %}{% else %}Nach den Buchungsbedingungen erfolgt keine Erstattung.{% endif %}",
            "Ihre Buchung <strong>{{ locator }}</strong> ({{ starts_on }} bis {{ ends_on }}) ist storniert.</p><p>{% if has_refund %}Wir erstatten {{ amount }} auf Ihr ursprüngliches Zahlungsmittel.{% if amount != refunded %} Insgesamt erstattet: {{ refunded }}.{% endif %}{% else %}Nach den Buchungsbedingungen erfolgt keine Erstattung.{% endif %}",
        ),
        (Kind::Failed, false) => (
            "We could not complete your booking {{ locator }}",
            "We could not complete your booking {{ locator }} for {{ starts_on }}. Nothing has been charged.",
            "We could not complete your booking <strong>{{ locator }}</strong> for {{ starts_on }}.</p><p>Nothing has been charged.",
        ),
        (Kind::Failed, true) => (
            "Ihre Buchung {{ locator }} konnte nicht abgeschlossen werden",
            "Ihre Buchung {{ locator }} für den {{ starts_on }} konnte nicht abgeschlossen werden. Es wurde nichts berechnet.",
            "Ihre Buchung <strong>{{ locator }}</strong> für den {{ starts_on }} konnte nicht abgeschlossen werden.</p><p>Es wurde nichts berechnet.",
        ),
        (Kind::Refunded, false) => (
            "Refund of {{ amount }} for booking {{ locator }}",
            "We have refunded {{ amount }} for your booking {{ locator }}. Refunded in total: {{ refunded }}.",
            "We have refunded <strong>{{ amount }}</strong> for your booking {{ locator }}.</p><p>Refunded in total: {{ refunded }}.",
        ),
        (Kind::Refunded, true) => (
            "Erstattung von {{ amount }} für Buchung {{ locator }}",
            "Wir haben {{ amount }} für Ihre Buchung {{ locator }} erstattet. Insgesamt erstattet: {{ refunded }}.",
            "Wir haben <strong>{{ amount }}</strong> für Ihre Buchung {{ locator }} erstattet.</p><p>Insgesamt erstattet: {{ refunded }}.",
        ),
        (Kind::Reminder, false) => (
            "Reminder: booking {{ locator }} starts {{ starts_on }}",
            "A reminder: your booking {{ locator }} starts {{ starts_at }} and ends {{ ends_at }}. Have a good trip!",
            "A reminder: your booking <strong>{{ locator }}</strong> starts {{ starts_at }} and ends {{ ends_at }}.</p><p>Have a good trip!",
        ),
        (Kind::Reminder, true) => (
            "Erinnerung: Buchung {{ locator }} beginnt am {{ starts_on }}",
            "Zur Erinnerung: Ihre Buchung {{ locator }} beginnt am {{ starts_at }} und endet am {{ ends_at }}. Gute Reise!",
            "Zur Erinnerung: Ihre Buchung <strong>{{ locator }}</strong> beginnt am {{ starts_at }} und endet am {{ ends_at }}.</p><p>Gute Reise!",
        ),
        (Kind::PasswordReset, _) => return None,
    };
    match channel {
        Channel::Email => Some(Template {
            subject: Some(subject.to_owned()),
            text: text.to_owned(),
            html: Some(format!("<!doctype html>\n<html><body><p>{html}</p></body></html>\n")),
        }),
        // An SMS says what the subject says, and the dates.
        Channel::Sms => Some(Template {
            subject: None,
            text: format!(
                "{subject}. {}",
                if de {
                    "Beginn: {{ starts_at }}"
                } else {
                    "Starts {{ starts_at }}"
                }
            ),
            html: None,
        }),
        Channel::Webhook => None,
    }
}

/// The built-in password reset email.
fn reset_email(de: bool) -> Template {
    let (subject, text, html) = if de {
        (
            "Ihr Passwort zurücksetzen",
            "Hallo {{ name }},\n\njemand (hoffentlich Sie) möchte das Passwort Ihres Kontos zurücksetzen. Ein neues wählen Sie hier:\n\n{{ reset_url }}\n\nDer Link gilt einmal und noch {{ valid_minutes }} Minuten (bis {{ expires_at }}). Wenn Sie das nicht waren, ignorieren Sie diese E-Mail: Ihr Passwort bleibt, wie es ist.",
            "Hallo {{ name }},</p><p>jemand (hoffentlich Sie) möchte das Passwort Ihres Kontos zurücksetzen.</p><p><a href=\"{{ reset_url }}\">Neues Passwort wählen</a></p><p>Der Link gilt einmal und noch {{ valid_minutes }} Minuten (bis {{ expires_at }}). Wenn Sie das nicht waren, ignorieren Sie diese E-Mail: Ihr Passwort bleibt, wie es ist.",
        )
    } else {
        (
            "Reset your password",
            "Hello {{ name }},\n\nsomeone (we hope you) asked to reset the password of your account. Choose a new one here:\n\n{{ reset_url }}\n\nThe link works once, for {{ valid_minutes }} minutes (until {{ expires_at }}). If it was not you, ignore this email: your password stays as it is.",
            "Hello {{ name }},</p><p>someone (we hope you) asked to reset the password of your account.</p><p><a href=\"{{ reset_url }}\">Choose a new password</a></p><p>The link works once, for {{ valid_minutes }} minutes (until {{ expires_at }}). If it was not you, ignore this email: your password stays as it is.",
        )
    };
    Template {
        subject: Some(subject.to_owned()),
        text: text.to_owned(),
        html: Some(format!("<!doctype html>\n<html><body><p>{html}</p></body></html>\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_formatted_per_locale_and_currency() {
        let cases = [
            (123_450, "EUR", "en", "EUR 1,234.50"),
            (123_450, "EUR", "de", "1.234,50 EUR"),
            (5, "USD", "en", "USD 0.05"),
            (1_000_000, "JPY", "en", "JPY 1,000,000"),
            (1_234, "KWD", "de", "1,234 KWD"),
            (-2_500, "GBP", "en", "-GBP 25.00"),
            (99_999_999, "EUR", "en", "EUR 999,999.99"),
        ];
        for (minor, currency, locale, expected) in cases {
            assert_eq!(money(minor, currency, locale), expected, "{minor} {currency} {locale}");
        }
    }

    #[test]
    fn dates_are_formatted_per_locale() {
        let at = time::macros::datetime!(2026-03-05 07:30 UTC);
        assert_eq!(date(at, "en"), "5 Mar 2026");
        assert_eq!(date(at, "de"), "05.03.2026");
        assert_eq!(date_time(at, "de"), "05.03.2026 07:30 UTC");
    }

    #[test]
    fn every_builtin_renders_in_both_locales() {
        for kind in Kind::ALL {
            for channel in [Channel::Email, Channel::Sms] {
                for locale in LOCALES {
                    let Some(template) = builtin(kind, channel, locale) else {
                        assert_eq!((kind, channel), (Kind::PasswordReset, Channel::Sms), "{locale}");
                        continue;
                    };
                    assert_eq!(
                        template.validate(kind, channel, locale),
                        Ok(()),
                        "{kind:?} {channel:?} {locale}"
                    );
                    let (rendered, expected) = match kind {
                        Kind::PasswordReset => (
                            template.render_reset(&ResetLink::sample(), channel, locale),
                            "https://example.com/reset-password#token=sample-token",
                        ),
                        _ => (template.render(&Notice::sample(), channel, locale), "ABC123"),
                    };
                    let rendered = rendered.expect("render");
                    assert!(
                        rendered.text.contains(expected),
                        "{kind:?} {channel:?} {locale}: {}",
                        rendered.text
                    );
                }
            }
        }
    }

    #[test]
    fn the_reset_link_carries_the_token_in_its_fragment() {
        let base = url::Url::parse("https://travel.example.com/account/reset?lang=de").expect("url");
        let expires_at = time::macros::datetime!(2026-12-24 15:30 UTC);
        let now = expires_at - time::Duration::seconds(29 * 60 + 1);
        let link = ResetLink::new("Ann", &base, "AbC-_09", expires_at, now);
        assert_eq!(
            link.reset_url,
            "https://travel.example.com/account/reset?lang=de#token=AbC-_09"
        );
        assert_eq!(link.valid_minutes, 30, "rounded up");
        let rendered = builtin(Kind::PasswordReset, Channel::Email, "en")
            .expect("builtin")
            .render_reset(&link, Channel::Email, "en")
            .expect("render");
        assert_eq!(rendered.subject.as_deref(), Some("Reset your password"));
        assert!(
            rendered.text.contains("for 30 minutes (until 24 Dec 2026 15:30 UTC)"),
            "{}",
            rendered.text
        );
        // Escaped as any value in HTML (`/` too), which a browser reads back as the link.
        let html = rendered.html.expect("html").replace("&#x2f;", "/");
        assert!(
            html.contains("<a href=\"https://travel.example.com/account/reset?lang=de#token=AbC-_09\">"),
            "{html}"
        );
    }

    #[test]
    fn a_reset_template_sees_the_link_and_not_a_booking() {
        let template = Template {
            subject: Some("Reset for {{ name }}".to_owned()),
            text: "{{ reset_url }}".to_owned(),
            html: Some("<a href=\"{{ reset_url }}\">{{ valid_minutes }}</a>".to_owned()),
        };
        assert_eq!(template.validate(Kind::PasswordReset, Channel::Email, "de"), Ok(()));
        assert!(template.validate(Kind::Confirmed, Channel::Email, "de").is_err());
        let booking = Template {
            text: "{{ locator }}".to_owned(),
            ..template
        };
        assert!(booking.validate(Kind::PasswordReset, Channel::Email, "en").is_err());
        let leaky = Template {
            subject: Some("Reset at {{ reset_url }}".to_owned()),
            text: "{{ reset_url }}".to_owned(),
            html: Some("<p>{{ name }}</p>".to_owned()),
        };
        assert_eq!(
            leaky.validate(Kind::PasswordReset, Channel::Email, "en"),
            Err("subject must not contain the reset link".to_owned())
        );
        // Nor any of it, however transformed; what is the same for every token (its length) is no secret.
        for subject in [
            "s {{ reset_url|reverse }}",
            "s {{ reset_url|upper }}",
            "s {{ reset_url[-12:-1] }}",
            "{% if 'sample' in reset_url %}a{% endif %}",
        ] {
            let leaky = Template {
                subject: Some(subject.to_owned()),
                ..leaky.clone()
            };
            assert_eq!(
                leaky.validate(Kind::PasswordReset, Channel::Email, "en"),
                Err("subject must not contain the reset link".to_owned()),
                "{subject}"
            );
        }
        let measured = Template {
            subject: Some("{{ reset_url|length }} characters".to_owned()),
            ..leaky.clone()
        };
        assert_eq!(measured.validate(Kind::PasswordReset, Channel::Email, "en"), Ok(()));
        let useless = Template {
            subject: Some("Reset your password".to_owned()),
            text: "Hello {{ name }}".to_owned(),
            html: Some("<a href=\"{{ reset_url }}\">reset</a>".to_owned()),
        };
        assert!(useless.validate(Kind::PasswordReset, Channel::Email, "en").is_err());
    }

    #[test]
    fn a_cancellation_states_what_it_refunded_itself() {
        let email = |refunded_minor, amount_minor, locale| {
            let notice = Notice {
                refunded_minor,
                amount_minor,
                ..Notice::sample()
            };
            let template = builtin(Kind::Cancelled, Channel::Email, locale).expect("builtin");
            template.render(&notice, Channel::Email, locale).expect("render").text
        };
        // 30.00 refunded as goodwill before, 93.80 by the cancellation.
        let after_goodwill = email(12_380, Some(9_380), "en");
        assert!(
            after_goodwill
                .contains("We refund EUR 93.80 to your original payment method. Refunded in total: EUR 123.80."),
            "{after_goodwill}"
        );
        assert!(email(12_380, Some(9_380), "de").contains("Wir erstatten 93,80 EUR"));
        // Nothing refunded before: one amount.
        let whole = email(12_380, Some(12_380), "en");
        assert!(
            whole.contains("We refund EUR 123.80 to your original payment method."),
            "{whole}"
        );
        assert!(!whole.contains("in total"), "{whole}");
        // The terms refund nothing, although a goodwill refund came before.
        let nothing = email(1_000, Some(0), "en");
        assert!(nothing.contains("No refund is due"), "{nothing}");
        // A cancellation recorded before its own refund was reported: the total, as before.
        assert!(email(12_380, None, "en").contains("We refund EUR 123.80"));
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let mut notice = Notice::sample();
        notice.locator = "<b>&".to_owned();
        let template = builtin(Kind::Confirmed, Channel::Email, "en").expect("builtin");
        let rendered = template.render(&notice, Channel::Email, "en").expect("render");
        assert!(rendered.html.expect("html").contains("&lt;b&gt;&amp;"));
        assert!(rendered.text.contains("<b>&"));
    }

    #[test]
    fn broken_templates_are_refused_with_the_reason() {
        let bad = [
            ("", "empty"),
            (" \n ", "empty"),
            ("{{ locator ", "syntax"),
            ("{{ no_such_variable }}", "undefined"),
            (
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                "fuel",
            ),
        ];
        for (text, why) in bad {
            let template = Template {
                subject: None,
                text: text.to_owned(),
                html: None,
            };
            let error = template.validate(Kind::Confirmed, Channel::Sms, "en").expect_err(why);
            assert!(error.starts_with("text"), "{why}: {error}");
        }
        let no_subject = Template {
            subject: Some(" ".to_owned()),
            text: "Booking {{ locator }}".to_owned(),
            html: Some("<p>{{ locator }}</p>".to_owned()),
        };
        let error = no_subject
            .validate(Kind::Confirmed, Channel::Email, "en")
            .expect_err("empty subject");
        assert_eq!(error, "subject must not be empty");
    }
}
