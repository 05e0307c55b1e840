//! Payment over HTTP: the public API with its role checks, and the internal routes behind the remote client. Each
//! router runs on port 0 behind the internal layer, which turns the principal headers a caller sends into the
//! request's principal as the gateway would.

use std::time::Duration;

use axum::http::Method;
use phoenix_api::{Principal, Problem, Role, remote};
use phoenix_db::Pool;
use phoenix_payment::provider::simulated::EntryKind;
use phoenix_payment::{CaptureRequest, Client, PaymentView, RefundRequest, Service, Status};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{admin, agent_of, customer, env, principal, request};

phoenix_db::contract_suite!(
    phoenix_payment::migrations(),
    [
        a_decline_is_the_same_402_through_the_local_and_the_remote_client,
        the_remote_client_moves_money_once_per_key,
        the_public_api_checks_roles_keys_and_bodies,
    ]
);

const TOKEN: &str = "an-internal-token-of-at-least-32-characters";

/// Serves `router` on a free port behind the internal layer; returns a client for it.
async fn serve(router: axum::Router) -> remote::Client {
    let router = router.layer(phoenix_api::internal::Layer::new(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    remote::Client::new(&format!("http://{address}"), TOKEN, Duration::from_secs(30)).unwrap()
}

fn public(service: &Service) -> axum::Router {
    phoenix_payment::api().with_state(service.clone()).split_for_parts().0
}

async fn a_decline_is_the_same_402_through_the_local_and_the_remote_client(pool: Pool) {
    let env = env(pool).await;
    let local = Client::Local(env.service.clone());
    let remote = Client::Remote(serve(phoenix_payment::internal_router(env.service.clone())).await);
    let payer = customer();
    let mut problems = Vec::new();
    for (client, key) in [(&local, "local-1"), (&remote, "remote-1")] {
        let problem = client
            .authorize(&payer, &request(1_000, "tok_expired_card"), key)
            .await
            .unwrap_err();
        assert_eq!(
            (problem.status.as_u16(), problem.code.as_ref()),
            (402, "payment_declined")
        );
        assert_eq!(problem.extensions["decline_code"], "expired_card");
        problems.push(problem);
    }
    let same = |p: &Problem| (p.type_uri.clone(), p.title.clone(), p.detail.clone(), p.errors.clone());
    assert_eq!(same(&problems[0]), same(&problems[1]));
    // Both failed payments are there, seen alike through either client.
    for problem in &problems {
        let id: Uuid = problem.extensions["payment_id"].as_str().unwrap().parse().unwrap();
        let through_local = local.payment(&payer, id).await.unwrap();
        let through_remote = remote.payment(&payer, id).await.unwrap();
        assert_eq!(through_local, through_remote);
        assert_eq!(through_remote.status, Status::Failed);
        assert_eq!(through_remote.decline_code.as_deref(), Some("expired_card"));
    }
}

async fn the_remote_client_moves_money_once_per_key(pool: Pool) {
    let env = env(pool).await;
    let remote = Client::Remote(serve(phoenix_payment::internal_router(env.service.clone())).await);
    let payer = customer();
    let first = remote
        .authorize(&payer, &request(9_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    let again = remote
        .authorize(&payer, &request(9_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(first.status, Status::Authorized);

    // The saga acts for the payer: no role is needed on internal routes, visibility still applies.
    let captured = remote.capture(&payer, first.id, Some(7_000), "cap-1").await.unwrap();
    assert_eq!(
        remote.capture(&payer, first.id, Some(7_000), "cap-1").await.unwrap(),
        captured
    );
    let (refunded, amount) = remote
        .refund(&payer, first.id, (Some(2_000), false), "late", "ref-1")
        .await
        .unwrap();
    assert_eq!(
        (refunded.status, refunded.refunded_minor, amount),
        (Status::PartiallyRefunded, 2_000, Some(2_000))
    );
    // At most an amount, as a booking's cancellation refunds: what is left, over the wire too, and that amount is
    // what this refund returned.
    let (rest, amount) = remote
        .refund(&payer, first.id, (Some(9_000), true), "cancelled", "ref-2")
        .await
        .unwrap();
    assert_eq!(
        (rest.status, rest.refunded_minor, amount),
        (Status::Refunded, 7_000, Some(5_000))
    );
    let stranger = remote.capture(&customer(), first.id, None, "cap-x").await.unwrap_err();
    assert_eq!(stranger.status.as_u16(), 404);

    let other = remote
        .authorize(&payer, &request(1_000, "tok_visa"), "pay-2")
        .await
        .unwrap();
    let voided = remote.void(&payer, other.id, "void-1").await.unwrap();
    assert_eq!(voided.status, Status::Voided);
    let bad_key = remote.void(&payer, other.id, "two words").await.unwrap_err();
    assert_eq!(bad_key.code, "invalid_idempotency_key");

    assert_eq!(env.ledger(EntryKind::Authorization).await.len(), 2);
    assert_eq!(env.ledger(EntryKind::Capture).await.len(), 1);
    assert_eq!(env.ledger(EntryKind::Refund).await.len(), 2);
    assert_eq!(env.ledger(EntryKind::Void).await.len(), 1);
}

/// One call to the public API as `principal`: the JSON body, or the problem.
async fn call(
    client: &remote::Client,
    method: Method,
    path: &str,
    body: Option<Value>,
    principal: &Principal,
    key: Option<&str>,
) -> Result<Value, Problem> {
    client
        .call_keyed(method, path, body.as_ref(), Some(principal), key)
        .await
        .map_err(Problem::from)
}

async fn the_public_api_checks_roles_keys_and_bodies(pool: Pool) {
    let env = env(pool).await;
    let api = serve(public(&env.service)).await;
    let agency = Uuid::now_v7();
    let desk = agent_of(agency);
    let body = json!({"amount_minor": 5_000, "currency": "EUR", "payment_token": "tok_visa", "reference": "b-1"});

    // Customers pay through their bookings, and support gives money back but takes none: neither authorizes here,
    // so a stolen card cannot be tried against the provider with authorizations nobody settles.
    for (who, key) in [(customer(), "k-c"), (principal(&[Role::Support], None), "k-s")] {
        let refused = call(
            &api,
            Method::POST,
            "/api/v1/payments",
            Some(body.clone()),
            &who,
            Some(key),
        )
        .await
        .unwrap_err();
        assert_eq!((refused.status.as_u16(), refused.code.as_ref()), (403, "forbidden"));
    }
    assert!(
        env.ledger(EntryKind::Authorization).await.is_empty(),
        "nothing reached the provider"
    );
    let unkeyed = call(&api, Method::POST, "/api/v1/payments", Some(body.clone()), &desk, None).await;
    assert_eq!(unkeyed.unwrap_err().code, "idempotency_key_required");
    let card = json!({"amount_minor": 5_000, "currency": "EUR", "payment_token": "4111111111111111"});
    let refused = call(&api, Method::POST, "/api/v1/payments", Some(card), &desk, Some("k-0")).await;
    let refused = refused.unwrap_err();
    assert_eq!(
        (refused.status.as_u16(), refused.code.as_ref()),
        (422, "card_number_not_allowed")
    );
    let unknown_field = json!({"amount_minor": 5_000, "currency": "EUR", "payment_token": "tok_visa", "cvc": "123"});
    let unknown = call(
        &api,
        Method::POST,
        "/api/v1/payments",
        Some(unknown_field),
        &desk,
        Some("k-1"),
    )
    .await;
    assert_eq!(unknown.unwrap_err().status.as_u16(), 422);

    let created = call(&api, Method::POST, "/api/v1/payments", Some(body), &desk, Some("k-2"))
        .await
        .unwrap();
    let view: PaymentView = serde_json::from_value(created.clone()).unwrap();
    assert_eq!(view.status, Status::Authorized);
    assert!(
        created["created_at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC: {created}"
    );
    assert!(created.get("decline_code").is_none());

    let path = |action: &str| format!("/api/v1/payments/{}/{action}", view.id);
    let capture = serde_json::to_value(CaptureRequest {
        amount_minor: Some(4_000),
    })
    .unwrap();
    let payer_only = call(
        &api,
        Method::POST,
        &path("capture"),
        Some(capture.clone()),
        &customer(),
        Some("c-1"),
    )
    .await;
    assert_eq!(payer_only.unwrap_err().status.as_u16(), 403, "customers do not capture");
    let staff = principal(&[Role::Support], None);
    let support_captures = call(
        &api,
        Method::POST,
        &path("capture"),
        Some(capture.clone()),
        &staff,
        Some("c-0"),
    )
    .await;
    assert_eq!(
        support_captures.unwrap_err().status.as_u16(),
        403,
        "support does not capture"
    );
    let rival = agent_of(Uuid::now_v7());
    let elsewhere = call(
        &api,
        Method::POST,
        &path("capture"),
        Some(capture.clone()),
        &rival,
        Some("c-2"),
    )
    .await;
    assert_eq!(
        elsewhere.unwrap_err().status.as_u16(),
        404,
        "another organization's payment does not exist"
    );
    let colleague = agent_of(agency);
    let captured = call(
        &api,
        Method::POST,
        &path("capture"),
        Some(capture),
        &colleague,
        Some("c-3"),
    )
    .await
    .unwrap();
    assert_eq!(captured["captured_minor"], 4_000);

    // Support gives money back (a goodwill refund), and an admin the rest.
    let goodwill = serde_json::to_value(RefundRequest {
        amount_minor: Some(1_000),
        reason: "goodwill".to_owned(),
        at_most: false,
    })
    .unwrap();
    let given = call(&api, Method::POST, &path("refund"), Some(goodwill), &staff, Some("r-0"))
        .await
        .unwrap();
    assert_eq!(given["refunded_minor"], 1_000);
    let refund = serde_json::to_value(RefundRequest {
        amount_minor: None,
        reason: "cancelled".to_owned(),
        at_most: false,
    })
    .unwrap();
    let refunded = call(&api, Method::POST, &path("refund"), Some(refund), &admin(), Some("r-1"))
        .await
        .unwrap();
    assert_eq!(
        (refunded["status"].as_str(), refunded["refunded_minor"].as_i64()),
        (Some("refunded"), Some(4_000))
    );
    let void = call(&api, Method::POST, &path("void"), None, &desk, Some("v-1"))
        .await
        .unwrap_err();
    assert_eq!(
        (void.status.as_u16(), void.code.as_ref()),
        (409, "payment_not_voidable")
    );
    assert_eq!(void.extensions["payment_status"], "refunded");

    let read = call(
        &api,
        Method::GET,
        &format!("/api/v1/payments/{}", view.id),
        None,
        &desk,
        None,
    )
    .await;
    assert_eq!(read.unwrap()["status"], "refunded");
    let hidden = call(
        &api,
        Method::GET,
        &format!("/api/v1/payments/{}", view.id),
        None,
        &customer(),
        None,
    )
    .await;
    assert_eq!(hidden.unwrap_err().status.as_u16(), 404);

    let (_, openapi) = phoenix_payment::api().split_for_parts();
    for route in [
        "/api/v1/payments",
        "/api/v1/payments/{payment_id}/capture",
        "/api/v1/payments/{payment_id}",
    ] {
        assert!(openapi.paths.paths.contains_key(route), "{route} is documented");
    }
}
