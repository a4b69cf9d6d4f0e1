//! Project search (API.md §5): filters, facets, the five orders and their
//! keyset cursors, the typo-tolerant second try, and the query cache for
//! anonymous callers.

pub mod store;

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse as _, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use self::store::Filters;
use super::model::{Project, ProjectStatus};
use crate::{
    auth::{MaybeAuthUser, permission},
    http::{
        ApiError, AppQuery, FieldError,
        openapi::Validation,
        pagination::{self, Key, Page},
    },
    money::{self, Currency},
    query_cache::{CACHE_STATUS, Lookup},
    search::{CommaList, Words, too_long},
    state::AppState,
};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words; every one must match the title, summary, skills or description
    /// (prefixes count). When they find nothing, each word may instead match
    /// a title word close to it (typos).
    pub q: Option<String>,
    /// Comma-separated statuses. Default: every status the caller may see.
    /// `open`, `in_progress` and `completed` are public; `draft`, `cancelled`
    /// and `archived` find only the caller's own projects (every one for
    /// `projects.moderate`), so anonymously they find nothing.
    #[param(value_type = Option<Vec<ProjectStatus>>, inline, style = Form, explode = false)]
    pub status: Option<CommaList<ProjectStatus, 6>>,
    /// Comma-separated categories: projects in any of them.
    #[param(value_type = Option<String>)]
    pub category: Option<CommaList<String, 20>>,
    /// Comma-separated: projects with any of these skills.
    #[param(value_type = Option<String>)]
    pub skills: Option<CommaList<String, 30>>,
    /// Comma-separated: projects with all of these skills.
    #[param(value_type = Option<String>)]
    pub skills_all: Option<CommaList<String, 30>>,
    /// Projects whose `budget.max` is at least this (minor units).
    pub budget_min: Option<i64>,
    /// Projects whose `budget.min` is at most this (minor units).
    pub budget_max: Option<i64>,
    pub currency: Option<String>,
    pub remote: Option<bool>,
    /// Exact location, ignoring case.
    pub location: Option<String>,
    pub owner_id: Option<Uuid>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// `relevance` (needs `q`; the default with `q`), `newest` (the default
    /// without), `oldest`, `budget_high`, `budget_low`.
    #[param(inline)]
    pub sort: Option<Sort>,
    /// Comma-separated facets: counts over the whole filtered set, exact
    /// while at most 10,000 projects match and possibly estimated above
    /// (`facets_exact`).
    #[param(value_type = Option<Vec<Facet>>, inline, style = Form, explode = false)]
    pub facets: Option<CommaList<Facet, 3>>,
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// One value of a facet and how many projects have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: i64,
}

/// A page of projects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectPage {
    pub items: Vec<Project>,
    pub next_cursor: Option<String>,
    /// Present when `facets` was asked for: the 20 most frequent values of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<HashMap<String, Vec<FacetValue>>>,
    /// With `facets`: `true` when the counts are exact, as they are while at
    /// most 10,000 projects match; above that they may be estimates (`false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets_exact: Option<bool>,
}

/// Where a page of a project search ended: the shared keyset position, in
/// one of the five orders.
type Position = pagination::Position<Sort>;

/// The position after `row` in `sort` order; `fuzzy` is the typo-tolerant mode.
fn position_after(sort: Sort, row: &store::SearchRow, fuzzy: bool) -> Position {
    let p = &row.project;
    let key = match sort {
        Sort::Newest | Sort::Oldest => Key::Time(p.created_at),
        Sort::BudgetHigh => Key::Int(p.budget_max.unwrap_or(-1)),
        Sort::BudgetLow => Key::Int(p.budget_min.unwrap_or(i64::MAX)),
        Sort::Relevance => Key::Float(row.rank),
    };
    Position {
        order: sort,
        key,
        id: p.id,
        fuzzy,
    }
}

/// The order of a project search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProjectSort, rename_all = "snake_case")]
pub enum Sort {
    Relevance,
    Newest,
    Oldest,
    BudgetHigh,
    BudgetLow,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, "invalid", message)])
}

/// The order asked for, or the default: relevance with words, else newest.
fn choose_sort(sort: Option<Sort>, has_words: bool) -> Result<Sort, ApiError> {
    match sort {
        None if has_words => Ok(Sort::Relevance),
        None => Ok(Sort::Newest),
        Some(Sort::Relevance) if !has_words => Err(invalid("sort", "`relevance` needs `q`.")),
        Some(sort) => Ok(sort),
    }
}

