//! How the gateway hands a request to a service running in another process.
//!
//! In one process the gateway puts the [`Principal`], [`RequestId`] and [`ClientIp`] into the request's extensions
//! and calls the service's router directly. Across processes it sends them as headers, together with the shared
//! internal token, and the service's [`Layer`] turns them back into extensions: handlers read them the same way in
//! both shapes. A request without the right token is refused, so nothing outside the platform can claim to be a
//! principal. The gateway strips these headers from client requests before it adds its own.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::gate::{Check, Gate};
use crate::{ClientIp, Principal, Problem, RequestId};

pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-phoenix-internal-token");
pub const PRINCIPAL_HEADER: HeaderName = HeaderName::from_static("x-phoenix-principal");
pub const CLIENT_IP_HEADER: HeaderName = HeaderName::from_static("x-phoenix-client-ip");
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Writes the principal and client address as internal headers (replacing any the client sent).
pub fn write_headers(headers: &mut HeaderMap, token: &str, principal: Option<&Principal>, client_ip: ClientIp) {
    strip_headers(headers);
    if let Ok(value) = HeaderValue::from_str(token) {
        headers.insert(TOKEN_HEADER, value);
    }
    if let Some(principal) = principal
        && let Ok(json) = serde_json::to_vec(principal)
        && let Ok(value) = HeaderValue::from_str(&URL_SAFE_NO_PAD.encode(json))
    {
        headers.insert(PRINCIPAL_HEADER, value);
    }
    if let ClientIp(Some(ip)) = client_ip
        && let Ok(value) = HeaderValue::from_str(&ip.to_string())
    {
        headers.insert(CLIENT_IP_HEADER, value);
    }
}

/// Removes every internal header: a client must never be able to send one through the gateway.
pub fn strip_headers(headers: &mut HeaderMap) {
    headers.remove(TOKEN_HEADER);
    headers.remove(PRINCIPAL_HEADER);
    headers.remove(CLIENT_IP_HEADER);
}

/// Wraps a service's router when it runs as its own process: checks the internal token and restores the
/// extensions the gateway would have set in-process.
#[derive(Clone)]
pub struct Layer {
    token: Arc<str>,
}

impl Layer {
    pub fn new(token: &str) -> Layer {
        Layer { token: token.into() }
    }
}

impl<S> tower::Layer<S> for Layer {
    type Service = Gate<S, Layer>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate::new(inner, self.clone())
    }
}

impl Check for Layer {
    fn check(&self, request: &mut Request) -> Result<(), Problem> {
        restore_extensions(request, &self.token)
    }
}

fn restore_extensions(request: &mut Request, token: &str) -> Result<(), Problem> {
    let headers = request.headers();
    let presented = headers.get(TOKEN_HEADER).map(HeaderValue::as_bytes).unwrap_or_default();
    if !constant_time_eq(presented, token.as_bytes()) {
        return Err(Problem::unauthenticated(
            "internal endpoint: call it through the gateway",
        ));
    }
    let principal = match headers.get(PRINCIPAL_HEADER) {
        None => None,
        Some(value) => Some(
            URL_SAFE_NO_PAD
                .decode(value.as_bytes())
                .ok()
                .and_then(|json| serde_json::from_slice::<Principal>(&json).ok())
                .ok_or_else(|| {
                    Problem::bad_request("invalid_principal", "the internal principal header is malformed")
                })?,
        ),
    };
    let client_ip = headers
        .get(CLIENT_IP_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let extensions = request.extensions_mut();
    if let Some(principal) = principal {
        extensions.insert(principal);
    }
    extensions.insert(ClientIp(client_ip));
    if let Some(id) = request_id {
        extensions.insert(RequestId(id));
    }
    strip_headers(request.headers_mut());
    Ok(())
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
