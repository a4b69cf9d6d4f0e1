//! Billing's SQL. Customers are made in the user's own transaction; the rest
//! is written by verified webhooks and their jobs, as the service.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::model::{InvoiceLine, InvoiceRow, Plan, SubscriptionRow};

/// The caller's Stripe customer, if one was made.
pub async fn customer_of(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select stripe_customer_id from billing_customers where user_id = $1",
        user
    )
    .fetch_optional(conn)
    .await
}

/// Serialises the first checkouts of one user until the transaction ends,
/// so that two at once make one customer.
pub async fn lock_customer(conn: &mut PgConnection, user: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('rabt.billing_customer:' || $1::text, 0))",
        user.to_string()
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn insert_customer(
    conn: &mut PgConnection,
    user: Uuid,
    customer: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into billing_customers (user_id, stripe_customer_id) values ($1, $2)",
        user,
        customer
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// A user's address and name, as their customer is made with them (the
/// service reads them).
pub async fn contact(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query!("select email, display_name from users where id = $1", user)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| (r.email, r.display_name)))
}

/// The plan in force for `user`.
pub async fn plan_of(conn: &mut PgConnection, user: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("select plan from users where id = $1", user)
        .fetch_optional(conn)
        .await
}

/// Whose customer `customer` is.
pub async fn user_of_customer(
    conn: &mut PgConnection,
    customer: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select user_id from billing_customers where stripe_customer_id = $1",
        customer
    )
    .fetch_optional(conn)
    .await
}

/// `user` if it names an account.
pub async fn existing_user(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("select id from users where id = $1", user)
        .fetch_optional(conn)
        .await
}

/// Records an event as seen; `false` when it was already (a replay). A
/// delivery racing another of the same event waits here for the first to
/// commit, then finds it.
pub async fn record_event(
    conn: &mut PgConnection,
    id: &str,
    kind: &str,
    created: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        "insert into billing_events (id, type, created, outcome) values ($1, $2, $3, 'applied') \
         on conflict (id) do nothing",
        id,
        kind,
        created
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn set_event_outcome(
    conn: &mut PgConnection,
    id: &str,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update billing_events set outcome = $2 where id = $1",
        id,
        outcome
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// A subscription as an event or a fetch from Stripe states it.
#[derive(Debug, Clone)]
pub struct SubscriptionState {
    pub stripe_id: String,
    pub customer: String,
    pub user: Option<Uuid>,
    pub plan: Plan,
    pub price_id: Option<String>,
    pub status: String,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub state_at: DateTime<Utc>,
}

/// The time of the state a subscription holds. The subscription id is
/// locked until the transaction ends, whether or not its row exists yet, so
/// two deliveries about a new subscription are compared one after the other.
pub async fn lock_subscription(
    conn: &mut PgConnection,
    stripe_id: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('rabt.subscription:' || $1, 0))",
        stripe_id
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar!(
        "select state_at from subscriptions where stripe_subscription_id = $1 for update",
        stripe_id
    )
    .fetch_optional(conn)
    .await
}

/// Stores `state` unless the row holds a newer one (or, without `replace_tie`,
/// one of the same time). Returns the user and when the subscription became
/// past due, or `None` when the row kept its state.
pub async fn upsert_subscription(
    conn: &mut PgConnection,
    state: &SubscriptionState,
    replace_tie: bool,
) -> Result<Option<(Option<Uuid>, Option<DateTime<Utc>>)>, sqlx::Error> {
    let row = sqlx::query!(
        "insert into subscriptions as s (stripe_subscription_id, stripe_customer_id, user_id, plan, \
             price_id, status, current_period_end, cancel_at_period_end, past_due_since, state_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, case when $6 = 'past_due' then $9::timestamptz end, $9) \
         on conflict (stripe_subscription_id) do update set \
             stripe_customer_id = excluded.stripe_customer_id, \
             user_id = coalesce(excluded.user_id, s.user_id), \
             plan = excluded.plan, price_id = excluded.price_id, status = excluded.status, \
             current_period_end = excluded.current_period_end, \
             cancel_at_period_end = excluded.cancel_at_period_end, \
             past_due_since = case when excluded.status = 'past_due' \
                 then coalesce(s.past_due_since, excluded.past_due_since) end, \
             state_at = excluded.state_at, updated_at = now() \
         where s.state_at < excluded.state_at or ($10 and s.state_at = excluded.state_at) \
         returning user_id, past_due_since",
        state.stripe_id,
        state.customer,
        state.user,
        state.plan.as_str(),
        state.price_id,
        state.status,
        state.current_period_end,
        state.cancel_at_period_end,
        state.state_at,
        replace_tie,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.user_id, r.past_due_since)))
}

/// Sets `users.plan` to what `user`'s subscriptions entitle them to now:
/// the best plan of one `active` or `trialing`, or `past_due` for less than
/// `grace`; else `free`. Returns `(from, to)` when it changed.
pub async fn refresh_plan(
    conn: &mut PgConnection,
    user: Uuid,
    grace: Duration,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"with best as (
               select coalesce((
                   select s.plan from subscriptions s
                   where s.user_id = $1
                     and (s.status in ('active', 'trialing')
                          or (s.status = 'past_due'
                              and s.past_due_since > now() - make_interval(secs => $2)))
                   order by case s.plan when 'team' then 2 when 'pro' then 1 else 0 end desc
                   limit 1), 'free') as plan),
           old as (select u.plan from users u where u.id = $1 for update)
           update users u set plan = best.plan
           from best, old
           where u.id = $1 and u.plan <> best.plan
           returning old.plan as "from!", u.plan as "to!""#,
        user,
        grace.as_secs_f64(),
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.from, r.to)))
}

