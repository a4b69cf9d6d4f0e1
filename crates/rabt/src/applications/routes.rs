//! HTTP routes for applications (API.md §5): apply, list, read, and the
//! steps of the machine. Every event notifies the other side through the
//! database (migrations/0010), which also queues their email.

use axum::{Json, extract::State, http::StatusCode, response::Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    model::{Application, ApplicationRequest, ApplicationStatus, Side, validate},
    store::{self, Scope},
};
use crate::{
    auth::{AuthUser, permission},
    files::{self, model::Purpose},
    http::{
        ApiError, AppJson, AppPath, AppQuery, ErrorCode,
        error::{ProblemBody, violated_constraint},
        idempotency::{IdempotencyKey, Idempotent},
        openapi::{Forbidden, InvalidTransition, NotFound, Validation},
        pagination::{self, Key, Page, Position},
        patch,
    },
    projects::{model::ProjectStatus, store as projects},
    query_cache,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apply, project_applications))
        .routes(routes!(my_applications))
        .routes(routes!(get_application))
        .routes(routes!(transition_application))
        // Writes here change what cached searches answer.
        .layer(axum::middleware::from_fn(query_cache::drop_after_writes))
}

/// How the application table's constraints read to a client: the database
/// keeps one active application per applicant and project, applications
/// only to open projects, and the machine's steps, whatever races the
/// handlers' own checks.
fn on_constraint(err: sqlx::Error) -> ApiError {
    match violated_constraint(&err) {
        Some("applications_transition") => ApiError::new(ErrorCode::InvalidTransition),
        Some("applications_project_open") => ApiError::new(ErrorCode::ProjectNotOpen),
        Some("applications_one_active_idx") => ApiError::new(ErrorCode::AlreadyApplied),
        _ => err.into(),
    }
}

/// Apply to an open project.
#[utoipa::path(post, path = "/projects/{id}/applications", tag = "applications",
    request_body = ApplicationRequest, params(("id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header,
            description = "Replays the first response for 24 hours")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = Application),
        (status = 403, description = "Own project (`forbidden`)", body = ProblemBody,
            content_type = "application/problem+json"),
        NotFound,
        (status = 409, description = "`project_not_open` or `already_applied`",
            body = ProblemBody, content_type = "application/problem+json"),
        Validation,
    ))]
pub async fn apply(
    State(state): State<AppState>,
    caller: AuthUser,
    key: IdempotencyKey,
    AppPath(project_id): AppPath<Uuid>,
    AppJson(request): AppJson<ApplicationRequest>,
) -> Result<Response, ApiError> {
    let idem = Idempotent::new(
        key,
        caller.id,
        &format!("POST /v1/projects/{project_id}/applications"),
        &request,
    )?;
    let new = validate(project_id, caller.id, request)?;
    let actor = caller.actor();
    let mut tx = state.db.begin(&actor).await?;
    if let Some(saved) = idem.claim(&mut tx).await? {
        return Ok(saved);
    }
    let project = projects::find(&mut tx, project_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if project.owner_id == caller.id {
        return Err(ApiError::new(ErrorCode::Forbidden)
            .with_detail("You cannot apply to your own project."));
    }
    if project.status != ProjectStatus::Open {
        return Err(ApiError::new(ErrorCode::ProjectNotOpen));
    }
    files::attach_own_ready(
        &mut tx,
        caller.id,
        &new.attachment_file_ids,
        Purpose::ApplicationAttachment,
        "attachment_file_ids",
    )
    .await?;
    let id = store::insert(&mut tx, &new).await.map_err(on_constraint)?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    idem.commit(
        &state.db,
        &actor,
        tx,
        StatusCode::CREATED,
        &Application::from(row),
    )
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only applications in this status.
    pub status: Option<ApplicationStatus>,
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A page of applications, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationPage {
    pub items: Vec<Application>,
    pub next_cursor: Option<String>,
}

async fn page(
    state: &AppState,
    caller: &AuthUser,
    scope: Scope,
    params: ListParams,
) -> Result<ApplicationPage, ApiError> {
    let limit = pagination::limit(params.limit)?;
    // One order, newest first: the position's order is `()`.
    let after = match params.cursor.as_deref() {
        None => None,
        Some(cursor) => match state.cursors.decode::<Position<()>>(cursor)?.within(&())? {
            (Key::Time(t), id) => Some((*t, id)),
            _ => return Err(pagination::wrong_order()),
        },
    };
    let mut tx = state.db.begin(&caller.actor()).await?;
    if let Scope::Project(id) = scope {
        let project = projects::find(&mut tx, id)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if project.owner_id != caller.id && !caller.can::<permission::ProjectsModerate>() {
            return Err(ApiError::new(ErrorCode::Forbidden)
                .with_detail("Only the project's owner or a moderator sees its applications."));
        }
    }
    let rows = store::list(&mut tx, scope, params.status, after, limit + 1).await?;
    tx.commit().await?;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| Position {
        order: (),
        key: Key::Time(last.created_at),
        id: last.id,
        fuzzy: false,
    })?
    .map(Application::from);
    Ok(ApplicationPage {
        items: page.items,
        next_cursor: page.next_cursor,
    })
}

/// The applications to a project (its owner and moderators).
#[utoipa::path(get, path = "/projects/{id}/applications", tag = "applications",
    params(("id" = Uuid, Path), ListParams), security(("bearer" = [])),
    responses(
        (status = 200, body = ApplicationPage),
        Forbidden,
        NotFound,
        Validation,
    ))]
