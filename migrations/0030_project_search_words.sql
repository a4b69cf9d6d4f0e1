-- The words of published projects, so that a search word's prefix can be asked
-- for as the few words it stands for (docs/PERFORMANCE.md, 2026-12-01, "the
-- search at a million projects").
--
-- Every word of a project search matches by prefix (`dash:*`, API.md §5). GIN
-- answers a prefix by first collecting every posting of every key that starts
-- with it into one bitmap: for a common word that is hundreds of thousands of
-- rows, read whole before the category and skills narrow anything, and the
-- bitmap outgrows work_mem and turns lossy, so many more rows are rechecked in
-- the heap. The same words asked for exactly (`dash | dashboard | dashboards`)
-- are intersected with the category and the skills inside the index, skipping
-- the postings that cannot match.
--
-- The server looks the prefix up here (projects/store.rs, `expand_words`) and
-- asks for the words exactly when they are few; it ranks with the prefix as
-- before, so results and their order do not change. That needs every word of
-- every project the search may find: the table holds every word of every
-- project while it is public, and is never pruned (a word of a project since
-- deleted only widens a query by a word that matches nothing). The words of a
-- project that was never public are not here, since the table is readable by
-- every request, so a search that may find drafts (their owner's, and
-- moderators') asks for those projects with the prefix itself.
--
-- The trigger below sees row updates only: a migration that changes how
-- `projects.search` is made must fill this table again, as this one does.

create table public.project_search_words (
    word text collate "C" primary key
);

insert into public.project_search_words (word)
select distinct w
from public.projects p, unnest(tsvector_to_array(p.search)) w
where p.status in ('open', 'in_progress', 'completed');

-- Runs as the schema owner: no request role may write the table.
create function public.project_search_words_add() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    insert into public.project_search_words (word)
    select w from unnest(pg_catalog.tsvector_to_array(new.search)) w
    on conflict do nothing;
    return null;
end
$$;
revoke all on function public.project_search_words_add() from public;

-- Projects are inserted as drafts (0009), so only an update makes one public
-- or changes the words of a public one.
create trigger projects_search_words after update of title, summary, description, skills,
    status on public.projects
    for each row
    when (new.status in ('open', 'in_progress', 'completed')
          and (old.status not in ('open', 'in_progress', 'completed')
               or old.search is distinct from new.search))
    execute function public.project_search_words_add();

alter table public.project_search_words enable row level security;
create policy project_search_words_read on public.project_search_words for select
    to rabt_anonymous, rabt_authenticated using (true);
grant select on public.project_search_words to rabt_anonymous, rabt_authenticated;
