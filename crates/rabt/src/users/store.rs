//! SQL for users. Every function takes a transaction opened for an actor, so
//! row-level security decides what it finds.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

/// What anyone may see of a profile (never the email: anonymous requests
/// cannot even select that column).
#[derive(Debug, Clone, FromRow)]
pub struct ProfileRow {
    pub id: Uuid,
    pub display_name: String,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Vec<String>,
    pub location: Option<String>,
    pub avatar_file_id: Option<Uuid>,
    pub visibility: String,
    pub created_at: DateTime<Utc>,
}

/// The profile with this id, if the actor may see it.
pub async fn find_profile(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ProfileRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, display_name, headline, bio, skills, location, avatar_file_id, visibility, \
                created_at \
         from users where id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The email of `id`, for callers allowed to see it (self, `users.read_private`).
pub async fn find_email(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("select email from users where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The caller's own account.
#[derive(Debug, Clone, FromRow)]
pub struct MeRow {
    pub email: String,
    pub email_verified: bool,
    #[sqlx(flatten)]
    pub profile: ProfileRow,
}

pub async fn find_me(conn: &mut PgConnection, id: Uuid) -> Result<Option<MeRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, email, email_verified_at is not null as email_verified, display_name, \
                headline, bio, skills, location, avatar_file_id, visibility, created_at \
         from users where id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Writes every profile field of `id` (the caller merged the change in).
/// `false` when the row is not the actor's to change.
pub async fn save_profile(conn: &mut PgConnection, row: &ProfileRow) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "update users set display_name = $2, headline = $3, bio = $4, skills = $5, \
                          location = $6, avatar_file_id = $7, visibility = $8 \
         where id = $1",
    )
    .bind(row.id)
    .bind(&row.display_name)
    .bind(&row.headline)
    .bind(&row.bio)
    .bind(&row.skills)
    .bind(&row.location)
    .bind(row.avatar_file_id)
    .bind(&row.visibility)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Suspends or reinstates `id`. `false` when the actor may not.
pub async fn set_suspended(
    conn: &mut PgConnection,
    id: Uuid,
    suspended: bool,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "update users set suspended_at = case when $2 then coalesce(suspended_at, now()) end \
         where id = $1",
    )
    .bind(id)
    .bind(suspended)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Deactivates `id` now (erasure follows with the privacy capability).
pub async fn deactivate(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "update users set deactivated_at = coalesce(deactivated_at, now()) where id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}
