//! HTTP routes of authentication (API.md §3).
//!
//! Sign-up, resend and forgot-password answer the same whether or not the email
//! is registered, and take comparable time (a password hash is computed either
//! way). Every change that sends mail queues it in the same transaction.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AuthUser,
    oauth::{self, Provider},
    passwords,
    passwords::NewPassword,
    sessions,
    store::{self, Purpose, RevokeReason},
};
use crate::{
    app::AppState,
    audit::{self, Action},
    db::Actor,
    email::{self, Template},
    http::{
        ApiError, AppJson, AppPath, AppQuery, ClientInfo, ErrorCode, FieldError, error::ProblemBody,
    },
    kv::Rate,
    users::routes::{Me, load_me},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(change_password))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(oauth_authorize))
        .routes(routes!(oauth_callback))
        .routes(routes!(oauth_exchange))
}

const VERIFY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const REFRESH_COOKIE: &str = "rabt_refresh";
const CSRF_COOKIE: &str = "rabt_csrf";

// ---------------------------------------------------------------------------
// Shapes

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    pub display_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
    /// Put the refresh token in an HttpOnly cookie instead of the body.
    #[serde(default)]
    pub refresh_cookie: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    #[serde(default)]
    pub refresh_cookie: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// Omit to use the refresh cookie (then `X-CSRF-Token` is required).
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// `session` (default) or `all`
    #[serde(default)]
    pub scope: LogoutScope,
}

#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogoutScope {
    #[default]
    Session,
    All,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    #[serde(default)]
    pub refresh_cookie: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub message: &'static str,
}

/// A signed-in client's tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// `bearer`
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Absent when the refresh token was set as a cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The double-submit token to send as `X-CSRF-Token` with cookie refreshes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    pub user: Me,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}

// ---------------------------------------------------------------------------
// Helpers

/// A normalised, plausible email address.
fn parse_email(field: &str, value: &str) -> Result<String, FieldError> {
    let email = value.trim();
    let valid = email.len() <= 254
        && email.parse::<lettre::Address>().is_ok()
        && email
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.'));
    if valid {
        Ok(email.to_owned())
    } else {
        Err(FieldError::new(field, "invalid", "Not an email address."))
    }
}

fn validation<T>(result: Result<T, FieldError>) -> Result<T, ApiError> {
    result.map_err(|e| ApiError::validation(vec![e]))
}

/// Counts a request against one of the handlers' limits, `{action}_{per}`
/// (`login_account`, `forgot_email`, …, the `class` of `rate_limited_total`);
/// 429 with `Retry-After` when over it.
async fn limit(
    state: &AppState,
    action: &str,
    per: &str,
    subject: &str,
    rate: Rate,
) -> Result<(), ApiError> {
    let class = format!("{action}_{per}");
    match state
        .kv
        .rate_limit(&format!("rl:{class}:{subject}"), rate)
        .await
    {
        Ok(decision) if decision.allowed => Ok(()),
        Ok(decision) => {
            metrics::counter!("rate_limited_total", "class" => class).increment(1);
            Err(ApiError::rate_limited(crate::http::rate_limit::seconds(
                decision.retry_after,
            )))
        }
        Err(err) => {
            // Failing open keeps sign-in working when the store hiccups; the
            // password hash cost still bounds guessing.
            tracing::warn!(error = %err, "rate limiter unavailable");
            Ok(())
        }
    }
}

/// Each auth action per client address.
fn per_address(state: &AppState) -> Rate {
    Rate::per_minute(state.settings.rate_limits.auth_address)
}

/// Password checks per account.
fn per_account(state: &AppState) -> Rate {
    Rate::per_minute(state.settings.rate_limits.account)
}

/// Each kind of mail request per email address.
fn per_email(state: &AppState) -> Rate {
    Rate {
        requests: state.settings.rate_limits.email_per_hour,
        period: std::time::Duration::from_secs(3600),
    }
}

/// Requests that send mail to an address: limited per client and per address.
async fn limit_mail_request(
    state: &AppState,
    action: &str,
    client: &ClientInfo,
    email: &str,
) -> Result<(), ApiError> {
    limit(
        state,
        action,
        "address",
        &client.ip_key(),
        per_address(state),
    )
    .await?;
    limit(state, action, "email", &email_key(email), per_email(state)).await
}

fn email_key(email: &str) -> String {
    email.to_lowercase()
}

fn frontend_link(state: &AppState, path: &str, token: Option<&str>) -> String {
    super::jobs::frontend_link(&state.settings.frontend_url, path, token)
}

