-- Profile search: a weighted full-text document (name A; headline and skills B;
-- bio C) for word and prefix matches, and trigrams on names for typos.

create schema if not exists extensions;
grant usage on schema extensions to rabt_anonymous, rabt_authenticated, rabt_service;
create extension if not exists pg_trgm with schema extensions;
-- Functions are not executable by default here (see 0001); trigram matching is.
grant execute on all functions in schema extensions
    to rabt_anonymous, rabt_authenticated, rabt_service;

create function public.skills_document(skills text[]) returns text
    language sql immutable parallel safe
    set search_path = ''
as $$
    select pg_catalog.array_to_string(skills, ' ')
$$;
revoke all on function public.skills_document(text[]) from public;
grant execute on function public.skills_document(text[])
    to rabt_anonymous, rabt_authenticated, rabt_service;

alter table public.users add column search tsvector generated always as (
    setweight(to_tsvector('simple'::regconfig, coalesce(display_name, '')), 'A')
    || setweight(to_tsvector('simple'::regconfig,
                             coalesce(headline, '') || ' ' || public.skills_document(skills)), 'B')
    || setweight(to_tsvector('simple'::regconfig, coalesce(bio, '')), 'C')
) stored;

create index users_search_idx on public.users using gin (search);
create index users_display_name_trgm_idx on public.users
    using gin (display_name extensions.gin_trgm_ops);
create index users_skills_idx on public.users using gin (skills);

-- Keyset orders of the listing, public profiles only.
drop index public.users_public_created_idx;
create index users_public_newest_idx on public.users (created_at desc, id desc)
    where visibility = 'public';
create index users_public_name_idx on public.users (lower(display_name), id)
    where visibility = 'public';

grant select (search) on public.users to rabt_anonymous;

-- Suspended and deactivated accounts are seen only by themselves and moderators.
drop policy users_select_visible on public.users;
create policy users_select_visible on public.users for select
    to rabt_anonymous, rabt_authenticated
    using (
        (visibility = 'public' and suspended_at is null and deactivated_at is null)
        or id = (select auth.uid())
        or (select auth.has_permission('users.read_private'))
    );
