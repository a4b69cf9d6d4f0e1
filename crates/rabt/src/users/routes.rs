//! HTTP routes for users: the caller's account and profile, public profiles,
//! and moderation (API.md §4).

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    model::{Moderation, ProfileChange, PublicProfile, apply},
    store::{self, SearchFilters},
};
use crate::{
    account::{Me, load_me},
    audit::{self, Action},
    auth::{AuthUser, Holding, MaybeAuthUser, grants, permission, sessions},
    db::Actor,
    files::{
        self,
        model::{FileStatus, FileType, Purpose, content_disposition},
    },
    http::{
        ApiError, AppJson, AppPath, AppQuery, ClientInfo, ErrorCode, FieldError,
        error::{ProblemBody, violated_constraint},
        openapi::{NotFound, Validation},
        pagination::{self, Key, Page},
    },
    privacy::erasure::{self, Requester},
    query_cache,
    search::{CommaList, Words, too_long},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me))
        .routes(routes!(get_user, moderate_user, delete_user))
        .routes(routes!(get_avatar))
        .routes(routes!(search_users))
        // Writes here change what cached searches answer.
        .layer(axum::middleware::from_fn(query_cache::drop_after_writes))
}

/// How the users table's constraints read to a client (the handlers check
/// first; the database has the last word).
fn on_constraint(err: sqlx::Error) -> ApiError {
    match violated_constraint(&err) {
        Some("users_display_name_length") => ApiError::validation(vec![FieldError::new(
            "display_name",
            "invalid",
            "1 to 80 characters.",
        )]),
        Some(grants::LAST_ACTIVE_ADMIN) => grants::last_admin_conflict(),
        _ => err.into(),
    }
}

/// The caller's account.
#[utoipa::path(get, path = "/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Me),
    ))]
pub async fn get_me(State(state): State<AppState>, user: AuthUser) -> Result<Json<Me>, ApiError> {
    let mut tx = state.db.read(&user.actor()).await?;
    let me = load_me(
        &mut tx,
        &state.settings.public_url,
        user.id,
        user.roles.clone(),
    )
    .await?;
    Ok(Json(me))
}

/// Change the caller's profile.
#[utoipa::path(patch, path = "/me", tag = "users", request_body = ProfileChange,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Me),
        Validation,
    ))]
pub async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    AppJson(change): AppJson<ProfileChange>,
) -> Result<Json<Me>, ApiError> {
    let mut tx = state.db.begin(&user.actor()).await?;
    let row = store::find_profile(&mut tx, user.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let avatar = change.avatar_file_id;
    let row = apply(change, row)?;
    if let Some(Some(file)) = avatar {
        files::attach_own_ready(&mut tx, user.id, &[file], Purpose::Avatar, "avatar_file_id")
            .await?;
    }
    store::save_profile(&mut tx, &row)
        .await
        .map_err(on_constraint)?;
    let me = load_me(
        &mut tx,
        &state.settings.public_url,
        user.id,
        user.roles.clone(),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(me))
}

/// A profile. Private profiles are 404 to everyone but their owner and holders
/// of `users.read_private`, who also see the email.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = Uuid, Path, description = "User id")), security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = PublicProfile),
        (status = 404, description = "No such user, or not visible (`not_found`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<PublicProfile>, ApiError> {
    let mut tx = state.db.read(&caller.actor()).await?;
    let row = store::find_profile(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let sees_email = caller
        .0
        .as_ref()
        .is_some_and(|u| u.id == id || u.can::<permission::UsersReadPrivate>());
    let email = if sees_email {
        store::find_email(&mut tx, id).await?
    } else {
        None
    };
    Ok(Json(PublicProfile::new(
        row,
        email,
        &state.settings.public_url,
    )))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AvatarParams {
    /// The avatar's file id, as `avatar_url` carries it: a new avatar is a
    /// new address, so caches never show an old one.
    pub v: Option<Uuid>,
}

/// A user's avatar: a redirect to a short-lived signed download URL, for
/// whoever may see the profile (everyone for a public one; the user and
/// holders of `users.read_private` for a private one). 404 otherwise, or
/// without an avatar.
#[utoipa::path(get, path = "/users/{id}/avatar", tag = "users",
    params(("id" = Uuid, Path, description = "User id"), AvatarParams),
    security((), ("bearer" = [])),
    responses(
        (status = 302, description = "To the image, for the `Cache-Control` max-age",
            headers(("Location" = String, description = "A signed download URL"))),
        NotFound,
    ))]
pub async fn get_avatar(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    AppPath(id): AppPath<Uuid>,
    AppQuery(_params): AppQuery<AvatarParams>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let file_id = store::find_profile(&mut tx, id)
        .await?
        .and_then(|p| p.avatar_file_id)
        .ok_or_else(ApiError::not_found)?;
    let file = files::store::find(&mut tx, file_id)
        .await?
        .filter(|f| f.status == FileStatus::Ready)
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    let file_type = FileType::parse(&file.content_type).ok_or_else(ApiError::not_found)?;
    let ttl = state.settings.files.download_url_ttl;
    let (url, _) = state
        .storage
        .download_url(
            &file.object_key,
            file_type.stored_content_type(),
            &content_disposition(file_type, &file.filename),
            ttl,
        )
        .await
        .map_err(files::storage::unavailable)?;
    let location = HeaderValue::from_str(url.as_str()).map_err(ApiError::internal)?;
    // Kept by the browser for half the signed URL's life, never by shared
    // caches: a private profile's avatar must not outlive its visibility there.
    let cache = HeaderValue::from_str(&format!("private, max-age={}", ttl.as_secs() / 2))
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, cache),
            // The web app, on another origin, shows it in an <img>.
            (
                header::HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("cross-origin"),
            ),
        ],
    )
        .into_response())
}

