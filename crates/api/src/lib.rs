//! The wire conventions every Phoenix service shares.
//!
//! - [`Problem`]: the one error response of the platform, RFC 9457 `application/problem+json` with a stable `code`.
//!   Every service maps its own `Error` into a `Problem` in one function; nothing else writes error bodies.
//! - [`Json`], [`Query`], [`Path`]: extractors whose rejections are problems (malformed JSON is 400, JSON with bad
//!   fields is 422 naming the fields) instead of axum's plain-text answers.
//! - [`Principal`] and [`Role`]: who is calling, as established by the gateway, and [`RequireRoles`], the per-route
//!   role check a service declares beside its routes.
//! - [`internal`]: how the gateway hands the principal to a service running in another process, and
//!   [`remote::Client`], the HTTP client one service uses to call another.
//! - [`currency`]: the currencies the platform accepts, with their minor units; [`date`]: the one form of a
//!   calendar date it takes.
//! - [`card`], [`email`] and [`text`]: the card numbers every service refuses, the email addresses it takes, and
//!   the invisible characters it refuses in names.
//! - [`trace`]: the W3C trace context of the work at hand, continued from request to request and into events.
//!
//! This crate verifies no credentials: only the gateway does.

pub mod card;
pub mod currency;
pub mod date;
pub mod email;
mod extract;
mod fields;
pub mod gate;
mod idempotency;
pub mod internal;
mod page;
mod principal;
mod problem;
pub mod remote;
pub mod text;
pub mod trace;

pub use extract::{Json, Path, Query};
pub use fields::FieldErrors;
pub use idempotency::{IDEMPOTENCY_KEY, IdempotencyKey};
pub use page::{Page, PageParams, page_limit};
pub use principal::{ClientIp, Credential, Principal, RequestId, RequireRoles, Role, Roles};
pub use problem::{ErrorChain, FieldError, PROBLEM_CONTENT_TYPE, Problem, ProblemDetails};
