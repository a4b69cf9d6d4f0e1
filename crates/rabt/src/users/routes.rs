//! HTTP routes for users: the caller's account and profile, public profiles,
//! and moderation (API.md §4).

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::store::{self, ProfileRow};
use crate::{
    app::AppState,
    audit::{self, Action},
    auth::{AuthUser, MaybeAuthUser, sessions, store::RevokeReason},
    db::Actor,
    http::{ApiError, AppJson, AppPath, ClientInfo, FieldError, error::ProblemBody},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me))
        .routes(routes!(get_user, moderate_user, delete_user))
}

/// The caller's own account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub display_name: String,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Vec<String>,
    pub location: Option<String>,
    /// Set once file uploads exist; `null` until then.
    pub avatar_url: Option<String>,
    pub avatar_file_id: Option<Uuid>,
    /// `public` or `private`
    pub visibility: String,
    pub roles: Vec<String>,
    /// `free` until billing exists.
    pub plan: &'static str,
    pub created_at: DateTime<Utc>,
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
        plan: "free",
        created_at: p.created_at,
    })
}

/// A user's profile as others see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProfile {
    pub id: Uuid,
    pub display_name: String,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Vec<String>,
    pub location: Option<String>,
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Only for the user themselves and holders of `users.read_private`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl PublicProfile {
    fn new(row: ProfileRow, email: Option<String>) -> Self {
        Self {
            id: row.id,
            display_name: row.display_name,
            headline: row.headline,
            bio: row.bio,
            skills: row.skills,
            location: row.location,
            avatar_url: None,
            created_at: row.created_at,
            email,
        }
    }
}

/// A change to a profile: absent fields stay; for optional text, `""` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    pub display_name: Option<String>,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Option<Vec<String>>,
    pub location: Option<String>,
    pub avatar_file_id: Option<Uuid>,
    /// `public` or `private`
    pub visibility: Option<String>,
}

/// A moderator's change: the profile fields, and suspension.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Moderation {
    pub display_name: Option<String>,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Option<Vec<String>>,
    pub location: Option<String>,
    pub avatar_file_id: Option<Uuid>,
    pub visibility: Option<String>,
    /// `true` suspends (every session ends), `false` reinstates.
    pub suspended: Option<bool>,
}

impl Moderation {
    fn split(self) -> (ProfileChange, Option<bool>) {
        let change = ProfileChange {
            display_name: self.display_name,
            headline: self.headline,
            bio: self.bio,
            skills: self.skills,
            location: self.location,
            avatar_file_id: self.avatar_file_id,
            visibility: self.visibility,
        };
        (change, self.suspended)
    }
}

fn optional_text(
    field: &str,
    value: Option<String>,
    max: usize,
    current: Option<String>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        None => current,
        Some(text) => {
            let text = text.trim().to_owned();
            if text.chars().count() > max {
                errors.push(FieldError::new(
                    field,
                    "too_long",
                    format!("At most {max} characters."),
                ));
                current
            } else if text.is_empty() {
                None
            } else {
                Some(text)
            }
        }
    }
}