/// Edit a user's profile, or suspend or reinstate them (needs `users.manage`).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = Moderation,
    params(("id" = Uuid, Path)), security(("bearer" = ["users.manage"])),
    responses(
        (status = 200, body = PublicProfile),
        NotFound,
        (status = 409, description = "Suspending the last active admin (`conflict`)",
            body = ProblemBody, content_type = "application/problem+json"),
        Validation,
    ))]
pub async fn moderate_user(
    State(state): State<AppState>,
    caller: Holding<permission::UsersManage>,
    client: ClientInfo,
    AppPath(id): AppPath<Uuid>,
    AppJson(moderation): AppJson<Moderation>,
) -> Result<Json<PublicProfile>, ApiError> {
    let (change, suspended) = moderation.split();
    if matches!(change.avatar_file_id, Some(Some(_))) {
        // An avatar is the user's own upload; a moderator may only remove it.
        return Err(ApiError::validation(vec![FieldError::new(
            "avatar_file_id",
            "invalid_file",
            "A moderator can remove an avatar (null), not set one.",
        )]));
    }
    let mut tx = state.db.begin(&caller.actor()).await?;
    let row = store::find_profile(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let row = apply(change, row)?;
    // Nothing is written, audited or published for a row the database did
    // not let the caller change.
    if !store::save_profile(&mut tx, &row)
        .await
        .map_err(on_constraint)?
    {
        return Err(ApiError::not_found());
    }
    if let Some(suspended) = suspended {
        if !store::set_suspended(&mut tx, id, suspended)
            .await
            .map_err(on_constraint)?
        {
            return Err(ApiError::not_found());
        }
        // Recorded with the change: both commit or neither does.
        audit::record(
            &mut tx,
            Some(caller.id),
            if suspended {
                Action::UserSuspended
            } else {
                Action::UserReinstated
            },
            Some(id),
            &client,
            json!({}),
        )
        .await?;
    }
    let email = store::find_email(&mut tx, id).await?;
    tx.commit().await?;
    // The database revoked the sessions of a suspension with it; the user's
    // cached grants end at their next request.
    if suspended.is_some() {
        sessions::publish_grants(&state, &[id]).await;
    }
    let email = email.filter(|_| caller.can::<permission::UsersReadPrivate>());
    Ok(Json(PublicProfile::new(
        row,
        email,
        &state.settings.public_url,
    )))
}

/// Erase a user (needs `users.delete`), as `DELETE /me` does: deactivated
/// now, every session ended, erased after the grace period
/// (`RABT_ERASURE_GRACE_DAYS`). Signing in does not cancel an admin's
/// erasure.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    security(("bearer" = ["users.delete"])),
    responses(
        (status = 202, description = "Deactivated; erased after the grace period"),
        NotFound,
        (status = 409, description = "Deactivating the last active admin (`conflict`)",
            body = ProblemBody, content_type = "application/problem+json"),
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    caller: Holding<permission::UsersDelete>,
    client: ClientInfo,
    AppPath(id): AppPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    let erase_after = erasure::request(
        &mut tx,
        id,
        Requester::Admin(caller.id),
        state.settings.jobs.erasure_grace,
    )
    .await
    .map_err(on_constraint)?
    .ok_or_else(ApiError::not_found)?;
    audit::record(
        &mut tx,
        Some(caller.id),
        Action::ErasureRequested,
        Some(id),
        &client,
        json!({ "by": "admin", "erase_after": erase_after }),
    )
    .await?;
    tx.commit().await?;
    // Its sessions ended with the deactivation (migrations/0015).
    sessions::publish_grants(&state, &[id]).await;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words; every one must match the name, headline, skills or bio (prefixes
    /// count), or the name must be close to them (typos).
    pub q: Option<String>,
    /// Comma-separated; profiles with any of them.
    #[param(value_type = Option<String>)]
    pub skills: Option<CommaList<String, 30>>,
    pub location: Option<String>,
    /// Holders of this role (signed-in callers; only memberships they may see).
    pub role: Option<String>,
    /// `relevance` (needs `q`; the default with `q`), `newest` (the default
    /// without), or `name`.
    #[param(inline)]
    pub sort: Option<Sort>,
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A page of profiles.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfilePage {
    pub items: Vec<PublicProfile>,
    pub next_cursor: Option<String>,
}

/// The order of a profile search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProfileSort, rename_all = "snake_case")]
pub enum Sort {
    Relevance,
    Newest,
    Name,
}

/// Where a page of a profile search ended: the shared keyset position.
type Position = pagination::Position<Sort>;

/// Search public profiles.
#[utoipa::path(get, path = "/users", tag = "users", params(SearchParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = ProfilePage),
        (status = 401, description = "`role` given without signing in, or a bad access token \
            (`unauthorized`, `token_expired`)", body = ProblemBody,
            content_type = "application/problem+json"),
        Validation,
    ))]
