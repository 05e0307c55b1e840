//! A payment: money authorized on a card, then captured, refunded or voided. The rules of what may happen next are
//! pure functions here; the service applies them under a lock.

use phoenix_api::FieldErrors;
use phoenix_api::card::looks_like_card_number;
use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Error;

/// Longest payment token accepted (Stripe's ids are far shorter).
pub const MAX_TOKEN_LEN: usize = 255;
/// Longest free-text reference (such as a booking id).
pub const MAX_REFERENCE_LEN: usize = 255;
/// Longest refund reason.
pub const MAX_REASON_LEN: usize = 500;
/// The largest `max_amount_minor` a deployment may configure.
pub const AMOUNT_CEILING_MINOR: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Written before the provider is called; the outcome is not known yet.
    Pending,
    Authorized,
    Captured,
    PartiallyRefunded,
    Refunded,
    Voided,
    /// Declined, refused, or the provider did not answer.
    Failed,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Authorized,
        Status::Captured,
        Status::PartiallyRefunded,
        Status::Refunded,
        Status::Voided,
        Status::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Authorized => "authorized",
            Status::Captured => "captured",
            Status::PartiallyRefunded => "partially_refunded",
            Status::Refunded => "refunded",
            Status::Voided => "voided",
            Status::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The status a captured payment has after refunds.
    pub fn after_refunds(captured_minor: i64, refunded_minor: i64) -> Status {
        match refunded_minor {
            0 => Status::Captured,
            r if r >= captured_minor => Status::Refunded,
            _ => Status::PartiallyRefunded,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payment failed, as stored in `failure_code`.
pub mod failure {
    /// The card was declined; `decline_code` says how.
    pub const DECLINED: &str = "payment_declined";
    /// The provider refused the request itself.
    pub const REJECTED: &str = "provider_rejected";
    /// The provider did not answer (or its circuit was open): the authorization's outcome was unknown.
    pub const UNAVAILABLE: &str = "provider_unavailable";
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    /// The user who pays.
    pub owner_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub amount_minor: i64,
    pub currency: String,
    pub status: Status,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    /// The provider's name (`simulated`, `stripe`).
    pub provider: String,
    /// The provider's id for the payment, once it authorized it.
    pub provider_reference: Option<String>,
    /// Free text to find the payment by, such as a booking id.
    pub reference: Option<String>,
    pub failure_code: Option<String>,
    pub decline_code: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a failed authorization leaves in the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub failure_code: &'static str,
    pub decline_code: Option<String>,
}

impl Payment {
    /// How much a capture may take now.
    pub fn capturable_minor(&self) -> i64 {
        match self.status {
            Status::Authorized => self.amount_minor - self.captured_minor,
            _ => 0,
        }
    }

    /// How much a refund may return now (before refunds still in flight).
    pub fn refundable_minor(&self) -> i64 {
        match self.status {
            Status::Captured | Status::PartiallyRefunded => self.captured_minor - self.refunded_minor,
            _ => 0,
        }
    }

    /// The amount a capture takes: `requested`, or all that is authorized. One capture per authorization.
    pub fn capture_amount(&self, requested: Option<i64>) -> Result<i64, Error> {
        if self.status != Status::Authorized {
            return Err(Error::NotCapturable { status: self.status });
        }
        let available = self.capturable_minor();
        let amount = requested.unwrap_or(available);
        if amount > available {
            return Err(Error::AmountAboveAuthorized {
                available_minor: available,
            });
        }
        Ok(amount)
    }

    /// The amount a refund returns: `requested`, or all that is captured and not yet refunded (nor being refunded:
    /// `in_flight_minor`).
    pub fn refund_amount(&self, requested: Option<i64>, in_flight_minor: i64) -> Result<i64, Error> {
        if !matches!(self.status, Status::Captured | Status::PartiallyRefunded) {
            return Err(Error::NotRefundable { status: self.status });
        }
        let available = (self.refundable_minor() - in_flight_minor).max(0);
        let amount = requested.unwrap_or(available);
        if amount == 0 || amount > available {
            return Err(Error::AmountAboveCaptured {
                available_minor: available,
            });
        }
        Ok(amount)
    }

    /// The amount a refund of at most `most` returns: `most`, or what is left when that is less (0, refused, when
    /// nothing is). While another refund is in flight and `most` would not fit beside it, the answer waits for that
    /// one (409 `operation_in_progress`): it may yet fail and leave room.
    pub fn refund_at_most(&self, most: i64, in_flight_minor: i64) -> Result<i64, Error> {
        let available = (self.refundable_minor() - in_flight_minor).max(0);
        if most > available && in_flight_minor > 0 {
            return Err(Error::OperationInProgress);
        }
        self.refund_amount(Some(most.min(available)), in_flight_minor)
    }

    /// A void releases the whole authorization; only an uncaptured one can be voided.
    pub fn void_amount(&self) -> Result<i64, Error> {
        if self.status != Status::Authorized {
            return Err(Error::NotVoidable { status: self.status });
        }
        Ok(self.amount_minor)
    }
}

/// An ISO 4217 code the platform accepts (`phoenix_api::currency`).
pub fn parse_currency(raw: &str) -> Result<String, &'static str> {
    match phoenix_api::currency::exponent(raw) {
        Some(_) => Ok(raw.to_owned()),
        None => Err("must be an ISO 4217 code the platform accepts, in upper case, such as EUR"),
    }
}

/// A positive amount no larger than `max_minor`.
pub fn parse_amount(amount_minor: i64, max_minor: i64) -> Result<i64, String> {
    if (1..=max_minor).contains(&amount_minor) {
        Ok(amount_minor)
    } else {
        Err(format!("must be between 1 and {max_minor} (minor units)"))
    }
}

/// A provider's payment token: printable, without spaces, bounded.
pub fn parse_token(raw: &str) -> Result<&str, String> {
    let printable = raw.bytes().all(|b| b.is_ascii_graphic());
    if raw.is_empty() || raw.len() > MAX_TOKEN_LEN || !printable {
        return Err(format!("must be 1 to {MAX_TOKEN_LEN} printable characters"));
    }
    Ok(raw)
}

/// Free text (a reference, a reason): no control characters, at most `max_len` bytes.
pub fn parse_text(raw: &str, max_len: usize) -> Result<&str, String> {
    if raw.len() > max_len || raw.chars().any(char::is_control) {
        return Err(format!(
            "must be at most {max_len} characters, without control characters"
        ));
    }
    Ok(raw)
}

/// A refund's reason: free text, trimmed, not empty.
pub fn parse_reason(raw: &str) -> Result<&str, String> {
    match parse_text(raw.trim(), MAX_REASON_LEN)? {
        "" => Err("must not be empty".to_owned()),
        reason => Ok(reason),
    }
}

/// Refuses (`card_number_not_allowed`) the first field that holds what looks like a card number.
pub fn refuse_card_numbers(fields: &[(&'static str, &str)]) -> Result<(), Error> {
    match fields.iter().find(|(_, text)| looks_like_card_number(text)) {
        Some((field, _)) => Err(Error::CardNumberNotAllowed { field }),
        None => Ok(()),
    }
}

/// An authorization request that passed every check at the edge.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPayment {
    pub amount_minor: i64,
    pub currency: String,
    /// Sent to the provider, never stored or logged.
    pub token: String,
    pub reference: Option<String>,
}

impl std::fmt::Debug for NewPayment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPayment")
            .field("amount_minor", &self.amount_minor)
            .field("currency", &self.currency)
            .field("token", &"<hidden>")
            .field("reference", &self.reference)
            .finish()
    }
}

