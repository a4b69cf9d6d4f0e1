//! HTTP routes for projects (API.md §5): create, search, read, edit, delete,
//! status transitions and their history.

use std::collections::HashMap;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    markdown,
    status::ProjectStatus,
    store::{self, Filters, ProjectRow},
};
use crate::{
    app::AppState,
    auth::{AuthUser, MaybeAuthUser},
    config::Settings,
    http::{
        ApiError, AppJson, AppPath, AppQuery, ErrorCode, FieldError,
        error::ProblemBody,
        idempotency::{IdempotencyKey, Idempotent},
        pagination, patch,
    },
    query_cache::{CACHE_STATUS, Lookup},
    search::{self, Words, too_long},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_project, search_projects))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(transition_project))
        .routes(routes!(project_history))
}

/// Money as minor units and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Minor units, 0 or more.
    pub min: i64,
    /// Minor units, at least `min`.
    pub max: i64,
    /// ISO 4217, lowercase (`usd`).
    pub currency: String,
}

/// Who owns a project; the name only when their profile is visible to the caller.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Owner {
    pub id: Uuid,
    pub display_name: Option<String>,
}

/// A project.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub owner: Owner,
    pub title: String,
    pub summary: Option<String>,
    /// Markdown, with raw HTML cleaned on write.
    pub description: String,
    /// The description rendered and sanitised.
    pub description_html: String,
    pub category: Option<String>,
    pub skills: Vec<String>,
    pub budget: Option<Budget>,
    pub remote: bool,
    pub location: Option<String>,
    pub status: ProjectStatus,
    pub application_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

impl Project {
    pub fn new(row: ProjectRow, owner_name: Option<String>) -> Self {
        let budget = match (row.budget_min, row.budget_max, row.currency) {
            (Some(min), Some(max), Some(currency)) => Some(Budget { min, max, currency }),
            _ => None,
        };
        Self {
            id: row.id,
            owner: Owner {
                id: row.owner_id,
                display_name: owner_name,
            },
            title: row.title,
            summary: row.summary,
            description: row.description,
            description_html: row.description_html,
            category: row.category,
            skills: row.skills,
            budget,
            remote: row.remote,
            location: row.location,
            // The table's check admits only the machine's statuses.
            status: ProjectStatus::parse(&row.status).unwrap_or(ProjectStatus::Archived),
            application_count: row.application_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
            published_at: row.published_at,
        }
    }
}

/// A new project, saved as a draft.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 500 characters; needed to publish.
    pub summary: Option<String>,
    /// Markdown, up to 20,000 characters.
    pub description: Option<String>,
    /// A slug (`web-development`); needed to publish.
    pub category: Option<String>,
    pub skills: Option<Vec<String>>,
    pub budget: Option<Budget>,
    pub remote: Option<bool>,
    pub location: Option<String>,
}

/// A change to a project: absent fields stay as they are. `null` clears an
/// optional field (`summary`, `category`, `location`, `budget`), as does `""`
/// for the text ones; the others cannot be `null` (422).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChange {
    /// 1 to 200 characters.
    #[serde(default, deserialize_with = "crate::http::patch::not_null")]
    #[schema(nullable = false)]
    pub title: Option<String>,
    /// Up to 500 characters; `null` or `""` clears it (a draft only: published
    /// projects need one).
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<String>)]
    pub summary: Option<Option<String>>,
    /// Markdown, up to 20,000 characters; `""` empties it.
    #[serde(default, deserialize_with = "crate::http::patch::not_null")]
    #[schema(nullable = false)]
    pub description: Option<String>,
    /// A slug; `null` or `""` clears it (a draft only).
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    /// The whole list; `[]` empties it.
    #[serde(default, deserialize_with = "crate::http::patch::not_null")]
    #[schema(nullable = false)]
    pub skills: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<Budget>)]
    pub budget: Option<Option<Budget>>,
    #[serde(default, deserialize_with = "crate::http::patch::not_null")]
    #[schema(nullable = false)]
    pub remote: Option<bool>,
    /// Up to 100 characters; `null` or `""` clears it.
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
}

fn is_slug(value: &str) -> bool {
    (1..=40).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
}

