-- Grants are versioned, and the database holds the line on who grants what.
--
-- 1. Every change to what a user may do (their roles, the permissions of a role
--    they hold, a suspension or deactivation) bumps the user's grants version
--    in the same transaction, whoever makes it: the API, `rabt admin`, or SQL
--    typed by an operator. The session check caches a session's grants with the
--    version they were read at and compares it with the current one on every
--    request (auth/sessions.rs), so a removed permission counts from the next
--    request. The version reaches the servers' shared store from the writer
--    after its commit and, for every other writer, through NOTIFY rabt_grants.
-- 2. Suspending or deactivating a user revokes their sessions in the same
--    transaction.
-- 3. Nobody grants or takes away a permission they lack, in the database too:
--    the policies of user_roles and role_permissions check every permission
--    involved, not only roles.assign / roles.manage.
-- 4. A signed-in request appends audit entries only for the changes its
--    permissions allow it to make (0013 let it append any action).
-- 5. Email addresses: signed-in requests no longer select the column; they
--    read an address through public.user_email(), which answers only for the
--    caller themselves, holders of users.read_private and the service role.

create table public.grant_versions (
    user_id uuid primary key references public.users (id) on delete cascade,
    version bigint not null default 0
);

alter table public.grant_versions enable row level security;
create policy grant_versions_service on public.grant_versions for select to rabt_service
    using (true);
grant select on public.grant_versions to rabt_service;

-- Bumps the versions of `affected` and announces each new one on rabt_grants
-- (delivered when the transaction commits). Users being deleted are skipped.
create function public.bump_grant_versions(affected uuid[]) returns void
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    bumped record;
begin
    for bumped in
        insert into public.grant_versions as g (user_id, version)
        select distinct a.id, 1
        from pg_catalog.unnest(affected) as a(id)
        where a.id is not null and exists (select 1 from public.users u where u.id = a.id)
        on conflict (user_id) do update set version = g.version + 1
        returning g.user_id, g.version
    loop
        perform pg_catalog.pg_notify('rabt_grants',
                                     bumped.user_id::text || ' ' || bumped.version::text);
    end loop;
end
$$;
revoke all on function public.bump_grant_versions(uuid[]) from public;

create function public.user_roles_changed() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    perform public.bump_grant_versions(case tg_op
        when 'INSERT' then array[new.user_id]
        when 'DELETE' then array[old.user_id]
        else array[old.user_id, new.user_id] end);
    return null;
end
$$;
revoke all on function public.user_roles_changed() from public;

create trigger user_roles_bump_grants after insert or update or delete on public.user_roles
    for each row execute function public.user_roles_changed();

create function public.role_permissions_changed() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    perform public.bump_grant_versions(array(
        select ur.user_id from public.user_roles ur
        where ur.role_name in (old.role_name, new.role_name)));
    return null;
end
$$;
revoke all on function public.role_permissions_changed() from public;

create trigger role_permissions_bump_grants after insert or update or delete
    on public.role_permissions
    for each row execute function public.role_permissions_changed();

-- A suspension or deactivation ends the user's sessions with it, and makes
-- every cached session answer of theirs stale.
create function public.user_access_changed() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    if new.suspended_at is not null and old.suspended_at is null then
        update public.sessions set revoked_at = pg_catalog.now(), revoked_reason = 'suspended'
        where user_id = new.id and revoked_at is null;
    end if;
    if new.deactivated_at is not null and old.deactivated_at is null then
        update public.sessions set revoked_at = pg_catalog.now(), revoked_reason = 'deactivated'
        where user_id = new.id and revoked_at is null;
    end if;
    perform public.bump_grant_versions(array[new.id]);
    return null;
end
$$;
revoke all on function public.user_access_changed() from public;

create trigger users_access_changed after update of suspended_at, deactivated_at
    on public.users
    for each row
    when (new.suspended_at is distinct from old.suspended_at
          or new.deactivated_at is distinct from old.deactivated_at)
    execute function public.user_access_changed();

-- Grants within the granter's own permissions -------------------------------------

drop policy user_roles_assign on public.user_roles;
create policy user_roles_assign on public.user_roles for all to rabt_authenticated
    using (
        (select auth.has_permission('roles.assign'))
        and not exists (select 1 from public.role_permissions rp
                        where rp.role_name = user_roles.role_name
                          and rp.permission_name <> all ((select auth.permissions())::text[]))
    )
    with check (
        (select auth.has_permission('roles.assign'))
        and not exists (select 1 from public.role_permissions rp
                        where rp.role_name = user_roles.role_name
                          and rp.permission_name <> all ((select auth.permissions())::text[]))
    );

drop policy role_permissions_manage on public.role_permissions;
create policy role_permissions_manage on public.role_permissions for all to rabt_authenticated
    using ((select auth.has_permission('roles.manage'))
           and permission_name = any ((select auth.permissions())::text[]))
    with check ((select auth.has_permission('roles.manage'))
                and permission_name = any ((select auth.permissions())::text[]));

-- Audit entries a request may append ---------------------------------------------

drop policy audit_log_append_own on public.audit_log;
create policy audit_log_append_own on public.audit_log for insert to rabt_authenticated
    with check (
        actor_id = (select auth.uid())
        and case action
            when 'roles_changed' then (select auth.has_permission('roles.assign'))
                                      or (select auth.has_permission('roles.manage'))
            when 'user_suspended' then (select auth.has_permission('users.manage'))
            when 'user_reinstated' then (select auth.has_permission('users.manage'))
            else false
        end
    );

-- Email addresses ----------------------------------------------------------------

revoke select (email) on public.users from rabt_authenticated;

create function public.user_email(id uuid) returns text
    language sql
    stable
    security definer
    set search_path = ''
as $$
    select u.email from public.users u
    where u.id = user_email.id
      and (u.id = (select auth.uid())
           or (select auth.has_permission('users.read_private'))
           -- Workers and sign-in flows act as the service role. (Inside this
           -- function current_user is its owner; the role setting is the caller's.)
           or pg_catalog.current_setting('role', true) = 'rabt_service')
$$;
revoke all on function public.user_email(uuid) from public;
grant execute on function public.user_email(uuid) to rabt_authenticated, rabt_service;
