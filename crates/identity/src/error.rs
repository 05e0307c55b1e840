use axum::http::StatusCode;
use phoenix_api::{FieldError, Problem};

/// What can go wrong in identity. Client mistakes are variants with their own stable codes; the rest are 5xx whose
/// causes are logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid fields: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("email or password is wrong")]
    InvalidCredentials,
    #[error("this account uses two-factor authentication: send totp_code")]
    MfaRequired,
    #[error("the two-factor code is wrong or was already used")]
    InvalidMfaCode,
    #[error("the code is wrong or was already used")]
    CodeRejected,
    #[error("the current password is wrong")]
    CurrentPasswordRejected,
    #[error("this account uses two-factor authentication: send totp_code")]
    MfaCodeRequired,
    #[error("too many failed sign-ins: try again in {retry_after_secs} s")]
    LoginThrottled { retry_after_secs: u64 },
    #[error("too many wrong codes or failed sign-ins: try again in {retry_after_secs} s")]
    CodeThrottled { retry_after_secs: u64 },
    #[error("too many password reset requests from this address: try again in {retry_after_secs} s")]
    PasswordResetThrottled { retry_after_secs: u64 },
    /// Unknown, used, expired or replaced by a newer request: one answer for all, so a probe learns nothing.
    #[error("the password reset token is not valid: it is unknown, was used, has expired or was replaced")]
    InvalidResetToken,
    #[error("the refresh token is unknown, expired or revoked")]
    InvalidRefreshToken,
    #[error("the refresh token was already used: every session of this sign-in is revoked")]
    RefreshTokenReused,
    #[error("two-factor authentication is already enabled")]
    MfaAlreadyEnabled,
    #[error("set up two-factor authentication first")]
    MfaNotSetUp,
    #[error("two-factor authentication is not enabled")]
    MfaNotEnabled,
    #[error("no such user")]
    UserNotFound,
    #[error("no such organization")]
    OrganizationNotFound,
    #[error("an organization with this name already exists")]
    OrganizationNameTaken,
    #[error("no such API key")]
    ApiKeyNotFound,
    #[error("the API key is unknown, expired or revoked, or its owner no longer holds a role that uses API keys")]
    InvalidApiKey,
    #[error("this needs a signed-in session, not an API key")]
    SessionRequired,
    #[error("this session has ended (signed out, or the password or second factor changed): sign in again")]
    SessionEnded,
    #[error("at most {max} live API keys per user: revoke one first")]
    TooManyApiKeys { max: u32 },
    #[error("an admin cannot remove their own admin role")]
    CannotRemoveOwnAdmin,
    #[error("stored {what} is not valid")]
    Corrupt { what: &'static str },
    #[error("no signing key is available")]
    NoSigningKey,
    #[error("signing key generation failed")]
    KeyGeneration,
    #[error("token signing failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("totp failed: {0}")]
    Totp(String),
    #[error(transparent)]
    Hash(#[from] crate::password::HashError),
    #[error(transparent)]
    Db(#[from] phoenix_db::Error),
    /// A stored secret did not open: sealed with a key not configured here, or altered.
    #[error("stored secret: {0}")]
    Sealed(#[from] phoenix_db::SealError),
    #[error("login throttle store failed")]
    Limiter(#[from] phoenix_ratelimit::Error),
    #[error("issuing a password reset token failed")]
    ResetTask(#[source] tokio::task::JoinError),
}

fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{} {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Error {
        Error::Db(phoenix_db::Error::Sql(error))
    }
}

impl Error {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::Invalid(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }])
    }
}

/// The one mapping from identity's errors to HTTP.
impl From<Error> for Problem {
    fn from(error: Error) -> Problem {
        use StatusCode as S;
        let (status, code) = match &error {
            Error::Invalid(errors) => {
                return Problem::from_status(S::UNPROCESSABLE_ENTITY).with_errors(errors.clone());
            }
            Error::LoginThrottled { retry_after_secs } => {
                return Problem::new(S::TOO_MANY_REQUESTS, "login_throttled", error.to_string())
                    .with_retry_after(*retry_after_secs);
            }
            Error::CodeThrottled { retry_after_secs } => {
                return Problem::new(S::TOO_MANY_REQUESTS, "mfa_throttled", error.to_string())
                    .with_retry_after(*retry_after_secs);
            }
            Error::PasswordResetThrottled { retry_after_secs } => {
                return Problem::new(S::TOO_MANY_REQUESTS, "password_reset_throttled", error.to_string())
                    .with_retry_after(*retry_after_secs);
            }
            Error::InvalidResetToken => (S::BAD_REQUEST, "invalid_reset_token"),
            Error::EmailTaken => (S::CONFLICT, "email_taken"),
            Error::InvalidCredentials => (S::UNAUTHORIZED, "invalid_credentials"),
            Error::MfaRequired => (S::UNAUTHORIZED, "mfa_required"),
            Error::InvalidMfaCode => (S::UNAUTHORIZED, "invalid_mfa_code"),
            Error::CodeRejected => (S::UNPROCESSABLE_ENTITY, "invalid_mfa_code"),
            Error::CurrentPasswordRejected => (S::UNPROCESSABLE_ENTITY, "invalid_current_password"),
            Error::MfaCodeRequired => (S::UNPROCESSABLE_ENTITY, "mfa_required"),
            Error::InvalidRefreshToken => (S::UNAUTHORIZED, "invalid_refresh_token"),
            Error::RefreshTokenReused => (S::UNAUTHORIZED, "refresh_token_reused"),
            Error::MfaAlreadyEnabled => (S::CONFLICT, "mfa_already_enabled"),
            Error::MfaNotSetUp => (S::CONFLICT, "mfa_not_set_up"),
            Error::MfaNotEnabled => (S::CONFLICT, "mfa_not_enabled"),
            Error::UserNotFound => (S::NOT_FOUND, "not_found"),
            Error::OrganizationNotFound => (S::NOT_FOUND, "not_found"),
            Error::OrganizationNameTaken => (S::CONFLICT, "organization_name_taken"),
            Error::ApiKeyNotFound => (S::NOT_FOUND, "not_found"),
            Error::InvalidApiKey => (S::UNAUTHORIZED, "invalid_api_key"),
            Error::SessionRequired => (S::FORBIDDEN, "session_required"),
            Error::SessionEnded => (S::UNAUTHORIZED, "session_ended"),
            Error::TooManyApiKeys { .. } => (S::CONFLICT, "too_many_api_keys"),
            Error::CannotRemoveOwnAdmin => (S::CONFLICT, "cannot_remove_own_admin"),
            Error::Limiter(_) => return Problem::unavailable(&error, 1),
            Error::Db(phoenix_db::Error::Sql(sqlx::Error::PoolTimedOut)) => return Problem::unavailable(&error, 1),
            Error::Corrupt { .. }
            | Error::Sealed(_)
            | Error::NoSigningKey
            | Error::KeyGeneration
            | Error::Sign(_)
            | Error::Totp(_)
            | Error::Hash(_)
            | Error::ResetTask(_)
            | Error::Db(_) => return Problem::internal(&error),
        };
        Problem::new(status, code, error.to_string())
    }
}
