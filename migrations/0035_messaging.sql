-- Messaging and realtime (API.md §6): conversations, their participants and
-- messages, and the per-user event log that realtime sockets replay.
--
-- Every change a socket must learn of (a message created, edited or deleted, a
-- read marker moved, a notification) is written here by the database, in the
-- transaction of the change, as one event per recipient with that
-- recipient's next `seq`. The counter row of each recipient is locked by that
-- transaction, so commit order is seq order, and the same change reaches
-- every participant in the same relative order. At commit, each event is
-- announced on `rabt_realtime` (NOTIFY, delivered at commit and only for
-- committed changes); every server delivers it to its own sockets and fills
-- any gap from the log (realtime/hub.rs).

-- Conversations -----------------------------------------------------------------------

create table public.conversations (
    id              uuid primary key default public.uuid_v7(),
    kind            text not null,
    title           text,
    project_id      uuid references public.projects (id) on delete set null,
    created_by      uuid references public.users (id) on delete set null,
    -- A direct conversation's pair, lower id first: unique, so two parallel
    -- requests for the same pair make one row. An erased account leaves a
    -- null here, and the conversation (the other person's messages) stays.
    direct_low      uuid references public.users (id) on delete set null,
    direct_high     uuid references public.users (id) on delete set null,
    message_count   bigint not null default 0,
    last_message_id uuid,
    last_activity_at timestamptz not null default now(),
    created_at      timestamptz not null default now(),
    constraint conversations_kind_check check (kind in ('direct', 'group')),
    constraint conversations_title_length check (char_length(title) between 1 and 120),
    constraint conversations_direct_pair check (
        (kind = 'group' and direct_low is null and direct_high is null)
        or (kind = 'direct' and (direct_low is null or direct_high is null
                                 or direct_low < direct_high)))
);
create unique index conversations_direct_pair_key on public.conversations (direct_low, direct_high)
    where kind = 'direct';
create index conversations_project_id_idx on public.conversations (project_id)
    where project_id is not null;
create index conversations_created_by_idx on public.conversations (created_by);
create index conversations_direct_high_idx on public.conversations (direct_high)
    where direct_high is not null;

create table public.conversation_participants (
    conversation_id    uuid not null references public.conversations (id) on delete cascade,
    user_id            uuid not null references public.users (id) on delete cascade,
    joined_at          timestamptz not null default now(),
    -- The read marker: the position of the last message read (0: none).
    last_read_position bigint not null default 0,
    last_read_message_id uuid,
    -- Messages of others after the marker and not deleted, kept by the
    -- triggers below, so listing conversations counts nothing.
    unread_count       integer not null default 0,
    primary key (conversation_id, user_id),
    constraint conversation_participants_unread check (unread_count >= 0)
);
create index conversation_participants_user_id_idx
    on public.conversation_participants (user_id, conversation_id);

-- Messages ----------------------------------------------------------------------------

create table public.messages (
    id                  uuid primary key default public.uuid_v7(),
    conversation_id     uuid not null references public.conversations (id) on delete cascade,
    -- Null once the author's account is erased; the message stays for the others.
    author_id           uuid references public.users (id) on delete set null,
    -- The order of the conversation: given under the conversation's row lock,
    -- so it is commit order (set by the insert trigger, whatever is sent).
    position            bigint not null default 0,
    body                text,
    client_message_id   text,
    attachment_file_ids uuid[] not null default '{}',
    created_at          timestamptz not null default now(),
    edited_at           timestamptz,
    deleted_at          timestamptz,
    constraint messages_body check (
        (deleted_at is null and char_length(body) between 1 and 5000)
        or (deleted_at is not null and body is null)),
    constraint messages_client_message_id_length check (
        char_length(client_message_id) between 1 and 100),
    constraint messages_attachments_count check (cardinality(attachment_file_ids) <= 10)
);
create unique index messages_position_key on public.messages (conversation_id, position);
-- A send is idempotent per author and conversation on its client id.
create unique index messages_client_message_id_key
    on public.messages (conversation_id, author_id, client_message_id);
create index messages_author_id_idx on public.messages (author_id);
create index messages_attachment_file_ids_idx on public.messages using gin (attachment_file_ids);

-- The realtime log --------------------------------------------------------------------

create table public.realtime_counters (
    user_id uuid primary key references public.users (id) on delete cascade,
    seq     bigint not null default 0
);

create table public.realtime_events (
    user_id    uuid not null references public.users (id) on delete cascade,
    seq        bigint not null,
    -- The frame as a socket sends it, `seq` included.
    frame      jsonb not null,
    created_at timestamptz not null default now(),
    primary key (user_id, seq)
);
create index realtime_events_created_at_idx on public.realtime_events (created_at);

-- Appends `frame` (with `type` set) to the log of each of `recipients`, in
-- the order of their ids (so parallel writers lock counters in one order),
-- and announces each event at commit. The notification carries the frame
-- when it fits, else only the user and seq (the server then reads the log).
create function public.realtime_emit(recipients uuid[], frame jsonb) returns void
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    recipient uuid;
    next_seq bigint;
    full_frame jsonb;
    announced text;
begin
    for recipient in select distinct r from unnest(recipients) r where r is not null order by r
    loop
        insert into public.realtime_counters as c (user_id, seq) values (recipient, 1)
        on conflict (user_id) do update set seq = c.seq + 1
        returning c.seq into next_seq;
        full_frame := frame || jsonb_build_object('seq', next_seq);
        insert into public.realtime_events (user_id, seq, frame)
        values (recipient, next_seq, full_frame);
        announced := jsonb_build_object('u', recipient, 's', next_seq, 'f', full_frame)::text;
        if octet_length(announced) > 7000 then
            announced := jsonb_build_object('u', recipient, 's', next_seq)::text;
        end if;
        perform pg_catalog.pg_notify('rabt_realtime', announced);
    end loop;
end
$$;
revoke all on function public.realtime_emit(uuid[], jsonb) from public;

-- Appends `frame`, with its `conversation_id`, to the log of every
-- participant of `conversation`.
create function public.conversation_emit(conversation uuid, frame jsonb) returns void
    language sql
    security definer
    set search_path = ''
as $$
    select public.realtime_emit(
        array(select p.user_id from public.conversation_participants p
              where p.conversation_id = conversation),
        frame || jsonb_build_object('conversation_id', conversation))
$$;
revoke all on function public.conversation_emit(uuid, jsonb) from public;

-- A time as the API writes it (RFC 3339 in UTC, `Z`, with the fraction in
-- the fewest of 0, 3 or 6 digits that hold it: what the server's own JSON
-- writes), so an event and a REST answer show the same text.
create function public.api_time(t timestamptz) returns text
    language sql
    immutable
    set search_path = ''
as $$
    select case when t is null then null else
        pg_catalog.to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || case
            when us = 0 then ''
            when us % 1000 = 0 then '.' || pg_catalog.lpad((us / 1000)::text, 3, '0')
            else '.' || pg_catalog.lpad(us::text, 6, '0')
           end
        || 'Z' end
    from (select (pg_catalog.date_part('microseconds', t)::bigint % 1000000) as us) parts
$$;
revoke all on function public.api_time(timestamptz) from public;
grant execute on function public.api_time(timestamptz) to rabt_authenticated, rabt_service;

-- A message as the API shows it (API.md §6), for the events.
create function public.message_json(m public.messages) returns jsonb
    language sql
    immutable
    set search_path = ''
as $$
    select jsonb_build_object(
        'id', m.id,
        'conversation_id', m.conversation_id,
        'author_id', m.author_id,
        'body', m.body,
        'client_message_id', m.client_message_id,
        'attachment_file_ids', to_jsonb(m.attachment_file_ids),
        'created_at', public.api_time(m.created_at),
        'edited_at', public.api_time(m.edited_at),
        'deleted', m.deleted_at is not null)
$$;
revoke all on function public.message_json(public.messages) from public;
grant execute on function public.message_json(public.messages) to rabt_authenticated, rabt_service;

-- Whether the caller takes part in `conversation`. Runs as the schema owner,
-- so the participants policy can ask it without recursing into itself.
create function public.is_participant(conversation uuid) returns boolean
    language sql
    stable
    security definer
    set search_path = ''
as $$
    select exists (select 1 from public.conversation_participants p
                   where p.conversation_id = conversation
                     and p.user_id = (select auth.uid()))
$$;
revoke all on function public.is_participant(uuid) from public;
grant execute on function public.is_participant(uuid) to rabt_authenticated;

-- The people of the caller's conversations among `conversations`, with the
-- names they go by and how far they have read. Runs as the schema owner: a
-- private profile is hidden from search, not from the people it talks to.
create function public.conversation_members(conversations uuid[])
    returns table (conversation_id uuid, user_id uuid, display_name text,
                   last_read_message_id uuid)
    language sql
    stable
    security definer
    set search_path = ''
as $$
    select p.conversation_id, p.user_id, u.display_name, p.last_read_message_id
    from public.conversation_participants p
    join public.users u on u.id = p.user_id
    where p.conversation_id = any(conversations)
      and exists (select 1 from public.conversation_participants me
                  where me.conversation_id = p.conversation_id
                    and me.user_id = (select auth.uid()))
    order by p.conversation_id, p.joined_at, p.user_id
$$;
revoke all on function public.conversation_members(uuid[]) from public;
grant execute on function public.conversation_members(uuid[]) to rabt_authenticated;

-- Starting a conversation ---------------------------------------------------------------

-- Opens a conversation of the caller with `others` (the caller is added; at
-- most 50 in all): with one other person it is their direct conversation,
-- the existing one if there is one (`created` false). Every participant must
-- be an active user, and `project` a project the caller can see. Runs as the
-- schema owner, since the caller may not add rows for others; it checks
-- everything it relies on.
create function public.start_conversation(others uuid[], project uuid, conversation_title text)
    returns table (conversation_id uuid, created boolean)
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    everyone uuid[];
    found uuid;
    low uuid;
    high uuid;
begin
    if me is null then
        raise exception 'a conversation needs a signed-in user' using errcode = 'insufficient_privilege';
    end if;
    select array_agg(distinct u order by u) into everyone
    from unnest(array_append(coalesce(others, '{}'), me)) u where u is not null;
    if cardinality(everyone) < 2 then
        raise exception 'a conversation needs someone else'
            using errcode = 'check_violation', constraint = 'conversations_participants_min';
    end if;
    if cardinality(everyone) > 50 then
        raise exception 'at most 50 participants'
            using errcode = 'check_violation', constraint = 'conversations_participants_max';
    end if;
    if (select count(*) from public.users u
        where u.id = any(everyone) and u.deactivated_at is null and u.suspended_at is null)
       <> cardinality(everyone) then
        raise exception 'unknown participant'
            using errcode = 'check_violation', constraint = 'conversations_participants_known';
    end if;
    if project is not null and not exists (
        select 1 from public.projects p
        where p.id = project and (p.status <> 'draft' or p.owner_id = me)) then
        raise exception 'unknown project'
            using errcode = 'check_violation', constraint = 'conversations_project_known';
    end if;

    if cardinality(everyone) = 2 then
        low := everyone[1];
        high := everyone[2];
        insert into public.conversations (kind, title, project_id, created_by, direct_low, direct_high)
        values ('direct', conversation_title, project, me, low, high)
        on conflict (direct_low, direct_high) where kind = 'direct' do nothing
        returning id into found;
        if found is null then
            select c.id into found from public.conversations c
            where c.kind = 'direct' and c.direct_low = low and c.direct_high = high;
            return query select found, false;
            return;
        end if;
    else
        insert into public.conversations (kind, title, project_id, created_by)
        values ('group', conversation_title, project, me)
        returning id into found;
    end if;
    insert into public.conversation_participants (conversation_id, user_id)
    select found, u from unnest(everyone) u;
    return query select found, true;
end
$$;
revoke all on function public.start_conversation(uuid[], uuid, text) from public;
grant execute on function public.start_conversation(uuid[], uuid, text) to rabt_authenticated;

-- Messages: order, counts and events ----------------------------------------------------

-- A message carries only its author's own ready message attachments: those
-- among `files` that are not in `kept` (already on the message) are checked.
-- The server checks the same and names the field; this holds for any SQL.
create function public.message_check_attachments(author uuid, files uuid[], kept uuid[])
    returns void
    language plpgsql
    stable
    security definer
    set search_path = ''
as $$
begin
    if exists (select 1 from unnest(files) f
               where not (f = any(coalesce(kept, '{}')))
                 and not exists (select 1 from public.files x
                                 where x.id = f and x.owner_id = author
                                   and x.status = 'ready'
                                   and x.purpose = 'message_attachment')) then
        raise exception 'attachments are the author''s own ready files'
            using errcode = 'check_violation', constraint = 'messages_attachments_own';
    end if;
end
$$;
revoke all on function public.message_check_attachments(uuid, uuid[], uuid[]) from public;

-- Before a message is stored: its author takes part, and it gets the next
-- position of its conversation under the conversation's row lock (so
-- parallel sends are ordered by commit).
create function public.message_before_insert() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    if not exists (select 1 from public.conversation_participants p
                   where p.conversation_id = new.conversation_id and p.user_id = new.author_id) then
        raise exception 'the author does not take part in the conversation'
            using errcode = 'insufficient_privilege';
    end if;
    perform public.message_check_attachments(new.author_id, new.attachment_file_ids, null);
    update public.conversations c
    set message_count = c.message_count + 1, last_activity_at = now()
    where c.id = new.conversation_id
    returning c.message_count into new.position;
    new.created_at := now();
    new.edited_at := null;
    new.deleted_at := null;
    return new;
