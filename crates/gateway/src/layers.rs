//! The gateway's middleware: the envelope every request passes (request ids, problems, security headers,
//! metrics) and the guard of the API (client addresses, credentials, rate limits).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use phoenix_api::{ClientIp, PROBLEM_CONTENT_TYPE, Principal, Problem, RequestId, internal};
use phoenix_ratelimit::{Decision, Limiter, Quota};
use uuid::Uuid;

use crate::auth::Authenticator;
use crate::telemetry;

pub const REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");
/// The W3C trace context header.
pub const TRACEPARENT: header::HeaderName = header::HeaderName::from_static(phoenix_api::trace::HEADER);

/// The first thing every request meets and the last thing every response leaves, in one middleware (each
/// `from_fn` layer clones the stack beneath it per request, so fewer is faster):
///
/// - accepts the client's `X-Request-Id` when it is short and printable, otherwise makes one (UUIDv7), and puts it
///   in the request's extensions and headers and in the response;
/// - makes every error response a problem carrying that id ([`normalize`]);
/// - adds the security headers ([`secure`]);
/// - counts and times the request ([`telemetry::observe`]).
pub async fn envelope(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let _in_flight = telemetry::InFlight::start();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, value.clone());
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    request.extensions_mut().insert(RequestId(id.clone()));
    // W3C trace context: continue the caller's trace (or start one); events written while serving carry it, and a
    // service in another process continues it from the forwarded header.
    let incoming = request.headers().get(&TRACEPARENT).and_then(|v| v.to_str().ok());
    let traceparent = phoenix_api::trace::child_of(incoming);
    let trace_value = HeaderValue::from_str(&traceparent).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(TRACEPARENT, trace_value.clone());
    let response = phoenix_api::trace::scope(traceparent, next.run(request)).await;
    let mut response = normalize(response, id);
    secure(response.headers_mut());
    response.headers_mut().insert(REQUEST_ID, value);
    response.headers_mut().insert(TRACEPARENT, trace_value);
    telemetry::observe(&method, route.as_ref(), response.status(), started);
    response
}

/// Makes an error response RFC 9457 problem+json carrying the request id: problems from handlers get the id added;
/// bare statuses from axum or tower (unknown route, wrong method, body too large, timeout) become the problem for
/// their status.
fn normalize(response: Response, request_id: String) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let problem = match response.extensions().get::<Problem>() {
        Some(problem) => problem.clone(),
        None if is_problem(&response) => return response,
        None => Problem::from_status(status),
    };
    let mut rendered = problem.with_request_id(Some(request_id)).to_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = response.headers().get(&name) {
            rendered.headers_mut().insert(name, value.clone());
        }
    }
    rendered
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_CONTENT_TYPE.as_bytes()))
}

/// What the catch-panic layer answers: a 500 problem, the panic logged.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = message, "request handler panicked");
    Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
}

/// The client's address. A request from a trusted proxy is followed back through `X-Forwarded-For`, right to
/// left, past every trusted proxy: the first address that is not one is the client (each proxy appends the
/// address it received from, so entries left of it are whatever the client sent and prove nothing). An entry that
/// is not an address ends the walk at the proxy that forwarded it. A request from anywhere else is its TCP peer.
fn client_ip(request: &Request, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    // Canonical, so an IPv4 peer on a dual-stack socket (`::ffff:10.0.0.7`) matches IPv4 ranges.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())?;
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    // Every X-Forwarded-For header, last first, as a proxy may add a header rather than extend the last one; a
    // header that is not text ends the walk like an entry that is not an address, so nothing left of it is read.
    'walk: for value in request.headers().get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            break;
        };
        for entry in value.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                break 'walk;
            };
            client = ip.to_canonical();
            if !trusted(&client) {
                break 'walk;
            }
        }
    }
    Some(client)
}

/// What the API's guard needs.
pub struct Guard {
    pub authenticator: Authenticator,
    pub limiter: Limiter,
    pub per_principal: Quota,
    pub per_ip: Quota,
    pub trusted_proxies: Vec<IpNet>,
}

/// Guards every API request: removes client-sent internal headers (before anything could read them), records the
/// client's address, counts the request against it, checks the credential if one is sent (a bad one is 401 even
/// on a public route), then counts the request against the principal. Requests without credentials go on
/// unauthenticated; routes that need a principal refuse them.
pub async fn guard(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    internal::strip_headers(request.headers_mut());
    let ip = client_ip(&request, &guard.trusted_proxies);
    request.extensions_mut().insert(ClientIp(ip));
    if let Some(ip) = ip
        && let Err(response) = limit(&guard.limiter, &format!("ip:{ip}"), guard.per_ip).await
    {
        return response;
    }
    let principal: Option<Principal> = match request.headers().get(header::AUTHORIZATION).map(|v| v.to_str()) {
        None => None,
        Some(Err(_)) => return Problem::unauthenticated("the Authorization header is not valid").into_response(),
        Some(Ok(value)) => match guard.authenticator.authenticate(value).await {
            Ok(principal) => Some(principal),
            Err(problem) => return problem.into_response(),
        },
    };
    if let Some(principal) = principal {
        if let Err(response) = limit(&guard.limiter, &principal.rate_limit_key(), guard.per_principal).await {
            return response;
        }
        tracing::Span::current().record("user_id", tracing::field::display(principal.user_id));
        request.extensions_mut().insert(principal);
    }
    next.run(request).await
}

