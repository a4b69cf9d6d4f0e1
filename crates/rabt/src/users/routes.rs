//! HTTP routes for users.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::store;
use crate::{
    app::AppState,
    auth::{AuthUser, MaybeAuthUser},
    http::{ApiError, AppPath, error::ProblemBody},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_user))
        .routes(routes!(get_me))
}

/// The caller's own account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub display_name: String,
    /// `public` or `private`
    pub visibility: String,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl Me {
    pub fn from_row(row: store::MeRow, roles: Vec<String>) -> Self {
        Self {
            id: row.id,
            email: row.email,
            email_verified: row.email_verified,
            display_name: row.display_name,
            visibility: row.visibility,
            roles,
            created_at: row.created_at,
        }
    }
}

/// Loads `Me` for `user` in the given transaction.
pub async fn load_me(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
    roles: Vec<String>,
) -> Result<Me, ApiError> {
    let row = store::find_me(conn, user)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Me::from_row(row, roles))
}

/// The caller's account.
#[utoipa::path(get, path = "/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "Not signed in", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn get_me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Me>, ApiError> {
    let mut tx = state.db.begin(&user.actor()).await?;
    let me = load_me(&mut tx, user.id, user.roles.clone()).await?;
    tx.commit().await?;
    Ok(Json(me))
}

/// A user's public profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProfile {
    pub id: Uuid,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

/// A public profile. Private profiles are 404 to everyone but their owner.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The profile", body = PublicProfile),
        (status = 404, description = "No such user, or not visible", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<PublicProfile>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find_profile(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(Json(PublicProfile {
        id: row.id,
        display_name: row.display_name,
        created_at: row.created_at,
    }))
}
