//! SQL for projects. Every function takes a transaction opened for an actor, so
//! row-level security decides what it finds. The search's SQL is in
//! `search/store.rs`.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::model::ProjectStatus;

/// A project row as stored.
#[derive(Debug, Clone, FromRow)]
pub struct ProjectRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub summary: Option<String>,
    pub description: String,
    pub description_html: String,
    pub category: Option<String>,
    pub skills: Vec<String>,
    pub budget_min: Option<i64>,
    pub budget_max: Option<i64>,
    pub currency: Option<String>,
    pub remote: bool,
    pub location: Option<String>,
    pub status: ProjectStatus,
    pub application_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

/// A project as listed: the row and its owner's name, if the actor may see it.
#[derive(Debug, Clone)]
pub struct ListedRow {
    pub project: ProjectRow,
    pub owner_name: Option<String>,
}

/// The project with this id and its owner's name, if the actor may see it.
pub async fn find_listed(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ListedRow>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select p.id, p.owner_id, p.title, p.summary, p.description, p.description_html,
                  p.category, p.skills, p.budget_min, p.budget_max, p.currency, p.remote,
                  p.location, p.status as "status: ProjectStatus", p.application_count,
                  p.created_at, p.updated_at, p.published_at,
                  (select u.display_name from users u where u.id = p.owner_id) as "owner_name?"
           from projects p where p.id = $1"#,
        id,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| ListedRow {
        project: ProjectRow {
            id: r.id,
            owner_id: r.owner_id,
            title: r.title,
            summary: r.summary,
            description: r.description,
            description_html: r.description_html,
            category: r.category,
            skills: r.skills,
            budget_min: r.budget_min,
            budget_max: r.budget_max,
            currency: r.currency,
            remote: r.remote,
            location: r.location,
            status: r.status,
            application_count: r.application_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
            published_at: r.published_at,
        },
        owner_name: r.owner_name,
    }))
}

/// The project with this id, if the actor may see it.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<ProjectRow>, sqlx::Error> {
    sqlx::query_as!(
        ProjectRow,
        r#"select p.id, p.owner_id, p.title, p.summary, p.description, p.description_html,
                  p.category, p.skills, p.budget_min, p.budget_max, p.currency, p.remote,
                  p.location, p.status as "status: ProjectStatus", p.application_count,
                  p.created_at, p.updated_at, p.published_at
           from projects p where p.id = $1"#,
        id,
    )
    .fetch_optional(conn)
    .await
}

/// Inserts a draft for `row.owner_id`; returns its id.
pub async fn insert(conn: &mut PgConnection, row: &ProjectRow) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into projects (owner_id, title, summary, description, description_html, \
                               category, skills, budget_min, budget_max, currency, remote, \
                               location) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         returning id",
        row.owner_id,
        row.title,
        row.summary,
        row.description,
        row.description_html,
        row.category,
        &row.skills,
        row.budget_min,
        row.budget_max,
        row.currency,
        row.remote,
        row.location,
    )
    .fetch_one(conn)
    .await
}

/// Writes every editable field (the caller merged the change in). `false` when
/// the row is not the actor's to change.
pub async fn save(conn: &mut PgConnection, row: &ProjectRow) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "update projects set title = $2, summary = $3, description = $4, \
                description_html = $5, category = $6, skills = $7, budget_min = $8, \
                budget_max = $9, currency = $10, remote = $11, location = $12 \
         where id = $1",
        row.id,
        row.title,
        row.summary,
        row.description,
        row.description_html,
        row.category,
        &row.skills,
        row.budget_min,
        row.budget_max,
        row.currency,
        row.remote,
        row.location,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves the project to `to`; the database checks the step and writes the
/// history row with `reason`. `false` when the row is not the actor's.
pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    to: ProjectStatus,
    reason: Option<&str>,
) -> Result<bool, sqlx::Error> {
    sqlx::query!(
        "select set_config('request.transition_reason', $1, true)",
        reason.unwrap_or(""),
    )
    .fetch_one(&mut *conn)
    .await?;
    let done = sqlx::query!(
        "update projects set status = $2 where id = $1",
        id,
        to.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes the project if the actor may (owners: drafts; moderators: any).
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!("delete from projects where id = $1", id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Serialises publishing by one owner, so two concurrent publishes cannot both
/// pass the plan's limit; then counts their open projects and reads their plan.
pub async fn lock_owner_plan(
    conn: &mut PgConnection,
    owner: Uuid,
) -> Result<(Option<String>, i64), sqlx::Error> {
    sqlx::query!(
        "select from pg_advisory_xact_lock( \
             hashtextextended('rabt.publish:' || $1::uuid::text, 0))",
        owner,
    )
    .execute(&mut *conn)
    .await?;
    let plan = sqlx::query_scalar!("select plan from users where id = $1", owner)
        .fetch_optional(&mut *conn)
        .await?;
    let open = sqlx::query_scalar!(
        r#"select count(*) as "open!" from projects where owner_id = $1 and status = 'open'"#,
        owner,
    )
    .fetch_one(conn)
    .await?;
    Ok((plan, open))
}

#[derive(Debug, Clone)]
pub struct HistoryRow {
    pub from_status: ProjectStatus,
    pub to_status: ProjectStatus,
    pub actor_id: Option<Uuid>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn history(conn: &mut PgConnection, id: Uuid) -> Result<Vec<HistoryRow>, sqlx::Error> {
    sqlx::query_as!(
        HistoryRow,
        r#"select from_status as "from_status: ProjectStatus",
                  to_status as "to_status: ProjectStatus", actor_id, reason, at
           from project_status_history
           where project_id = $1 order by at, id"#,
        id,
    )
    .fetch_all(conn)
    .await
}
