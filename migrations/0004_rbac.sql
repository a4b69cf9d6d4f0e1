-- Roles and permissions. Every user is a `member` implicitly; other roles are
-- granted in user_roles. The permissions of a request are published to the
-- policies through auth.has_permission(), so the database enforces what the API
-- checks.

create table public.permissions (
    name        text primary key,
    description text not null,
    constraint permissions_name_format check (name ~ '^[a-z_]+\.[a-z_]+$')
);

insert into public.permissions (name, description) values
    ('users.read_private', 'See private profiles and email addresses'),
    ('users.manage', 'Edit and suspend users'),
    ('users.delete', 'Delete users'),
    ('roles.manage', 'Create, edit and delete roles'),
    ('roles.assign', 'Grant and revoke roles'),
    ('projects.moderate', 'See and act on any project'),
    ('analytics.read', 'Read platform analytics'),
    ('billing.read_all', 'Read every user''s billing'),
    ('jobs.manage', 'Inspect and retry background jobs'),
    ('legal.manage', 'Publish privacy policies');

create table public.roles (
    name        text primary key,
    description text not null default '',
    builtin     boolean not null default false,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint roles_name_format check (name ~ '^[a-z][a-z0-9_-]{1,39}$'),
    constraint roles_description_length check (char_length(description) <= 500)
);

create trigger roles_set_updated_at before update on public.roles
    for each row execute function public.set_updated_at();

create table public.role_permissions (
    role_name       text not null references public.roles (name) on delete cascade,
    permission_name text not null references public.permissions (name) on delete cascade,
    primary key (role_name, permission_name)
);
create index role_permissions_permission_name_idx on public.role_permissions (permission_name);

create table public.user_roles (
    user_id    uuid not null references public.users (id) on delete cascade,
    role_name  text not null references public.roles (name) on delete cascade,
    granted_by uuid references public.users (id) on delete set null,
    granted_at timestamptz not null default now(),
    primary key (user_id, role_name)
);
create index user_roles_role_name_idx on public.user_roles (role_name);
create index user_roles_granted_by_idx on public.user_roles (granted_by);

insert into public.roles (name, description, builtin) values
    ('member', 'Everyone', true),
    ('moderator', 'Keeps the platform in order', true),
    ('admin', 'Everything', true);
insert into public.role_permissions (role_name, permission_name) values
    ('moderator', 'projects.moderate'),
    ('moderator', 'users.read_private'),
    ('moderator', 'users.manage');
insert into public.role_permissions (role_name, permission_name)
    select 'admin', name from public.permissions;

-- Built-in roles can be neither deleted, renamed, nor changed in what they grant.
create function public.protect_builtin_roles() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    if tg_table_name = 'roles' then
        if old.builtin and (tg_op = 'DELETE' or new.name <> old.name) then
            raise exception 'built-in role % cannot be deleted or renamed', old.name
                using errcode = 'check_violation', constraint = 'roles_builtin_protected';
        end if;
    elsif exists (select 1 from public.roles r
                  where r.builtin
                    and r.name = case when tg_op = 'DELETE' then old.role_name
                                      else new.role_name end) then
        raise exception 'the permissions of built-in roles are fixed'
            using errcode = 'check_violation', constraint = 'roles_builtin_protected';
    end if;
    return case when tg_op = 'DELETE' then old else new end;
end
$$;
revoke all on function public.protect_builtin_roles() from public;
grant execute on function public.protect_builtin_roles() to rabt_authenticated, rabt_service;

create trigger roles_protect_builtin before update or delete on public.roles
    for each row execute function public.protect_builtin_roles();
create trigger role_permissions_protect_builtin before insert or update or delete
    on public.role_permissions
    for each row execute function public.protect_builtin_roles();

-- Row-level security -------------------------------------------------------------

alter table public.permissions enable row level security;
alter table public.roles enable row level security;
alter table public.role_permissions enable row level security;
alter table public.user_roles enable row level security;

create policy permissions_read on public.permissions for select
    to rabt_authenticated, rabt_service using (true);
create policy roles_read on public.roles for select
    to rabt_authenticated, rabt_service using (true);
create policy role_permissions_read on public.role_permissions for select
    to rabt_authenticated, rabt_service using (true);

create policy roles_manage on public.roles for all to rabt_authenticated
    using ((select auth.has_permission('roles.manage')))
    with check ((select auth.has_permission('roles.manage')));
create policy role_permissions_manage on public.role_permissions for all to rabt_authenticated
    using ((select auth.has_permission('roles.manage')))
    with check ((select auth.has_permission('roles.manage')));

create policy user_roles_read on public.user_roles for select to rabt_authenticated
    using (
        user_id = (select auth.uid())
        or (select auth.has_permission('roles.assign'))
        or (select auth.has_permission('users.read_private'))
    );
create policy user_roles_assign on public.user_roles for all to rabt_authenticated
    using ((select auth.has_permission('roles.assign')))
    with check ((select auth.has_permission('roles.assign')));
create policy user_roles_service on public.user_roles for all to rabt_service
    using (true) with check (true);

grant select on public.permissions, public.roles, public.role_permissions
    to rabt_authenticated, rabt_service;
grant insert, update, delete on public.roles, public.role_permissions to rabt_authenticated;
grant select, insert, delete on public.user_roles to rabt_authenticated;
grant select, insert, update, delete on public.user_roles to rabt_service;
