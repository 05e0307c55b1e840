//! SMS through the HTTP provider adapter, against a mock provider that checks the request.

use phoenix_db::Pool;
use phoenix_notification::{Channel, SmsOptions, Status};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{Booking, consumer, options, service};

phoenix_db::contract_suite!(
    phoenix_notification::migrations(),
    [an_sms_is_posted_to_the_provider_with_the_bearer_key,]
);

async fn an_sms_is_posted_to_the_provider_with_the_bearer_key(pool: Pool) {
    let provider = MockServer::start().await;
    let booking = Booking {
        phone: Some("+491701234589".to_owned()),
        ..Booking::new()
    };
    let starts = phoenix_notification::template::date_time(booking.starts_at, "en");
    let expected_body = format!("Your booking {} is confirmed. Starts {starts}", booking.locator);
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("authorization", "Bearer sk_test_sms"))
        .and(body_json(
            serde_json::json!({ "to": "+491701234589", "body": expected_body }),
        ))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&provider)
        .await;
    let options = phoenix_notification::Options {
        sms: Some(SmsOptions {
            base_url: format!("{}/v1/messages", provider.uri()),
            api_key: "sk_test_sms".to_owned(),
            from: None,
        }),
        ..options()
    };
    let service = service(pool, options).await;
    consumer(&service)
        .apply(&[booking.event("booking.confirmed.v1", 0)])
        .await
        .unwrap();
    let deliveries = service.deliveries_of_booking(booking.id).await.unwrap();
    let sms = deliveries
        .iter()
        .find(|d| d.channel == Channel::Sms && d.kind == "confirmed")
        .expect("sms")
        .clone();
    crate::deliver_until(&service, "the sms", async || {
        service.delivery(sms.id).await.unwrap().unwrap().status != Status::Pending
    })
    .await;
    let sent = service.delivery(sms.id).await.unwrap().unwrap();
    assert_eq!(
        (sent.status, sent.response_code),
        (Status::Delivered, Some(202)),
        "{:?}",
        sent.last_error
    );
    provider.verify().await;
}
