//! The caller's sessions: list them, end one.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    audit::{self, Action},
    auth::{
        AuthUser, sessions,
        store::{self, RevokeReason},
    },
    db::Actor,
    http::{ApiError, AppPath, ClientInfo, openapi::NotFound},
    state::AppState,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionInfo {
    pub id: Uuid,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Authenticator assurance level: 2 once a second factor was proven in
    /// the session, else 1.
    pub aal: i16,
    pub current: bool,
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionInfo>)))]
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
                aal: row.aal,
            })
            .collect(),
    ))
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204),
        NotFound))]
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
