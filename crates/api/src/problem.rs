use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem: the body of every error Phoenix returns.
///
/// `code` is the stable, machine-readable name of the problem (`email_taken`, `insufficient_inventory`); clients
/// branch on it. `detail` is for humans and may change. For a 5xx the detail never says anything internal: the
/// cause is logged where the error is mapped, with the request id that the body carries.
///
/// Boxed, so that `Result<T, Problem>` stays small on the happy path; the fields are reached through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Problem(Box<ProblemDetails>);

/// The fields of a [`Problem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDetails {
    /// `urn:phoenix:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    #[schema(value_type = u16)]
    #[serde(with = "status_code")]
    pub status: StatusCode,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub detail: Option<String>,
    pub code: Cow<'static, str>,
    /// The request id (also in the `X-Request-Id` response header), to quote when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
    /// For 422: which fields were wrong and why.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<FieldError>,
    /// Seconds to wait before retrying (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_secs: Option<u64>,
    /// Further members particular to the problem (RFC 9457 extension members), such as the items a hold was
    /// short of.
    #[serde(flatten, default)]
    #[schema(value_type = Object)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// One field that failed validation. `field` is a JSON path such as `lines[2].quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl From<FieldError> for Problem {
    /// A single field's error is a 422 `invalid_fields` naming it.
    fn from(error: FieldError) -> Problem {
        Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY).with_errors(vec![error])
    }
}

impl Problem {
    pub fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Problem {
        let code = code.into();
        Problem(Box::new(ProblemDetails {
            type_uri: format!("urn:phoenix:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status,
            detail: Some(detail.into()),
            code,
            request_id: None,
            errors: Vec::new(),
            retry_after_secs: None,
            extensions: serde_json::Map::new(),
        }))
    }

    /// The problem for a bare status (an unknown route, a wrong method, a timeout), with its conventional code.
    pub fn from_status(status: StatusCode) -> Problem {
        let (code, detail) = match status {
            StatusCode::BAD_REQUEST => ("bad_request", "the request could not be understood"),
            StatusCode::UNAUTHORIZED => ("unauthenticated", "credentials are missing or not valid"),
            StatusCode::FORBIDDEN => ("forbidden", "your roles do not allow this"),
            StatusCode::NOT_FOUND => ("not_found", "no such resource"),
            StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this resource does not support that method"),
            StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long to arrive"),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is too large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send the body as application/json"),
            StatusCode::UNPROCESSABLE_ENTITY => ("invalid_fields", "some fields are not valid"),
            StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "too many requests"),
            StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "the service is busy or a dependency is down"),
            StatusCode::GATEWAY_TIMEOUT => ("timeout", "the request took too long"),
            s if s.is_server_error() => ("internal", "something went wrong on our side"),
            _ => ("error", "the request failed"),
        };
        Problem::new(status, code, detail)
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    pub fn forbidden() -> Problem {
        Problem::from_status(StatusCode::FORBIDDEN)
    }

    pub fn not_found(what: &str) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Problem {
        Problem::from_status(StatusCode::TOO_MANY_REQUESTS).with_retry_after(retry_after_secs)
    }

    /// A 500 whose cause is logged here, with its whole chain, and never shown to the client.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Problem {
        tracing::error!(error = %ErrorChain(error), "request failed");
        Problem::from_status(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A 503 whose cause is logged and not shown; the client may retry.
    pub fn unavailable(error: &(dyn std::error::Error + 'static), retry_after_secs: u64) -> Problem {
        tracing::warn!(error = %ErrorChain(error), "dependency unavailable");
        Problem::from_status(StatusCode::SERVICE_UNAVAILABLE).with_retry_after(retry_after_secs)
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Problem {
        self.errors = errors;
        self
    }

    /// Adds an extension member (`name` must not be one of the standard members).
    pub fn with_extension(mut self, name: &str, value: serde_json::Value) -> Problem {
        self.extensions.insert(name.to_owned(), value);
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Problem {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> Problem {
        self.request_id = request_id;
        self
    }

    /// Renders the response. Kept separate from `into_response` so the gateway can re-render a problem once it
    /// knows the request id.
    pub fn to_response(&self) -> Response {
        let body = serde_json::to_vec(&self.0).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;
    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDetails {
        &mut self.0
    }
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ProblemDetails as utoipa::PartialSchema>::schema()
    }
}

impl ToSchema for Problem {
    fn name() -> Cow<'static, str> {
        <ProblemDetails as ToSchema>::name()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = self.to_response();
        response.extensions_mut().insert(self);
        response
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.code)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}

/// Formats an error with its sources: `outer: middle: root`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

mod status_code {
    use axum::http::StatusCode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(status: &StatusCode, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(status.as_u16())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<StatusCode, D::Error> {
        let code = u16::deserialize(deserializer)?;
        StatusCode::from_u16(code).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9457_body_with_stable_code() {
        let problem = Problem::conflict("email_taken", "an account with this email already exists");
        let response = problem.to_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        let json = serde_json::to_value(&problem).unwrap();
        assert_eq!(json["type"], "urn:phoenix:problem:email_taken");
        assert_eq!(json["status"], 409);
        assert_eq!(json["code"], "email_taken");
        assert_eq!(json["title"], "Conflict");
        assert!(json.get("errors").is_none());
        let short = problem.with_extension("short_items", serde_json::json!(["a"]));
        let json = serde_json::to_value(&short).unwrap();
        assert_eq!(json["short_items"], serde_json::json!(["a"]));
        let back: Problem = serde_json::from_value(json).unwrap();
        assert_eq!(back, short);
    }

    #[test]
    fn rate_limit_carries_retry_after_header() {
        let response = Problem::too_many_requests(7).to_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }

    #[test]
    fn server_errors_say_nothing_internal() {
        let cause = std::io::Error::other("password=hunter2 at db.internal:5432");
        let problem = Problem::internal(&cause);
        let body = serde_json::to_string(&problem).unwrap();
        assert!(!body.contains("hunter2"));
        assert!(!body.contains("db.internal"));
        assert_eq!(problem.code, "internal");
    }
}
