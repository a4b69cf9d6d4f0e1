//! The job queue as operators see it (`jobs.manage`): kind, status,
//! attempts, last error and times, never the arguments (they may hold
//! tokens); and a retry of a failed or dead job.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    audit::{self, Action},
    auth::{Holding, permission},
    db::Actor,
    http::{
        ApiError, AppPath, AppQuery, ClientInfo, ErrorCode,
        openapi::{Conflict, Forbidden, NotFound, Unauthorized, Validation},
        pagination::{self, Page},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(retry_job))
}

/// A job's state, as the admin view names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    /// Queued again after a failed attempt, waiting for its backoff.
    Failed,
    /// Out of attempts (or failed for good): dead-lettered.
    Dead,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobParams {
    pub status: Option<JobStatus>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    pub status: JobStatus,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    pub next_cursor: Option<String>,
}

struct JobRow {
    id: Uuid,
    kind: String,
    status: String,
    attempts: i32,
    max_attempts: i32,
    last_error: Option<String>,
    run_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl JobRow {
    fn status(&self) -> JobStatus {
        match self.status.as_str() {
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "dead" => JobStatus::Dead,
            _ if self.last_error.is_some() => JobStatus::Failed,
            _ => JobStatus::Queued,
        }
    }

    fn view(self) -> JobView {
        JobView {
            status: self.status(),
            id: self.id,
            kind: self.kind,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            last_error: self.last_error,
            run_at: self.run_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            finished_at: self.finished_at,
        }
    }
}

async fn jobs(
    conn: &mut PgConnection,
    status: Option<JobStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<JobRow>, sqlx::Error> {
    let (stored, failed) = match status {
        None => (None, None),
        Some(JobStatus::Queued) => (Some("queued"), Some(false)),
        Some(JobStatus::Failed) => (Some("queued"), Some(true)),
        Some(JobStatus::Running) => (Some("running"), None),
        Some(JobStatus::Succeeded) => (Some("succeeded"), None),
        Some(JobStatus::Dead) => (Some("dead"), None),
    };
    sqlx::query_as!(
        JobRow,
        r#"select id, kind, status, attempts, max_attempts, last_error, run_at, created_at,
                  updated_at, finished_at
             from jobs
            where ($1::text is null or status = $1)
              and ($2::boolean is null or (last_error is not null) = $2)
              and ($3::uuid is null or id < $3)
            order by id desc
            limit $4"#,
        stored,
        failed,
        before,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Background jobs, newest first.
#[utoipa::path(get, path = "/admin/jobs", tag = "admin",
    params(JobParams), security(("bearer" = ["jobs.manage"])),
    responses((status = 200, body = JobPage), Unauthorized, Forbidden, Validation))]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Holding<permission::JobsManage>,
    AppQuery(params): AppQuery<JobParams>,
) -> Result<Json<JobPage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let before: Option<Uuid> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    // The policy and column grants show `jobs.manage` everything but payloads.
    let mut tx = state.db.read(&caller.actor()).await?;
    let rows = jobs(&mut tx, params.status, before, limit + 1).await?;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| last.id)?;
    Ok(Json(JobPage {
        items: page.items.into_iter().map(JobRow::view).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Runs a failed job now, or puts a dead one back with fresh attempts.
/// Audited. A job that is queued without failing, running or done is 409.
#[utoipa::path(post, path = "/admin/jobs/{id}/retry", tag = "admin",
    params(("id" = Uuid, Path)), security(("bearer" = ["jobs.manage"])),
    responses((status = 202, body = JobView), Unauthorized, Forbidden, NotFound, Conflict))]
pub async fn retry_job(
    State(state): State<AppState>,
    caller: Holding<permission::JobsManage>,
    client: ClientInfo,
    AppPath(id): AppPath<Uuid>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    // The queue is the service's to write; the permission was checked above
    // and the retry is audited in the same transaction.
    let mut tx = state.db.begin(&Actor::Service).await?;
    let retried = sqlx::query_as!(
        JobRow,
        r#"with found as (
               select id, status, last_error from jobs where id = $1 for update
           )
           update jobs j set
                  status = 'queued', run_at = now(), finished_at = null,
                  attempts = case when f.status = 'dead' then 0 else j.attempts end
             from found f
            where j.id = f.id
              and (f.status = 'dead' or (f.status = 'queued' and f.last_error is not null))
        returning j.id, j.kind, j.status, j.attempts, j.max_attempts, j.last_error, j.run_at,
                  j.created_at, j.updated_at, j.finished_at"#,
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(job) = retried else {
        let exists = sqlx::query_scalar!(
            r#"select exists (select from jobs where id = $1) as "exists!""#,
            id
        )
        .fetch_one(&mut *tx)
        .await?;
        return Err(if exists {
            ApiError::new(ErrorCode::Conflict)
                .with_detail("Only a failed or dead job can be retried.")
        } else {
            ApiError::not_found()
        });
    };
    audit::record(
        &mut tx,
        Some(caller.id),
        Action::JobRetried,
        None,
        &client,
        json!({"job_id": job.id, "kind": job.kind}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(job.view())))
}