end
$$;
revoke all on function public.message_before_insert() from public;

create trigger messages_before_insert before insert on public.messages
    for each row execute function public.message_before_insert();

-- After a message is stored: the conversation's last message, the others'
-- unread counts, and a `message.created` event for every participant.
create function public.message_after_insert() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    update public.conversations set last_message_id = new.id where id = new.conversation_id;
    update public.conversation_participants p set unread_count = p.unread_count + 1
    where p.conversation_id = new.conversation_id and p.user_id is distinct from new.author_id;
    perform public.conversation_emit(new.conversation_id, jsonb_build_object(
        'type', 'message.created', 'message', public.message_json(new)));
    return null;
end
$$;
revoke all on function public.message_after_insert() from public;

create trigger messages_after_insert after insert on public.messages
    for each row execute function public.message_after_insert();

-- Before a message changes: only its body and attachments can be edited
-- (which sets `edited_at`), and deleting it (setting `deleted_at`) empties
-- it for good.
create function public.message_before_update() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    -- An erased account's foreign key empties the author, and nothing else
    -- changes (a tombstone included).
    if new.author_id is null and old.author_id is not null then
        new := old;
        new.author_id := null;
        return new;
    end if;
    if old.deleted_at is not null then
        raise exception 'a deleted message does not change'
            using errcode = 'check_violation', constraint = 'messages_deleted_final';
    end if;
    new.id := old.id;
    new.conversation_id := old.conversation_id;
    new.author_id := old.author_id;
    new.position := old.position;
    new.client_message_id := old.client_message_id;
    new.created_at := old.created_at;
    if new.deleted_at is not null then
        new.deleted_at := now();
        new.body := null;
        new.attachment_file_ids := '{}';
        new.edited_at := old.edited_at;
        return new;
    end if;
    perform public.message_check_attachments(new.author_id, new.attachment_file_ids,
                                             old.attachment_file_ids);
    if new.body is distinct from old.body
          or new.attachment_file_ids is distinct from old.attachment_file_ids then
        new.edited_at := now();
    else
        new.edited_at := old.edited_at;
    end if;
    return new;
