//! The privacy policy (public), its publishing (`legal.manage`), and the
//! caller's consents.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::store::{self, Consent, Policy};
use crate::{
    auth::{AuthUser, Holding, permission},
    db::Actor,
    http::{
        ApiError, AppJson, ClientInfo, ErrorCode, FieldError,
        openapi::{Conflict, Forbidden, NotFound, Unauthorized, Validation},
    },
    projects::markdown,
    state::AppState,
};

/// The longest policy text accepted.
const MAX_CONTENT: usize = 100_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(current_policy))
        .routes(routes!(publish_policy))
        .routes(routes!(accept, list_consents))
}

/// The privacy policy in force.
#[utoipa::path(get, path = "/legal/privacy-policy", tag = "privacy",
    responses((status = 200, body = Policy), NotFound))]
pub async fn current_policy(State(state): State<AppState>) -> Result<Json<Policy>, ApiError> {
    let mut tx = state.db.read(&Actor::Anonymous).await?;
    let policy = store::current(&mut tx)
        .await?
        .ok_or_else(|| ApiError::not_found().with_detail("No privacy policy is published yet."))?;
    Ok(Json(policy))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPolicy {
    /// A new version's name, e.g. `2026-12-07`: letters, digits, `.`, `_`,
    /// `-`, at most 32.
    pub version: String,
    /// Markdown, sanitised like project descriptions.
    pub content: String,
}

/// Publish a new version: it is in force at once, and signed-in users must
/// accept it before they change anything else.
#[utoipa::path(post, path = "/admin/legal/privacy-policy", tag = "privacy",
    request_body = NewPolicy, security(("bearer" = ["legal.manage"])),
    responses((status = 201, body = Policy), Unauthorized, Forbidden, Conflict, Validation))]
pub async fn publish_policy(
    State(state): State<AppState>,
    caller: Holding<permission::LegalManage>,
    AppJson(body): AppJson<NewPolicy>,
) -> Result<(StatusCode, Json<Policy>), ApiError> {
    let mut errors = Vec::new();
    let version = body.version.trim();
    let valid_version = !version.is_empty()
        && version.len() <= 32
        && version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid_version {
        errors.push(FieldError::new(
            "version",
            "invalid",
            "Letters, digits, `.`, `_` and `-`, at most 32.",
        ));
    }
    if body.content.trim().is_empty() || body.content.len() > MAX_CONTENT {
        errors.push(FieldError::new(
            "content",
            "length",
            "Between 1 and 100000 bytes.",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let rendered = markdown::render(&body.content);
    let mut tx = state.db.begin(&caller.actor()).await?;
    let policy = store::publish(
        &mut tx,
        version,
        &rendered.source,
        &rendered.html,
        caller.id,
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(ErrorCode::Conflict).with_detail("That version is published already.")
    })?;
    tx.commit().await?;
    state.policies.forget().await;
    Ok((StatusCode::CREATED, Json(policy)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    pub policy_version: String,
}

/// Accept a published version of the privacy policy (recorded with the time
/// and the client address).
#[utoipa::path(post, path = "/me/consents", tag = "privacy", request_body = ConsentRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Consent), Unauthorized, Validation))]
pub async fn accept(
    State(state): State<AppState>,
    caller: AuthUser,
    client: ClientInfo,
    AppJson(body): AppJson<ConsentRequest>,
) -> Result<(StatusCode, Json<Consent>), ApiError> {
    let unknown = || {
        ApiError::validation(vec![FieldError::new(
            "policy_version",
            "unknown",
            "No privacy policy of that version was published.",
        )])
    };
    if body.policy_version.len() > 32 {
        return Err(unknown());
    }
    let mut tx = state.db.begin(&caller.actor()).await?;
    let consent = store::accept(
        &mut tx,
        caller.id,
        &body.policy_version,
        client.ip.map(|ip| ip.to_string()),
        client.user_agent.as_deref(),
    )
    .await?
    .ok_or_else(unknown)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(consent)))
}

/// The caller's consents, newest first.
#[utoipa::path(get, path = "/me/consents", tag = "privacy", security(("bearer" = [])),
    responses((status = 200, body = Vec<Consent>), Unauthorized))]
pub async fn list_consents(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<Consent>>, ApiError> {
    let mut tx = state.db.read(&caller.actor()).await?;
    Ok(Json(store::consents(&mut tx, caller.id).await?))
}
