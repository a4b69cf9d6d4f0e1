//! SQL for files, under the caller's row-level security (migrations/0025):
//! the uploader sees and changes their files; others see one only through
//! what it is attached to. Deleting a row queues its object's deletion (a
//! trigger), whoever deletes it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::model::{FileStatus, NewUpload, Purpose};

#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub purpose: Purpose,
    pub filename: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub object_key: String,
    pub status: FileStatus,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Records a pending upload of `owner`'s.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
    upload: &NewUpload,
    object_key: &str,
) -> Result<(), sqlx::Error> {
    let size = i64::try_from(upload.size_bytes).unwrap_or(i64::MAX);
    sqlx::query!(
        "insert into files (id, owner_id, purpose, filename, content_type, size_bytes, object_key) \
         values ($1, $2, $3, $4, $5, $6, $7)",
        id,
        owner,
        upload.purpose.as_str(),
        upload.filename.as_str(),
        upload.file_type.mime(),
        size,
        object_key,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The bytes of `owner`'s ready files (what the quota counts).
pub async fn ready_bytes(conn: &mut PgConnection, owner: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select coalesce(sum(size_bytes), 0)::int8 as "bytes!"
           from files where owner_id = $1 and status = 'ready'"#,
        owner,
    )
    .fetch_one(conn)
    .await
}

/// The file, if the actor may see it.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<FileRow>, sqlx::Error> {
    sqlx::query_as!(
        FileRow,
        r#"select id, owner_id, purpose as "purpose: Purpose", filename, content_type,
                  size_bytes, object_key, status as "status: FileStatus", created_at,
                  completed_at
           from files where id = $1"#,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// Marks `owner`'s pending file ready. `false` when it is not theirs, or
/// not pending any more (a concurrent `complete` won).
pub async fn mark_ready(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update files set status = 'ready', completed_at = now() \
         where id = $1 and owner_id = $2 and status = 'pending'",
        id,
        owner,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes `owner`'s file; its object follows by a job. `false` when it is
/// not theirs.
pub async fn delete(conn: &mut PgConnection, id: Uuid, owner: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "delete from files where id = $1 and owner_id = $2",
        id,
        owner,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks those of `ids` that are `owner`'s ready files of `purpose` as
/// attached, and returns them. A caller compares with `ids` to refuse the
/// rest (someone else's, pending, gone, or uploaded for another purpose).
pub async fn attach(
    conn: &mut PgConnection,
    owner: Uuid,
    ids: &[Uuid],
    purpose: Purpose,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "update files set attached_at = coalesce(attached_at, now()), detached_at = null \
         where id = any($1) and owner_id = $2 and status = 'ready' and purpose = $3 \
         returning id",
        ids,
        owner,
        purpose.as_str(),
    )
    .fetch_all(conn)
    .await
}

/// Removes uploads still pending after `older_than` (their objects follow
/// by jobs). Runs as the service.
pub async fn sweep_pending(
    conn: &mut PgConnection,
    older_than: Duration,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "delete from files where status = 'pending' \
         and created_at < now() - make_interval(secs => $1)",
        older_than.as_secs_f64(),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Notes files that nothing refers to any more, forgives those attached
/// again, and removes those detached for longer than `grace`. Runs as the
/// service.
pub async fn sweep_detached(conn: &mut PgConnection, grace: Duration) -> Result<u64, sqlx::Error> {
    sqlx::query!(
        "update files set detached_at = null \
         where detached_at is not null and public.file_is_attached(id)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update files set detached_at = now() \
         where attached_at is not null and detached_at is null \
           and not public.file_is_attached(id)",
    )
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query!(
        "delete from files \
         where detached_at < now() - make_interval(secs => $1) \
           and not public.file_is_attached(id)",
        grace.as_secs_f64(),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The bytes of every ready file, for the `files_stored_bytes` gauge.
pub async fn stored_bytes(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select coalesce(sum(size_bytes), 0)::int8 as "bytes!" from files where status = 'ready'"#,
    )
    .fetch_one(conn)
    .await
}
