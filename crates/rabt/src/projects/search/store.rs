//! SQL of the project search: the filters, one statement per order (and the
//! listing's own two), the facets and their estimate. Reads the
//! `project_listings` view, which states the visibility rule where the planner
//! can use the search indexes (migrations/0008); the transaction's actor
//! decides the rest.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, Postgres, postgres::PgArguments, query::QueryAs};
use uuid::Uuid;

use crate::projects::{model::ProjectStatus, store::ProjectRow};

macro_rules! project_columns {
    () => {
        "p.id, p.owner_id, p.title, p.summary, p.description, p.description_html, p.category, \
         p.skills, p.budget_min, p.budget_max, p.currency, p.remote, p.location, p.status, \
         p.application_count, p.created_at, p.updated_at, p.published_at"
    };
}

/// The display name of the row's owner, if the actor may see their profile
/// (row-level security on `users` decides, as for any read of it).
macro_rules! owner_name {
    () => {
        "(select u.display_name from users u where u.id = p.owner_id) as owner_name"
    };
}

/// The filters of a project search; every one optional. Serialised, they key
/// the query cache.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Filters {
    /// Every word as a prefix (`w1:* & w2:*`).
    pub all_words: Option<String>,
    /// Any word as a prefix (`w1:* | w2:*`), for the typo-tolerant mode.
    pub any_words: Option<String>,
    /// The words, each checked on its own in the typo-tolerant mode.
    pub words: Option<Vec<String>>,
    /// The words as text, for trigram similarity with the title.
    pub text: Option<String>,
    /// Each word matches by prefix or, failing that, by a title word close to
    /// it (typos); used when the exact words find nothing.
    pub fuzzy: bool,
    pub statuses: Option<Vec<ProjectStatus>>,
    pub categories: Option<Vec<String>>,
    pub skills_any: Option<Vec<String>>,
    pub skills_all: Option<Vec<String>>,
    pub budget_min: Option<i64>,
    pub budget_max: Option<i64>,
    pub currency: Option<String>,
    pub remote: Option<bool>,
    pub location: Option<String>,
    pub owner_id: Option<Uuid>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    /// The words to match, each prefix asked for as the words it stands for
    /// where they are few ([`expand_words`]); `None`: `all_words` itself.
    /// Derived from `words`, so not part of the cache key.
    #[serde(skip)]
    pub matching: Option<String>,
    /// With `matching`: the searcher's own projects may be drafts, whose words
    /// [`expand_words`] does not know, so those match by the prefixes.
    #[serde(skip)]
    pub own_by_prefix: bool,
}

