-- Projects by status for the analytics overview (API.md §10) without
-- counting a million rows: a counter per status, kept by a trigger in the
-- transaction of each change. Each status has 16 slots and a session writes
-- the slot of its backend (pid mod 16), so concurrent inserts of drafts do
-- not queue on one row, and one statement that changes many rows locks one
-- slot per status rather than several in random order (which could
-- deadlock two such statements); the reader sums the slots.

create table public.project_status_counts (
    status text not null,
    slot   smallint not null,
    n      bigint not null default 0,
    primary key (status, slot),
    constraint project_status_counts_slot check (slot between 0 and 15)
);

create function public.project_status_count() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    pick smallint := (pg_catalog.pg_backend_pid() % 16)::smallint;
begin
    if tg_op in ('UPDATE', 'DELETE') then
        insert into public.project_status_counts as c (status, slot, n)
        values (old.status, pick, -1)
        on conflict (status, slot) do update set n = c.n - 1;
    end if;
    if tg_op in ('UPDATE', 'INSERT') then
        insert into public.project_status_counts as c (status, slot, n)
        values (new.status, pick, 1)
        on conflict (status, slot) do update set n = c.n + 1;
    end if;
    return null;
end
$$;
revoke all on function public.project_status_count() from public;

create trigger projects_status_count_insert_delete after insert or delete on public.projects
    for each row execute function public.project_status_count();
create trigger projects_status_count_update after update of status on public.projects
    for each row when (old.status is distinct from new.status)
    execute function public.project_status_count();

-- A truncation empties the counters with the table.
create function public.project_status_count_truncate() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    delete from public.project_status_counts;
    return null;
end
$$;
revoke all on function public.project_status_count_truncate() from public;

create trigger projects_status_count_truncate after truncate on public.projects
    for each statement execute function public.project_status_count_truncate();

-- The counts as they stand; the lock keeps a concurrent change from being
-- counted twice or missed while the counter is filled.
lock table public.projects in share mode;
insert into public.project_status_counts (status, slot, n)
select status, 0, count(*) from public.projects group by status;

alter table public.project_status_counts enable row level security;
create policy project_status_counts_service on public.project_status_counts for select
    to rabt_service using (true);
grant select on public.project_status_counts to rabt_service;
