//! The privacy policy (public), its publishing (`legal.manage`), the
//! caller's consents, and the rights that take work: export and erasure.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    erasure::{self, Requester},
    export,
    store::{self, Consent, ExportRow, Policy},
};
use crate::{
    audit::{self, Action},
    auth::{AuthUser, Holding, StepUp, grants, passwords, permission, sessions},
    db::Actor,
    email::{self, Template},
    files::storage::{self, Storage},
    http::{
        ApiError, AppJson, AppPath, ClientInfo, ErrorCode, FieldError,
        openapi::{
            Conflict, Forbidden, NotFound, RateLimited, StepUpRequired, Unauthorized, Validation,
        },
    },
    jobs,
    kv::Rate,
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
        .routes(routes!(request_export))
        .routes(routes!(get_export))
        .routes(routes!(erase_me))
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

/// A data export as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    pub id: Uuid,
    /// `pending` while it is built, then `ready` (or `failed`: ask again).
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    /// When the ZIP is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    pub size_bytes: Option<i64>,
    /// A signed link to the ZIP, valid 15 minutes (the emailed one lasts
    /// until `expires_at`); only when `ready`.
    pub download_url: Option<String>,
}

/// How long the link `GET /me/exports/{id}` answers with stays valid.
const DOWNLOAD_TTL: Duration = Duration::from_secs(15 * 60);

/// Ask for a copy of everything rabt keeps about you: a job writes it as a
/// ZIP of JSON files and your files, emails you a link when it is ready,
/// and deletes it after 7 days. One export at a time: asking again while
/// one is being built answers that one.
#[utoipa::path(post, path = "/me/export", tag = "privacy", security(("bearer" = [])),
    responses((status = 202, body = Export), Unauthorized, RateLimited))]
pub async fn request_export(
    State(state): State<AppState>,
    caller: AuthUser,
    client: ClientInfo,
) -> Result<(StatusCode, Json<Export>), ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    let (row, created) = match store::insert_export(&mut tx, caller.id).await? {
        Some(row) => (row, true),
        None => (
            store::pending_export(&mut tx, caller.id)
                .await?
                .ok_or_else(|| ApiError::new(ErrorCode::Conflict))?,
            false,
        ),
    };
    if created {
        jobs::enqueue_at(
            &mut tx,
            &export::BuildExport { export_id: row.id },
            export::MAX_ATTEMPTS,
            None,
        )
        .await?;
        audit::record(
            &mut tx,
            Some(caller.id),
            Action::DataExportRequested,
            Some(caller.id),
            &client,
            json!({ "export_id": row.id }),
        )
        .await?;
    }
    tx.commit().await?;
    if created {
        export::count("requested");
    }
    Ok((StatusCode::ACCEPTED, Json(answer(row, None))))
}

/// One of your exports, with a fresh download link once it is ready.
/// Someone else's is 404.
#[utoipa::path(get, path = "/me/exports/{id}", tag = "privacy", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Export), Unauthorized, NotFound))]
pub async fn get_export(
    State(state): State<AppState>,
    State(files): State<Storage>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<Export>, ApiError> {
    let mut tx = state.db.read(&caller.actor()).await?;
    let row = store::find_export(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    drop(tx);
    let link = match (&row.object_key, row.expires_at) {
        (Some(key), Some(expires_at)) if row.status == "ready" && expires_at > Utc::now() => {
            let left = (expires_at - Utc::now()).to_std().unwrap_or_default();
            let (url, _) = files
                .download_url(
                    key,
                    "application/zip",
                    &export::disposition(row.created_at),
                    left.min(DOWNLOAD_TTL),
                )
                .await
                .map_err(storage::unavailable)?;
            Some(url.to_string())
        }
        _ => None,
    };
    Ok(Json(answer(row, link)))
}

fn answer(row: ExportRow, download_url: Option<String>) -> Export {
    Export {
        id: row.id,
        status: row.status,
        created_at: row.created_at,
        ready_at: row.ready_at,
        expires_at: row.expires_at,
        size_bytes: row.size_bytes,
        download_url,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// The account's password; an account without one (OAuth only) instead
    /// signs in with its provider within 10 minutes before asking.
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

/// When an erasure will happen.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erasure {
    /// `scheduled`: the account is deactivated now and erased then.
    pub status: &'static str,
    pub erase_after: DateTime<Utc>,
}

/// How recent a password-less account's sign-in must be to erase it.
const RECENT_SIGN_IN: Duration = Duration::from_secs(10 * 60);

/// Delete your account. It is deactivated at once and every session ends;
/// after the grace period (`RABT_ERASURE_GRACE_DAYS`, 30 days unless set;
/// 0 erases at once) your profile, files, sessions and sign-in methods are
/// erased, your messages stay as from a deleted user, invoices stay without
/// your name, and your email address is free again. Signing in during the
/// grace period cancels the deletion. With two-factor sign-in on, a recent
/// second factor is needed too.
#[utoipa::path(delete, path = "/me", tag = "privacy", request_body = EraseRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, body = Erasure),
        (status = 401, description = "A bad access token, or a wrong password \
            (`invalid_credentials`), or an OAuth-only account whose sign-in is older than \
            10 minutes (`invalid_credentials`)", body = crate::http::error::ProblemBody,
            content_type = "application/problem+json"),
        StepUpRequired,
        Conflict,
        RateLimited,
        Validation,
    ))]
