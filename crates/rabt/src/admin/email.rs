//! Email statistics (`analytics.read`) and the suppression list
//! (`users.manage`).

use std::collections::BTreeMap;

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    audit::{self, Action},
    auth::{Holding, permission},
    email::store::{self, DayCounts, Suppression},
    http::{
        ApiError, AppPath, AppQuery, ClientInfo, FieldError,
        openapi::{Forbidden, NotFound, Unauthorized, Validation},
        pagination::{self, Page},
    },
    state::AppState,
};

/// The longest span one statistics request may cover.
const MAX_DAYS: i64 = 366;
/// The span when `from` is not given.
const DEFAULT_DAYS: i64 = 30;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(list_suppressions))
        .routes(routes!(lift_suppression))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// First day (UTC), `YYYY-MM-DD`; 30 days before `to` by default.
    pub from: Option<String>,
    /// Last day (UTC), inclusive; today by default.
    pub to: Option<String>,
}

/// Counts of messages first tried in the period, and their rates.
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
pub struct EmailCounts {
    /// Messages rabt tried to send (or held back).
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    /// Held back: the address was on the suppression list.
    pub suppressed: i64,
    pub bounced: i64,
    pub complained: i64,
    /// Messages opened at least once by a person (image proxies excluded).
    pub opened: i64,
    /// Messages with at least one tracked link followed.
    pub clicked: i64,
    pub unsubscribed: i64,
    /// `opened / sent`, 0 when nothing was sent; likewise the others.
    pub open_rate: f64,
    pub click_rate: f64,
    pub bounce_rate: f64,
    pub unsubscribe_rate: f64,
}

impl EmailCounts {
    fn add(&mut self, row: &DayCounts) {
        self.queued += row.queued;
        self.sent += row.sent;
        self.failed += row.failed;
        self.suppressed += row.suppressed;
        self.bounced += row.bounced;
        self.complained += row.complained;
        self.opened += row.opened;
        self.clicked += row.clicked;
        self.unsubscribed += row.unsubscribed;
    }

    #[allow(clippy::cast_precision_loss)]
    fn with_rates(mut self) -> Self {
        let rate = |n: i64| {
            if self.sent == 0 {
                0.0
            } else {
                // Four decimals: a rate, not a measurement.
                ((n as f64 / self.sent as f64) * 10_000.0).round() / 10_000.0
            }
        };
        self.open_rate = rate(self.opened);
        self.click_rate = rate(self.clicked);
        self.bounce_rate = rate(self.bounced);
        self.unsubscribe_rate = rate(self.unsubscribed);
        self
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateStats {
    pub template: String,
    #[serde(flatten)]
    pub counts: EmailCounts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayStats {
    pub day: NaiveDate,
    #[serde(flatten)]
    pub counts: EmailCounts,
    /// The same counts, per template.
    pub templates: Vec<TemplateStats>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EmailStats {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub total: EmailCounts,
    pub templates: Vec<TemplateStats>,
    /// Days with mail, in order.
    pub days: Vec<DayStats>,
}

fn day(field: &str, value: Option<&str>) -> Result<Option<NaiveDate>, FieldError> {
    value
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| FieldError::new(field, "invalid", "Must be a date, YYYY-MM-DD."))
        })
        .transpose()
}

/// The period of a statistics request, checked.
pub(super) fn period(params: &StatsParams) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let (from, to) = match (
        day("from", params.from.as_deref()),
        day("to", params.to.as_deref()),
    ) {
        (Ok(from), Ok(to)) => (from, to),
        (from, to) => {
            return Err(ApiError::validation(
                [from.err(), to.err()].into_iter().flatten().collect(),
            ));
        }
    };
    let to = to.unwrap_or_else(|| Utc::now().date_naive());
    let from = from.unwrap_or(to - chrono::Days::new(DEFAULT_DAYS as u64 - 1));
    if from > to {
        return Err(ApiError::validation(vec![FieldError::new(
            "from",
            "after_to",
            "Must not be after `to`.",
        )]));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::validation(vec![FieldError::new(
            "from",
            "too_long",
            "The period may span at most 366 days.",
        )]));
    }
    Ok((from, to))
}

