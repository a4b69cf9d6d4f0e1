//! Sign-up, email verification, password sign-in, reset and change.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{
    Accepted, SignInAnswer, accepted, email_key, frontend_link, limit, limit_mail_request,
    on_constraint, per_account, per_address, sign_in, validation,
};
use crate::{
    account::EmailAddress,
    audit::{self, Action},
    auth::{
        StepUp,
        mfa::Via,
        passwords,
        passwords::NewPassword,
        sessions,
        store::{self, Purpose, RevokeReason},
    },
    db::Actor,
    email::{self, Template},
    http::{
        ApiError, AppJson, ClientInfo, ErrorCode, FieldError,
        error::ProblemBody,
        openapi::{InvalidToken, RateLimited, StepUpRequired, Validation},
    },
    state::AppState,
};

const VERIFY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    pub display_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
    /// Put the refresh token in an HttpOnly cookie instead of the body.
    #[serde(default)]
    pub refresh_cookie: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    #[serde(default)]
    pub refresh_cookie: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub token: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
    #[serde(default)]
    pub refresh_cookie: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

/// Create an account; a verification email follows.
///
/// Answers 202 for any valid input, whether or not the email is registered. If
/// it is, its owner is told by email that someone tried to sign up.
#[utoipa::path(post, path = "/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 202, body = Accepted),
        Validation,
        RateLimited,
    ))]
pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<SignupRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errors = Vec::new();
    let email = EmailAddress::parse("email", &body.email)
        .map_err(|e| errors.push(e))
        .ok()
        .filter(|email| {
            let demo = crate::auth::demo::is_demo_address(email.as_str());
            if demo {
                errors.push(FieldError::new(
                    "email",
                    "reserved",
                    "This domain is reserved for demo accounts.",
                ));
            }
            !demo
        });
    let password = NewPassword::parse("password", body.password)
        .map_err(|e| errors.push(e))
        .ok();
    let display_name = body.display_name.trim().to_owned();
    if !(1..=80).contains(&display_name.chars().count()) {
        errors.push(FieldError::new(
            "display_name",
            "invalid",
            "1 to 80 characters.",
        ));
    }
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    limit_mail_request(&state, "signup", &client, &email).await?;

    // Hash first, whatever happens next: a taken email costs the same time.
    let hash = passwords::hash(password.secret()).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    match store::insert_user(&mut tx, email.as_str(), &display_name, &hash)
        .await
        .map_err(on_constraint)?
    {
        Some(user) => {
            store::record_signup_consent(&mut tx, user, &client).await?;
            let token =
                store::create_one_time_token(&mut tx, user, Purpose::VerifyEmail, VERIFY_TTL)
                    .await?;
            let link = frontend_link(&state, "/auth/verify-email", Some(&token));
            email::enqueue(
                &mut tx,
                &state.settings,
                user,
                email.as_str(),
                Template::VerifyEmail,
                json!({"display_name": display_name, "link": link}),
            )
            .await?;
            audit::record(
                &mut tx,
                Some(user),
                Action::Signup,
                Some(user),
                &client,
                json!({}),
            )
            .await?;
        }
        None => {
            if let Some(existing) = store::credentials_by_email(&mut tx, email.as_str()).await? {
                email::enqueue(
                    &mut tx,
                    &state.settings,
                    existing.id,
                    &existing.email,
                    Template::SignupAttempt,
                    json!({
                        "display_name": existing.display_name,
                        "login_link": frontend_link(&state, "/auth/login", None),
                    }),
                )
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(accepted(
        "If the address can be used, a confirmation email is on its way.",
    ))
}

/// Confirm an email address with the emailed token; signs the user in.
#[utoipa::path(post, path = "/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses(
        (status = 200, body = SignInAnswer, description = "A token pair or, with two-factor sign-in on, `{mfa_required, mfa_token}`"),
        InvalidToken,
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<TokenRequest>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    let user = store::consume_one_time_token(&mut tx, body.token.trim(), Purpose::VerifyEmail)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    let account = store::credentials_by_id(&mut tx, user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    store::mark_email_verified(&mut tx, user).await?;
    let event = (Action::EmailVerified, json!({}));
    let answer = sign_in(
        &state,
        &mut tx,
        user,
        &client,
        event,
        Via::EmailVerification,
        body.refresh_cookie,
    )
    .await?;
    tx.commit().await?;
    Ok(answer.into_response())
}

/// Send the verification email again (to unverified accounts only).
#[utoipa::path(post, path = "/auth/verify-email/resend", tag = "auth", request_body = EmailRequest,
    responses((status = 202, body = Accepted)))]
