//! Refreshing a token pair and signing out.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::Response,
};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;

use super::{TokenPair, pair, token_response};
use crate::{
    audit::{self, Action},
    auth::{
        AuthUser, sessions,
        store::{self, RevokeReason},
    },
    db::Actor,
    http::{ApiError, AppJson, ClientInfo, ErrorCode, cookies, error::ProblemBody},
    state::AppState,
};

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

/// The refresh token from the cookie, after the double-submit and same-origin
/// checks that a cookie-authenticated request needs.
fn refresh_from_cookie(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let refresh = cookies::value(headers, cookies::REFRESH_COOKIE)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized).with_detail("No refresh token."))?;
    let forbidden =
        || ApiError::new(ErrorCode::Forbidden).with_detail("Cross-site request refused.");
    let csrf_cookie = cookies::value(headers, cookies::CSRF_COOKIE).ok_or_else(forbidden)?;
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

/// Trade a refresh token for a new pair; the old one is spent.
///
/// A spent token presented again revokes its session (401
/// `refresh_token_reused`), except within the grace window after its first use,
/// when it is answered with a new pair of the same session.
#[utoipa::path(post, path = "/auth/token/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "`unauthorized` or `refresh_token_reused`", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 403, description = "Cookie refresh without CSRF token or from another origin (`forbidden`)",
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
    responses((status = 204)))]
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