/// Email sent, failed, bounced, opened, clicked and unsubscribed, with rates,
/// in total, per template and per day (UTC), for messages first tried in the
/// period.
#[utoipa::path(get, path = "/admin/email/stats", tag = "admin",
    params(StatsParams), security(("bearer" = ["analytics.read"])),
    responses((status = 200, body = EmailStats), Unauthorized, Forbidden, Validation))]
pub async fn stats(
    State(state): State<AppState>,
    caller: Holding<permission::AnalyticsRead>,
    AppQuery(params): AppQuery<StatsParams>,
) -> Result<Json<EmailStats>, ApiError> {
    let (from, to) = period(&params)?;
    let mut tx = state.db.read(&caller.actor()).await?;
    let rows = store::stats(&mut tx, from, to).await?;
    drop(tx);
    let mut total = EmailCounts::default();
    let mut templates: BTreeMap<String, EmailCounts> = BTreeMap::new();
    let mut days: BTreeMap<NaiveDate, (EmailCounts, Vec<TemplateStats>)> = BTreeMap::new();
    for row in &rows {
        total.add(row);
        templates.entry(row.template.clone()).or_default().add(row);
        let (counts, per_template) = days.entry(row.day).or_default();
        counts.add(row);
        let mut one = EmailCounts::default();
        one.add(row);
        per_template.push(TemplateStats {
            template: row.template.clone(),
            counts: one.with_rates(),
        });
    }
    Ok(Json(EmailStats {
        from,
        to,
        total: total.with_rates(),
        templates: templates
            .into_iter()
            .map(|(template, counts)| TemplateStats {
                template,
                counts: counts.with_rates(),
            })
            .collect(),
        days: days
            .into_iter()
            .map(|(day, (counts, templates))| DayStats {
                day,
                counts: counts.with_rates(),
                templates,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SuppressionParams {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SuppressionPage {
    pub items: Vec<Suppression>,
    pub next_cursor: Option<String>,
}

/// Addresses that get only security mail, newest first (expired soft bounces
/// are not listed).
#[utoipa::path(get, path = "/admin/email/suppressions", tag = "admin",
    params(SuppressionParams), security(("bearer" = ["users.manage"])),
    responses((status = 200, body = SuppressionPage), Unauthorized, Forbidden, Validation))]
pub async fn list_suppressions(
    State(state): State<AppState>,
    caller: Holding<permission::UsersManage>,
    AppQuery(params): AppQuery<SuppressionParams>,
) -> Result<Json<SuppressionPage>, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let after: Option<(DateTime<Utc>, String)> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    let mut tx = state.db.read(&caller.actor()).await?;
    let rows = store::suppressions(&mut tx, after, limit + 1).await?;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| {
        (last.created_at, last.address.clone())
    })?;
    Ok(Json(SuppressionPage {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Lifts a suppression: the address gets all mail its preferences allow
/// again. Audited.
#[utoipa::path(delete, path = "/admin/email/suppressions/{address}", tag = "admin",
    params(("address" = String, Path)), security(("bearer" = ["users.manage"])),
    responses((status = 204, description = "Lifted"), Unauthorized, Forbidden, NotFound))]
pub async fn lift_suppression(
    State(state): State<AppState>,
    caller: Holding<permission::UsersManage>,
    client: ClientInfo,
    AppPath(address): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    if address.len() > 320 {
        return Err(ApiError::not_found());
    }
    let mut tx = state.db.begin(&caller.actor()).await?;
    if !store::lift(&mut tx, &address).await? {
        return Err(ApiError::not_found());
    }
    audit::record(
        &mut tx,
        Some(caller.id),
        Action::EmailSuppressionLifted,
        None,
        &client,
        json!({"address": address.to_lowercase()}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
