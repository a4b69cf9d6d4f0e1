//! What a user is to others and to themselves (API.md §4): the account
//! (`Me`), the public profile, the validated changes to them, and the
//! email address and visibility types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::ProfileRow;
use crate::{
    http::{ApiError, FieldError, patch},
    skills,
};

/// Who sees a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Public, Self::Private]
            .into_iter()
            .find(|v| v.as_str() == text)
    }
}

/// A normalised, plausible email address: at most 254 bytes, accepted by
/// the mail library's parser, and with a dot in its domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Trims `value`; a field error for `field` when it is not an address.
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let email = value.trim();
        let valid = email.len() <= 254
            && email.parse::<lettre::Address>().is_ok()
            && email
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain.contains('.'));
        if valid {
            Ok(Self(email.to_owned()))
        } else {
            Err(FieldError::new(field, "invalid", "Not an email address."))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The caller's own account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    pub display_name: String,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Vec<String>,
    pub location: Option<String>,
    /// Set once file uploads exist; `null` until then.
    pub avatar_url: Option<String>,
    pub avatar_file_id: Option<Uuid>,
    pub visibility: Visibility,
    pub roles: Vec<String>,
    /// The subscription plan (`free` until billing moves the user to another).
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub policy: PolicyVersions,
}

/// The privacy policy versions: the one the user accepted and the one in force.
/// Both `null` until policies are published (privacy capability).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyVersions {
    pub accepted_version: Option<String>,
    pub current_version: Option<String>,
}

/// A user's profile as others see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProfile {
    pub id: Uuid,
    pub display_name: String,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Vec<String>,
    pub location: Option<String>,
    pub avatar_url: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Only for the user themselves and holders of `users.read_private`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl PublicProfile {
    pub fn new(row: ProfileRow, email: Option<String>) -> Self {
        Self {
            id: row.id,
            display_name: row.display_name,
            headline: row.headline,
            bio: row.bio,
            skills: row.skills,
            location: row.location,
            avatar_url: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_are_trimmed_and_need_a_dotted_domain() {
        let email = EmailAddress::parse("email", "  ada@example.com ").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
        for bad in [
            "",
            "ada",
            "ada@localhost",
            "@example.com",
            "a b@example.com",
        ] {
            let err = EmailAddress::parse("email", bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse("email", &long).is_err());
    }

    #[test]
    fn visibility_names_round_trip() {
        for v in [Visibility::Public, Visibility::Private] {
            assert_eq!(Visibility::parse(v.as_str()), Some(v));
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
        }
        assert_eq!(Visibility::parse("friends"), None);
    }
}
