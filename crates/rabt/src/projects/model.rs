//! What a project is (API.md §5): its status machine, the validated shapes
//! of a new project and of a change, and the rules for publishing.
//!
//! The machine is an enum with one transition function; the same table is in
//! the database (`project_transitions`), whose trigger refuses any other step,
//! so a direct SQL update cannot skip a state. A test checks that both agree,
//! pair by pair.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{markdown, store::ProjectRow};
use crate::{
    config::Settings,
    http::{ApiError, FieldError, patch},
    money::{self, Currency},
    skills,
};

/// Where a project is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
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

/// Money as minor units and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Minor units, 0 or more.
    pub min: i64,
    /// Minor units, at least `min`.
    pub max: i64,
    /// ISO 4217, lowercase (`usd`).
    pub currency: String,
}

/// Who owns a project; the name only when their profile is visible to the caller.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Owner {
    pub id: Uuid,
    pub display_name: Option<String>,
}

/// A project.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub owner: Owner,
    pub title: String,
    pub summary: Option<String>,
    /// Markdown, with raw HTML cleaned on write.
    pub description: String,
    /// The description rendered and sanitised.
    pub description_html: String,
    pub category: Option<String>,
    pub skills: Vec<String>,
    pub budget: Option<Budget>,
    pub remote: bool,
    pub location: Option<String>,
    pub status: ProjectStatus,
    pub application_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

impl Project {
    pub fn new(row: ProjectRow, owner_name: Option<String>) -> Self {
        let budget = match (row.budget_min, row.budget_max, row.currency) {
            (Some(min), Some(max), Some(currency)) => Some(Budget { min, max, currency }),
            _ => None,
        };
        Self {
            id: row.id,
            owner: Owner {
                id: row.owner_id,
                display_name: owner_name,
            },
            title: row.title,
            summary: row.summary,
            description: row.description,
            description_html: row.description_html,
            category: row.category,
            skills: row.skills,
            budget,
            remote: row.remote,
            location: row.location,
            status: row.status,
            application_count: row.application_count,
            created_at: row.created_at,
            updated_at: row.updated_at,
            published_at: row.published_at,
        }
    }
}

/// A new project, saved as a draft.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 500 characters; needed to publish.
    pub summary: Option<String>,
    /// Markdown, up to 20,000 characters.
    pub description: Option<String>,
    /// A slug (`web-development`); needed to publish.
    pub category: Option<String>,
    pub skills: Option<Vec<String>>,
    pub budget: Option<Budget>,
    pub remote: Option<bool>,
    pub location: Option<String>,
}

/// A change to a project: absent fields stay as they are. `null` clears an
/// optional field (`summary`, `category`, `location`, `budget`), as does `""`
/// for the text ones; the others cannot be `null` (422).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChange {
    /// 1 to 200 characters.
    #[serde(default, deserialize_with = "crate::http::patch::not_null")]
    #[schema(nullable = false)]
    pub title: Option<String>,
    /// Up to 500 characters; `null` or `""` clears it (a draft only: published
    /// projects need one).
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<String>)]
    pub summary: Option<Option<String>>,
    /// Markdown, up to 20,000 characters; `""` empties it.
    #[serde(default, deserialize_with = "crate::http::patch::not_null")]
    #[schema(nullable = false)]
    pub description: Option<String>,
    /// A slug; `null` or `""` clears it (a draft only).
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    /// The whole list; `[]` empties it.
    #[serde(default, deserialize_with = "crate::http::patch::not_null")]
    #[schema(nullable = false)]
    pub skills: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<Budget>)]
    pub budget: Option<Option<Budget>>,
    #[serde(default, deserialize_with = "crate::http::patch::not_null")]
    #[schema(nullable = false)]
    pub remote: Option<bool>,
    /// Up to 100 characters; `null` or `""` clears it.
    #[serde(default, deserialize_with = "crate::http::patch::absent_or_null")]
    #[schema(value_type = Option<String>)]
    pub location: Option<Option<String>>,
}

fn is_slug(value: &str) -> bool {
    (1..=40).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
}