pub async fn project_applications(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(params): AppQuery<ListParams>,
) -> Result<Json<ApplicationPage>, ApiError> {
    Ok(Json(
        page(&state, &caller, Scope::Project(id), params).await?,
    ))
}

/// The caller's own applications.
#[utoipa::path(get, path = "/me/applications", tag = "applications",
    params(ListParams), security(("bearer" = [])),
    responses(
        (status = 200, body = ApplicationPage),
        Validation,
    ))]
pub async fn my_applications(
    State(state): State<AppState>,
    caller: AuthUser,
    AppQuery(params): AppQuery<ListParams>,
) -> Result<Json<ApplicationPage>, ApiError> {
    let scope = Scope::Applicant(caller.id);
    Ok(Json(page(&state, &caller, scope, params).await?))
}

/// An application: for the project's owner, the applicant and moderators
/// (`projects.moderate`, who also list a project's applications); 404 for
/// anyone else.
#[utoipa::path(get, path = "/applications/{id}", tag = "applications",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Application),
        NotFound,
    ))]
pub async fn get_application(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<Application>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// A step of the application machine.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationTransition {
    pub to: ApplicationStatus,
    /// Up to 2000 characters, kept in the history.
    pub note: Option<String>,
}

/// Move an application: the owner shortlists, accepts or rejects; the
/// applicant withdraws.
#[utoipa::path(post, path = "/applications/{id}/transitions", tag = "applications",
    request_body = ApplicationTransition, params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Application),
        Forbidden,
        NotFound,
        InvalidTransition,
        Validation,
    ))]
pub async fn transition_application(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(step): AppJson<ApplicationTransition>,
) -> Result<Json<Application>, ApiError> {
    let note = patch::optional_note("note", step.note, 2000)?;
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let side = if row.applicant_id == caller.id {
        Side::Applicant
    } else if row.project_owner_id == Some(caller.id) {
        Side::Owner
    } else {
        return Err(ApiError::new(ErrorCode::Forbidden)
            .with_detail("Only the applicant and the project's owner move an application."));
    };
    let from = row.status;
    if from.transition(step.to, side).is_none() {
        return Err(
            ApiError::new(ErrorCode::InvalidTransition).with_detail(format!(
                "This side cannot move an application from {} to {}.",
                from.as_str(),
                step.to.as_str()
            )),
        );
    }
    if !store::set_status(&mut tx, id, step.to, note.as_deref())
        .await
        .map_err(on_constraint)?
    {
        return Err(ApiError::not_found());
    }
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(Json(row.into()))
}
