use std::sync::Arc;

use async_trait::async_trait;
use phoenix_api::{Problem, Role};
use phoenix_db::Pool;
use phoenix_payment::provider::simulated::EntryKind;
use phoenix_payment::{AuthorizeRequest, Error, ProviderError, Status};
use uuid::Uuid;

use crate::tapped::{Call, Tap, Tapped};
use crate::{
    admin, agent_of, count_rows, customer, env, env_with, events_of, options, principal, request, signed_in_again,
};

phoenix_db::contract_suite!(
    phoenix_payment::migrations(),
    [
        authorize_capture_and_refund_move_money_once_each_with_their_events,
        a_partial_capture_releases_the_rest_and_refunds_stay_within_what_was_captured,
        amounts_above_what_is_left_are_refused_with_stable_codes,
        a_refund_of_at_most_an_amount_returns_what_is_left_and_never_fails_for_want_of_it,
        void_releases_an_uncaptured_authorization_only,
        declines_fail_the_payment_with_the_providers_code,
        client_mistakes_are_refused_before_anything_is_written,
        card_numbers_are_refused_wherever_they_are_sent,
        payments_are_visible_to_their_owner_organization_and_staff_only,
        a_payer_moved_to_another_organization_no_longer_sees_what_they_paid_for_the_first,
        an_operation_that_finds_the_payment_moved_on_writes_no_event,
        events_of_a_booking_payment_carry_the_booking_id_as_correlation_id,
    ]
);