/// Lowercased, trimmed, de-duplicated skills (1..=40 characters each, 30 at most).
pub fn clean_skills(skills: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut clean: Vec<String> = Vec::new();
    for (i, skill) in skills.iter().enumerate() {
        let skill = skill.trim().to_lowercase();
        if !(1..=40).contains(&skill.chars().count()) {
            errors.push(FieldError::new(
                format!("skills[{i}]"),
                "invalid",
                "1 to 40 characters.",
            ));
        } else if !clean.contains(&skill) {
            clean.push(skill);
        }
    }
    if clean.len() > 30 {
        errors.push(FieldError::new("skills", "too_long", "At most 30 skills."));
    }
    clean
}

/// Checks a budget; `None` when it is invalid (the error is recorded).
pub fn clean_budget(field: &str, budget: Budget, errors: &mut Vec<FieldError>) -> Option<Budget> {
    let currency = budget.currency.trim().to_ascii_lowercase();
    let mut ok = true;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_lowercase()) {
        errors.push(FieldError::new(
            format!("{field}.currency"),
            "invalid",
            "An ISO 4217 code such as `usd`.",
        ));
        ok = false;
    }
    if !(0..=1_000_000_000_000).contains(&budget.min) {
        errors.push(FieldError::new(
            format!("{field}.min"),
            "out_of_range",
            "0 to 10^12 minor units.",
        ));
        ok = false;
    }
    if !(budget.min..=1_000_000_000_000).contains(&budget.max) {
        errors.push(FieldError::new(
            format!("{field}.max"),
            "out_of_range",
            "At least `min`, at most 10^12 minor units.",
        ));
        ok = false;
    }
    ok.then_some(Budget {
        min: budget.min,
        max: budget.max,
        currency,
    })
}

/// Merges a change into a project, validating every field.
fn apply(change: ProjectChange, mut row: ProjectRow) -> Result<ProjectRow, ApiError> {
    let mut errors = Vec::new();
    if let Some(title) = change.title {
        let title = title.trim().to_owned();
        if (1..=200).contains(&title.chars().count()) {
            row.title = title;
        } else {
            errors.push(FieldError::new("title", "invalid", "1 to 200 characters."));
        }
    }
    row.summary = patch::optional_text("summary", change.summary, 500, row.summary, &mut errors);
    row.location =
        patch::optional_text("location", change.location, 100, row.location, &mut errors);
    if let Some(description) = change.description {
        if description.chars().count() > 20_000 {
            errors.push(FieldError::new(
                "description",
                "too_long",
                "At most 20000 characters.",
            ));
        } else {
            let text = markdown::render(&description);
            if text.source.chars().count() > 20_000 || text.html.chars().count() > 60_000 {
                errors.push(FieldError::new(
                    "description",
                    "too_long",
                    "The description renders too long.",
                ));
            } else {
                row.description = text.source;
                row.description_html = text.html;
            }
        }
    }
    if let Some(category) = change.category {
        let category = category.unwrap_or_default().trim().to_lowercase();
        if category.is_empty() {
            row.category = None;
        } else if is_slug(&category) {
            row.category = Some(category);
        } else {
            errors.push(FieldError::new(
                "category",
                "invalid",
                "Lowercase letters, digits and `-`, up to 40.",
            ));
        }
    }
    if let Some(skills) = change.skills {
        row.skills = clean_skills(&skills, &mut errors);
    }
    match change.budget {
        None => {}
        Some(None) => (row.budget_min, row.budget_max, row.currency) = (None, None, None),
        Some(Some(budget)) => {
            if let Some(b) = clean_budget("budget", budget, &mut errors) {
                (row.budget_min, row.budget_max, row.currency) =
                    (Some(b.min), Some(b.max), Some(b.currency));
            }
        }
    }
    if let Some(remote) = change.remote {
        row.remote = remote;
    }
    if errors.is_empty() {
        Ok(row)
    } else {
        Err(ApiError::validation(errors))
    }
}

fn empty_row(owner: Uuid) -> ProjectRow {
    let now = Utc::now();
    ProjectRow {
        id: Uuid::nil(),
        owner_id: owner,
        title: String::new(),
        summary: None,
        description: String::new(),
        description_html: String::new(),
        category: None,
        skills: Vec::new(),
        budget_min: None,
        budget_max: None,
        currency: None,
        remote: false,
        location: None,
        status: ProjectStatus::Draft.as_str().to_owned(),
        application_count: 0,
        created_at: now,
        updated_at: now,
        published_at: None,
    }
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
    if row.owner_id == caller.id || caller.can("projects.moderate") {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden)
            .with_detail("Only the project's owner or a moderator may do this."))
    }
}