/// Starts a session for `user` and answers with its token pair.
async fn sign_in(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    client: &ClientInfo,
    cookie: bool,
) -> Result<(TokenPair, Option<HeaderMap>), ApiError> {
    let (session, refresh) = store::create_session(
        tx,
        user,
        state.settings.auth.session_ttl,
        client.ip,
        client.user_agent.as_deref(),
    )
    .await?;
    pair(state, tx, user, session, refresh, cookie).await
}

async fn pair(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    session: Uuid,
    refresh: String,
    cookie: bool,
) -> Result<(TokenPair, Option<HeaderMap>), ApiError> {
    let roles = crate::roles::store::grants_of(tx, user).await?.roles;
    let access_token = state.tokens.issue(user, session, roles.clone())?;
    let me = load_me(tx, user, roles).await?;
    let (refresh_token, csrf_token, cookies) = if cookie {
        let csrf = super::tokens::random_token();
        let max_age = state.settings.auth.session_ttl.as_secs();
        let mut headers = HeaderMap::new();
        let refresh_cookie = format!(
            "{REFRESH_COOKIE}={refresh}; HttpOnly; Secure; SameSite=Strict; Path=/v1/auth; Max-Age={max_age}"
        );
        let csrf_cookie =
            format!("{CSRF_COOKIE}={csrf}; Secure; SameSite=Strict; Path=/; Max-Age={max_age}");
        for cookie in [refresh_cookie, csrf_cookie] {
            headers.append(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
            );
        }
        (None, Some(csrf), Some(headers))
    } else {
        (Some(refresh), None, None)
    };
    Ok((
        TokenPair {
            access_token,
            token_type: "bearer",
            expires_in: state.tokens.ttl.as_secs(),
            refresh_token,
            csrf_token,
            user: me,
        },
        cookies,
    ))
}

/// A token pair response: never cached.
fn token_response(pair: TokenPair, cookies: Option<HeaderMap>) -> Response {
    let mut response = (StatusCode::OK, Json(pair)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cookies) = cookies {
        for value in cookies.get_all(header::SET_COOKIE) {
            headers.append(header::SET_COOKIE, value.clone());
        }
    }
    response
}

fn accepted(message: &'static str) -> (StatusCode, Json<Accepted>) {
    (StatusCode::ACCEPTED, Json(Accepted { message }))
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The refresh token from the cookie, after the double-submit and same-origin
/// checks that a cookie-authenticated request needs.
fn refresh_from_cookie(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let refresh = cookie_value(headers, REFRESH_COOKIE)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized).with_detail("No refresh token."))?;
    let forbidden =
        || ApiError::new(ErrorCode::Forbidden).with_detail("Cross-site request refused.");
    let csrf_cookie = cookie_value(headers, CSRF_COOKIE).ok_or_else(forbidden)?;
    let csrf_header = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(forbidden)?;
    if !bool::from(csrf_cookie.as_bytes().ct_eq(csrf_header.as_bytes())) {
        return Err(forbidden());
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| url::Url::parse(r).ok())
                .map(|u| u.origin().ascii_serialization())
        })
        .ok_or_else(forbidden)?;
    if !state.settings.cors_origins.contains(&origin) {
        return Err(forbidden());
    }
    Ok(refresh.to_owned())
}

// ---------------------------------------------------------------------------
// Handlers

