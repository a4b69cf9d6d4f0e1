//! Email's SQL. The sender, the tracking endpoints and the events webhook
//! act as the service; admins read aggregates and the suppression list under
//! their own row-level security.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// The message row of a queued email, made on its first attempt. A user
/// erased since the email was queued is no longer named.
pub async fn upsert_message(
    conn: &mut PgConnection,
    message_id: &str,
    user: Option<Uuid>,
    template: &str,
    class: &str,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        r#"insert into email_messages (message_id, user_id, template, class)
           values ($1, (select id from users where id = $2), $3, $4)
           on conflict (message_id) do update set message_id = excluded.message_id
           returning id"#,
        message_id,
        user,
        template,
        class
    )
    .fetch_one(conn)
    .await
}

/// Whether `address` may get only security mail now.
pub async fn is_suppressed(conn: &mut PgConnection, address: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select from email_suppressions
                          where address = lower($1)
                            and (expires_at is null or expires_at > now())) as "found!""#,
        address
    )
    .fetch_one(conn)
    .await
}

/// Puts `address` on the suppression list; a stronger reason replaces a soft
/// bounce, never the other way round.
pub async fn suppress(
    conn: &mut PgConnection,
    address: &str,
    reason: &str,
    source: &str,
    detail: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"insert into email_suppressions (address, reason, source, detail, expires_at)
           values (lower($1), $2, $3, left($4, 500), $5)
           on conflict (address) do update
              set reason = excluded.reason, source = excluded.source,
                  detail = excluded.detail, expires_at = excluded.expires_at,
                  created_at = now()
            where email_suppressions.reason = 'soft_bounce'"#,
        address,
        reason,
        source,
        detail,
        expires_at
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Which outcome of a message to stamp: its `…_at` column.
#[derive(Debug, Clone, Copy)]
pub enum Mark {
    Sent,
    Failed,
    Suppressed,
    Bounced,
    Complained,
    Unsubscribed,
}

impl Mark {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Suppressed => "suppressed",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

/// Stamps `mark` on a message (the first time only).
pub async fn mark(conn: &mut PgConnection, message: Uuid, mark: Mark) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"update email_messages set
              sent_at = case when $2 = 'sent' then coalesce(sent_at, now()) else sent_at end,
              failed_at = case when $2 = 'failed' then coalesce(failed_at, now()) else failed_at end,
              suppressed_at = case when $2 = 'suppressed' then coalesce(suppressed_at, now())
                                   else suppressed_at end,
              bounced_at = case when $2 = 'bounced' then coalesce(bounced_at, now()) else bounced_at end,
              complained_at = case when $2 = 'complained' then coalesce(complained_at, now())
                                   else complained_at end,
              unsubscribed_at = case when $2 = 'unsubscribed' then coalesce(unsubscribed_at, now())
                                     else unsubscribed_at end
           where id = $1"#,
        message,
        mark.as_str()
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Records the server's reply to one attempt.
pub async fn record_attempt(
    conn: &mut PgConnection,
    message: Uuid,
    attempt: i32,
    outcome: &str,
    reply: &str,
) -> Result<(), sqlx::Error> {
    let reply: String = reply.chars().take(1000).collect();
    sqlx::query!(
        r#"insert into email_attempts (message, attempt, outcome, reply) values ($1, $2, $3, $4)
           on conflict (message, attempt) do update
              set outcome = excluded.outcome, reply = excluded.reply, at = now()"#,
        message,
        attempt,
        outcome,
        reply
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Stores a token of `message` by its hash.
pub async fn insert_token(
    conn: &mut PgConnection,
    message: Uuid,
    hash: &[u8],
    kind: &str,
    url: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into email_tokens (token_hash, message, kind, url) values ($1, $2, $3, $4)",
        hash,
        message,
        kind,
        url
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Counts an open of the message whose pixel has this hash; `false` for a
/// token rabt did not mint.
pub async fn record_open(
    conn: &mut PgConnection,
    hash: &[u8],
    by_proxy: bool,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        r#"update email_messages m set
              opens = opens + case when $2 then 0 else 1 end,
              proxy_opens = proxy_opens + case when $2 then 1 else 0 end,
              first_opened_at = case when $2 then first_opened_at
                                     else coalesce(first_opened_at, now()) end,
              last_opened_at = case when $2 then last_opened_at else now() end
           from email_tokens t
           where t.token_hash = $1 and t.kind = 'open' and m.id = t.message"#,
        hash,
        by_proxy
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Counts a click of a tracked link and says where it goes.
pub async fn record_click(
    conn: &mut PgConnection,
    hash: &[u8],
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"with link as (
               update email_tokens set clicks = clicks + 1
                where token_hash = $1 and kind = 'click'
            returning message, url
           ), counted as (
               update email_messages m set
                      clicks = clicks + 1,
                      first_clicked_at = coalesce(first_clicked_at, now()),
                      last_clicked_at = now()
                 from link where m.id = link.message
           )
           select url as "url!" from link"#,
        hash
    )
    .fetch_optional(conn)
    .await
}

/// What an unsubscribe token stands for.
#[derive(Debug)]
pub struct Unsubscribe {
    pub message: Uuid,
    pub template: String,
    pub user: Option<Uuid>,
    pub address: Option<String>,
}

pub async fn unsubscribe_token(
    conn: &mut PgConnection,
    hash: &[u8],
) -> Result<Option<Unsubscribe>, sqlx::Error> {
    sqlx::query_as!(
        Unsubscribe,
        r#"select m.id as message, m.template, m.user_id as "user",
                  u.email as "address?"
             from email_tokens t
             join email_messages m on m.id = t.message
             left join users u on u.id = m.user_id
            where t.token_hash = $1 and t.kind = 'unsubscribe'"#,
        hash
    )
    .fetch_optional(conn)
    .await
}

/// Turns off the preference behind an unsubscribe, making the row with the
/// table's defaults for a user who never set any.
pub async fn turn_off(
    conn: &mut PgConnection,
    user: Uuid,
    topic: super::Topic,
) -> Result<(), sqlx::Error> {
    let (applications, messages, billing, product_news) = match topic {
        super::Topic::Applications => (true, false, false, false),
        super::Topic::Messages => (false, true, false, false),
        super::Topic::Billing => (false, false, true, false),
        super::Topic::ProductNews => (false, false, false, true),
    };
    sqlx::query!(
        r#"insert into notification_preferences (user_id) values ($1)
           on conflict (user_id) do nothing"#,
        user
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r#"update notification_preferences set
              applications = applications and not $2,
              messages = case when $3 then 'never' else messages end,
              billing = billing and not $4,
              product_news = product_news and not $5
           where user_id = $1"#,
        user,
        applications,
        messages,
        billing,
        product_news
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The message a bounce or complaint names by its `Message-ID`.
pub async fn message_by_message_id(
    conn: &mut PgConnection,
    message_id: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select id from email_messages where message_id = $1",
        message_id
    )
    .fetch_optional(conn)
    .await
}

/// One suppression, as admins see it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Suppression {
    pub address: String,
    /// `hard_bounce`, `soft_bounce`, `complaint` or `unsubscribed`.
    pub reason: String,
    /// `webhook`, `smtp` or `unsubscribe`.
    pub source: String,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Suppressions in force, newest first, after the `(created_at, address)`
/// cursor.
pub async fn suppressions(
    conn: &mut PgConnection,
    after: Option<(DateTime<Utc>, String)>,
    limit: i64,
) -> Result<Vec<Suppression>, sqlx::Error> {
    let (at, address) = after.unzip();
    sqlx::query_as!(
        Suppression,
        r#"select address, reason, source, detail, created_at, expires_at
             from email_suppressions
            where (expires_at is null or expires_at > now())
              and ($1::timestamptz is null or (created_at, address) < ($1, $2))
            order by created_at desc, address desc
            limit $3"#,
        at,
        address,
        limit
    )
    .fetch_all(conn)
    .await
}

pub async fn lift(conn: &mut PgConnection, address: &str) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query!(
        "delete from email_suppressions where address = lower($1)",
        address
    )
    .execute(conn)
    .await?;
    Ok(deleted.rows_affected() > 0)
}

/// Lifts `user`'s own unsubscribe (the row policy allows no other), when
/// they turn emails back on themselves.
pub async fn lift_own_unsubscribe(conn: &mut PgConnection, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from email_suppressions \
         where reason = 'unsubscribed' and address = lower(public.user_email($1))",
        user
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Removes suppressions whose time ran out.
pub async fn sweep_expired(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!("delete from email_suppressions where expires_at <= now()")
        .execute(conn)
        .await?;
    Ok(deleted.rows_affected())
}

/// Counts of one template on one day.
#[derive(Debug)]
pub struct DayCounts {
    pub day: NaiveDate,
    pub template: String,
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub bounced: i64,
    pub complained: i64,
    pub opened: i64,
    pub clicked: i64,
    pub unsubscribed: i64,
}

/// Messages first tried on `from..=to` (UTC days), by day and template.
pub async fn stats(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayCounts>, sqlx::Error> {
    sqlx::query_as!(
        DayCounts,
        r#"select (created_at at time zone 'utc')::date as "day!",
                  template,
                  count(*) as "queued!",
                  count(sent_at) as "sent!",
                  count(failed_at) as "failed!",
                  count(suppressed_at) as "suppressed!",
                  count(bounced_at) as "bounced!",
                  count(complained_at) as "complained!",
                  count(*) filter (where opens > 0) as "opened!",
                  count(*) filter (where clicks > 0) as "clicked!",
                  count(unsubscribed_at) as "unsubscribed!"
             from email_messages
            where created_at >= ($1::date::timestamp at time zone 'utc')
              and created_at < (($2::date + 1)::timestamp at time zone 'utc')
            group by 1, 2
            order by 1, 2"#,
        from,
        to
    )
    .fetch_all(conn)
    .await
}