impl Filters {
    /// The statuses, when they are the only filter: a plain listing.
    fn listing_statuses(&self) -> Option<&[ProjectStatus]> {
        let Self {
            all_words,
            any_words,
            words,
            text,
            fuzzy,
            statuses,
            categories,
            skills_any,
            skills_all,
            budget_min,
            budget_max,
            currency,
            remote,
            location,
            owner_id,
            created_after,
            created_before,
            matching,
            own_by_prefix: _,
        } = self;
        let unfiltered = all_words.is_none()
            && any_words.is_none()
            && words.is_none()
            && text.is_none()
            && !fuzzy
            && categories.is_none()
            && skills_any.is_none()
            && skills_all.is_none()
            && budget_min.is_none()
            && budget_max.is_none()
            && currency.is_none()
            && remote.is_none()
            && location.is_none()
            && owner_id.is_none()
            && created_after.is_none()
            && created_before.is_none()
            && matching.is_none();
        statuses.as_deref().filter(|_| unfiltered)
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct SearchRow {
    #[sqlx(flatten)]
    pub project: ProjectRow,
    pub owner_name: Option<String>,
    pub rank: f64,
}

/// The conditions of every filter on the projects `p`: `$1`–`$3` words,
/// `$4`–`$15` filters, `$19`/`$20` the typo-tolerant mode's any-word query and
/// text, `$21`/`$22` the words to match and whether the searcher's own
/// projects match by prefix ([`Filters::matching`]). `$16`/`$17` (keyset) and
/// `$18` (limit) belong to the query around it. A macro, so every query stays
/// static text.
macro_rules! filter_conditions {
    () => {
        " ($1::text is null \
                 or (not $3 and $21::text is null and p.search @@ to_tsquery('simple', $1)) \
                 or (not $3 and $21::text is not null \
                     and (p.search @@ $21::tsquery \
                          or ($22 and p.owner_id = (select auth.uid()) \
                              and p.search @@ to_tsquery('simple', $1)))) \
                 or ($3 and (p.search @@ to_tsquery('simple', $19) \
                             or $20 operator(extensions.<%) p.title) \
                     and not exists (select 1 from unnest($2::text[]) w \
                                     where not (p.search @@ to_tsquery('simple', w || ':*') \
                                                or w operator(extensions.<%) p.title)))) \
            and ($4::text[] is null or p.status = any($4)) \
            and ($5::text[] is null or p.category = any($5)) \
            and ($6::text[] is null or p.skills && $6) \
            and ($7::text[] is null or p.skills @> $7) \
            and ($8::int8 is null or p.budget_max >= $8) \
            and ($9::int8 is null or p.budget_min <= $9) \
            and ($10::text is null or p.currency = $10) \
            and ($11::bool is null or p.remote = $11) \
            and ($12::text is null or lower(p.location) = lower($12)) \
            and ($13::uuid is null or p.owner_id = $13) \
            and ($14::timestamptz is null or p.created_at >= $14) \
            and ($15::timestamptz is null or p.created_at < $15) "
    };
}

/// The visible projects that pass every filter ([`filter_conditions`]).
macro_rules! filtered_projects {
    () => {
        concat!(" from project_listings p where ", filter_conditions!())
    };
}

/// The relevance of a match: its rank for the words, plus the title's
/// closeness to them in the typo-tolerant mode.
macro_rules! relevance {
    () => {
        "(case when $3 then ts_rank(p.search, to_tsquery('simple', $19)) \
                            + extensions.word_similarity($20, p.title) \
               else ts_rank(p.search, to_tsquery('simple', $1)) end)::float8"
    };
}

/// From the matches in `f` (category, skills, status), `(facet, value, n)`
/// for the 20 most frequent values of each facet, as the CTEs `counted` and
/// `ranked` (`place` ≤ 20 selects them).
macro_rules! facet_counts {
    () => {
        "counted as ( \
             select 'category' as facet, category as value, count(*) as n from f \
                 where category is not null group by category \
             union all \
             select 'skills', s, count(*) from f, unnest(f.skills) s group by s \
             union all \
             select 'status', status, count(*) from f group by status), \
         ranked as ( \
             select facet, value, n, \
                    row_number() over (partition by facet order by n desc, value) as place \
             from counted)"
    };
}

/// The words as a `tsquery` that asks for each prefix as the words of public
/// projects it stands for, when there are at most 32 of them (migrations/0030):
/// the same matches, found faster. `None` when no prefix was replaced. Only
/// for matching: ranking keeps the prefixes, which weigh words differently.
/// A word the parser does not read as one word of its own (`full-stack`,
/// which it also splits) keeps its prefix; one it reads as no word at all is
/// left out, as `to_tsquery` leaves it out.
pub async fn expand_words(
    conn: &mut PgConnection,
    words: &[String],
) -> Result<Option<String>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select string_agg('(' || coalesce(x.exact, nullif(p.prefix, '')) || ')', ' & '
                             order by u.n) as query,
                  coalesce(bool_or(x.exact is not null), false) as "expanded!"
           from unnest($1::text[]) with ordinality u (w, n)
           cross join lateral (select to_tsquery('simple', u.w || ':*')::text as prefix) p
           left join lateral (
               select string_agg(
                          '''' || replace(replace(s.word, '\', '\\'), '''', '''''') || '''',
                          ' | ') as exact
               from (select word from project_search_words
                     where word >= u.w collate "C"
                       and word < (u.w || chr(1114111)) collate "C"
                     order by word limit 33) s
               having count(*) between 1 and 32) x
             on p.prefix = '''' || u.w || ''':*'"#,
        words,
    )
    .fetch_one(conn)
    .await?;
    Ok(row.query.filter(|_| row.expanded))
}