/// Create an account; a verification email follows.
///
/// Answers 202 for any valid input, whether or not the email is registered. If
/// it is, its owner is told by email that someone tried to sign up.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 202, body = Accepted),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<SignupRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    let email = parse_email("email", &body.email)
        .map_err(|e| errors.push(e))
        .ok();
    let password = NewPassword::parse("password", body.password)
        .map_err(|e| errors.push(e))
        .ok();
    let display_name = body.display_name.trim().to_owned();
    if !(1..=80).contains(&display_name.chars().count()) {
        errors.push(FieldError::new(
            "display_name",
            "invalid",
            "1 to 80 characters.",
        ));
    }
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    limit_mail_request(&state, "signup", &client, &email).await?;

    // Hash first, whatever happens next: a taken email costs the same time.
    let hash = passwords::hash(password.secret()).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    match store::insert_user(&mut tx, &email, &display_name, &hash).await? {
        Some(user) => {
            let token =
                store::create_one_time_token(&mut tx, user, Purpose::VerifyEmail, VERIFY_TTL)
                    .await?;
            let link = frontend_link(&state, "/auth/verify-email", Some(&token));
            email::enqueue(
                &mut tx,
                &state.settings,
                &email,
                Template::VerifyEmail,
                json!({"display_name": display_name, "link": link}),
            )
            .await?;
            audit::record(
                &mut tx,
                Some(user),
                Action::Signup,
                Some(user),
                &client,
                json!({}),
            )
            .await?;
        }
        None => {
            if let Some(existing) = store::credentials_by_email(&mut tx, &email).await? {
                email::enqueue(
                    &mut tx,
                    &state.settings,
                    &existing.email,
                    Template::SignupAttempt,
                    json!({
                        "display_name": existing.display_name,
                        "login_link": frontend_link(&state, "/auth/login", None),
                    }),
                )
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(accepted(
        "If the address can be used, a confirmation email is on its way.",
    ))
}

/// Confirm an email address with the emailed token; signs the user in.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 400, description = "Bad, used or expired token", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<TokenRequest>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    let user = store::consume_one_time_token(&mut tx, body.token.trim(), Purpose::VerifyEmail)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    let account = store::credentials_by_id(&mut tx, user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    store::mark_email_verified(&mut tx, user).await?;
    audit::record(
        &mut tx,
        Some(user),
        Action::EmailVerified,
        Some(user),
        &client,
        json!({}),
    )
    .await?;
    let (pair, cookies) = sign_in(&state, &mut tx, user, &client, body.refresh_cookie).await?;
    tx.commit().await?;
    Ok(token_response(pair, cookies))
}

/// Send the verification email again (to unverified accounts only).
#[utoipa::path(post, path = "/auth/verify-email/resend", tag = "auth", request_body = EmailRequest,
    responses((status = 202, body = Accepted)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = validation(parse_email("email", &body.email))?;
    limit_mail_request(&state, "resend", &client, &email).await?;
    // The same work whatever the address: the job finds out.
    let mut tx = state.db.begin(&Actor::Service).await?;
    crate::jobs::enqueue(&mut tx, &super::jobs::SendVerification { email }, 5).await?;
    tx.commit().await?;
    Ok(accepted(
        "If the address awaits confirmation, a new email is on its way.",
    ))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "invalid_credentials", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 403, description = "email_not_verified or account_suspended", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 429, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_owned();
    if email.len() > 254 || body.password.expose_secret().len() > 1024 {
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    }
    limit(
        &state,
        "login",
        "address",
        &client.ip_key(),
        per_address(&state),
    )
    .await?;
    limit(
        &state,
        "login",
        "account",
        &email_key(&email),
        per_account(&state),
    )
    .await?;

    // No connection is held while Argon2 runs.
    let mut lookup = state.db.begin(&Actor::Service).await?;
    let account = store::credentials_by_email(&mut lookup, &email).await?;
    lookup.commit().await?;
    let hash = account
        .as_ref()
        .and_then(|a| a.password_hash.clone())
        .unwrap_or_else(|| passwords::DUMMY_HASH.clone());
    let matches = passwords::verify(&body.password, &hash).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    let account = match account {
        Some(account) if matches => account,
        other => {
            let actor = other.map(|a| a.id);
            audit::record(
                &mut tx,
                actor,
                Action::LoginFailed,
                actor,
                &client,
                json!({}),
            )
            .await?;
            tx.commit().await?;
            return Err(ApiError::new(ErrorCode::InvalidCredentials));
        }
    };
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    if !account.email_verified {
        return Err(ApiError::new(ErrorCode::EmailNotVerified));
    }
    if passwords::needs_rehash(&hash) {
        let rehashed = passwords::hash(&body.password).await?;
        store::set_password(&mut tx, account.id, &rehashed).await?;
    }
    audit::record(
        &mut tx,
        Some(account.id),
        Action::LoginSucceeded,
        Some(account.id),
        &client,
        json!({}),
    )
    .await?;
    let (pair, cookies) =
        sign_in(&state, &mut tx, account.id, &client, body.refresh_cookie).await?;
    tx.commit().await?;
    Ok(token_response(pair, cookies))
}

/// Trade a refresh token for a new pair; the old one is spent.
///
/// A spent token presented again revokes its session (401
/// `refresh_token_reused`), except within the grace window after its first use,
/// when it is answered with a new pair of the same session.
#[utoipa::path(post, path = "/auth/token/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "unauthorized or refresh_token_reused", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 403, description = "Cookie refresh without CSRF token or from another origin",
            body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    AppJson(body): AppJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let (token, cookie) = match body.refresh_token {
        Some(token) => (token, false),
        None => (refresh_from_cookie(&state, &headers)?, true),
    };
    if token.len() > 128 {
        return Err(ApiError::new(ErrorCode::Unauthorized));
    }
    let mut tx = state.db.begin(&Actor::Service).await?;
    let presented = store::lock_refresh_token(&mut tx, &token)
        .await?
        .ok_or_else(|| {
            ApiError::new(ErrorCode::Unauthorized).with_detail("Unknown refresh token.")
        })?;
    if !presented.session_alive {
        return Err(ApiError::new(ErrorCode::Unauthorized).with_detail("This session has ended."));
    }
    if let Some(used_at) = presented.used_at {
        let grace = chrono::Duration::from_std(state.settings.auth.refresh_grace)
            .unwrap_or_else(|_| chrono::Duration::seconds(10));
        if presented.now - used_at > grace {
            // Replay of a spent token: someone else may hold the chain. End it.
            store::revoke_session(
                &mut tx,
                presented.user_id,
                presented.session_id,
                RevokeReason::RefreshTokenReused,
            )
            .await?;
            audit::record(
                &mut tx,
                Some(presented.user_id),
                Action::RefreshTokenReused,
                Some(presented.session_id),
                &client,
                json!({}),
            )
            .await?;
            tx.commit().await?;
            sessions::forget(&state, &[presented.session_id]).await;
            return Err(ApiError::new(ErrorCode::RefreshTokenReused));
        }
    }
    store::spend_refresh_token(&mut tx, presented.token_id).await?;
    let next =
        store::issue_refresh_token(&mut tx, presented.session_id, Some(presented.token_id)).await?;
    let (pair, cookies) = pair(
        &state,
        &mut tx,
        presented.user_id,
        presented.session_id,
        next,
        cookie,
    )
    .await?;
    tx.commit().await?;
    Ok(token_response(pair, cookies))
}