/// Create a draft project.
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = NewProject,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Replays the first response for 24 hours")),
    responses(
        (status = 201, body = Project),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
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
    let row = apply(change, empty_row(caller.id))?;
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
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Project),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn get_project(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<Project>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let project = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(project))
}

/// Edit a project (owner or `projects.moderate`); completed, cancelled and
/// archived projects are 409 `invalid_transition`.
#[utoipa::path(patch, path = "/projects/{id}", tag = "projects", request_body = ProjectChange,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Project),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
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
    if !ProjectStatus::parse(&row.status).is_some_and(ProjectStatus::is_editable) {
        return Err(ApiError::new(ErrorCode::InvalidTransition)
            .with_detail(format!("A {} project can no longer be edited.", row.status)));
    }
    let row = apply(change, row)?;
    if (row.summary.is_none() || row.category.is_none()) && row.status != "draft" {
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
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Owners delete drafts only", body = ProblemBody,
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
    if row.status != "draft" && !caller.can("projects.moderate") {
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

fn publish_errors(row: &ProjectRow) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if row.summary.is_none() {
        errors.push(FieldError::new("summary", "required", "Needed to publish."));
    }
    if row.category.is_none() {
        errors.push(FieldError::new(
            "category",
            "required",
            "Needed to publish.",
        ));
    }
    errors
}

/// The open-project limit of an owner's plan. Only billing may define plans
/// with other limits (API.md §7: pro and team), and it is not built yet, so
/// every plan, `free` or a name set by hand, fails closed to the free limit.
fn open_project_limit(settings: &Settings, _plan: Option<&str>) -> i64 {
    i64::from(settings.plan_free_open_projects)
}

/// Move a project along its status machine (owner or `projects.moderate`).
#[utoipa::path(post, path = "/projects/{id}/transitions", tag = "projects",
    request_body = ProjectTransition, params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Project),
        (status = 402, description = "Publishing past the plan's open-project limit",
            body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not a step of the machine", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn transition_project(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
    AppJson(step): AppJson<ProjectTransition>,
) -> Result<Json<Project>, ApiError> {
    let reason = step
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(error) = too_long("reason", reason.as_deref(), 500) {
        return Err(ApiError::validation(vec![error]));
    }
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    may_manage(&caller, &row)?;
    let from = ProjectStatus::parse(&row.status).ok_or_else(ApiError::not_found)?;
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
        let limit = open_project_limit(&state.settings, plan.as_deref());
        if open >= limit {
            return Err(ApiError::new(ErrorCode::PlanLimitReached)
                .with_detail(format!("The plan allows {limit} open projects at once.")));
        }
    }
    if !store::set_status(&mut tx, id, step.to.as_str(), reason.as_deref()).await? {
        return Err(ApiError::not_found());
    }
    let project = load(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(project))
}

/// One step a project took.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub from: ProjectStatus,
    pub to: ProjectStatus,
    pub actor_id: Option<Uuid>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// The status history of a project, oldest first (owner and moderators).
