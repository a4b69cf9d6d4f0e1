-- EXPLAIN ANALYZE of the queries behind the three endpoints of
-- scripts/bench-projects, as the anonymous request role. The statements are
-- those of crates/rabt/src/projects/search/store.rs, prepared with the same
-- parameters and types the server binds (`$1`–`$15` filters, `$16`/`$17`
-- keyset, `$18` limit, `$19`/`$20` typo mode), and executed with custom plans
-- so that the `$n is null or …` branches fold with their values.
--
-- psql variable: :id (an open project).

\set ON_ERROR_STOP on
begin;
select set_config('role', 'rabt_anonymous', true), set_config('request.user_id', '', true),
       set_config('request.permissions', '', true);

prepare search_newest(text, text[], boolean, text[], text[], text[], text[], int8, int8, text,
                      boolean, text, uuid, timestamptz, timestamptz, timestamptz, uuid, int8,
                      text, text, text, boolean) as
select p.id, p.owner_id, p.title, p.summary, p.description, p.description_html, p.category,
       p.skills, p.budget_min, p.budget_max, p.currency, p.remote, p.location, p.status,
       p.application_count, p.created_at, p.updated_at, p.published_at,
       (select u.display_name from users u where u.id = p.owner_id) as owner_name,
       0::float8 as rank
from project_listings p
where ($1::text is null
       or (not $3 and $21::text is null and p.search @@ to_tsquery('simple', $1))
       or (not $3 and $21::text is not null
           and (p.search @@ $21::tsquery
                or ($22 and p.owner_id = (select auth.uid())
                    and p.search @@ to_tsquery('simple', $1))))
       or ($3 and (p.search @@ to_tsquery('simple', $19)
                   or $20 operator(extensions.<%) p.title)
           and not exists (select 1 from unnest($2::text[]) w
                           where not (p.search @@ to_tsquery('simple', w || ':*')
                                      or w operator(extensions.<%) p.title))))
  and ($4::text[] is null or p.status = any($4))
  and ($5::text[] is null or p.category = any($5))
  and ($6::text[] is null or p.skills && $6)
  and ($7::text[] is null or p.skills @> $7)
  and ($8::int8 is null or p.budget_max >= $8)
  and ($9::int8 is null or p.budget_min <= $9)
  and ($10::text is null or p.currency = $10)
  and ($11::bool is null or p.remote = $11)
  and ($12::text is null or lower(p.location) = lower($12))
  and ($13::uuid is null or p.owner_id = $13)
  and ($14::timestamptz is null or p.created_at >= $14)
  and ($15::timestamptz is null or p.created_at < $15)
  and ($16::timestamptz is null or (p.created_at, p.id) < ($16, $17))
order by p.created_at desc, p.id desc limit $18;

prepare search_relevance(text, text[], boolean, text[], text[], text[], text[], int8, int8,
                         text, boolean, text, uuid, timestamptz, timestamptz, float8, uuid,
                         int8, text, text, text, boolean) as
select * from (select p.id, p.owner_id, p.title, p.summary, p.description,
       p.description_html, p.category, p.skills, p.budget_min, p.budget_max, p.currency,
       p.remote, p.location, p.status, p.application_count, p.created_at, p.updated_at,
       p.published_at,
       (select u.display_name from users u where u.id = p.owner_id) as owner_name,
       (case when $3 then ts_rank(p.search, to_tsquery('simple', $19))
                          + extensions.word_similarity($20, p.title)
             else ts_rank(p.search, to_tsquery('simple', $1)) end)::float8 as rank
from project_listings p
where ($1::text is null
       or (not $3 and $21::text is null and p.search @@ to_tsquery('simple', $1))
       or (not $3 and $21::text is not null
           and (p.search @@ $21::tsquery
                or ($22 and p.owner_id = (select auth.uid())
                    and p.search @@ to_tsquery('simple', $1))))
       or ($3 and (p.search @@ to_tsquery('simple', $19)
                   or $20 operator(extensions.<%) p.title)
           and not exists (select 1 from unnest($2::text[]) w
                           where not (p.search @@ to_tsquery('simple', w || ':*')
                                      or w operator(extensions.<%) p.title))))
  and ($4::text[] is null or p.status = any($4))
  and ($5::text[] is null or p.category = any($5))
  and ($6::text[] is null or p.skills && $6)
  and ($7::text[] is null or p.skills @> $7)
  and ($8::int8 is null or p.budget_max >= $8)
  and ($9::int8 is null or p.budget_min <= $9)
  and ($10::text is null or p.currency = $10)
  and ($11::bool is null or p.remote = $11)
  and ($12::text is null or lower(p.location) = lower($12))
  and ($13::uuid is null or p.owner_id = $13)
  and ($14::timestamptz is null or p.created_at >= $14)
  and ($15::timestamptz is null or p.created_at < $15)
) s where ($16::float8 is null or (s.rank, s.id) < ($16, $17))
order by s.rank desc, s.id desc limit $18;