/// A refund decided elsewhere (a booking's cancellation) meets a payment partly refunded directly since: it returns
/// what is left, once, and a second one finds nothing left and is no error.
async fn a_refund_of_at_most_an_amount_returns_what_is_left_and_never_fails_for_want_of_it(pool: Pool) {
    let env = env(pool).await;
    let staff = admin();
    let payer = customer();
    let payment = env
        .service
        .authorize(&payer, request(10_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    env.service.capture(&staff, payment.id, None, "cap-1").await.unwrap();
    env.service
        .refund(&staff, payment.id, Some(3_000), "goodwill", "ref-1")
        .await
        .unwrap();

    // A plain refund of 9,000 is refused; at most 9,000 returns the 7,000 left, and a retry returns the same.
    let plain = env
        .service
        .refund(&staff, payment.id, Some(9_000), "cancelled", "ref-2")
        .await;
    assert!(
        matches!(plain, Err(Error::AmountAboveCaptured { available_minor: 7_000 })),
        "{plain:?}"
    );
    for _ in 0..2 {
        let rest = env
            .service
            .refund_at_most(&staff, payment.id, Some(9_000), "cancelled", "ref-3")
            .await
            .unwrap();
        assert_eq!((rest.status, rest.refunded_minor), (Status::Refunded, 10_000));
    }
    // The same key with a plain refund is another request.
    let reused = env
        .service
        .refund(&staff, payment.id, Some(9_000), "cancelled", "ref-3")
        .await;
    assert!(matches!(reused, Err(Error::IdempotencyKeyReused)), "{reused:?}");
    // Nothing left: the payment as it is, and no money moves.
    let nothing = env
        .service
        .refund_at_most(&staff, payment.id, Some(500), "cancelled", "ref-4")
        .await
        .unwrap();
    assert_eq!((nothing.status, nothing.refunded_minor), (Status::Refunded, 10_000));
    let refunds: Vec<i64> = env
        .ledger(EntryKind::Refund)
        .await
        .into_iter()
        .map(|entry| entry.amount_minor)
        .collect();
    assert_eq!(refunds, [3_000, 7_000]);
    // It still refunds nothing from a payment never captured, and says so.
    let uncaptured = env
        .service
        .authorize(&payer, request(1_000, "tok_visa"), "pay-2")
        .await
        .unwrap();
    let refused = env
        .service
        .refund_at_most(&staff, uncaptured.id, Some(500), "cancelled", "ref-5")
        .await;
    assert!(
        matches!(
            refused,
            Err(Error::NotRefundable {
                status: Status::Authorized
            })
        ),
        "{refused:?}"
    );
}

async fn authorize_capture_and_refund_move_money_once_each_with_their_events(pool: Pool) {
    let env = env(pool.clone()).await;
    let payer = customer();
    let payment = env
        .service
        .authorize(&payer, request(10_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    assert_eq!(payment.status, Status::Authorized);
    assert_eq!((payment.amount_minor, payment.currency.as_str()), (10_000, "EUR"));
    assert_eq!(payment.owner_id, payer.user_id);
    assert_eq!(payment.reference.as_deref(), Some("booking-1"));
    let authorizations = env.ledger(EntryKind::Authorization).await;
    assert_eq!(authorizations.len(), 1);
    assert_eq!(authorizations[0].amount_minor, 10_000);
    assert_eq!(
        payment.provider_reference.as_deref(),
        Some(authorizations[0].reference.as_str())
    );

    let staff = admin();
    let captured = env.service.capture(&staff, payment.id, None, "cap-1").await.unwrap();
    assert_eq!((captured.status, captured.captured_minor), (Status::Captured, 10_000));
    let partly = env
        .service
        .refund(&staff, payment.id, Some(4_000), "late check-in", "ref-1")
        .await
        .unwrap();
    assert_eq!(
        (partly.status, partly.refunded_minor),
        (Status::PartiallyRefunded, 4_000)
    );
    let refunded = env
        .service
        .refund(&staff, payment.id, None, "cancelled", "ref-2")
        .await
        .unwrap();
    assert_eq!((refunded.status, refunded.refunded_minor), (Status::Refunded, 10_000));

    assert_eq!(env_amounts(&env, EntryKind::Capture).await, vec![10_000]);
    assert_eq!(env_amounts(&env, EntryKind::Refund).await, vec![4_000, 6_000]);
    assert_eq!(events_of(&pool, "payment.authorized.v1").await.len(), 1);
    assert_eq!(events_of(&pool, "payment.captured.v1").await.len(), 1);
    let refunds = events_of(&pool, "payment.refunded.v1").await;
    assert_eq!(refunds.len(), 2);
    assert_eq!(refunds[1]["status"], "refunded");
    assert_eq!(refunds[1]["operation"]["reason"], "cancelled");
    for event in pool.unpublished_events(1_000).await.unwrap() {
        assert_eq!(event.source, phoenix_payment::SOURCE);
        assert!(
            !event.data.0.to_string().contains("tok_"),
            "no token in {}",
            event.event_type
        );
    }
    let history = env.service.operations(&payer, payment.id).await.unwrap();
    let kinds: Vec<&str> = history.iter().map(|o| o.kind.as_str()).collect();
    assert_eq!(kinds, ["authorize", "capture", "refund", "refund"]);
    assert!(history.iter().all(|o| o.outcome.as_str() == "succeeded"));
}

async fn env_amounts(env: &crate::Env, kind: EntryKind) -> Vec<i64> {
    env.ledger(kind).await.iter().map(|e| e.amount_minor).collect()
}

async fn a_partial_capture_releases_the_rest_and_refunds_stay_within_what_was_captured(pool: Pool) {
    let env = env(pool).await;
    let staff = admin();
    let payment = env
        .service
        .authorize(&customer(), request(10_000, "tok_mastercard"), "pay-1")
        .await
        .unwrap();
    let captured = env
        .service
        .capture(&staff, payment.id, Some(6_000), "cap-1")
        .await
        .unwrap();
    assert_eq!((captured.status, captured.captured_minor), (Status::Captured, 6_000));
    let again = env.service.capture(&staff, payment.id, Some(1_000), "cap-2").await;
    assert!(
        matches!(
            again,
            Err(Error::NotCapturable {
                status: Status::Captured
            })
        ),
        "one capture per authorization: {again:?}"
    );

    let too_much = env.service.refund(&staff, payment.id, Some(6_001), "r", "ref-0").await;
    assert!(
        matches!(too_much, Err(Error::AmountAboveCaptured { available_minor: 6_000 })),
        "{too_much:?}"
    );
    env.service
        .refund(&staff, payment.id, Some(2_500), "r", "ref-1")
        .await
        .unwrap();
    let rest = env
        .service
        .refund(&staff, payment.id, Some(3_500), "r", "ref-2")
        .await
        .unwrap();
    assert_eq!((rest.status, rest.refunded_minor), (Status::Refunded, 6_000));
    let more = env.service.refund(&staff, payment.id, Some(1), "r", "ref-3").await;
    assert!(
        matches!(
            more,
            Err(Error::NotRefundable {
                status: Status::Refunded
            })
        ),
        "{more:?}"
    );
    assert_eq!(env_amounts(&env, EntryKind::Capture).await, vec![6_000]);
    assert_eq!(env_amounts(&env, EntryKind::Refund).await, vec![2_500, 3_500]);
}

async fn amounts_above_what_is_left_are_refused_with_stable_codes(pool: Pool) {
    let env = env(pool).await;
    let staff = admin();
    let payment = env
        .service
        .authorize(&customer(), request(10_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    let over = env
        .service
        .capture(&staff, payment.id, Some(10_001), "cap-1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            over,
            Error::AmountAboveAuthorized {
                available_minor: 10_000
            }
        ),
        "{over:?}"
    );
    let problem = Problem::from(over);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (422, "amount_exceeds_authorized")
    );
    assert_eq!(problem.extensions["available_minor"], 10_000);

    let early = env
        .service
        .refund(&staff, payment.id, None, "r", "ref-1")
        .await
        .unwrap_err();
    let problem = Problem::from(early);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (409, "payment_not_refundable")
    );
    assert_eq!(problem.extensions["payment_status"], "authorized");
    assert!(env.ledger(EntryKind::Capture).await.is_empty());
    assert!(env.ledger(EntryKind::Refund).await.is_empty());
    let still = env.service.payment(&staff, payment.id).await.unwrap();
    assert_eq!((still.status, still.captured_minor), (Status::Authorized, 0));
}

async fn void_releases_an_uncaptured_authorization_only(pool: Pool) {
    let env = env(pool.clone()).await;
    let staff = admin();
    let payer = customer();
    let first = env
        .service
        .authorize(&payer, request(5_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    let voided = env.service.void(&staff, first.id, "void-1").await.unwrap();
    assert_eq!(voided.status, Status::Voided);
    assert_eq!(env_amounts(&env, EntryKind::Void).await, vec![5_000]);
    assert_eq!(events_of(&pool, "payment.voided.v1").await.len(), 1);
    let late = env.service.capture(&staff, first.id, None, "cap-1").await;
    assert!(
        matches!(late, Err(Error::NotCapturable { status: Status::Voided })),
        "{late:?}"
    );

    let second = env
        .service
        .authorize(&payer, request(5_000, "tok_visa"), "pay-2")
        .await
        .unwrap();
    env.service.capture(&staff, second.id, None, "cap-2").await.unwrap();
    let refused = env.service.void(&staff, second.id, "void-2").await.unwrap_err();
    assert!(
        matches!(
            refused,
            Error::NotVoidable {
                status: Status::Captured
            }
        ),
        "{refused:?}"
    );
    assert_eq!(Problem::from(refused).code, "payment_not_voidable");
    assert_eq!(env.ledger(EntryKind::Void).await.len(), 1);
}

async fn declines_fail_the_payment_with_the_providers_code(pool: Pool) {
    let env = env(pool.clone()).await;
    let payer = customer();
    let cases = [
        ("tok_decline", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
        ("tok_expired_card", "expired_card"),
        ("tok_nobody_issued_this", "invalid_token"),
    ];
    for (i, (token, code)) in cases.into_iter().enumerate() {
        let declined = env
            .service
            .authorize(&payer, request(1_000, token), &format!("pay-{i}"))
            .await
            .unwrap_err();
        let Error::Declined {
            payment_id,
            decline_code,
        } = &declined
        else {
            panic!("{token}: expected a decline, got {declined:?}");
        };
        assert_eq!(decline_code, code);
        let payment = env.service.payment(&payer, *payment_id).await.unwrap();
        assert_eq!(payment.status, Status::Failed);
        assert_eq!(payment.failure_code.as_deref(), Some("payment_declined"));
        assert_eq!(payment.decline_code.as_deref(), Some(code));
        let problem = Problem::from(declined);
        assert_eq!(
            (problem.status.as_u16(), problem.code.as_ref()),
            (402, "payment_declined")
        );
        assert_eq!(problem.extensions["decline_code"], code);
    }
    assert!(
        env.ledger(EntryKind::Authorization).await.is_empty(),
        "a decline moves no money"
    );
    assert_eq!(events_of(&pool, "payment.failed.v1").await.len(), 4);
}

async fn client_mistakes_are_refused_before_anything_is_written(pool: Pool) {
    let env = env(pool.clone()).await;
    let payer = customer();
    let max = env.service.options().max_amount_minor;
    let bad = |amount_minor: i64, currency: &str, token: &str, reference: Option<String>| AuthorizeRequest {
        amount_minor,
        currency: currency.to_owned(),
        payment_token: token.to_owned(),
        reference,
    };
    let cases = [
        (bad(0, "EUR", "tok_visa", None), "amount_minor"),
        (bad(-5, "EUR", "tok_visa", None), "amount_minor"),
        (bad(max + 1, "EUR", "tok_visa", None), "amount_minor"),
        (bad(100, "eur", "tok_visa", None), "currency"),
        (bad(100, "EURO", "tok_visa", None), "currency"),
        // Three upper-case letters, but no currency the platform takes.
        (bad(100, "ZZZ", "tok_visa", None), "currency"),
        (bad(100, "XXX", "tok_visa", None), "currency"),
        (bad(100, "EUR", "", None), "payment_token"),
        (bad(100, "EUR", "tok visa", None), "payment_token"),
        (bad(100, "EUR", "tok_visa", Some("x".repeat(256))), "reference"),
        (bad(100, "EUR", "tok_visa", Some("line\nbreak".to_owned())), "reference"),
    ];
    for (i, (request, field)) in cases.into_iter().enumerate() {
        let error = env
            .service
            .authorize(&payer, request, &format!("k-{i}"))
            .await
            .unwrap_err();
        let problem = Problem::from(error);
        assert_eq!(
            (problem.status.as_u16(), problem.code.as_ref()),
            (422, "invalid_fields"),
            "{field}"
        );
        assert_eq!(problem.errors[0].field, field);
    }
    for key in ["", "with space", &"k".repeat(256)] {
        let error = env
            .service
            .authorize(&payer, request(100, "tok_visa"), key)
            .await
            .unwrap_err();
        assert_eq!(Problem::from(error).code, "invalid_idempotency_key");
    }
    let payment = env
        .service
        .authorize(&payer, request(100, "tok_visa"), "ok")
        .await
        .unwrap();
    let staff = admin();
    for (amount, key) in [(Some(0), "c-0"), (Some(-1), "c-1"), (Some(max + 1), "c-2")] {
        let error = env.service.capture(&staff, payment.id, amount, key).await.unwrap_err();
        assert_eq!(Problem::from(error).code, "invalid_fields");
    }
    let captured = env.service.capture(&staff, payment.id, None, "cap").await.unwrap();
    for (reason, key) in [("", "r-0"), ("   ", "r-1"), (&*"r".repeat(501), "r-2")] {
        let error = env
            .service
            .refund(&staff, captured.id, Some(1), reason, key)
            .await
            .unwrap_err();
        assert_eq!(Problem::from(error).errors[0].field, "reason");
    }
    let unknown = env
        .service
        .capture(&staff, Uuid::now_v7(), None, "c-3")
        .await
        .unwrap_err();
    assert_eq!(Problem::from(unknown).status.as_u16(), 404);
    assert_eq!(
        count_rows(&pool, "payments").await,
        1,
        "only the valid request wrote a payment"
    );
    assert_eq!(count_rows(&pool, "payment_operations").await, 2);
}

async fn card_numbers_are_refused_wherever_they_are_sent(pool: Pool) {
    let env = env(pool.clone()).await;
    let payer = customer();
    let token = env
        .service
        .authorize(&payer, request(1_000, "4242 4242 4242 4242"), "pay-1")
        .await
        .unwrap_err();
    assert!(
        matches!(token, Error::CardNumberNotAllowed { field: "payment_token" }),
        "{token:?}"
    );
    let problem = Problem::from(token);
    assert_eq!(
        (problem.status.as_u16(), problem.code.as_ref()),
        (422, "card_number_not_allowed")
    );
    assert!(
        !problem.detail.clone().unwrap_or_default().contains("4242"),
        "the number is not echoed back"
    );

    let mut with_reference = request(1_000, "tok_visa");
    with_reference.reference = Some("card 5555-5555-5555-4444".to_owned());
    let reference = env
        .service
        .authorize(&payer, with_reference, "pay-2")
        .await
        .unwrap_err();
    assert!(
        matches!(reference, Error::CardNumberNotAllowed { field: "reference" }),
        "{reference:?}"
    );

    let payment = env
        .service
        .authorize(&payer, request(1_000, "tok_visa"), "pay-3")
        .await
        .unwrap();
    let staff = admin();
    env.service.capture(&staff, payment.id, None, "cap").await.unwrap();
    let reason = env
        .service
        .refund(&staff, payment.id, None, "charged twice on 4000056655665556", "ref-1")
        .await
        .unwrap_err();
    assert!(
        matches!(reason, Error::CardNumberNotAllowed { field: "reason" }),
        "{reason:?}"
    );
    assert_eq!(count_rows(&pool, "payments").await, 1);
    assert_eq!(
        env.requests_received().await,
        2,
        "only the valid authorization and capture reached the provider"
    );
}

async fn payments_are_visible_to_their_owner_organization_and_staff_only(pool: Pool) {
    let env = env(pool).await;
    let agency = Uuid::now_v7();
    let desk = agent_of(agency);
    let payment = env
        .service
        .authorize(&desk, request(2_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    assert_eq!(payment.organization_id, Some(agency));

    let colleague = agent_of(agency);
    let partner = principal(&[Role::Partner], Some(agency));
    let support = principal(&[Role::Support], None);
    for viewer in [&desk, &colleague, &partner, &support, &admin()] {
        assert_eq!(env.service.payment(viewer, payment.id).await.unwrap().id, payment.id);
    }
    let stranger = customer();
    let rival = agent_of(Uuid::now_v7());
    let operator = principal(&[Role::Operator], Some(agency));
    for viewer in [&stranger, &rival, &operator] {
        assert!(matches!(
            env.service.payment(viewer, payment.id).await,
            Err(Error::NotFound)
        ));
    }
    let denied = env.service.capture(&rival, payment.id, None, "cap-rival").await;
    assert!(matches!(denied, Err(Error::NotFound)), "{denied:?}");
    assert!(env.ledger(EntryKind::Capture).await.is_empty());
    let captured = env
        .service
        .capture(&colleague, payment.id, None, "cap-1")
        .await
        .unwrap();
    assert_eq!(captured.status, Status::Captured);

    // A customer's own payment is theirs alone.
    let payer = customer();
    let own = env
        .service
        .authorize(&payer, request(100, "tok_visa"), "pay-2")
        .await
        .unwrap();
    assert!(matches!(
        env.service.payment(&stranger, own.id).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(env.service.payment(&desk, own.id).await, Err(Error::NotFound)));
}

async fn a_payer_moved_to_another_organization_no_longer_sees_what_they_paid_for_the_first(pool: Pool) {
    let env = env(pool).await;
    let (agency, rival) = (Uuid::now_v7(), Uuid::now_v7());
    let (desk, colleague) = (agent_of(agency), agent_of(agency));
    let authorized = env
        .service
        .authorize(&desk, request(2_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    let captured = env
        .service
        .authorize(&desk, request(3_000, "tok_visa"), "pay-2")
        .await
        .unwrap();
    let captured = env.service.capture(&desk, captured.id, None, "cap-2").await.unwrap();

    // An admin moves the desk to the rival agency, or takes the agency away; they sign in again.
    let moved = signed_in_again(&desk, &[Role::Agent], Some(rival));
    let demoted = signed_in_again(&desk, &[Role::Customer], None);
    for former in [&moved, &demoted] {
        for payment in [authorized.id, captured.id] {
            let seen = env.service.payment(former, payment).await;
            assert!(matches!(seen, Err(Error::NotFound)), "{seen:?}");
            let history = env.service.operations(former, payment).await;
            assert!(matches!(history, Err(Error::NotFound)), "{history:?}");
        }
        let key = |what: &str| format!("{what}-{}", former.organization_id.is_some());
        let capture = env.service.capture(former, authorized.id, None, &key("cap")).await;
        assert!(matches!(capture, Err(Error::NotFound)), "{capture:?}");
        let void = env.service.void(former, authorized.id, &key("void")).await;
        assert!(matches!(void, Err(Error::NotFound)), "{void:?}");
        let refund = env
            .service
            .refund(former, captured.id, Some(1_000), "goodwill", &key("refund"))
            .await;
        assert!(matches!(refund, Err(Error::NotFound)), "{refund:?}");
        let refund = env
            .service
            .refund_at_most(former, captured.id, None, "goodwill", &key("refund-most"))
            .await;
        assert!(matches!(refund, Err(Error::NotFound)), "{refund:?}");
    }
    assert_eq!(
        env.service.payment(&colleague, authorized.id).await.unwrap(),
        authorized
    );
    assert_eq!(env.service.payment(&colleague, captured.id).await.unwrap(), captured);
    for kind in [EntryKind::Void, EntryKind::Refund] {
        assert!(env.ledger(kind).await.is_empty(), "{kind:?} reached the provider");
    }
    assert_eq!(
        env.ledger(EntryKind::Capture).await.len(),
        1,
        "only the desk's own capture"
    );

    // A customer's own payment stays theirs when they join an agency; a member of an organization who pays for
    // their own booking (the saga acts as them) sees and settles it while a member, and not after.
    let payer = customer();
    let own = env
        .service
        .authorize(&payer, request(100, "tok_visa"), "pay-3")
        .await
        .unwrap();
    let payer_at_agency = signed_in_again(&payer, &[Role::Agent], Some(rival));
    assert_eq!(env.service.payment(&payer_at_agency, own.id).await.unwrap(), own);
    let member = principal(&[Role::Customer], Some(agency));
    let members = env
        .service
        .authorize(&member, request(400, "tok_visa"), "pay-4")
        .await
        .unwrap();
    assert_eq!(members.organization_id, Some(agency));
    let members = env.service.capture(&member, members.id, None, "cap-4").await.unwrap();
    assert_eq!(members.status, Status::Captured);
    let member_elsewhere = signed_in_again(&member, &[Role::Customer], Some(rival));
    assert!(matches!(
        env.service.payment(&member_elsewhere, members.id).await,
        Err(Error::NotFound)
    ));
}

/// While a capture is at the provider the payment moves on in our books (as another process or reconciliation could
/// move it): the capture then finishes against a payment it no longer applies to.
struct MovesOnDuringCapture {
    pool: Pool,
}

#[async_trait]
impl Tap for MovesOnDuringCapture {
    async fn before(&self, call: Call) -> Result<(), ProviderError> {
        if call == Call::Capture {
            phoenix_db::dispatch!(&self.pool, conn => {
                sqlx::query("UPDATE payments SET status = 'voided'").execute(conn).await.map(|done| done.rows_affected())
            })
            .unwrap();
        }
        Ok(())
    }
}

async fn an_operation_that_finds_the_payment_moved_on_writes_no_event(pool: Pool) {
    let moving = pool.clone();
    let env = env_with(pool.clone(), options(), move |inner| {
        Arc::new(Tapped {
            inner,
            tap: MovesOnDuringCapture { pool: moving },
        })
    })
    .await;
    let payer = customer();
    let payment = env
        .service
        .authorize(&payer, request(5_000, "tok_visa"), "pay-1")
        .await
        .unwrap();
    let _ = env.service.capture(&admin(), payment.id, None, "cap-1").await;

    let now = env.service.payment(&payer, payment.id).await.unwrap();
    assert_eq!(
        (now.status, now.captured_minor),
        (Status::Voided, 0),
        "the capture did not apply"
    );
    assert_eq!(
        events_of(&pool, "payment.captured.v1").await,
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(events_of(&pool, "payment.authorized.v1").await.len(), 1);
}

async fn events_of_a_booking_payment_carry_the_booking_id_as_correlation_id(pool: Pool) {
    let env = env(pool.clone()).await;
    let payer = customer();
    let booking_id = Uuid::now_v7();
    let for_booking = AuthorizeRequest {
        reference: Some(booking_id.to_string()),
        ..request(5_000, "tok_visa")
    };
    let booked = env.service.authorize(&payer, for_booking, "pay-1").await.unwrap();
    env.service.capture(&admin(), booked.id, None, "cap-1").await.unwrap();
    let other = env
        .service
        .authorize(&payer, request(5_000, "tok_visa"), "pay-2")
        .await
        .unwrap();

    let events = pool.unpublished_events(100).await.unwrap();
    let correlation = |payment_id: Uuid| -> Vec<Option<String>> {
        events
            .iter()
            .filter(|e| e.subject == payment_id.to_string())
            .map(|e| e.correlation_id.clone())
            .collect()
    };
    let expected = Some(booking_id.to_string());
    assert_eq!(correlation(booked.id), [expected.clone(), expected]);
    assert_eq!(
        correlation(other.id),
        [None],
        "a free-text reference correlates nothing"
    );
}
