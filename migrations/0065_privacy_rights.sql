-- The rights of API.md §11 that take work: a copy of one's data (export)
-- and the erasure of one's account.
--
-- Exports: a job collects every record about the user into a ZIP in the
-- file store, kept 7 days. One export at a time per user (the partial unique
-- index); a row's removal (expiry, or its user's erasure) queues its
-- object's deletion in the same transaction, like files.
--
-- Erasures: a request deactivates the account at once and is carried out
-- by a job after the grace period. One pending erasure per user. The user
-- cancels their own by signing in during the grace period; an admin's is
-- not cancelled that way.

create table public.data_exports (
    id          uuid primary key default public.uuid_v7(),
    user_id     uuid not null references public.users (id) on delete cascade,
    status      text not null default 'pending',
    object_key  text,
    size_bytes  bigint,
    created_at  timestamptz not null default now(),
    ready_at    timestamptz,
    expires_at  timestamptz,
    constraint data_exports_status check (status in ('pending', 'ready', 'failed')),
    constraint data_exports_ready check ((status = 'ready') = (object_key is not null
        and ready_at is not null and expires_at is not null and size_bytes is not null)),
    constraint data_exports_object_key check (object_key ~ '^exports/[0-9a-f-]{36}$')
);
create unique index data_exports_one_pending on public.data_exports (user_id)
    where status = 'pending';
create index data_exports_user_idx on public.data_exports (user_id, created_at desc);
create index data_exports_expires_idx on public.data_exports (expires_at)
    where expires_at is not null;

create function public.data_exports_remove_object() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    -- The key follows from the id: a ZIP written before its row was marked
    -- ready (a crash, a failure after the write) is removed too.
    insert into public.jobs (kind, payload, max_attempts)
    values ('files.delete_object', jsonb_build_object('object_key', 'exports/' || old.id), 100);
    return old;
end
$$;
revoke all on function public.data_exports_remove_object() from public;

create trigger data_exports_remove_object after delete on public.data_exports
    for each row execute function public.data_exports_remove_object();

alter table public.data_exports enable row level security;
-- A user sees their own exports; the service makes and settles them.
create policy data_exports_own on public.data_exports for select to rabt_authenticated
    using (user_id = (select auth.uid()));
create policy data_exports_service on public.data_exports for all to rabt_service
    using (true) with check (true);
grant select on public.data_exports to rabt_authenticated;
grant select, insert, update, delete on public.data_exports to rabt_service;

create table public.account_erasures (
    user_id      uuid primary key references public.users (id) on delete cascade,
    -- The user themself, or the admin who erased them (null once that
    -- admin's own account is gone).
    requested_by uuid references public.users (id) on delete set null,
    by_self      boolean not null,
    requested_at timestamptz not null default now(),
    erase_after  timestamptz not null
);
create index account_erasures_requested_by_idx on public.account_erasures (requested_by);

alter table public.account_erasures enable row level security;
create policy account_erasures_service on public.account_erasures for all to rabt_service
    using (true) with check (true);
grant select, insert, update, delete on public.account_erasures to rabt_service;
