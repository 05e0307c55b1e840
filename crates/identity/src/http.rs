//! Identity's HTTP API: wire types, handlers and their OpenAPI description. Handlers parse, authorize and map;
//! the work is in [`Service`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use phoenix_api::{ClientIp, Json, Page, PageParams, Path, Principal, Problem, Query, RequireRoles, Role};
use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::org::{Organization, OrganizationKind};
use crate::session::{Login, Session};
use crate::user::User;
use crate::{PasswordChange, Service, api_key};

type Result<T> = std::result::Result<T, Problem>;

const TAG: &str = "identity";

/// Identity's public routes, described for OpenAPI. Who may call each is declared here, beside it.
pub fn api() -> OpenApiRouter<Service> {
    let public = OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
        .routes(routes!(jwks));
    let signed_in = OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(revoke_sessions))
        .routes(routes!(setup_totp))
        .routes(routes!(enable_totp))
        .routes(routes!(disable_totp))
        .routes(routes!(get_user))
        // Anyone's own keys, listed and revoked: also those of an owner who no longer holds a key role.
        .routes(routes!(list_api_keys))
        .routes(routes!(revoke_api_key))
        .route_layer(RequireRoles::authenticated());
    let key_holders = OpenApiRouter::new()
        .routes(routes!(create_api_key))
        .route_layer(RequireRoles::any_of(api_key::ROLES));
    let staff = OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(list_organizations))
        .routes(routes!(get_organization))
        .route_layer(RequireRoles::any_of(&[Role::Support, Role::Admin]));
    let admin = OpenApiRouter::new()
        .routes(routes!(set_roles))
        .routes(routes!(create_organization))
        .route_layer(RequireRoles::any_of(&[Role::Admin]));
    public.merge(signed_in).merge(key_holders).merge(staff).merge(admin)
}

/// The path prefixes identity answers, for the gateway's routing table when identity runs elsewhere.
pub const PATH_PREFIXES: &[&str] = &[
    "/api/v1/auth/",
    "/api/v1/users/",
    "/api/v1/api-keys",
    "/api/v1/admin/users",
    "/api/v1/admin/organizations",
    "/.well-known/jwks.json",
];

// Wire types

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ann@example.com")]
    pub email: String,
    /// At least 12 characters, not a common password, not built from the email or name.
    #[schema(min_length = 12)]
    pub password: String,
    #[schema(example = "Ann Lee")]
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub organization_id: Option<Uuid>,
    pub mfa_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&User> for UserResponse {
    fn from(user: &User) -> UserResponse {
        UserResponse {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            roles: user.roles.clone(),
            organization_id: user.organization_id,
            mfa_enabled: user.totp_enabled,
            created_at: user.created_at.datetime(),
        }
    }
}

