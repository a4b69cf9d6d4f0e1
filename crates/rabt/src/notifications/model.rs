//! What the inbox holds and what a user wants to hear about.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// Something that happened that concerns the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    /// `application.submitted`, `application.shortlisted`, `application.accepted`,
    /// `application.rejected`, `application.withdrawn`, …
    pub kind: String,
    /// Ids and names the client needs to show and link the event.
    #[schema(value_type = Object)]
    pub payload: Value,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// When new messages are emailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum MessageEmails {
    Never,
    Immediately,
    /// One email gathering the unread messages.
    Digest,
}

/// What the caller wants to hear about, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    pub messages: MessageEmails,
    /// Email on application events.
    pub applications: bool,
    pub billing: bool,
    pub product_news: bool,
}

impl Default for Preferences {
    /// The table's defaults, for a user who never set any.
    fn default() -> Self {
        Self {
            messages: MessageEmails::Immediately,
            applications: true,
            billing: true,
            product_news: false,
        }
    }
}
