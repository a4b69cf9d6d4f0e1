//! The status machines of projects and applications (API.md §5).
//!
//! Each machine is an enum with one transition function; the same tables are
//! in the database (`project_transitions`, `application_transitions`), whose
//! triggers refuse any other step, so a direct SQL update cannot skip a state.
//! A test checks that both agree, pair by pair.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a project is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectStatus {
    Draft,
    Open,
    InProgress,
    Completed,
    Cancelled,
    Archived,
}

impl ProjectStatus {
    pub const ALL: [Self; 6] = [
        Self::Draft,
        Self::Open,
        Self::InProgress,
        Self::Completed,
        Self::Cancelled,
        Self::Archived,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Open => "open",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Archived => "archived",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Seen by everyone, not only the owner and moderators.
    pub fn is_public(self) -> bool {
        matches!(self, Self::Open | Self::InProgress | Self::Completed)
    }

    /// Whether the project's content may still be edited.
    pub fn is_editable(self) -> bool {
        matches!(self, Self::Draft | Self::Open | Self::InProgress)
    }

    /// The status `to` if the machine has the step `self → to`.
    /// `open → draft` is further conditional on the project having no
    /// applications, which [`ProjectStatus::transition`]'s caller knows.
    pub fn transition(self, to: Self, has_applications: bool) -> Option<Self> {
        use ProjectStatus::*;
        let allowed = match (self, to) {
            (Draft, Open)
            | (Open, InProgress)
            | (Open, Cancelled)
            | (InProgress, Completed)
            | (InProgress, Cancelled)
            | (Completed, Archived)
            | (Cancelled, Archived) => true,
            (Open, Draft) => !has_applications,
            _ => false,
        };
        allowed.then_some(to)
    }
}

/// Where an application is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_project_pair_is_decided_as_the_contract_lists() {
        use ProjectStatus::*;
        let listed = [
            (Draft, Open),
            (Open, Draft),
            (Open, InProgress),
            (Open, Cancelled),
            (InProgress, Completed),
            (InProgress, Cancelled),
            (Completed, Archived),
            (Cancelled, Archived),
        ];
        for from in ProjectStatus::ALL {
            for to in ProjectStatus::ALL {
                let expected = listed.contains(&(from, to));
                assert_eq!(
                    from.transition(to, false).is_some(),
                    expected,
                    "{from:?} → {to:?}"
                );
                // Applications only ever close the way back to draft.
                let with_apps = expected && (from, to) != (Open, Draft);
                assert_eq!(
                    from.transition(to, true).is_some(),
                    with_apps,
                    "{from:?} → {to:?} with applications"
                );
            }
        }
    }

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
        for s in ProjectStatus::ALL {
            assert_eq!(ProjectStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in ApplicationStatus::ALL {
            assert_eq!(ApplicationStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(ProjectStatus::parse("deleted"), None);
    }
}
