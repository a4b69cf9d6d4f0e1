-- Privacy policy versions and the consents users gave to them (API.md §11).
-- The current version is the one published last; a user who has not
-- accepted it may read but not change anything until they do (the gate in
-- privacy::gate).

create table public.privacy_policies (
    version      text primary key,
    -- Markdown as published, and its sanitised HTML.
    content      text not null,
    content_html text not null,
    published_at timestamptz not null default now(),
    published_by uuid references public.users (id) on delete set null,
    constraint privacy_policies_version_format check (version ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$'),
    constraint privacy_policies_content_length check (length(content) between 1 and 100000),
    constraint privacy_policies_content_html_length check (length(content_html) <= 400000)
);
create index privacy_policies_published_at_idx on public.privacy_policies (published_at desc);
create index privacy_policies_published_by_idx on public.privacy_policies (published_by);

create table public.consents (
    id             uuid primary key default public.uuid_v7(),
    user_id        uuid not null references public.users (id) on delete cascade,
    policy_version text not null references public.privacy_policies (version),
    accepted_at    timestamptz not null default now(),
    ip             inet,
    user_agent     text,
    constraint consents_user_agent_length check (char_length(user_agent) <= 512)
);
create index consents_user_id_idx on public.consents (user_id, accepted_at desc);
create index consents_policy_version_idx on public.consents (policy_version);

alter table public.privacy_policies enable row level security;
alter table public.consents enable row level security;

-- Everyone reads the policies; `legal.manage` publishes (never edits: a
-- published version is what people accepted).
create policy privacy_policies_read on public.privacy_policies for select
    to rabt_anonymous, rabt_authenticated, rabt_service using (true);
create policy privacy_policies_publish on public.privacy_policies for insert to rabt_authenticated
    with check ((select auth.has_permission('legal.manage'))
                and published_by = (select auth.uid()));
grant select on public.privacy_policies to rabt_anonymous, rabt_authenticated, rabt_service;
grant insert (version, content, content_html, published_by) on public.privacy_policies
    to rabt_authenticated;

-- A user reads and gives their own consents; sign-up records the first as
-- the service.
create policy consents_own on public.consents for select to rabt_authenticated
    using (user_id = (select auth.uid()));
create policy consents_give on public.consents for insert to rabt_authenticated
    with check (user_id = (select auth.uid()));
create policy consents_service on public.consents for all to rabt_service
    using (true) with check (true);
grant select on public.consents to rabt_authenticated;
grant insert (user_id, policy_version, ip, user_agent) on public.consents to rabt_authenticated;
grant select, insert, delete on public.consents to rabt_service;
