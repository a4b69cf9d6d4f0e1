-- Projects: what owners post, with a status machine the database enforces, a
-- history of every transition, and the search document.

-- Plans: the open-project limit a user's plan allows is read from here, so
-- billing can raise it. Everyone is on `free` until billing exists; the server
-- may override the free limit by configuration (RABT_FREE_PLAN_OPEN_PROJECTS).
alter table public.users add column plan text not null default 'free',
    add constraint users_plan_format check (plan ~ '^[a-z][a-z0-9_-]{0,39}$');
grant select (plan) on public.users to rabt_authenticated;

-- Statuses and the transitions between them (API.md §5). The trigger below
-- refuses any update of `status` that is not a row here.
create table public.project_transitions (
    from_status text not null,
    to_status   text not null,
    primary key (from_status, to_status)
);
insert into public.project_transitions (from_status, to_status) values
    ('draft', 'open'),
    ('open', 'draft'),
    ('open', 'in_progress'),
    ('open', 'cancelled'),
    ('in_progress', 'completed'),
    ('in_progress', 'cancelled'),
    ('completed', 'archived'),
    ('cancelled', 'archived');

create table public.projects (
    id                uuid primary key default public.uuid_v7(),
    owner_id          uuid not null references public.users (id) on delete cascade,
    title             text not null,
    summary           text,
    description       text not null default '',
    description_html  text not null default '',
    category          text,
    skills            text[] not null default '{}',
    budget_min        bigint,
    budget_max        bigint,
    currency          text,
    remote            boolean not null default false,
    location          text,
    status            text not null default 'draft',
    application_count integer not null default 0,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    published_at      timestamptz,
    search            tsvector generated always as (
        setweight(to_tsvector('simple'::regconfig, title), 'A')
        || setweight(to_tsvector('simple'::regconfig,
                     coalesce(summary, '') || ' ' || public.skills_document(skills)), 'B')
        || setweight(to_tsvector('simple'::regconfig, description), 'C')
    ) stored,
    constraint projects_title_length check (char_length(title) between 1 and 200),
    constraint projects_summary_length check (char_length(summary) between 1 and 500),
    constraint projects_description_length check (char_length(description) <= 20000),
    constraint projects_description_html_length check (char_length(description_html) <= 60000),
    constraint projects_category_format check (category ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    constraint projects_skills_count check (cardinality(skills) <= 30),
    constraint projects_location_length check (char_length(location) between 1 and 100),
    constraint projects_status_check check (status in
        ('draft', 'open', 'in_progress', 'completed', 'cancelled', 'archived')),
    constraint projects_budget_complete check (
        (budget_min is null and budget_max is null and currency is null)
        or (budget_min is not null and budget_max is not null and currency is not null)),
    constraint projects_budget_range check (budget_min >= 0 and budget_min <= budget_max),
    constraint projects_currency_format check (currency ~ '^[a-z]{3}$'),
    constraint projects_application_count check (application_count >= 0),
    constraint projects_published check (status = 'draft' or published_at is not null)
);

create index projects_owner_id_idx on public.projects (owner_id, created_at desc);
create index projects_search_idx on public.projects using gin (search);
create index projects_title_trgm_idx on public.projects using gin (title extensions.gin_trgm_ops);
create index projects_skills_idx on public.projects using gin (skills);
-- Keyset orders, each led by status: every listing filters by it.
create index projects_status_newest_idx on public.projects (status, created_at desc, id desc);
create index projects_status_budget_high_idx on public.projects
    (status, (coalesce(budget_max, -1)) desc, id desc);
create index projects_status_budget_low_idx on public.projects
    (status, (coalesce(budget_min, 9223372036854775807)), id);
create index projects_category_idx on public.projects (category, status, created_at desc);

-- Edits move updated_at; the application counter does not.
create trigger projects_set_updated_at before update of title, summary, description,
    description_html, category, skills, budget_min, budget_max, currency, remote, location,
    status on public.projects
    for each row execute function public.set_updated_at();

create table public.project_status_history (
    id          uuid primary key default public.uuid_v7(),
    project_id  uuid not null references public.projects (id) on delete cascade,
    from_status text not null,
    to_status   text not null,
    actor_id    uuid references public.users (id) on delete set null,
    reason      text,
    at          timestamptz not null default now(),
    constraint project_status_history_reason_length check (char_length(reason) <= 500)
);
create index project_status_history_project_id_idx on public.project_status_history
    (project_id, at);
create index project_status_history_actor_id_idx on public.project_status_history (actor_id);

-- New projects are drafts; a status changes only along project_transitions, and
-- every change is written to the history with the acting user and the reason
-- the request published (`request.transition_reason`). Runs as the schema
-- owner so that no request role needs (or has) any right on the history.
create function public.project_status_guard() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    if tg_op = 'INSERT' then
        if new.status <> 'draft' or new.published_at is not null
           or new.application_count <> 0 then
            raise exception 'a project starts as an empty draft'
                using errcode = 'check_violation', constraint = 'projects_starts_as_draft';
        end if;
        return new;
    end if;
    if new.status is distinct from old.status then
        if not exists (select 1 from public.project_transitions t
                       where t.from_status = old.status and t.to_status = new.status) then
            raise exception 'no transition from % to %', old.status, new.status
                using errcode = 'check_violation', constraint = 'projects_transition';
        end if;
        if old.status = 'open' and new.status = 'draft' and old.application_count > 0 then
            raise exception 'a project with applications cannot return to draft'
                using errcode = 'check_violation', constraint = 'projects_transition';
        end if;
        if new.status = 'open' and new.published_at is null then
            new.published_at := pg_catalog.now();
        end if;
        insert into public.project_status_history (project_id, from_status, to_status,
                                                   actor_id, reason)
        values (new.id, old.status, new.status, (select auth.uid()),
                nullif(pg_catalog.current_setting('request.transition_reason', true), ''));
    elsif new.published_at is distinct from old.published_at then
        raise exception 'published_at follows the status'
            using errcode = 'check_violation', constraint = 'projects_transition';
    end if;
    return new;
end
$$;
revoke all on function public.project_status_guard() from public;

create trigger projects_status_guard before insert or update on public.projects
    for each row execute function public.project_status_guard();

-- Row-level security ----------------------------------------------------------------

alter table public.project_transitions enable row level security;
alter table public.projects enable row level security;
alter table public.project_status_history enable row level security;

create policy project_transitions_read on public.project_transitions for select
    to rabt_anonymous, rabt_authenticated, rabt_service using (true);

-- Public statuses for everyone; the rest for the owner and moderators.
create policy projects_select_visible on public.projects for select
    to rabt_anonymous, rabt_authenticated
    using (
        status in ('open', 'in_progress', 'completed')
        or owner_id = (select auth.uid())
        or (select auth.has_permission('projects.moderate'))
    );
create policy projects_insert_own on public.projects for insert to rabt_authenticated
    with check (owner_id = (select auth.uid()));
create policy projects_update_own on public.projects for update to rabt_authenticated
    using (owner_id = (select auth.uid())
           or (select auth.has_permission('projects.moderate')))
    with check (owner_id = (select auth.uid())
                or (select auth.has_permission('projects.moderate')));
-- Owners delete drafts; moderators any project.
create policy projects_delete on public.projects for delete to rabt_authenticated
    using ((owner_id = (select auth.uid()) and status = 'draft')
           or (select auth.has_permission('projects.moderate')));
create policy projects_service on public.projects for all to rabt_service
    using (true) with check (true);

-- The history of a project (with its reasons) is for its owner and moderators.
create policy project_status_history_read on public.project_status_history for select
    to rabt_authenticated
    using (
        (select auth.has_permission('projects.moderate'))
        or exists (select 1 from public.projects p
                   where p.id = project_id and p.owner_id = (select auth.uid()))
    );
create policy project_status_history_service on public.project_status_history for select
    to rabt_service using (true);

grant select on public.project_transitions to rabt_anonymous, rabt_authenticated, rabt_service;
grant select (id, owner_id, title, summary, description, description_html, category, skills,
              budget_min, budget_max, currency, remote, location, status, application_count,
              created_at, updated_at, published_at, search)
    on public.projects to rabt_anonymous, rabt_authenticated;
grant insert (owner_id, title, summary, description, description_html, category, skills,
              budget_min, budget_max, currency, remote, location)
    on public.projects to rabt_authenticated;
grant update (title, summary, description, description_html, category, skills, budget_min,
              budget_max, currency, remote, location, status)
    on public.projects to rabt_authenticated;
grant delete on public.projects to rabt_authenticated;
grant select, insert, update, delete on public.projects to rabt_service;
grant select on public.project_status_history to rabt_authenticated, rabt_service;

-- The listing view (see 0008): the policy's visibility rule, stated where the
-- planner can combine it with the search indexes.
create view public.project_listings as
    select id, owner_id, title, summary, description, description_html, category, skills,
           budget_min, budget_max, currency, remote, location, status, application_count,
           created_at, updated_at, published_at, search
    from public.projects
    where status in ('open', 'in_progress', 'completed')
       or owner_id = (select auth.uid())
       or (select auth.has_permission('projects.moderate'));

grant select on public.project_listings to rabt_anonymous, rabt_authenticated;
