//! Two-factor sign-in: enrolment and its verification, turning it off, fresh
//! recovery codes, and the challenge that completes a sign-in or raises a
//! session for a step-up.
//!
//! Every code check counts against the account's limit (5 a minute), and a
//! challenge's against the challenge's own; a wrong code is audited.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{SignInAnswer, SignedIn, limit, pair, per_account, start_session, token_response};
use crate::{
    audit::{self, Action},
    auth::{
        StepUp,
        mfa::{
            self, ATTEMPTS_PER_MINUTE,
            model::{
                Enrolment, Factor, FactorRequest, TotpSecret, new_recovery_codes,
                recovery_code_hash,
            },
            store,
        },
        store as auth_store,
    },
    db::Actor,
    email::Template,
    http::{
        ApiError, AppJson, ClientInfo, ErrorCode, FieldError,
        error::ProblemBody,
        openapi::{InvalidToken, RateLimited, StepUpRequired, WrongCode},
    },
    kv::Rate,
    state::AppState,
};

/// A body with the current code of the authenticator app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// 6 digits.
    pub code: String,
}

impl CodeRequest {
    fn code(&self) -> Result<&str, ApiError> {
        if self.code.len() > 16 {
            return Err(ApiError::validation(vec![FieldError::new(
                "code",
                "invalid",
                "A code has 6 digits.",
            )]));
        }
        Ok(&self.code)
    }
}

/// The second step of a sign-in (or of a step-up).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// From a sign-in's `{"mfa_required": true, "mfa_token": …}`, or from a
    /// step-up's `mfa_required` problem.
    pub mfa_token: String,
    /// The current 6-digit code of the authenticator app.
    pub code: Option<String>,
    /// One of the recovery codes, instead of `code`.
    pub recovery_code: Option<String>,
    /// Put the refresh token in an HttpOnly cookie instead of the body.
    #[serde(default)]
    pub refresh_cookie: bool,
}

/// A fresh set of recovery codes: shown once, never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// 10 single-use codes, each good once in place of a code.
    pub recovery_codes: Vec<String>,
}

fn attempts() -> Rate {
    Rate::per_minute(ATTEMPTS_PER_MINUTE)
}

/// Counts a code check against the account's limit: `mfa_account` for
/// sign-in challenges, `mfa_change_account` for the signed-in changes.
async fn limit_account(state: &AppState, action: &str, user: Uuid) -> Result<(), ApiError> {
    limit(state, action, "account", &user.to_string(), attempts()).await
}

/// Records a wrong second factor and answers 401 `invalid_credentials`.
async fn wrong_factor(
    mut tx: Transaction<'static, Postgres>,
    user: Uuid,
    client: &ClientInfo,
    details: serde_json::Value,
) -> ApiError {
    let recorded = async {
        audit::record(
            &mut tx,
            Some(user),
            Action::MfaFailed,
            Some(user),
            client,
            details,
        )
        .await?;
        tx.commit().await
    }
    .await;
    match recorded {
        Ok(()) => ApiError::new(ErrorCode::InvalidCredentials)
            .with_detail("The code is wrong, or was used already."),
        Err(err) => err.into(),
    }
}

/// A JSON answer that carries secrets: never cached.
fn secret_response<T: Serialize>(body: T) -> Response {
    let mut response = (StatusCode::OK, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn nothing_to_verify() -> ApiError {
    ApiError::new(ErrorCode::Conflict)
        .with_detail("No enrolment awaits a code: start one with POST /v1/auth/mfa/totp/enroll.")
}

fn not_on() -> ApiError {
    ApiError::new(ErrorCode::Conflict).with_detail("Two-factor sign-in is not on.")
}

/// Stores a new set of recovery codes in place of the old; the plain codes.
async fn fresh_recovery_codes(
    tx: &mut sqlx::PgConnection,
    user: Uuid,
) -> Result<Vec<String>, ApiError> {
    let codes = new_recovery_codes();
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| recovery_code_hash(c)).collect();
    store::replace_recovery_codes(tx, user, &hashes).await?;
    Ok(codes)
}

/// Start setting up an authenticator app: a new secret, its `otpauth://` URL
/// and that URL as a QR code (SVG). Nothing changes until a code from the
/// app is sent to `/auth/mfa/totp/verify`; a later enrolment replaces an
/// unverified one.
#[utoipa::path(post, path = "/auth/mfa/totp/enroll", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = Enrolment),
        StepUpRequired,
    ))]
