//! SQL for users. Every function takes a transaction opened for an actor, so
//! row-level security decides what it finds.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, Postgres, postgres::PgArguments, query::QueryAs};
use uuid::Uuid;

use crate::account::Visibility;

/// What anyone may see of a profile (never the email: anonymous requests
/// cannot even select that column).
#[derive(Debug, Clone, FromRow)]
pub struct ProfileRow {
    pub id: Uuid,
    pub display_name: String,
    pub headline: Option<String>,
    pub bio: Option<String>,
    pub skills: Vec<String>,
    pub location: Option<String>,
    pub avatar_file_id: Option<Uuid>,
    pub visibility: Visibility,
    pub created_at: DateTime<Utc>,
}

/// The profile with this id, if the actor may see it.
pub async fn find_profile(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<ProfileRow>, sqlx::Error> {
    sqlx::query_as!(
        ProfileRow,
        r#"select id, display_name, headline, bio, skills, location, avatar_file_id,
                  visibility as "visibility: Visibility", created_at
           from users where id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The email of `id`, for callers allowed to see it (self, `users.read_private`).
pub async fn find_email(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("select public.user_email($1)", id)
        .fetch_one(conn)
        .await
}

/// Writes every profile field of `id` (the caller merged the change in).
/// `false` when the row is not the actor's to change.
pub async fn save_profile(conn: &mut PgConnection, row: &ProfileRow) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update users set display_name = $2, headline = $3, bio = $4, skills = $5, \
                          location = $6, avatar_file_id = $7, visibility = $8 \
         where id = $1",
        row.id,
        row.display_name,
        row.headline,
        row.bio,
        &row.skills,
        row.location,
        row.avatar_file_id,
        row.visibility.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Suspends or reinstates `id`. `false` when the actor may not.
pub async fn set_suspended(
    conn: &mut PgConnection,
    id: Uuid,
    suspended: bool,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query!(
        "update users set suspended_at = case when $2 then coalesce(suspended_at, now()) end \
         where id = $1",
        id,
        suspended,
    )
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Filters of the profile search; every one optional.
#[derive(Debug, Default)]
pub struct SearchFilters {
    /// A `to_tsquery` text built from sanitised words (`w1:* & w2:*`).
    pub tsquery: Option<String>,
    /// The raw words, for trigram typo tolerance on names.
    pub text: Option<String>,
    pub skills: Option<Vec<String>>,
    pub location: Option<String>,
    pub role: Option<String>,
    /// Match names by trigram similarity (typos) instead of the words; each
    /// branch alone can use its index.
    pub fuzzy: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct SearchRow {
    #[sqlx(flatten)]
    pub profile: ProfileRow,
    pub rank: f64,
    /// The name as the `name` sort orders it (Postgres' `lower`, which a
    /// cursor must repeat exactly).
    pub name_key: String,
}

/// The listed profiles and every filter but the keyset; `$1`/`$2` words and
/// name, `$3` skills, `$4` location, `$5` role, `$9` fuzzy. A macro, so the
/// queries stay static text.
macro_rules! listed_profiles {
    () => {
        "select u.id, u.display_name, u.headline, u.bio, u.skills, u.location, \
                u.avatar_file_id, u.visibility, u.created_at, 0::float8 as rank, \
                lower(u.display_name) as name_key \
         from user_directory u \
         where u.visibility = 'public' \
           and ($1::text is null \
                or (not $9 and u.search @@ to_tsquery('simple', $1)) \
                or ($9 and $2 operator(extensions.<%) u.display_name)) \
           and ($3::text[] is null or u.skills && $3) \
           and ($4::text is null or lower(u.location) = lower($4)) \
           and ($5::text is null or $5 = 'member' or exists ( \
                select 1 from user_roles r where r.user_id = u.id and r.role_name = $5)) "
    };
}

/// Newest first; keyset on (created_at, id).
const NEWEST: &str = concat!(
    listed_profiles!(),
    "           and ($6::timestamptz is null or (u.created_at, u.id) < ($6, $7)) \
     order by u.created_at desc, u.id desc \
     limit $8"
);

/// By name; keyset on (lower(display_name), id).
const BY_NAME: &str = concat!(
    listed_profiles!(),
    "           and ($6::text is null or (lower(u.display_name), u.id) > ($6, $7)) \
     order by lower(u.display_name), u.id \
     limit $8"
);

/// By relevance to the words (needs them); keyset on (rank, id).
const RELEVANCE: &str = "select * from ( \
         select u.id, u.display_name, u.headline, u.bio, u.skills, u.location, \
                u.avatar_file_id, u.visibility, u.created_at, \
                (case when $9 then extensions.word_similarity($2, u.display_name) \
                      else ts_rank(u.search, to_tsquery('simple', $1)) end)::float8 as rank, \
                lower(u.display_name) as name_key \
         from user_directory u \
         where u.visibility = 'public' \
           and ((not $9 and u.search @@ to_tsquery('simple', $1)) \
                or ($9 and $2 operator(extensions.<%) u.display_name)) \
           and ($3::text[] is null or u.skills && $3) \
           and ($4::text is null or lower(u.location) = lower($4)) \
           and ($5::text is null or $5 = 'member' or exists ( \
                select 1 from user_roles r where r.user_id = u.id and r.role_name = $5)) \
     ) s \
     where ($6::float8 is null or (s.rank, s.id) < ($6, $7)) \
     order by s.rank desc, s.id desc \
     limit $8";

/// The order of a profile search, with the keyset position (sort key, id)
/// after which the page starts.
#[derive(Debug, Clone)]
pub enum Order {
    Newest(Option<(DateTime<Utc>, Uuid)>),
    Name(Option<(String, Uuid)>),
    Relevance(Option<(f64, Uuid)>),
}

/// A page of the profile search in `order`.
pub async fn search(
    conn: &mut PgConnection,
    f: &SearchFilters,
    order: Order,
    limit: i64,
) -> Result<Vec<SearchRow>, sqlx::Error> {
    // Run-time checked: `query_as!` needs one literal per query, and each order
    // needs its own keyset predicate and ORDER BY to walk its index, so the
    // orders share the filter text through `concat!` consts instead.
    fn keyset<'q, K>(
        query: QueryAs<'q, Postgres, SearchRow, PgArguments>,
        after: Option<(K, Uuid)>,
    ) -> QueryAs<'q, Postgres, SearchRow, PgArguments>
    where
        K: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
    {
        let (key, id) = after.map_or((None, None), |(k, i)| (Some(k), Some(i)));
        query.bind(key).bind(id)
    }
    let sql = match order {
        Order::Newest(_) => NEWEST,
        Order::Name(_) => BY_NAME,
        Order::Relevance(_) => RELEVANCE,
    };
    let query = sqlx::query_as(sql)
        .bind(&f.tsquery)
        .bind(&f.text)
        .bind(&f.skills)
        .bind(&f.location)
        .bind(&f.role);
    let query = match order {
        Order::Newest(after) => keyset(query, after),
        Order::Name(after) => keyset(query, after),
        Order::Relevance(after) => keyset(query, after),
    };
    query.bind(limit).bind(f.fuzzy).fetch_all(conn).await
}
