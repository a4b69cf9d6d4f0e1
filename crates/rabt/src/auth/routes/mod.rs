//! HTTP routes of authentication (API.md §3), one module per flow:
//! `password` (sign-up, verification, sign-in, reset and change),
//! `tokens` (refresh and sign-out), `sessions` (the caller's sessions),
//! `oauth` (Google and GitHub) and `mfa` (two-factor sign-in). What they
//! share, the token pair, the end of every sign-in and the per-action rate
//! limits, is here.
//!
//! Sign-up, resend and forgot-password answer the same whether or not the email
//! is registered, and take comparable time (a password hash is computed either
//! way). Every change that sends mail queues it in the same transaction.

mod mfa;
mod oauth;
mod password;
mod sessions;
mod tokens;

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{mfa::Via, store};
use crate::{
    account::{EmailAddress, Me, load_me},
    audit::{self, Action},
    http::{ApiError, ClientInfo, FieldError, cookies},
    kv::Rate,
    state::AppState,
};

pub use self::{
    password::{ChangePasswordRequest, EmailRequest, LoginRequest, ResetRequest, SignupRequest},
    tokens::{LogoutRequest, LogoutScope, RefreshRequest},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(password::signup))
        .routes(routes!(password::verify_email))
        .routes(routes!(password::resend_verification))
        .routes(routes!(password::login))
        .routes(routes!(tokens::refresh))
        .routes(routes!(tokens::logout))
        .routes(routes!(password::forgot_password))
        .routes(routes!(password::reset_password))
        .routes(routes!(password::change_password))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::revoke_session))
        .routes(routes!(oauth::oauth_authorize))
        .routes(routes!(oauth::oauth_callback))
        .routes(routes!(oauth::oauth_exchange))
        .routes(routes!(mfa::enroll))
        .routes(routes!(mfa::verify))
        .routes(routes!(mfa::disable))
        .routes(routes!(mfa::challenge))
        .routes(routes!(mfa::regenerate_recovery_codes))
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

/// How the users table's constraints read to a client creating an account.
/// Both inserts skip a taken address (`on conflict do nothing`); this is the
/// database's last word should another unique rule on the address fire.
fn on_constraint(err: sqlx::Error) -> ApiError {
    match crate::http::error::violated_constraint(&err) {
        Some("users_email_key") => ApiError::new(crate::http::ErrorCode::Conflict)
            .with_detail("This email address is already in use."),
        _ => err.into(),
    }
}

/// One field error as a 422.
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
    crate::http::rate_limit::limit_action(&state.kv, &class, subject, rate).await
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
    email: &EmailAddress,
) -> Result<(), ApiError> {
    limit(
        state,
        action,
        "address",
        &client.ip_key(),
        per_address(state),
    )
    .await?;
    limit(
        state,
        action,
        "email",
        &email_key(email.as_str()),
        per_email(state),
    )
    .await
}

fn email_key(email: &str) -> String {
    email.to_lowercase()
}

fn frontend_link(state: &AppState, path: &str, token: Option<&str>) -> String {
    crate::auth::jobs::frontend_link(&state.settings.frontend_url, path, token)
}

/// The answer of a sign-in whose first factor is proven, for an account
/// with two-factor sign-in on: no tokens yet.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaPending {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single use, 5 minutes: send it with a code to `POST /v1/auth/mfa/challenge`.
    pub mfa_token: String,
}

/// What a sign-in answers (200): a token pair, or, with two-factor sign-in
/// on, `{"mfa_required": true, "mfa_token": …}`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignInAnswer {
    Tokens(Box<TokenPair>),
    MfaRequired(MfaPending),
}

/// How a sign-in ended: with a session, or waiting for the second factor.
pub enum SignedIn {
    /// The token pair's response.
    Tokens(Response),
    MfaRequired(String),
}