/// End this session, or every session of the caller.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = LogoutRequest,
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    AppJson(body): AppJson<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    let ended = match body.scope {
        LogoutScope::Session => {
            store::revoke_session(&mut tx, user.id, user.session_id, RevokeReason::Logout).await?;
            vec![user.session_id]
        }
        LogoutScope::All => {
            store::revoke_sessions(&mut tx, user.id, None, RevokeReason::LogoutAll).await?
        }
    };
    audit::record(
        &mut tx,
        Some(user.id),
        Action::Logout,
        Some(user.session_id),
        &client,
        json!({"scope": if body.scope == LogoutScope::All { "all" } else { "session" }}),
    )
    .await?;
    tx.commit().await?;
    sessions::forget(&state, &ended).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Email a single-use password reset link (valid one hour).
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = EmailRequest,
    responses((status = 202, body = Accepted)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let email = validation(parse_email("email", &body.email))?;
    limit_mail_request(&state, "forgot", &client, &email).await?;
    // The same work whatever the address: the job finds out.
    let mut tx = state.db.begin(&Actor::Service).await?;
    crate::jobs::enqueue(
        &mut tx,
        &super::jobs::SendPasswordReset {
            email,
            ip: client.ip,
            user_agent: client.user_agent.clone(),
        },
        5,
    )
    .await?;
    tx.commit().await?;
    Ok(accepted(
        "If the address has an account, a reset link is on its way.",
    ))
}

