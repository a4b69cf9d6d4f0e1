//! Background halves of "resend verification" and "forgot password".
//!
//! The HTTP handlers only queue one of these jobs, whether or not the address
//! has an account, so that both answers cost the same and reveal nothing. The
//! job looks the address up and, when there is an account to write to, issues
//! the token and queues the email in one transaction with its own completion.

use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use super::store::{self, Purpose};
use crate::{
    audit::{self, Action},
    db::Actor,
    email::{self, Template},
    http::ClientInfo,
    jobs::{JobArgs, JobContext, JobError, JobRegistry},
};

/// Send a fresh verification link, if the address awaits verification.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendVerification {
    pub email: String,
}

impl JobArgs for SendVerification {
    const KIND: &'static str = "auth.send_verification";
}

/// Send a password reset link, if the address has an account.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendPasswordReset {
    pub email: String,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

impl JobArgs for SendPasswordReset {
    const KIND: &'static str = "auth.send_password_reset";
}

const VERIFY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
const RESET_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// A link into the web app, carrying a token.
pub fn frontend_link(frontend: &Url, path: &str, token: Option<&str>) -> String {
    let mut url = frontend.clone();
    url.set_path(path);
    url.set_query(None);
    if let Some(token) = token {
        url.query_pairs_mut().append_pair("token", token);
    }
    url.to_string()
}

/// Registers both handlers, and the sweep of spent and expired sign-in
/// challenges.
pub fn register(registry: &mut JobRegistry, frontend: Url, host: String) {
    registry.sweep("mfa_challenges", |conn| {
        Box::pin(super::mfa::store::delete_stale_challenges(conn))
    });
    {
        let (frontend, host) = (frontend.clone(), host.clone());
        registry.register::<SendVerification, _, _>(move |ctx: JobContext, args| {
            let (frontend, host) = (frontend.clone(), host.clone());
            async move {
                let mut tx = ctx.db.begin(&Actor::Service).await?;
                if let Some(account) = store::credentials_by_email(&mut tx, &args.email).await?
                    && !account.email_verified
                    && !account.suspended
                    && !account.deactivated
                {
                    let token = store::create_one_time_token(
                        &mut tx,
                        account.id,
                        Purpose::VerifyEmail,
                        VERIFY_TTL,
                    )
                    .await?;
                    email::enqueue_from(
                        &mut tx,
                        &host,
                        account.id,
                        &account.email,
                        Template::VerifyEmail,
                        json!({
                            "display_name": account.display_name,
                            "link": frontend_link(&frontend, "/auth/verify-email", Some(&token)),
                        }),
                    )
                    .await?;
                }
                if ctx.complete_in(&mut tx).await? {
                    tx.commit().await?;
                }
                Ok::<(), JobError>(())
            }
        });
    }
    registry.register::<SendPasswordReset, _, _>(move |ctx: JobContext, args| {
        let (frontend, host) = (frontend.clone(), host.clone());
        async move {
            let mut tx = ctx.db.begin(&Actor::Service).await?;
            if let Some(account) = store::credentials_by_email(&mut tx, &args.email).await?
                && !account.suspended
                && !account.deactivated
            {
                let token = store::create_one_time_token(
                    &mut tx,
                    account.id,
                    Purpose::ResetPassword,
                    RESET_TTL,
                )
                .await?;
                email::enqueue_from(
                    &mut tx,
                    &host,
                    account.id,
                    &account.email,
                    Template::PasswordReset,
                    json!({
                        "display_name": account.display_name,
                        "link": frontend_link(&frontend, "/auth/reset-password", Some(&token)),
                    }),
                )
                .await?;
                let client = ClientInfo {
                    ip: args.ip,
                    user_agent: args.user_agent.clone(),
                };
                audit::record(
                    &mut tx,
                    Some(account.id),
                    Action::PasswordResetRequested,
                    Some(account.id),
                    &client,
                    json!({}),
                )
                .await?;
            }
            if ctx.complete_in(&mut tx).await? {
                tx.commit().await?;
            }
            Ok::<(), JobError>(())
        }
    });
}