end
$$;

revoke all on function public.message_before_update() from public;

create trigger messages_before_update before update on public.messages
    for each row execute function public.message_before_update();

-- After a message changed: an event for every participant; a deleted message
-- no longer counts as unread.
create function public.message_after_update() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    if new.deleted_at is not null and old.deleted_at is null then
        update public.conversation_participants p set unread_count = p.unread_count - 1
        where p.conversation_id = new.conversation_id
          and p.user_id is distinct from new.author_id
          and p.last_read_position < new.position
          and p.unread_count > 0;
    end if;
    perform public.conversation_emit(new.conversation_id, jsonb_build_object(
        'type', case when new.deleted_at is not null then 'message.deleted'
                     else 'message.updated' end,
        'message', public.message_json(new)));
    return null;
end
$$;
revoke all on function public.message_after_update() from public;

create trigger messages_after_update after update on public.messages
    for each row
    when (old.body is distinct from new.body
          or old.attachment_file_ids is distinct from new.attachment_file_ids
          or old.deleted_at is distinct from new.deleted_at)
    execute function public.message_after_update();

-- Read markers ------------------------------------------------------------------------

-- Moves the caller's read marker in `conversation` forward to `message`
-- (never back), recounts what is still unread after it, and tells every
-- participant. False when the caller does not take part or the message is not
-- one of the conversation's.
create function public.read_conversation(conversation uuid, message uuid) returns boolean
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    me uuid := (select auth.uid());
    target bigint;
    moved boolean;
