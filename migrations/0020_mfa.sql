-- Two-factor sign-in (TOTP, RFC 6238) with recovery codes, the assurance
-- level of a session, and the rule that the last active admin keeps the role.
--
-- 1. totp_factors: a user's TOTP secret, sealed by the server (AES-256-GCM,
--    crates/rabt/src/crypto.rs) with the id of the key that sealed it, so
--    `rabt keys rotate` can find what an old key still holds. An enrolment
--    is a pending row (verified_at null) and changes nothing until a first
--    code verifies it; then it replaces the user's verified factor, if any.
--    last_used_step is the RFC 6238 time step of the last accepted code: a
--    code is accepted only for a later step, so it works once.
-- 2. recovery_codes: single-use codes, stored as SHA-256 hashes (each holds
--    about 80 random bits, out of reach of a guess even with the hash).
-- 3. mfa_challenges: the single-use token of a sign-in (or of a step-up of a
--    session) that awaits its second factor; hashed, five minutes.
-- 4. sessions.aal: 2 once the second factor was proven in the session, and
--    mfa_at: when it last was (step-up wants it recent).
-- 5. The last active admin cannot lose the role, be suspended, deactivated or
--    deleted: checked by triggers that count under one transaction lock, so
--    two parallel demotions run one after the other and the second is refused.

-- Sessions -----------------------------------------------------------------------

alter table public.sessions
    add column aal    smallint not null default 1,
    add column mfa_at timestamptz,
    add constraint sessions_aal_check check (aal in (1, 2)),
    add constraint sessions_mfa_at_check check ((aal = 2) = (mfa_at is not null));

-- TOTP factors ------------------------------------------------------------------------

create table public.totp_factors (
    id             uuid primary key default public.uuid_v7(),
    user_id        uuid not null references public.users (id) on delete cascade,
    secret_sealed  bytea not null,
    secret_key_id  text not null,
    created_at     timestamptz not null default now(),
    verified_at    timestamptz,
    verified       boolean generated always as (verified_at is not null) stored,
    last_used_step bigint not null default 0,
    constraint totp_factors_secret_sealed_size check (octet_length(secret_sealed) <= 256),
    constraint totp_factors_secret_key_id_length check (char_length(secret_key_id) <= 64),
    -- One verified factor and one pending enrolment per user at most.
    constraint totp_factors_user_id_verified_key unique (user_id, verified)
);

create index totp_factors_secret_key_id_idx on public.totp_factors (secret_key_id);

alter table public.totp_factors enable row level security;
alter table public.totp_factors force row level security;

-- A user may see that they have a factor, never its secret.
create policy totp_factors_select_own on public.totp_factors for select to rabt_authenticated
    using (user_id = (select auth.uid()));
create policy totp_factors_service on public.totp_factors for all to rabt_service
    using (true) with check (true);

grant select (id, user_id, created_at, verified_at, verified)
    on public.totp_factors to rabt_authenticated;
grant select, insert, update, delete on public.totp_factors to rabt_service;

-- Recovery codes ---------------------------------------------------------------------

create table public.recovery_codes (
    id         uuid primary key default public.uuid_v7(),
    user_id    uuid not null references public.users (id) on delete cascade,
    code_hash  bytea not null,
    created_at timestamptz not null default now(),
    used_at    timestamptz,
    constraint recovery_codes_code_hash_length check (octet_length(code_hash) = 32),
    constraint recovery_codes_user_id_code_hash_key unique (user_id, code_hash)
);

alter table public.recovery_codes enable row level security;
alter table public.recovery_codes force row level security;

create policy recovery_codes_select_own on public.recovery_codes for select to rabt_authenticated
    using (user_id = (select auth.uid()));
create policy recovery_codes_service on public.recovery_codes for all to rabt_service
    using (true) with check (true);

grant select (id, user_id, created_at, used_at) on public.recovery_codes to rabt_authenticated;
grant select, insert, update, delete on public.recovery_codes to rabt_service;

-- Challenges ----------------------------------------------------------------------------

create table public.mfa_challenges (
    id         uuid primary key default public.uuid_v7(),
    user_id    uuid not null references public.users (id) on delete cascade,
    -- Set for a step-up: the session the second factor raises to aal 2.
    session_id uuid references public.sessions (id) on delete cascade,
    -- What proved the first factor (for the audit log).
    via        text not null,
    token_hash bytea not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    used_at    timestamptz,
    constraint mfa_challenges_token_hash_length check (octet_length(token_hash) = 32),
    constraint mfa_challenges_via_check
        check (via in ('password', 'email_verification', 'password_reset', 'oauth', 'step_up')),
    constraint mfa_challenges_step_up_check check ((via = 'step_up') = (session_id is not null))
);

create unique index mfa_challenges_token_hash_key on public.mfa_challenges (token_hash);
create index mfa_challenges_user_id_idx on public.mfa_challenges (user_id);
create index mfa_challenges_session_id_idx on public.mfa_challenges (session_id);

alter table public.mfa_challenges enable row level security;
alter table public.mfa_challenges force row level security;
create policy mfa_challenges_service on public.mfa_challenges for all to rabt_service
    using (true) with check (true);
grant select, insert, update, delete on public.mfa_challenges to rabt_service;

-- The last active admin ------------------------------------------------------------------
-- An active admin holds `admin` and is neither suspended nor deactivated.
-- Whatever would leave no active admin (taking the role, suspending,
-- deactivating or deleting the last one) fails with the constraint
-- `users_last_active_admin`. The count runs after a transaction-scoped lock
-- that every such change takes, and (read committed) sees every change
-- committed before the lock was granted: of two parallel demotions of the
-- last two admins, the second counts none left and is refused.

create function public.keep_an_active_admin() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    affected uuid;
begin
    if tg_table_name = 'user_roles' then
        if old.role_name <> 'admin'
           or (tg_op = 'UPDATE' and new.role_name = 'admin' and new.user_id = old.user_id) then
            return null;
        end if;
        affected := old.user_id;
        -- Only an active admin's role counts (a deleted user's row is gone).
        if not exists (select 1 from public.users u
                       where u.id = affected
                         and u.suspended_at is null and u.deactivated_at is null) then
            return null;
        end if;
    else
        affected := old.id;
        if old.suspended_at is not null or old.deactivated_at is not null
           or (tg_op = 'UPDATE' and new.suspended_at is null and new.deactivated_at is null)
           or not exists (select 1 from public.user_roles r
                          where r.user_id = affected and r.role_name = 'admin') then
            return case when tg_op = 'DELETE' then old else null end;
        end if;
    end if;
    perform pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('rabt.last_active_admin', 0));
    if not exists (select 1 from public.user_roles r
                   join public.users u on u.id = r.user_id
                   where r.role_name = 'admin' and u.id <> affected
                     and u.suspended_at is null and u.deactivated_at is null) then
        raise exception 'the last active admin cannot lose the admin role'
            using errcode = 'check_violation', constraint = 'users_last_active_admin';
    end if;
    return case when tg_op = 'DELETE' and tg_table_name = 'users' then old else null end;
end
$$;
revoke all on function public.keep_an_active_admin() from public;

create trigger user_roles_keep_an_active_admin after update or delete on public.user_roles
    for each row execute function public.keep_an_active_admin();
create trigger users_keep_an_active_admin after update of suspended_at, deactivated_at
    on public.users
    for each row
    when (new.suspended_at is distinct from old.suspended_at
          or new.deactivated_at is distinct from old.deactivated_at)
    execute function public.keep_an_active_admin();
create trigger users_delete_keeps_an_active_admin before delete on public.users
    for each row execute function public.keep_an_active_admin();