pub async fn erase_me(
    State(state): State<AppState>,
    caller: StepUp,
    client: ClientInfo,
    AppJson(body): AppJson<EraseRequest>,
) -> Result<(StatusCode, Json<Erasure>), ApiError> {
    limit_attempts(&state, caller.id).await?;
    // No connection is held while Argon2 runs.
    let mut lookup = state.db.begin(&Actor::Service).await?;
    let account = store::account(&mut lookup, caller.id, caller.session_id, RECENT_SIGN_IN)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized))?;
    lookup.commit().await?;
    match (&account.password_hash, &body.password) {
        (Some(hash), Some(password)) => {
            if !passwords::verify(password, hash).await? {
                return Err(ApiError::new(ErrorCode::InvalidCredentials));
            }
        }
        (Some(_), None) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "password",
                "required",
                "Your password confirms the deletion.",
            )]));
        }
        (None, _) if account.recent_sign_in => {}
        (None, _) => {
            return Err(ApiError::new(ErrorCode::InvalidCredentials).with_detail(
                "Sign in again with your provider, then delete the account within 10 minutes.",
            ));
        }
    }

    let grace = state.settings.jobs.erasure_grace;
    let mut tx = state.db.begin(&Actor::Service).await?;
    let erase_after = erasure::request(&mut tx, caller.id, Requester::User, grace)
        .await
        .map_err(on_last_admin)?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized))?;
    audit::record(
        &mut tx,
        Some(caller.id),
        Action::ErasureRequested,
        Some(caller.id),
        &client,
        json!({ "by": "user", "erase_after": erase_after }),
    )
    .await?;
    if !grace.is_zero() {
        let login =
            crate::auth::jobs::frontend_link(&state.settings.frontend_url, "/auth/login", None);
        email::enqueue(
            &mut tx,
            &state.settings,
            caller.id,
            &account.email,
            Template::ErasureScheduled,
            json!({
                "display_name": account.display_name,
                "when": erase_after.format("%Y-%m-%d %H:%M UTC").to_string(),
                "login_link": login,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    // The deactivation revoked the sessions; every instance forgets them.
    sessions::publish_grants(&state, &[caller.id]).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(Erasure {
            status: "scheduled",
            erase_after,
        }),
    ))
}

/// Erasing the last active admin is a 409, as deactivating one is.
pub fn on_last_admin(err: sqlx::Error) -> ApiError {
    match crate::http::error::violated_constraint(&err) {
        Some(grants::LAST_ACTIVE_ADMIN) => grants::last_admin_conflict(),
        _ => err.into(),
    }
}

/// Password guesses through `DELETE /me`: as many per account as sign-ins.
async fn limit_attempts(state: &AppState, user: Uuid) -> Result<(), ApiError> {
    let rate = Rate::per_minute(state.settings.rate_limits.account);
    crate::http::rate_limit::limit_action(&state.kv, "erase_account", &user.to_string(), rate).await
}