pub async fn resend_verification(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let job = |email: EmailAddress| crate::auth::jobs::SendVerification {
        email: email.into_string(),
    };
    let message = "If the address awaits confirmation, a new email is on its way.";
    mail_request(&state, "resend", &client, &body, job, message).await
}

/// A request that mails an address whatever is on file: the address is
/// checked and limited, then one job is queued that finds out, so known and
/// unknown addresses cost the same and answer alike.
async fn mail_request<J: crate::jobs::JobArgs>(
    state: &AppState,
    action: &str,
    client: &ClientInfo,
    body: &EmailRequest,
    job: impl FnOnce(EmailAddress) -> J,
    message: &'static str,
) -> Result<(StatusCode, axum::Json<Accepted>), ApiError> {
    let email = validation(EmailAddress::parse("email", &body.email))?;
    limit_mail_request(state, action, client, &email).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    crate::jobs::enqueue(&mut tx, &job(email), 5).await?;
    tx.commit().await?;
    Ok(accepted(message))
}

/// Queues the security mail that tells the account's owner their password
/// changed, with the way to take the account back if it was not them.
async fn tell_password_changed(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    account: &store::Credentials,
) -> Result<(), ApiError> {
    email::enqueue(
        tx,
        &state.settings,
        account.id,
        &account.email,
        Template::PasswordChanged,
        json!({
            "display_name": account.display_name,
            "reset_link": frontend_link(state, "/auth/forgot-password", None),
        }),
    )
    .await?;
    Ok(())
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = SignInAnswer, description = "A token pair or, with two-factor sign-in on, `{mfa_required, mfa_token}`"),
        (status = 401, description = "Wrong email or password (`invalid_credentials`)", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 403, description = "`email_not_verified` or `account_suspended`", body = ProblemBody,
            content_type = "application/problem+json"),
        RateLimited,
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_owned();
    if email.len() > 254 || body.password.expose_secret().len() > 1024 {
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    }
    limit(
        &state,
        "login",
        "address",
        &client.ip_key(),
        per_address(&state),
    )
    .await?;
    limit(
        &state,
        "login",
        "account",
        &email_key(&email),
        per_account(&state),
    )
    .await?;

    // No connection is held while Argon2 runs.
    let mut lookup = state.db.begin(&Actor::Service).await?;
    let account = store::credentials_by_email(&mut lookup, &email).await?;
    lookup.commit().await?;
    let hash = account
        .as_ref()
        .and_then(|a| a.password_hash.clone())
        .unwrap_or_else(|| passwords::DUMMY_HASH.clone());
    let matches = passwords::verify(&body.password, &hash).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    let account = match account {
        Some(account) if matches => account,
        other => {
            let actor = other.map(|a| a.id);
            audit::record(
                &mut tx,
                actor,
                Action::LoginFailed,
                actor,
                &client,
                json!({}),
            )
            .await?;
            tx.commit().await?;
            return Err(ApiError::new(ErrorCode::InvalidCredentials));
        }
    };
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    if !account.email_verified {
        return Err(ApiError::new(ErrorCode::EmailNotVerified));
    }
    if passwords::needs_rehash(&hash) {
        let rehashed = passwords::hash(&body.password).await?;
        store::set_password(&mut tx, account.id, &rehashed).await?;
    }
    let event = (Action::LoginSucceeded, json!({}));
    let answer = sign_in(
        &state,
        &mut tx,
        account.id,
        &client,
        event,
        Via::Password,
        body.refresh_cookie,
    )
    .await?;
    tx.commit().await?;
    Ok(answer.into_response())
}

