-- Profiles: what a user tells about themselves, and moderation state.

alter table public.users
    add column headline       text,
    add column bio            text,
    add column skills         text[] not null default '{}',
    add column location       text,
    add column avatar_file_id uuid,
    add constraint users_headline_length check (char_length(headline) <= 120),
    add constraint users_bio_length check (char_length(bio) <= 2000),
    add constraint users_location_length check (char_length(location) <= 100),
    add constraint users_skills_count check (cardinality(skills) <= 30);

-- A user edits their own profile fields; moderation columns stay the service's.
grant update (headline, bio, skills, location, avatar_file_id) on public.users
    to rabt_authenticated;
grant select (headline, bio, skills, location, avatar_file_id) on public.users
    to rabt_anonymous;

-- Moderators (users.manage) edit and suspend through their own role, so the
-- database checks the permission too.
create policy users_manage on public.users for update to rabt_authenticated
    using ((select auth.has_permission('users.manage')))
    with check ((select auth.has_permission('users.manage')));
grant update (suspended_at, deactivated_at) on public.users to rabt_authenticated;

-- Only moderators may set moderation columns: a user updating their own row
-- cannot suspend or un-suspend themselves.
create function public.guard_moderation_columns() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    if (new.suspended_at is distinct from old.suspended_at
        or new.deactivated_at is distinct from old.deactivated_at)
       and current_user = 'rabt_authenticated'
       and not (select auth.has_permission('users.manage'))
    then
        raise exception 'moderation columns need users.manage'
            using errcode = 'insufficient_privilege';
    end if;
    return new;
end
$$;
revoke all on function public.guard_moderation_columns() from public;
grant execute on function public.guard_moderation_columns() to rabt_authenticated, rabt_service;

create trigger users_guard_moderation before update on public.users
    for each row execute function public.guard_moderation_columns();