/// For the rest of the transaction, a word matches a title word whose trigram
/// similarity is at least 0.5 (pg_trgm's default, 0.6, misses one wrong letter
/// in a six-letter word).
/// Needs a transaction (`Db::read_transaction`, not an anonymous `Db::read`).
pub async fn widen_typos(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("select set_config('pg_trgm.word_similarity_threshold', '0.5', true)")
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// A keyset position: the sort key and the id.
pub type After<K> = Option<(K, Uuid)>;

fn split<K>(after: After<K>) -> (Option<K>, Option<Uuid>) {
    after.map_or((None, None), |(k, id)| (Some(k), Some(id)))
}

/// Newest first; keyset on (created_at, id).
const NEWEST: &str = concat!(
    "select ",
    project_columns!(),
    ", ",
    owner_name!(),
    ", 0::float8 as rank",
    filtered_projects!(),
    " and ($16::timestamptz is null or (p.created_at, p.id) < ($16, $17)) \
     order by p.created_at desc, p.id desc limit $18"
);

/// Oldest first; keyset on (created_at, id).
const OLDEST: &str = concat!(
    "select ",
    project_columns!(),
    ", ",
    owner_name!(),
    ", 0::float8 as rank",
    filtered_projects!(),
    " and ($16::timestamptz is null or (p.created_at, p.id) > ($16, $17)) \
     order by p.created_at, p.id limit $18"
);

/// Highest `budget.max` first; projects without a budget last.
const BUDGET_HIGH: &str = concat!(
    "select ",
    project_columns!(),
    ", ",
    owner_name!(),
    ", 0::float8 as rank",
    filtered_projects!(),
    " and ($16::int8 is null or (coalesce(p.budget_max, -1), p.id) < ($16, $17)) \
     order by coalesce(p.budget_max, -1) desc, p.id desc limit $18"
);

/// Lowest `budget.min` first; projects without a budget last.
const BUDGET_LOW: &str = concat!(
    "select ",
    project_columns!(),
    ", ",
    owner_name!(),
    ", 0::float8 as rank",
    filtered_projects!(),
    " and ($16::int8 is null \
          or (coalesce(p.budget_min, 9223372036854775807), p.id) > ($16, $17)) \
     order by coalesce(p.budget_min, 9223372036854775807), p.id limit $18"
);

/// The listing's first page: newest first, no words, no filter but the
/// statuses. Its own statements, without the general ones' `$n is null or …`
/// branches: Postgres can use the indexes for those only in a plan made for
/// each execution's values, so the general statements are planned on every
/// execution, while these two are planned once per connection. The listing is
/// the hottest query (docs/PERFORMANCE.md).
const LISTING_FIRST: &str = concat!(
    "select ",
    project_columns!(),
    ", ",
    owner_name!(),
    ", 0::float8 as rank from project_listings p where p.status = any($1) \
     order by p.created_at desc, p.id desc limit $2"
);

/// The listing's later pages: keyset on (created_at, id).
const LISTING_AFTER: &str = concat!(
    "select ",
    project_columns!(),
    ", ",
    owner_name!(),
    ", 0::float8 as rank from project_listings p where p.status = any($1) \
       and (p.created_at, p.id) < ($2, $3) \
     order by p.created_at desc, p.id desc limit $4"
);

/// By relevance to the words (needs them).
const RELEVANCE: &str = concat!(
    "select * from (select ",
    project_columns!(),
    ", ",
    owner_name!(),
    ", ",
    relevance!(),
    " as rank",
    filtered_projects!(),
    ") s where ($16::float8 is null or (s.rank, s.id) < ($16, $17)) \
     order by s.rank desc, s.id desc limit $18"
);

/// The order of a search, with the keyset position after which its page
/// starts.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    Newest(After<DateTime<Utc>>),
    Oldest(After<DateTime<Utc>>),
    BudgetHigh(After<i64>),
    BudgetLow(After<i64>),
    Relevance(After<f64>),
}