/// Whether `user` holds a paid subscription that is still alive (one to
/// change in the portal rather than buy again).
pub async fn has_live_subscription(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from subscriptions
                          where user_id = $1 and plan <> 'free'
                            and status in ('active', 'trialing', 'past_due', 'unpaid', 'paused'))
           as "exists!""#,
        user
    )
    .fetch_one(conn)
    .await
}

/// The subscription that decides `user`'s plan: a live one first, the best
/// plan first, then the newest.
pub async fn current_subscription(
    conn: &mut PgConnection,
    user: Uuid,
) -> Result<Option<SubscriptionRow>, sqlx::Error> {
    sqlx::query_as!(
        SubscriptionRow,
        "select plan, status, current_period_end, cancel_at_period_end from subscriptions \
         where user_id = $1 \
         order by status in ('active', 'trialing', 'past_due') desc, \
                  case plan when 'team' then 2 when 'pro' then 1 else 0 end desc, \
                  state_at desc \
         limit 1",
        user
    )
    .fetch_optional(conn)
    .await
}

/// An invoice as an event states it.
#[derive(Debug, Clone)]
pub struct InvoiceState {
    pub stripe_id: String,
    pub customer: String,
    pub subscription: Option<String>,
    pub user: Option<Uuid>,
    pub number: Option<String>,
    pub status: String,
    pub currency: String,
    pub subtotal: i64,
    pub tax: i64,
    pub total: i64,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub hosted_invoice_url: Option<String>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub lines: Vec<InvoiceLine>,
    pub issued_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub state_at: DateTime<Utc>,
}

/// Stores `invoice` unless the row holds a newer state; of two from the same
/// second the one further along (draft, open, then settled) wins. `false`
/// when the row kept its state.
pub async fn upsert_invoice(
    conn: &mut PgConnection,
    invoice: &InvoiceState,
) -> Result<bool, sqlx::Error> {
    let lines = serde_json::to_value(&invoice.lines).unwrap_or(Value::Array(Vec::new()));
    let stored = sqlx::query!(
        "insert into invoices as i (stripe_invoice_id, stripe_customer_id, stripe_subscription_id, \
             user_id, number, status, currency, subtotal, tax, total, amount_due, amount_paid, \
             period_start, period_end, hosted_invoice_url, customer_name, customer_email, lines, \
             issued_at, paid_at, state_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
             $19, $20, $21) \
         on conflict (stripe_invoice_id) do update set \
             user_id = coalesce(excluded.user_id, i.user_id), \
             stripe_subscription_id = excluded.stripe_subscription_id, \
             number = excluded.number, status = excluded.status, currency = excluded.currency, \
             subtotal = excluded.subtotal, tax = excluded.tax, total = excluded.total, \
             amount_due = excluded.amount_due, amount_paid = excluded.amount_paid, \
             period_start = excluded.period_start, period_end = excluded.period_end, \
             hosted_invoice_url = excluded.hosted_invoice_url, \
             customer_name = excluded.customer_name, customer_email = excluded.customer_email, \
             lines = excluded.lines, paid_at = excluded.paid_at, \
             state_at = excluded.state_at, updated_at = now() \
         where i.state_at < excluded.state_at \
            or (i.state_at = excluded.state_at \
                and (case excluded.status when 'draft' then 0 when 'open' then 1 else 2 end) \
                    >= (case i.status when 'draft' then 0 when 'open' then 1 else 2 end))",
        invoice.stripe_id,
        invoice.customer,
        invoice.subscription,
        invoice.user,
        invoice.number,
        invoice.status,
        invoice.currency,
        invoice.subtotal,
        invoice.tax,
        invoice.total,
        invoice.amount_due,
        invoice.amount_paid,
        invoice.period_start,
        invoice.period_end,
        invoice.hosted_invoice_url,
        invoice.customer_name,
        invoice.customer_email,
        lines,
        invoice.issued_at,
        invoice.paid_at,
        invoice.state_at,
    )
    .execute(conn)
    .await?;
    Ok(stored.rows_affected() == 1)
}

/// A page of the caller's invoices (their own, by policy, or every user's
/// with `billing.read_all` when `user` is theirs), newest first, after
/// `after`.
pub async fn list_invoices(
    conn: &mut PgConnection,
    user: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<InvoiceRow>, sqlx::Error> {
    sqlx::query_as!(
        InvoiceRow,
        r#"select id, user_id, number, status, currency, subtotal, tax, total, amount_due,
                  amount_paid, period_start, period_end, hosted_invoice_url, customer_name,
                  customer_email, lines, issued_at, paid_at
           from invoices
           where user_id = $1 and ($2::uuid is null or id < $2)
           order by id desc
           limit $3"#,
        user,
        after,
        limit
    )
    .fetch_all(conn)
    .await
}

/// One invoice the caller may see.
pub async fn find_invoice(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<InvoiceRow>, sqlx::Error> {
    sqlx::query_as!(
        InvoiceRow,
        r#"select id, user_id, number, status, currency, subtotal, tax, total, amount_due,
                  amount_paid, period_start, period_end, hosted_invoice_url, customer_name,
                  customer_email, lines, issued_at, paid_at
           from invoices where id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Housekeeping: forgets events older than 90 days. Stripe stops retrying
/// after 3, and an event older than a row's state is refused by its time.
pub async fn delete_old_events(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    sqlx::query!("delete from billing_events where received_at < now() - interval '90 days'")
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
}