begin
    select m.position into target from public.messages m
    where m.id = message and m.conversation_id = conversation;
    if target is null or not exists (
        select 1 from public.conversation_participants p
        where p.conversation_id = conversation and p.user_id = me) then
        return false;
    end if;
    -- The caller's row first: a send or a deletion that already counted
    -- itself in it commits before the count below, which (a statement of its
    -- own, so a snapshot of its own) then sees it.
    perform 1 from public.conversation_participants p
    where p.conversation_id = conversation and p.user_id = me
      and p.last_read_position < target
    for update;
    moved := found;
    if moved then
        update public.conversation_participants p
        set last_read_position = target, last_read_message_id = message,
            unread_count = (select count(*) from public.messages m
                            where m.conversation_id = conversation and m.position > target
                              and m.author_id is distinct from me and m.deleted_at is null)
        where p.conversation_id = conversation and p.user_id = me
          and p.last_read_position < target;
        moved := found;
    end if;
    if moved then
        perform public.conversation_emit(conversation, jsonb_build_object(
            'type', 'conversation.read', 'user_id', me, 'message_id', message));
    end if;
    return true;
end
$$;
revoke all on function public.read_conversation(uuid, uuid) from public;
grant execute on function public.read_conversation(uuid, uuid) to rabt_authenticated;

