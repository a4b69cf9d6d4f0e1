//! HTTP routes of the inbox and the notification preferences.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    model::{MessageEmails, Notification, Preferences},
    store,
};
use crate::{
    auth::AuthUser,
    http::{
        ApiError, AppJson, AppQuery, FieldError,
        openapi::Validation,
        pagination::{self, Page},
    },
    query_cache,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    let preferences = OpenApiRouter::new()
        .routes(routes!(get_preferences, put_preferences))
        // Preferences are part of the account (`/v1/me/…`), and every write
        // to an account retires cached searches, as profile writes must.
        .layer(axum::middleware::from_fn(query_cache::drop_after_writes));
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(mark_read))
        .merge(preferences)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationParams {
    /// `true`: only unread ones.
    pub unread: Option<bool>,
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A page of notifications, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    pub items: Vec<Notification>,
    pub next_cursor: Option<String>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications",
    params(NotificationParams), security(("bearer" = [])),
    responses(
        (status = 200, body = NotificationPage),
        Validation,
    ))]
pub async fn list_notifications(
    State(state): State<AppState>,
    caller: AuthUser,
    AppQuery(params): AppQuery<NotificationParams>,
) -> Result<Json<NotificationPage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    // Ids are time-ordered (v7): the id alone is the keyset.
    let after: Option<Uuid> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    let mut tx = state.db.begin(&caller.actor()).await?;
    let rows = store::page(
        &mut tx,
        caller.id,
        params.unread.unwrap_or(false),
        after,
        limit + 1,
    )
    .await?;
    tx.commit().await?;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| last.id)?;
    Ok(Json(NotificationPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Which notifications to mark read: some, or all.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// Up to 500 ids; ids that are not the caller's are ignored.
    pub ids: Option<Vec<Uuid>>,
    /// `true` marks every notification read.
    pub all: Option<bool>,
}

/// Mark notifications read.
#[utoipa::path(post, path = "/notifications/read", tag = "notifications",
    request_body = MarkRead, security(("bearer" = [])),
    responses(
        (status = 204, description = "Marked"),
        Validation,
    ))]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: AuthUser,
    AppJson(request): AppJson<MarkRead>,
) -> Result<StatusCode, ApiError> {
    let (ids, all) = match (request.ids, request.all) {
        (Some(ids), None | Some(false)) if ids.len() <= 500 => (Some(ids), false),
        (Some(_), None | Some(false)) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "ids",
                "too_long",
                "At most 500 ids.",
            )]));
        }
        (None, Some(true)) => (None, true),
        _ => {
            return Err(ApiError::validation(vec![FieldError::new(
                "body",
                "invalid",
                "Send either `ids` or `\"all\": true`.",
            )]));
        }
    };
    let mut tx = state.db.begin(&caller.actor()).await?;
    store::mark_read(&mut tx, caller.id, all, &ids.unwrap_or_default()).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's notification preferences (defaults until they are set).
#[utoipa::path(get, path = "/me/notification-preferences", tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Preferences),
    ))]
pub async fn get_preferences(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Preferences>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let stored = store::preferences(&mut tx, caller.id).await?;
    tx.commit().await?;
    Ok(Json(stored.unwrap_or_default()))
}

/// Replace the caller's notification preferences.
#[utoipa::path(put, path = "/me/notification-preferences", tag = "notifications",
    request_body = Preferences, security(("bearer" = [])),
    responses(
        (status = 200, body = Preferences),
        Validation,
    ))]
pub async fn put_preferences(
    State(state): State<AppState>,
    caller: AuthUser,
    AppJson(preferences): AppJson<Preferences>,
) -> Result<Json<Preferences>, ApiError> {
    let mut tx = state.db.begin(&caller.actor()).await?;
    let saved = store::save_preferences(&mut tx, caller.id, &preferences).await?;
    // Turning emails on again is the owner's own choice: it outweighs an
    // earlier one-click unsubscribe (bounces and complaints stay).
    if saved.messages != MessageEmails::Never
        || saved.applications
        || saved.billing
        || saved.product_news
    {
        crate::email::store::lift_own_unsubscribe(&mut tx, caller.id).await?;
    }
    tx.commit().await?;
    Ok(Json(saved))
}