prepare facets(text, text[], boolean, text[], text[], text[], text[], int8, int8, text,
               boolean, text, uuid, timestamptz, timestamptz, int8, uuid, int8, text, text,
               text, boolean) as
with f as materialized (select p.category, p.skills, p.status
from project_listings p
where ($1::text is null
       or (not $3 and $21::text is null and p.search @@ to_tsquery('simple', $1))
       or (not $3 and $21::text is not null
           and (p.search @@ $21::tsquery
                or ($22 and p.owner_id = (select auth.uid())
                    and p.search @@ to_tsquery('simple', $1))))
       or ($3 and (p.search @@ to_tsquery('simple', $19)
                   or $20 operator(extensions.<%) p.title)
           and not exists (select 1 from unnest($2::text[]) w
                           where not (p.search @@ to_tsquery('simple', w || ':*')
                                      or w operator(extensions.<%) p.title))))
  and ($4::text[] is null or p.status = any($4))
  and ($5::text[] is null or p.category = any($5))
  and ($6::text[] is null or p.skills && $6)
  and ($7::text[] is null or p.skills @> $7)
  and ($8::int8 is null or p.budget_max >= $8)
  and ($9::int8 is null or p.budget_min <= $9)
  and ($10::text is null or p.currency = $10)
  and ($11::bool is null or p.remote = $11)
  and ($12::text is null or lower(p.location) = lower($12))
  and ($13::uuid is null or p.owner_id = $13)
  and ($14::timestamptz is null or p.created_at >= $14)
  and ($15::timestamptz is null or p.created_at < $15)
  and $16::int8 is null and $17::uuid is null limit $18),
counted as (
    select 'category' as facet, category as value, count(*) as n from f
        where category is not null group by category
    union all
    select 'skills', s, count(*) from f, unnest(f.skills) s group by s
    union all
    select 'status', status, count(*) from f group by status),
ranked as (
    select facet, value, n,
           row_number() over (partition by facet order by n desc, value) as place
    from counted)
select facet, value, n, (select count(*) from f) as matched from ranked where place <= 20
order by facet, n desc, value;

prepare search_relevance_with_facets(text, text[], boolean, text[], text[], text[], text[],
                                     int8, int8, text, boolean, text, uuid, timestamptz,
                                     timestamptz, float8, uuid, int8, text, text, text, boolean,
                                     int8) as
with m as materialized (select p.id, p.category, p.skills, p.status,
       (case when $3 then ts_rank(p.search, to_tsquery('simple', $19))
                          + extensions.word_similarity($20, p.title)
             else ts_rank(p.search, to_tsquery('simple', $1)) end)::float8 as rank,
       (get_byte(uuid_send(p.id), 14) * 256 + get_byte(uuid_send(p.id), 15)) as k
from project_listings p
where ($1::text is null
       or (not $3 and $21::text is null and p.search @@ to_tsquery('simple', $1))
       or (not $3 and $21::text is not null
           and (p.search @@ $21::tsquery
                or ($22 and p.owner_id = (select auth.uid())
                    and p.search @@ to_tsquery('simple', $1))))
       or ($3 and (p.search @@ to_tsquery('simple', $19)
                   or $20 operator(extensions.<%) p.title)
           and not exists (select 1 from unnest($2::text[]) w
                           where not (p.search @@ to_tsquery('simple', w || ':*')
                                      or w operator(extensions.<%) p.title))))
  and ($4::text[] is null or p.status = any($4))
  and ($5::text[] is null or p.category = any($5))
  and ($6::text[] is null or p.skills && $6)
  and ($7::text[] is null or p.skills @> $7)
  and ($8::int8 is null or p.budget_max >= $8)
  and ($9::int8 is null or p.budget_min <= $9)
  and ($10::text is null or p.currency = $10)
  and ($11::bool is null or p.remote = $11)
  and ($12::text is null or lower(p.location) = lower($12))
  and ($13::uuid is null or p.owner_id = $13)
  and ($14::timestamptz is null or p.created_at >= $14)
  and ($15::timestamptz is null or p.created_at < $15)
),
matched as (select count(*) as n from m),
bound as (select 65536 * $23::float8 / greatest(n, 1) as k from matched),
sampled as (select count(*) as n from m where m.k < (select k from bound)),
whole as (select (select n from matched) <= $23
                 or (select n from sampled) < least($23, 100) as exact),
f as (select m.category, m.skills, m.status from m
      where (select exact from whole) or m.k < (select k from bound)),