-- Notifications reach sockets -------------------------------------------------------------

create function public.notification_created() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    perform public.realtime_emit(array[new.user_id], jsonb_build_object(
        'type', 'notification.created',
        'notification', jsonb_build_object(
            'id', new.id,
            'kind', new.kind,
            'payload', new.payload,
            'read_at', null,
            'created_at', public.api_time(new.created_at))));
    return null;
end
$$;
revoke all on function public.notification_created() from public;

create trigger notifications_realtime after insert on public.notifications
    for each row execute function public.notification_created();

-- Email for unread messages -------------------------------------------------------------

-- Who has an email about a conversation on its way: one per recipient and
-- conversation, however many messages arrive before it is sent.
create table public.message_email_pending (
    user_id         uuid not null references public.users (id) on delete cascade,
    conversation_id uuid not null references public.conversations (id) on delete cascade,
    created_at      timestamptz not null default now(),
    primary key (user_id, conversation_id)
);
create index message_email_pending_conversation_id_idx
    on public.message_email_pending (conversation_id);

-- After the caller sent a message in `conversation`: marks an email on its way
-- for each other participant who wants one soon after an unread message
-- (`immediately`, the default) and has none on its way yet; returns them, so
-- the sender's transaction queues their emails. Runs as the schema owner (the
-- table is the service's); only a participant's send claims anything.
create function public.claim_message_emails(conversation uuid) returns setof uuid
    language sql
    security definer
    set search_path = ''
