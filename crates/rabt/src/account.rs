//! The account as its owner sees it (`Me`, API.md §4), and the small types
//! it is made of: the email address and the profile's visibility. Both the
//! authentication flows (which answer a sign-in with the account) and the
//! users capability (`GET /me`) read it, so it is shared by both and owned
//! by neither.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::{ApiError, FieldError};

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
    /// Where the avatar is served (see `GET /users/{id}/avatar`); `null`
    /// without one.
    pub avatar_url: Option<String>,
    pub avatar_file_id: Option<Uuid>,
    pub visibility: Visibility,
    pub roles: Vec<String>,
    /// The subscription plan (`free` until billing moves the user to another).
    pub plan: String,
    pub created_at: DateTime<Utc>,
    pub policy: PolicyVersions,
    pub mfa: MfaStatus,
}

/// Two-factor sign-in of the account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MfaStatus {
    /// A verified TOTP factor is on: sign-ins need a code.
    pub enabled: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

/// The privacy policy versions: the one the user accepted last and the one in
/// force. Both `null` until a policy is published (privacy capability).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyVersions {
    pub accepted_version: Option<String>,
    pub current_version: Option<String>,
}

/// The stable address of a user's avatar: it redirects to a short-lived
/// signed download URL, and changes with the avatar (`v`), so clients and
/// caches may keep it as long as the profile they read it from.
pub fn avatar_url(public_url: &url::Url, user: Uuid, file: Uuid) -> String {
    format!(
        "{}/v1/users/{user}/avatar?v={file}",
        public_url.as_str().trim_end_matches('/')
    )
}

/// Loads `Me` for `user` in the given transaction; `public_url` is where
/// rabt is reached, for the avatar's address.
pub async fn load_me(
    conn: &mut sqlx::PgConnection,
    public_url: &url::Url,
    user: Uuid,
    roles: Vec<String>,
) -> Result<Me, ApiError> {
    let row = sqlx::query!(
        r#"select id, public.user_email(id) as "email!",
                  email_verified_at is not null as "email_verified!", display_name, headline,
                  bio, skills, location, avatar_file_id, visibility as "visibility: Visibility",
                  created_at, plan,
                  exists(select 1 from totp_factors f where f.user_id = users.id and f.verified)
                    as "mfa_enabled!",
                  (select count(r.id) from recovery_codes r
                   where r.user_id = users.id and r.used_at is null) as "recovery_codes_left!",
                  (select c.policy_version from consents c where c.user_id = users.id
                   order by c.accepted_at desc limit 1) as accepted_version,
                  (select p.version from privacy_policies p
                   order by p.published_at desc limit 1) as current_version
           from users where id = $1"#,
        user
    )
    .fetch_optional(conn)
    .await?;
    let r = row.ok_or_else(ApiError::not_found)?;
    Ok(Me {
        id: r.id,
        email: r.email,
        email_verified: r.email_verified,
        display_name: r.display_name,
        headline: r.headline,
        bio: r.bio,
        skills: r.skills,
        location: r.location,
        avatar_url: r.avatar_file_id.map(|f| avatar_url(public_url, r.id, f)),
        avatar_file_id: r.avatar_file_id,
        visibility: r.visibility,
        roles,
        plan: r.plan,
        created_at: r.created_at,
        policy: PolicyVersions {
            accepted_version: r.accepted_version,
            current_version: r.current_version,
        },
        mfa: MfaStatus {
            enabled: r.mfa_enabled,
            recovery_codes_left: r.recovery_codes_left,
        },
    })
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