// The searches are checked at run time (the project search tests run every
// order): `query_as!` needs one literal per query, and each order needs its own
// keyset predicate and ORDER BY to walk its index (docs/PERFORMANCE.md), so the
// orders and the facets share the filter text through `concat!` instead.

/// Binds `$1`–`$22`: the filters around the keyset and limit of one order.
fn bind_filters<'q, O, K>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    f: &'q Filters,
    after: After<K>,
    limit: Option<i64>,
) -> QueryAs<'q, Postgres, O, PgArguments>
where
    K: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
{
    let (key, id) = split(after);
    query
        .bind(&f.all_words)
        .bind(&f.words)
        .bind(f.fuzzy)
        .bind(&f.statuses)
        .bind(&f.categories)
        .bind(&f.skills_any)
        .bind(&f.skills_all)
        .bind(f.budget_min)
        .bind(f.budget_max)
        .bind(&f.currency)
        .bind(f.remote)
        .bind(&f.location)
        .bind(f.owner_id)
        .bind(f.created_after)
        .bind(f.created_before)
        .bind(key)
        .bind(id)
        .bind(limit)
        .bind(&f.any_words)
        .bind(&f.text)
        .bind(&f.matching)
        .bind(f.own_by_prefix)
}

/// A page of the visible projects that pass `f`, in `order`.
pub async fn search(
    conn: &mut PgConnection,
    f: &Filters,
    order: Order,
    limit: i64,
) -> Result<Vec<SearchRow>, sqlx::Error> {
    if let Order::Newest(after) = order
        && let Some(statuses) = f.listing_statuses()
    {
        let query = match after {
            None => sqlx::query_as(LISTING_FIRST).bind(statuses).bind(limit),
            Some((created_at, id)) => sqlx::query_as(LISTING_AFTER)
                .bind(statuses)
                .bind(created_at)
                .bind(id)
                .bind(limit),
        };
        return query.fetch_all(conn).await;
    }
    let sql = match order {
        Order::Newest(_) => NEWEST,
        Order::Oldest(_) => OLDEST,
        Order::BudgetHigh(_) => BUDGET_HIGH,
        Order::BudgetLow(_) => BUDGET_LOW,
        Order::Relevance(_) => RELEVANCE,
    };
    let query = sqlx::query_as(sql);
    let query = match order {
        Order::Newest(after) | Order::Oldest(after) => bind_filters(query, f, after, Some(limit)),
        Order::BudgetHigh(after) | Order::BudgetLow(after) => {
            bind_filters(query, f, after, Some(limit))
        }
        Order::Relevance(after) => bind_filters(query, f, after, Some(limit)),
    };
    query.fetch_all(conn).await
}

/// Facet counts: `(facet, value, count)`, the most frequent values of each
/// facet first (at most 20 each).
#[derive(Debug, Clone, Default)]
pub struct FacetCounts {
    pub counted: Vec<(String, String, i64)>,
    /// `false` when the counts are estimates from a sample of the matches.
    pub exact: bool,
}

/// How many rows of the table an estimate samples per exactly counted match
/// it replaces: the sample of an estimate reads about twice the rows an exact
/// count may read.
const SAMPLE_ROWS_PER_EXACT: i64 = 2;

/// An estimate from fewer matching rows than this (or than the exact limit,
/// if lower) is not trusted: the facets are counted exactly instead.
const FEWEST_SAMPLED_MATCHES: i64 = 100;

/// [`FEWEST_SAMPLED_MATCHES`] in SQL.
macro_rules! fewest_sampled {
    () => {
        "100"
    };
}

