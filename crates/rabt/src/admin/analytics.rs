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

/// Which table a daily series counts.
#[derive(Clone, Copy)]
enum Series {
    NewUsers,
    ActiveUsers,
    Applications,
    Messages,
}

async fn series(
    conn: &mut PgConnection,
    which: Series,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayCount>, sqlx::Error> {
    // One statement per table: each reads its own creation-time index.
    macro_rules! by_day {
        ($sql:literal) => {
            sqlx::query_as!(DayCount, $sql, from, to)
                .fetch_all(&mut *conn)
                .await
        };
    }
    match which {
        Series::NewUsers => by_day!(
            r#"select d.day::date as "day!", count(u.id) as "count!"
                 from generate_series($1::date, $2::date, interval '1 day') d(day)
                 left join users u
                   on u.created_at >= (d.day at time zone 'utc')
                  and u.created_at < ((d.day + interval '1 day') at time zone 'utc')
                group by d.day order by d.day"#
        ),
        Series::ActiveUsers => by_day!(
            r#"select d.day::date as "day!", count(distinct s.user_id) as "count!"
                 from generate_series($1::date, $2::date, interval '1 day') d(day)
                 left join sessions s
                   on s.created_at >= (d.day at time zone 'utc')
                  and s.created_at < ((d.day + interval '1 day') at time zone 'utc')
                group by d.day order by d.day"#
        ),
        Series::Applications => by_day!(
            r#"select d.day::date as "day!", count(a.id) as "count!"
                 from generate_series($1::date, $2::date, interval '1 day') d(day)
                 left join applications a
                   on a.created_at >= (d.day at time zone 'utc')
                  and a.created_at < ((d.day + interval '1 day') at time zone 'utc')
                group by d.day order by d.day"#
        ),
        Series::Messages => by_day!(
            r#"select d.day::date as "day!", count(m.id) as "count!"
                 from generate_series($1::date, $2::date, interval '1 day') d(day)
                 left join messages m
                   on m.created_at >= (d.day at time zone 'utc')
                  and m.created_at < ((d.day + interval '1 day') at time zone 'utc')
                group by d.day order by d.day"#
        ),
    }
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
    let total = sqlx::query_scalar!(
        r#"select count(*) as "count!" from users where deactivated_at is null"#
    )
    .fetch_one(&mut *tx)
    .await?;
    let projects_by_status = sqlx::query_as!(
        Bucket,
        r#"select status as "key!", count(*) as "count!" from projects
            group by status order by status"#
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
    Ok(Json(Overview {
        from,
        to,
        users: UserStats {
            total,
            new: series(&mut tx, Series::NewUsers, from, to).await?,
            active: series(&mut tx, Series::ActiveUsers, from, to).await?,
        },
        projects_by_status,
        applications: series(&mut tx, Series::Applications, from, to).await?,
        messages: series(&mut tx, Series::Messages, from, to).await?,
        subscriptions_by_plan,
    }))
}
