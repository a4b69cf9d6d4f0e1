//! What an application is (API.md §5): its status machine, who may take
//! each step, and the validated shape of what an applicant sends.
//!
//! The machine is an enum with one transition function; the same table is in
//! the database (`application_transitions`, with the side that may take each
//! step), whose trigger refuses any other step. A test checks that both agree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::{ApplicationRow, NewApplication};
use crate::{
    http::{ApiError, FieldError},
    money::Money,
};

/// Where an application is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ApplicationStatus {
    Pending,
    Shortlisted,
    Accepted,
    Rejected,
    Withdrawn,
}

/// The side of an application taking a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The project's owner.
    Owner,
    Applicant,
}

impl ApplicationStatus {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Shortlisted,
        Self::Accepted,
        Self::Rejected,
        Self::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Shortlisted => "shortlisted",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Holds the applicant's one place on the project.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Shortlisted | Self::Accepted)
    }

    /// Which side may take the step `self → to`, if it exists.
    pub fn step(self, to: Self) -> Option<Side> {
        use ApplicationStatus::*;
        match (self, to) {
            (Pending, Shortlisted)
            | (Pending | Shortlisted, Accepted)
            | (Pending | Shortlisted, Rejected) => Some(Side::Owner),
            (Pending | Shortlisted, Withdrawn) => Some(Side::Applicant),
            _ => None,
        }
    }

    /// The status `to` if `side` may take the step `self → to`.
    pub fn transition(self, to: Self, side: Side) -> Option<Self> {
        (self.step(to) == Some(side)).then_some(to)
    }
}

/// An application to a project.
#[derive(Debug, Serialize, ToSchema)]
pub struct Application {
    pub id: Uuid,
    pub project_id: Uuid,
    pub applicant_id: Uuid,
    pub cover_letter: String,
    pub proposed_budget: Option<Money>,
    pub attachment_file_ids: Vec<Uuid>,
    pub status: ApplicationStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ApplicationRow> for Application {
    fn from(row: ApplicationRow) -> Self {
        let proposed_budget = match (row.proposed_budget_amount, row.proposed_budget_currency) {
            (Some(amount), Some(currency)) => Some(Money { amount, currency }),
            _ => None,
        };
        Self {
            id: row.id,
            project_id: row.project_id,
            applicant_id: row.applicant_id,
            cover_letter: row.cover_letter,
            proposed_budget,
            attachment_file_ids: row.attachment_file_ids,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// What an applicant sends.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    /// 1 to 5000 characters, plain text.
    pub cover_letter: String,
    pub proposed_budget: Option<Money>,
    /// Up to 10 distinct ids of the caller's own ready files uploaded as
    /// `application_attachment` (API.md §8); any other id is 422. The
    /// applicant and the project's owner can then read them.
    pub attachment_file_ids: Option<Vec<Uuid>>,
}

/// Checks what an applicant sent.
pub fn validate(
    project_id: Uuid,
    applicant_id: Uuid,
    request: ApplicationRequest,
) -> Result<NewApplication, ApiError> {
    let mut errors = Vec::new();
    let cover_letter = request.cover_letter.trim().to_owned();
    if !(1..=5000).contains(&cover_letter.chars().count()) {
        errors.push(FieldError::new(
            "cover_letter",
            "invalid",
            "1 to 5000 characters.",
        ));
    }
    let budget = request
        .proposed_budget
        .and_then(|money| money.parse("proposed_budget", &mut errors))
        .map(|(amount, currency)| (amount, currency.into_string()));
    let attachment_file_ids = request.attachment_file_ids.unwrap_or_default();
    if attachment_file_ids.len() > 10 {
        errors.push(FieldError::new(
            "attachment_file_ids",
            "too_long",
            "At most 10 files.",
        ));
    }
    let mut distinct = attachment_file_ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != attachment_file_ids.len() {
        errors.push(FieldError::new(
            "attachment_file_ids",
            "duplicate",
            "Each file once.",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(NewApplication {
        project_id,
        applicant_id,
        cover_letter,
        budget,
        attachment_file_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_application_pair_is_decided_for_each_side() {
        use ApplicationStatus::*;
        let owner = [
            (Pending, Shortlisted),
            (Pending, Accepted),
            (Pending, Rejected),
            (Shortlisted, Accepted),
            (Shortlisted, Rejected),
        ];
        let applicant = [(Pending, Withdrawn), (Shortlisted, Withdrawn)];
        for from in ApplicationStatus::ALL {
            for to in ApplicationStatus::ALL {
                assert_eq!(
                    from.transition(to, Side::Owner).is_some(),
                    owner.contains(&(from, to)),
                    "owner {from:?} → {to:?}"
                );
                assert_eq!(
                    from.transition(to, Side::Applicant).is_some(),
                    applicant.contains(&(from, to)),
                    "applicant {from:?} → {to:?}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in ApplicationStatus::ALL {
            assert_eq!(ApplicationStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