/// Set a new password with the emailed token; every other session ends.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 400, description = "Bad, used or expired token", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<ResetRequest>,
) -> Result<Response, ApiError> {
    let password = validation(NewPassword::parse("password", body.password))?;
    let hash = passwords::hash(password.secret()).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    let user = store::consume_one_time_token(&mut tx, body.token.trim(), Purpose::ResetPassword)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    let account = store::credentials_by_id(&mut tx, user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    store::set_password(&mut tx, user, &hash).await?;
    // The link reached the inbox: the address is proven.
    store::mark_email_verified(&mut tx, user).await?;
    let ended = store::revoke_sessions(&mut tx, user, None, RevokeReason::PasswordReset).await?;
    email::enqueue(
        &mut tx,
        &state.settings,
        &account.email,
        Template::PasswordChanged,
        json!({
            "display_name": account.display_name,
            "reset_link": frontend_link(&state, "/auth/forgot-password", None),
        }),
    )
    .await?;
    audit::record(
        &mut tx,
        Some(user),
        Action::PasswordReset,
        Some(user),
        &client,
        json!({}),
    )
    .await?;
    let (pair, cookies) = sign_in(&state, &mut tx, user, &client, body.refresh_cookie).await?;
    tx.commit().await?;
    sessions::forget(&state, &ended).await;
    Ok(token_response(pair, cookies))
}

/// Change the password; every other session ends.
#[utoipa::path(post, path = "/auth/password/change", tag = "auth",
    request_body = ChangePasswordRequest, security(("bearer" = [])),
    responses(
        (status = 204),
        (status = 401, description = "unauthorized or invalid_credentials", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    AppJson(body): AppJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let password = validation(NewPassword::parse("new_password", body.new_password))?;
    limit(
        &state,
        "password_change",
        "account",
        &user.id.to_string(),
        per_account(&state),
    )
    .await?;
    // No connection is held while Argon2 runs (twice here).
    let mut lookup = state.db.begin(&Actor::Service).await?;
    let account = store::credentials_by_id(&mut lookup, user.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized))?;
    lookup.commit().await?;
    let current = account
        .password_hash
        .clone()
        .unwrap_or_else(|| passwords::DUMMY_HASH.clone());
    if !passwords::verify(&body.current_password, &current).await? {
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    }
    let hash = passwords::hash(password.secret()).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    store::set_password(&mut tx, user.id, &hash).await?;
    let ended = store::revoke_sessions(
        &mut tx,
        user.id,
        Some(user.session_id),
        RevokeReason::PasswordChanged,
    )
    .await?;
    email::enqueue(
        &mut tx,
        &state.settings,
        &account.email,
        Template::PasswordChanged,
        json!({
            "display_name": account.display_name,
            "reset_link": frontend_link(&state, "/auth/forgot-password", None),
        }),
    )
    .await?;
    audit::record(
        &mut tx,
        Some(user.id),
        Action::PasswordChanged,
        Some(user.id),
        &client,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    sessions::forget(&state, &ended).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionInfo>),
        (status = 401, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn list_sessions(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let mut tx = state.db.begin(&user.actor()).await?;
    let rows = store::list_sessions(&mut tx).await?;
    tx.commit().await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| SessionInfo {
                current: row.id == user.session_id,
                id: row.id,
                created_at: row.created_at,
                last_seen_at: row.last_seen_at,
                ip: row.ip,
                user_agent: row.user_agent,
            })
            .collect(),
    ))
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204),
        (status = 404, body = ProblemBody, content_type = "application/problem+json")))]
