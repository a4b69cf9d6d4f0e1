-- Project search indexes, measured (docs/PERFORMANCE.md, scripts/bench-projects).
--
-- The indexes of 0009 were chosen before the listing had data. EXPLAIN ANALYZE on
-- 1,000,000 generated projects, as rabt_anonymous through project_listings with
-- the values folded as the server's custom plans fold them, showed two defects.
-- Timings below are warm, on 2 cores with Postgres 15's default memory settings
-- (shared_buffers 128 MB, work_mem 4 MB).
--
-- 1. The keyset indexes led by status never gave the listing its order. The API
--    sends statuses as a list (`p.status = any($4)`), and Postgres 15 drops a
--    leading index column from the required order only when it is compared with
--    `=` to a single value. So every listing read the whole table and sorted it,
--    even `status=open&sort=newest` and the default listing without a status.
--    The indexes below are led by the sort key itself; the status is a filter
--    that rejects few rows before the page is full (in the benchmark 60 % of
--    projects are open, 75 % public). The budget sorts had the same defect.
--
--      status=open, newest       before: Parallel Seq Scan + top-N sort         628 ms
--                                after:  Index Scan projects_newest_idx          0.08 ms
--      no filter, newest         before: Parallel Seq Scan + top-N sort         699 ms
--                                after:  Index Scan projects_newest_idx          0.15 ms
--      status=open, budget_high  before: Parallel Seq Scan + top-N sort         627 ms
--                                after:  Index Scan projects_budget_high_idx     0.10 ms
--
-- 2. A search narrowed by a category and a skill combined three bitmaps: the
--    skill's (173,529 rows for `react`), the word's (166,189 for `dashboard:*`)
--    and the category's (71,455 for `design`). Bitmaps that large exceed
--    work_mem and turn lossy, so ~110,000 rows were rechecked to find 2,544. One
--    GIN index over category, skills and the search document intersects the
--    three inside the index. GIN answers conditions on any subset of its
--    columns, so it also serves the word alone, the skills alone and the typo
--    mode's `search @@` branch, and replaces the single-column indexes.
--    (`category` needs btree_gin's operator class, a trusted extension.)
--
--      q=dashboard&category=design&skills=react (2,544 rows found)
--        search_relevance        before: BitmapAnd of 3 indexes, 109,481 rows
--                                        rechecked on 18,529 lossy pages        261 ms
--                                after:  Bitmap Index Scan
--                                        projects_search_filters_idx             52 ms
--        facets                  before: the same BitmapAnd                     303 ms
--                                after:  projects_search_filters_idx             44 ms
--
-- Worse: a status that the caller cannot see is now looked for along the
-- newest index, which the planner expects to be quick. An anonymous
-- `status=draft`, which can only find nothing, reads all of it: 0.60 s (0.24 s
-- before, through a status index and a sort). Answering such a request without
-- a query would remove it; no index can, since visibility depends on the caller.

create extension if not exists btree_gin with schema extensions;

drop index public.projects_status_newest_idx;
drop index public.projects_status_budget_high_idx;
drop index public.projects_status_budget_low_idx;
drop index public.projects_category_idx;
drop index public.projects_search_idx;
drop index public.projects_skills_idx;

-- Keyset orders: newest (and, backwards, oldest), highest and lowest budget.
create index projects_newest_idx on public.projects (created_at desc, id desc);
create index projects_budget_high_idx on public.projects
    ((coalesce(budget_max, -1)) desc, id desc);
create index projects_budget_low_idx on public.projects
    ((coalesce(budget_min, 9223372036854775807)), id);

-- Words, category and skills in one index. (Built while the migration holds
-- its lock on projects, like every index here: fine at today's size.)
create index projects_search_filters_idx on public.projects
    using gin (category extensions.text_ops, skills, search);
