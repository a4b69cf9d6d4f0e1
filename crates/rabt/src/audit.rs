//! The security audit log: an append-only table of who did what, from where.
//! Written in the same transaction as the change it records, and chained:
//! each entry holds the hash of the one before it and of its own content
//! (migrations/0050), so [`verify`] finds an altered or removed entry.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    db::{Actor, Db},
    http::ClientInfo,
};

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
    JobRetried,
    ErasureRequested,
    ErasureCanceled,
    UserErased,
    DataExportRequested,
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
            Self::JobRetried => "job_retried",
            Self::ErasureRequested => "erasure_requested",
            Self::ErasureCanceled => "erasure_canceled",
            Self::UserErased => "user_erased",
            Self::DataExportRequested => "data_export_requested",
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

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry is where the chain says and hashes to what it holds.
    Intact { entries: u64 },
    /// The first entry that breaks the chain, and how.
    Broken { seq: i64, problem: String },
}

/// Entries read per round trip while verifying.
const VERIFY_BATCH: i64 = 5_000;

/// Walks the chain from its anchor (or its start), recomputing each entry's
/// hash in the database with the function that made it.
pub async fn verify(db: &Db) -> Result<Verdict, sqlx::Error> {
    let mut tx = db.read_transaction(&Actor::Service).await?;
    let anchor = sqlx::query!("select seq, hash from audit_anchor")
        .fetch_optional(&mut *tx)
        .await?;
    let (mut last_seq, mut last_hash) = match anchor {
        Some(anchor) => (anchor.seq, Some(anchor.hash)),
        None => (0, None),
    };
    let mut entries = 0_u64;
    loop {
        let rows = sqlx::query!(
            r#"select seq, prev_hash, hash,
                      audit_entry_hash(seq, at, actor_digest, action, subject_id, ip,
                                       user_agent, details, prev_hash) as "expected!",
                      (actor_id is null or actor_digest = audit_actor_digest(actor_id))
                          as "actor_ok!"
                 from audit_log where seq > $1 order by seq limit $2"#,
            last_seq,
            VERIFY_BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(Verdict::Intact { entries });
        }
        for row in rows {
            let broken = |problem: &str| Verdict::Broken {
                seq: row.seq,
                problem: problem.to_owned(),
            };
            if row.seq != last_seq + 1 {
                return Ok(Verdict::Broken {
                    seq: last_seq + 1,
                    problem: format!(
                        "missing: the chain goes from entry {last_seq} to entry {}",
                        row.seq
                    ),
                });
            }
            if row.prev_hash != last_hash {
                return Ok(broken(
                    "does not follow the entry before it (a removed or replaced entry)",
                ));
            }
            if row.hash != row.expected || !row.actor_ok {
                return Ok(broken("altered: its content does not match its hash"));
            }
            last_seq = row.seq;
            last_hash = Some(row.hash);
            entries += 1;
        }
    }
}

/// Removes entries older than `retention`, keeping the chain verifiable from
/// the anchor the database moves with them; the housekeeping sweep.
pub async fn prune(conn: &mut PgConnection, retention: Duration) -> Result<u64, sqlx::Error> {
    let before =
        chrono::Utc::now() - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let removed: Option<i64> = sqlx::query_scalar!("select audit_prune($1)", before)
        .fetch_one(conn)
        .await?;
    Ok(u64::try_from(removed.unwrap_or(0)).unwrap_or(0))
}
