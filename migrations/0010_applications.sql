-- Applications to projects, with their own status machine (enforced here, and
-- by who may take each step), a history, the project's application_count kept
-- by the database, and a notification to the other side of every event.

create table public.application_transitions (
    from_status text not null,
    to_status   text not null,
    -- Who may take the step: the project's owner or the applicant.
    taken_by    text not null,
    primary key (from_status, to_status),
    constraint application_transitions_taken_by check (taken_by in ('owner', 'applicant'))
);
insert into public.application_transitions (from_status, to_status, taken_by) values
    ('pending', 'shortlisted', 'owner'),
    ('pending', 'accepted', 'owner'),
    ('pending', 'rejected', 'owner'),
    ('shortlisted', 'accepted', 'owner'),
    ('shortlisted', 'rejected', 'owner'),
    ('pending', 'withdrawn', 'applicant'),
    ('shortlisted', 'withdrawn', 'applicant');

create table public.applications (
    id                       uuid primary key default public.uuid_v7(),
    project_id               uuid not null references public.projects (id) on delete cascade,
    applicant_id             uuid not null references public.users (id) on delete cascade,
    cover_letter             text not null,
    proposed_budget_amount   bigint,
    proposed_budget_currency text,
    attachment_file_ids      uuid[] not null default '{}',
    status                   text not null default 'pending',
    created_at               timestamptz not null default now(),
    updated_at               timestamptz not null default now(),
    constraint applications_cover_letter_length check (char_length(cover_letter) between 1 and 5000),
    constraint applications_budget_complete check (
        (proposed_budget_amount is null) = (proposed_budget_currency is null)),
    constraint applications_budget_amount check (proposed_budget_amount >= 0),
    constraint applications_budget_currency check (proposed_budget_currency ~ '^[a-z]{3}$'),
    constraint applications_attachments_count check (cardinality(attachment_file_ids) <= 10),
    constraint applications_status_check check (status in
        ('pending', 'shortlisted', 'accepted', 'rejected', 'withdrawn'))
);

-- One active application per applicant and project, whatever races.
create unique index applications_one_active_idx on public.applications (project_id, applicant_id)
    where status in ('pending', 'shortlisted', 'accepted');
create index applications_project_id_idx on public.applications (project_id, created_at desc, id desc);
create index applications_applicant_id_idx on public.applications
    (applicant_id, created_at desc, id desc);

create trigger applications_set_updated_at before update on public.applications
    for each row execute function public.set_updated_at();

create table public.application_status_history (
    id             uuid primary key default public.uuid_v7(),
    application_id uuid not null references public.applications (id) on delete cascade,
    from_status    text not null,
    to_status      text not null,
    actor_id       uuid references public.users (id) on delete set null,
    note           text,
    at             timestamptz not null default now(),
    constraint application_status_history_note_length check (char_length(note) <= 2000)
);
create index application_status_history_application_id_idx
    on public.application_status_history (application_id, at);
create index application_status_history_actor_id_idx
    on public.application_status_history (actor_id);

-- Notifications (API.md §6) ------------------------------------------------------------

create table public.notifications (
    id         uuid primary key default public.uuid_v7(),
    user_id    uuid not null references public.users (id) on delete cascade,
    kind       text not null,
    payload    jsonb not null default '{}',
    read_at    timestamptz,
    created_at timestamptz not null default now(),
    constraint notifications_kind_format check (kind ~ '^[a-z_]+(\.[a-z_]+)*$'),
    constraint notifications_payload_size check (pg_column_size(payload) <= 16384)
);
create index notifications_user_id_idx on public.notifications (user_id, id desc);
create index notifications_unread_idx on public.notifications (user_id, id desc)
    where read_at is null;

create table public.notification_preferences (
    user_id      uuid primary key references public.users (id) on delete cascade,
    messages     text not null default 'immediately',
    applications boolean not null default true,
    billing      boolean not null default true,
    product_news boolean not null default false,
    updated_at   timestamptz not null default now(),
    constraint notification_preferences_messages check (messages in
        ('never', 'immediately', 'digest'))
);

