-- The query cache (crates/rabt/src/query_cache.rs) keeps whole answers of
-- anonymous project searches. An answer shows projects and their owners'
-- names, so any change to a project, or to a profile's name, visibility or
-- standing, must retire every cached answer. Writes through the API do that
-- themselves after their commit; these triggers tell every instance of any
-- other writer's change (`rabt admin`, jobs, plain SQL). NOTIFY is sent at
-- commit and sent once per transaction, however many statements fired it.

create function public.notify_search_changed() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    perform pg_catalog.pg_notify('rabt_search', '');
    return null;
end
$$;
revoke all on function public.notify_search_changed() from public;

create trigger projects_search_changed
    after insert or update or delete or truncate on public.projects
    for each statement execute function public.notify_search_changed();

create trigger users_search_changed
    after update of display_name, visibility, suspended_at, deactivated_at or delete
    on public.users
    for each statement execute function public.notify_search_changed();