counted as (
    select 'category' as facet, category as value, count(*) as n from f
        where category is not null group by category
    union all
    select 'skills', s, count(*) from f, unnest(f.skills) s group by s
    union all
    select 'status', status, count(*) from f group by status),
ranked as (
    select facet, value, n,
           row_number() over (partition by facet order by n desc, value) as place
    from counted),
page as (select m.id, m.rank from m
         where ($16::float8 is null or (m.rank, m.id) < ($16, $17))
         order by m.rank desc, m.id desc limit $18)
select p.id, p.owner_id, p.title, p.summary, p.description, p.description_html, p.category,
       p.skills, p.budget_min, p.budget_max, p.currency, p.remote, p.location, p.status,
       p.application_count, p.created_at, p.updated_at, p.published_at,
       (select u.display_name from users u where u.id = p.owner_id) as owner_name, page.rank,
       (select coalesce(jsonb_agg(jsonb_build_array(
                   facet, value,
                   case when (select exact from whole) then n
                        else round(n * (select n from matched)::float8
                                   / (select n from sampled))::int8 end)
               order by facet, n desc, value), '[]')
        from ranked where place <= 20) as facets,
       (select exact from whole) as facets_exact
from page join project_listings p on p.id = page.id
order by page.rank desc, page.id desc;

prepare facets_sample(text, text[], boolean, text[], text[], text[], text[], int8, int8,
                      text, boolean, text, uuid, timestamptz, timestamptz, int8, uuid, int8,
                      text, text, text, boolean) as
with share as (select least(100, 100 * $18::int8 / greatest(c.reltuples, 1))::float4 as percent
               from pg_class c where c.oid = 'public.projects'::regclass),
f as materialized (select p.category, p.skills, p.status
from projects p tablesample system ((select percent from share)) repeatable (0)
where ($1::text is null
       or (not $3 and $21::text is null and p.search @@ to_tsquery('simple', $1))
       or (not $3 and $21::text is not null
           and (p.search @@ $21::tsquery
                or ($22 and p.owner_id = (select auth.uid())
                    and p.search @@ to_tsquery('simple', $1))))
       or ($3 and (p.search @@ to_tsquery('simple', $19)
                   or $20 operator(extensions.<%) p.title)
           and not exists (select 1 from unnest($2::text[]) w
                           where not (p.search @@ to_tsquery('simple', w || ':*')
                                      or w operator(extensions.<%) p.title))))
  and ($4::text[] is null or p.status = any($4))
  and ($5::text[] is null or p.category = any($5))
  and ($6::text[] is null or p.skills && $6)
  and ($7::text[] is null or p.skills @> $7)
  and ($8::int8 is null or p.budget_max >= $8)
  and ($9::int8 is null or p.budget_min <= $9)
  and ($10::text is null or p.currency = $10)
  and ($11::bool is null or p.remote = $11)
  and ($12::text is null or lower(p.location) = lower($12))
  and ($13::uuid is null or p.owner_id = $13)
  and ($14::timestamptz is null or p.created_at >= $14)
  and ($15::timestamptz is null or p.created_at < $15)
  and $16::int8 is null and $17::uuid is null),
counted as (
    select 'category' as facet, category as value, count(*) as n from f
        where category is not null group by category
    union all
    select 'skills', s, count(*) from f, unnest(f.skills) s group by s
    union all
    select 'status', status, count(*) from f group by status),
ranked as (
    select facet, value, n,
           row_number() over (partition by facet order by n desc, value) as place
    from counted)
select facet, value, round(n * 100 / (select percent from share))::int8,
       (select count(*) from f), (select percent from share)::float8
from ranked where place <= 20
order by facet, n desc, value;

prepare expand_words(text[]) as
select string_agg('(' || coalesce(x.exact, nullif(p.prefix, '')) || ')', ' & ' order by u.n) as query,
       coalesce(bool_or(x.exact is not null), false) as expanded
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
  on p.prefix = '''' || u.w || ''':*';

prepare find_listed(uuid) as
select p.id, p.owner_id, p.title, p.summary, p.description, p.description_html, p.category,
       p.skills, p.budget_min, p.budget_max, p.currency, p.remote, p.location, p.status,
       p.application_count, p.created_at, p.updated_at, p.published_at,
       (select u.display_name from users u where u.id = p.owner_id) as owner_name
from projects p where p.id = $1;

-- The words of the searches below, each prefix asked for as the words it stands
-- for (projects/search/store.rs, expand_words), as the server does before searching.
execute expand_words('{dashboard}') \gset dashboard_
execute expand_words('{website}') \gset website_
execute expand_words('{kintsugi}') \gset kintsugi_
\echo 'dashboard:* is matched as' :'dashboard_query'
\echo 'website:* is matched as' :'website_query'
\echo 'kintsugi:* is matched as' :'kintsugi_query'