create trigger notification_preferences_set_updated_at before update
    on public.notification_preferences
    for each row execute function public.set_updated_at();

-- The machine -------------------------------------------------------------------------

-- Applying needs an open project that is not the applicant's own, and a new
-- application is pending. A status changes only along application_transitions,
-- taken by the side the row names (request roles; the service may take any
-- listed step). Every event is written to the history, moves the project's
-- count, notifies the other side, and queues an email when their preferences
-- ask for one. The project row is locked FOR NO KEY UPDATE, which the
-- foreign-key check's KEY SHARE lock of a concurrent insert does not block, so
-- parallel applications queue up instead of deadlocking. Runs as the schema
-- owner: no request role has rights on the history, the notifications of
-- others, or the project's counter.
create function public.application_event() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    project record;
    actor uuid := (select auth.uid());
    recipient uuid;
    notification uuid;
    wants_email boolean;
    step text;
begin
    select p.id, p.owner_id, p.title, p.status into project
    from public.projects p where p.id = new.project_id for no key update;

    if tg_op = 'INSERT' then
        if project.status <> 'open' then
            raise exception 'the project is not open'
                using errcode = 'check_violation', constraint = 'applications_project_open';
        end if;
        if new.status <> 'pending' or new.applicant_id = project.owner_id then
            raise exception 'a new application is pending and not the owner''s'
                using errcode = 'check_violation', constraint = 'applications_transition';
        end if;
        update public.projects set application_count = application_count + 1
        where id = project.id;
        recipient := project.owner_id;
    else
        if new.status is not distinct from old.status then
            return new;
        end if;
        select t.taken_by into step from public.application_transitions t
        where t.from_status = old.status and t.to_status = new.status;
        if step is null
           -- current_user is this function's owner; the request's role is the
           -- `role` setting Db::begin made.
           or (pg_catalog.current_setting('role', true) is distinct from 'rabt_service'
               and actor is distinct from case step when 'owner' then project.owner_id
                                                    else old.applicant_id end) then
            raise exception 'no transition from % to % for this actor', old.status, new.status
                using errcode = 'check_violation', constraint = 'applications_transition';
        end if;
        if new.status = 'withdrawn' then
            update public.projects set application_count = application_count - 1
            where id = project.id;
        end if;
        insert into public.application_status_history (application_id, from_status, to_status,
                                                       actor_id, note)
        values (new.id, old.status, new.status, actor,
                nullif(pg_catalog.current_setting('request.transition_reason', true), ''));
        recipient := case when step = 'owner' then old.applicant_id else project.owner_id end;
    end if;

    insert into public.notifications (user_id, kind, payload)
    values (recipient,
            'application.' || case when tg_op = 'INSERT' then 'submitted' else new.status end,
            pg_catalog.jsonb_build_object(
                'application_id', new.id,
                'project_id', project.id,
                'project_title', project.title,
                'applicant_id', new.applicant_id,
                'status', new.status))
    returning id into notification;

    select coalesce((select np.applications from public.notification_preferences np
                     where np.user_id = recipient), true)
    into wants_email;
    if wants_email then
        insert into public.jobs (kind, payload, max_attempts)
        values ('notifications.email',
                pg_catalog.jsonb_build_object('notification_id', notification), 10);
    end if;
    return new;
end
$$;
revoke all on function public.application_event() from public;

create trigger applications_event after insert or update of status on public.applications
    for each row execute function public.application_event();

-- A status is not written on insert other than `pending`, nor moved by anything
-- but the event above; this guard runs before the row is stored so a refused
-- step leaves nothing behind.
create function public.application_status_guard() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    if tg_op = 'INSERT' and new.status <> 'pending' then
        raise exception 'a new application is pending'
            using errcode = 'check_violation', constraint = 'applications_transition';
    end if;
    return new;
end
$$;
revoke all on function public.application_status_guard() from public;
grant execute on function public.application_status_guard() to rabt_authenticated, rabt_service;

create trigger applications_status_guard before insert on public.applications
    for each row execute function public.application_status_guard();

-- Row-level security ----------------------------------------------------------------------

