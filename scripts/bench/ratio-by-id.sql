-- pgbench (scripts/bench-ratio): the statement behind GET /v1/projects/{id}
-- (projects::store::find_listed), for one of 10,000 open projects at random
-- (bench_project_ids, a primary-key lookup pgbench needs to pick an id).
\set n random(1, 10000)
select p.id, p.owner_id, p.title, p.summary, p.description, p.description_html,
       p.category, p.skills, p.budget_min, p.budget_max, p.currency, p.remote,
       p.location, p.status, p.application_count,
       p.created_at, p.updated_at, p.published_at,
       (select u.display_name from users u where u.id = p.owner_id) as owner_name
from projects p where p.id = (select id from bench_project_ids where n = :n);