as $$
    insert into public.message_email_pending (user_id, conversation_id)
    select p.user_id, p.conversation_id
    from public.conversation_participants p
    left join public.notification_preferences np on np.user_id = p.user_id
    where p.conversation_id = conversation
      and p.user_id <> (select auth.uid())
      and coalesce(np.messages, 'immediately') = 'immediately'
      and exists (select 1 from public.conversation_participants me
                  where me.conversation_id = conversation and me.user_id = (select auth.uid()))
    on conflict do nothing
    returning user_id
$$;
revoke all on function public.claim_message_emails(uuid) from public;
grant execute on function public.claim_message_emails(uuid) to rabt_authenticated;

-- When each user who asked for a daily digest of unread messages last got
-- one; the hourly sweep queues the next one a day later, if anything is unread.
create table public.message_digests (
    user_id uuid primary key references public.users (id) on delete cascade,
    sent_at timestamptz not null
);

-- Files attached to messages ------------------------------------------------------------

create or replace function public.file_is_attached(file uuid) returns boolean
    language sql
    stable
    security definer
    set search_path = ''
as $$
    select exists (select 1 from public.users u where u.avatar_file_id = file)
        or exists (select 1 from public.applications a
                   where a.attachment_file_ids @> array[file])
        or exists (select 1 from public.messages m
                   where m.attachment_file_ids @> array[file])
$$;

-- Participants see the files attached to their conversations' messages.
create policy files_select_message on public.files for select to rabt_authenticated
    using (status = 'ready' and exists (
        select 1 from public.messages m
        where m.attachment_file_ids @> array[files.id]
          and public.is_participant(m.conversation_id)));

-- Row-level security --------------------------------------------------------------------

alter table public.conversations enable row level security;
alter table public.conversation_participants enable row level security;
alter table public.messages enable row level security;
alter table public.realtime_counters enable row level security;
alter table public.realtime_events enable row level security;
alter table public.message_email_pending enable row level security;
alter table public.message_digests enable row level security;

create policy conversations_select on public.conversations for select to rabt_authenticated
    using (public.is_participant(id));
create policy conversations_service on public.conversations for all to rabt_service
    using (true) with check (true);

create policy conversation_participants_select on public.conversation_participants
    for select to rabt_authenticated
    using (public.is_participant(conversation_id));
create policy conversation_participants_service on public.conversation_participants
    for all to rabt_service using (true) with check (true);

create policy messages_select on public.messages for select to rabt_authenticated
    using (public.is_participant(conversation_id));
create policy messages_insert on public.messages for insert to rabt_authenticated
    with check (author_id = (select auth.uid()) and public.is_participant(conversation_id));
create policy messages_update on public.messages for update to rabt_authenticated
    using (author_id = (select auth.uid()))
    with check (author_id = (select auth.uid()));
create policy messages_service on public.messages for all to rabt_service
    using (true) with check (true);

create policy realtime_counters_select on public.realtime_counters for select
    to rabt_authenticated using (user_id = (select auth.uid()));
create policy realtime_counters_service on public.realtime_counters for all to rabt_service
    using (true) with check (true);

create policy realtime_events_select on public.realtime_events for select
    to rabt_authenticated using (user_id = (select auth.uid()));
create policy realtime_events_service on public.realtime_events for all to rabt_service
    using (true) with check (true);

create policy message_email_pending_service on public.message_email_pending for all
    to rabt_service using (true) with check (true);
create policy message_digests_service on public.message_digests for all
    to rabt_service using (true) with check (true);

grant select on public.conversations to rabt_authenticated;
grant select on public.conversation_participants to rabt_authenticated;
grant select, insert on public.messages to rabt_authenticated;
grant update (body, attachment_file_ids, deleted_at) on public.messages to rabt_authenticated;
grant select on public.realtime_counters, public.realtime_events to rabt_authenticated;
grant select, insert, update, delete on public.conversations, public.conversation_participants,
    public.messages, public.realtime_counters, public.realtime_events,
    public.message_email_pending, public.message_digests to rabt_service;
