//! What a user is to others (API.md §4): the public profile and the
//! validated changes to it. The account as its owner sees it (`Me`) is in
//! [`crate::account`], shared with authentication.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::ProfileRow;
use crate::{
    account::{self, Visibility},
    http::{ApiError, FieldError, patch},
    skills,
};

/// A user's profile as others see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProfile {
    pub id: Uuid,
    pub display_name: String,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Vec<String>,
    pub location: Option<String>,
    /// Where the avatar is served: a stable address that redirects to a
    /// short-lived signed URL; `null` without one.
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Only for the user themselves and holders of `users.read_private`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl PublicProfile {
    /// `public_url` is where rabt is reached, for the avatar's address.
    pub fn new(row: ProfileRow, email: Option<String>, public_url: &url::Url) -> Self {
        Self {
            avatar_url: row
                .avatar_file_id
                .map(|f| account::avatar_url(public_url, row.id, f)),
            id: row.id,
            display_name: row.display_name,
            headline: row.headline,
            bio: row.bio,
            skills: row.skills,
            location: row.location,
            created_at: row.created_at,
            email,
        }
    }
}

/// A change to a profile: absent fields stay; for optional text, `""` clears.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    pub display_name: Option<String>,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Option<Vec<String>>,
    pub location: Option<String>,
    /// An uploaded file's id; `null` removes the avatar.
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<Uuid>)]
    pub avatar_file_id: Option<Option<Uuid>>,
    /// `public` or `private`
    pub visibility: Option<String>,
}

/// A moderator's change: the profile fields, and suspension.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Moderation {
    pub display_name: Option<String>,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Option<Vec<String>>,
    pub location: Option<String>,
    /// An uploaded file's id; `null` removes the avatar.
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<Uuid>)]
    pub avatar_file_id: Option<Option<Uuid>>,
    pub visibility: Option<String>,
    /// `true` suspends (every session ends), `false` reinstates.
    pub suspended: Option<bool>,
}

impl Moderation {
    pub fn split(self) -> (ProfileChange, Option<bool>) {
        let change = ProfileChange {
            display_name: self.display_name,
            headline: self.headline,
            bio: self.bio,
            skills: self.skills,
            location: self.location,
            avatar_file_id: self.avatar_file_id,
            visibility: self.visibility,
        };
        (change, self.suspended)
    }
}

/// Merges a change into a profile, validating every field.
pub fn apply(change: ProfileChange, mut row: ProfileRow) -> Result<ProfileRow, ApiError> {
    let mut errors = Vec::new();
    if let Some(name) = change.display_name {
        let name = name.trim().to_owned();
        if (1..=80).contains(&name.chars().count()) {
            row.display_name = name;
        } else {
            errors.push(FieldError::new(
                "display_name",
                "invalid",
                "1 to 80 characters.",
            ));
        }
    }
    row.headline = patch::optional_text(
        "headline",
        change.headline.map(Some),
        120,
        row.headline,
        &mut errors,
    );
    row.bio = patch::optional_text("bio", change.bio.map(Some), 2000, row.bio, &mut errors);
    row.location = patch::optional_text(
        "location",
        change.location.map(Some),
        100,
        row.location,
        &mut errors,
    );
    if let Some(skills) = change.skills {
        row.skills = skills::clean(&skills, &mut errors);
    }
    if let Some(file) = change.avatar_file_id {
        row.avatar_file_id = file;
    }
    if let Some(visibility) = change.visibility {
        if let Some(visibility) = Visibility::parse(&visibility) {
            row.visibility = visibility;
        } else {
            errors.push(FieldError::new(
                "visibility",
                "invalid",
                "`public` or `private`.",
            ));
        }
    }
    if errors.is_empty() {
        Ok(row)
    } else {
        Err(ApiError::validation(errors))
    }
}
