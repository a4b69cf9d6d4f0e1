\set n random(1, 10000)
begin;
select set_config('role', 'rabt_anonymous', true), set_config('request.user_id', '', true), set_config('request.permissions', '', true);
select id, display_name, created_at from users where id = (select id from bench_ids where n = :n);
commit;
