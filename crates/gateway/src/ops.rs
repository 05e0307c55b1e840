//! Operational endpoints: liveness, readiness, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use phoenix_api::{FieldError, PROBLEM_CONTENT_TYPE, Problem};
use serde::Serialize;
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Check;

const TAG: &str = "operations";

#[derive(Clone)]
struct OpsState {
    openapi: Arc<OpenApi>,
    readiness: Arc<Vec<Check>>,
}

#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(Problem, FieldError)))]
struct Components;

fn own_routes() -> OpenApiRouter<OpsState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

pub(crate) fn router(openapi: Arc<OpenApi>, readiness: Vec<Check>) -> Router {
    let (router, _) = own_routes().split_for_parts();
    router.with_state(OpsState {
        openapi,
        readiness: Arc::new(readiness),
    })
}

/// The OpenAPI 3.1 document of the whole platform: the gateway's own endpoints and every service's, merged.
pub fn openapi(services: Vec<OpenApi>) -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Phoenix")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Booking and payment platform for hotel rooms, flight seats and other limited capacity. \
                     Errors are RFC 9457 application/problem+json with a stable `code`.",
                ))
                .build(),
        )
        .build();
    doc.merge(own_routes().into_openapi());
    doc.merge(Components::openapi());
    for service in services {
        doc.merge(service);
    }
    problems_as_problem_json(&mut doc);
    tags_allowed_in_closed_variants(&mut doc);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT access token, or a phx_ API key")
                .build(),
        ),
    );
    doc
}

/// Every error is an RFC 9457 problem, sent as `application/problem+json`: the error responses the services
/// document with a [`Problem`] body say so, and every operation gets a `default` response for the errors any route
/// may answer without listing them (400 for a malformed header, 401, 413, 415, 429, 503, ...).
fn problems_as_problem_json(doc: &mut OpenApi) {
    const PROBLEM: &str = "#/components/schemas/Problem";
    let problem = || Content::new(Some(Ref::from_schema_name("Problem")));
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else { continue };
                let is_problem = matches!(
                    response.content.get("application/json"),
                    Some(RefOr::T(Content { schema: Some(RefOr::Ref(schema)), .. })) if schema.ref_location == PROBLEM
                );
                if is_problem {
                    response.content.shift_remove("application/json");
                    response
                        .content
                        .insert(PROBLEM_CONTENT_TYPE.to_owned(), RefOr::T(problem()));
                }
            }
            operation
                .responses
                .responses
                .entry("default".to_owned())
                .or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("Any other error, as an RFC 9457 problem with a stable `code`")
                            .content(PROBLEM_CONTENT_TYPE, problem())
                            .build(),
                    )
                });
        }
    }
}

/// An internally tagged enum (`#[serde(tag = "kind")]`) is documented as `oneOf` branches, each `allOf` the
/// variant's schema and an object holding the tag. A variant that refuses unknown fields has
/// `additionalProperties: false`, which refuses the tag as well, so no value could match the branch (serde takes
/// the tag off before the variant sees the rest). The variant's schema lists the tag among its properties here.
fn tags_allowed_in_closed_variants(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let mut tags: Vec<(String, String, RefOr<Schema>)> = Vec::new();
    for schema in components.schemas.values() {
        let RefOr::T(Schema::OneOf(one_of)) = schema else {
            continue;
        };
        for branch in &one_of.items {
            let RefOr::T(Schema::AllOf(all_of)) = branch else {
                continue;
            };
            let [RefOr::Ref(variant), RefOr::T(Schema::Object(tag))] = all_of.items.as_slice() else {
                continue;
            };
            let Some(name) = variant.ref_location.strip_prefix("#/components/schemas/") else {
                continue;
            };
            for (property, property_schema) in &tag.properties {
                tags.push((name.to_owned(), property.clone(), property_schema.clone()));
            }
        }
    }
    for (name, property, property_schema) in tags {
        let Some(RefOr::T(Schema::Object(variant))) = components.schemas.get_mut(&name) else {
            continue;
        };
        let closed = matches!(
            variant.additional_properties.as_deref(),
            Some(AdditionalProperties::FreeForm(false))
        );
        if closed {
            variant.properties.entry(property).or_insert(property_schema);
        }
    }
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: &'static str,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = TAG, responses((status = 200, body = Health)))]
async fn healthz() -> impl IntoResponse {
    axum::Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready`, or `degraded` when a dependency the process can serve without does not answer.
    status: &'static str,
    /// Each dependency and whether it answered.
    checks: std::collections::BTreeMap<&'static str, bool>,
}

/// Readiness: 503 when a dependency the process cannot serve without (its databases) does not answer; otherwise
/// 200, `ready`, or `degraded` when the event bus or a remote service does not (the rest is still served).
#[utoipa::path(get, path = "/readyz", tag = TAG,
    responses((status = 200, body = Readiness), (status = 503, body = Problem)))]
async fn readyz(State(state): State<OpsState>) -> Response {
    let results = join_all(state.readiness.iter().map(|check| (check.probe)())).await;
    let checks: std::collections::BTreeMap<&'static str, bool> = state
        .readiness
        .iter()
        .map(|c| c.name)
        .zip(results.iter().copied())
        .collect();
    let down = |required: bool| -> Vec<&'static str> {
        state
            .readiness
            .iter()
            .zip(&results)
            .filter(|(check, ok)| check.required == required && !**ok)
            .map(|(check, _)| check.name)
            .collect()
    };
    let missing = down(true);
    if !missing.is_empty() {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("not reachable: {}", missing.join(", ")),
        )
        .with_retry_after(5)
        .into_response();
    }
    let status = if down(false).is_empty() { "ready" } else { "degraded" };
    axum::Json(Readiness { status, checks }).into_response()
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = TAG,
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String)))]
async fn metrics() -> impl IntoResponse {
    let body = tokio::task::spawn_blocking(crate::telemetry::render)
        .await
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    )
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = TAG,
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(State(state): State<OpsState>) -> impl IntoResponse {
    axum::Json(state.openapi.as_ref().clone())
}
