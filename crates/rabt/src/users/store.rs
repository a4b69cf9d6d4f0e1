//! SQL for users. Every function takes a transaction opened for an actor, so
//! row-level security decides what it finds.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

/// What anyone may see of a public profile.
#[derive(Debug, Clone, FromRow)]
pub struct PublicProfileRow {
    pub id: Uuid,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

/// The profile with this id, if the actor may see it.
pub async fn find_profile(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<PublicProfileRow>, sqlx::Error> {
    sqlx::query_as("select id, display_name, created_at from users where id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The caller's own account.
#[derive(Debug, Clone, FromRow)]
pub struct MeRow {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub display_name: String,
    pub visibility: String,
    pub created_at: DateTime<Utc>,
}

pub async fn find_me(conn: &mut PgConnection, id: Uuid) -> Result<Option<MeRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, email, email_verified_at is not null as email_verified, display_name, \
                visibility, created_at \
         from users where id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}
