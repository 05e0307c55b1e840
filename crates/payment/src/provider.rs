//! The card networks' side of a payment, behind one interface.
//!
//! A [`Provider`] authorizes an amount against a payment token, captures some or all of it, refunds captured money
//! and voids what was never captured. Every call that moves money carries an idempotency key: the provider itself
//! deduplicates on it, so repeating a call whose answer was lost (a timeout, a crash) never moves money twice. That
//! is what makes retries safe ([`resilient`] retries only keyed calls).
//!
//! Implementations: [`simulated`] (keeps its own ledger; test tokens for every outcome) and [`stripe`] (a
//! Stripe-compatible HTTP API: PaymentIntents with manual capture, refunds).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod resilient;
pub mod simulated;
pub mod stripe;

/// An authorization to place with a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// In minor units of `currency`; positive.
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// The payment token a client got from the provider's card form (never a card number).
    pub token: String,
    /// Ours, for the provider's records (the payment id).
    pub reference: String,
    /// The provider deduplicates on this: the same key always answers with the same payment.
    pub idempotency_key: String,
}

/// Where a payment stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderStatus {
    /// Money reserved on the card, not yet taken.
    Authorized,
    /// Some or all of the authorization taken (refunds may follow).
    Captured,
    /// The authorization was cancelled before any capture.
    Voided,
}

/// A payment as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderPayment {
    /// The provider's id for the payment (a PaymentIntent id, for Stripe).
    pub reference: String,
    pub status: ProviderStatus,
    pub currency: String,
    pub authorized_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
}

/// A payment the provider holds for one of our authorizations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The reference we sent with the authorization ([`Authorization::reference`]: our payment id).
    pub our_reference: String,
    pub payment: ProviderPayment,
}

/// One page of [`Provider::list`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    pub payments: Vec<Listed>,
    /// Pass as `after` for the next page; `None` on the last.
    pub next: Option<String>,
}

/// Why a provider call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The card was refused; retrying will not help. `code` is stable: `card_declined`, `insufficient_funds`,
    /// `expired_card`, `invalid_token`.
    #[error("declined: {code}")]
    Declined { code: String, message: String },
    /// The provider refused the request itself (amount above what can be captured or refunded, wrong state).
    #[error("rejected by the provider: {0}")]
    Rejected(String),
    /// No answer in time: the call may or may not have happened.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider failed or could not be reached (5xx, connection refused, unparseable answer).
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// Our own circuit breaker is open for this provider: the call was not attempted.
    #[error("the provider's circuit is open")]
    CircuitOpen,
}

impl ProviderError {
    /// Whether the failure says something about the provider's health (counted by the circuit breaker) rather than
    /// about the request (a decline is a healthy provider's answer).
    pub fn is_failure(&self) -> bool {
        matches!(self, ProviderError::Timeout | ProviderError::Unavailable(_))
    }
}

/// A card provider. Calls that move money take an idempotency key, which the provider deduplicates on.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// Names the provider in metrics, logs and stored payments (`simulated`, `stripe`).
    fn name(&self) -> &'static str;

    /// Reserves `amount_minor` on the card behind the token.
    async fn authorize(&self, authorization: &Authorization) -> Result<ProviderPayment, ProviderError>;

    /// Takes `amount_minor` (at most what is authorized and not yet captured) of an authorized payment. A provider
    /// that allows one capture per authorization releases the rest.
    async fn capture(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError>;

    /// Returns `amount_minor` of captured money to the card.
    async fn refund(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError>;

    /// Cancels an authorization that was never captured.
    async fn void(&self, reference: &str, idempotency_key: &str) -> Result<ProviderPayment, ProviderError>;

    /// The payment as the provider sees it now, for reconciliation.
    async fn fetch(&self, reference: &str) -> Result<ProviderPayment, ProviderError>;

    /// The payment the provider holds for OUR `reference` (the one sent in [`Authorization::reference`]), if any:
    /// how reconciliation learns whether an authorization whose answer was lost (a timeout, a crash) happened.
    async fn find(&self, reference: &str) -> Result<Option<ProviderPayment>, ProviderError>;

    /// The payments the provider holds money for (or held: voided ones too) that carry one of our references, a page
    /// at a time, `after` the previous page's [`ListPage::next`]: how reconciliation finds a payment the provider
    /// has and we have no record of (a database restored from a backup older than the payment, say). Attempts that
    /// were declined hold nothing and are left out.
    async fn list(&self, after: Option<&str>) -> Result<ListPage, ProviderError>;
}
