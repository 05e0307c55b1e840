//! Phoenix API gateway: every `/api/v1` request passes through it.
//!
//! Owns request ids, credential checks (the only place that verifies a JWT or an API key), per-IP and
//! per-principal rate limits, body size and time limits, CORS and security headers, and the normalizer that makes
//! every error an RFC 9457 problem. It routes each request to a service's router in this process, or over HTTP to
//! the service's own process, and serves `/healthz`, `/readyz`, `/metrics` and the OpenAPI document.
//!
//! The gateway stores no business data. Which roles may call a route is declared by the service beside the route
//! (`phoenix_api::RequireRoles`); the gateway establishes who the caller is.

mod auth;
mod layers;
mod ops;
mod proxy;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use futures::future::BoxFuture;
use phoenix_ratelimit::{Limiter, Quota};
use serde::{Deserialize, Serialize};
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::OpenApi;

pub use auth::{Authenticator, Rejection};
pub use ops::openapi;
pub use proxy::Route as RemoteRoute;

/// The gateway's settings, with the defaults the platform's operators asked for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Requests a minute per user or API key.
    pub rate_limit_per_user_per_min: u32,
    /// Requests a minute per client IP.
    pub rate_limit_per_ip_per_min: u32,
    /// Largest request body accepted; larger is 413.
    pub body_limit_bytes: usize,
    /// Longest a request may take; longer is 503.
    pub request_timeout_secs: u64,
    /// Origins allowed to call the API from a browser (CORS). Empty: same origin only.
    pub cors_allowed_origins: Vec<String>,
    /// The proxies in front of the gateway (addresses or CIDR ranges, such as the ingress controller's pods). Only
    /// a request arriving from one of them has its `X-Forwarded-For` read: the client is the right-most entry that
    /// is not itself one of them. Empty (the default): the TCP peer is the client and the header is ignored, so no
    /// client can pick the address its rate limits and login throttles are counted under.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Verified access tokens remembered until they expire.
    pub token_cache_capacity: usize,
    /// How often the gateway reads identity's ended sessions, whose access tokens it then refuses (401
    /// `session_ended`). Identity in the same process also tells it at once; this bounds how long a session ended
    /// elsewhere (another replica, identity in its own process) keeps working.
    pub revocation_poll_ms: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            rate_limit_per_user_per_min: 100,
            rate_limit_per_ip_per_min: 10_000,
            body_limit_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            cors_allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            token_cache_capacity: 100_000,
            revocation_poll_ms: 1_000,
        }
    }
}

impl Options {
    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate_limit_per_user_per_min == 0 {
            return Err("gateway.rate_limit_per_user_per_min must be at least 1".to_owned());
        }
        if self.rate_limit_per_ip_per_min == 0 {
            return Err("gateway.rate_limit_per_ip_per_min must be at least 1".to_owned());
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return Err("gateway.body_limit_bytes must be between 1024 and 67108864".to_owned());
        }
        if !(1..=600).contains(&self.request_timeout_secs) {
            return Err("gateway.request_timeout_secs must be between 1 and 600".to_owned());
        }
        for origin in &self.cors_allowed_origins {
            if HeaderValue::from_str(origin).is_err()
                || !(origin.starts_with("http://") || origin.starts_with("https://"))
            {
                return Err(format!(
                    "gateway.cors_allowed_origins: {origin:?} is not an origin like https://example.com"
                ));
            }
        }
        if self.token_cache_capacity == 0 {
            return Err("gateway.token_cache_capacity must be at least 1".to_owned());
        }
        if !(100..=60_000).contains(&self.revocation_poll_ms) {
            return Err("gateway.revocation_poll_ms must be between 100 and 60000".to_owned());
        }
        Ok(())
    }
}

/// A readiness check: a dependency's name and a probe that says whether it is reachable.
#[derive(Clone)]
pub struct Check {
    pub name: &'static str,
    pub probe: Arc<dyn Fn() -> BoxFuture<'static, bool> + Send + Sync>,
    /// Whether the process can serve without it. A process without its database cannot (not ready); one whose
    /// event bus or a remote service is down still serves the rest (ready, but degraded): taking it out of
    /// rotation would turn one role's outage, or the broker's, into everyone's.
    pub required: bool,
}

