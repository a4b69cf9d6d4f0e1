-- pgbench (scripts/bench-ratio): the statement behind
-- GET /v1/projects?status=open&sort=newest (crates/rabt/src/projects/search.rs,
-- "newest" order, the first page: 20 rows and one more to know whether a next
-- page exists), its unused filters folded away as the server's custom plan
-- folds them. As the superuser: no RLS, no transaction, one round trip.
select p.id, p.owner_id, p.title, p.summary, p.description, p.description_html, p.category,
       p.skills, p.budget_min, p.budget_max, p.currency, p.remote, p.location, p.status,
       p.application_count, p.created_at, p.updated_at, p.published_at,
       (select u.display_name from users u where u.id = p.owner_id) as owner_name,
       0::float8 as rank
from project_listings p
where p.status = any('{open}'::text[])
order by p.created_at desc, p.id desc
limit 21;