\echo '== plan choice after ten executions of each (generic_plans must stay 0); they also warm'
\echo '   the caches, so that each plan below reads what the others read from memory'
\o /dev/null
select statement from generate_series(1, 10), unnest(array[
    $$execute search_newest(null, null, false, '{open}', null, null, null, null, null, null,
                            null, null, null, null, null, null, null, 21, null, null, null,
                            false)$$,
    format($$execute search_relevance('dashboard:*', '{dashboard}', false, null, '{design}',
                               '{react}', null, null, null, null, null, null, null, null,
                               null, null, null, 21, 'dashboard:*', 'dashboard', %L,
                               false)$$, :'dashboard_query'),
    format($$execute search_relevance_with_facets('dashboard:*', '{dashboard}', false, null,
                                           '{design}', '{react}', null, null, null, null,
                                           null, null, null, null, null, null, null, 21,
                                           'dashboard:*', 'dashboard', %L, false,
                                           10000)$$, :'dashboard_query'),
    format($$execute facets('dashboard:*', '{dashboard}', false, null, '{design}', '{react}',
                     null, null, null, null, null, null, null, null, null, null, null, 10001,
                     'dashboard:*', 'dashboard', %L, false)$$, :'dashboard_query'),
    $$execute facets_sample(null, null, false, '{open}', null, null, null, null, null, null,
                            null, null, null, null, null, null, null, 20000, null, null, null,
                            false)$$]) statement
\gexec
\o
select name, generic_plans, custom_plans from pg_prepared_statements order by name;

\echo '== GET /v1/projects?status=open&sort=newest: search_newest, limit 20 (+1)'
explain (analyze, buffers, costs off)
execute search_newest(null, null, false, '{open}', null, null, null, null, null, null, null,
                      null, null, null, null, null, null, 21, null, null, null, false);

\echo '== GET /v1/projects?q=dashboard&category=design&skills=react&facets=…: search_relevance_with_facets'
explain (analyze, buffers, costs off)
execute search_relevance_with_facets('dashboard:*', '{dashboard}', false, null, '{design}',
                                     '{react}', null, null, null, null, null, null, null, null,
                                     null, null, null, 21, 'dashboard:*', 'dashboard',
                                     :'dashboard_query', false, 10000);

\echo '== … the same matched by the prefix itself, as before migrations/0030'
explain (analyze, buffers, costs off)
execute search_relevance_with_facets('dashboard:*', '{dashboard}', false, null, '{design}',
                                     '{react}', null, null, null, null, null, null, null, null,
                                     null, null, null, 21, 'dashboard:*', 'dashboard', null,
                                     false, 10000);

\echo '== the largest search of the benchmark: q=website&category=web-development&skills=javascript'
explain (analyze, buffers, costs off)
execute search_relevance_with_facets('website:*', '{website}', false, null,
                                     '{web-development}', '{javascript}', null, null, null,
                                     null, null, null, null, null, null, null, null, 21,
                                     'website:*', 'website', :'website_query', false, 10000);

\echo '== a rare word: q=kintsugi&category=design&skills=react'
explain (analyze, buffers, costs off)
execute search_relevance_with_facets('kintsugi:*', '{kintsugi}', false, null, '{design}',
                                     '{react}', null, null, null, null, null, null, null, null,
                                     null, null, null, 21, 'kintsugi:*', 'kintsugi',
                                     :'kintsugi_query', false, 10000);

\echo '== … the page alone (search_relevance), and facets alone, as other sorts count them'
explain (analyze, buffers, costs off)
execute search_relevance('dashboard:*', '{dashboard}', false, null, '{design}', '{react}', null,
                         null, null, null, null, null, null, null, null, null, null, 21,
                         'dashboard:*', 'dashboard', :'dashboard_query', false);
explain (analyze, buffers, costs off)
execute facets('dashboard:*', '{dashboard}', false, null, '{design}', '{react}', null, null,
               null, null, null, null, null, null, null, null, null, 10001, 'dashboard:*',
               'dashboard', :'dashboard_query', false);

\echo '== GET /v1/projects?status=open&facets=…: 600,000 matches, more than 10,000, so the'
\echo '   first 10,001 (facets), then a sample of the table (facets_sample)'
explain (analyze, buffers, costs off)
execute facets(null, null, false, '{open}', null, null, null, null, null, null, null, null,
               null, null, null, null, null, 10001, null, null, null, false);
explain (analyze, buffers, costs off)
execute facets_sample(null, null, false, '{open}', null, null, null, null, null, null, null,
                      null, null, null, null, null, null, 20000, null, null, null, false);

\echo '== GET /v1/projects/{id}: find_listed'
explain (analyze, buffers, costs off) execute find_listed(:'id');

rollback;
