//! Who holds what: a user's roles (every user holds `member`), the
//! permissions they grant, and the version that any change of them bumps
//! (migrations/0015). The session check reads them on every request;
//! the roles capability changes them.

use sqlx::PgConnection;
use uuid::Uuid;

/// The constraint the database names when a change would leave no active
/// admin (migrations/0020): taking `admin` from, suspending, deactivating
/// or deleting the last one.
pub const LAST_ACTIVE_ADMIN: &str = "users_last_active_admin";

/// How [`LAST_ACTIVE_ADMIN`] reads to a client: 409 `conflict`.
pub fn last_admin_conflict() -> crate::http::ApiError {
    crate::http::ApiError::new(crate::http::ErrorCode::Conflict)
        .with_detail("This is the last active admin: make someone else an admin first.")
}

/// The role everyone holds without a grant.
pub const EVERYONE: &str = "member";

/// What a user may do: their roles (with `member`) and the union of the
/// permissions those roles grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grants {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

pub async fn grants_of(conn: &mut PgConnection, user: Uuid) -> Result<Grants, sqlx::Error> {
    let roles = roles_of(conn, user).await?;
    let permissions = permissions_of_roles(conn, &roles).await?;
    Ok(Grants { roles, permissions })
}

/// The roles of `user`, `member` first.
pub async fn roles_of(conn: &mut PgConnection, user: Uuid) -> Result<Vec<String>, sqlx::Error> {
    let mut roles = sqlx::query_scalar!(
        "select role_name from user_roles where user_id = $1 order by 1",
        user,
    )
    .fetch_all(conn)
    .await?;
    roles.insert(0, EVERYONE.to_owned());
    Ok(roles)
}

/// The user's grants version (0 before their first change of grants).
pub async fn grants_version(conn: &mut PgConnection, user: Uuid) -> Result<i64, sqlx::Error> {
    let version = sqlx::query_scalar!(
        "select version from grant_versions where user_id = $1",
        user,
    )
    .fetch_optional(conn)
    .await?;
    Ok(version.unwrap_or(0))
}

/// The grants versions of those of `users` whose grants ever changed.
pub async fn grants_versions(
    conn: &mut PgConnection,
    users: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        "select user_id, version from grant_versions where user_id = any($1)",
        users,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.version)).collect())
}

pub async fn permissions_of_roles(
    conn: &mut PgConnection,
    roles: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select distinct permission_name from role_permissions \
         where role_name = any($1) order by 1",
        roles,
    )
    .fetch_all(conn)
    .await
}
