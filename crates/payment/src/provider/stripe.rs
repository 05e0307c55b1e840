//! Stripe as a [`Provider`]: PaymentIntents with manual capture, and refunds, over Stripe's HTTP API (or anything
//! that speaks it, such as stripe-mock or a test server).
//!
//! The Stripe semantics this relies on:
//! - An authorization is a PaymentIntent created and confirmed in one call with `capture_method=manual`; a card that
//!   needs no further step leaves it in `requires_capture`. A capture takes `amount_to_capture` once and releases the
//!   rest (`succeeded`); a cancel releases an uncaptured one (`canceled`).
//! - Every POST carries the caller's key as `Idempotency-Key`. Stripe stores the first answer for a key (errors
//!   included) for at least 24 hours and replays it, so repeating a call never moves money twice.
//! - Creating a refund answers with a Refund, which says nothing of the payment's totals, so the PaymentIntent is read
//!   back with `latest_charge` expanded: the charge's `amount_refunded` is the refunded total, the intent's
//!   `amount_received` the captured one and its `amount` the authorized one.
//! - Errors are `{"error": {"type", "code", "decline_code", "message", "param"}}`. A `card_error` (HTTP 402) is a
//!   decline named by its `decline_code`, else its `code`; 429, 5xx and `Stripe-Should-Retry: true` are worth
//!   retrying; other 4xx are the request's own fault.
//! - Amounts are in the currency's smallest unit, which is its ISO 4217 minor unit for all but a few currencies
//!   (Stripe's exceptions, such as ISK and HUF, are not handled here). Currencies are sent lower case.
//! - `find` searches `metadata['reference']`, which `authorize` sets. Stripe's search lags writes by up to a minute
//!   (and is not offered to accounts in India). `list` pages through `GET /v1/payment_intents` (newest first,
//!   `starting_after` the last id of a page, `has_more` until the end), keeping intents that carry our reference.
//! - The API version is pinned ([`API_VERSION`]), so an account's default version cannot change what fields mean.
//!
//! The secret key and the payment token are never logged; `Debug` hides the key.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Authorization, ListPage, Listed, Provider, ProviderError, ProviderPayment, ProviderStatus};

pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// The Stripe API version every request asks for.
pub const API_VERSION: &str = "2024-06-20";

/// A PaymentIntent with its charge expanded is a few kilobytes; an answer near this bound is not Stripe's.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Stripe's own ids are far shorter; the bound keeps a hostile id out of URLs.
const MAX_ID_LEN: usize = 255;

const MAX_TIMEOUT_SECS: u64 = 300;

/// What authorize, capture and void report as refunded. Their answers do not expand the charge, and need not: they
/// answer for states that cannot have refunds yet (just authorized, captured or cancelled), and a repeated call gets
/// the stored first answer, from the same moment.
const NOT_REFUNDED: i64 = 0;

/// Connecting is quick or broken, and a failed connection certainly sent nothing, so it need not wait the full timeout.
const CONNECT_TIMEOUT_SECS: u64 = 5;

/// Where and how to reach Stripe.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StripeOptions {
    /// The API's root. Must be https, except to a loopback address (a local stripe-mock, a test server).
    pub base_url: String,
    /// A secret (`sk_...`) or restricted (`rk_...`) key. `Debug` never shows it.
    pub secret_key: String,
    /// Longest a call may take, connecting included. Past it the call may or may not have happened at Stripe.
    pub timeout_secs: u64,
}

impl Default for StripeOptions {
    fn default() -> StripeOptions {
        StripeOptions {
            base_url: DEFAULT_BASE_URL.to_owned(),
            secret_key: String::new(),
            timeout_secs: 30,
        }
    }
}