async fn limit(limiter: &Limiter, key: &str, quota: Quota) -> Result<(), Response> {
    match limiter.check(key, quota).await {
        Ok(Decision::Allowed) => Ok(()),
        Ok(decision) => Err(Problem::too_many_requests(decision.retry_after_secs()).into_response()),
        // Fail open: a rate-limit store outage must not take the platform down with it.
        Err(error) => {
            tracing::warn!(error = %phoenix_api::ErrorChain(&error), "rate limit store unavailable, request allowed");
            Ok(())
        }
    }
}

/// Headers that make a browser treat API responses as inert data. A route that serves pages sets its own
/// `Content-Security-Policy` and `Cache-Control`; these are only defaults.
fn secure(headers: &mut HeaderMap) {
    const HEADERS: [(header::HeaderName, &str); 6] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(peer: &str, forwarded: &[&[u8]]) -> Request {
        let mut request = Request::new(Body::empty());
        let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        for value in forwarded {
            request
                .headers_mut()
                .append("x-forwarded-for", HeaderValue::from_bytes(value).unwrap());
        }
        request
    }

    fn client_of(peer: &str, forwarded: &[&[u8]], trusted: &[&str]) -> String {
        let trusted: Vec<IpNet> = trusted.iter().map(|n| n.parse().unwrap()).collect();
        client_ip(&from(peer, forwarded), &trusted).unwrap().to_string()
    }

    fn client(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let forwarded: Vec<&[u8]> = forwarded.iter().map(|v| v.as_bytes()).collect();
        client_of(peer, &forwarded, trusted)
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        assert_eq!(client("203.0.113.9", &["198.51.100.1"], &[]), "203.0.113.9");
    }

    #[test]
    fn a_client_that_is_not_a_trusted_proxy_cannot_choose_its_address() {
        assert_eq!(client("203.0.113.9", &["198.51.100.1"], &["10.0.0.0/8"]), "203.0.113.9");
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_address_it_appended() {
        // The client sent "1.2.3.4" itself; the proxy appended the address it saw.
        assert_eq!(
            client("10.1.2.3", &["1.2.3.4, 198.51.100.7"], &["10.0.0.0/8"]),
            "198.51.100.7"
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_to_the_first_untrusted_address() {
        assert_eq!(
            client("10.1.2.3", &["1.2.3.4, 198.51.100.7, 10.9.9.9"], &["10.0.0.0/8"]),
            "198.51.100.7"
        );
        // Appended as separate headers, in order.
        assert_eq!(
            client("10.1.2.3", &["1.2.3.4", "198.51.100.7", "10.9.9.9"], &["10.0.0.0/8"]),
            "198.51.100.7"
        );
    }

    #[test]
    fn garbage_ends_the_walk_at_the_proxy_that_forwarded_it() {
        assert_eq!(client("10.1.2.3", &["unknown"], &["10.0.0.0/8"]), "10.1.2.3");
        assert_eq!(
            client("10.1.2.3", &["not-an-ip, 10.4.4.4"], &["10.0.0.0/8"]),
            "10.4.4.4"
        );
        assert_eq!(client("10.1.2.3", &[], &["10.0.0.0/8"]), "10.1.2.3");
        // A header that is not text hides what is left of it: the walk stops there too.
        assert_eq!(
            client_of("10.1.2.3", &[b"198.51.100.7", b"\xff, 10.4.4.4"], &["10.0.0.0/8"]),
            "10.1.2.3"
        );
        assert_eq!(
            client_of("10.1.2.3", &[b"198.51.100.7", b"\xff", b"10.4.4.4"], &["10.0.0.0/8"]),
            "10.4.4.4"
        );
    }

    #[test]
    fn ipv4_peers_on_a_dual_stack_socket_match_ipv4_ranges() {
        assert_eq!(
            client("[::ffff:10.1.2.3]", &["198.51.100.7"], &["10.0.0.0/8"]),
            "198.51.100.7"
        );
        assert_eq!(
            client("[2001:db8::1]", &["198.51.100.7"], &["2001:db8::/32"]),
            "198.51.100.7"
        );
    }
}
