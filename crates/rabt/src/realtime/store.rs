//! SQL of the per-user event log (migrations/0035).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::{Actor, Db};

/// The user's latest seq (0 before their first event) and the oldest seq
/// still kept (`None` when nothing is).
pub async fn bounds(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<(i64, Option<i64>), sqlx::Error> {
    let row = sqlx::query!(
        r#"select coalesce((select seq from public.realtime_counters where user_id = $1), 0)
                      as "latest!",
                  (select min(seq) from public.realtime_events where user_id = $1) as oldest"#,
        user,
    )
    .fetch_one(conn)
    .await?;
    Ok((row.latest, row.oldest))
}

/// The user's events after `after`, in order, `limit` at most: each seq with
/// its frame.
pub async fn after(
    conn: &mut PgConnection,
    user: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select seq, frame::text as "frame!" from public.realtime_events
           where user_id = $1 and seq > $2
           order by seq
           limit $3"#,
        user,
        after,
        limit,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.frame)).collect())
}

/// Announces an ephemeral frame (not logged, not replayed) to the other
/// participants of `conversation`, if the caller takes part in it; false when
/// they do not. Delivered at commit.
pub async fn announce_typing(
    conn: &mut PgConnection,
    conversation: Uuid,
    user: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select true as "sent!"
           from public.conversations c,
                lateral (select pg_catalog.pg_notify('rabt_realtime', jsonb_build_object(
                    'to', array(select p.user_id from public.conversation_participants p
                                where p.conversation_id = c.id and p.user_id <> $2),
                    'e', jsonb_build_object('type', 'typing', 'conversation_id', c.id,
                                            'user_id', $2::uuid))::text)) sent
           where c.id = $1"#,
        conversation,
        user,
    )
    .fetch_optional(conn)
    .await
    .map(|sent| sent.unwrap_or(false))
}

/// The latest seq of each of `users` who has one.
pub async fn latest(
    conn: &mut PgConnection,
    users: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        "select user_id, seq from public.realtime_counters where user_id = any($1)",
        users,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.user_id, r.seq)).collect())
}

/// Announces that instance `instance` is alive on `rabt_realtime`.
pub async fn heartbeat(db: &Db, instance: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = db.begin(&Actor::Service).await?;
    sqlx::query!(
        "select pg_catalog.pg_notify('rabt_realtime', jsonb_build_object('hb', $1::uuid)::text)",
        instance,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Deletes events older than `hours` hours; returns how many.
pub async fn prune(conn: &mut PgConnection, hours: i32) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "delete from public.realtime_events where created_at < now() - make_interval(hours => $1)",
        hours,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