fn parse_filters(params: &SearchParams) -> Result<Filters, ApiError> {
    let errors: Vec<FieldError> = [
        too_long("q", params.q.as_deref(), 200),
        too_long("location", params.location.as_deref(), 100),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let currency = match params.currency.as_deref() {
        None => None,
        Some(code) => Some(
            Currency::parse(code)
                .ok_or_else(|| ApiError::validation(vec![money::invalid_currency("currency")]))?
                .into_string(),
        ),
    };
    for (field, value) in [
        ("budget_min", params.budget_min),
        ("budget_max", params.budget_max),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(ApiError::validation(vec![FieldError::new(
                field,
                "out_of_range",
                "0 or more.",
            )]));
        }
    }
    let words = params.q.as_deref().and_then(Words::parse);
    Ok(Filters {
        all_words: words.as_ref().map(Words::all),
        any_words: words.as_ref().map(Words::any),
        text: words.as_ref().map(Words::text),
        words: words.map(|w| w.list),
        fuzzy: false,
        statuses: params.status.clone().map(CommaList::into_vec),
        categories: params.category.clone().map(CommaList::into_vec),
        skills_any: params.skills.clone().map(CommaList::into_vec),
        skills_all: params.skills_all.clone().map(CommaList::into_vec),
        budget_min: params.budget_min,
        budget_max: params.budget_max,
        currency,
        remote: params.remote,
        location: params.location.clone().filter(|l| !l.trim().is_empty()),
        owner_id: params.owner_id,
        created_after: params.created_after,
        created_before: params.created_before,
        matching: None,
        own_by_prefix: false,
    })
}

/// Who is searching, as far as visibility goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Searcher {
    Anonymous,
    User(Uuid),
    Moderator,
}

impl Searcher {
    fn of(caller: &MaybeAuthUser) -> Self {
        match &caller.0 {
            None => Self::Anonymous,
            Some(user) if user.can::<permission::ProjectsModerate>() => Self::Moderator,
            Some(user) => Self::User(user.id),
        }
    }
}

/// Narrows asked-for statuses to what the searcher may see, so a search that
/// can only find nothing is answered without a query (`false`): a hidden
/// status (draft, cancelled, archived) looked for along the newest index
/// reads all of it (migrations/0014). Hidden projects are their owner's and
/// moderators' only, as the `project_listings` view has it.
fn narrow_to_visible(filters: &mut Filters, searcher: Searcher) -> bool {
    let Some(statuses) = filters.statuses.as_mut() else {
        return true;
    };
    let is_public = |s: &ProjectStatus| s.is_public();
    match searcher {
        Searcher::Moderator => true,
        Searcher::Anonymous => {
            statuses.retain(is_public);
            !statuses.is_empty()
        }
        Searcher::User(me) => {
            if filters.owner_id.is_some_and(|owner| owner != me) {
                statuses.retain(is_public);
                !statuses.is_empty()
            } else {
                if !statuses.iter().any(is_public) {
                    filters.owner_id = Some(me);
                }
                true
            }
        }
    }
}

/// A facet of a project search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ProjectFacet, rename_all = "snake_case")]
pub enum Facet {
    Category,
    Skills,
    Status,
}

impl Facet {
    fn as_str(self) -> &'static str {
        match self {
            Self::Category => "category",
            Self::Skills => "skills",
            Self::Status => "status",
        }
    }
}

/// Every facet asked for, each with its counted `(facet, value, count)` rows.
fn group_facets(
    asked: &[Facet],
    counted: Vec<(String, String, i64)>,
) -> HashMap<String, Vec<FacetValue>> {
    let mut by_facet: HashMap<String, Vec<FacetValue>> = asked
        .iter()
        .map(|f| (f.as_str().to_owned(), Vec::new()))
        .collect();
    for (facet, value, count) in counted {
        if let Some(values) = by_facet.get_mut(&facet) {
            values.push(FacetValue { value, count });
        }
    }
    by_facet
}

/// Search projects.
#[utoipa::path(get, path = "/projects", tag = "projects", params(SearchParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, body = ProjectPage, headers(("Cache-Status" = String,
            description = "RFC 9211: `rabt; hit` when the answer came from the query \
                cache (anonymous searches only), else `rabt; fwd=miss` or `rabt; fwd=bypass`"))),
        Validation,
    ))]
