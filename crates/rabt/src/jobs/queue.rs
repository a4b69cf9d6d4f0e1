//! The queue's SQL: enqueue inside the caller's transaction, claim with
//! `FOR UPDATE SKIP LOCKED`, and settle (succeed, retry later, dead-letter).
//!
//! Invariants, held by the statements below and the table's constraints:
//! - a job is claimed by at most one worker at a time: the claim locks the row
//!   and moves `run_at` to the end of the lease in one statement;
//! - only the worker holding the lease can settle it (`locked_by` must match),
//!   so a worker that lost its lease cannot overwrite the new holder's result;
//! - a job whose worker died is claimed again once its lease has run out.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A unit of background work with typed arguments.
pub trait JobArgs: Serialize + serde::de::DeserializeOwned + Send + 'static {
    /// The stable name stored in `jobs.kind`.
    const KIND: &'static str;
    /// Whether the arguments hold secrets (a token in a link): they are erased
    /// from the row once the job has succeeded.
    const SENSITIVE: bool = false;
}

/// A job as a worker holds it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: Value,
    /// 1 on the first run.
    pub attempts: i32,
    pub max_attempts: i32,
}

/// Enqueues `args` in the caller's transaction: the job exists if and only if
/// the change that caused it commits.
pub async fn enqueue<A: JobArgs>(
    conn: &mut PgConnection,
    args: &A,
    max_attempts: i32,
) -> Result<Uuid, sqlx::Error> {
    enqueue_at(conn, args, max_attempts, None).await
}

/// Enqueues `args` to run no earlier than `run_at`.
pub async fn enqueue_at<A: JobArgs>(
    conn: &mut PgConnection,
    args: &A,
    max_attempts: i32,
    run_at: Option<DateTime<Utc>>,
) -> Result<Uuid, sqlx::Error> {
    let payload = serde_json::to_value(args).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    // No RETURNING: a request's role may insert jobs but not read them back.
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into jobs (id, kind, payload, max_attempts, run_at) \
         values ($1, $2, $3, $4, coalesce($5, now()))",
        id,
        A::KIND,
        payload,
        max_attempts,
        run_at,
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Claims the next ready job for `worker`, holding it for `lease`.
pub async fn claim(
    db: impl PgExecutor<'_>,
    worker: Uuid,
    lease: Duration,
) -> Result<Option<ClaimedJob>, sqlx::Error> {
    sqlx::query_as!(
        ClaimedJob,
        "with next as ( \
             select id from jobs \
             where status in ('queued', 'running') and run_at <= now() \
             order by run_at, id \
             limit 1 \
             for update skip locked) \
         update jobs set \
             status = 'running', \
             attempts = jobs.attempts + 1, \
             locked_by = $1, \
             run_at = now() + make_interval(secs => $2) \
         from next where jobs.id = next.id \
         returning jobs.id, jobs.kind, jobs.payload, jobs.attempts, jobs.max_attempts",
        worker,
        lease.as_secs_f64(),
    )
    .fetch_optional(db)
    .await
}

/// Extends the lease of a job still held by `worker`. `false` when the lease was
/// lost (another worker holds the job now).
pub async fn extend_lease(
    db: impl PgExecutor<'_>,
    job: Uuid,
    worker: Uuid,
    lease: Duration,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update jobs set run_at = now() + make_interval(secs => $3) \
         where id = $1 and locked_by = $2 and status = 'running'",
        job,
        worker,
        lease.as_secs_f64(),
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Marks a job done. Handlers whose effect is a database write call this inside
/// their own transaction, so the effect and the completion commit together and a
/// crash can never apply the effect twice. `false` when the lease was lost.
pub async fn complete(
    db: impl PgExecutor<'_>,
    job: Uuid,
    worker: Uuid,
    erase_payload: bool,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update jobs set status = 'succeeded', locked_by = null, finished_at = now(), \
                         last_error = null, \
                         payload = case when $3 then '{}'::jsonb else payload end \
         where id = $1 and locked_by = $2 and status = 'running'",
        job,
        worker,
        erase_payload,
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Records a failed attempt: the job runs again after `retry_in`, or is
/// dead-lettered once it has used its attempts (or when `permanent`).
pub async fn fail(
    db: impl PgExecutor<'_>,
    job: Uuid,
    worker: Uuid,
    error: &str,
    retry_in: Duration,
    permanent: bool,
) -> Result<bool, sqlx::Error> {
    let error: String = error.chars().take(2000).collect();
    let result = sqlx::query!(
        "update jobs set \
             status = case when $5 or attempts >= max_attempts then 'dead' else 'queued' end, \
             finished_at = case when $5 or attempts >= max_attempts then now() end, \
             run_at = now() + make_interval(secs => $4), \
             locked_by = null, \
             last_error = $3 \
         where id = $1 and locked_by = $2 and status = 'running'",
        job,
        worker,
        error,
        retry_in.as_secs_f64(),
        permanent,
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Puts a dead job back in the queue with fresh attempts (the admin's retry).
pub async fn retry_dead(db: impl PgExecutor<'_>, job: Uuid) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update jobs set status = 'queued', attempts = 0, run_at = now(), finished_at = null \
         where id = $1 and status = 'dead'",
        job,
    )
    .execute(db)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Job counts by status, for `/metrics`.
pub async fn depth(db: impl PgExecutor<'_>) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select s.status as "status!", count(j.id) as "count!"
           from unnest(array['queued', 'running', 'dead']) as s(status)
           left join jobs j on j.status = s.status
           group by s.status order by s.status"#,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.count)).collect())
}

/// The wait before attempt `attempt + 1`: exponential from `base`, capped, with
/// "equal jitter" (half fixed, half random) so that a burst of failures does not
/// come back as a burst of retries.
pub fn backoff(attempt: i32, base: Duration, cap: Duration, random_unit: f64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let full = base.saturating_mul(2u32.saturating_pow(exponent)).min(cap);
    let half = full / 2;
    half + half.mul_f64(random_unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(2);
    const CAP: Duration = Duration::from_secs(3600);

    #[test]
    fn backoff_doubles_with_each_attempt() {
        assert_eq!(backoff(1, BASE, CAP, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(2, BASE, CAP, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(5, BASE, CAP, 1.0), Duration::from_secs(32));
    }

    #[test]
    fn backoff_jitter_keeps_at_least_half_the_wait() {
        assert_eq!(backoff(3, BASE, CAP, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(3, BASE, CAP, 0.5), Duration::from_secs(6));
    }

    #[test]
    fn backoff_is_capped_even_for_absurd_attempts() {
        assert_eq!(backoff(1000, BASE, CAP, 1.0), CAP);
        assert_eq!(backoff(i32::MAX, BASE, CAP, 0.0), CAP / 2);
        assert_eq!(backoff(0, BASE, CAP, 1.0), BASE);
    }
}