#[utoipa::path(get, path = "/projects/{id}/history", tag = "projects",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = [HistoryEntry]),
        (status = 403, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn project_history(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<Vec<HistoryEntry>>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    may_manage(&caller, &row)?;
    let rows = store::history(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(
        rows.into_iter()
            .filter_map(|r| {
                Some(HistoryEntry {
                    from: ProjectStatus::parse(&r.from_status)?,
                    to: ProjectStatus::parse(&r.to_status)?,
                    actor_id: r.actor_id,
                    reason: r.reason,
                    at: r.at,
                })
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words; every one must match the title, summary, skills or description
    /// (prefixes count). When they find nothing, each word may instead match
    /// a title word close to it (typos).
    pub q: Option<String>,
    /// Comma-separated statuses. Default: every status the caller may see.
    /// `open`, `in_progress` and `completed` are public; `draft`, `cancelled`
    /// and `archived` find only the caller's own projects (every one for
    /// `projects.moderate`), so anonymously they find nothing.
    #[param(value_type = Option<Vec<ProjectStatus>>, inline, style = Form, explode = false)]
    pub status: Option<String>,
    /// Comma-separated categories: projects in any of them.
    pub category: Option<String>,
    /// Comma-separated: projects with any of these skills.
    pub skills: Option<String>,
    /// Comma-separated: projects with all of these skills.
    pub skills_all: Option<String>,
    /// Projects whose `budget.max` is at least this (minor units).
    pub budget_min: Option<i64>,
    /// Projects whose `budget.min` is at most this (minor units).
    pub budget_max: Option<i64>,
    pub currency: Option<String>,
    pub remote: Option<bool>,
    /// Exact location, ignoring case.
    pub location: Option<String>,
    pub owner_id: Option<Uuid>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// `relevance` (needs `q`; the default with `q`), `newest` (the default
    /// without), `oldest`, `budget_high`, `budget_low`.
    #[param(value_type = Option<Sort>, inline)]
    pub sort: Option<String>,
    /// Comma-separated facets: counts over the whole filtered set.
    #[param(value_type = Option<Vec<Facet>>, inline, style = Form, explode = false)]
    pub facets: Option<String>,
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// One value of a facet and how many projects have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: i64,
}

/// A page of projects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectPage {
    pub items: Vec<Project>,
    pub next_cursor: Option<String>,
    /// Present when `facets` was asked for: the 20 most frequent values of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<HashMap<String, Vec<FacetValue>>>,
}

/// Where a page ended, by sort; `f` is the typo-tolerant mode.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "s")]
enum Position {
    #[serde(rename = "n")]
    Newest { t: DateTime<Utc>, id: Uuid, f: bool },
    #[serde(rename = "o")]
    Oldest { t: DateTime<Utc>, id: Uuid, f: bool },
    #[serde(rename = "h")]
    BudgetHigh { b: i64, id: Uuid, f: bool },
    #[serde(rename = "l")]
    BudgetLow { b: i64, id: Uuid, f: bool },
    #[serde(rename = "r")]
    Relevance { r: f64, id: Uuid, f: bool },
}

impl Position {
    fn fuzzy(&self) -> bool {
        match self {
            Self::Newest { f, .. }
            | Self::Oldest { f, .. }
            | Self::BudgetHigh { f, .. }
            | Self::BudgetLow { f, .. }
            | Self::Relevance { f, .. } => *f,
        }
    }

    fn after(sort: Sort, row: &store::SearchRow, fuzzy: bool) -> Self {
        let (p, f) = (&row.project, fuzzy);
        match sort {
            Sort::Newest => Self::Newest {
                t: p.created_at,
                id: p.id,
                f,
            },
            Sort::Oldest => Self::Oldest {
                t: p.created_at,
                id: p.id,
                f,
            },
            Sort::BudgetHigh => Self::BudgetHigh {
                b: p.budget_max.unwrap_or(-1),
                id: p.id,
                f,
            },
            Sort::BudgetLow => Self::BudgetLow {
                b: p.budget_min.unwrap_or(i64::MAX),
                id: p.id,
                f,
            },
            Sort::Relevance => Self::Relevance {
                r: row.rank,
                id: p.id,
                f,
            },
        }
    }
}

/// The order of a project search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProjectSort, rename_all = "snake_case")]
enum Sort {
    Relevance,
    Newest,
    Oldest,
    BudgetHigh,
    BudgetLow,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, "invalid", message)])
}

fn parse_sort(sort: Option<&str>, has_words: bool) -> Result<Sort, ApiError> {
    Ok(match sort {
        None if has_words => Sort::Relevance,
        None | Some("newest") => Sort::Newest,
        Some("relevance") if has_words => Sort::Relevance,
        Some("relevance") => return Err(invalid("sort", "`relevance` needs `q`.")),
        Some("oldest") => Sort::Oldest,
        Some("budget_high") => Sort::BudgetHigh,
        Some("budget_low") => Sort::BudgetLow,
        Some(_) => {
            return Err(invalid(
                "sort",
                "`relevance`, `newest`, `oldest`, `budget_high` or `budget_low`.",
            ));
        }
    })
}

fn parse_filters(params: &SearchParams) -> Result<Filters, ApiError> {
    let errors: Vec<FieldError> = [
        too_long("q", params.q.as_deref(), 200),
        too_long("status", params.status.as_deref(), 200),
        too_long("category", params.category.as_deref(), 1000),
        too_long("skills", params.skills.as_deref(), 1000),
        too_long("skills_all", params.skills_all.as_deref(), 1000),
        too_long("location", params.location.as_deref(), 100),
        too_long("facets", params.facets.as_deref(), 100),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let statuses = search::list(params.status.as_deref(), 6);
    if let Some(statuses) = &statuses
        && statuses.iter().any(|s| ProjectStatus::parse(s).is_none())
    {
        return Err(invalid(
            "status",
            "Statuses among draft, open, in_progress, completed, cancelled, archived.",
        ));
    }
    let currency = params.currency.as_deref().map(str::to_ascii_lowercase);
    if let Some(c) = &currency
        && (c.len() != 3 || !c.bytes().all(|b| b.is_ascii_lowercase()))
    {
        return Err(invalid("currency", "An ISO 4217 code such as `usd`."));
    }
    for (field, value) in [
        ("budget_min", params.budget_min),
        ("budget_max", params.budget_max),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(ApiError::validation(vec![FieldError::new(
                field,
                "out_of_range",
                "0 or more.",
            )]));
        }
    }
    let words = params.q.as_deref().and_then(Words::parse);
    Ok(Filters {
        all_words: words.as_ref().map(Words::all),
        any_words: words.as_ref().map(Words::any),
        text: words.as_ref().map(Words::text),
        words: words.map(|w| w.list),
        fuzzy: false,
        statuses,
        categories: search::list(params.category.as_deref(), 20),
        skills_any: search::list(params.skills.as_deref(), 30),
        skills_all: search::list(params.skills_all.as_deref(), 30),
        budget_min: params.budget_min,
        budget_max: params.budget_max,
        currency,
        remote: params.remote,
        location: params.location.clone().filter(|l| !l.trim().is_empty()),
        owner_id: params.owner_id,
        created_after: params.created_after,
        created_before: params.created_before,
    })
}

/// Who is searching, as far as visibility goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Searcher {
    Anonymous,
    User(Uuid),
    Moderator,
}

