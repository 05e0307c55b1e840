//! Quotes across processes: the catalog's client in process and over HTTP, its internal route and the public one,
//! with the catalog's problems passed through unchanged.

use std::time::Duration;

use axum::http::Method;
use phoenix_api::{Problem, remote};
use phoenix_catalog::flight::Cabin;
use phoenix_catalog::quote::{FlightItem, Quotation, QuoteItem, QuoteRequest};
use phoenix_catalog::search::Passengers;
use phoenix_catalog::{Catalog, Client};
use phoenix_db::Pool;

use super::flights::{DAY, airline, fly, no_fees};
use super::quote::{customer, stay_item};
use super::*;

phoenix_db::contract_suite!(
    phoenix_catalog::migrations(),
    [
        the_client_quotes_alike_in_process_and_over_http,
        quotes_are_on_the_public_api_for_anyone_signed_in,
    ]
);

const TOKEN: &str = "an internal token for tests";

/// The catalog's public and internal routes on a port of their own, as a catalog process serves them; its URL.
pub async fn serve(catalog: Catalog) -> String {
    let router = phoenix_catalog::internal_router(catalog.clone())
        .merge(phoenix_catalog::api().with_state(catalog).split_for_parts().0)
        .layer(phoenix_api::internal::Layer::new(TOKEN));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

pub fn http(url: &str) -> remote::Client {
    remote::Client::new(url, TOKEN, Duration::from_secs(10)).unwrap()
}

/// A stay and a flight to the same city.
async fn package(world: &World) -> QuoteRequest {
    let org = airline(world, "PX").await;
    fly(world, org, "PX70", "CDG", "NCE", "09:00", 85).await;
    let h = hotel(world, chain(world).await, "Nice", 2, |_| 10_000).await;
    let flight = FlightItem {
        departure_ids: vec![format!("PX70-{}", day(DAY).0)],
        cabin: Cabin::Economy,
        fare_codes: vec!["Y".into()],
        passengers: Passengers {
            adults: 2,
            children: 0,
            infants: 0,
        },
        offer_id: None,
    };
    QuoteRequest {
        items: vec![
            QuoteItem::Flight(flight),
            QuoteItem::Hotel(stay_item(&h, DAY, DAY + 3, 1, 2)),
        ],
        currency: None,
    }
}

pub async fn the_client_quotes_alike_in_process_and_over_http(pool: Pool) {
    let world = world_with(pool, no_fees()).await;
    let request = package(&world).await;
    let local = Client::Local(world.catalog.clone());
    let remote = Client::Remote(http(&serve(world.catalog.clone()).await));
    let here = local.quote(&customer(), &request).await.unwrap();
    let there = remote.quote(&customer(), &request).await.unwrap();
    assert_eq!(here, there);
    assert_eq!(here.total_minor, 2 * 20_000 + 3 * 10_000);

    // Refusals arrive as the catalog made them: status, code and the fields or items named.
    let mut bad = request.clone();
    if let QuoteItem::Hotel(stay) = &mut bad.items[1] {
        stay.guests = 3;
    }
    let mut short = request.clone();
    if let QuoteItem::Hotel(stay) = &mut short.items[1] {
        (stay.rooms, stay.guests) = (3, 3);
    }
    let mut forged = request.clone();
    if let QuoteItem::Flight(trip) = &mut forged.items[0] {
        trip.offer_id = Some("ofr_forged.sig".into());
    }
    for (request, status, code, field) in [
        (bad, 422, "invalid_fields", "items[1].guests"),
        (short, 409, "unavailable", "items[1]"),
        (forged, 422, "invalid_offer", "items[0].offer_id"),
    ] {
        for client in [&local, &remote] {
            let problem = client.quote(&customer(), &request).await.unwrap_err();
            assert_eq!((problem.status.as_u16(), &*problem.code), (status, code));
            assert_eq!(problem.errors[0].field, field);
        }
    }
}

pub async fn quotes_are_on_the_public_api_for_anyone_signed_in(pool: Pool) {
    let world = world_with(pool, no_fees()).await;
    let request = package(&world).await;
    let client = http(&serve(world.catalog.clone()).await);
    let call = |principal: Option<Principal>, body: serde_json::Value| {
        let client = client.clone();
        async move {
            client
                .call::<_, serde_json::Value>(Method::POST, "/api/v1/quotes", Some(&body), principal.as_ref())
                .await
                .map_err(Problem::from)
        }
    };
    let body = serde_json::to_value(&request).unwrap();
    for principal in [customer(), agent(), principal(&[Role::Partner], Some(Uuid::now_v7()))] {
        let quoted = call(Some(principal), body.clone()).await.unwrap();
        let quoted: Quotation = serde_json::from_value(quoted).unwrap();
        assert_eq!(quoted.items.len(), 2);
    }
    let unauthenticated = call(None, body.clone()).await.unwrap_err();
    assert_eq!(
        (unauthenticated.status.as_u16(), &*unauthenticated.code),
        (401, "unauthenticated")
    );

    // The wire: items tagged by kind, times in RFC 3339 UTC, no unknown fields.
    let raw = call(Some(customer()), body.clone()).await.unwrap();
    assert_eq!(raw["items"][1]["kind"], "hotel");
    assert_eq!(body["items"][0]["kind"], "flight");
    let free_until = raw["items"][1]["cancellation"]["free_until"].as_str().unwrap();
    assert!(free_until.ends_with('Z'), "{free_until}");
    for (path, value) in [("/items/1/breakfast", true), ("/items/0/passengers/pets", true)] {
        let mut extra = body.clone();
        let (parent, name) = path.rsplit_once('/').unwrap();
        extra.pointer_mut(parent).unwrap()[name] = value.into();
        let refused = call(Some(customer()), extra).await.unwrap_err();
        assert_eq!(refused.status.as_u16(), 422, "{path}");
        assert!(refused.errors[0].field.starts_with("items["), "{:?}", refused.errors);
    }
    let mut car = body.clone();
    car["items"][0]["kind"] = "car".into();
    assert_eq!(call(Some(customer()), car).await.unwrap_err().status.as_u16(), 422);

    // Routed by the gateway, and documented.
    assert!(
        phoenix_catalog::PATH_PREFIXES
            .iter()
            .any(|p| "/api/v1/quotes".starts_with(p))
    );
    let (_, openapi) = phoenix_catalog::api().split_for_parts();
    assert!(openapi.paths.paths.contains_key("/api/v1/quotes"));
}