pub async fn revoke_session(
    State(state): State<AppState>,
    user: AuthUser,
    client: ClientInfo,
    AppPath(id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    if !store::revoke_session(&mut tx, user.id, id, RevokeReason::Revoked).await? {
        return Err(ApiError::not_found());
    }
    audit::record(
        &mut tx,
        Some(user.id),
        Action::SessionRevoked,
        Some(id),
        &client,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    sessions::forget(&state, &[id]).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------
// Google and GitHub

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeParams {
    /// A page of the web app to come back to.
    pub redirect_to: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the user declined.
    pub error: Option<String>,
}

fn provider(name: &str) -> Result<Provider, ApiError> {
    Provider::parse(name).ok_or_else(ApiError::not_found)
}

fn redirect(location: &str) -> Result<Response, ApiError> {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(location).map_err(ApiError::internal)?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Start signing in with `google` (OpenID Connect) or `github` (OAuth 2).
#[utoipa::path(get, path = "/auth/oauth/{provider}/authorize", tag = "auth",
    params(("provider" = String, Path, description = "`google` or `github`"), AuthorizeParams),
    responses(
        (status = 302, description = "To the provider, with state and PKCE (S256)"),
        (status = 422, description = "redirect_to is not a page of the web app", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 503, description = "The provider is not configured", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn oauth_authorize(
    State(state): State<AppState>,
    client: ClientInfo,
    AppPath(name): AppPath<String>,
    AppQuery(params): AppQuery<AuthorizeParams>,
) -> Result<Response, ApiError> {
    let provider = provider(&name)?;
    limit(
        &state,
        "oauth",
        "address",
        &client.ip_key(),
        per_address(&state),
    )
    .await?;
    let (url, flow_state) = oauth::authorize_url(&state, provider, &params.redirect_to).await?;
    let mut response = redirect(&url)?;
    let cookie = format!(
        "{}={}; HttpOnly; Secure; SameSite=Lax; Path=/v1/auth/oauth; Max-Age=600",
        oauth::BROWSER_COOKIE,
        oauth::browser_binding(&flow_state)
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// Where the provider sends the browser back: links or creates the account,
/// then sends the browser to `redirect_to?code=ONE_TIME_CODE` (60 s, single use).
#[utoipa::path(get, path = "/auth/oauth/{provider}/callback", tag = "auth",
    params(("provider" = String, Path), CallbackParams),
    responses(
        (status = 302, description = "To the web app with `code` (or `error`)"),
        (status = 400, description = "Unknown or expired state, or a refused identity token",
            body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "account_suspended", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn oauth_callback(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    AppPath(name): AppPath<String>,
    AppQuery(params): AppQuery<CallbackParams>,
) -> Result<Response, ApiError> {
    let provider = provider(&name)?;
    let flow_state = params
        .state
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken).with_detail("No state."))?;
    // The flow must come back to the browser that started it.
    let bound = cookie_value(&headers, oauth::BROWSER_COOKIE).is_some_and(|value| {
        bool::from(
            value
                .as_bytes()
                .ct_eq(oauth::browser_binding(&flow_state).as_bytes()),
        )
    });
    if !bound {
        return Err(ApiError::new(ErrorCode::InvalidToken)
            .with_detail("This sign-in was started in another browser."));
    }
    if let Some(error) = params.error {
        // The user declined: take the flow (so it cannot be replayed) and say so.
        let mut back = oauth::abandon(&state, provider, &flow_state).await?;
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        back.query_pairs_mut().append_pair("error", &code);
        return redirect(back.as_str());
    }
    let code = params
        .code
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken).with_detail("No code."))?;
    let (identity, mut back) = oauth::finish(&state, provider, &flow_state, &code).await?;

    let mut tx = state.db.begin(&Actor::Service).await?;
    let user = match store::user_by_identity(&mut tx, provider.as_str(), &identity.subject).await? {
        Some(user) => user,
        None => {
            // A new identity joins an account only through an address the
            // provider verified.
            let email = identity.verified_email.clone().ok_or_else(|| {
                ApiError::new(ErrorCode::EmailNotVerified)
                    .with_detail("The provider has no verified email address for this account.")
            })?;
            let name: String = identity
                .name
                .clone()
                .unwrap_or_else(|| email.split('@').next().unwrap_or("rabt user").to_owned())
                .chars()
                .take(80)
                .collect();
            let user = match store::insert_oauth_user(&mut tx, &email, &name).await? {
                Some(user) => user,
                None => {
                    let existing = store::credentials_by_email(&mut tx, &email)
                        .await?
                        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("email vanished")))?;
                    if !existing.email_verified {
                        store::claim_unverified_account(&mut tx, existing.id).await?;
                    }
                    existing.id
                }
            };
            store::link_identity(
                &mut tx,
                user,
                provider.as_str(),
                &identity.subject,
                Some(email.as_str()),
            )
            .await?;
            audit::record(
                &mut tx,
                Some(user),
                Action::OauthLinked,
                Some(user),
                &client,
                json!({"provider": provider.as_str()}),
            )
            .await?;
            user
        }
    };
    if let Some(token) = &identity.access_token {
        let sealed = state.keyring.seal(
            token.as_bytes(),
            &crate::crypto::oauth_token_context(provider.as_str(), &identity.subject),
        );
        store::store_provider_token(&mut tx, provider.as_str(), &identity.subject, &sealed).await?;
    }
    let account = store::credentials_by_id(&mut tx, user)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    let code = store::create_one_time_token(
        &mut tx,
        user,
        Purpose::OauthCode,
        std::time::Duration::from_secs(60),
    )
    .await?;
    tx.commit().await?;
    back.query_pairs_mut().append_pair("code", &code);
    redirect(back.as_str())
}

/// Trade the one-time code of a provider sign-in for a token pair.
#[utoipa::path(post, path = "/auth/oauth/exchange", tag = "auth", request_body = TokenRequestCode,
    responses(
        (status = 200, body = TokenPair),
        (status = 400, description = "Bad, used or expired code", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn oauth_exchange(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<TokenRequestCode>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    let user = store::consume_one_time_token(&mut tx, body.code.trim(), Purpose::OauthCode)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    audit::record(
        &mut tx,
        Some(user),
        Action::LoginSucceeded,
        Some(user),
        &client,
        json!({"method": "oauth"}),
    )
    .await?;
    let (pair, cookies) = sign_in(&state, &mut tx, user, &client, body.refresh_cookie).await?;
    tx.commit().await?;
    Ok(token_response(pair, cookies))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequestCode {
    pub code: String,
    #[serde(default)]
    pub refresh_cookie: bool,
}