pub async fn search_projects(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Response, ApiError> {
    let limit = pagination::limit(params.limit)?;
    let mut filters = parse_filters(&params)?;
    let facets = params
        .facets
        .clone()
        .map(CommaList::into_vec)
        .unwrap_or_default();
    let sort = choose_sort(params.sort, filters.all_words.is_some())?;
    let position: Option<Position> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    filters.fuzzy = position.as_ref().is_some_and(|p| p.fuzzy);
    let searcher = Searcher::of(&caller);
    if !narrow_to_visible(&mut filters, searcher) {
        let nothing = ProjectPage {
            items: Vec::new(),
            next_cursor: None,
            facets: (!facets.is_empty()).then(|| group_facets(&facets, Vec::new())),
            facets_exact: (!facets.is_empty()).then_some(true),
        };
        let body = serde_json::to_vec(&nothing).map_err(ApiError::internal)?;
        return Ok(json_body(body.into(), Lookup::Off.status()));
    }
    // Every anonymous caller sees the same projects and owners' names, so
    // they share answers; a signed-in caller may also see their own drafts
    // and private profile.
    let lookup = if searcher == Searcher::Anonymous {
        let query = SearchQuery {
            filters: &filters,
            sort,
            limit,
            facets: &facets,
            cursor: params.cursor.as_deref(),
        };
        state.query_cache.lookup("projects", &query).await
    } else {
        Lookup::Off
    };
    let cache_status = lookup.status();
    let slot = match lookup {
        Lookup::Hit(body) => return Ok(json_body(Bytes::from_owner(body), cache_status)),
        Lookup::Miss(slot) => Some(slot),
        Lookup::Off => None,
    };
    // The typo-tolerant retry of a search with words sets its threshold for
    // the rest of the transaction (`store::widen_typos`).
    let mut tx = if filters.all_words.is_some() {
        state.db.read_transaction(&caller.actor()).await?
    } else {
        state.db.read(&caller.actor()).await?
    };
    // Prefixes asked for as the words of public projects they stand for. A
    // moderator may find anyone's drafts, whose words are not known there.
    if let Some(words) = filters.words.as_deref()
        && searcher != Searcher::Moderator
    {
        filters.matching = store::expand_words(&mut tx, words).await?;
        filters.own_by_prefix = matches!(searcher, Searcher::User(_));
    }
    let page = find_page(
        &state,
        &mut tx,
        &mut filters,
        sort,
        limit,
        position,
        &facets,
    )
    .await?;
    let body = serde_json::to_vec(&page).map_err(ApiError::internal)?;
    if let Some(slot) = slot {
        state.query_cache.keep(slot, &body).await;
    }
    Ok(json_body(body.into(), cache_status))
}

/// Everything an anonymous search's answer depends on: its query-cache key.
#[derive(Serialize)]
struct SearchQuery<'a> {
    filters: &'a Filters,
    sort: Sort,
    limit: i64,
    facets: &'a [Facet],
    cursor: Option<&'a str>,
}

/// A JSON body that is already serialised.
fn json_body(body: Bytes, cache_status: HeaderValue) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (CACHE_STATUS.clone(), cache_status),
        ],
        body,
    )
        .into_response()
}

/// The page of a search after `position`, and its facets if asked for.
async fn find_page(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    filters: &mut Filters,
    sort: Sort,
    limit: i64,
    position: Option<Position>,
    facets: &[Facet],
) -> Result<ProjectPage, ApiError> {
    let fetch = limit + 1;
    let facets_up_to = if facets.is_empty() {
        None
    } else {
        Some(i64::from(state.settings.search_facets_exact_up_to))
    };
    let (mut rows, mut counted) =
        run_search(tx, sort, filters, position.as_ref(), fetch, facets_up_to).await?;
    // The words found nothing: let each one match a close title word (typos).
    if rows.is_empty() && position.is_none() && filters.all_words.is_some() {
        filters.fuzzy = true;
        (rows, counted) = run_search(tx, sort, filters, None, fetch, facets_up_to).await?;
    }
    let counted = match (counted, facets_up_to) {
        (Some(counted), _) => Some(counted),
        (None, Some(up_to)) => Some(store::facets(tx, filters, up_to).await?),
        (None, None) => None,
    };
    let fuzzy = filters.fuzzy;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| {
        position_after(sort, last, fuzzy)
    })?
    .map(|r| Project::new(r.project, r.owner_name));
    Ok(ProjectPage {
        items: page.items,
        next_cursor: page.next_cursor,
        facets_exact: counted.as_ref().map(|c| c.exact),
        facets: counted.map(|c| group_facets(facets, c.counted)),
    })
}