/// Everything the gateway routes to and checks with.
pub struct Gateway {
    pub options: Options,
    pub authenticator: Authenticator,
    pub limiter: Limiter,
    /// Routers of the services running in this process (state applied).
    pub local: Vec<Router>,
    /// Services running elsewhere.
    pub remote: Vec<RemoteRoute>,
    /// Internal routes of the services running in this process (state applied), for services elsewhere that call
    /// them (the saga in its own process taking booking's requests). Served only with the internal token, and only
    /// when some role runs elsewhere.
    pub internal: Vec<Router>,
    /// The secret that lets remote services trust the principal the gateway sends.
    pub internal_token: String,
    pub openapi: OpenApi,
    pub readiness: Vec<Check>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the HTTP client for remote services")]
    Client(#[source] reqwest::Error),
}

impl Gateway {
    /// The whole HTTP surface of the process.
    pub fn router(self) -> Result<Router, Error> {
        let options = self.options;
        let proxy = if self.remote.is_empty() {
            None
        } else {
            let timeout = Duration::from_secs(options.request_timeout_secs);
            Some(proxy::Proxy::new(self.remote, &self.internal_token, timeout).map_err(Error::Client)?)
        };
        let guard = Arc::new(layers::Guard {
            authenticator: self.authenticator,
            limiter: self.limiter,
            per_principal: Quota::per_minute(options.rate_limit_per_user_per_min),
            per_ip: Quota::per_minute(options.rate_limit_per_ip_per_min),
            trusted_proxies: options.trusted_proxies.clone(),
        });

        let mut api = Router::new();
        for router in self.local {
            api = api.merge(router);
        }
        let api = api
            .fallback(move |request| proxy::forward(proxy.clone(), request))
            .layer(
                ServiceBuilder::new()
                    .layer(axum::middleware::from_fn_with_state(guard, layers::guard))
                    .layer(DefaultBodyLimit::disable())
                    .layer(RequestBodyLimitLayer::new(options.body_limit_bytes))
                    // No origins configured: same-origin only, and no CORS work on any request.
                    .option_layer(
                        (!options.cors_allowed_origins.is_empty()).then(|| cors(&options.cors_allowed_origins)),
                    ),
            );

        let mut router = ops::router(Arc::new(self.openapi), self.readiness);
        if !self.internal_token.is_empty() && !self.internal.is_empty() {
            let internal = self
                .internal
                .into_iter()
                .fold(Router::new(), Router::merge)
                .layer(phoenix_api::internal::Layer::new(&self.internal_token));
            router = router.merge(internal);
        }
        let router = router.merge(api);
        Ok(outer_layers(router, options.request_timeout_secs))
    }
}

/// The HTTP surface of a service that runs in its own process, behind a gateway elsewhere: its routes (already
/// wrapped in `phoenix_api::internal::Layer`), the operational endpoints, and the same outer layers as the gateway.
pub fn service_router(routes: Router, openapi: Arc<OpenApi>, readiness: Vec<Check>, body_limit_bytes: usize) -> Router {
    let routes = routes
        .fallback(|| async { phoenix_api::Problem::from_status(StatusCode::NOT_FOUND) })
        .layer(
            ServiceBuilder::new()
                .layer(DefaultBodyLimit::disable())
                .layer(RequestBodyLimitLayer::new(body_limit_bytes)),
        );
    outer_layers(ops::router(openapi, readiness).merge(routes), 600)
}

/// Layers every request passes, outermost first: panics become 500 problems, credentials are hidden from traces,
/// the envelope (request id, problems, security headers, metrics), the request's span, and the timeout.
fn outer_layers(router: Router, timeout_secs: u64) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(layers::panic_response))
            .layer(SetSensitiveRequestHeadersLayer::new([
                header::AUTHORIZATION,
                header::COOKIE,
            ]))
            .layer(axum::middleware::from_fn(layers::envelope))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(make_span)
                    .on_request(())
                    .on_response(
                        DefaultOnResponse::new()
                            .level(tracing::Level::INFO)
                            .latency_unit(LatencyUnit::Micros),
                    ),
            )
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(timeout_secs),
            )),
    )
}

fn make_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<phoenix_api::RequestId>()
        .map(|id| id.0.as_str())
        .unwrap_or_default();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
        .unwrap_or("unmatched");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        user_id = tracing::field::Empty,
    )
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            layers::REQUEST_ID,
            layers::TRACEPARENT,
        ])
        .expose_headers([
            layers::REQUEST_ID,
            layers::TRACEPARENT,
            header::RETRY_AFTER,
            header::LOCATION,
        ])
        .max_age(Duration::from_secs(600))
}