impl fmt::Debug for StripeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeOptions")
            .field("base_url", &self.base_url)
            .field("secret_key", &"***")
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl StripeOptions {
    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.secret_key.trim().is_empty() {
            return Err("stripe.secret_key is required".to_owned());
        }
        if !(1..=MAX_TIMEOUT_SECS).contains(&self.timeout_secs) {
            return Err(format!("stripe.timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}"));
        }
        let url = Url::parse(&self.base_url).map_err(|e| format!("stripe.base_url is not a URL: {e}"))?;
        match url.scheme() {
            "https" => Ok(()),
            "http" if is_loopback(&url) => Ok(()),
            // The secret key travels in every request.
            _ => Err("stripe.base_url must be https (plain http only to a loopback address)".to_owned()),
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Why a [`Stripe`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid stripe options: {0}")]
    Options(String),
    #[error("building the http client failed")]
    Client(#[source] reqwest::Error),
}

/// A [`Provider`] backed by a Stripe-compatible HTTP API.
#[derive(Clone)]
pub struct Stripe {
    http: reqwest::Client,
    base_url: String,
    secret_key: String,
}

impl fmt::Debug for Stripe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stripe")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Stripe {
    pub fn new(options: StripeOptions) -> Result<Stripe, Error> {
        options.validate().map_err(Error::Options)?;
        let timeout = Duration::from_secs(options.timeout_secs);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(CONNECT_TIMEOUT_SECS)))
            // Stripe's API does not redirect; following one could send the key and a money-moving request elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::Client)?;
        Ok(Stripe {
            http,
            base_url: options.base_url.trim_end_matches('/').to_owned(),
            secret_key: options.secret_key,
        })
    }
}

#[async_trait]
impl Provider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    async fn authorize(&self, authorization: &Authorization) -> Result<ProviderPayment, ProviderError> {
        let amount = authorization.amount_minor.to_string();
        let currency = authorization.currency.to_ascii_lowercase();
        let form = [
            ("amount", amount.as_str()),
            ("currency", currency.as_str()),
            ("payment_method", authorization.token.as_str()),
            // Cards only: otherwise (API 2023-08-16 on) the intent takes every method the dashboard enables, and
            // confirming it then demands a `return_url` for the redirecting ones.
            ("payment_method_types[]", "card"),
            ("confirm", "true"),
            ("capture_method", "manual"),
            ("metadata[reference]", authorization.reference.as_str()),
        ];
        let intent: PaymentIntent = self
            .post("/v1/payment_intents", &form, &authorization.idempotency_key)
            .await?;
        intent.into_payment(NOT_REFUNDED)
    }

    async fn capture(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let path = format!("/v1/payment_intents/{}/capture", check_id(reference)?);
        let amount = amount_minor.to_string();
        let form = [("amount_to_capture", amount.as_str())];
        let intent: PaymentIntent = self.post(&path, &form, idempotency_key).await?;
        intent.into_payment(NOT_REFUNDED)
    }

    async fn refund(
        &self,
        reference: &str,
        amount_minor: i64,
        idempotency_key: &str,
    ) -> Result<ProviderPayment, ProviderError> {
        let payment_intent = check_id(reference)?;
        let amount = amount_minor.to_string();
        let form = [("payment_intent", payment_intent), ("amount", amount.as_str())];
        let refund: Refund = self.post("/v1/refunds", &form, idempotency_key).await?;
        if let Some(status @ ("failed" | "canceled")) = refund.status.as_deref() {
            return Err(ProviderError::Rejected(format!("refund {} {status}", refund.id)));
        }
        // Should this read fail, the refund stands: the caller's repeat with the same key gets the stored refund back
        // and reads again.
        self.fetch(payment_intent).await
    }

    async fn void(&self, reference: &str, idempotency_key: &str) -> Result<ProviderPayment, ProviderError> {
        let path = format!("/v1/payment_intents/{}/cancel", check_id(reference)?);
        let intent: PaymentIntent = self.post(&path, &[], idempotency_key).await?;
        intent.into_payment(NOT_REFUNDED)
    }

    async fn fetch(&self, reference: &str) -> Result<ProviderPayment, ProviderError> {
        let path = format!("/v1/payment_intents/{}", check_id(reference)?);
        let expanded: ExpandedIntent = self.get(&path, &[("expand[]", "latest_charge")]).await?;
        expanded.into_payment()
    }

    /// Searches PaymentIntents by the `metadata[reference]` that [`Provider::authorize`] sets. Stripe's search lags
    /// writes by up to a minute, which reconciliation (its caller, for authorizations whose answer was lost) can
    /// afford.
    async fn find(&self, reference: &str) -> Result<Option<ProviderPayment>, ProviderError> {
        let query = format!("metadata['reference']:'{}'", check_reference(reference)?);
        let found: SearchResult = self
            .get(
                "/v1/payment_intents/search",
                &[("query", query.as_str()), ("expand[]", "data.latest_charge")],
            )
            .await?;
        // A declined attempt is an intent too, but holds no money: the first one that does is the answer.
        Ok(found.data.into_iter().find_map(|expanded| expanded.into_payment().ok()))
    }

    /// Lists PaymentIntents, newest first, [`LIST_PAGE`] a page (`starting_after` the last one of the previous
    /// page). Intents without our `metadata[reference]` (made outside Phoenix on the same account) and declined
    /// attempts (they hold no money) are left out.
    async fn list(&self, after: Option<&str>) -> Result<ListPage, ProviderError> {
        let limit = LIST_PAGE.to_string();
        let mut query = vec![("limit", limit.as_str()), ("expand[]", "data.latest_charge")];
        if let Some(after) = after {
            query.push(("starting_after", check_id(after)?));
        }
        let listed: IntentList = self.get("/v1/payment_intents", &query).await?;
        let next = listed
            .has_more
            .then(|| listed.data.last().map(|expanded| expanded.intent.id.clone()))
            .flatten();
        let payments = listed
            .data
            .into_iter()
            .filter_map(|mut expanded| {
                let our_reference = expanded.intent.metadata.remove("reference")?;
                let payment = expanded.into_payment().ok()?;
                Some(Listed { our_reference, payment })
            })
            .collect();
        Ok(ListPage { payments, next })
    }
}

