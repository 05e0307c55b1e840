//! The API: who sees a booking's delivery log, preferences, templates.

use phoenix_api::Role;
use phoenix_db::Pool;
use serde_json::json;

use crate::{Booking, call, consumer, options, principal, principal_for, service};

phoenix_db::contract_suite!(
    phoenix_notification::migrations(),
    [
        the_delivery_log_shows_a_booking_to_its_people_only,
        transactional_messages_cannot_be_opted_out_of,
        admins_edit_templates_that_must_render,
        template_subjects_are_one_line_and_bodies_keep_their_line_breaks,
        admins_see_the_events_the_consumer_gave_up_on,
    ]
);

async fn the_delivery_log_shows_a_booking_to_its_people_only(pool: Pool) {
    let service = service(pool, options()).await;
    let booking = Booking::new();
    // The agency that booked calls its own endpoint, whose URL carries its token.
    let desk = principal(&[Role::Agent], booking.organization_id);
    let hooks =
        json!({ "url": "https://agency.example.com/hooks?token=SECRET", "event_types": ["booking.confirmed.v1"] });
    assert_eq!(
        call(&service, &desk, "POST", "/api/v1/webhooks", Some(hooks)).await.0,
        201
    );
    consumer(&service)
        .apply(&[booking.event("booking.confirmed.v1", 0)])
        .await
        .unwrap();
    let uri = format!("/api/v1/notifications?booking_id={}", booking.id);
    let owner = principal_for(booking.customer_id, &[Role::Customer], None);
    let (status, log) = call(&service, &owner, "GET", &uri, None).await;
    assert_eq!(status, 200);
    let items = log["items"].as_array().unwrap();
    let kinds: Vec<_> = items.iter().map(|item| item["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["confirmed", "reminder"],
        "the customer never sees the agency's webhook calls"
    );
    assert_eq!(items[0]["recipient"], "j***@example.com", "masked");
    for (who, expected, n_items) in [
        (principal(&[Role::Customer], None), 404, 0),
        (desk, 200, 3),
        (principal(&[Role::Agent], Some(uuid::Uuid::now_v7())), 404, 0),
        (principal(&[Role::Support], None), 200, 3),
        (principal(&[Role::Admin], None), 200, 3),
    ] {
        let (status, log) = call(&service, &who, "GET", &uri, None).await;
        assert_eq!(status, expected, "{:?}", who.roles);
        let n = log["items"].as_array().map_or(0, Vec::len);
        assert_eq!(n, n_items, "{:?}: {log}", who.roles);
    }
    let unknown = format!("/api/v1/notifications?booking_id={}", uuid::Uuid::now_v7());
    assert_eq!(call(&service, &owner, "GET", &unknown, None).await.0, 404);
}

async fn transactional_messages_cannot_be_opted_out_of(pool: Pool) {
    let service = service(pool, options()).await;
    let user = principal(&[Role::Customer], None);
    let (status, preferences) = call(&service, &user, "GET", "/api/v1/notifications/preferences", None).await;
    assert_eq!((status, preferences), (200, json!({ "locale": "en", "opt_out": [] })));
    let body = json!({ "locale": "en", "opt_out": [{ "kind": "confirmed", "channel": "email" }] });
    let (status, problem) = call(&service, &user, "PUT", "/api/v1/notifications/preferences", Some(body)).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("transactional_message")));
    let body = json!({ "locale": "fr", "opt_out": [] });
    assert_eq!(
        call(&service, &user, "PUT", "/api/v1/notifications/preferences", Some(body))
            .await
            .0,
        422
    );
    let body = json!({ "locale": "de", "opt_out": [{ "kind": "reminder", "channel": "sms" }] });
    let (status, saved) = call(
        &service,
        &user,
        "PUT",
        "/api/v1/notifications/preferences",
        Some(body.clone()),
    )
    .await;
    assert_eq!((status, saved), (200, body));
}

async fn admins_edit_templates_that_must_render(pool: Pool) {
    let service = service(pool, options()).await;
    let admin = principal(&[Role::Admin], None);
    let (status, list) = call(&service, &admin, "GET", "/api/v1/notifications/templates", None).await;
    assert_eq!(status, 200);
    // Five booking kinds on two channels and the password reset by email only, in two locales.
    assert_eq!(list["items"].as_array().unwrap().len(), 22);
    let uri = "/api/v1/notifications/templates/confirmed/email/de";
    let broken = json!({ "subject": "Buchung {{ locator", "text": "x", "html": "<p>x</p>" });
    let (status, problem) = call(&service, &admin, "PUT", uri, Some(broken)).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (422, Some("template_invalid")),
        "{problem}"
    );
    let typo = json!({ "subject": "Buchung {{ locatr }}", "text": "x", "html": "<p>x</p>" });
    assert_eq!(call(&service, &admin, "PUT", uri, Some(typo)).await.0, 422);
    let good =
        json!({ "subject": "Bestätigt: {{ locator }}", "text": "Summe {{ total }}", "html": "<p>{{ locator }}</p>" });
    assert_eq!(call(&service, &admin, "PUT", uri, Some(good)).await.0, 200);
    let (_, list) = call(&service, &admin, "GET", "/api/v1/notifications/templates", None).await;
    let edited = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "confirmed" && t["channel"] == "email" && t["locale"] == "de")
        .unwrap()
        .clone();
    assert_eq!(
        (edited["customized"].as_bool(), edited["text"].as_str()),
        (Some(true), Some("Summe {{ total }}"))
    );
    let agent = principal(&[Role::Agent], Some(uuid::Uuid::now_v7()));
    assert_eq!(
        call(&service, &agent, "GET", "/api/v1/notifications/templates", None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(
            &service,
            &admin,
            "PUT",
            "/api/v1/notifications/templates/nope/email/en",
            Some(json!({"text": "x"}))
        )
        .await
        .0,
        404
    );
}

