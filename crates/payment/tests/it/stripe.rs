//! The Stripe-compatible provider against a local server that checks every request and answers like Stripe.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use phoenix_payment::provider::stripe::{API_VERSION, Stripe, StripeOptions};
use phoenix_payment::provider::{Authorization, Listed, Provider, ProviderError, ProviderPayment, ProviderStatus};
use serde_json::{Value, json};

const SECRET_KEY: &str = "sk_test_phoenix_0123456789";
const INTENT: &str = "pi_3PhoenixTest0001";

/// One request as the fake Stripe received it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    form: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }

    /// Every request must carry the key as a bearer token and ask for the pinned API version.
    fn assert_authenticated(&self) {
        assert_eq!(
            self.header("authorization"),
            Some(format!("Bearer {SECRET_KEY}").as_str())
        );
        assert_eq!(self.header("stripe-version"), Some(API_VERSION));
    }

    /// A POST that moves money: form-encoded, with the caller's idempotency key.
    fn assert_post(&self, path: &str, idempotency_key: &str) {
        assert_eq!(self.method, Method::POST);
        assert_eq!(self.path, path);
        assert!(self.query.is_empty(), "{:?}", self.query);
        self.assert_authenticated();
        assert_eq!(self.header("idempotency-key"), Some(idempotency_key));
        assert_eq!(self.header("content-type"), Some("application/x-www-form-urlencoded"));
    }
}

/// How the fake Stripe answers one request.
#[derive(Clone)]
enum Reply {
    Json(StatusCode, Value, Vec<(&'static str, &'static str)>),
    Text(StatusCode, &'static str),
    /// Keeps the connection open and never answers.
    Silence,
}

fn ok(body: Value) -> Reply {
    Reply::Json(StatusCode::OK, body, Vec::new())
}

/// A non-200 answer, such as Stripe's error objects.
fn reply(status: StatusCode, body: Value) -> Reply {
    Reply::Json(status, body, Vec::new())
}

type Answer = dyn Fn(&Seen) -> Reply + Send + Sync;

#[derive(Clone)]
struct FakeState {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Arc<Answer>,
}

struct FakeStripe {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeStripe {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The one request the test expected.
    fn only(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "{seen:#?}");
        seen.into_iter().next().unwrap()
    }

    fn stripe(&self) -> Stripe {
        self.stripe_with_timeout(5)
    }

