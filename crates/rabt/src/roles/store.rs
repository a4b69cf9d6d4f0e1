//! SQL for roles and permissions.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::grants::roles_of;
pub use crate::auth::grants::{EVERYONE, permissions_of_roles};

/// The roles of `user` (with `member`), after taking the transaction's lock on
/// changing them: concurrent role changes of one user run one after the other.
pub async fn lock_roles_of(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query!(
        "select from pg_advisory_xact_lock( \
             hashtextextended('rabt.user_roles:' || $1::uuid::text, 0))",
        user,
    )
    .execute(&mut *conn)
    .await?;
    roles_of(conn, user).await
}

pub async fn permission_names(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!("select name from permissions order by name")
        .fetch_all(conn)
        .await
}

#[derive(Debug, Clone)]
pub struct RoleRow {
    pub name: String,
    pub description: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
}

pub async fn list_roles(conn: &mut PgConnection) -> Result<Vec<RoleRow>, sqlx::Error> {
    sqlx::query_as!(
        RoleRow,
        r#"select r.name, r.description, r.builtin,
                  coalesce(array_agg(p.permission_name order by p.permission_name)
                           filter (where p.permission_name is not null), '{}') as "permissions!"
           from roles r left join role_permissions p on p.role_name = r.name
           group by r.name order by r.builtin desc, r.name"#,
    )
    .fetch_all(conn)
    .await
}

pub async fn find_role(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<RoleRow>, sqlx::Error> {
    Ok(list_roles(conn).await?.into_iter().find(|r| r.name == name))
}

/// Names among `roles` that do not exist.
pub async fn unknown_roles(
    conn: &mut PgConnection,
    roles: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select n as "n!" from unnest($1::text[]) n
           where not exists (select 1 from roles where name = n)"#,
        roles,
    )
    .fetch_all(conn)
    .await
}

/// Names among `permissions` that are not in the catalogue.
pub async fn unknown_permissions(
    conn: &mut PgConnection,
    permissions: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select n as "n!" from unnest($1::text[]) n
           where not exists (select 1 from permissions where name = n)"#,
        permissions,
    )
    .fetch_all(conn)
    .await
}

pub async fn insert_role(
    conn: &mut PgConnection,
    name: &str,
    description: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into roles (name, description) values ($1, $2)",
        name,
        description,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn set_description(
    conn: &mut PgConnection,
    name: &str,
    description: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update roles set description = $2 where name = $1",
        name,
        description,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn set_role_permissions(
    conn: &mut PgConnection,
    role: &str,
    permissions: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from role_permissions where role_name = $1", role)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "insert into role_permissions (role_name, permission_name) \
         select $1, unnest($2::text[])",
        role,
        permissions,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn delete_role(conn: &mut PgConnection, name: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!("delete from roles where name = $1", name)
        .execute(conn)
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Users holding `role`, so their sessions can pick up a changed role.
pub async fn holders(conn: &mut PgConnection, role: &str) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("select user_id from user_roles where role_name = $1", role)
        .fetch_all(conn)
        .await
}

/// Replaces the granted roles of `user` (never `member`, which is implicit).
pub async fn set_user_roles(
    conn: &mut PgConnection,
    user: Uuid,
    roles: &[String],
    granted_by: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from user_roles where user_id = $1 and role_name <> all($2)",
        user,
        roles,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into user_roles (user_id, role_name, granted_by) \
         select $1, r, $3 from unnest($2::text[]) r \
         on conflict (user_id, role_name) do nothing",
        user,
        roles,
        granted_by,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn grant(conn: &mut PgConnection, user: Uuid, role: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "insert into user_roles (user_id, role_name) values ($1, $2) on conflict do nothing",
        user,
        role,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

pub async fn revoke(conn: &mut PgConnection, user: Uuid, role: &str) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "delete from user_roles where user_id = $1 and role_name = $2",
        user,
        role,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The user with `email`, and whether they have verified it.
pub async fn user_by_email(
    conn: &mut PgConnection,
    email: &str,
) -> Result<Option<(Uuid, bool)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select id, email_verified_at is not null as "verified!" from users
           where lower(email) = lower($1)"#,
        email,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.id, r.verified)))
}

pub async fn user_exists(conn: &mut PgConnection, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists(select 1 from users where id = $1) as "exists!""#,
        user,
    )
    .fetch_one(conn)
    .await
}