alter table public.application_transitions enable row level security;
alter table public.applications enable row level security;
alter table public.application_status_history enable row level security;
alter table public.notifications enable row level security;
alter table public.notification_preferences enable row level security;

create policy application_transitions_read on public.application_transitions for select
    to rabt_authenticated, rabt_service using (true);

-- The applicant, the project's owner, and moderators.
create policy applications_select on public.applications for select to rabt_authenticated
    using (
        applicant_id = (select auth.uid())
        or exists (select 1 from public.projects p
                   where p.id = project_id and p.owner_id = (select auth.uid()))
        or (select auth.has_permission('projects.moderate'))
    );
create policy applications_insert_own on public.applications for insert to rabt_authenticated
    with check (applicant_id = (select auth.uid()));
-- Either side may attempt a step; the trigger decides which steps are theirs.
create policy applications_update on public.applications for update to rabt_authenticated
    using (
        applicant_id = (select auth.uid())
        or exists (select 1 from public.projects p
                   where p.id = project_id and p.owner_id = (select auth.uid()))
    )
    with check (
        applicant_id = (select auth.uid())
        or exists (select 1 from public.projects p
                   where p.id = project_id and p.owner_id = (select auth.uid()))
    );
create policy applications_service on public.applications for all to rabt_service
    using (true) with check (true);

create policy application_status_history_read on public.application_status_history
    for select to rabt_authenticated
    using (exists (select 1 from public.applications a where a.id = application_id));
create policy application_status_history_service on public.application_status_history
    for select to rabt_service using (true);

create policy notifications_own on public.notifications for select to rabt_authenticated
    using (user_id = (select auth.uid()));
create policy notifications_mark_read on public.notifications for update to rabt_authenticated
    using (user_id = (select auth.uid()))
    with check (user_id = (select auth.uid()));
create policy notifications_service on public.notifications for all to rabt_service
    using (true) with check (true);

create policy notification_preferences_own on public.notification_preferences for all
    to rabt_authenticated
    using (user_id = (select auth.uid()))
    with check (user_id = (select auth.uid()));
create policy notification_preferences_service on public.notification_preferences
    for select to rabt_service using (true);

grant select on public.application_transitions to rabt_authenticated, rabt_service;
grant select on public.applications to rabt_authenticated;
grant insert (id, project_id, applicant_id, cover_letter, proposed_budget_amount,
              proposed_budget_currency, attachment_file_ids)
    on public.applications to rabt_authenticated;
grant update (status) on public.applications to rabt_authenticated;
grant select, insert, update, delete on public.applications to rabt_service;
grant select on public.application_status_history to rabt_authenticated, rabt_service;
grant select on public.notifications to rabt_authenticated;
grant update (read_at) on public.notifications to rabt_authenticated;
grant select, insert, update, delete on public.notifications to rabt_service;
grant select, insert, update on public.notification_preferences to rabt_authenticated;
grant select on public.notification_preferences to rabt_service;

-- Idempotency keys (API.md §1) ---------------------------------------------------------
-- The first response to a creating POST under a key, saved in the same
-- transaction as what it created, for 24 hours.

create table public.idempotency_keys (
    user_id         uuid not null references public.users (id) on delete cascade,
    key             text not null,
    request_hash    bytea not null,
    response_status smallint not null,
    response_body   jsonb not null,
    created_at      timestamptz not null default now(),
    primary key (user_id, key),
    constraint idempotency_keys_key_length check (char_length(key) between 1 and 255),
    constraint idempotency_keys_body_size check (pg_column_size(response_body) <= 1048576)
);
create index idempotency_keys_created_at_idx on public.idempotency_keys (created_at);

alter table public.idempotency_keys enable row level security;
create policy idempotency_keys_own on public.idempotency_keys for all to rabt_authenticated
    using (user_id = (select auth.uid()))
    with check (user_id = (select auth.uid()));
create policy idempotency_keys_service on public.idempotency_keys for all to rabt_service
    using (true) with check (true);
grant select, insert, delete on public.idempotency_keys to rabt_authenticated;
grant select, delete on public.idempotency_keys to rabt_service;
