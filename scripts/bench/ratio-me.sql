-- pgbench (scripts/bench-ratio): the statement behind GET /v1/me
-- (account::load_me) for the benchmark's signed-in user (-D me=UUID).
select id, public.user_email(id) as email,
       email_verified_at is not null as email_verified, display_name, headline,
       bio, skills, location, avatar_file_id, visibility,
       created_at, plan
from users where id = :me::uuid;
