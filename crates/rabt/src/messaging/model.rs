//! What a conversation and a message are (API.md §6), and the validated shape
//! of what a client sends.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::{ApiError, FieldError};

/// The most people in one conversation, the caller included.
pub const MAX_PARTICIPANTS: usize = 50;
/// The longest message, in characters.
pub const MAX_BODY_CHARS: usize = 5000;
/// The most files one message carries.
pub const MAX_ATTACHMENTS: usize = 10;
const MAX_TITLE_CHARS: usize = 120;
const MAX_CLIENT_ID_CHARS: usize = 100;

/// A message as every participant sees it. A deleted one is a tombstone:
/// `deleted` is true and `body` null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// Null once the author's account is erased.
    pub author_id: Option<Uuid>,
    pub body: Option<String>,
    /// The id the sender chose to make the send idempotent, if any.
    pub client_message_id: Option<String>,
    pub attachment_file_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
}

/// Someone in a conversation, and how far they have read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Participant {
    pub user_id: Uuid,
    pub display_name: String,
    /// The last message they marked read (read receipts), if any.
    pub last_read_message_id: Option<Uuid>,
}

/// `direct` (two people, one conversation per pair) or `group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ConversationKind {
    Direct,
    Group,
}

/// A conversation as one of its participants sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    pub id: Uuid,
    pub kind: ConversationKind,
    pub title: Option<String>,
    pub project_id: Option<Uuid>,
    pub participants: Vec<Participant>,
    /// The newest message (a tombstone if it was deleted), or null.
    pub last_message: Option<Message>,
    /// Messages of others after the caller's read marker, not deleted.
    pub unread_count: i64,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Start a conversation (or find the direct one with that person).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// The other people (the caller is added): one for a direct
    /// conversation, up to 49 for a group.
    pub participant_ids: Vec<Uuid>,
    /// A project the conversation is about.
    pub project_id: Option<Uuid>,
    /// 1..=120 characters.
    pub title: Option<String>,
}

impl NewConversation {
    /// Checks sizes; who the participants are is the database's to check.
    pub fn validate(mut self, caller: Uuid) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        self.participant_ids.retain(|id| *id != caller);
        self.participant_ids.sort_unstable();
        self.participant_ids.dedup();
        if self.participant_ids.is_empty() {
            errors.push(FieldError::new(
                "participant_ids",
                "too_short",
                "Name at least one other person.",
            ));
        } else if self.participant_ids.len() + 1 > MAX_PARTICIPANTS {
            errors.push(FieldError::new(
                "participant_ids",
                "too_long",
                format!(
                    "A conversation has at most {MAX_PARTICIPANTS} participants, you included."
                ),
            ));
        }
        self.title = self
            .title
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        if self
            .title
            .as_ref()
            .is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS)
        {
            errors.push(FieldError::new(
                "title",
                "too_long",
                format!("At most {MAX_TITLE_CHARS} characters."),
            ));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

/// A new message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// 1..=5000 characters.
    pub body: String,
    /// Makes the send idempotent: sending again with the same id in the same
    /// conversation returns the first message. 1..=100 characters.
    pub client_message_id: Option<String>,
    /// Up to 10 of the sender's own ready `message_attachment` files.
    #[serde(default)]
    pub attachment_file_ids: Vec<Uuid>,
}

impl NewMessage {
    pub fn validate(mut self) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        if let Some(error) = body_error(&self.body) {
            errors.push(error);
        }
        if self.client_message_id.as_ref().is_some_and(|c| {
            c.is_empty() || c.chars().count() > MAX_CLIENT_ID_CHARS || c.contains('\0')
        }) {
            errors.push(FieldError::new(
                "client_message_id",
                "invalid",
                format!("1 to {MAX_CLIENT_ID_CHARS} characters."),
            ));
        }
        if let Some(error) = attachments_error(&mut self.attachment_file_ids) {
            errors.push(error);
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

/// An edit of a message: its body, its files, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageEdit {
    pub body: Option<String>,
    pub attachment_file_ids: Option<Vec<Uuid>>,
}

impl MessageEdit {
    pub fn validate(mut self) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        if self.body.is_none() && self.attachment_file_ids.is_none() {
            errors.push(FieldError::new(
                "body",
                "required",
                "Send a new `body`, new `attachment_file_ids`, or both.",
            ));
        }
        if let Some(error) = self.body.as_deref().and_then(body_error) {
            errors.push(error);
        }
        if let Some(error) = self
            .attachment_file_ids
            .as_mut()
            .and_then(attachments_error)
        {
            errors.push(error);
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(ApiError::validation(errors))
        }
    }
}

fn body_error(body: &str) -> Option<FieldError> {
    let chars = body.chars().count();
    if body.trim().is_empty() {
        Some(FieldError::new(
            "body",
            "too_short",
            "A message needs text.",
        ))
    } else if body.contains('\0') {
        Some(FieldError::new(
            "body",
            "invalid",
            "Text without NUL characters.",
        ))
    } else if chars > MAX_BODY_CHARS {
        Some(FieldError::new(
            "body",
            "too_long",
            format!("At most {MAX_BODY_CHARS} characters."),
        ))
    } else {
        None
    }
}

fn attachments_error(ids: &mut Vec<Uuid>) -> Option<FieldError> {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    (ids.len() > MAX_ATTACHMENTS).then(|| {
        FieldError::new(
            "attachment_file_ids",
            "too_long",
            format!("At most {MAX_ATTACHMENTS} files."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_needs_text_and_no_more_than_the_limit() {
        let message = |body: &str| NewMessage {
            body: body.to_owned(),
            client_message_id: None,
            attachment_file_ids: vec![],
        };
        assert!(message("hi").validate().is_ok());
        assert!(message("  \n ").validate().is_err());
        assert!(message(&"é".repeat(MAX_BODY_CHARS)).validate().is_ok());
        assert!(message(&"é".repeat(MAX_BODY_CHARS + 1)).validate().is_err());
        assert!(message("a\0b").validate().is_err());
    }

    #[test]
    fn participants_exclude_the_caller_and_repeat_once() {
        let me = Uuid::now_v7();
        let other = Uuid::now_v7();
        let request = NewConversation {
            participant_ids: vec![me, other, other],
            project_id: None,
            title: Some("  ".into()),
        }
        .validate(me)
        .unwrap();
        assert_eq!(request.participant_ids, vec![other]);
        assert_eq!(request.title, None);
        let alone = NewConversation {
            participant_ids: vec![me],
            project_id: None,
            title: None,
        };
        assert!(alone.validate(me).is_err());
        let crowd = NewConversation {
            participant_ids: (0..MAX_PARTICIPANTS).map(|_| Uuid::now_v7()).collect(),
            project_id: None,
            title: None,
        };
        assert!(crowd.validate(me).is_err());
    }
}