pub async fn search_users(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Json<ProfilePage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let errors: Vec<FieldError> = [
        too_long("q", params.q.as_deref(), 200),
        too_long("location", params.location.as_deref(), 100),
        too_long("role", params.role.as_deref(), 40),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if params.role.is_some() && caller.0.is_none() {
        return Err(ApiError::new(ErrorCode::Unauthorized)
            .with_detail("Filtering by role needs a signed-in caller."));
    }
    let words = params.q.as_deref().and_then(Words::parse);
    let filters = SearchFilters {
        tsquery: words.as_ref().map(Words::all),
        text: words.as_ref().map(Words::text),
        skills: params.skills.clone().map(CommaList::into_vec),
        location: params.location.clone().filter(|l| !l.trim().is_empty()),
        role: params.role.clone(),
        fuzzy: false,
    };
    let sort = match params.sort {
        None if words.is_some() => Sort::Relevance,
        None => Sort::Newest,
        Some(Sort::Relevance) if words.is_none() => {
            return Err(ApiError::validation(vec![FieldError::new(
                "sort",
                "invalid",
                "`relevance` needs `q`.",
            )]));
        }
        Some(sort) => sort,
    };
    let position: Option<Position> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    // One more than asked, to know whether a next page exists.
    let fetch = limit + 1;
    let mut tx = state.db.read(&caller.actor()).await?;
    let mut filters = filters;
    filters.fuzzy = position.as_ref().is_some_and(|p| p.fuzzy);
    let mut rows = run_search(&mut tx, sort, &filters, position.as_ref(), fetch).await?;
    // The words found nobody: widen them to names that are close (typos).
    if rows.is_empty() && position.is_none() && filters.tsquery.is_some() {
        filters.fuzzy = true;
        rows = run_search(&mut tx, sort, &filters, None, fetch).await?;
    }
    let fuzzy = filters.fuzzy;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| Position {
        order: sort,
        key: match sort {
            Sort::Name => Key::Text(last.name_key.clone()),
            Sort::Relevance => Key::Float(last.rank),
            Sort::Newest => Key::Time(last.profile.created_at),
        },
        id: last.profile.id,
        fuzzy,
    })?
    .map(|r| PublicProfile::new(r.profile, None, &state.settings.public_url));
    Ok(Json(ProfilePage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// One page in `sort` order after `position`; a cursor of another sort is 422.
async fn run_search(
    tx: &mut sqlx::PgConnection,
    sort: Sort,
    filters: &SearchFilters,
    position: Option<&Position>,
    fetch: i64,
) -> Result<Vec<store::SearchRow>, ApiError> {
    use store::Order;
    let after = position.map(|p| p.within(&sort)).transpose()?;
    let order = match (sort, after) {
        (Sort::Newest, None) => Order::Newest(None),
        (Sort::Newest, Some((Key::Time(t), id))) => Order::Newest(Some((*t, id))),
        (Sort::Name, None) => Order::Name(None),
        (Sort::Name, Some((Key::Text(n), id))) => Order::Name(Some((n.clone(), id))),
        (Sort::Relevance, None) => Order::Relevance(None),
        (Sort::Relevance, Some((Key::Float(r), id))) => Order::Relevance(Some((*r, id))),
        _ => return Err(pagination::wrong_order()),
    };
    Ok(store::search(tx, filters, order, fetch).await?)
}
