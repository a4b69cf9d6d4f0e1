-- Identities at outside providers (Google, GitHub) linked to accounts. Provider
-- tokens are used once at sign-in and never stored.

create table public.oauth_identities (
    id          uuid primary key default public.uuid_v7(),
    user_id     uuid not null references public.users (id) on delete cascade,
    provider    text not null,
    subject     text not null,
    email       text,
    created_at  timestamptz not null default now(),
    constraint oauth_identities_provider_check check (provider in ('google', 'github')),
    constraint oauth_identities_subject_length check (char_length(subject) between 1 and 255),
    constraint oauth_identities_email_length check (char_length(email) <= 254)
);

create unique index oauth_identities_provider_subject_key
    on public.oauth_identities (provider, subject);
create index oauth_identities_user_id_idx on public.oauth_identities (user_id);

alter table public.oauth_identities enable row level security;

create policy oauth_identities_select_own on public.oauth_identities for select
    to rabt_authenticated
    using (user_id = (select auth.uid()));
create policy oauth_identities_service on public.oauth_identities for all to rabt_service
    using (true) with check (true);

grant select on public.oauth_identities to rabt_authenticated;
grant select, insert, update, delete on public.oauth_identities to rabt_service;
