//! Forwarding to services that run in other processes. The gateway has already checked the credential; the
//! service receives the principal in internal headers (see `phoenix_api::internal`), never the credential itself.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phoenix_api::{ClientIp, Principal, Problem, internal};

/// One remote service: the path prefixes it answers and where it listens.
#[derive(Debug, Clone)]
pub struct Route {
    pub service: &'static str,
    pub prefixes: &'static [&'static str],
    pub base_url: String,
}

#[derive(Clone)]
pub struct Proxy {
    routes: Arc<Vec<Route>>,
    http: reqwest::Client,
    token: Arc<str>,
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Proxy {
    pub fn new(routes: Vec<Route>, token: &str, timeout: Duration) -> Result<Proxy, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Proxy {
            routes: Arc::new(routes),
            http,
            token: token.into(),
        })
    }

    fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|route| route.prefixes.iter().any(|prefix| path.starts_with(prefix)))
    }
}

/// The gateway's fallback: a path owned by a remote service is forwarded, anything else is 404.
pub async fn forward(proxy: Option<Proxy>, request: Request) -> Response {
    let Some(proxy) = proxy else {
        return Problem::from_status(StatusCode::NOT_FOUND).into_response();
    };
    let path = request.uri().path().to_owned();
    let Some(route) = proxy.route_for(&path) else {
        return Problem::from_status(StatusCode::NOT_FOUND).into_response();
    };
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("{}{path_and_query}", route.base_url.trim_end_matches('/'));
    let service = route.service;
    let (parts, body) = request.into_parts();
    let mut headers = outgoing_headers(&parts.headers);
    let principal = parts.extensions.get::<Principal>();
    let client_ip = parts.extensions.get::<ClientIp>().copied().unwrap_or(ClientIp(None));
    internal::write_headers(&mut headers, &proxy.token, principal, client_ip);
    let upstream = proxy
        .http
        .request(parts.method, &url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match upstream {
        Ok(upstream) => {
            let mut response = Response::builder().status(upstream.status());
            if let Some(headers) = response.headers_mut() {
                for (name, value) in upstream.headers() {
                    if !HOP_BY_HOP.contains(&name.as_str()) {
                        headers.append(name.clone(), value.clone());
                    }
                }
            }
            response
                .body(Body::from_stream(upstream.bytes_stream()))
                .unwrap_or_else(|_| Problem::from_status(StatusCode::BAD_GATEWAY).into_response())
        }
        Err(error) if error.is_timeout() => {
            tracing::warn!(service, error = %phoenix_api::ErrorChain(&error), "upstream timed out");
            Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("{service} did not answer in time"),
            )
            .into_response()
        }
        Err(error) => {
            tracing::warn!(service, error = %phoenix_api::ErrorChain(&error), "upstream unavailable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                format!("{service} is unavailable"),
            )
            .with_retry_after(1)
            .into_response()
        }
    }
}

/// The client's headers minus hop-by-hop ones, `Host` (the upstream's is its own) and `Authorization` (services
/// trust the gateway's principal, never a raw credential).
fn outgoing_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(incoming.len());
    for (name, value) in incoming {
        let skip = HOP_BY_HOP.contains(&name.as_str())
            || name == header::HOST
            || name == header::AUTHORIZATION
            || name == header::CONTENT_LENGTH;
        if !skip {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
}
