//! HTTP routes of the inbox and the notification preferences.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

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

/// Something that happened that concerns the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    /// `application.submitted`, `application.shortlisted`, `application.accepted`,
    /// `application.rejected`, `application.withdrawn`, …
    pub kind: String,
    /// Ids and names the client needs to show and link the event.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
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
    let rows = sqlx::query_as!(
        Notification,
        "select id, kind, payload, read_at, created_at from notifications \
         where user_id = $1 \
           and (not $2 or read_at is null) \
           and ($3::uuid is null or id < $3) \
         order by id desc \
         limit $4",
        caller.id,
        params.unread.unwrap_or(false),
        after,
        limit + 1,
    )
    .fetch_all(&mut *tx)
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
    sqlx::query!(
        "update notifications set read_at = now() \
         where user_id = $1 and read_at is null and ($2 or id = any($3))",
        caller.id,
        all,
        &ids.unwrap_or_default(),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// When new messages are emailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum MessageEmails {
    Never,
    Immediately,
    /// One email gathering the unread messages.
    Digest,
}

/// What the caller wants to hear about, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    pub messages: MessageEmails,
    /// Email on application events.
    pub applications: bool,
    pub billing: bool,
    pub product_news: bool,
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
    let stored = sqlx::query_as!(
        Preferences,
        r#"select messages as "messages: MessageEmails", applications, billing, product_news
           from notification_preferences where user_id = $1"#,
        caller.id,
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    // The table's defaults, for a user who never set any.
    Ok(Json(stored.unwrap_or(Preferences {
        messages: MessageEmails::Immediately,
        applications: true,
        billing: true,
        product_news: false,
    })))
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
    let saved = sqlx::query_as!(
        Preferences,
        r#"insert into notification_preferences (user_id, messages, applications, billing,
                                                product_news)
           values ($1, $2, $3, $4, $5)
           on conflict (user_id) do update set messages = excluded.messages,
               applications = excluded.applications, billing = excluded.billing,
               product_news = excluded.product_news
           returning messages as "messages: MessageEmails", applications, billing,
                     product_news"#,
        caller.id,
        preferences.messages as MessageEmails,
        preferences.applications,
        preferences.billing,
        preferences.product_news,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(saved))
}