/// A number in 0..65536 from the last two bytes of a project's id, random
/// in ids made by `uuid_v7()` (and in any version-4 id): ids below a bound
/// are a sample of the rows, the same one every time.
macro_rules! sample_key {
    () => {
        "(get_byte(uuid_send(p.id), 14) * 256 + get_byte(uuid_send(p.id), 15))"
    };
}

/// The facets of the whole filtered set: counted exactly while at most
/// `exact_up_to` projects match, else estimated from a sample of the table.
/// Each stage reads a bounded number of rows; only an estimate whose sample
/// found too few matches to trust falls back to counting them all.
pub async fn facets(
    conn: &mut PgConnection,
    f: &Filters,
    exact_up_to: i64,
) -> Result<FacetCounts, sqlx::Error> {
    let (counted, matched) = count_facets(conn, f, Some(exact_up_to + 1)).await?;
    if matched <= exact_up_to {
        return Ok(FacetCounts {
            counted,
            exact: true,
        });
    }
    let (counted, sampled, percent) =
        sample_facets(conn, f, exact_up_to * SAMPLE_ROWS_PER_EXACT).await?;
    if percent >= 100.0 {
        return Ok(FacetCounts {
            counted,
            exact: true,
        });
    }
    if sampled < FEWEST_SAMPLED_MATCHES.min(exact_up_to) {
        let (counted, _) = count_facets(conn, f, None).await?;
        return Ok(FacetCounts {
            counted,
            exact: true,
        });
    }
    Ok(FacetCounts {
        counted,
        exact: false,
    })
}

/// The facets of the first `limit` matches (all without a limit) and how
/// many matches they were.
async fn count_facets(
    conn: &mut PgConnection,
    f: &Filters,
    limit: Option<i64>,
) -> Result<(Vec<(String, String, i64)>, i64), sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> = bind_filters(
        sqlx::query_as(concat!(
            "with f as materialized (select p.category, p.skills, p.status",
            filtered_projects!(),
            " and $16::int8 is null and $17::uuid is null limit $18), ",
            facet_counts!(),
            " ",
            "select facet, value, n, (select count(*) from f) as matched \
             from ranked where place <= 20 \
             order by facet, n desc, value"
        )),
        f,
        None::<(i64, Uuid)>,
        limit,
    )
    .fetch_all(conn)
    .await?;
    let matched = rows.first().map_or(0, |r| r.3);
    Ok((
        rows.into_iter().map(|(f, v, n, _)| (f, v, n)).collect(),
        matched,
    ))
}

/// The facets estimated from a sample of about `rows` rows of the table (its
/// pages at random, the same ones every time while the table stays as it is),
/// scaled to the whole table; with how many sampled rows matched and the
/// percentage of the table sampled (100 when the table is no larger than the
/// sample: the counts are then exact).
async fn sample_facets(
    conn: &mut PgConnection,
    f: &Filters,
    rows: i64,
) -> Result<(Vec<(String, String, i64)>, i64, f64), sqlx::Error> {
    let found: Vec<(String, String, i64, i64, f64)> = bind_filters(
        sqlx::query_as(concat!(
            "with share as (select least(100, 100 * $18::int8 / greatest(c.reltuples, 1))::float4 \
                                   as percent \
                            from pg_class c where c.oid = 'public.projects'::regclass), \
                  f as materialized (select p.category, p.skills, p.status \
                      from projects p \
                      tablesample system ((select percent from share)) repeatable (0) \
                      where ",
            filter_conditions!(),
            " and $16::int8 is null and $17::uuid is null), ",
            facet_counts!(),
            " ",
            "select facet, value, round(n * 100 / (select percent from share))::int8, \
                    (select count(*) from f), (select percent from share)::float8 \
             from ranked where place <= 20 \
             order by facet, n desc, value"
        )),
        f,
        None::<(i64, Uuid)>,
        Some(rows),
    )
    .fetch_all(conn)
    .await?;
    let (sampled, percent) = found.first().map_or((0, 0.0), |r| (r.3, r.4));
    Ok((
        found.into_iter().map(|(f, v, n, _, _)| (f, v, n)).collect(),
        sampled,
        percent,
    ))
}

