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

/// What a client is told about text holding the NUL character.
const NUL: &str = "must not contain the NUL character (U+0000)";

/// Parses a JSON object, telling a syntax error (400) from a shape error (422 with the path of the field at fault).
///
/// Every request body of the API is an object, and serde_json would otherwise read a top-level array as a struct's
/// fields in order (`["ann@example.com", "secret"]` for `{email, password}`), a shape the API document forbids:
/// such a body is 422 naming `body`. (A nested array where an object belongs still reads that way; what it yields
/// is validated like any other value.) So is a body with a NUL character in any string (`\u0000`): PostgreSQL
/// cannot store one in text, so it would fail the request after validation, and no field of the API needs one.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let body_error = |message: &str| {
        Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY).with_errors(vec![FieldError {
            field: "body".to_owned(),
            message: message.to_owned(),
        }])
    };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(body_error("invalid type: sequence, expected a JSON object"));
    }
    if has_escaped_nul(bytes) {
        return Err(body_error(NUL));
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

/// Whether JSON text holds the escape `\u0000` (JSON strings cannot hold a raw NUL): a `u0000` after an odd run of
/// backslashes, as an even run is escaped backslashes followed by plain text.
fn has_escaped_nul(json: &[u8]) -> bool {
    json.windows(5)
        .enumerate()
        .any(|(at, window)| window == b"u0000" && json[..at].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1)
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
        if let Some((name, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(
                Problem::from_status(StatusCode::UNPROCESSABLE_ENTITY).with_errors(vec![FieldError {
                    field: name.replace('\0', ""),
                    message: NUL.to_owned(),
                }]),
            );
        }
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

/// Path parameters. An identifier that does not even parse names nothing that exists: 404; nor does one holding a
/// NUL character (`%00`), which no stored identifier holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().contains("%00") {
            return Err(Problem::not_found("resource"));
        }
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

    #[test]
    fn a_nul_character_anywhere_in_the_body_is_422_naming_body() {
        for body in [
            &br#"{"email": "ann\u0000@example.com", "age": 3}"#[..],
            br#"{"email": "a@b.c", "age": 3, "n\u0000": 1}"#,
            br#"{"email": "\\\u0000", "age": 3}"#,
        ] {
            let problem = parse::<Register>(body).unwrap_err();
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(
                (problem.errors[0].field.as_str(), problem.errors[0].message.as_str()),
                ("body", NUL)
            );
        }
        // An escaped backslash followed by the text `u0000` is no NUL.
        let text = parse::<Register>(br#"{"email": "\\u0000", "age": 3}"#).unwrap();
        assert_eq!(text.email, "\\u0000");
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

    #[tokio::test]
    async fn a_nul_character_in_a_query_parameter_is_422_naming_it() {
        for uri in ["/lookup?locator=A&last_name=B%00", "/lookup?locator=%00&last_name=B"] {
            let problem = query(uri).await.unwrap_err();
            assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
            assert_eq!(problem.errors[0].message, NUL, "{uri}");
        }
        let named = query("/lookup?locator=A&last_name=B%00").await.unwrap_err();
        assert_eq!(named.errors[0].field, "last_name");
    }

    #[tokio::test]
    async fn a_nul_character_in_the_path_names_nothing() {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri("/items/seat%00x")
            .body(())
            .expect("request")
            .into_parts();
        let problem = Path::<String>::from_request_parts(&mut parts, &()).await.unwrap_err();
        assert_eq!(problem.status, StatusCode::NOT_FOUND);
    }
}