/// The facets counted with a page, when one query found both.
type Counted = Option<store::FacetCounts>;

/// One page in `sort` order after `position` (which must belong to that sort).
/// With facets (exact up to `facets_up_to` matches), a relevance search counts
/// them in the same scan of the matches; other sorts find their page along an
/// index, and leave the facets to a query of their own.
async fn run_search(
    tx: &mut sqlx::PgConnection,
    sort: Sort,
    f: &Filters,
    position: Option<&Position>,
    fetch: i64,
    facets_up_to: Option<i64>,
) -> Result<(Vec<store::SearchRow>, Counted), ApiError> {
    use store::Order;
    if f.fuzzy {
        store::widen_typos(tx).await?;
    }
    if let (Some(up_to), Sort::Relevance) = (facets_up_to, sort) {
        let after = match position.map(|p| p.within(&Sort::Relevance)).transpose()? {
            None => None,
            Some((Key::Float(r), id)) => Some((*r, id)),
            Some(_) => return Err(pagination::wrong_order()),
        };
        return Ok(store::search_relevance_with_facets(tx, f, after, fetch, up_to).await?);
    }
    let after = position.map(|p| p.within(&sort)).transpose()?;
    let order = match (sort, after) {
        (Sort::Newest, None) => Order::Newest(None),
        (Sort::Newest, Some((Key::Time(t), id))) => Order::Newest(Some((*t, id))),
        (Sort::Oldest, None) => Order::Oldest(None),
        (Sort::Oldest, Some((Key::Time(t), id))) => Order::Oldest(Some((*t, id))),
        (Sort::BudgetHigh, None) => Order::BudgetHigh(None),
        (Sort::BudgetHigh, Some((Key::Int(b), id))) => Order::BudgetHigh(Some((*b, id))),
        (Sort::BudgetLow, None) => Order::BudgetLow(None),
        (Sort::BudgetLow, Some((Key::Int(b), id))) => Order::BudgetLow(Some((*b, id))),
        (Sort::Relevance, None) => Order::Relevance(None),
        (Sort::Relevance, Some((Key::Float(r), id))) => Order::Relevance(Some((*r, id))),
        _ => return Err(pagination::wrong_order()),
    };
    Ok((store::search(tx, f, order, fetch).await?, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(statuses: &[&str], owner_id: Option<Uuid>) -> Filters {
        Filters {
            statuses: Some(
                statuses
                    .iter()
                    .map(|s| ProjectStatus::parse(s).unwrap())
                    .collect(),
            ),
            owner_id,
            ..Filters::default()
        }
    }

    #[test]
    fn anonymous_searches_for_hidden_statuses_need_no_query() {
        let mut filters = asking(&["draft", "archived"], None);
        assert!(!narrow_to_visible(&mut filters, Searcher::Anonymous));
    }

    #[test]
    fn anonymous_searches_keep_only_the_public_statuses() {
        let mut filters = asking(&["draft", "open"], None);
        assert!(narrow_to_visible(&mut filters, Searcher::Anonymous));
        assert_eq!(filters.statuses, Some(vec![ProjectStatus::Open]));
    }

    #[test]
    fn a_users_search_for_hidden_statuses_is_a_search_of_their_own_projects() {
        let me = Uuid::new_v4();
        let mut filters = asking(&["draft", "cancelled"], None);
        assert!(narrow_to_visible(&mut filters, Searcher::User(me)));
        assert_eq!(filters.owner_id, Some(me));
        assert_eq!(filters.statuses.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn a_users_search_for_someone_elses_hidden_projects_needs_no_query() {
        let mut filters = asking(&["draft"], Some(Uuid::new_v4()));
        assert!(!narrow_to_visible(
            &mut filters,
            Searcher::User(Uuid::new_v4())
        ));
    }

    #[test]
    fn a_users_mixed_search_keeps_every_owner() {
        let me = Uuid::new_v4();
        let mut filters = asking(&["draft", "open"], None);
        assert!(narrow_to_visible(&mut filters, Searcher::User(me)));
        assert_eq!(filters.owner_id, None);
        assert_eq!(filters.statuses.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn moderators_search_every_status_of_everyone() {
        let mut filters = asking(&["draft", "archived"], None);
        assert!(narrow_to_visible(&mut filters, Searcher::Moderator));
        assert_eq!(filters.owner_id, None);
        assert_eq!(filters.statuses.as_ref().map(Vec::len), Some(2));
    }
}
