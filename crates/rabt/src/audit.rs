//! The security audit log: an append-only table of who did what, from where.
//! Written in the same transaction as the change it records.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::http::ClientInfo;

/// Security-relevant events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Signup,
    EmailVerified,
    LoginSucceeded,
    LoginFailed,
    RefreshTokenReused,
    Logout,
    PasswordResetRequested,
    PasswordReset,
    PasswordChanged,
    SessionRevoked,
    OauthLinked,
    RolesChanged,
    UserSuspended,
    UserReinstated,
    UserDeactivated,
    MfaEnabled,
    MfaDisabled,
    MfaSucceeded,
    MfaFailed,
    RecoveryCodeUsed,
    RecoveryCodesRegenerated,
    PlanChanged,
    BillingWebhookFailed,
    EmailSuppressionLifted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::EmailVerified => "email_verified",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::Logout => "logout",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::SessionRevoked => "session_revoked",
            Self::OauthLinked => "oauth_linked",
            Self::RolesChanged => "roles_changed",
            Self::UserSuspended => "user_suspended",
            Self::UserReinstated => "user_reinstated",
            Self::UserDeactivated => "user_deactivated",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaSucceeded => "mfa_succeeded",
            Self::MfaFailed => "mfa_failed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::PlanChanged => "plan_changed",
            Self::BillingWebhookFailed => "billing_webhook_failed",
            Self::EmailSuppressionLifted => "email_suppression_lifted",
        }
    }
}

/// Appends an entry; the transaction must act as the service role.
pub async fn record(
    conn: &mut PgConnection,
    actor: Option<Uuid>,
    action: Action,
    subject: Option<Uuid>,
    client: &ClientInfo,
    details: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into audit_log (actor_id, action, subject_id, ip, user_agent, details) \
         values ($1, $2, $3, $4::text::inet, $5, $6)",
        actor,
        action.as_str(),
        subject,
        client.ip.map(|ip| ip.to_string()),
        client.user_agent.as_deref(),
        details,
    )
    .execute(conn)
    .await
    .map(|_| ())
}
