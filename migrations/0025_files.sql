-- Files (API.md §8): uploaded objects' metadata. The bytes live in object
-- storage under `object_key`; a row is `pending` until its upload is checked,
-- then `ready`. Whoever uploaded a file sees it; others see it through what
-- it is attached to (an avatar through a visible profile, an application's
-- attachment through the application), each by that table's own policies.

create table public.files (
    id           uuid primary key default public.uuid_v7(),
    owner_id     uuid not null references public.users (id) on delete cascade,
    purpose      text not null,
    filename     text not null,
    content_type text not null,
    size_bytes   bigint not null,
    object_key   text not null,
    status       text not null default 'pending',
    created_at   timestamptz not null default now(),
    completed_at timestamptz,
    -- First attached to something (an avatar, an application, a message).
    attached_at  timestamptz,
    -- Attached once and to nothing since then: removed after a grace period.
    detached_at  timestamptz,
    constraint files_purpose check (purpose in
        ('avatar', 'project_attachment', 'application_attachment', 'message_attachment')),
    constraint files_filename_length check (char_length(filename) between 1 and 255),
    constraint files_content_type_length check (char_length(content_type) between 1 and 255),
    constraint files_size_positive check (size_bytes > 0),
    constraint files_status check (status in ('pending', 'ready')),
    constraint files_ready_completed check ((status = 'ready') = (completed_at is not null)),
    constraint files_object_key_key unique (object_key)
);
create index files_owner_id_idx on public.files (owner_id, created_at desc);
-- The sweeps: stale pending uploads, and files detached long enough.
create index files_pending_idx on public.files (created_at) where status = 'pending';
create index files_detached_idx on public.files (detached_at) where detached_at is not null;
create index files_attached_idx on public.files (attached_at)
    where attached_at is not null and detached_at is null;

-- The avatar is a file of the user's; a removed file clears it.
update public.users set avatar_file_id = null where avatar_file_id is not null;
alter table public.users
    add constraint users_avatar_file_id_fkey foreign key (avatar_file_id)
        references public.files (id) on delete set null;
create index users_avatar_file_id_idx on public.users (avatar_file_id)
    where avatar_file_id is not null;
-- "Which applications carry this file": the attachment policy and the sweep.
create index applications_attachment_file_ids_idx on public.applications
    using gin (attachment_file_ids);

-- Whether anything still refers to a file. Messaging adds its attachments
-- here (create or replace) when it arrives. Runs as the schema owner: the
-- sweep asks about every row, whoever can see the referring ones.
create function public.file_is_attached(file uuid) returns boolean
    language sql
    stable
    security definer
    set search_path = ''
as $$
    select exists (select 1 from public.users u where u.avatar_file_id = file)
        or exists (select 1 from public.applications a
                   where a.attachment_file_ids @> array[file])
$$;
revoke all on function public.file_is_attached(uuid) from public;
grant execute on function public.file_is_attached(uuid) to rabt_service;

-- Removing a row removes its objects (the checked copy, and the upload a
-- client may have left): whatever deletes it (the owner, the sweeps, an
-- account's erasure) queues their deletion in the same transaction, and the
-- jobs retry until the store confirms.
create function public.files_remove_object() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    insert into public.jobs (kind, payload, max_attempts)
    values ('files.delete_object', jsonb_build_object('object_key', old.object_key), 100),
           ('files.delete_object', jsonb_build_object('object_key', 'uploads/' || old.id), 100);
    return old;
end
$$;
revoke all on function public.files_remove_object() from public;

create trigger files_remove_object after delete on public.files
    for each row execute function public.files_remove_object();

alter table public.files enable row level security;

-- The uploader; anyone who can see a profile whose avatar it is; anyone who
-- can see an application it is attached to (the applicant and the project's
-- owner, by that table's policy).
create policy files_select on public.files for select to rabt_authenticated
    using (
        owner_id = (select auth.uid())
        or (status = 'ready' and (
            exists (select 1 from public.users u where u.avatar_file_id = files.id)
            or exists (select 1 from public.applications a
                       where a.attachment_file_ids @> array[files.id])))
    );
-- Visitors see the avatars of public profiles, and nothing else.
create policy files_select_avatar on public.files for select to rabt_anonymous
    using (status = 'ready'
           and exists (select 1 from public.users u where u.avatar_file_id = files.id));
create policy files_insert_own on public.files for insert to rabt_authenticated
    with check (owner_id = (select auth.uid()) and status = 'pending');
create policy files_update_own on public.files for update to rabt_authenticated
    using (owner_id = (select auth.uid()))
    with check (owner_id = (select auth.uid()));
create policy files_delete_own on public.files for delete to rabt_authenticated
    using (owner_id = (select auth.uid()));
create policy files_service on public.files for all to rabt_service
    using (true) with check (true);

grant select (id, owner_id, purpose, filename, content_type, size_bytes, object_key, status,
              created_at, completed_at)
    on public.files to rabt_anonymous;
grant select, insert, delete on public.files to rabt_authenticated;
grant update (status, completed_at, attached_at, detached_at) on public.files
    to rabt_authenticated;
grant select, insert, update, delete on public.files to rabt_service;