/// Email a single-use password reset link (valid one hour).
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = EmailRequest,
    responses((status = 202, body = Accepted)))]
pub async fn forgot_password(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<EmailRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let job = |email: EmailAddress| crate::auth::jobs::SendPasswordReset {
        email: email.into_string(),
        ip: client.ip,
        user_agent: client.user_agent.clone(),
    };
    let message = "If the address has an account, a reset link is on its way.";
    mail_request(&state, "forgot", &client, &body, job, message).await
}

/// Set a new password with the emailed token; every other session ends.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetRequest,
    responses(
        (status = 200, body = SignInAnswer, description = "A token pair or, with two-factor sign-in on, `{mfa_required, mfa_token}`"),
        InvalidToken,
        Validation,
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<ResetRequest>,
) -> Result<Response, ApiError> {
    let password = validation(NewPassword::parse("password", body.password))?;
    let hash = passwords::hash(password.secret()).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    let user = store::consume_one_time_token(&mut tx, body.token.trim(), Purpose::ResetPassword)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    let account = store::credentials_by_id(&mut tx, user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    store::set_password(&mut tx, user, &hash).await?;
    // The link reached the inbox: the address is proven.
    store::mark_email_verified(&mut tx, user).await?;
    let ended = store::revoke_sessions(&mut tx, user, None, RevokeReason::PasswordReset).await?;
    tell_password_changed(&state, &mut tx, &account).await?;
    let event = (Action::PasswordReset, json!({}));
    let answer = sign_in(
        &state,
        &mut tx,
        user,
        &client,
        event,
        Via::PasswordReset,
        body.refresh_cookie,
    )
    .await?;
    tx.commit().await?;
    sessions::forget(&state, &ended).await;
    Ok(answer.into_response())
}

/// Change the password; every other session ends.
#[utoipa::path(post, path = "/auth/password/change", tag = "auth",
    request_body = ChangePasswordRequest, security(("bearer" = [])),
    responses(
        (status = 204),
        (status = 401, description = "A bad access token (`unauthorized`, `token_expired`) or a wrong \
            current password (`invalid_credentials`)", body = ProblemBody,
            content_type = "application/problem+json"),
        StepUpRequired,
        Validation,
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    user: StepUp,
    client: ClientInfo,
    AppJson(body): AppJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let password = validation(NewPassword::parse("new_password", body.new_password))?;
    limit(
        &state,
        "password_change",
        "account",
        &user.id.to_string(),
        per_account(&state),
    )
    .await?;
    // No connection is held while Argon2 runs (twice here).
    let mut lookup = state.db.begin(&Actor::Service).await?;
    let account = store::credentials_by_id(&mut lookup, user.id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized))?;
    lookup.commit().await?;
    let current = account
        .password_hash
        .clone()
        .unwrap_or_else(|| passwords::DUMMY_HASH.clone());
    if !passwords::verify(&body.current_password, &current).await? {
        return Err(ApiError::new(ErrorCode::InvalidCredentials));
    }
    let hash = passwords::hash(password.secret()).await?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    store::set_password(&mut tx, user.id, &hash).await?;
    let ended = store::revoke_sessions(
        &mut tx,
        user.id,
        Some(user.session_id),
        RevokeReason::PasswordChanged,
    )
    .await?;
    tell_password_changed(&state, &mut tx, &account).await?;
    audit::record(
        &mut tx,
        Some(user.id),
        Action::PasswordChanged,
        Some(user.id),
        &client,
        json!({}),
    )
    .await?;
    tx.commit().await?;
    sessions::forget(&state, &ended).await;
    Ok(StatusCode::NO_CONTENT)
}
