//! Conversations and messages (API.md §6), and the email that follows an
//! unread message.
//!
//! The database orders messages, keeps unread counts and writes the realtime
//! events of every change in the storing transaction (migrations/0035); the
//! [`crate::realtime`] sockets deliver them. A message is sent the same way
//! over REST and over a socket: [`send`].

pub mod model;
pub mod routes;
pub mod store;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use self::model::{Message, NewMessage};
use crate::{
    db::Actor,
    email::{self, Template},
    files::{self, model::Purpose},
    http::{ApiError, ErrorCode},
    jobs::{self, JobArgs, JobContext, JobError, JobRegistry},
};

/// Stores `message` of `author` in `conversation` (validated), in the
/// caller's transaction: 404 unless the author takes part; attachments must
/// be the author's own ready files. A repeated `client_message_id` returns
/// the first message (`false`). Queues the email of recipients who want one
/// soon after an unread message.
pub async fn send(
    tx: &mut PgConnection,
    conversation: Uuid,
    author: Uuid,
    message: &NewMessage,
    email_delay: Duration,
) -> Result<(Message, bool), ApiError> {
    if !store::is_participant(tx, conversation).await? {
        return Err(ApiError::not_found());
    }
    files::attach_own_ready(
        tx,
        author,
        &message.attachment_file_ids,
        Purpose::MessageAttachment,
        "attachment_file_ids",
    )
    .await?;
    let (stored, created) = store::send(tx, conversation, author, message).await?;
    if created {
        let run_at = chrono::Utc::now()
            + chrono::Duration::from_std(email_delay).unwrap_or(chrono::Duration::MAX);
        for user in store::claim_message_emails(tx, conversation).await? {
            jobs::queue::enqueue_at(
                &mut *tx,
                &EmailUnread {
                    user_id: user,
                    conversation_id: conversation,
                },
                5,
                Some(run_at),
            )
            .await?;
        }
    }
    Ok((stored, created))
}

/// Email `user_id` about what is unread in `conversation_id`, if anything
/// still is.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmailUnread {
    pub user_id: Uuid,
    pub conversation_id: Uuid,
}

impl JobArgs for EmailUnread {
    const KIND: &'static str = "messages.email_unread";
}

/// Email `user_id` the daily digest of their unread conversations.
#[derive(Debug, Serialize, Deserialize)]
pub struct EmailDigest {
    pub user_id: Uuid,
}

impl JobArgs for EmailDigest {
    const KIND: &'static str = "messages.digest";
}

/// Registers the `messages.email_unread` and `messages.digest` handlers, and
/// the hourly sweep that queues digests.
pub fn register(registry: &mut JobRegistry, frontend: url::Url, host: String) {
    registry.sweep("message digests", |conn| {
        Box::pin(store::queue_digests(conn))
    });
    let (digest_frontend, digest_host) = (frontend.clone(), host.clone());
    registry.register::<EmailDigest, _, _>(move |ctx: JobContext, args| {
        let (frontend, host) = (digest_frontend.clone(), digest_host.clone());
        async move {
            let mut tx = ctx.db.begin(&Actor::Service).await?;
            if let Some((to, display_name, unread)) = store::digest(&mut tx, args.user_id).await?
                && !unread.is_empty()
            {
                let conversations: Vec<_> = unread
                    .iter()
                    .map(|c| {
                        json!({
                            "name": c.name,
                            "unread": c.unread,
                            "link": crate::auth::jobs::frontend_link(
                                &frontend, &format!("/messages/{}", c.id), None),
                        })
                    })
                    .collect();
                email::enqueue_from(
                    &mut tx,
                    &host,
                    args.user_id,
                    &to,
                    Template::UnreadDigest,
                    json!({
                        "display_name": display_name,
                        "conversations": conversations,
                        "total": unread.iter().map(|c| c.unread).sum::<i64>(),
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
    registry.register::<EmailUnread, _, _>(move |ctx: JobContext, args| {
        let (frontend, host) = (frontend.clone(), host.clone());
        async move {
            let mut tx = ctx.db.begin(&Actor::Service).await?;
            let facts =
                store::take_message_email(&mut tx, args.user_id, args.conversation_id).await?;
            if let Some(facts) = facts {
                email::enqueue_from(
                    &mut tx,
                    &host,
                    args.user_id,
                    &facts.email,
                    Template::UnreadMessages,
                    json!({
                        "display_name": facts.display_name,
                        "unread": facts.unread,
                        "senders": facts.senders,
                        "link": crate::auth::jobs::frontend_link(
                            &frontend,
                            &format!("/messages/{}", args.conversation_id),
                            None,
                        ),
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

/// The problem for a message action the caller may not take: someone
/// else's message.
pub fn not_the_author() -> ApiError {
    ApiError::new(ErrorCode::Forbidden).with_detail("Only the author changes a message.")
}
