//! What a role is (API.md §4): its shape, the rules of its name and
//! description, and the refusal of built-in roles.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store;
use crate::http::{ApiError, ErrorCode, FieldError};

/// A role and what it grants.
#[derive(Debug, Serialize, ToSchema)]
pub struct Role {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    pub builtin: bool,
}

impl From<store::RoleRow> for Role {
    fn from(row: store::RoleRow) -> Self {
        Self {
            name: row.name,
            description: row.description,
            permissions: row.permissions,
            builtin: row.builtin,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// 2..40 characters: lower-case letters, digits, `_` and `-`, starting with a letter.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub description: Option<String>,
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRoles {
    /// The granted roles; `member` is implied.
    pub roles: Vec<String>,
}

/// 2..=40 characters: lower-case letters, digits, `_` and `-`, starting
/// with a letter.
pub fn valid_role_name(name: &str) -> bool {
    let mut chars = name.chars();
    (2..=40).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A description of at most 500 characters.
pub fn check_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > 500 {
        return Err(ApiError::validation(vec![FieldError::new(
            "description",
            "too_long",
            "At most 500 characters.",
        )]));
    }
    Ok(())
}

/// The refusal of any change to a role the database keeps as it is.
pub fn builtin_conflict() -> ApiError {
    ApiError::new(ErrorCode::Conflict).with_detail("Built-in roles cannot be changed or deleted.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_short_lowercase_words_starting_with_a_letter() {
        for good in ["qa", "support-lead", "tier_2"] {
            assert!(valid_role_name(good), "{good}");
        }
        for bad in ["a", "2fa", "Admin", "with space", &"x".repeat(41)] {
            assert!(!valid_role_name(bad), "{bad}");
        }
    }

    #[test]
    fn descriptions_past_500_characters_are_refused() {
        assert!(check_description(&"é".repeat(500)).is_ok());
        assert!(check_description(&"é".repeat(501)).is_err());
    }
}