async fn template_subjects_are_one_line_and_bodies_keep_their_line_breaks(pool: Pool) {
    let service = service(pool, options()).await;
    let admin = principal(&[Role::Admin], None);
    let email = "/api/v1/notifications/templates/confirmed/email/en";
    let sms = "/api/v1/notifications/templates/confirmed/sms/en";
    for (uri, template, field) in [
        (
            email,
            json!({ "subject": "Hi\r\nBcc: evil@example.com", "text": "x", "html": "<p>x</p>" }),
            "subject",
        ),
        (
            email,
            json!({ "subject": "Hi\tthere", "text": "x", "html": "<p>x</p>" }),
            "subject",
        ),
        (
            email,
            json!({ "subject": "Hi", "text": "bell \u{7}", "html": "<p>x</p>" }),
            "text",
        ),
        (
            email,
            json!({ "subject": "Hi", "text": "x", "html": "<p>\u{1b}[31m</p>" }),
            "html",
        ),
        // A NUL is refused for the whole body at the edge, before the template's own checks.
        (sms, json!({ "text": "Booking {{ locator }}\u{0}" }), "body"),
    ] {
        let (status, problem) = call(&service, &admin, "PUT", uri, Some(template)).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{problem}"
        );
    }
    let (_, list) = call(&service, &admin, "GET", "/api/v1/notifications/templates", None).await;
    let customized = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["customized"] == true)
        .count();
    assert_eq!(customized, 0, "nothing refused was stored");

    let multi_line = json!({ "subject": "Confirmed: {{ locator }}", "text": "Booking {{ locator }}\r\n\tTotal {{ total }}\n",
        "html": "<p>\n{{ locator }}\n</p>" });
    assert_eq!(call(&service, &admin, "PUT", email, Some(multi_line)).await.0, 200);
    let sms_lines = json!({ "text": "Booking {{ locator }}\nTotal {{ total }}" });
    assert_eq!(call(&service, &admin, "PUT", sms, Some(sms_lines)).await.0, 200);
}

/// A booking event the consumer cannot read becomes a dead letter; admins (only) list it.
async fn admins_see_the_events_the_consumer_gave_up_on(pool: Pool) {
    let service = service(pool, options()).await;
    let mut unreadable = Booking::new().event("booking.confirmed.v1", 0);
    unreadable.data = json!({"locator": "ABC123"});
    let applied = consumer(&service)
        .apply(std::slice::from_ref(&unreadable))
        .await
        .unwrap();
    assert_eq!(applied.dead_lettered, 1);

    let admin = principal(&[Role::Admin], None);
    let (status, body) = call(&service, &admin, "GET", "/api/v1/notifications/dead-letters", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["consumer"], "notification");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["items"][0]["event_id"], unreadable.id.to_string());
    assert_eq!(body["items"][0]["attempts"], 2);

    let (status, body) = call(
        &service,
        &admin,
        "GET",
        "/api/v1/notifications/dead-letters?limit=0",
        None,
    )
    .await;
    assert_eq!((status, &body["errors"][0]["field"]), (422, &json!("limit")), "{body}");
    let (status, _) = call(
        &service,
        &admin,
        "GET",
        "/api/v1/notifications/dead-letters?consumer=audit",
        None,
    )
    .await;
    assert_eq!(status, 422);
    for roles in [Role::Support, Role::Customer] {
        let (status, _) = call(
            &service,
            &principal(&[roles], None),
            "GET",
            "/api/v1/notifications/dead-letters",
            None,
        )
        .await;
        assert_eq!(status, 403, "{roles:?}");
    }
}

/// The document's pattern for a locale admits exactly the locales templates exist for.
#[test]
fn the_documented_locales_are_the_templates_locales() {
    let openapi = phoenix_notification::api().split_for_parts().1;
    let document = serde_json::to_value(&openapi).unwrap();
    let pattern = document["components"]["schemas"]["Preferences"]["properties"]["locale"]["pattern"]
        .as_str()
        .expect("Preferences.locale has a pattern");
    let expected = format!("^({})$", phoenix_notification::template::LOCALES.join("|"));
    assert_eq!(pattern, expected);
}
