-- Billing (API.md §7): Stripe customers, subscriptions and invoices mirrored
-- from Stripe's webhooks, and the events already applied.
--
-- Stripe is the source of truth; these rows are what its signed events said,
-- applied once (`billing_events`) and never backwards: a row holds the
-- `created` time of the event that set it (`state_at`), and only a newer
-- event moves it. `users.plan` is the plan the subscriptions entitle the user
-- to, written by the same transaction that changes them, so every request
-- reads the plan in the row it already loads.

-- One Stripe customer per user, made on the first checkout.
create table public.billing_customers (
    user_id            uuid primary key references public.users (id) on delete cascade,
    stripe_customer_id text not null,
    created_at         timestamptz not null default now(),
    constraint billing_customers_stripe_id_format check (stripe_customer_id ~ '^cus_[A-Za-z0-9]{1,250}$'),
    constraint billing_customers_stripe_customer_id_key unique (stripe_customer_id)
);

create table public.subscriptions (
    id                     uuid primary key default public.uuid_v7(),
    stripe_subscription_id text not null,
    stripe_customer_id     text not null,
    -- Null when the customer is not one of ours (or its user was erased).
    user_id                uuid references public.users (id) on delete set null,
    -- What the price entitles to: `free` for a price that is not a plan's.
    plan                   text not null,
    price_id               text,
    status                 text not null,
    current_period_end     timestamptz,
    cancel_at_period_end   boolean not null default false,
    -- When the subscription last became `past_due`: the plan is kept for a
    -- grace period from here.
    past_due_since         timestamptz,
    -- The `created` of the event that set this state (or the second it was
    -- fetched from Stripe): only a newer one replaces it.
    state_at               timestamptz not null,
    created_at             timestamptz not null default now(),
    updated_at             timestamptz not null default now(),
    constraint subscriptions_stripe_subscription_id_key unique (stripe_subscription_id),
    constraint subscriptions_plan check (plan in ('free', 'pro', 'team')),
    constraint subscriptions_status check (status in ('incomplete', 'incomplete_expired',
        'trialing', 'active', 'past_due', 'canceled', 'unpaid', 'paused')),
    constraint subscriptions_past_due_since check ((status = 'past_due') = (past_due_since is not null))
);
create index subscriptions_user_id_idx on public.subscriptions (user_id) where user_id is not null;

create table public.invoices (
    id                     uuid primary key default public.uuid_v7(),
    stripe_invoice_id      text not null,
    stripe_customer_id     text not null,
    stripe_subscription_id text,
    -- Null when the customer is not one of ours (or its user was erased:
    -- the invoice stays, as the law requires, without personal data).
    user_id                uuid references public.users (id) on delete set null,
    number                 text,
    status                 text not null,
    currency               text not null,
    subtotal               bigint not null,
    tax                    bigint not null,
    total                  bigint not null,
    amount_due             bigint not null,
    amount_paid            bigint not null,
    period_start           timestamptz,
    period_end             timestamptz,
    hosted_invoice_url     text,
    customer_name          text,
    customer_email         text,
    -- [{description, quantity, amount, period_start, period_end}]
    lines                  jsonb not null default '[]',
    issued_at              timestamptz not null,
    paid_at                timestamptz,
    state_at               timestamptz not null,
    created_at             timestamptz not null default now(),
    updated_at             timestamptz not null default now(),
    constraint invoices_stripe_invoice_id_key unique (stripe_invoice_id),
    constraint invoices_status check (status in ('draft', 'open', 'paid', 'uncollectible', 'void')),
    constraint invoices_currency check (currency ~ '^[a-z]{3}$'),
    constraint invoices_lines_array check (jsonb_typeof(lines) = 'array'),
    constraint invoices_number_length check (char_length(number) <= 100),
    constraint invoices_hosted_url check (hosted_invoice_url ~ '^https://')
);
-- A user's invoices, newest first (the listing's keyset).
create index invoices_user_id_idx on public.invoices (user_id, id desc) where user_id is not null;

-- A removed account's invoices stay, as the law requires, without its name
-- and address; the user link goes by its foreign key.
create function public.invoices_forget_customer() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    update public.invoices set customer_name = null, customer_email = null
    where user_id = old.id;
    return old;
end
$$;
revoke all on function public.invoices_forget_customer() from public;

create trigger users_forget_invoice_customer before delete on public.users
    for each row execute function public.invoices_forget_customer();

-- Every Stripe event applied (or deliberately ignored), recorded in the
-- transaction of its effect: a replay finds its id and changes nothing.
create table public.billing_events (
    id          text primary key,
    type        text not null,
    created     timestamptz not null,
    outcome     text not null,
    received_at timestamptz not null default now(),
    constraint billing_events_id_format check (id ~ '^evt_[A-Za-z0-9_]{1,250}$'),
    constraint billing_events_outcome check (outcome in ('applied', 'stale', 'deferred', 'ignored'))
);
create index billing_events_received_at_idx on public.billing_events (received_at);

alter table public.billing_customers enable row level security;
alter table public.subscriptions enable row level security;
alter table public.invoices enable row level security;
alter table public.billing_events enable row level security;

-- A user sees their own customer. Only the service writes them: webhooks
-- trust this link from a Stripe customer to a user.
create policy billing_customers_select on public.billing_customers for select to rabt_authenticated
    using (user_id = (select auth.uid()) or (select auth.has_permission('billing.read_all')));
create policy billing_customers_service on public.billing_customers for all to rabt_service
    using (true) with check (true);
grant select on public.billing_customers to rabt_authenticated;
grant select, insert, update, delete on public.billing_customers to rabt_service;

-- Subscriptions and invoices: their user, and holders of `billing.read_all`;
-- only verified webhooks and the jobs they queue write them.
create policy subscriptions_select on public.subscriptions for select to rabt_authenticated
    using (user_id = (select auth.uid()) or (select auth.has_permission('billing.read_all')));
create policy subscriptions_service on public.subscriptions for all to rabt_service
    using (true) with check (true);
grant select on public.subscriptions to rabt_authenticated;
grant select, insert, update, delete on public.subscriptions to rabt_service;

create policy invoices_select on public.invoices for select to rabt_authenticated
    using (user_id = (select auth.uid()) or (select auth.has_permission('billing.read_all')));
create policy invoices_service on public.invoices for all to rabt_service
    using (true) with check (true);
grant select on public.invoices to rabt_authenticated;
grant select, insert, update, delete on public.invoices to rabt_service;

create policy billing_events_service on public.billing_events for all to rabt_service
    using (true) with check (true);
grant select, insert, update, delete on public.billing_events to rabt_service;