/// Checks a budget; `None` when it is invalid (the errors are recorded).
fn clean_budget(field: &str, budget: Budget, errors: &mut Vec<FieldError>) -> Option<Budget> {
    let currency = Currency::parse_field(&format!("{field}.currency"), &budget.currency, errors);
    let min_ok = money::check_amount(
        &format!("{field}.min"),
        budget.min,
        0,
        "0 to 10^12 minor units.",
        errors,
    );
    let max_ok = money::check_amount(
        &format!("{field}.max"),
        budget.max,
        budget.min,
        "At least `min`, at most 10^12 minor units.",
        errors,
    );
    let currency = currency.filter(|_| min_ok && max_ok)?;
    Some(Budget {
        min: budget.min,
        max: budget.max,
        currency: currency.into_string(),
    })
}

/// Merges a change into a project, validating every field.
pub fn apply(change: ProjectChange, mut row: ProjectRow) -> Result<ProjectRow, ApiError> {
    let mut errors = Vec::new();
    if let Some(title) = change.title {
        let title = title.trim().to_owned();
        if (1..=200).contains(&title.chars().count()) {
            row.title = title;
        } else {
            errors.push(FieldError::new("title", "invalid", "1 to 200 characters."));
        }
    }
    row.summary = patch::optional_text("summary", change.summary, 500, row.summary, &mut errors);
    row.location =
        patch::optional_text("location", change.location, 100, row.location, &mut errors);
    if let Some(description) = change.description {
        if description.chars().count() > 20_000 {
            errors.push(FieldError::new(
                "description",
                "too_long",
                "At most 20000 characters.",
            ));
        } else {
            let text = markdown::render(&description);
            if text.source.chars().count() > 20_000 || text.html.chars().count() > 60_000 {
                errors.push(FieldError::new(
                    "description",
                    "too_long",
                    "The description renders too long.",
                ));
            } else {
                row.description = text.source;
                row.description_html = text.html;
            }
        }
    }
    if let Some(category) = change.category {
        let category = category.unwrap_or_default().trim().to_lowercase();
        if category.is_empty() {
            row.category = None;
        } else if is_slug(&category) {
            row.category = Some(category);
        } else {
            errors.push(FieldError::new(
                "category",
                "invalid",
                "Lowercase letters, digits and `-`, up to 40.",
            ));
        }
    }
    if let Some(skills) = change.skills {
        row.skills = skills::clean(&skills, &mut errors);
    }
    match change.budget {
        None => {}
        Some(None) => (row.budget_min, row.budget_max, row.currency) = (None, None, None),
        Some(Some(budget)) => {
            if let Some(b) = clean_budget("budget", budget, &mut errors) {
                (row.budget_min, row.budget_max, row.currency) =
                    (Some(b.min), Some(b.max), Some(b.currency));
            }
        }
    }
    if let Some(remote) = change.remote {
        row.remote = remote;
    }
    if errors.is_empty() {
        Ok(row)
    } else {
        Err(ApiError::validation(errors))
    }
}

/// A draft of `owner` with nothing filled in yet.
pub fn empty_row(owner: Uuid) -> ProjectRow {
    let now = Utc::now();
    ProjectRow {
        id: Uuid::nil(),
        owner_id: owner,
        title: String::new(),
        summary: None,
        description: String::new(),
        description_html: String::new(),
        category: None,
        skills: Vec::new(),
        budget_min: None,
        budget_max: None,
        currency: None,
        remote: false,
        location: None,
        status: ProjectStatus::Draft,
        application_count: 0,
        created_at: now,
        updated_at: now,
        published_at: None,
    }
}

/// What a project lacks to be published.
pub fn publish_errors(row: &ProjectRow) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if row.summary.is_none() {
        errors.push(FieldError::new("summary", "required", "Needed to publish."));
    }
    if row.category.is_none() {
        errors.push(FieldError::new(
            "category",
            "required",
            "Needed to publish.",
        ));
    }
    errors
}

/// The open-project limit of an owner's plan (API.md §7); `None`: no limit.
/// A plan name billing does not know fails closed to the free limit.
pub fn open_project_limit(settings: &Settings, plan: Option<&str>) -> Option<i64> {
    crate::billing::model::open_project_limit(&settings.billing, plan)
}

/// One step a project took.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub from: ProjectStatus,
    pub to: ProjectStatus,
    pub actor_id: Option<Uuid>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
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
    fn names_round_trip() {
        for s in ProjectStatus::ALL {
            assert_eq!(ProjectStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(ProjectStatus::parse("deleted"), None);
    }
}
