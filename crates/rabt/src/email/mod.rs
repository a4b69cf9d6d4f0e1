//! Email: templates, the durable outbox, delivery, tracking and suppression.
//!
//! An email is queued with [`enqueue`] in the same transaction as the change
//! that caused it, and sent by the `email.send` job ([`send`]): over SMTP when
//! `RABT_SMTP_URL` is set, else written as an `.eml` file to `RABT_MAIL_DIR`.
//! Each message carries a `Message-ID` fixed at enqueue time, so a repeat after
//! a crash between the SMTP server's acceptance and the job's completion can be
//! dropped by the receiver.
//!
//! Mail that is not about security ([`Class`]) is held back from suppressed
//! addresses, carries an open pixel and tracked links (unless tracking is off)
//! and an unsubscribe link with RFC 8058 one-click `List-Unsubscribe`
//! headers; [`routes`] serves those links and the bounce webhook.

pub mod news;
pub mod routes;
pub mod send;
pub mod store;
mod templates;
pub mod tokens;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

pub use send::{EmailSender, Mailer};
pub use templates::{Class, Frame, Rendered, Template, Templates, Topic};

use crate::{
    config::Settings,
    jobs::{self, JobArgs},
};

/// Arguments of the `email.send` job.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendEmail {
    pub to: String,
    /// The user the email is for: what an unsubscribe changes, and whose
    /// erasure forgets the message. Absent in jobs queued by older versions.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    pub template: Template,
    pub vars: Value,
    pub message_id: String,
}

impl JobArgs for SendEmail {
    const KIND: &'static str = "email.send";
    /// Links in security mail carry tokens: forget them once sent.
    const SENSITIVE: bool = true;
}

/// How many times an email is tried before it is dead-lettered.
pub const EMAIL_ATTEMPTS: i32 = 8;

/// Queues `template` to `to` in the caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    settings: &Settings,
    user: Uuid,
    to: &str,
    template: Template,
    vars: Value,
) -> Result<(), sqlx::Error> {
    let host = settings.public_url.host_str().unwrap_or("rabt.local");
    enqueue_from(conn, host, user, to, template, vars).await
}

/// [`enqueue`], for callers that hold only the host of the public URL (for
/// `Message-ID`s) rather than the settings.
pub async fn enqueue_from(
    conn: &mut PgConnection,
    host: &str,
    user: Uuid,
    to: &str,
    template: Template,
    vars: Value,
) -> Result<(), sqlx::Error> {
    let message_id = format!("<{}@{host}>", uuid::Uuid::now_v7());
    jobs::enqueue(
        conn,
        &SendEmail {
            to: to.to_owned(),
            user_id: Some(user),
            template,
            vars,
            message_id,
        },
        EMAIL_ATTEMPTS,
    )
    .await
    .map(|_| ())
}
