\set n random(1, 10000)
select id, display_name, created_at from users where id = (select id from bench_ids where n = :n);
