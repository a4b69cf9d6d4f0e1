//! Privacy's SQL: policies are public; consents are each user's own.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

/// A published privacy policy.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Policy {
    pub version: String,
    pub published_at: DateTime<Utc>,
    /// Markdown, as published (sanitised).
    pub content: String,
    /// The same, rendered and sanitised.
    pub content_html: String,
}

/// The policy in force: the one published last.
pub async fn current(conn: &mut PgConnection) -> Result<Option<Policy>, sqlx::Error> {
    sqlx::query_as!(
        Policy,
        "select version, published_at, content, content_html from privacy_policies \
         order by published_at desc limit 1"
    )
    .fetch_optional(conn)
    .await
}

/// The version in force, if any.
pub async fn current_version(conn: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("select version from privacy_policies order by published_at desc limit 1")
        .fetch_optional(conn)
        .await
}

/// Publishes a version; `false` when that version exists already.
pub async fn publish(
    conn: &mut PgConnection,
    version: &str,
    content: &str,
    content_html: &str,
    by: Uuid,
) -> Result<Option<Policy>, sqlx::Error> {
    sqlx::query_as!(
        Policy,
        "insert into privacy_policies (version, content, content_html, published_by) \
         values ($1, $2, $3, $4) on conflict (version) do nothing \
         returning version, published_at, content, content_html",
        version,
        content,
        content_html,
        by
    )
    .fetch_optional(conn)
    .await
}

/// One consent given.
#[derive(Debug, Serialize, ToSchema)]
pub struct Consent {
    pub policy_version: String,
    pub accepted_at: DateTime<Utc>,
    /// The client address it was given from.
    pub ip: Option<String>,
}

/// Records `user`'s acceptance of `version`; `None` when no such version
/// was published.
pub async fn accept(
    conn: &mut PgConnection,
    user: Uuid,
    version: &str,
    ip: Option<String>,
    user_agent: Option<&str>,
) -> Result<Option<Consent>, sqlx::Error> {
    sqlx::query_as!(
        Consent,
        r#"insert into consents (user_id, policy_version, ip, user_agent)
           select $1, p.version, $3::text::inet, $4 from privacy_policies p where p.version = $2
           returning policy_version, accepted_at, host(ip) as ip"#,
        user,
        version,
        ip,
        user_agent
    )
    .fetch_optional(conn)
    .await
}

/// `user`'s consents, newest first.
pub async fn consents(conn: &mut PgConnection, user: Uuid) -> Result<Vec<Consent>, sqlx::Error> {
    sqlx::query_as!(
        Consent,
        r#"select policy_version, accepted_at, host(ip) as ip from consents
            where user_id = $1 order by accepted_at desc limit 500"#,
        user
    )
    .fetch_all(conn)
    .await
}

/// Whether `user` accepted `version`.
pub async fn has_accepted(
    conn: &mut PgConnection,
    user: Uuid,
    version: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select from consents where user_id = $1 and policy_version = $2)
              as "accepted!""#,
        user,
        version
    )
    .fetch_one(conn)
    .await
}

/// A data export's row.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub id: Uuid,
    pub status: String,
    pub object_key: Option<String>,
    pub size_bytes: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Records a pending export of `user`'s; `None` when one is pending already.
/// A new export replaces the earlier ones (their ZIPs are deleted by the
/// rows' trigger), so a user keeps one copy of their data at most.
pub async fn insert_export(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<ExportRow>, sqlx::Error> {
    let row = sqlx::query_as!(
        ExportRow,
        "insert into data_exports (user_id) values ($1) \
         on conflict (user_id) where status = 'pending' do nothing \
         returning id, status, object_key, size_bytes, created_at, ready_at, expires_at",
        user,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = &row {
        sqlx::query!(
            "delete from data_exports where user_id = $1 and id <> $2",
            user,
            row.id
        )
        .execute(conn)
        .await?;
    }
    Ok(row)
}

/// `user`'s pending export, if any.
pub async fn pending_export(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<ExportRow>, sqlx::Error> {
    sqlx::query_as!(
        ExportRow,
        "select id, status, object_key, size_bytes, created_at, ready_at, expires_at \
         from data_exports where user_id = $1 and status = 'pending'",
        user,
    )
    .fetch_optional(conn)
    .await
}

/// The export, if the actor may see it (its owner: row-level security).
pub async fn find_export(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ExportRow>, sqlx::Error> {
    sqlx::query_as!(
        ExportRow,
        "select id, status, object_key, size_bytes, created_at, ready_at, expires_at \
         from data_exports where id = $1",
        id,
    )
    .fetch_optional(conn)
    .await
}

/// What erasing an account checks and tells.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    /// Whether `session` began within the window (a fresh sign-in).
    pub recent_sign_in: bool,
}

pub async fn account(
    conn: &mut PgConnection,
    user: Uuid,
    session: Uuid,
    window: std::time::Duration,
) -> Result<Option<Account>, sqlx::Error> {
    let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2);
    sqlx::query_as!(
        Account,
        r#"select u.email, u.display_name, u.password_hash,
                  coalesce((select s.created_at > now() - make_interval(secs => $3::int8::float8)
                            from sessions s where s.id = $2 and s.user_id = u.id), false)
                      as "recent_sign_in!"
           from users u where u.id = $1"#,
        user,
        session,
        window_secs,
    )
    .fetch_optional(conn)
    .await
}
