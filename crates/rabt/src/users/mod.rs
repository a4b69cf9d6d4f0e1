//! Users (API.md §4): the account, its profile as others see it, profile
//! search, and moderation. `model` holds the shapes and their validation,
//! `store` the SQL, `routes` the HTTP edge.

pub mod model;
pub mod routes;
pub mod store;

use uuid::Uuid;

use self::model::{Me, PolicyVersions};
use crate::http::ApiError;

/// Loads `Me` for `user` in the given transaction.
pub async fn load_me(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
    roles: Vec<String>,
) -> Result<Me, ApiError> {
    let row = store::find_me(conn, user)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let p = row.profile;
    Ok(Me {
        id: p.id,
        email: row.email,
        email_verified: row.email_verified,
        display_name: p.display_name,
        headline: p.headline,
        bio: p.bio,
        skills: p.skills,
        location: p.location,
        avatar_url: None,
        avatar_file_id: p.avatar_file_id,
        visibility: p.visibility,
        roles,
        plan: row.plan,
        created_at: p.created_at,
        policy: PolicyVersions {
            accepted_version: None,
            current_version: None,
        },
    })
}
