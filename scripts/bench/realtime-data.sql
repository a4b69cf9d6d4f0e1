-- Users, sessions and direct conversations for scripts/bench-realtime:
-- :users users (an even number), each with one live session; user 2k and
-- 2k+1 share a direct conversation. Run as the superuser on a migrated
-- database.
insert into users (id, email, display_name, email_verified_at)
select uuid_v7(), 'rt' || n || '@bench.rabt.dev', 'Bench ' || n, now()
from generate_series(1, :users) n;

create table bench_users as
select row_number() over (order by id) - 1 as n, id from users
where email like 'rt%@bench.rabt.dev';

insert into sessions (user_id, expires_at)
select id, now() + interval '1 day' from bench_users;

create table bench_pairs as
select a.id as low, b.id as high, uuid_v7() as conversation
from bench_users a join bench_users b on b.n = a.n + 1
where a.n % 2 = 0;

insert into conversations (id, kind, created_by, direct_low, direct_high)
select conversation, 'direct', low, least(low, high), greatest(low, high) from bench_pairs;

insert into conversation_participants (conversation_id, user_id)
select conversation, low from bench_pairs
union all
select conversation, high from bench_pairs;

-- No message email during the run.
insert into notification_preferences (user_id, messages)
select id, 'never' from bench_users;
