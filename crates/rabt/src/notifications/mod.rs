//! The notification inbox and preferences (API.md §6), and the email that
//! follows a notification when the recipient's preferences ask for it.
//!
//! Notifications are written by the database, in the transaction of the event
//! that causes them (the application triggers of migrations/0010), together
//! with a `notifications.email` job when the recipient wants email; the job
//! renders the email from the stored notification.
//!
//! Read notifications are deleted by the sweep this module registers with the
//! worker's housekeeping,
//! `RABT_NOTIFICATION_RETENTION_DAYS` after they were read; unread ones stay.

pub mod model;
pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    db::Actor,
    email::{self, Template},
    jobs::{JobArgs, JobContext, JobError, JobRegistry},
};

/// Email the recipient of a notification.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmailNotification {
    pub notification_id: Uuid,
}

impl JobArgs for EmailNotification {
    const KIND: &'static str = "notifications.email";
}

/// Registers the `notifications.email` handler, and the sweep of read
/// notifications older than `retention_days`.
pub fn register(registry: &mut JobRegistry, frontend: url::Url, host: String, retention_days: u32) {
    registry.sweep("notifications", move |conn| {
        Box::pin(store::sweep_read(conn, retention_days))
    });
    registry.register::<EmailNotification, _, _>(move |ctx: JobContext, args| {
        let (frontend, host) = (frontend.clone(), host.clone());
        async move {
            let mut tx = ctx.db.begin(&Actor::Service).await?;
            let found = store::for_email(&mut tx, args.notification_id).await?;
            // Gone (the account was erased) or no longer reachable: nothing to send.
            if let Some(found) = found
                && found.active
                && let Some(event) = found.kind.strip_prefix("application.")
            {
                let (payload, display_name) = (&found.payload, &found.display_name);
                let application = payload
                    .get("application_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                email::enqueue_from(
                    &mut tx,
                    &host,
                    found.user_id,
                    &found.email,
                    Template::ApplicationEvent,
                    json!({
                        "display_name": display_name,
                        "event": event,
                        "project_title": payload.get("project_title").cloned()
                            .unwrap_or(Value::Null),
                        "link": crate::auth::jobs::frontend_link(
                            &frontend, &format!("/applications/{application}"), None),
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
