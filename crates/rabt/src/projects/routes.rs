//! HTTP routes for projects (API.md §5): create, read, edit, delete, status
//! transitions and their history. Search is in [`super::search`].

use axum::{Json, extract::State, http::StatusCode, response::Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    model::{
        self, HistoryEntry, NewProject, Project, ProjectChange, ProjectStatus, open_project_limit,
        publish_errors,
    },
    search,
    store::{self, ProjectRow},
};
use crate::{
    auth::{AuthUser, MaybeAuthUser, permission},
    http::{
        ApiError, AppJson, AppPath, ErrorCode,
        error::{ProblemBody, violated_constraint},
        idempotency::{IdempotencyKey, Idempotent},
        openapi::{Forbidden, InvalidTransition, NotFound, PlanLimit, Validation},
        patch,
    },
    query_cache,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, search::search_projects))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(transition_project))
        .routes(routes!(project_history))
        // Writes here change what cached searches answer.
        .layer(axum::middleware::from_fn(query_cache::drop_after_writes))
}

/// Loads a project as the caller sees it, with its owner's name.
async fn load(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<Project, ApiError> {
    let listed = store::find_listed(conn, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Project::new(listed.project, listed.owner_name))
}

/// Owner or `projects.moderate`; others who can see the project get 403.
fn may_manage(caller: &AuthUser, row: &ProjectRow) -> Result<(), ApiError> {
    if row.owner_id == caller.id || caller.can::<permission::ProjectsModerate>() {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden)
            .with_detail("Only the project's owner or a moderator may do this."))
    }
}

/// How the project table's constraints read to a client. The status trigger
/// refuses a step that is not in the machine (a race with a concurrent step,
/// since handlers check first).
fn on_constraint(err: sqlx::Error) -> ApiError {
    match violated_constraint(&err) {
        Some("projects_transition") => ApiError::new(ErrorCode::InvalidTransition),
        _ => err.into(),
    }
}

/// Create a draft project.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = NewProject,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Replays the first response for 24 hours")),
    responses(
        (status = 201, body = Project),
        Validation,
    ))]
pub async fn create_project(
    State(state): State<AppState>,
    caller: AuthUser,
    key: IdempotencyKey,
    AppJson(new): AppJson<NewProject>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::new(key, caller.id, "POST /v1/projects", &new)?;
    let change = ProjectChange {
        title: Some(new.title),
        summary: new.summary.map(Some),
        description: new.description,
        category: new.category.map(Some),
        skills: new.skills,
        budget: new.budget.map(Some),
        remote: new.remote,
        location: new.location.map(Some),
    };
    let row = model::apply(change, model::empty_row(caller.id))?;
    let actor = caller.actor();
    let mut tx = state.db.begin(&actor).await?;
    if let Some(saved) = idem.claim(&mut tx).await? {
        return Ok(saved);
    }
    let id = store::insert(&mut tx, &row).await?;
    let project = load(&mut tx, id).await?;
    idem.commit(&state.db, &actor, tx, StatusCode::CREATED, &project)
        .await
}

/// A project: public statuses for everyone, the rest for the owner and moderators.
#[utoipa::path(get, path = "/projects/{id}", tag = "projects",
    params(("id" = Uuid, Path)), security((), ("bearer" = [])),
    responses(
        (status = 200, body = Project),
        NotFound,
    ))]
pub async fn get_project(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<Project>, ApiError> {
    let mut tx = state.db.read(&caller.actor()).await?;
    let project = load(&mut tx, id).await?;
    Ok(Json(project))
}

/// Edit a project (owner or `projects.moderate`); completed, cancelled and
/// archived projects are 409 `invalid_transition`.
#[utoipa::path(patch, path = "/projects/{id}", tag = "projects", request_body = ProjectChange,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Project),
        Forbidden,
        NotFound,
        InvalidTransition,
        Validation,
    ))]
pub async fn update_project(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(change): AppJson<ProjectChange>,
) -> Result<Json<Project>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    may_manage(&caller, &row)?;
    if !row.status.is_editable() {
        return Err(
            ApiError::new(ErrorCode::InvalidTransition).with_detail(format!(
                "A {} project can no longer be edited.",
                row.status.as_str()
            )),
        );
    }
    let row = model::apply(change, row)?;
    if (row.summary.is_none() || row.category.is_none()) && row.status != ProjectStatus::Draft {
        return Err(ApiError::validation(publish_errors(&row)));
    }
    if !store::save(&mut tx, &row).await? {
        return Err(ApiError::not_found());
    }
    let project = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(project))
}

/// Delete a project: owners their drafts, moderators any.
#[utoipa::path(delete, path = "/projects/{id}", tag = "projects",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        Forbidden,
        NotFound,
        (status = 409, description = "Owners delete drafts only (`conflict`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn delete_project(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    may_manage(&caller, &row)?;
    if row.status != ProjectStatus::Draft && !caller.can::<permission::ProjectsModerate>() {
        return Err(ApiError::new(ErrorCode::Conflict)
            .with_detail("Only drafts can be deleted; cancel or archive the project instead."));
    }
    if !store::delete(&mut tx, id).await? {
        return Err(ApiError::not_found());
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A step of the status machine.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectTransition {
    pub to: ProjectStatus,
    /// Up to 500 characters, kept in the history.
    pub reason: Option<String>,
}

/// Move a project along its status machine (owner or `projects.moderate`).
#[utoipa::path(post, path = "/projects/{id}/transitions", tag = "projects",
    request_body = ProjectTransition, params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Project),
        PlanLimit,
        Forbidden,
        NotFound,
        InvalidTransition,
        Validation,
    ))]
pub async fn transition_project(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(step): AppJson<ProjectTransition>,
) -> Result<Json<Project>, ApiError> {
    let reason = patch::optional_note("reason", step.reason, 500)?;
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    may_manage(&caller, &row)?;
    let from = row.status;
    if from
        .transition(step.to, row.application_count > 0)
        .is_none()
    {
        return Err(
            ApiError::new(ErrorCode::InvalidTransition).with_detail(format!(
                "A project cannot go from {} to {}.",
                from.as_str(),
                step.to.as_str()
            )),
        );
    }
    if step.to == ProjectStatus::Open {
        let missing = publish_errors(&row);
        if !missing.is_empty() {
            return Err(ApiError::validation(missing));
        }
        let (plan, open) = store::lock_owner_plan(&mut tx, row.owner_id).await?;
        if let Some(limit) = open_project_limit(&state.settings, plan.as_deref())
            && open >= limit
        {
            return Err(ApiError::new(ErrorCode::PlanLimitReached)
                .with_detail(format!("The plan allows {limit} open projects at once.")));
        }
    }
    if !store::set_status(&mut tx, id, step.to, reason.as_deref())
        .await
        .map_err(on_constraint)?
    {
        return Err(ApiError::not_found());
    }
    let project = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(project))
}

/// The status history of a project, oldest first (owner and moderators).
#[utoipa::path(get, path = "/projects/{id}/history", tag = "projects",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = [HistoryEntry]),
        Forbidden,
        NotFound,
    ))]
pub async fn project_history(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let mut tx = state.db.read(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    may_manage(&caller, &row)?;
    let rows = store::history(&mut tx, id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| HistoryEntry {
                from: r.from_status,
                to: r.to_status,
                actor_id: r.actor_id,
                reason: r.reason,
                at: r.at,
            })
            .collect(),
    ))
}