impl From<User> for UserResponse {
    fn from(user: User) -> UserResponse {
        UserResponse::from(&user)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
    /// The current TOTP code, or a recovery code, for accounts with two-factor authentication.
    #[serde(default)]
    pub totp_code: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<Session> for TokenResponse {
    fn from(session: Session) -> TokenResponse {
        TokenResponse {
            access_token: session.access_token,
            refresh_token: session.refresh_token,
            token_type: "Bearer".to_owned(),
            expires_in: session.expires_in_secs,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// At least 12 characters, not a common password, not built from the email or name, not the current one.
    #[schema(min_length = 12)]
    pub new_password: String,
    /// The current TOTP code, or a recovery code, for accounts with two-factor authentication.
    #[serde(default)]
    pub totp_code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    /// The account's email address.
    #[schema(example = "ann@example.com")]
    pub email: String,
}

/// Not `Debug`: it holds a reset token and a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirmation {
    /// The token from the reset link (after `#token=`).
    pub token: String,
    /// At least 12 characters, not a common password, not built from the email or name.
    #[schema(min_length = 12)]
    pub new_password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32 secret, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://` URL, for a QR code.
    pub otpauth_url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// A TOTP code (or, to disable, a recovery code).
    pub code: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodesResponse {
    /// Single-use codes that stand in for a TOTP code. Shown once.
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the key, to recognise it by.
    pub prefix: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<api_key::ApiKey> for ApiKeyResponse {
    fn from(key: api_key::ApiKey) -> ApiKeyResponse {
        ApiKeyResponse {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            created_at: key.created_at.datetime(),
            expires_at: key.expires_at.map(Timestamp::datetime),
            revoked_at: key.revoked_at.map(Timestamp::datetime),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    /// The key itself: send it as `Authorization: Bearer <key>`. Shown only in this response.
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKeyResponse,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganizationRequest {
    pub name: String,
    pub kind: OrganizationKind,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrganizationResponse {
    pub id: Uuid,
    pub name: String,
    pub kind: OrganizationKind,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<Organization> for OrganizationResponse {
    fn from(org: Organization) -> OrganizationResponse {
        OrganizationResponse {
            id: org.id,
            name: org.name,
            kind: org.kind,
            created_at: org.created_at.datetime(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesRequest {
    pub roles: Vec<Role>,
    /// Required when the roles include agent, partner or operator.
    #[serde(default)]
    pub organization_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserFilter {
    /// Only users whose email contains this text, as typed (`%` and `_` are not wildcards), in any case.
    pub email: Option<String>,
}

fn cursor(params: &PageParams) -> Result<Option<Uuid>> {
    params
        .cursor
        .as_deref()
        .map(|c| Uuid::try_parse(c).map_err(|_| Problem::unprocessable("invalid_cursor", "cursor is not valid")))
        .transpose()
}

fn page<T, U: From<T>>(items: Vec<T>, limit: u32, id: impl Fn(&U) -> Uuid) -> Page<U> {
    let items: Vec<U> = items.into_iter().map(U::from).collect();
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|last| id(last).to_string()))
        .flatten();
    Page { items, next_cursor }
}

// Handlers

/// Create a customer account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = TAG, request_body = RegisterRequest,
    responses((status = 201, body = UserResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn register(State(service): State<Service>, Json(body): Json<RegisterRequest>) -> Result<impl IntoResponse> {
    let user = service.register(&body.email, &body.password, &body.name).await?;
    Ok((StatusCode::CREATED, Json(UserResponse::from(user))))
}

/// Sign in with email and password (and a TOTP or recovery code when two-factor authentication is on).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = TAG, request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
async fn login(
    State(service): State<Service>,
    ClientIp(client_ip): ClientIp,
    Json(body): Json<LoginRequest>,
) -> Result<Json<TokenResponse>> {
    let session = service
        .login(Login {
            email: &body.email,
            password: &body.password,
            totp_code: body.totp_code.as_deref(),
            client_ip,
        })
        .await?;
    Ok(Json(session.into()))
}

/// Trade a refresh token for a new access and refresh token. A refresh token works once; reusing one revokes the
/// whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = TAG, request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
async fn refresh(State(service): State<Service>, Json(body): Json<RefreshRequest>) -> Result<Json<TokenResponse>> {
    Ok(Json(service.refresh(&body.refresh_token).await?.into()))
}

/// Sign out: revoke the refresh token's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = TAG, request_body = RefreshRequest,
    responses((status = 204)))]
async fn logout(State(service): State<Service>, Json(body): Json<RefreshRequest>) -> Result<StatusCode> {
    service.logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forgot your password: a link to set a new one is mailed to the address, if an account has it. The answer is
/// 202 either way (and as quick), so it says nothing about which addresses have accounts; a malformed address is
/// 422. Requests are limited per client address (429 `password_reset_throttled`, with `Retry-After`) and per email
/// address (past that limit the answer is the same 202 and nothing is sent). Each link works once, for
/// `identity.password_reset_ttl_secs` (30 minutes), and a newer request's link replaces it.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = TAG, request_body = PasswordResetRequest,
    responses((status = 202, description = "Accepted: a link is mailed if an account has the address"),
        (status = 422, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
async fn request_password_reset(
    State(service): State<Service>,
    ClientIp(client_ip): ClientIp,
    Json(body): Json<PasswordResetRequest>,
) -> Result<StatusCode> {
    // Not waited for: the account is looked up and its token issued after the answer, which thus takes as long for
    // every address.
    drop(service.request_password_reset(&body.email, client_ip).await?);
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token from a reset link. The token works once: an unknown, used, expired or
/// replaced one is 400 `invalid_reset_token`. The new password follows the registration rules (422 naming
/// `new_password`; the token stays good). Every session of the account ends (refresh tokens at once; the gateway
/// refuses their access tokens with 401 `session_ended` within a second or so); two-factor authentication, if on,
/// stays on.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = TAG,
    request_body = PasswordResetConfirmation,
    responses((status = 204, description = "The password is set; every session is signed out"),
        (status = 400, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn confirm_password_reset(
    State(service): State<Service>,
    Json(body): Json<PasswordResetConfirmation>,
) -> Result<StatusCode> {
    service.confirm_password_reset(&body.token, &body.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public keys that verify access tokens (JWKS).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = TAG,
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
async fn jwks(State(service): State<Service>) -> Result<impl IntoResponse> {
    let set = service.jwks(false).await?;
    Ok(([(axum::http::header::CACHE_CONTROL, "public, max-age=60")], Json(set)))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = UserResponse), (status = 401, body = Problem)))]
async fn me(State(service): State<Service>, principal: Principal) -> Result<Json<UserResponse>> {
    let user = service.profile_for(&principal, principal.user_id).await?;
    Ok(Json(UserResponse::from(user.as_ref())))
}

/// Change your password (signed in: not with an API key, 403 `session_required`). Needs the current password, and
/// `totp_code` when two-factor authentication is on; a wrong one (422 `invalid_current_password`,
/// `invalid_mfa_code`) counts as a failed sign-in (429 `login_throttled` past the quota). Every other session ends
/// (their refresh tokens stop working, and the gateway refuses their access tokens with 401 `session_ended` within
/// a second or so); this one continues.
#[utoipa::path(put, path = "/api/v1/auth/password", tag = TAG, security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed; every other session is signed out"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem), (status = 503, body = Problem)))]
async fn change_password(
    State(service): State<Service>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    Json(body): Json<ChangePasswordRequest>,
) -> Result<StatusCode> {
    let change = PasswordChange {
        current_password: &body.current_password,
        new_password: &body.new_password,
        totp_code: body.totp_code.as_deref(),
        client_ip,
    };
    service.change_password(&principal, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere (signed in: not with an API key, 403 `session_required`): every refresh token of yours stops
/// working, this session's too, and the gateway refuses every access token of yours issued before with 401
/// `session_ended` within a second or so.
#[utoipa::path(delete, path = "/api/v1/auth/sessions", tag = TAG, security(("bearer" = [])),
    responses((status = 204, description = "Every session is signed out"), (status = 401, body = Problem),
        (status = 403, body = Problem)))]
async fn revoke_sessions(State(service): State<Service>, principal: Principal) -> Result<StatusCode> {
    service.revoke_sessions(&principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start setting up TOTP: returns a secret for an authenticator app (signed in: not with an API key, 403
/// `session_required`).
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/setup", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = TotpSetupResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn setup_totp(State(service): State<Service>, principal: Principal) -> Result<Json<TotpSetupResponse>> {
    let setup = service.setup_totp(&principal).await?;
    Ok(Json(TotpSetupResponse {
        secret: setup.secret,
        otpauth_url: setup.otpauth_url,
    }))
}

/// Turn TOTP on with a code from the app; returns recovery codes, shown once. Every other session ends (this one
/// continues). Signed in: not with an API key (403 `session_required`).
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/enable", tag = TAG, security(("bearer" = [])),
    request_body = CodeRequest,
    responses((status = 200, body = RecoveryCodesResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
async fn enable_totp(
    State(service): State<Service>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    Json(body): Json<CodeRequest>,
) -> Result<Json<RecoveryCodesResponse>> {
    let recovery_codes = service.enable_totp(&principal, &body.code, client_ip).await?;
    Ok(Json(RecoveryCodesResponse { recovery_codes }))
}

/// Turn TOTP off; needs a current code or a recovery code. Signed in: not with an API key (403 `session_required`).
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/disable", tag = TAG, security(("bearer" = [])),
    request_body = CodeRequest,
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)))]
async fn disable_totp(
    State(service): State<Service>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    Json(body): Json<CodeRequest>,
) -> Result<StatusCode> {
    service.disable_totp(&principal, &body.code, client_ip).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user: yourself, or anyone for support and admin.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = UserResponse), (status = 404, body = Problem)))]
async fn get_user(
    State(service): State<Service>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<Json<UserResponse>> {
    Ok(Json(UserResponse::from(
        service.profile_for(&principal, id).await?.as_ref(),
    )))
}

/// Create an API key (partners and admins, signed in: not with an API key, 403 `session_required`). The key is in
/// this response only. At most 100 live keys per user (409 `too_many_api_keys`).
#[utoipa::path(post, path = "/api/v1/api-keys", tag = TAG, security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKeyResponse), (status = 401, body = Problem), (status = 403, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn create_api_key(
    State(service): State<Service>,
    principal: Principal,
    Json(body): Json<CreateApiKeyRequest>,
) -> Result<impl IntoResponse> {
    let expires_at = body.expires_at.map(Timestamp::from);
    let (key, secret) = service.create_api_key(&principal, &body.name, expires_at).await?;
    let response = CreatedApiKeyResponse {
        key: secret,
        api_key: key.into(),
    };
    Ok((StatusCode::CREATED, Json(response)))
}

/// Your API keys (without their secrets), oldest first: every live one, and the 100 revoked or expired last. Anyone
/// signed in: an owner who no longer holds a key role still sees (and may revoke) the keys they made, which do not
/// work meanwhile.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = TAG, security(("bearer" = [])),
    responses((status = 200, body = Vec<ApiKeyResponse>)))]
async fn list_api_keys(State(service): State<Service>, principal: Principal) -> Result<Json<Vec<ApiKeyResponse>>> {
    let keys = service.api_keys(&principal).await?;
    Ok(Json(keys.into_iter().map(ApiKeyResponse::from).collect()))
}

/// Revoke an API key: it stops working at once. Your own (any, for an admin), signed in (an API key gets 403
/// `session_required`), except that a key may revoke itself.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn revoke_api_key(
    State(service): State<Service>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    service.revoke_api_key(&principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List users (support and admin).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = TAG, security(("bearer" = [])),
    params(PageParams, UserFilter),
    responses((status = 200, body = Page<UserResponse>), (status = 403, body = Problem)))]
async fn list_users(
    State(service): State<Service>,
    Query(params): Query<PageParams>,
    Query(filter): Query<UserFilter>,
) -> Result<Json<Page<UserResponse>>> {
    let limit = params.limit()?;
    let users = service
        .list_users(filter.email.as_deref(), cursor(&params)?, limit)
        .await?;
    Ok(Json(page(users, limit, |u: &UserResponse| u.id)))
}

/// Replace a user's roles and organization (admin). Every session of the user ends (an admin changing their own
/// roles keeps the session they asked from): tokens carry the roles they were issued with, and the gateway refuses
/// the old ones with 401 `session_ended` within a second or so; the user signs in again and gets the new roles.
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/roles", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = SetRolesRequest,
    responses((status = 200, body = UserResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn set_roles(
    State(service): State<Service>,
    principal: Principal,
    Path(id): Path<Uuid>,
    Json(body): Json<SetRolesRequest>,
) -> Result<Json<UserResponse>> {
    let user = service
        .set_roles(&principal, id, &body.roles, body.organization_id)
        .await?;
    Ok(Json(user.into()))
}

/// Create an organization (admin).
#[utoipa::path(post, path = "/api/v1/admin/organizations", tag = TAG, security(("bearer" = [])),
    request_body = CreateOrganizationRequest,
    responses((status = 201, body = OrganizationResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_organization(
    State(service): State<Service>,
    principal: Principal,
    Json(body): Json<CreateOrganizationRequest>,
) -> Result<impl IntoResponse> {
    let org = service
        .create_organization(&body.name, body.kind, Some(principal.user_id))
        .await?;
    Ok((StatusCode::CREATED, Json(OrganizationResponse::from(org))))
}

/// List organizations (support and admin).
#[utoipa::path(get, path = "/api/v1/admin/organizations", tag = TAG, security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Page<OrganizationResponse>)))]
async fn list_organizations(
    State(service): State<Service>,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<OrganizationResponse>>> {
    let limit = params.limit()?;
    let orgs = service.list_organizations(cursor(&params)?, limit).await?;
    Ok(Json(page(orgs, limit, |o: &OrganizationResponse| o.id)))
}

/// One organization (support and admin).
#[utoipa::path(get, path = "/api/v1/admin/organizations/{id}", tag = TAG, security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = OrganizationResponse), (status = 404, body = Problem)))]
async fn get_organization(State(service): State<Service>, Path(id): Path<Uuid>) -> Result<Json<OrganizationResponse>> {
    Ok(Json(service.organization(id).await?.into()))
}
