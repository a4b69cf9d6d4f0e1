//! The platform at a glance (`analytics.read`): users, projects,
//! applications, messages and plans. Aggregates only; each daily series
//! reads its period through a creation-time index (migrations/0055).

use axum::{Json, extract::State};
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::email::{StatsParams, period};
use crate::{
    auth::{Holding, permission},
    db::Actor,
    http::{
        ApiError, AppQuery,
        openapi::{Forbidden, Unauthorized, Validation},
    },
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(overview))
}

/// One day's count.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayCount {
    pub day: NaiveDate,
    pub count: i64,
}

/// A count per value of a column (a status, a plan).
#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    pub key: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserStats {
    /// Accounts that are not deactivated, now.
    pub total: i64,
    /// Accounts made each day.
    pub new: Vec<DayCount>,
    /// Distinct users who signed in each day.
    pub active: Vec<DayCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub users: UserStats,
    /// Projects by status, now.
    pub projects_by_status: Vec<Bucket>,
    /// Applications made each day.
    pub applications: Vec<DayCount>,
    /// Messages sent each day.
    pub messages: Vec<DayCount>,
    /// Users by the plan they are entitled to, now.
    pub subscriptions_by_plan: Vec<Bucket>,
}

/// One day of the period: what each daily series counts on it.
struct Day {
    day: NaiveDate,
    new_users: i64,
    active_users: i64,
    applications: i64,
    messages: i64,
}

/// Every daily series in one statement: each count reads its day from its
/// table's creation-time index.
async fn days(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Day>, sqlx::Error> {
    sqlx::query_as!(
        Day,
        r#"with d as (
               select day::date as day, day at time zone 'utc' as starts,
                      (day + interval '1 day') at time zone 'utc' as ends
                 from generate_series($1::date, $2::date, interval '1 day') as g(day)
           )
           select d.day as "day!",
                  (select count(*) from users u
                    where u.created_at >= d.starts and u.created_at < d.ends) as "new_users!",
                  (select count(distinct s.user_id) from sessions s
                    where s.created_at >= d.starts and s.created_at < d.ends) as "active_users!",
                  (select count(*) from applications a
                    where a.created_at >= d.starts and a.created_at < d.ends) as "applications!",
                  (select count(*) from messages m
                    where m.created_at >= d.starts and m.created_at < d.ends) as "messages!"
             from d order by d.day"#,
        from,
        to
    )
    .fetch_all(conn)
    .await
}

/// Users total, new and active by day; projects by status; applications and
/// messages by day; users by plan. Days are UTC; at most 366 of them.
#[utoipa::path(get, path = "/admin/analytics/overview", tag = "admin",
    params(StatsParams), security(("bearer" = ["analytics.read"])),
    responses((status = 200, body = Overview), Unauthorized, Forbidden, Validation))]
pub async fn overview(
    State(state): State<AppState>,
    _caller: Holding<permission::AnalyticsRead>,
    AppQuery(params): AppQuery<StatsParams>,
) -> Result<Json<Overview>, ApiError> {
    let (from, to) = period(&params)?;
    // Counts over every row, whoever may read them: the permission was
    // demanded above, and nothing but numbers leaves.
    let mut tx = state.db.read_transaction(&Actor::Service).await?;
    let projects_by_status = sqlx::query_as!(
        Bucket,
        r#"select status as "key!", sum(n)::int8 as "count!" from project_status_counts
            group by status having sum(n) <> 0 order by status"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let subscriptions_by_plan = sqlx::query_as!(
        Bucket,
        r#"select plan as "key!", count(*) as "count!" from users
            where deactivated_at is null group by plan order by plan"#
    )
    .fetch_all(&mut *tx)
    .await?;
    let days = days(&mut tx, from, to).await?;
    let series = |count: fn(&Day) -> i64| {
        days.iter()
            .map(|d| DayCount {
                day: d.day,
                count: count(d),
            })
            .collect()
    };
    Ok(Json(Overview {
        from,
        to,
        users: UserStats {
            // Every active account has exactly one plan.
            total: subscriptions_by_plan.iter().map(|b| b.count).sum(),
            new: series(|d| d.new_users),
            active: series(|d| d.active_users),
        },
        projects_by_status,
        applications: series(|d| d.applications),
        messages: series(|d| d.messages),
        subscriptions_by_plan,
    }))
}
