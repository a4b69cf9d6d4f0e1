//! The audit log (`users.read_private`), newest first, filtered by actor,
//! action and time, keyset-paged by its chain position.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::{Holding, permission},
    http::{
        ApiError, AppQuery, FieldError,
        openapi::{Forbidden, Unauthorized, Validation},
        pagination::{self, Page},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_log))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    pub actor_id: Option<Uuid>,
    /// An action such as `login_failed` or `roles_changed`.
    pub action: Option<String>,
    /// RFC 3339; entries at or after.
    pub from: Option<DateTime<Utc>>,
    /// RFC 3339; entries before.
    pub to: Option<DateTime<Utc>>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// One security-relevant event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    /// Its place in the hash chain.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// Null for an anonymous caller, or once the actor was erased.
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub subject_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

async fn entries(
    conn: &mut PgConnection,
    params: &AuditParams,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as!(
        AuditEntry,
        r#"select id, seq, at, actor_id, action, subject_id, host(ip) as ip, user_agent, details
             from audit_log
            where ($1::uuid is null or actor_id = $1)
              and ($2::text is null or action = $2)
              and ($3::timestamptz is null or at >= $3)
              and ($4::timestamptz is null or at < $4)
              and ($5::bigint is null or seq < $5)
            order by seq desc
            limit $6"#,
        params.actor_id,
        params.action,
        params.from,
        params.to,
        before,
        limit
    )
    .fetch_all(conn)
    .await
}

/// Security-relevant events: sign-ins, role changes, suspensions, exports,
/// erasures…, newest first.
#[utoipa::path(get, path = "/admin/audit-log", tag = "admin",
    params(AuditParams), security(("bearer" = ["users.read_private"])),
    responses((status = 200, body = AuditPage), Unauthorized, Forbidden, Validation))]
pub async fn list_audit_log(
    State(state): State<AppState>,
    caller: Holding<permission::UsersReadPrivate>,
    AppQuery(params): AppQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    if params.action.as_ref().is_some_and(|a| a.len() > 64) {
        return Err(ApiError::validation(vec![FieldError::new(
            "action",
            "too_long",
            "At most 64 characters.",
        )]));
    }
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from > to
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "from",
            "after_to",
            "Must not be after `to`.",
        )]));
    }
    let before: Option<i64> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    // The policy shows the log to holders of `users.read_private` only.
    let mut tx = state.db.read(&caller.actor()).await?;
    let rows = entries(&mut tx, &params, before, limit + 1).await?;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| last.seq)?;
    Ok(Json(AuditPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}