impl IntoResponse for SignedIn {
    fn into_response(self) -> Response {
        match self {
            Self::Tokens(response) => response,
            Self::MfaRequired(mfa_token) => {
                let mut response = (
                    StatusCode::OK,
                    Json(SignInAnswer::MfaRequired(MfaPending {
                        mfa_required: true,
                        mfa_token,
                    })),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
        }
    }
}

/// Records how `user` proved their first factor (`event`, with its audit
/// details) and, unless two-factor sign-in is on, starts a session for them
/// and answers with its token pair; with it on, answers with a challenge
/// (`via` says what it follows). Every flow that hands out tokens ends here.
async fn sign_in(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    client: &ClientInfo,
    (event, details): (Action, serde_json::Value),
    via: Via,
    cookie: bool,
) -> Result<SignedIn, ApiError> {
    if super::mfa::store::is_enabled(tx, user).await? {
        let mut details = details;
        if let serde_json::Value::Object(map) = &mut details {
            map.insert("mfa".into(), "required".into());
        }
        audit::record(tx, Some(user), event, Some(user), client, details).await?;
        let token = super::mfa::store::create_challenge(
            tx,
            user,
            None,
            via.as_str(),
            super::mfa::CHALLENGE_TTL,
        )
        .await?;
        return Ok(SignedIn::MfaRequired(token));
    }
    audit::record(tx, Some(user), event, Some(user), client, details).await?;
    start_session(state, tx, user, client, false, cookie).await
}

/// Starts a session for `user` (at aal 2 with `second_factor`) and answers
/// with its token pair.
async fn start_session(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    client: &ClientInfo,
    second_factor: bool,
    cookie: bool,
) -> Result<SignedIn, ApiError> {
    if store::cancel_own_erasure(tx, user).await? {
        audit::record(
            tx,
            Some(user),
            Action::ErasureCanceled,
            Some(user),
            client,
            serde_json::json!({}),
        )
        .await?;
        metrics::counter!("rabt_erasures_total", "outcome" => "canceled").increment(1);
    }
    if store::is_new_device(tx, user, client.user_agent.as_deref()).await? {
        tell_new_sign_in(state, tx, user, client).await?;
    }
    let (session, refresh) = store::create_session(
        tx,
        user,
        state.settings.auth.session_ttl,
        client.ip,
        client.user_agent.as_deref(),
        second_factor,
    )
    .await?;
    let (pair, cookies) = pair(state, tx, user, session, refresh, cookie).await?;
    Ok(SignedIn::Tokens(token_response(pair, cookies)))
}

/// Queues the security mail about a sign-in from an unknown device, in the
/// transaction of the session it starts.
async fn tell_new_sign_in(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    client: &ClientInfo,
) -> Result<(), ApiError> {
    let Some(account) = store::credentials_by_id(tx, user).await? else {
        return Ok(());
    };
    let unknown = || "unknown".to_owned();
    crate::email::enqueue(
        tx,
        &state.settings,
        user,
        &account.email,
        crate::email::Template::NewSignIn,
        serde_json::json!({
            "display_name": account.display_name,
            "when": chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            "address": client.ip.map_or_else(unknown, |ip| ip.to_string()),
            "device": client.user_agent.as_deref()
                .map_or_else(unknown, |agent| agent.chars().take(200).collect()),
            "reset_link": frontend_link(state, "/auth/forgot-password", None),
        }),
    )
    .await?;
    Ok(())
}

async fn pair(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    session: Uuid,
    refresh: String,
    cookie: bool,
) -> Result<(TokenPair, Option<HeaderMap>), ApiError> {
    let roles = crate::auth::grants::grants_of(tx, user).await?.roles;
    let aal = u8::try_from(store::session_aal(tx, session).await?).unwrap_or(1);
    let access_token = state.tokens.issue(user, session, roles.clone(), aal)?;
    let me = load_me(tx, &state.settings.public_url, user, roles).await?;
    let (refresh_token, csrf_token, cookies) = if cookie {
        let csrf = crate::auth::tokens::random_token();
        let max_age = state.settings.auth.session_ttl.as_secs();
        let headers =
            cookies::session_cookies(&refresh, &csrf, max_age).map_err(ApiError::internal)?;
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
