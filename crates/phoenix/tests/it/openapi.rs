use reqwest::Method;
use serde_json::Value;

use crate::common::spawn;

#[tokio::test]
async fn document_is_openapi_3_1_and_covers_the_api() {
    let app = spawn().await;
    let doc = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let version = doc.body["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1"), "{version}");
    let paths = doc.body["paths"].as_object().unwrap();
    for expected in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/auth/mfa/totp/setup",
        "/api/v1/auth/mfa/totp/enable",
        "/api/v1/auth/mfa/totp/disable",
        "/api/v1/auth/password",
        "/api/v1/auth/password-reset",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/auth/sessions",
        "/api/v1/catalog/fx-rates",
        "/api/v1/catalog/fx-rates/{base}/{quote}",
        "/api/v1/users/{id}",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{id}",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}/roles",
        "/api/v1/admin/organizations",
        "/api/v1/admin/organizations/{id}",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        "/api/v1/search/hotels",
        "/api/v1/search/flights",
        "/api/v1/recommendations/hotels",
        "/api/v1/airports",
        "/api/v1/hotels/{hotel_id}",
        "/api/v1/flights/{departure_id}",
        "/api/v1/offers/{offer_id}",
        "/api/v1/catalog/hotels",
        "/api/v1/catalog/schedules",
        "/api/v1/audit",
        "/api/v1/audit/dead-letters",
        "/api/v1/notifications/dead-letters",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
}

/// Every `$ref` in the document names something the document holds: a client generator (or a fuzzer) meeting a
/// dangling one skips or rejects the schema that uses it.
#[tokio::test]
async fn every_reference_resolves() {
    let app = spawn().await;
    let doc = app.get("/api/v1/openapi.json", None).await.body;
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 100, "the document uses references: {}", found.len());
    let dangling: std::collections::BTreeSet<&str> = found
        .into_iter()
        .filter(|target| {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{target} is not local"));
            doc.pointer(pointer).is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
}

/// Errors are documented as they are sent: every error response as `application/problem+json`, and every
/// operation with a `default` problem for the errors it does not list.
#[tokio::test]
async fn every_operation_documents_its_errors_as_problem_json() {
    let app = spawn().await;
    let doc = app.get("/api/v1/openapi.json", None).await.body;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            operations += 1;
            assert!(
                responses["default"]["content"]["application/problem+json"]["schema"]["$ref"]
                    == "#/components/schemas/Problem",
                "{method} {path}: no default problem"
            );
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"]
                        .as_object()
                        .unwrap_or_else(|| panic!("{method} {path} {status}"));
                    assert!(
                        content.keys().all(|kind| kind == "application/problem+json"),
                        "{method} {path} {status}: {:?}",
                        content.keys()
                    );
                }
            }
        }
    }
    assert!(operations > 80, "{operations} operations");
}

/// A tagged variant that refuses unknown fields still admits its tag, so a value can match its `oneOf` branch
/// (a booking's or a quote's items are such variants).
#[tokio::test]
async fn tagged_variants_admit_their_tag() {
    let app = spawn().await;
    let doc = app.get("/api/v1/openapi.json", None).await.body;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut checked = 0;
    for schema in schemas.values() {
        for branch in schema["oneOf"].as_array().into_iter().flatten() {
            let Some([variant, tag]) = branch["allOf"].as_array().map(Vec::as_slice) else {
                continue;
            };
            let Some(name) = variant["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            else {
                continue;
            };
            let variant = &schemas[name];
            if variant["additionalProperties"] != false {
                continue;
            }
            for property in tag["properties"].as_object().unwrap().keys() {
                assert!(
                    variant["properties"].get(property).is_some(),
                    "{name} refuses its tag {property}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 2, "the booking items' variants are checked: {checked}");
}

/// Every documented operation is routed: none answers 405, and none falls through to the router's 404.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn().await;
    let doc = app.get("/api/v1/openapi.json", None).await.body;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // Every path parameter gets an id that names nothing.
        let concrete: Vec<String> = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    uuid::Uuid::now_v7().to_string()
                } else {
                    segment.to_owned()
                }
            })
            .collect();
        let concrete = concrete.join("/");
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let reply = app
                .call(method.clone(), &concrete, None, Some(Value::Object(Default::default())))
                .await;
            assert_ne!(reply.status, 405, "{method} {path}");
            let router_404 = reply.status == 404 && reply.body["detail"] == "no such resource";
            assert!(!router_404, "{method} {path} is documented but not routed");
            assert_ne!(reply.status.as_u16(), 500, "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations");
}

/// The search routes mark required exactly the query parameters a search cannot do without: a client generator
/// (or a fuzzer) that follows the document sends them, and is free to leave the rest out.
#[tokio::test]
async fn search_parameters_are_required_as_the_searches_require_them() {
    let app = spawn().await;
    let doc = app.get("/api/v1/openapi.json", None).await.body;
    let required = |path: &str| -> Vec<String> {
        let mut names: Vec<String> = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query" && p["required"] == true)
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(required("/api/v1/search/flights"), ["date", "destination", "origin"]);
    assert_eq!(required("/api/v1/search/hotels"), ["check_in", "check_out"]);

    // A flight search with none of them is refused naming exactly those.
    let flights = app.get("/api/v1/search/flights", None).await;
    assert_eq!(flights.status, 422, "{flights:?}");
    let mut named: Vec<&str> = flights.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    named.sort_unstable();
    assert_eq!(named, ["date", "destination", "origin"], "{flights:?}");

    // Dates are `YYYY-MM-DD` as documented: ISO 8601's other forms of a date are refused, not read.
    for other in [
        "2027-W11-6",
        "2027-079",
        "20270320",
        "%2B2027-03-20",
        "2027-03-20T00:00",
    ] {
        let search = app
            .get(
                &format!("/api/v1/search/flights?origin=CDG&destination=JFK&date={other}"),
                None,
            )
            .await;
        assert_eq!(search.status, 422, "{other}: {search:?}");
        assert_eq!(search.body["errors"][0]["field"], "date", "{other}: {search:?}");
    }
}
