-- Foundation: database roles, request-context functions, shared helpers, the
-- durable job queue, and the users table that every capability hangs off.
--
-- Roles (cluster-wide, so created only when missing):
--   rabt_owner          owns the schema and runs migrations (in production)
--   rabt_app            the server's login: no table rights, NOINHERIT; per
--                       transaction it switches to one of the three below
--   rabt_anonymous      requests without a user          (RLS applies)
--   rabt_authenticated  requests of a signed-in user     (RLS applies)
--   rabt_service        workers and verified webhooks    (explicit policies)

do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'rabt_owner') then
        create role rabt_owner nologin;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'rabt_anonymous') then
        create role rabt_anonymous nologin noinherit;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'rabt_authenticated') then
        create role rabt_authenticated nologin noinherit;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'rabt_service') then
        create role rabt_service nologin noinherit;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'rabt_app') then
        create role rabt_app nologin noinherit;
    end if;
end
$$;

grant rabt_anonymous, rabt_authenticated, rabt_service to rabt_app;

-- Nothing is reachable by default: every right below is granted on purpose.
revoke all on schema public from public;
grant usage on schema public to rabt_anonymous, rabt_authenticated, rabt_service;
alter default privileges revoke execute on functions from public;

-- Request context -----------------------------------------------------------
-- Set per transaction by the server (`Db::begin`) with set_config(…, true).
-- Policies call these wrapped as `(select auth.uid())` so they run once per
-- statement, not once per row.

create schema auth;
revoke all on schema auth from public;
grant usage on schema auth to rabt_anonymous, rabt_authenticated, rabt_service;

create function auth.uid() returns uuid
    language sql stable parallel safe
    set search_path = ''
as $$
    select nullif(pg_catalog.current_setting('request.user_id', true), '')::uuid
$$;

create function auth.permissions() returns text[]
    language sql stable parallel safe
    set search_path = ''
as $$
    select coalesce(
        pg_catalog.string_to_array(
            nullif(pg_catalog.current_setting('request.permissions', true), ''), ','),
        '{}'::text[])
$$;

create function auth.has_permission(permission text) returns boolean
    language sql stable parallel safe
    set search_path = ''
as $$
    select permission = any (auth.permissions())
$$;

revoke all on function auth.uid(), auth.permissions(), auth.has_permission(text) from public;
grant execute on function auth.uid(), auth.permissions(), auth.has_permission(text)
    to rabt_anonymous, rabt_authenticated, rabt_service;

-- Helpers ---------------------------------------------------------------------

-- UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids sort
-- by creation time and index locality stays good.
create function public.uuid_v7() returns uuid
    language sql volatile parallel safe
    set search_path = ''
as $$
    select pg_catalog.encode(
        pg_catalog.set_bit(
            pg_catalog.set_bit(
                overlay(
                    pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                    placing substring(
                        pg_catalog.int8send(
                            (extract(epoch from pg_catalog.clock_timestamp()) * 1000)::bigint)
                        from 3)
                    from 1 for 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;

create function public.set_updated_at() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    new.updated_at := pg_catalog.now();
    return new;
end
$$;

revoke all on function public.uuid_v7(), public.set_updated_at() from public;
grant execute on function public.uuid_v7() to rabt_anonymous, rabt_authenticated, rabt_service;
grant execute on function public.set_updated_at() to rabt_authenticated, rabt_service;

-- Durable jobs ------------------------------------------------------------------
-- A transactional outbox: a job is inserted in the same transaction as the change
-- that caused it. Workers claim with FOR UPDATE SKIP LOCKED. A claimed job is
-- `running` with `run_at` moved to the end of its lease; a worker that dies
-- leaves the lease to run out, and the job is claimed again.

create table public.jobs (
    id           uuid primary key default public.uuid_v7(),
    kind         text not null,
    payload      jsonb not null,
    status       text not null default 'queued',
    attempts     integer not null default 0,
    max_attempts integer not null,
    run_at       timestamptz not null default now(),
    locked_by    uuid,
    last_error   text,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    finished_at  timestamptz,
    constraint jobs_kind_length check (char_length(kind) between 1 and 100),
    constraint jobs_status_check check (status in ('queued', 'running', 'succeeded', 'dead')),
    constraint jobs_attempts_check check (attempts >= 0),
    constraint jobs_max_attempts_check check (max_attempts between 1 and 100),
    constraint jobs_payload_size check (pg_column_size(payload) <= 262144),
    constraint jobs_running_is_locked check ((status = 'running') = (locked_by is not null))
);

-- The claim query's path: ready jobs (queued, or running with a spent lease) by time.
create index jobs_ready_idx on public.jobs (run_at) where status in ('queued', 'running');
-- The admin view and the metrics read jobs by status.
create index jobs_status_idx on public.jobs (status, created_at);

create trigger jobs_set_updated_at before update on public.jobs
    for each row execute function public.set_updated_at();

-- Wake idle workers when a job commits.
create function public.notify_jobs() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    perform pg_catalog.pg_notify('rabt_jobs', '');
    return null;
end
$$;
revoke all on function public.notify_jobs() from public;
grant execute on function public.notify_jobs() to rabt_authenticated, rabt_service;

create trigger jobs_notify after insert on public.jobs
    for each statement execute function public.notify_jobs();

alter table public.jobs enable row level security;

-- A request may enqueue work, only as new, untouched jobs; it can never read,
-- change or delete jobs (they hold other users' data).
create policy jobs_enqueue on public.jobs for insert to rabt_authenticated
    with check (status = 'queued' and attempts = 0 and locked_by is null);
create policy jobs_service on public.jobs for all to rabt_service
    using (true) with check (true);

grant insert on public.jobs to rabt_authenticated;
grant select, insert, update, delete on public.jobs to rabt_service;

-- Users ---------------------------------------------------------------------------
-- The account row. Later migrations add credentials, profile fields and roles.

create table public.users (
    id           uuid primary key default public.uuid_v7(),
    email        text not null,
    display_name text not null,
    visibility   text not null default 'public',
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    constraint users_email_length check (char_length(email) between 3 and 254),
    constraint users_display_name_length check (char_length(display_name) between 1 and 80),
    constraint users_visibility_check check (visibility in ('public', 'private'))
);

-- Emails are unique regardless of case.
create unique index users_email_key on public.users (lower(email));
-- Public profiles are listed newest first.
create index users_public_created_idx on public.users (created_at desc)
    where visibility = 'public';

create trigger users_set_updated_at before update on public.users
    for each row execute function public.set_updated_at();

alter table public.users enable row level security;

create policy users_select_visible on public.users for select
    to rabt_anonymous, rabt_authenticated
    using (
        visibility = 'public'
        or id = (select auth.uid())
        or (select auth.has_permission('users.read_private'))
    );
create policy users_update_self on public.users for update to rabt_authenticated
    using (id = (select auth.uid()))
    with check (id = (select auth.uid()));
create policy users_service on public.users for all to rabt_service
    using (true) with check (true);

-- Anonymous visitors never see email addresses, whatever a query asks for.
grant select (id, display_name, visibility, created_at, updated_at) on public.users
    to rabt_anonymous;
grant select on public.users to rabt_authenticated;
grant update (display_name, visibility) on public.users to rabt_authenticated;
grant select, insert, update, delete on public.users to rabt_service;