impl NewPayment {
    pub fn parse(
        amount_minor: i64,
        currency: &str,
        token: &str,
        reference: Option<&str>,
        max_amount_minor: i64,
    ) -> Result<NewPayment, Error> {
        refuse_card_numbers(&[("payment_token", token), ("reference", reference.unwrap_or_default())])?;
        let mut errors = FieldErrors::default();
        let amount = errors.check("amount_minor", parse_amount(amount_minor, max_amount_minor));
        let currency = errors.check("currency", parse_currency(currency));
        let token = errors.check("payment_token", parse_token(token));
        let reference = reference
            .map(|r| errors.check("reference", parse_text(r, MAX_REFERENCE_LEN)))
            .unwrap_or(Some(""));
        match (amount, currency, token, reference) {
            (Some(amount_minor), Some(currency), Some(token), Some(reference)) if errors.is_empty() => Ok(NewPayment {
                amount_minor,
                currency,
                token: token.to_owned(),
                reference: (!reference.is_empty()).then(|| reference.to_owned()),
            }),
            _ => Err(Error::Invalid(errors.into_errors())),
        }
    }
}

/// A digest of a request, to tell a retry from a different request under the same idempotency key (it covers the
/// token without storing it).
pub fn fingerprint(request: &serde_json::Value) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, request.to_string().as_bytes())
        .as_ref()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(status: Status, captured: i64, refunded: i64) -> Payment {
        Payment {
            id: Uuid::nil(),
            owner_id: Uuid::nil(),
            organization_id: None,
            amount_minor: 1_000,
            currency: "EUR".to_owned(),
            status,
            captured_minor: captured,
            refunded_minor: refunded,
            provider: "simulated".to_owned(),
            provider_reference: None,
            reference: None,
            failure_code: None,
            decline_code: None,
            created_at: Timestamp::now(),
            updated_at: Timestamp::now(),
        }
    }

    #[test]
    fn captures_take_at_most_what_is_authorized_and_only_once() {
        let authorized = payment(Status::Authorized, 0, 0);
        assert_eq!(authorized.capture_amount(None).unwrap(), 1_000);
        assert_eq!(authorized.capture_amount(Some(400)).unwrap(), 400);
        assert!(matches!(
            authorized.capture_amount(Some(1_001)),
            Err(Error::AmountAboveAuthorized { available_minor: 1_000 })
        ));
        for status in [Status::Captured, Status::Voided, Status::Failed, Status::Pending] {
            assert!(matches!(
                payment(status, 0, 0).capture_amount(None),
                Err(Error::NotCapturable { .. })
            ));
        }
    }

    #[test]
    fn refunds_return_at_most_what_is_captured_net_of_refunds_in_flight() {
        let captured = payment(Status::PartiallyRefunded, 600, 100);
        assert_eq!(captured.refund_amount(None, 0).unwrap(), 500);
        assert_eq!(captured.refund_amount(None, 200).unwrap(), 300);
        assert!(matches!(
            captured.refund_amount(Some(301), 200),
            Err(Error::AmountAboveCaptured { available_minor: 300 })
        ));
        let refunded = payment(Status::Refunded, 600, 600);
        assert!(matches!(
            refunded.refund_amount(None, 0),
            Err(Error::NotRefundable { .. })
        ));
        assert!(matches!(
            payment(Status::Authorized, 0, 0).refund_amount(Some(1), 0),
            Err(Error::NotRefundable { .. })
        ));
    }

    #[test]
    fn only_an_uncaptured_authorization_can_be_voided() {
        assert_eq!(payment(Status::Authorized, 0, 0).void_amount().unwrap(), 1_000);
        assert!(payment(Status::Captured, 1_000, 0).void_amount().is_err());
        assert!(payment(Status::Voided, 0, 0).void_amount().is_err());
    }

    #[test]
    fn status_after_refunds() {
        assert_eq!(Status::after_refunds(500, 0), Status::Captured);
        assert_eq!(Status::after_refunds(500, 200), Status::PartiallyRefunded);
        assert_eq!(Status::after_refunds(500, 500), Status::Refunded);
    }

    #[test]
    fn an_authorization_request_is_checked_field_by_field() {
        let ok = NewPayment::parse(1_000, "EUR", "tok_visa", Some("booking-1"), 10_000).unwrap();
        assert_eq!(ok.reference.as_deref(), Some("booking-1"));
        assert!(!format!("{ok:?}").contains("tok_visa"), "Debug hides the token");
        let Err(Error::Invalid(errors)) = NewPayment::parse(0, "eur", "", None, 10_000) else {
            panic!("expected invalid fields")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["amount_minor", "currency", "payment_token"]);
        assert!(matches!(
            NewPayment::parse(10_001, "EUR", "tok_visa", None, 10_000),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            NewPayment::parse(1_000, "EUR", "4242 4242 4242 4242", None, 10_000),
            Err(Error::CardNumberNotAllowed { field: "payment_token" })
        ));
    }
}