impl Searcher {
    fn of(caller: &MaybeAuthUser) -> Self {
        match &caller.0 {
            None => Self::Anonymous,
            Some(user) if user.can("projects.moderate") => Self::Moderator,
            Some(user) => Self::User(user.id),
        }
    }
}

/// Narrows asked-for statuses to what the searcher may see, so a search that
/// can only find nothing is answered without a query (`false`): a hidden
/// status (draft, cancelled, archived) looked for along the newest index
/// reads all of it (migrations/0014). Hidden projects are their owner's and
/// moderators' only, as the `project_listings` view has it.
fn narrow_to_visible(filters: &mut Filters, searcher: Searcher) -> bool {
    let Some(statuses) = filters.statuses.as_mut() else {
        return true;
    };
    let is_public = |s: &String| ProjectStatus::parse(s).is_some_and(ProjectStatus::is_public);
    match searcher {
        Searcher::Moderator => true,
        Searcher::Anonymous => {
            statuses.retain(is_public);
            !statuses.is_empty()
        }
        Searcher::User(me) => {
            if filters.owner_id.is_some_and(|owner| owner != me) {
                statuses.retain(is_public);
                !statuses.is_empty()
            } else {
                if !statuses.iter().any(is_public) {
                    filters.owner_id = Some(me);
                }
                true
            }
        }
    }
}

/// A facet of a project search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProjectFacet, rename_all = "snake_case")]
enum Facet {
    Category,
    Skills,
    Status,
}

impl Facet {
    const ALL: [Self; 3] = [Self::Category, Self::Skills, Self::Status];

    fn as_str(self) -> &'static str {
        match self {
            Self::Category => "category",
            Self::Skills => "skills",
            Self::Status => "status",
        }
    }
}

/// Every facet asked for, each with its counted `(facet, value, count)` rows.
fn group_facets(
    asked: &[Facet],
    counted: Vec<(String, String, i64)>,
) -> HashMap<String, Vec<FacetValue>> {
    let mut by_facet: HashMap<String, Vec<FacetValue>> = asked
        .iter()
        .map(|f| (f.as_str().to_owned(), Vec::new()))
        .collect();
    for (facet, value, count) in counted {
        if let Some(values) = by_facet.get_mut(&facet) {
            values.push(FacetValue { value, count });
        }
    }
    by_facet
}

fn parse_facets(facets: Option<&str>) -> Result<Vec<Facet>, ApiError> {
    search::list(facets, 3)
        .unwrap_or_default()
        .iter()
        .map(|f| Facet::ALL.into_iter().find(|facet| facet.as_str() == f))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("facets", "Any of `category`, `skills`, `status`."))
}