pub async fn enroll(State(state): State<AppState>, user: StepUp) -> Result<Response, ApiError> {
    limit(
        &state,
        "mfa_enroll",
        "account",
        &user.id.to_string(),
        per_account(&state),
    )
    .await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    store::lock_user(&mut tx, user.id).await?;
    let account = auth_store::credentials_by_id(&mut tx, user.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized))?;
    let secret = TotpSecret::generate();
    let id = Uuid::now_v7();
    let sealed = mfa::seal_secret(&state, id, &secret);
    store::insert_pending(&mut tx, user.id, id, &sealed).await?;
    let enrolment = secret.enrolment(&account.email)?;
    tx.commit().await?;
    Ok(secret_response(enrolment))
}

/// Confirm the enrolment with a code from the app: two-factor sign-in is on
/// (in place of an earlier factor, if there was one), this session counts as
/// having proven it, and the answer holds the 10 recovery codes, shown once.
#[utoipa::path(post, path = "/auth/mfa/totp/verify", tag = "auth", request_body = CodeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = RecoveryCodes),
        WrongCode,
        StepUpRequired,
        (status = 409, description = "No enrolment awaits a code (`conflict`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    user: StepUp,
    client: ClientInfo,
    AppJson(body): AppJson<CodeRequest>,
) -> Result<Response, ApiError> {
    let code = body.code()?;
    limit_account(&state, "mfa_change", user.id).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    store::lock_user(&mut tx, user.id).await?;
    let pending = store::factor(&mut tx, user.id, false)
        .await?
        .ok_or_else(nothing_to_verify)?;
    let Some(step) = mfa::matching_step(&state, &pending, code)? else {
        return Err(wrong_factor(tx, user.id, &client, json!({"during": "enrolment"})).await);
    };
    let replaced = store::is_enabled(&mut tx, user.id).await?;
    store::activate(&mut tx, user.id, pending.id, step).await?;
    let codes = fresh_recovery_codes(&mut tx, user.id).await?;
    store::raise_session(&mut tx, user.id, user.session_id).await?;
    audit::record(
        &mut tx,
        Some(user.id),
        Action::MfaEnabled,
        Some(user.id),
        &client,
        json!({"replaced": replaced}),
    )
    .await?;
    mfa::tell(&state, &mut tx, user.id, Template::MfaEnabled, json!({})).await?;
    tx.commit().await?;
    Ok(secret_response(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Turn two-factor sign-in off, with a current code or a recovery code; the
/// recovery codes are void.
#[utoipa::path(delete, path = "/auth/mfa/totp", tag = "auth", request_body = FactorRequest,
    security(("bearer" = [])),
    responses(
        (status = 204),
        WrongCode,
        StepUpRequired,
        (status = 409, description = "Two-factor sign-in is not on (`conflict`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    user: StepUp,
    client: ClientInfo,
    AppJson(body): AppJson<FactorRequest>,
) -> Result<StatusCode, ApiError> {
    let factor = body.factor()?;
    limit_account(&state, "mfa_change", user.id).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    store::lock_user(&mut tx, user.id).await?;
    if !store::is_enabled(&mut tx, user.id).await? {
        return Err(not_on());
    }
    if !mfa::check_factor(&state, &mut tx, user.id, &factor, &client).await? {
        let details = json!({"during": "disable", "factor": factor.kind()});
        return Err(wrong_factor(tx, user.id, &client, details).await);
    }
    store::disable(&mut tx, user.id).await?;
    audit::record(
        &mut tx,
        Some(user.id),
        Action::MfaDisabled,
        Some(user.id),
        &client,
        json!({"factor": factor.kind()}),
    )
    .await?;
    mfa::tell(&state, &mut tx, user.id, Template::MfaDisabled, json!({})).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replace the recovery codes (a current code confirms it); the old ones are
/// void and the new ones are shown once.
#[utoipa::path(post, path = "/auth/mfa/recovery-codes", tag = "auth", request_body = CodeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = RecoveryCodes),
        WrongCode,
        StepUpRequired,
        (status = 409, description = "Two-factor sign-in is not on (`conflict`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    user: StepUp,
    client: ClientInfo,
    AppJson(body): AppJson<CodeRequest>,
) -> Result<Response, ApiError> {
    let code = body.code()?;
    limit_account(&state, "mfa_change", user.id).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    store::lock_user(&mut tx, user.id).await?;
    let factor = store::factor(&mut tx, user.id, true)
        .await?
        .ok_or_else(not_on)?;
    if !mfa::check_totp(&state, &mut tx, &factor, code).await? {
        return Err(wrong_factor(tx, user.id, &client, json!({"during": "recovery_codes"})).await);
    }
    let codes = fresh_recovery_codes(&mut tx, user.id).await?;
    audit::record(
        &mut tx,
        Some(user.id),
        Action::RecoveryCodesRegenerated,
        Some(user.id),
        &client,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(secret_response(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// Complete a sign-in with the second factor: a current code, or a recovery
/// code (which then is spent, audited and mailed about). Answers a token pair
/// of a new session at `aal` 2; for the `mfa_token` of a step-up, raises that
/// session to `aal` 2 and answers its next token pair (its earlier refresh
/// token is spent). The token is spent by the first right code; wrong codes
/// count against the account and the token, 5 a minute each.
#[utoipa::path(post, path = "/auth/mfa/challenge", tag = "auth", request_body = ChallengeRequest,
    responses(
        (status = 200, body = SignInAnswer, description = "A token pair (`aal` 2)"),
        InvalidToken,
        WrongCode,
        (status = 403, description = "The account is suspended (`account_suspended`)",
            body = ProblemBody, content_type = "application/problem+json"),
        RateLimited,
    ))]
pub async fn challenge(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<ChallengeRequest>,
) -> Result<Response, ApiError> {
    let factor = Factor::parse(body.code, body.recovery_code)?;
    let token = body.mfa_token.trim();
    if token.len() > 128 {
        return Err(ApiError::new(ErrorCode::InvalidToken));
    }
    let mut lookup = state.db.begin(&Actor::Service).await?;
    let challenge = store::find_challenge(&mut lookup, token)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    lookup.commit().await?;
    let user = challenge.user_id;
    limit(
        &state,
        "mfa",
        "token",
        &challenge.id.to_string(),
        attempts(),
    )
    .await?;
    limit_account(&state, "mfa", user).await?;

    let mut tx = state.db.begin(&Actor::Service).await?;
    let account = auth_store::credentials_by_id(&mut tx, user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    if !mfa::check_factor(&state, &mut tx, user, &factor, &client).await? {
        let details = json!({"via": challenge.via, "factor": factor.kind()});
        return Err(wrong_factor(tx, user, &client, details).await);
    }
    // Spent with the factor, or not at all: a concurrent right code loses here.
    if !store::consume_challenge(&mut tx, challenge.id).await? {
        return Err(ApiError::new(ErrorCode::InvalidToken));
    }
    audit::record(
        &mut tx,
        Some(user),
        Action::MfaSucceeded,
        Some(user),
        &client,
        json!({"via": challenge.via, "factor": factor.kind()}),
    )
    .await?;
    let answer = match challenge.session_id {
        None => start_session(&state, &mut tx, user, &client, true, body.refresh_cookie).await?,
        Some(session) => {
            if !store::raise_session(&mut tx, user, session).await? {
                return Err(
                    ApiError::new(ErrorCode::Unauthorized).with_detail("This session has ended.")
                );
            }
            let parent = store::spend_refresh_tokens(&mut tx, session).await?;
            let refresh = auth_store::issue_refresh_token(&mut tx, session, parent).await?;
            let (pair, cookies) =
                pair(&state, &mut tx, user, session, refresh, body.refresh_cookie).await?;
            SignedIn::Tokens(token_response(pair, cookies))
        }
    };
    tx.commit().await?;
    Ok(answer.into_response())
}
