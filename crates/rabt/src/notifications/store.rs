//! SQL for the inbox and the preferences, under the caller's row-level
//! security (the job's reads act as the service).

use sqlx::PgConnection;
use uuid::Uuid;

use super::model::{MessageEmails, Notification, Preferences};

/// The notifications of `user`, newest first, after `after` (ids are
/// time-ordered, v7, so the id alone is the keyset); `fetch` at most.
pub async fn page(
    conn: &mut PgConnection,
    user: Uuid,
    unread: bool,
    after: Option<Uuid>,
    fetch: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    sqlx::query_as!(
        Notification,
        "select id, kind, payload, read_at, created_at from notifications \
         where user_id = $1 \
           and (not $2 or read_at is null) \
           and ($3::uuid is null or id < $3) \
         order by id desc \
         limit $4",
        user,
        unread,
        after,
        fetch,
    )
    .fetch_all(conn)
    .await
}

/// Marks read every unread notification of `user`, or those among `ids`.
pub async fn mark_read(
    conn: &mut PgConnection,
    user: Uuid,
    all: bool,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update notifications set read_at = now() \
         where user_id = $1 and read_at is null and ($2 or id = any($3))",
        user,
        all,
        ids,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The preferences `user` set, if they set any.
pub async fn preferences(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<Preferences>, sqlx::Error> {
    sqlx::query_as!(
        Preferences,
        r#"select messages as "messages: MessageEmails", applications, billing, product_news
           from notification_preferences where user_id = $1"#,
        user,
    )
    .fetch_optional(conn)
    .await
}

/// Replaces the preferences of `user`.
pub async fn save_preferences(
    conn: &mut PgConnection,
    user: Uuid,
    preferences: &Preferences,
) -> Result<Preferences, sqlx::Error> {
    sqlx::query_as!(
        Preferences,
        r#"insert into notification_preferences (user_id, messages, applications, billing,
                                                product_news)
           values ($1, $2, $3, $4, $5)
           on conflict (user_id) do update set messages = excluded.messages,
               applications = excluded.applications, billing = excluded.billing,
               product_news = excluded.product_news
           returning messages as "messages: MessageEmails", applications, billing,
                     product_news"#,
        user,
        preferences.messages as MessageEmails,
        preferences.applications,
        preferences.billing,
        preferences.product_news,
    )
    .fetch_one(conn)
    .await
}

/// What the email of a notification needs.
#[derive(Debug)]
pub struct EmailFacts {
    pub user_id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    pub email: String,
    pub display_name: String,
    pub active: bool,
}

/// What the email of a notification needs: its event and payload, and its
/// recipient's address, name and whether they can still be reached.
pub async fn for_email(
    conn: &mut PgConnection,
    notification: Uuid,
) -> Result<Option<EmailFacts>, sqlx::Error> {
    sqlx::query_as!(
        EmailFacts,
        r#"select n.user_id, n.kind, n.payload, u.email, u.display_name,
                  u.deactivated_at is null and u.suspended_at is null as "active!"
           from notifications n join users u on u.id = n.user_id
           where n.id = $1"#,
        notification,
    )
    .fetch_optional(conn)
    .await
}

/// Deletes notifications read more than `days` days ago; returns how many.
pub async fn sweep_read(conn: &mut PgConnection, days: u32) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "delete from notifications \
         where read_at < now() - make_interval(days => $1)",
        i32::try_from(days).unwrap_or(i32::MAX),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