/// A page of [`search`] by relevance with the [`facets`] of the whole filtered
/// set, from one scan of the matches instead of two: every match is read to
/// be ranked anyway. Above `exact_up_to` matches the facets are counted over
/// a sample of about that many of them ([`sample_key`]) and scaled to all of
/// them, unless the sample holds too few ([`FEWEST_SAMPLED_MATCHES`]). The
/// facets come with the page's rows, so a page without rows has none
/// (`None`): ask [`facets`] then.
pub async fn search_relevance_with_facets(
    conn: &mut PgConnection,
    f: &Filters,
    after: After<f64>,
    limit: i64,
    exact_up_to: i64,
) -> Result<(Vec<SearchRow>, Option<FacetCounts>), sqlx::Error> {
    #[derive(FromRow)]
    struct Faceted {
        #[sqlx(flatten)]
        row: SearchRow,
        facets: sqlx::types::Json<Vec<(String, String, i64)>>,
        facets_exact: bool,
    }
    let rows: Vec<Faceted> = bind_filters(
        sqlx::query_as(concat!(
            "with m as materialized (select p.id, p.category, p.skills, p.status, ",
            relevance!(),
            " as rank, ",
            sample_key!(),
            " as k",
            filtered_projects!(),
            "), \
             matched as (select count(*) as n from m), \
             bound as (select 65536 * $23::float8 / greatest(n, 1) as k from matched), \
             sampled as (select count(*) as n from m where m.k < (select k from bound)), \
             whole as (select (select n from matched) <= $23 \
                              or (select n from sampled) < least($23, ",
            fewest_sampled!(),
            ") as exact), \
             f as (select m.category, m.skills, m.status from m \
                   where (select exact from whole) or m.k < (select k from bound)), ",
            facet_counts!(),
            ", page as (select m.id, m.rank from m \
                        where ($16::float8 is null or (m.rank, m.id) < ($16, $17)) \
                        order by m.rank desc, m.id desc limit $18) \
             select ",
            project_columns!(),
            ", ",
            owner_name!(),
            ", page.rank, \
             (select coalesce(jsonb_agg(jsonb_build_array( \
                         facet, value, \
                         case when (select exact from whole) then n \
                              else round(n * (select n from matched)::float8 \
                                         / (select n from sampled))::int8 \
                         end) \
                     order by facet, n desc, value), '[]') \
              from ranked where place <= 20) as facets, \
             (select exact from whole) as facets_exact \
             from page join project_listings p on p.id = page.id \
             order by page.rank desc, page.id desc"
        )),
        f,
        after,
        Some(limit),
    )
    .bind(exact_up_to)
    .fetch_all(conn)
    .await?;
    let facets = rows.first().map(|r| FacetCounts {
        counted: r.facets.0.clone(),
        exact: r.facets_exact,
    });
    Ok((rows.into_iter().map(|r| r.row).collect(), facets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_statuses_make_a_plain_listing() {
        let listing = Filters {
            statuses: Some(vec![ProjectStatus::Open]),
            ..Filters::default()
        };
        assert_eq!(listing.listing_statuses(), Some(&[ProjectStatus::Open][..]));
        assert_eq!(Filters::default().listing_statuses(), None);
        let filtered = [
            Filters {
                categories: Some(vec!["web".into()]),
                ..listing.clone()
            },
            Filters {
                all_words: Some("rust:*".into()),
                ..listing.clone()
            },
            Filters {
                remote: Some(true),
                ..listing.clone()
            },
            Filters {
                fuzzy: true,
                ..listing.clone()
            },
        ];
        for f in filtered {
            assert_eq!(f.listing_statuses(), None, "{f:?}");
        }
    }
}
