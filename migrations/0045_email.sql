-- Email (API.md §9): what was sent, the tokens its links and pixel carry,
-- every SMTP attempt's reply, and the addresses that must not get anything
-- but security mail.
--
-- No recipient address is kept per message: the user it was for is enough
-- for statistics, and an erased user's rows lose even that.

create table public.email_messages (
    id               uuid primary key default public.uuid_v7(),
    -- The RFC 5322 Message-ID fixed when the email was queued.
    message_id       text not null,
    user_id          uuid references public.users (id) on delete set null,
    template         text not null,
    class            text not null,
    created_at       timestamptz not null default now(),
    sent_at          timestamptz,
    -- Dead-lettered, or refused for good by the receiving server.
    failed_at        timestamptz,
    -- Not sent: the address is on the suppression list.
    suppressed_at    timestamptz,
    bounced_at       timestamptz,
    complained_at    timestamptz,
    unsubscribed_at  timestamptz,
    first_opened_at  timestamptz,
    last_opened_at   timestamptz,
    -- Opens by people, and fetches by known image proxies (not counted as
    -- opens: a proxy fetches every image whether anyone looks or not).
    opens            integer not null default 0,
    proxy_opens      integer not null default 0,
    first_clicked_at timestamptz,
    last_clicked_at  timestamptz,
    clicks           integer not null default 0,
    constraint email_messages_message_id_key unique (message_id),
    constraint email_messages_class check (class in ('security', 'transactional', 'marketing')),
    constraint email_messages_template_format check (template ~ '^[a-z_]{1,64}$')
);
create index email_messages_created_at_idx on public.email_messages (created_at);
create index email_messages_user_id_idx on public.email_messages (user_id) where user_id is not null;

-- A token in a sent message: its open pixel, a tracked link (with the only
-- place its redirect may go), or its unsubscribe link. Stored as SHA-256 of
-- the random token; a retried send mints new ones and the old stay valid,
-- in case the first attempt did reach the recipient.
create table public.email_tokens (
    token_hash bytea primary key,
    message    uuid not null references public.email_messages (id) on delete cascade,
    kind       text not null,
    url        text,
    clicks     integer not null default 0,
    constraint email_tokens_kind check (kind in ('open', 'click', 'unsubscribe')),
    constraint email_tokens_url check ((kind = 'click') = (url is not null)),
    constraint email_tokens_hash_length check (octet_length(token_hash) = 32)
);
create index email_tokens_message_idx on public.email_tokens (message);

-- Every attempt to hand a message over, with the server's reply.
create table public.email_attempts (
    message    uuid not null references public.email_messages (id) on delete cascade,
    attempt    integer not null,
    at         timestamptz not null default now(),
    outcome    text not null,
    reply      text not null,
    primary key (message, attempt),
    constraint email_attempts_outcome check (outcome in ('accepted', 'deferred', 'rejected')),
    constraint email_attempts_reply_length check (length(reply) <= 1000)
);

-- Addresses that get security mail only. Lowercased. Soft bounces expire.
create table public.email_suppressions (
    address    text primary key,
    reason     text not null,
    source     text not null,
    detail     text,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    constraint email_suppressions_reason check (reason in
        ('hard_bounce', 'soft_bounce', 'complaint', 'unsubscribed')),
    constraint email_suppressions_source check (source in ('webhook', 'smtp', 'unsubscribe')),
    constraint email_suppressions_address_lower check (address = lower(address)),
    constraint email_suppressions_address_length check (length(address) between 3 and 320),
    constraint email_suppressions_detail_length check (length(detail) <= 500),
    constraint email_suppressions_soft_expire check ((reason = 'soft_bounce') = (expires_at is not null))
);
create index email_suppressions_expires_at_idx on public.email_suppressions (expires_at)
    where expires_at is not null;

alter table public.email_messages enable row level security;
alter table public.email_tokens enable row level security;
alter table public.email_attempts enable row level security;
alter table public.email_suppressions enable row level security;

-- The sender and the public tracking endpoints act as the service; people
-- read only aggregates (`analytics.read`) and the suppression list
-- (`users.manage`, who may also lift an entry).
create policy email_messages_service on public.email_messages for all to rabt_service
    using (true) with check (true);
create policy email_messages_analytics on public.email_messages for select to rabt_authenticated
    using ((select auth.has_permission('analytics.read')));
grant select, insert, update, delete on public.email_messages to rabt_service;
grant select on public.email_messages to rabt_authenticated;

create policy email_tokens_service on public.email_tokens for all to rabt_service
    using (true) with check (true);
grant select, insert, update, delete on public.email_tokens to rabt_service;

create policy email_attempts_service on public.email_attempts for all to rabt_service
    using (true) with check (true);
grant select, insert, update, delete on public.email_attempts to rabt_service;

create policy email_suppressions_service on public.email_suppressions for all to rabt_service
    using (true) with check (true);
create policy email_suppressions_read on public.email_suppressions for select to rabt_authenticated
    using ((select auth.has_permission('users.manage')));
create policy email_suppressions_lift on public.email_suppressions for delete to rabt_authenticated
    using ((select auth.has_permission('users.manage')));
-- A user who turns emails back on in their preferences lifts their own
-- unsubscribe (never a bounce or a complaint); a row must be visible to be
-- deleted, so they see that one row too.
create policy email_suppressions_own_unsubscribe_read on public.email_suppressions
    for select to rabt_authenticated
    using (reason = 'unsubscribed'
           and address = lower((select public.user_email((select auth.uid())))));
create policy email_suppressions_own_unsubscribe on public.email_suppressions
    for delete to rabt_authenticated
    using (reason = 'unsubscribed'
           and address = lower((select public.user_email((select auth.uid())))));
grant select, insert, update, delete on public.email_suppressions to rabt_service;
grant select, delete on public.email_suppressions to rabt_authenticated;

-- A one-click unsubscribe (no session: the service acts on the token's
-- behalf) turns a preference off: the service may write only those columns.
create policy notification_preferences_unsubscribe_insert on public.notification_preferences
    for insert to rabt_service with check (true);
create policy notification_preferences_unsubscribe on public.notification_preferences
    for update to rabt_service using (true)
    with check (true);
grant insert (user_id) on public.notification_preferences to rabt_service;
grant update (applications, messages, billing, product_news) on public.notification_preferences to rabt_service;

-- A lifted suppression is audited in the admin's own transaction.
drop policy audit_log_append_own on public.audit_log;
create policy audit_log_append_own on public.audit_log for insert to rabt_authenticated
    with check (
        actor_id = (select auth.uid())
        and case action
            when 'roles_changed' then (select auth.has_permission('roles.assign'))
                                      or (select auth.has_permission('roles.manage'))
            when 'user_suspended' then (select auth.has_permission('users.manage'))
            when 'user_reinstated' then (select auth.has_permission('users.manage'))
            when 'email_suppression_lifted' then (select auth.has_permission('users.manage'))
            else false
        end
    );
