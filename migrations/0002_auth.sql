-- Authentication: credentials, sessions, rotating refresh tokens, one-time
-- tokens (email verification, password reset), and the security audit log.
--
-- Sign-in flows run before anyone is identified, so they work through the
-- service role; a signed-in user may read and revoke only their own sessions.

alter table public.users
    add column password_hash      text,
    add column email_verified_at  timestamptz,
    add column suspended_at       timestamptz,
    add column deactivated_at     timestamptz,
    add constraint users_password_hash_length check (char_length(password_hash) <= 512);

-- Sessions ---------------------------------------------------------------------

create table public.sessions (
    id             uuid primary key default public.uuid_v7(),
    user_id        uuid not null references public.users (id) on delete cascade,
    created_at     timestamptz not null default now(),
    last_seen_at   timestamptz not null default now(),
    expires_at     timestamptz not null,
    ip             inet,
    user_agent     text,
    revoked_at     timestamptz,
    revoked_reason text,
    constraint sessions_user_agent_length check (char_length(user_agent) <= 512),
    constraint sessions_revoked_reason_check check (
        revoked_reason in ('logout', 'logout_all', 'revoked', 'refresh_token_reused',
                           'password_reset', 'password_changed', 'suspended', 'deactivated'))
);

create index sessions_user_id_idx on public.sessions (user_id, created_at desc);

alter table public.sessions enable row level security;

create policy sessions_select_own on public.sessions for select to rabt_authenticated
    using (user_id = (select auth.uid()));
create policy sessions_revoke_own on public.sessions for update to rabt_authenticated
    using (user_id = (select auth.uid()))
    with check (user_id = (select auth.uid()));
create policy sessions_service on public.sessions for all to rabt_service
    using (true) with check (true);

grant select on public.sessions to rabt_authenticated;
grant update (revoked_at, revoked_reason) on public.sessions to rabt_authenticated;
grant select, insert, update, delete on public.sessions to rabt_service;

-- Refresh tokens ------------------------------------------------------------------
-- Opaque, stored only as SHA-256 hashes, single use: each refresh spends one and
-- issues its successor. Presenting a spent one again (outside the grace window)
-- revokes the whole session.

create table public.refresh_tokens (
    id          uuid primary key default public.uuid_v7(),
    session_id  uuid not null references public.sessions (id) on delete cascade,
    parent_id   uuid references public.refresh_tokens (id) on delete cascade,
    token_hash  bytea not null,
    created_at  timestamptz not null default now(),
    used_at     timestamptz,
    constraint refresh_tokens_hash_length check (octet_length(token_hash) = 32)
);

create unique index refresh_tokens_token_hash_key on public.refresh_tokens (token_hash);
create index refresh_tokens_session_id_idx on public.refresh_tokens (session_id);
create index refresh_tokens_parent_id_idx on public.refresh_tokens (parent_id);

alter table public.refresh_tokens enable row level security;
create policy refresh_tokens_service on public.refresh_tokens for all to rabt_service
    using (true) with check (true);
grant select, insert, update, delete on public.refresh_tokens to rabt_service;

-- One-time tokens ---------------------------------------------------------------------

create table public.one_time_tokens (
    id          uuid primary key default public.uuid_v7(),
    user_id     uuid not null references public.users (id) on delete cascade,
    purpose     text not null,
    token_hash  bytea not null,
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null,
    used_at     timestamptz,
    constraint one_time_tokens_purpose_check
        check (purpose in ('verify_email', 'reset_password', 'oauth_code')),
    constraint one_time_tokens_hash_length check (octet_length(token_hash) = 32)
);

create unique index one_time_tokens_token_hash_key on public.one_time_tokens (token_hash);
create index one_time_tokens_user_id_idx on public.one_time_tokens (user_id, purpose);

alter table public.one_time_tokens enable row level security;
create policy one_time_tokens_service on public.one_time_tokens for all to rabt_service
    using (true) with check (true);
grant select, insert, update, delete on public.one_time_tokens to rabt_service;

-- Audit log ------------------------------------------------------------------------------
-- Append-only: nobody, the service included, may change or delete an entry.

create table public.audit_log (
    id          uuid primary key default public.uuid_v7(),
    at          timestamptz not null default now(),
    actor_id    uuid references public.users (id) on delete set null,
    action      text not null,
    subject_id  uuid,
    ip          inet,
    user_agent  text,
    details     jsonb not null default '{}'::jsonb,
    constraint audit_log_action_length check (char_length(action) between 1 and 64),
    constraint audit_log_user_agent_length check (char_length(user_agent) <= 512),
    constraint audit_log_details_size check (pg_column_size(details) <= 8192)
);

create index audit_log_actor_id_idx on public.audit_log (actor_id, at desc);
create index audit_log_action_idx on public.audit_log (action, at desc);

alter table public.audit_log enable row level security;
create policy audit_log_append on public.audit_log for insert to rabt_service
    with check (true);
create policy audit_log_read on public.audit_log for select to rabt_authenticated
    using ((select auth.has_permission('users.read_private')));
create policy audit_log_service_read on public.audit_log for select to rabt_service
    using (true);

grant select on public.audit_log to rabt_authenticated;
grant select, insert on public.audit_log to rabt_service;
