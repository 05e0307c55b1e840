use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Problem;
use crate::problem::FieldError;

/// A JSON body. Rejections are problems: no `Content-Type: application/json` is 415, a body over the limit is 413,
/// malformed JSON is 400 `malformed_json`, and JSON whose fields do not fit is 422 `invalid_fields` naming the field.
///
/// As a response it serialises `T` with status 200; pair it with a status for anything else.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(Problem::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| Problem::from_status(rejection.status()))?;
        parse(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn is_json(req: &Request) -> bool {
    let Some(content_type) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(content_type) = content_type.to_str() else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON object, telling a syntax error (400) from a shape error (422 with the path of the field at fault).
///
/// Every request body of the API is an object, and serde_json would otherwise read a top-level array as a struct's
/// fields in order (`["ann@example.com", "secret"]` for `{email, password}`), a shape the API document forbids:
/// such a body is 422 naming `body`. (A nested array where an object belongs still reads that way; what it yields
/// is validated like any other value.)
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(
            Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY).with_errors(vec![FieldError {
                field: "body".to_owned(),
                message: "invalid type: sequence, expected a JSON object".to_owned(),
            }]),
        );
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(deserializer) {
        Ok(value) => Ok(value),
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let message = strip_position(&inner);
                    let field = field_at(path, &message, "body");
                    Err(Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY)
                        .with_errors(vec![FieldError { field, message }]))
                }
                _ => Err(Problem::bad_request(
                    "malformed_json",
                    format!("the body is not valid JSON: {inner}"),
                )),
            }
        }
    }
}

/// The field an error at `path` is about: the path itself, or for an error about the whole object (`.`) the
/// missing field serde names (`missing field \`last_name\``), else `whole`.
fn field_at(path: String, message: &str, whole: &str) -> String {
    if path != "." {
        return path;
    }
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map_or_else(|| whole.to_owned(), |(field, _)| field.to_owned())
}

/// serde_json appends "at line 1 column 42" to messages; for a field error the field name says more.
fn strip_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message,
    }
}

/// Query parameters; a parameter that does not parse is 422 `invalid_fields` naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                let field = field_at(path, &message, "query");
                Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY).with_errors(vec![FieldError { field, message }])
            })
    }
}

/// Path parameters. An identifier that does not even parse names nothing that exists: 404.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) if rejection.status().is_server_error() => Err(Problem::internal(&rejection)),
            Err(_) => Err(Problem::not_found("resource")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Register {
        email: String,
        age: u8,
    }

    #[test]
    fn syntax_error_is_400() {
        let problem = parse::<Register>(b"{\"email\": ").unwrap_err();
        assert_eq!(problem.status, StatusCode::BAD_REQUEST);
        assert_eq!(problem.code, "malformed_json");
    }

    #[test]
    fn wrong_type_is_422_naming_the_field() {
        let problem = parse::<Register>(br#"{"email": "a@b.c", "age": "old"}"#).unwrap_err();
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.errors[0].field, "age");
        assert!(!problem.errors[0].message.contains("line"));
    }

    #[test]
    fn missing_field_is_422_naming_it() {
        let problem = parse::<Register>(br#"{"age": 3}"#).unwrap_err();
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.errors[0].field, "email", "{:?}", problem.errors);
        let whole = parse::<Register>(b"\"text\"").unwrap_err();
        assert_eq!(whole.errors[0].field, "body", "{:?}", whole.errors);
    }

    #[test]
    fn an_array_is_not_an_object_even_with_the_fields_in_order() {
        for body in [&br#"["a@b.c", 3]"#[..], b" \n[]", b"[[]]"] {
            let problem = parse::<Register>(body).unwrap_err();
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(problem.code, "invalid_fields");
            assert_eq!(problem.errors[0].field, "body", "{:?}", problem.errors);
        }
        // A body that opens an array is refused for its shape before the rest is read, malformed or not.
        assert_eq!(
            parse::<Register>(b"[").unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Lookup {
        locator: String,
        last_name: String,
        limit: Option<u32>,
    }

    async fn query(uri: &str) -> Result<Lookup, Problem> {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri(uri)
            .body(())
            .expect("request")
            .into_parts();
        Query::<Lookup>::from_request_parts(&mut parts, &()).await.map(|q| q.0)
    }

    #[tokio::test]
    async fn a_query_parameter_missing_or_wrong_is_422_naming_it() {
        let missing = query("/lookup?locator=ABCDEF").await.unwrap_err();
        assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(missing.errors[0].field, "last_name", "{:?}", missing.errors);
        let wrong = query("/lookup?locator=A&last_name=B&limit=many").await.unwrap_err();
        assert_eq!(wrong.errors[0].field, "limit", "{:?}", wrong.errors);
        assert!(query("/lookup?locator=A&last_name=B").await.is_ok());
    }
}