    fn stripe_with_timeout(&self, timeout_secs: u64) -> Stripe {
        Stripe::new(StripeOptions {
            base_url: self.base_url.clone(),
            secret_key: SECRET_KEY.to_owned(),
            timeout_secs,
        })
        .unwrap()
    }
}

/// Starts a server on 127.0.0.1:0 that records every request and answers with `answer`.
async fn fake_stripe(answer: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeStripe {
    let state = FakeState {
        seen: Arc::default(),
        answer: Arc::new(answer),
    };
    let seen = state.seen.clone();
    let app = axum::Router::new().fallback(receive).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeStripe { base_url, seen }
}

async fn receive(
    State(state): State<FakeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method,
        path: uri.path().to_owned(),
        query: serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap(),
        headers,
        form: serde_urlencoded::from_bytes(&body).unwrap(),
    };
    state.seen.lock().unwrap().push(seen.clone());
    match (state.answer)(&seen) {
        Reply::Json(status, body, headers) => {
            let mut response = (status, axum::Json(body)).into_response();
            response.headers_mut().insert("request-id", "req_test".parse().unwrap());
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::Text(status, body) => (status, body).into_response(),
        Reply::Silence => std::future::pending().await,
    }
}

/// A PaymentIntent as Stripe answers it (the fields that matter plus some that do not).
fn intent(status: &str, amount: i64, amount_received: i64, latest_charge: Value) -> Value {
    json!({
        "id": INTENT,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": if status == "requires_capture" { amount } else { 0 },
        "amount_received": amount_received,
        "capture_method": "manual",
        "confirmation_method": "automatic",
        "currency": "eur",
        "latest_charge": latest_charge,
        "livemode": false,
        "metadata": { "reference": "pay_0001" },
        "payment_method": "pm_card_visa",
        "payment_method_types": ["card"],
        "status": status,
    })
}

fn charge(amount_refunded: i64) -> Value {
    json!({ "id": "ch_3PhoenixTest0001", "object": "charge", "amount": 1500, "amount_refunded": amount_refunded })
}

fn card_error(code: &str, decline_code: Option<&str>, message: &str) -> Value {
    json!({ "error": {
        "type": "card_error", "code": code, "decline_code": decline_code, "message": message,
        "payment_intent": intent("requires_payment_method", 1500, 0, Value::Null),
    }})
}

fn invalid_request(code: &str, param: &str, message: &str) -> Value {
    json!({ "error": { "type": "invalid_request_error", "code": code, "param": param, "message": message } })
}

fn authorization() -> Authorization {
    Authorization {
        amount_minor: 1500,
        currency: "EUR".to_owned(),
        token: "pm_card_visa".to_owned(),
        reference: "pay_0001".to_owned(),
        idempotency_key: "authorize-pay_0001".to_owned(),
    }
}

fn payment(status: ProviderStatus, captured_minor: i64, refunded_minor: i64) -> ProviderPayment {
    ProviderPayment {
        reference: INTENT.to_owned(),
        status,
        currency: "EUR".to_owned(),
        authorized_minor: 1500,
        captured_minor,
        refunded_minor,
    }
}

#[tokio::test]
async fn authorize_confirms_a_manual_capture_payment_intent() {
    let stripe = fake_stripe(|_| ok(intent("requires_capture", 1500, 0, json!("ch_3PhoenixTest0001")))).await;

    let authorized = stripe.stripe().authorize(&authorization()).await.unwrap();

    assert_eq!(authorized, payment(ProviderStatus::Authorized, 0, 0));
    let seen = stripe.only();
    seen.assert_post("/v1/payment_intents", "authorize-pay_0001");
    let mut form = seen.form.clone();
    form.sort();
    let expected = [
        ("amount", "1500"),
        ("capture_method", "manual"),
        ("confirm", "true"),
        ("currency", "eur"),
        ("metadata[reference]", "pay_0001"),
        ("payment_method", "pm_card_visa"),
        ("payment_method_types[]", "card"),
    ];
    let expected: Vec<_> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(form, expected);
}

#[tokio::test]
async fn insufficient_funds_is_a_decline_named_by_its_decline_code() {
    let stripe = fake_stripe(|_| {
        let body = card_error(
            "card_declined",
            Some("insufficient_funds"),
            "Your card has insufficient funds.",
        );
        reply(StatusCode::PAYMENT_REQUIRED, body)
    })
    .await;

    let declined = stripe.stripe().authorize(&authorization()).await.unwrap_err();

    assert_eq!(
        declined,
        ProviderError::Declined {
            code: "insufficient_funds".to_owned(),
            message: "Your card has insufficient funds.".to_owned(),
        }
    );
    assert!(!declined.is_failure());
    stripe.only().assert_post("/v1/payment_intents", "authorize-pay_0001");
}

/// The kind of a provider error, and the decline code when it is a decline.
fn kind(error: &ProviderError) -> String {
    match error {
        ProviderError::Declined { code, .. } => format!("declined {code}"),
        ProviderError::Rejected(_) => "rejected".to_owned(),
        ProviderError::Timeout => "timeout".to_owned(),
        ProviderError::Unavailable(_) => "unavailable".to_owned(),
        ProviderError::CircuitOpen => "circuit open".to_owned(),
    }
}

#[tokio::test]
async fn every_stripe_error_maps_to_what_the_caller_can_do_about_it() {
    let card = |code, decline_code| {
        reply(
            StatusCode::PAYMENT_REQUIRED,
            card_error(code, decline_code, "Your card was declined."),
        )
    };
    let invalid = |status, code, param| reply(status, invalid_request(code, param, "The request is invalid."));
    let typed = |status, kind| {
        reply(
            status,
            json!({ "error": { "type": kind, "message": "Something failed." } }),
        )
    };
    let mut busy = invalid(StatusCode::BAD_REQUEST, "payment_intent_unexpected_state", "intent");
    if let Reply::Json(_, _, headers) = &mut busy {
        headers.push(("stripe-should-retry", "true"));
    }
    let cases = [
        ("expired card", card("expired_card", None), "declined expired_card"),
        ("generic decline", card("card_declined", None), "declined card_declined"),
        (
            "decline code wins",
            card("card_declined", Some("lost_card")),
            "declined lost_card",
        ),
        (
            "unknown token",
            invalid(StatusCode::BAD_REQUEST, "resource_missing", "payment_method"),
            "declined invalid_token",
        ),
        (
            "3-D Secure asked",
            ok(intent("requires_action", 1500, 0, Value::Null)),
            "declined authentication_required",
        ),
        (
            "too large",
            invalid(StatusCode::BAD_REQUEST, "amount_too_large", "amount"),
            "rejected",
        ),
        (
            "unknown intent",
            invalid(StatusCode::NOT_FOUND, "resource_missing", "intent"),
            "rejected",
        ),
        (
            "key reused",
            typed(StatusCode::CONFLICT, "idempotency_error"),
            "rejected",
        ),
        ("stripe says retry", busy, "unavailable"),
        (
            "revoked key",
            typed(StatusCode::UNAUTHORIZED, "invalid_request_error"),
            "unavailable",
        ),
        (
            "rate limited",
            typed(StatusCode::TOO_MANY_REQUESTS, "invalid_request_error"),
            "unavailable",
        ),
        (
            "internal error",
            typed(StatusCode::INTERNAL_SERVER_ERROR, "api_error"),
            "unavailable",
        ),
        (
            "html from a proxy",
            Reply::Text(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>"),
            "unavailable",
        ),
        (
            "4xx without an error object",
            Reply::Text(StatusCode::BAD_REQUEST, "nope"),
            "unavailable",
        ),
        (
            "2xx that is not json",
            Reply::Text(StatusCode::OK, "{\"id\":"),
            "unavailable",
        ),
    ];
    for (case, reply, expected) in cases {
        let stripe = fake_stripe(move |_| reply.clone()).await;
        let error = stripe.stripe().authorize(&authorization()).await.unwrap_err();
        assert_eq!(kind(&error), expected, "{case}: {error:?}");
        stripe.only().assert_post("/v1/payment_intents", "authorize-pay_0001");
    }
}

#[tokio::test]
async fn capture_takes_part_of_the_authorization() {
    let stripe = fake_stripe(|_| ok(intent("succeeded", 1500, 1000, json!("ch_3PhoenixTest0001")))).await;

    let captured = stripe.stripe().capture(INTENT, 1000, "capture-pay_0001").await.unwrap();

    assert_eq!(captured, payment(ProviderStatus::Captured, 1000, 0));
    let seen = stripe.only();
    seen.assert_post(&format!("/v1/payment_intents/{INTENT}/capture"), "capture-pay_0001");
    assert_eq!(seen.form, [("amount_to_capture".to_owned(), "1000".to_owned())]);
}

#[tokio::test]
async fn refund_creates_a_refund_then_reads_the_refunded_total() {
    let stripe = fake_stripe(|seen| match seen.path.as_str() {
        "/v1/refunds" => ok(json!({
            "id": "re_3PhoenixTest0001", "object": "refund", "amount": 400, "currency": "eur",
            "payment_intent": INTENT, "charge": "ch_3PhoenixTest0001", "status": "succeeded",
        })),
        _ => ok(intent("succeeded", 1500, 1000, charge(400))),
    })
    .await;

    let refunded = stripe.stripe().refund(INTENT, 400, "refund-pay_0001-1").await.unwrap();

    assert_eq!(refunded, payment(ProviderStatus::Captured, 1000, 400));
    let seen = stripe.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    seen[0].assert_post("/v1/refunds", "refund-pay_0001-1");
    let mut form = seen[0].form.clone();
    form.sort();
    assert_eq!(
        form,
        [
            ("amount".to_owned(), "400".to_owned()),
            ("payment_intent".to_owned(), INTENT.to_owned())
        ]
    );
    assert_eq!(seen[1].method, Method::GET);
    assert_eq!(seen[1].path, format!("/v1/payment_intents/{INTENT}"));
    assert_eq!(seen[1].query, [("expand[]".to_owned(), "latest_charge".to_owned())]);
}

#[tokio::test]
async fn failed_refund_is_rejected() {
    let stripe =
        fake_stripe(|_| ok(json!({ "id": "re_1", "object": "refund", "amount": 400, "status": "failed" }))).await;

    let error = stripe
        .stripe()
        .refund(INTENT, 400, "refund-pay_0001-1")
        .await
        .unwrap_err();

    assert_eq!(kind(&error), "rejected", "{error:?}");
    stripe.only().assert_post("/v1/refunds", "refund-pay_0001-1");
}

#[tokio::test]
async fn void_cancels_the_authorization() {
    let stripe = fake_stripe(|_| ok(intent("canceled", 1500, 0, Value::Null))).await;

    let voided = stripe.stripe().void(INTENT, "void-pay_0001").await.unwrap();

    assert_eq!(voided, payment(ProviderStatus::Voided, 0, 0));
    let seen = stripe.only();
    seen.assert_post(&format!("/v1/payment_intents/{INTENT}/cancel"), "void-pay_0001");
    assert!(seen.form.is_empty(), "{:?}", seen.form);
}

#[tokio::test]
async fn fetch_reads_totals_from_the_intent_and_its_expanded_charge() {
    let stripe = fake_stripe(|_| ok(intent("succeeded", 1500, 1200, charge(250)))).await;

    let fetched = stripe.stripe().fetch(INTENT).await.unwrap();

    assert_eq!(fetched, payment(ProviderStatus::Captured, 1200, 250));
    let seen = stripe.only();
    assert_eq!(seen.method, Method::GET);
    assert_eq!(seen.path, format!("/v1/payment_intents/{INTENT}"));
    assert_eq!(seen.query, [("expand[]".to_owned(), "latest_charge".to_owned())]);
    seen.assert_authenticated();
    assert!(seen.form.is_empty());
}

#[tokio::test]
async fn fetch_maps_each_payment_intent_status() {
    let cases = [
        ("requires_capture", Ok(ProviderStatus::Authorized)),
        ("succeeded", Ok(ProviderStatus::Captured)),
        ("canceled", Ok(ProviderStatus::Voided)),
        ("requires_payment_method", Err("rejected")),
        ("processing", Err("rejected")),
    ];
    for (status, expected) in cases {
        let stripe = fake_stripe(move |_| ok(intent(status, 1500, 0, Value::Null))).await;
        let fetched = stripe.stripe().fetch(INTENT).await;
        match (fetched, expected) {
            (Ok(payment), Ok(expected)) => assert_eq!(payment.status, expected, "{status}"),
            (Err(error), Err(expected)) => assert_eq!(kind(&error), expected, "{status}"),
            (fetched, _) => panic!("{status}: {fetched:?}"),
        }
    }
}

#[tokio::test]
async fn find_searches_our_reference_and_skips_declined_attempts() {
    let stripe = fake_stripe(|_| {
        let mut declined = intent("requires_payment_method", 1500, 0, Value::Null);
        declined["id"] = json!("pi_3PhoenixDeclined");
        ok(json!({
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": false,
            "data": [declined, intent("succeeded", 1500, 1500, charge(300))],
        }))
    })
    .await;

    let found = stripe.stripe().find("pay_0001").await.unwrap();

    assert_eq!(found, Some(payment(ProviderStatus::Captured, 1500, 300)));
    let seen = stripe.only();
    assert_eq!(seen.method, Method::GET);
    assert_eq!(seen.path, "/v1/payment_intents/search");
    seen.assert_authenticated();
    let mut query = seen.query.clone();
    query.sort();
    assert_eq!(
        query,
        [
            ("expand[]".to_owned(), "data.latest_charge".to_owned()),
            ("query".to_owned(), "metadata['reference']:'pay_0001'".to_owned()),
        ]
    );
}

#[tokio::test]
async fn list_pages_through_payment_intents_keeping_those_with_our_reference() {
    // Page one: ours, captured; a declined attempt of ours; one made outside Phoenix. Page two: ours, authorized.
    let stripe = fake_stripe(|seen| {
        let after = seen.query.iter().find(|(name, _)| name == "starting_after");
        match after.map(|(_, value)| value.as_str()) {
            None => {
                let mut declined = intent("requires_payment_method", 1500, 0, Value::Null);
                declined["id"] = json!("pi_3PhoenixDeclined");
                let mut foreign = intent("requires_capture", 900, 0, Value::Null);
                foreign["id"] = json!("pi_3SomeoneElses");
                foreign["metadata"] = json!({ "order": "77" });
                ok(json!({
                    "object": "list",
                    "url": "/v1/payment_intents",
                    "has_more": true,
                    "data": [intent("succeeded", 1500, 1500, charge(300)), declined, foreign],
                }))
            }
            Some("pi_3SomeoneElses") => {
                let mut older = intent("requires_capture", 1500, 0, Value::Null);
                older["id"] = json!("pi_3PhoenixOlder");
                older["metadata"] = json!({ "reference": "pay_0000" });
                ok(json!({ "object": "list", "url": "/v1/payment_intents", "has_more": false, "data": [older] }))
            }
            Some(other) => reply(
                StatusCode::BAD_REQUEST,
                invalid_request("resource_missing", "starting_after", other),
            ),
        }
    })
    .await;
    let provider = stripe.stripe();

    let first = provider.list(None).await.unwrap();
    assert_eq!(
        first.payments,
        [Listed {
            our_reference: "pay_0001".to_owned(),
            payment: payment(ProviderStatus::Captured, 1500, 300),
        }]
    );
    assert_eq!(
        first.next.as_deref(),
        Some("pi_3SomeoneElses"),
        "the page's last intent, kept or not"
    );
    let second = provider.list(first.next.as_deref()).await.unwrap();
    assert_eq!(second.next, None);
    assert_eq!(second.payments.len(), 1);
    assert_eq!(second.payments[0].our_reference, "pay_0000");
    assert_eq!(
        (
            second.payments[0].payment.reference.as_str(),
            second.payments[0].payment.status
        ),
        ("pi_3PhoenixOlder", ProviderStatus::Authorized)
    );

    let seen = stripe.seen();
    assert_eq!(seen.len(), 2);
    for (request, after) in seen.iter().zip([None, Some("pi_3SomeoneElses")]) {
        assert_eq!(
            (request.method.clone(), request.path.as_str()),
            (Method::GET, "/v1/payment_intents")
        );
        request.assert_authenticated();
        let mut query = request.query.clone();
        query.sort();
        let mut expected = vec![
            ("expand[]".to_owned(), "data.latest_charge".to_owned()),
            ("limit".to_owned(), "100".to_owned()),
        ];
        expected.extend(after.map(|id| ("starting_after".to_owned(), id.to_owned())));
        assert_eq!(query, expected);
    }
    // A cursor that could leave the path or rewrite the query is refused unsent.
    assert!(matches!(
        provider.list(Some("pi_1&limit=1")).await,
        Err(ProviderError::Rejected(_))
    ));
    assert_eq!(stripe.seen().len(), 2);
}

#[tokio::test]
async fn find_of_a_reference_stripe_never_saw_is_none() {
    let stripe = fake_stripe(|_| ok(json!({ "object": "search_result", "has_more": false, "data": [] }))).await;

    assert_eq!(stripe.stripe().find("pay_0001").await.unwrap(), None);
    assert_eq!(stripe.only().path, "/v1/payment_intents/search");
}

#[tokio::test]
async fn find_refuses_a_reference_that_could_rewrite_the_search_unsent() {
    let stripe = fake_stripe(|_| ok(json!({ "object": "search_result", "has_more": false, "data": [] }))).await;
    let provider = stripe.stripe();

    for reference in ["", "pay_1' OR status:'succeeded", "pay\\1", "pay 1", &"p".repeat(300)] {
        let error = provider.find(reference).await.unwrap_err();
        assert_eq!(kind(&error), "rejected", "{reference:?}: {error:?}");
    }
    assert!(stripe.seen().is_empty());
}

#[tokio::test]
async fn server_error_is_unavailable() {
    let stripe = fake_stripe(|_| {
        let body = json!({ "error": { "type": "api_error", "message": "An unknown error occurred" } });
        reply(StatusCode::INTERNAL_SERVER_ERROR, body)
    })
    .await;

    let error = stripe
        .stripe()
        .capture(INTENT, 1500, "capture-pay_0001")
        .await
        .unwrap_err();

    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
    assert!(error.is_failure());
}

#[tokio::test]
async fn silent_server_times_out() {
    let stripe = fake_stripe(|_| Reply::Silence).await;

    let error = stripe
        .stripe_with_timeout(1)
        .authorize(&authorization())
        .await
        .unwrap_err();

    assert_eq!(error, ProviderError::Timeout);
    stripe.only().assert_post("/v1/payment_intents", "authorize-pay_0001");
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let stripe = Stripe::new(StripeOptions {
        base_url,
        secret_key: SECRET_KEY.to_owned(),
        timeout_secs: 5,
    })
    .unwrap();

    let error = stripe.fetch(INTENT).await.unwrap_err();

    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_repeated_call_sends_the_same_idempotency_key_and_body() {
    let calls = AtomicUsize::new(0);
    let stripe = fake_stripe(
        move |seen| match (seen.path.as_str(), calls.fetch_add(1, Ordering::SeqCst)) {
            // The first answer is lost to a server error; the caller repeats the call.
            ("/v1/payment_intents", 0) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": { "type": "api_error" } }),
            ),
            ("/v1/payment_intents", _) => ok(intent("requires_capture", 1500, 0, Value::Null)),
            _ => ok(intent("succeeded", 1500, 1500, Value::Null)),
        },
    )
    .await;
    let provider = stripe.stripe();

    assert!(provider.authorize(&authorization()).await.is_err());
    provider.authorize(&authorization()).await.unwrap();
    provider.capture(INTENT, 1500, "capture-pay_0001").await.unwrap();
    provider.capture(INTENT, 1500, "capture-pay_0001").await.unwrap();

    let seen = stripe.seen();
    assert_eq!(seen.len(), 4, "{seen:#?}");
    for pair in seen.chunks(2) {
        assert!(pair[0].header("idempotency-key").is_some());
        assert_eq!(pair[0].header("idempotency-key"), pair[1].header("idempotency-key"));
        assert_eq!(pair[0].form, pair[1].form);
    }
    assert_eq!(seen[0].header("idempotency-key"), Some("authorize-pay_0001"));
    assert_eq!(seen[2].header("idempotency-key"), Some("capture-pay_0001"));
}

#[tokio::test]
async fn ids_that_could_leave_the_path_are_refused_unsent() {
    let stripe = fake_stripe(|_| ok(intent("succeeded", 1500, 1500, Value::Null))).await;
    let provider = stripe.stripe();
    let too_long = "pi_".repeat(100);
    let hostile = [
        "",
        "pi_1/../../v1/refunds",
        "pi_1?expand[]=x",
        "pi_1#",
        "pi%2F1",
        "pi 1",
        "pi_1\n",
        &too_long,
    ];

    for id in hostile {
        let errors = [
            provider.capture(id, 100, "key").await.unwrap_err(),
            provider.refund(id, 100, "key").await.unwrap_err(),
            provider.void(id, "key").await.unwrap_err(),
            provider.fetch(id).await.unwrap_err(),
        ];
        for error in errors {
            assert_eq!(kind(&error), "rejected", "{id:?}: {error:?}");
        }
    }
    assert!(stripe.seen().is_empty());
}

#[tokio::test]
async fn debug_output_never_shows_the_secret_key() {
    let options = StripeOptions {
        base_url: "https://api.stripe.com".to_owned(),
        secret_key: SECRET_KEY.to_owned(),
        timeout_secs: 10,
    };
    let printed = format!("{options:?} {:?}", Stripe::new(options.clone()).unwrap());

    assert!(!printed.contains(SECRET_KEY), "{printed}");
    assert!(printed.contains("api.stripe.com"), "{printed}");
}

#[test]
fn options_refuse_a_missing_key_and_plain_http_beyond_loopback() {
    let valid = StripeOptions {
        secret_key: SECRET_KEY.to_owned(),
        ..StripeOptions::default()
    };
    assert_eq!(valid.base_url, "https://api.stripe.com");
    assert_eq!(valid.validate(), Ok(()));
    let accepted = ["http://127.0.0.1:12111", "http://localhost:12111/", "http://[::1]:8080"];
    for base_url in accepted {
        let options = StripeOptions {
            base_url: base_url.to_owned(),
            ..valid.clone()
        };
        assert_eq!(options.validate(), Ok(()), "{base_url}");
    }
    let refused = [
        StripeOptions {
            secret_key: String::new(),
            ..valid.clone()
        },
        StripeOptions {
            timeout_secs: 0,
            ..valid.clone()
        },
        StripeOptions {
            base_url: "http://api.stripe.com".to_owned(),
            ..valid.clone()
        },
        StripeOptions {
            base_url: "http://127.0.0.1.example.com".to_owned(),
            ..valid.clone()
        },
        StripeOptions {
            base_url: "api.stripe.com".to_owned(),
            ..valid.clone()
        },
    ];
    for options in refused {
        assert!(options.validate().is_err(), "{options:?}");
        assert!(Stripe::new(options).is_err());
    }
}
