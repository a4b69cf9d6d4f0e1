//! SQL for applications, under the caller's row-level security. The database
//! keeps the rules too: one active application per applicant and project (a
//! unique partial index), the status machine and who may take each step, the
//! project's count, and the notification of the other side (triggers in
//! migrations/0010).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::model::ApplicationStatus;

#[derive(Debug, Clone)]
pub struct ApplicationRow {
    pub id: Uuid,
    pub project_id: Uuid,
    /// `None` when the caller cannot see the project (an applicant, once the
    /// project was cancelled or archived).
    pub project_owner_id: Option<Uuid>,
    pub applicant_id: Uuid,
    pub cover_letter: String,
    pub proposed_budget_amount: Option<i64>,
    pub proposed_budget_currency: Option<String>,
    pub attachment_file_ids: Vec<Uuid>,
    pub status: ApplicationStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn find(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ApplicationRow>, sqlx::Error> {
    sqlx::query_as!(
        ApplicationRow,
        r#"select a.id, a.project_id, p.owner_id as "project_owner_id?", a.applicant_id,
                  a.cover_letter, a.proposed_budget_amount, a.proposed_budget_currency,
                  a.attachment_file_ids, a.status as "status: ApplicationStatus", a.created_at,
                  a.updated_at
           from applications a left join projects p on p.id = a.project_id
           where a.id = $1"#,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// What an applicant sends.
#[derive(Debug, Clone)]
pub struct NewApplication {
    pub project_id: Uuid,
    pub applicant_id: Uuid,
    pub cover_letter: String,
    pub budget: Option<(i64, String)>,
    pub attachment_file_ids: Vec<Uuid>,
}

pub async fn insert(conn: &mut PgConnection, new: &NewApplication) -> Result<Uuid, sqlx::Error> {
    // The id is made here: the applicant may insert, and read the row back
    // only through the policies.
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into applications (id, project_id, applicant_id, cover_letter, \
                                   proposed_budget_amount, proposed_budget_currency, \
                                   attachment_file_ids) \
         values ($1, $2, $3, $4, $5, $6, $7)",
        id,
        new.project_id,
        new.applicant_id,
        new.cover_letter,
        new.budget.as_ref().map(|b| b.0),
        new.budget.as_ref().map(|b| b.1.as_str()),
        &new.attachment_file_ids,
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// Moves the application to `to`; the database checks the step, the side, and
/// writes the history row with `note`.
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    to: ApplicationStatus,
    note: Option<&str>,
) -> Result<bool, sqlx::Error> {
    sqlx::query!(
        "select set_config('request.transition_reason', $1, true)",
        note.unwrap_or(""),
    )
    .fetch_one(&mut *conn)
    .await?;
    let done = sqlx::query!(
        "update applications set status = $2 where id = $1",
        id,
        to.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which applications a listing shows.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Project(Uuid),
    Applicant(Uuid),
}

/// Newest first, keyset on (created_at, id).
pub async fn list(
    conn: &mut PgConnection,
    scope: Scope,
    status: Option<ApplicationStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ApplicationRow>, sqlx::Error> {
    let (project, applicant) = match scope {
        Scope::Project(id) => (Some(id), None),
        Scope::Applicant(id) => (None, Some(id)),
    };
    sqlx::query_as!(
        ApplicationRow,
        r#"select a.id, a.project_id, p.owner_id as "project_owner_id?", a.applicant_id,
                  a.cover_letter, a.proposed_budget_amount, a.proposed_budget_currency,
                  a.attachment_file_ids, a.status as "status: ApplicationStatus", a.created_at,
                  a.updated_at
           from applications a left join projects p on p.id = a.project_id
           where ($1::uuid is null or a.project_id = $1)
             and ($2::uuid is null or a.applicant_id = $2)
             and ($3::text is null or a.status = $3)
             and ($4::timestamptz is null or (a.created_at, a.id) < ($4, $5))
           order by a.created_at desc, a.id desc
           limit $6"#,
        project,
        applicant,
        status.map(ApplicationStatus::as_str),
        after.map(|a| a.0),
        after.map(|a| a.1),
        limit,
    )
    .fetch_all(conn)
    .await
}