/// Search projects.
#[utoipa::path(get, path = "/projects", tag = "projects", params(SearchParams),
    responses(
        (status = 200, body = ProjectPage, headers(("Cache-Status" = String,
            description = "RFC 9211: `rabt; hit` when the answer came from the query \
                cache (anonymous searches only), else `rabt; fwd=miss` or `rabt; fwd=bypass`"))),
        (status = 422, body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn search_projects(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Response, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let mut filters = parse_filters(&params)?;
    let facets = parse_facets(params.facets.as_deref())?;
    let sort = parse_sort(params.sort.as_deref(), filters.all_words.is_some())?;
    let position: Option<Position> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    filters.fuzzy = position.as_ref().is_some_and(Position::fuzzy);
    let searcher = Searcher::of(&caller);
    if !narrow_to_visible(&mut filters, searcher) {
        let nothing = ProjectPage {
            items: Vec::new(),
            next_cursor: None,
            facets: (!facets.is_empty()).then(|| group_facets(&facets, Vec::new())),
        };
        let body = serde_json::to_vec(&nothing).map_err(ApiError::internal)?;
        return Ok(json_body(body, Lookup::Off.status()));
    }
    // Every anonymous caller sees the same projects and owners' names, so
    // they share answers; a signed-in caller may also see their own drafts
    // and private profile.
    let lookup = if searcher == Searcher::Anonymous {
        let query = SearchQuery {
            filters: &filters,
            sort,
            limit,
            facets: &facets,
            cursor: params.cursor.as_deref(),
        };
        state.query_cache.lookup("projects", &query).await
    } else {
        Lookup::Off
    };
    let cache_status = lookup.status();
    let slot = match lookup {
        Lookup::Hit(body) => return Ok(json_body(body, cache_status)),
        Lookup::Miss(slot) => Some(slot),
        Lookup::Off => None,
    };
    let mut tx = state.db.begin(&caller.actor()).await?;
    let page = find_page(
        &state,
        &mut tx,
        &mut filters,
        sort,
        limit,
        position,
        &facets,
    )
    .await?;
    tx.commit().await?;
    let body = serde_json::to_vec(&page).map_err(ApiError::internal)?;
    if let Some(slot) = slot {
        state.query_cache.keep(slot, &body).await;
    }
    Ok(json_body(body, cache_status))
}

/// Everything an anonymous search's answer depends on: its query-cache key.
#[derive(Serialize)]
struct SearchQuery<'a> {
    filters: &'a Filters,
    sort: Sort,
    limit: i64,
    facets: &'a [Facet],
    cursor: Option<&'a str>,
}

/// A JSON body that is already serialised.
fn json_body(body: Vec<u8>, cache_status: HeaderValue) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (CACHE_STATUS.clone(), cache_status),
        ],
        body,
    )
        .into_response()
}

/// The page of a search after `position`, and its facets if asked for.
async fn find_page(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    filters: &mut Filters,
    sort: Sort,
    limit: i64,
    position: Option<Position>,
    facets: &[Facet],
) -> Result<ProjectPage, ApiError> {
    let fetch = limit + 1;
    let with_facets = !facets.is_empty();
    let (mut rows, mut counted) =
        run_search(tx, sort, filters, position.as_ref(), fetch, with_facets).await?;
    // The words found nothing: let each one match a close title word (typos).
    if rows.is_empty() && position.is_none() && filters.all_words.is_some() {
        filters.fuzzy = true;
        (rows, counted) = run_search(tx, sort, filters, None, fetch, with_facets).await?;
    }
    let counted = match counted {
        Some(counted) => Some(counted),
        None if with_facets => Some(store::facets(tx, filters).await?),
        None => None,
    };
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = match rows.last().filter(|_| more) {
        Some(last) => Some(
            state
                .cursors
                .encode(&Position::after(sort, last, filters.fuzzy))?,
        ),
        None => None,
    };
    Ok(ProjectPage {
        items: rows
            .into_iter()
            .map(|r| Project::new(r.project, r.owner_name))
            .collect(),
        next_cursor,
        facets: counted.map(|counted| group_facets(facets, counted)),
    })
}

fn wrong_sort() -> ApiError {
    invalid("cursor", "This cursor belongs to another sort.")
}

/// The facets counted with a page, when one query found both.
type Counted = Option<Vec<(String, String, i64)>>;

