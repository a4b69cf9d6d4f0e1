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
    db::Actor,
    http::{ApiError, AppPath, error::ProblemBody},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_user))
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
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<PublicProfile>, ApiError> {
    let mut tx = state.db.begin(&Actor::Anonymous).await?;
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
