//! The catalog over HTTP, through the gateway: anonymous search, role and organization checks, 422s that name the
//! field, signed offers; and `phoenix seed demo` as a user runs it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestApp, spawn};
use crate::process::phoenix;

/// An operator of a new hotel chain: (organization id, token).
async fn hotelier(app: &TestApp, admin: &str, email: &str) -> (String, String) {
    app.operator(admin, email, "hotel_chain").await
}

fn date(days: i64) -> String {
    (time::OffsetDateTime::now_utc().date() + time::Duration::days(days)).to_string()
}

fn hotel() -> Value {
    json!({
        "name": "Hotel du Port", "address": "2 Quai", "city": "Marseille", "country": "FR",
        "latitude": 43.2965, "longitude": 5.3698, "stars": 3, "amenities": ["free_wifi"],
        "time_zone": "Europe/Paris"
    })
}

/// A hotel with one priced room type; returns its id.
async fn open_hotel(app: &TestApp, token: &str) -> String {
    let made = app.post("/api/v1/catalog/hotels", Some(token), hotel()).await;
    assert_eq!(made.status, 201, "{made:?}");
    let id = made.body["id"].as_str().unwrap().to_owned();
    let room = app
        .post(
            &format!("/api/v1/catalog/hotels/{id}/room-types"),
            Some(token),
            json!({"name": "Double", "max_occupancy": 2, "beds": "1 double", "rooms": 4}),
        )
        .await;
    assert_eq!(room.status, 201, "{room:?}");
    let plan = app
        .post(
            &format!("/api/v1/catalog/hotels/{id}/rate-plans"),
            Some(token),
            json!({"room_type_id": room.body["id"], "name": "Flexible", "meal_plan": "breakfast",
                   "refundable": true, "free_cancellation_hours": 24, "currency": "EUR"}),
        )
        .await;
    assert_eq!(plan.status, 201, "{plan:?}");
    let prices = app
        .call(
            Method::PUT,
            &format!(
                "/api/v1/catalog/hotels/{id}/rate-plans/{}/prices",
                plan.body["id"].as_str().unwrap()
            ),
            Some(token),
            Some(json!({"from": date(5), "to": date(20), "amount_minor": 8_000})),
        )
        .await;
    assert_eq!(prices.status, 200, "{prices:?}");
    assert_eq!(prices.body["nights"], 16);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn travellers_search_anonymously_and_get_signed_offers() {
    let app = spawn().await;
    let admin = app.admin().await;
    let (_, ops) = hotelier(&app, &admin, "ops@port.example").await;
    let id = open_hotel(&app, &ops).await;

    let path = format!(
        "/api/v1/search/hotels?city=marseille&check_in={}&check_out={}",
        date(6),
        date(9)
    );
    let found = app.get(&path, None).await;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.body["results"][0]["hotel"]["id"], id.as_str());
    let option = &found.body["results"][0]["options"][0];
    // 3 nights of 80.00, VAT 10 %, city tax 2.50 per room-night.
    assert_eq!(option["price"]["total_minor"], 24_000 + 2_400 + 750);
    let offer = app
        .get(
            &format!("/api/v1/offers/{}", option["offer_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(offer.status, 200, "{offer:?}");
    assert_eq!(offer.body["amount_minor"], 27_150);
    assert_eq!(offer.body["details"]["hotel_id"], id.as_str());
    assert_eq!(offer.body["details"]["kind"], "hotel");
    // One character of the signed payload changed.
    let token = option["offer_id"].as_str().unwrap();
    let at = "ofr_".len() + 10;
    let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
    app.get(&format!("/api/v1/offers/{forged}"), None)
        .await
        .assert_problem(422, "invalid_offer");

    let details = app.get(&format!("/api/v1/hotels/{id}"), None).await;
    assert_eq!(details.status, 200);
    assert_eq!(details.body["room_types"][0]["rooms"], 4);
    app.get(&format!("/api/v1/hotels/{}", uuid::Uuid::now_v7()), None)
        .await
        .assert_problem(404, "not_found");
    app.get("/api/v1/hotels/not-a-uuid", None)
        .await
        .assert_problem(404, "not_found");
    let airports = app.get("/api/v1/airports?q=heathrow", None).await;
    assert_eq!(airports.body[0]["code"], "LHR", "{airports:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_is_role_and_organization_checked() {
    let app = spawn().await;
    let admin = app.admin().await;
    let (_, ops) = hotelier(&app, &admin, "ops@mine.example").await;
    let (_, rival) = hotelier(&app, &admin, "ops@rival.example").await;
    let (_, customer) = app.customer("ann@example.com").await;
    let id = open_hotel(&app, &ops).await;

    app.post("/api/v1/catalog/hotels", None, hotel())
        .await
        .assert_problem(401, "unauthenticated");
    app.post("/api/v1/catalog/hotels", Some(&customer), hotel())
        .await
        .assert_problem(403, "forbidden");
    let path = format!("/api/v1/catalog/hotels/{id}");
    app.get(&path, Some(&rival)).await.assert_problem(404, "not_found");
    app.call(Method::PUT, &path, Some(&rival), Some(hotel()))
        .await
        .assert_problem(403, "forbidden");
    app.call(Method::DELETE, &path, Some(&rival), None)
        .await
        .assert_problem(403, "forbidden");
    app.post(
        &format!("{path}/room-types"),
        Some(&rival),
        json!({"name": "X", "max_occupancy": 1, "rooms": 1}),
    )
    .await
    .assert_problem(403, "forbidden");
    assert_eq!(app.get(&path, Some(&ops)).await.status, 200);
    // Admin-only reference data.
    app.call(
        Method::PUT,
        "/api/v1/catalog/fx-rates/EUR/USD",
        Some(&ops),
        Some(json!({"rate": "1.1"})),
    )
    .await
    .assert_problem(403, "forbidden");
    let rate = app
        .call(
            Method::PUT,
            "/api/v1/catalog/fx-rates/EUR/USD",
            Some(&admin),
            Some(json!({"rate": "1.1"})),
        )
        .await;
    assert_eq!(rate.status, 200, "{rate:?}");
    // Deactivated by its own operator: gone from the public page.
    assert_eq!(app.call(Method::DELETE, &path, Some(&ops), None).await.status, 200);
    app.get(&format!("/api/v1/hotels/{id}"), None)
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_422_naming_the_field_never_500() {
    let app = spawn().await;
    let admin = app.admin().await;
    let (_, ops) = hotelier(&app, &admin, "ops@bad.example").await;
    let hotels = "/api/v1/search/hotels";
    let flights = "/api/v1/search/flights";
    let cases = [
        (
            format!("{hotels}?city=Paris&check_in={}&check_out={}", date(5), date(5)),
            "check_out",
        ),
        (
            format!("{hotels}?city=Paris&check_in={}&check_out={}", date(5), date(36)),
            "check_out",
        ),
        (
            format!("{hotels}?city=Paris&check_in=tomorrow&check_out={}", date(5)),
            "check_in",
        ),
        (
            format!(
                "{hotels}?city=Paris&check_in={}&check_out={}&guests=two",
                date(5),
                date(6)
            ),
            "guests",
        ),
        (
            format!(
                "{hotels}?latitude=48&longitude=2&radius_km=250&check_in={}&check_out={}",
                date(5),
                date(6)
            ),
            "radius_km",
        ),
        (
            format!(
                "{hotels}?city=Paris&check_in={}&check_out={}&sort=cheapest",
                date(5),
                date(6)
            ),
            "sort",
        ),
        (
            format!("{flights}?origin=XXX&destination=LHR&date={}", date(5)),
            "origin",
        ),
        (
            format!("{flights}?origin=LHR&destination=LHR&date={}", date(5)),
            "destination",
        ),
        (
            format!(
                "{flights}?origin=CDG&destination=LHR&date={}&adults=7&children=3",
                date(5)
            ),
            "passengers",
        ),
        (
            format!("{flights}?origin=CDG&destination=LHR&date={}&cabin=cargo", date(5)),
            "cabin",
        ),
        (
            "/api/v1/recommendations/hotels?latitude=48&longitude=2&radius_km=0".to_owned(),
            "radius_km",
        ),
        ("/api/v1/airports?q=".to_owned(), "q"),
    ];
    for (path, field) in cases {
        let reply = app.get(&path, None).await;
        reply.assert_problem(422, "invalid_fields");
        let fields: Vec<&str> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{path}: {reply:?}");
    }
    let mut bad_hotel = hotel();
    bad_hotel["stars"] = json!(9);
    bad_hotel["country"] = json!("France");
    bad_hotel["time_zone"] = json!("Mars/Olympus");
    let reply = app.post("/api/v1/catalog/hotels", Some(&ops), bad_hotel).await;
    reply.assert_problem(422, "invalid_fields");
    let fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["country", "stars", "time_zone"]);
    let mut unknown = hotel();
    unknown["rating"] = json!(5);
    app.post("/api/v1/catalog/hotels", Some(&ops), unknown)
        .await
        .assert_problem(422, "invalid_fields");
}

#[test]
fn seed_demo_loads_the_dataset_once_only() {
    let data = tempfile::tempdir().unwrap();
    let output = phoenix(data.path())
        .args(["seed", "demo", "--days", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("seeded 52 organizations, 2000 hotels, "), "{stdout}");
    assert!(stdout.contains("demo@phoenix.example"), "{stdout}");
    let again = phoenix(data.path()).args(["seed", "demo"]).output().unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds"),
        "{again:?}"
    );
}