/// PaymentIntents a page of [`Stripe::list`](Provider::list) asks for (Stripe's largest page).
pub const LIST_PAGE: u32 = 100;

impl Stripe {
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
        idempotency_key: &str,
    ) -> Result<T, ProviderError> {
        let key = HeaderValue::from_str(idempotency_key)
            .map_err(|_| ProviderError::Rejected("the idempotency key is not a valid header value".to_owned()))?;
        let request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .header("idempotency-key", key)
            .form(form);
        self.send(path, request).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, ProviderError> {
        let request = self.http.get(format!("{}{path}", self.base_url)).query(query);
        self.send(path, request).await
    }

    /// Sends an authenticated request and decodes a 2xx answer as `T`, any other as the error it stands for.
    async fn send<T: DeserializeOwned>(&self, path: &str, request: RequestBuilder) -> Result<T, ProviderError> {
        let response = request
            .bearer_auth(&self.secret_key)
            .header("stripe-version", API_VERSION)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let should_retry = header(response.headers(), "stripe-should-retry") == Some("true");
        // Stripe support finds a call by this id.
        let request_id = header(response.headers(), "request-id").map(str::to_owned);
        let body = read_body(response).await?;
        tracing::debug!(path, status = status.as_u16(), request_id, "stripe answered");
        if !status.is_success() {
            return Err(error_of(status, should_retry, &body));
        }
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::Unavailable(format!("undecodable answer from stripe: {e}")))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Reads the whole body, but no more than [`MAX_RESPONSE_BYTES`] of it.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(ProviderError::Unavailable(format!(
                "stripe's answer is longer than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn transport_error(error: reqwest::Error) -> ProviderError {
    // A connection that failed, even by timing out, sent nothing; any other timeout leaves the call's fate unknown.
    if error.is_timeout() && !error.is_connect() {
        return ProviderError::Timeout;
    }
    ProviderError::Unavailable(phoenix_api::ErrorChain(&error).to_string())
}

/// What a non-2xx answer means for the caller.
fn error_of(status: StatusCode, should_retry: bool, body: &[u8]) -> ProviderError {
    let error = serde_json::from_slice::<ErrorBody>(body).ok().map(|body| body.error);
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || should_retry {
        let detail = error.map(|e| format!(": {}", e.describe())).unwrap_or_default();
        return ProviderError::Unavailable(format!("stripe answered {status}{detail}"));
    }
    let Some(error) = error else {
        return ProviderError::Unavailable(format!("stripe answered {status} with an undecodable body"));
    };
    match status {
        StatusCode::PAYMENT_REQUIRED if error.kind == "card_error" => ProviderError::Declined {
            code: error
                .decline_code
                .or(error.code)
                .unwrap_or_else(|| "card_declined".to_owned()),
            message: error.message.unwrap_or_default(),
        },
        // A wrong or revoked key fails every call alike: the provider is unusable, the request is not at fault.
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            ProviderError::Unavailable(format!("stripe refused our key: {}", error.describe()))
        }
        _ if error.is_unknown_payment_method() => ProviderError::Declined {
            code: "invalid_token".to_owned(),
            message: error.message.unwrap_or_default(),
        },
        _ if status.is_client_error() => ProviderError::Rejected(error.describe()),
        _ => ProviderError::Unavailable(format!("unexpected answer from stripe: {status}")),
    }
}

/// Stripe ids are `[A-Za-z0-9_]+`; anything else is refused before it can reach a URL path.
fn check_id(id: &str) -> Result<&str, ProviderError> {
    let valid = !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(id)
    } else {
        Err(ProviderError::Rejected("not a stripe payment intent id".to_owned()))
    }
}

/// Our references are ids; anything that could end the quoted term of a search query is refused.
fn check_reference(reference: &str) -> Result<&str, ProviderError> {
    let valid = !reference.is_empty()
        && reference.len() <= MAX_ID_LEN
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(reference)
    } else {
        Err(ProviderError::Rejected("not a payment reference".to_owned()))
    }
}

