//! Two-factor sign-in (API.md §3): TOTP factors, recovery codes, the
//! challenge that completes a sign-in, and the step-up that sensitive actions
//! demand.
//!
//! Invariants:
//! - a TOTP secret is stored only sealed (`crypto`), bound to its row; a
//!   recovery code or challenge token only as a hash;
//! - a TOTP code is accepted once: a factor remembers the step of the last
//!   code it accepted and takes only later ones (RFC 6238 §5.2);
//! - with a verified factor, no flow hands out a token pair before the
//!   second factor is proven: the first factor earns a challenge instead;
//! - a session's assurance level (`sessions.aal`) is 2 only once a second
//!   factor was proven in it, and refreshing keeps it;
//! - with two-factor sign-in on, the actions behind [`StepUp`](super::extract::StepUp)
//!   need a second factor proven in the session within [`STEP_UP_WINDOW`].

pub mod model;
pub mod store;

use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use self::model::{Factor, TotpSecret, recovery_code_hash, secret_context, unix_now};
use crate::{
    audit::{self, Action},
    auth::{AuthUser, permission, store as auth_store},
    db::Actor,
    email::{self, Template},
    http::{ApiError, ClientInfo, ErrorCode},
    state::AppState,
};

/// How long a challenge's token is good for.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);
/// How recent a second factor a step-up wants.
pub const STEP_UP_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Code checks per account, and per challenge, each minute.
pub const ATTEMPTS_PER_MINUTE: u32 = 5;

/// What proved the first factor of a sign-in that awaits its second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Password,
    EmailVerification,
    PasswordReset,
    Oauth,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
            Self::Oauth => "oauth",
        }
    }
}

/// The `via` of a step-up challenge (it raises a live session).
pub const STEP_UP: &str = "step_up";

/// Checks `factor` for `user` in `tx` and spends it when it is right: a TOTP
/// code's step, or the recovery code (which is audited and mailed to the
/// owner in the same transaction). `false` for a wrong, replayed or spent
/// factor, or when the user has no verified factor.
pub async fn check_factor(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    factor: &Factor,
    client: &ClientInfo,
) -> Result<bool, ApiError> {
    match factor {
        Factor::Totp(code) => {
            let Some(row) = store::factor(tx, user, true).await? else {
                return Ok(false);
            };
            check_totp(state, tx, &row, code).await
        }
        Factor::RecoveryCode(code) => {
            if !store::is_enabled(tx, user).await? {
                return Ok(false);
            }
            if !store::spend_recovery_code(tx, user, &recovery_code_hash(code)).await? {
                return Ok(false);
            }
            let left = store::recovery_codes_left(tx, user).await?;
            audit::record(
                tx,
                Some(user),
                Action::RecoveryCodeUsed,
                Some(user),
                client,
                json!({"recovery_codes_left": left}),
            )
            .await?;
            tell(
                state,
                tx,
                user,
                Template::RecoveryCodeUsed,
                json!({"codes_left": left}),
            )
            .await?;
            Ok(true)
        }
    }
}

/// Checks a TOTP code against a stored factor and spends its step.
pub async fn check_totp(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    factor: &store::FactorRow,
    code: &str,
) -> Result<bool, ApiError> {
    match matching_step(state, factor, code)? {
        Some(step) => Ok(store::spend_step(tx, factor.id, step).await?),
        None => Ok(false),
    }
}

/// The time step `code` is right for, if it is (nothing is spent).
pub fn matching_step(
    state: &AppState,
    factor: &store::FactorRow,
    code: &str,
) -> Result<Option<i64>, ApiError> {
    let secret = open_secret(state, factor)?;
    Ok(secret
        .check(code, unix_now())
        .and_then(|step| i64::try_from(step).ok()))
}

/// Seals a new secret for the factor row `id`.
pub fn seal_secret(state: &AppState, id: Uuid, secret: &TotpSecret) -> crate::crypto::Sealed {
    state.keyring.seal(secret.as_bytes(), &secret_context(id))
}

fn open_secret(state: &AppState, factor: &store::FactorRow) -> Result<TotpSecret, ApiError> {
    state
        .keyring
        .open(&factor.sealed, &secret_context(factor.id))
        .map(TotpSecret::from_bytes)
        .map_err(ApiError::internal)
}

/// Queues a security mail about the second factor to the account's owner.
pub async fn tell(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    user: Uuid,
    template: Template,
    vars: serde_json::Value,
) -> Result<(), ApiError> {
    let Some(account) = auth_store::credentials_by_id(tx, user).await? else {
        return Ok(());
    };
    let mut vars = vars;
    if let serde_json::Value::Object(map) = &mut vars {
        map.insert("display_name".into(), account.display_name.clone().into());
        map.insert(
            "reset_link".into(),
            crate::auth::jobs::frontend_link(
                &state.settings.frontend_url,
                "/auth/forgot-password",
                None,
            )
            .into(),
        );
    }
    email::enqueue(tx, &state.settings, user, &account.email, template, vars).await?;
    Ok(())
}

/// The step-up rule: with two-factor sign-in on, the caller's session must
/// have proven a second factor within [`STEP_UP_WINDOW`]. Otherwise 403
/// `mfa_required`, carrying the token of a challenge that raises this session.
pub async fn require_recent_second_factor(
    state: &AppState,
    caller: &AuthUser,
) -> Result<(), ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    let assurance = store::assurance(&mut tx, caller.id, caller.session_id).await?;
    let window = chrono::Duration::from_std(STEP_UP_WINDOW)
        .unwrap_or_else(|_| chrono::Duration::minutes(10));
    let recent = assurance.aal >= 2
        && assurance
            .mfa_at
            .is_some_and(|at| assurance.now - at <= window);
    if !assurance.mfa_enabled || recent {
        tx.commit().await?;
        return Ok(());
    }
    let token = store::create_challenge(
        &mut tx,
        caller.id,
        Some(caller.session_id),
        STEP_UP,
        CHALLENGE_TTL,
    )
    .await?;
    tx.commit().await?;
    Err(ApiError::new(ErrorCode::MfaRequired)
        .with_detail(
            "This action needs a second factor from the last 10 minutes: send a code with \
             `mfa_token` to POST /v1/auth/mfa/challenge, then try again with the new token.",
        )
        .with_mfa_token(token))
}

/// `RABT_MFA_REQUIRED_FOR_ADMINS`: holders of `roles.assign` or
/// `users.manage` need two-factor sign-in on to use the endpoints that need
/// a permission.
pub async fn require_enrolled_admin(state: &AppState, caller: &AuthUser) -> Result<(), ApiError> {
    if !state.settings.auth.mfa_required_for_admins
        || !(caller.can::<permission::RolesAssign>() || caller.can::<permission::UsersManage>())
    {
        return Ok(());
    }
    let mut tx = state.db.begin(&Actor::Service).await?;
    let enabled = store::is_enabled(&mut tx, caller.id).await?;
    tx.commit().await?;
    if enabled {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::MfaRequired).with_detail(
            "Your roles need two-factor sign-in: turn it on first (POST /v1/auth/mfa/totp/enroll, \
             then POST /v1/auth/mfa/totp/verify with a code).",
        ))
    }
}