/// One page in `sort` order after `position` (which must belong to that sort).
/// With `with_facets`, a relevance search counts the facets in the same scan
/// of the matches; other sorts find their page along an index, and leave the
/// facets to a query of their own.
async fn run_search(
    tx: &mut sqlx::PgConnection,
    sort: Sort,
    f: &Filters,
    position: Option<&Position>,
    fetch: i64,
    with_facets: bool,
) -> Result<(Vec<store::SearchRow>, Counted), ApiError> {
    use Position as P;
    if f.fuzzy {
        store::widen_typos(tx).await?;
    }
    if with_facets && sort == Sort::Relevance {
        let after = match position {
            None => None,
            Some(P::Relevance { r, id, .. }) => Some((*r, *id)),
            Some(_) => return Err(wrong_sort()),
        };
        return Ok(store::search_relevance_with_facets(tx, f, after, fetch).await?);
    }
    let rows = match (sort, position) {
        (Sort::Newest, None) => store::search_newest(tx, f, None, fetch).await?,
        (Sort::Newest, Some(P::Newest { t, id, .. })) => {
            store::search_newest(tx, f, Some((*t, *id)), fetch).await?
        }
        (Sort::Oldest, None) => store::search_oldest(tx, f, None, fetch).await?,
        (Sort::Oldest, Some(P::Oldest { t, id, .. })) => {
            store::search_oldest(tx, f, Some((*t, *id)), fetch).await?
        }
        (Sort::BudgetHigh, None) => store::search_budget_high(tx, f, None, fetch).await?,
        (Sort::BudgetHigh, Some(P::BudgetHigh { b, id, .. })) => {
            store::search_budget_high(tx, f, Some((*b, *id)), fetch).await?
        }
        (Sort::BudgetLow, None) => store::search_budget_low(tx, f, None, fetch).await?,
        (Sort::BudgetLow, Some(P::BudgetLow { b, id, .. })) => {
            store::search_budget_low(tx, f, Some((*b, *id)), fetch).await?
        }
        (Sort::Relevance, None) => store::search_relevance(tx, f, None, fetch).await?,
        (Sort::Relevance, Some(P::Relevance { r, id, .. })) => {
            store::search_relevance(tx, f, Some((*r, *id)), fetch).await?
        }
        _ => return Err(wrong_sort()),
    };
    Ok((rows, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(statuses: &[&str], owner_id: Option<Uuid>) -> Filters {
        Filters {
            statuses: Some(statuses.iter().map(|s| (*s).to_owned()).collect()),
            owner_id,
            ..Filters::default()
        }
    }

    #[test]
    fn anonymous_searches_for_hidden_statuses_need_no_query() {
        let mut filters = asking(&["draft", "archived"], None);
        assert!(!narrow_to_visible(&mut filters, Searcher::Anonymous));
    }

    #[test]
    fn anonymous_searches_keep_only_the_public_statuses() {
        let mut filters = asking(&["draft", "open"], None);
        assert!(narrow_to_visible(&mut filters, Searcher::Anonymous));
        assert_eq!(filters.statuses, Some(vec!["open".to_owned()]));
    }

    #[test]
    fn a_users_search_for_hidden_statuses_is_a_search_of_their_own_projects() {
        let me = Uuid::new_v4();
        let mut filters = asking(&["draft", "cancelled"], None);
        assert!(narrow_to_visible(&mut filters, Searcher::User(me)));
        assert_eq!(filters.owner_id, Some(me));
        assert_eq!(filters.statuses.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn a_users_search_for_someone_elses_hidden_projects_needs_no_query() {
        let mut filters = asking(&["draft"], Some(Uuid::new_v4()));
        assert!(!narrow_to_visible(
            &mut filters,
            Searcher::User(Uuid::new_v4())
        ));
    }

    #[test]
    fn a_users_mixed_search_keeps_every_owner() {
        let me = Uuid::new_v4();
        let mut filters = asking(&["draft", "open"], None);
        assert!(narrow_to_visible(&mut filters, Searcher::User(me)));
        assert_eq!(filters.owner_id, None);
        assert_eq!(filters.statuses.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn moderators_search_every_status_of_everyone() {
        let mut filters = asking(&["draft", "archived"], None);
        assert!(narrow_to_visible(&mut filters, Searcher::Moderator));
        assert_eq!(filters.owner_id, None);
        assert_eq!(filters.statuses.as_ref().map(Vec::len), Some(2));
    }
}