/// Merges a change into a profile, validating every field.
fn apply(change: ProfileChange, mut row: ProfileRow) -> Result<ProfileRow, ApiError> {
    let mut errors = Vec::new();
    if let Some(name) = change.display_name {
        let name = name.trim().to_owned();
        if (1..=80).contains(&name.chars().count()) {
            row.display_name = name;
        } else {
            errors.push(FieldError::new(
                "display_name",
                "invalid",
                "1 to 80 characters.",
            ));
        }
    }
    row.headline = optional_text("headline", change.headline, 120, row.headline, &mut errors);
    row.bio = optional_text("bio", change.bio, 2000, row.bio, &mut errors);
    row.location = optional_text("location", change.location, 100, row.location, &mut errors);
    if let Some(skills) = change.skills {
        let mut clean: Vec<String> = Vec::new();
        for (i, skill) in skills.iter().enumerate() {
            let skill = skill.trim().to_lowercase();
            if !(1..=40).contains(&skill.chars().count()) {
                errors.push(FieldError::new(
                    format!("skills[{i}]"),
                    "invalid",
                    "1 to 40 characters.",
                ));
            } else if !clean.contains(&skill) {
                clean.push(skill);
            }
        }
        if clean.len() > 30 {
            errors.push(FieldError::new("skills", "too_long", "At most 30 skills."));
        }
        row.skills = clean;
    }
    if let Some(file) = change.avatar_file_id {
        row.avatar_file_id = Some(file);
    }
    if let Some(visibility) = change.visibility {
        if matches!(visibility.as_str(), "public" | "private") {
            row.visibility = visibility;
        } else {
            errors.push(FieldError::new(
                "visibility",
                "invalid",
                "`public` or `private`.",
            ));
        }
    }
    if errors.is_empty() {
        Ok(row)
    } else {
        Err(ApiError::validation(errors))
    }
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

/// Change the caller's profile.
#[utoipa::path(patch, path = "/me", tag = "users", request_body = ProfileChange,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Me),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(change): AppJson<ProfileChange>,
) -> Result<Json<Me>, ApiError> {
    let mut tx = state.db.begin(&user.actor()).await?;
    let row = store::find_profile(&mut tx, user.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let row = apply(change, row)?;
    store::save_profile(&mut tx, &row).await?;
    let me = load_me(&mut tx, user.id, user.roles.clone()).await?;
    tx.commit().await?;
    Ok(Json(me))
}

/// A profile. Private profiles are 404 to everyone but their owner and holders
/// of `users.read_private`, who also see the email.
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
    let sees_email = caller
        .0
        .as_ref()
        .is_some_and(|u| u.id == id || u.can("users.read_private"));
    let email = if sees_email {
        store::find_email(&mut tx, id).await?
    } else {
        None
    };
    tx.commit().await?;
    Ok(Json(PublicProfile::new(row, email)))
}

/// Edit a user's profile, or suspend or reinstate them (needs `users.manage`).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = Moderation,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = PublicProfile),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn moderate_user(
    State(state): State<AppState>,
    caller: AuthUser,
    client: ClientInfo,
    AppPath(id): AppPath<Uuid>,
    AppJson(moderation): AppJson<Moderation>,
) -> Result<Json<PublicProfile>, ApiError> {
    caller.require("users.manage")?;
    let (change, suspended) = moderation.split();
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find_profile(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let row = apply(change, row)?;
    store::save_profile(&mut tx, &row).await?;
    if let Some(suspended) = suspended {
        store::set_suspended(&mut tx, id, suspended).await?;
    }
    let email = store::find_email(&mut tx, id).await?;
    tx.commit().await?;
    if let Some(suspended) = suspended {
        let mut tx = state.db.begin(&Actor::Service).await?;
        let ended = if suspended {
            crate::auth::store::revoke_sessions(&mut tx, id, None, RevokeReason::Suspended).await?
        } else {
            Vec::new()
        };
        audit::record(
            &mut tx,
            Some(caller.id),
            if suspended {
                Action::UserSuspended
            } else {
                Action::UserReinstated
            },
            Some(id),
            &client,
            json!({}),
        )
        .await?;
        tx.commit().await?;
        sessions::forget(&state, &ended).await;
    }
    let email = email.filter(|_| caller.can("users.read_private"));
    Ok(Json(PublicProfile::new(row, email)))
}

/// Deactivate a user now and end their sessions (needs `users.delete`); the
/// account's data is erased later by the privacy capability.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Deactivated"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: AuthUser,
    client: ClientInfo,
    AppPath(id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    caller.require("users.delete")?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    if !store::deactivate(&mut tx, id).await? {
        return Err(ApiError::not_found());
    }
    let ended =
        crate::auth::store::revoke_sessions(&mut tx, id, None, RevokeReason::Deactivated).await?;
    audit::record(
        &mut tx,
        Some(caller.id),
        Action::UserDeactivated,
        Some(id),
        &client,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    sessions::forget(&state, &ended).await;
    Ok(StatusCode::ACCEPTED)
}