/// The fields of Stripe's PaymentIntent this provider reads.
#[derive(Deserialize)]
struct PaymentIntent {
    id: String,
    status: String,
    amount: i64,
    amount_received: i64,
    currency: String,
    /// Ours: `reference`, set when authorizing.
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

/// A PaymentIntent read with `expand[]=latest_charge`: the charge is an object, or null before any confirmation.
#[derive(Deserialize)]
struct ExpandedIntent {
    #[serde(flatten)]
    intent: PaymentIntent,
    latest_charge: Option<Charge>,
}

#[derive(Deserialize)]
struct SearchResult {
    data: Vec<ExpandedIntent>,
}

#[derive(Deserialize)]
struct IntentList {
    data: Vec<ExpandedIntent>,
    has_more: bool,
}

#[derive(Deserialize)]
struct Charge {
    amount_refunded: i64,
}

#[derive(Deserialize)]
struct Refund {
    id: String,
    /// `pending`, `succeeded`, `failed`, `canceled` or `requires_action`.
    status: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Deserialize)]
struct StripeError {
    #[serde(rename = "type")]
    kind: String,
    code: Option<String>,
    decline_code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

impl StripeError {
    fn describe(&self) -> String {
        let code = self.code.as_deref().unwrap_or(&self.kind);
        match &self.message {
            Some(message) => format!("{code}: {message}"),
            None => code.to_owned(),
        }
    }

    /// Stripe knows no such PaymentMethod: the client's token is wrong or from another account.
    fn is_unknown_payment_method(&self) -> bool {
        self.kind == "invalid_request_error"
            && self.code.as_deref() == Some("resource_missing")
            && self.param.as_deref() == Some("payment_method")
    }
}

impl ExpandedIntent {
    fn into_payment(self) -> Result<ProviderPayment, ProviderError> {
        let refunded_minor = self.latest_charge.map_or(0, |charge| charge.amount_refunded);
        self.intent.into_payment(refunded_minor)
    }
}

impl PaymentIntent {
    /// Only an expanded charge tells `refunded_minor`: see the callers.
    fn into_payment(self, refunded_minor: i64) -> Result<ProviderPayment, ProviderError> {
        let status = match self.status.as_str() {
            "requires_capture" => ProviderStatus::Authorized,
            "succeeded" => ProviderStatus::Captured,
            "canceled" => ProviderStatus::Voided,
            // 3-D Secure or a like step: no customer is at hand to take it, so this card cannot pay here.
            "requires_action" => {
                return Err(ProviderError::Declined {
                    code: "authentication_required".to_owned(),
                    message: "the card asks for the customer's authentication".to_owned(),
                });
            }
            other => {
                return Err(ProviderError::Rejected(format!(
                    "payment intent {} has status {other}",
                    self.id
                )));
            }
        };
        Ok(ProviderPayment {
            reference: self.id,
            status,
            currency: self.currency.to_ascii_uppercase(),
            authorized_minor: self.amount,
            captured_minor: self.amount_received,
            refunded_minor,
        })
    }
}
