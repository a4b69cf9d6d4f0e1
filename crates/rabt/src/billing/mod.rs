//! Billing (API.md §7): plans and their limits, Stripe Checkout and the
//! billing portal, webhooks mirrored into subscriptions and invoices, and
//! invoice PDFs.
//!
//! Stripe is the source of truth. A verified event is applied in one
//! transaction with the record of its id, so a replay changes nothing; a
//! subscription only moves to the state of a newer event, and when two
//! events share a second (Stripe's `created` has no finer grain) the
//! subscription is fetched from Stripe by a job instead. `users.plan` is
//! rewritten by every change, so a request reads the plan it is entitled to
//! with the user row it already loads.

pub mod model;
pub mod pdf;
pub mod receipts;
pub mod routes;
pub mod store;
pub mod stripe;

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use self::{
    model::{InvoiceLine, Plan},
    store::{InvoiceState, SubscriptionState},
    stripe::{CheckoutSession, Event, Invoice, Stripe, StripeError, Subscription},
};
use crate::{
    audit::{self, Action},
    config::BillingSettings,
    db::Actor,
    http::{ApiError, ClientInfo},
    jobs::{self, JobArgs, JobContext, JobError, JobRegistry},
};

/// The event types rabt acts on; the rest are recorded and ignored.
pub const HANDLED_EVENTS: [&str; 7] = [
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "checkout.session.completed",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
];

/// Subscription statuses Stripe documents; another one is not stored.
const SUBSCRIPTION_STATUSES: [&str; 8] = [
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
];

const INVOICE_STATUSES: [&str; 5] = ["draft", "open", "paid", "uncollectible", "void"];

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its state is stored.
    Applied,
    /// A newer state was already stored.
    Stale,
    /// Its object is fetched from Stripe by a job (a tie, or a checkout).
    Deferred,
    /// Not a type (or an object) rabt acts on.
    Ignored,
    /// Seen before: nothing changed.
    Replayed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Stale => "stale",
            Self::Deferred => "deferred",
            Self::Ignored => "ignored",
            Self::Replayed => "replayed",
        }
    }
}

/// Why a verified event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Its object is not what its type says: retrying cannot help.
    #[error("the event's object cannot be read: {0}")]
    Malformed(String),
}

/// Where a subscription's state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A webhook event, as of its `created`.
    Event,
    /// Stripe's API, just now: it replaces a state of the same second.
    Fetch,
}

fn at(seconds: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(seconds, 0).single()
}

/// Fetch `subscription_id` from Stripe and store what it says.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncSubscription {
    pub subscription_id: String,
}

impl JobArgs for SyncSubscription {
    const KIND: &'static str = "billing.sync_subscription";
}

/// Recompute `user_id`'s plan (a past-due grace period has ended).
#[derive(Debug, Serialize, Deserialize)]
pub struct RefreshPlan {
    pub user_id: Uuid,
}

impl JobArgs for RefreshPlan {
    const KIND: &'static str = "billing.refresh_plan";
}

/// Applies a verified `event` in `tx`; the caller commits. A replay is
/// [`Outcome::Replayed`] and changes nothing.
pub async fn apply_event(
    tx: &mut PgConnection,
    settings: &BillingSettings,
    event: &Event,
) -> Result<Outcome, ApplyError> {
    let created = at(event.created).ok_or_else(|| ApplyError::Malformed("created".into()))?;
    if !store::record_event(tx, &event.id, &event.kind, created).await? {
        return Ok(Outcome::Replayed);
    }
    let object = || event.data.object.clone();
    let read = |e: serde_json::Error| ApplyError::Malformed(e.to_string());
    let outcome = match event.kind.as_str() {
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            let subscription: Subscription = serde_json::from_value(object()).map_err(read)?;
            apply_subscription(tx, settings, &subscription, created, Source::Event).await?
        }
        "checkout.session.completed" => {
            let session: CheckoutSession = serde_json::from_value(object()).map_err(read)?;
            checkout_completed(tx, &session).await?
        }
        "invoice.finalized" | "invoice.paid" | "invoice.payment_failed" => {
            let invoice: Invoice = serde_json::from_value(object()).map_err(read)?;
            apply_invoice(tx, &invoice, created).await?
        }
        _ => Outcome::Ignored,
    };
    store::set_event_outcome(tx, &event.id, outcome.as_str()).await?;
    Ok(outcome)
}

/// The user a Stripe customer belongs to: by the customer made at checkout,
/// else by the user id rabt put in the object's metadata.
async fn user_of(
    tx: &mut PgConnection,
    customer: &str,
    metadata_user: Option<&String>,
) -> Result<Option<Uuid>, sqlx::Error> {
    if let Some(user) = store::user_of_customer(tx, customer).await? {
        return Ok(Some(user));
    }
    match metadata_user.and_then(|id| Uuid::parse_str(id).ok()) {
        Some(user) => store::existing_user(tx, user).await,
        None => Ok(None),
    }
}

async fn apply_subscription(
    tx: &mut PgConnection,
    settings: &BillingSettings,
    subscription: &Subscription,
    state_at: DateTime<Utc>,
    source: Source,
) -> Result<Outcome, ApplyError> {
    if !SUBSCRIPTION_STATUSES.contains(&subscription.status.as_str()) {
        tracing::warn!(status = %subscription.status, "subscription status not known; ignored");
        return Ok(Outcome::Ignored);
    }
    let held = store::lock_subscription(tx, &subscription.id).await?;
    match held {
        Some(held) if held > state_at => return Ok(Outcome::Stale),
        Some(held) if held == state_at && source == Source::Event => {
            defer_sync(tx, &subscription.id).await?;
            return Ok(Outcome::Deferred);
        }
        _ => {}
    }
    let item = subscription.items.data.first();
    let price_id = item.map(|i| i.price.id.clone());
    let state = SubscriptionState {
        stripe_id: subscription.id.clone(),
        customer: subscription.customer.clone(),
        user: user_of(
            tx,
            &subscription.customer,
            subscription.metadata.get("rabt_user_id"),
        )
        .await?,
        plan: price_id
            .as_deref()
            .map_or(Plan::Free, |p| Plan::of_price(settings, p)),
        price_id,
        status: subscription.status.clone(),
        current_period_end: item.and_then(|i| i.current_period_end).and_then(at),
        cancel_at_period_end: subscription.cancel_at_period_end,
        state_at,
    };
    let Some((user, past_due_since)) =
        store::upsert_subscription(tx, &state, source == Source::Fetch).await?
    else {
        // A delivery that raced this one stored a state of the same second
        // or newer while this one waited for the row.
        return Ok(Outcome::Stale);
    };
    if let Some(user) = user {
        refresh_plan(tx, user, settings.past_due_grace, Some(&subscription.id)).await?;
        if let Some(since) = past_due_since {
            let grace = chrono::Duration::from_std(settings.past_due_grace)
                .unwrap_or(chrono::Duration::MAX);
            jobs::queue::enqueue_at(
                tx,
                &RefreshPlan { user_id: user },
                10,
                Some(since + grace + chrono::Duration::seconds(1)),
            )
            .await?;
        }
    }
    Ok(Outcome::Applied)
}

/// Queues a fetch of the subscription from Stripe.
async fn defer_sync(tx: &mut PgConnection, subscription: &str) -> Result<(), sqlx::Error> {
    jobs::enqueue(
        tx,
        &SyncSubscription {
            subscription_id: subscription.to_owned(),
        },
        10,
    )
    .await
    .map(|_| ())
}

/// A finished Checkout: the subscription it made is fetched (its own events
/// may come later, or not to this endpoint).
async fn checkout_completed(
    tx: &mut PgConnection,
    session: &CheckoutSession,
) -> Result<Outcome, ApplyError> {
    match (session.mode.as_deref(), &session.subscription) {
        (Some("subscription"), Some(subscription)) => {
            defer_sync(tx, subscription).await?;
            Ok(Outcome::Deferred)
        }
        _ => Ok(Outcome::Ignored),
    }
}

/// Sets `user`'s plan from their subscriptions, auditing a change.
async fn refresh_plan(
    tx: &mut PgConnection,
    user: Uuid,
    grace: Duration,
    subscription: Option<&str>,
) -> Result<(), sqlx::Error> {
    if let Some((from, to)) = store::refresh_plan(tx, user, grace).await? {
        tracing::info!(%user, %from, %to, "plan changed");
        audit::record(
            tx,
            None,
            Action::PlanChanged,
            Some(user),
            &ClientInfo {
                ip: None,
                user_agent: None,
            },
            json!({"from": from, "to": to, "subscription": subscription}),
        )
        .await?;
    }
    Ok(())
}

async fn apply_invoice(
    tx: &mut PgConnection,
    invoice: &Invoice,
    state_at: DateTime<Utc>,
) -> Result<Outcome, ApplyError> {
    let status = invoice.status.as_deref().unwrap_or("draft");
    let currency = crate::money::Currency::parse(&invoice.currency);
    let (true, Some(currency)) = (INVOICE_STATUSES.contains(&status), currency) else {
        return Err(ApplyError::Malformed(format!(
            "invoice {} has status {status:?} in {:?}",
            invoice.id, invoice.currency
        )));
    };
    let lines = invoice
        .lines
        .data
        .iter()
        .take(200)
        .map(|line| InvoiceLine {
            description: line
                .description
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(500)
                .collect(),
            quantity: line.quantity.unwrap_or(1),
            amount: line.amount,
            period_start: line.period.as_ref().and_then(|p| p.start).and_then(at),
            period_end: line.period.as_ref().and_then(|p| p.end).and_then(at),
        })
        .collect();
    let user = user_of(tx, &invoice.customer, None).await?;
    let before = receipts::status_before(tx, &invoice.id).await?;
    // Personal data is kept only for a user rabt knows: an erased user's
    // customer sends no name or address back onto their invoices.
    let personal = |value: &Option<String>, chars: usize| {
        user.and(value.as_ref())
            .map(|v| v.chars().take(chars).collect::<String>())
    };
    let state = InvoiceState {
        stripe_id: invoice.id.clone(),
        customer: invoice.customer.clone(),
        subscription: invoice.subscription().map(str::to_owned),
        user,
        number: invoice
            .number
            .as_ref()
            .map(|n| n.chars().take(100).collect()),
        status: status.to_owned(),
        currency: currency.into_string(),
        subtotal: invoice.subtotal,
        tax: invoice.tax(),
        total: invoice.total,
        amount_due: invoice.amount_due,
        amount_paid: invoice.amount_paid,
        period_start: invoice.period_start.and_then(at),
        period_end: invoice.period_end.and_then(at),
        hosted_invoice_url: invoice
            .hosted_invoice_url
            .clone()
            .filter(|u| u.starts_with("https://") && u.len() <= 2048),
        customer_name: personal(&invoice.customer_name, 200),
        customer_email: personal(&invoice.customer_email, 320),
        lines,
        issued_at: at(invoice.created).unwrap_or(state_at),
        paid_at: invoice
            .status_transitions
            .as_ref()
            .and_then(|t| t.paid_at)
            .and_then(at),
        state_at,
    };
    Ok(if store::upsert_invoice(tx, &state).await? {
        receipts::queue_if_paid(tx, &state.stripe_id, before.as_deref(), &state.status, user)
            .await?;
        Outcome::Applied
    } else {
        Outcome::Stale
    })
}

/// Billing's part of the application state.
#[derive(Clone)]
pub struct Billing {
    stripe: Option<Stripe>,
    /// Stripe prices by id, for the plans page: kept a minute, and a price
    /// that could not be read counts as none for that minute.
    prices: moka::future::Cache<String, Option<stripe::Price>>,
}

impl Billing {
    pub fn from_settings(settings: &BillingSettings) -> anyhow::Result<Self> {
        Ok(Self {
            stripe: settings.stripe.as_ref().map(Stripe::new).transpose()?,
            prices: moka::future::Cache::builder()
                .max_capacity(16)
                .time_to_live(Duration::from_secs(60))
                .build(),
        })
    }

    /// The Stripe client, or 503 when billing is not configured.
    pub fn stripe(&self) -> Result<&Stripe, ApiError> {
        self.stripe.as_ref().ok_or_else(|| {
            ApiError::unavailable(
                "Billing is not configured on this server (RABT_STRIPE_SECRET_KEY).",
            )
        })
    }

    /// The price `id`, from the cache or from Stripe within `wait`.
    pub async fn price(&self, id: &str, wait: Duration) -> Option<stripe::Price> {
        let stripe = self.stripe.as_ref()?;
        self.prices
            .get_with(id.to_owned(), async {
                match tokio::time::timeout(wait, stripe.price(id)).await {
                    Ok(Ok(price)) => Some(price),
                    Ok(Err(err)) => {
                        tracing::warn!(error = %err, "plan price not read from Stripe");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("plan price not read from Stripe in time");
                        None
                    }
                }
            })
            .await
    }
}

/// What billing's jobs need.
#[derive(Clone)]
struct JobParts {
    stripe: Option<Stripe>,
    settings: std::sync::Arc<BillingSettings>,
}

/// Registers the subscription fetch and the plan refresh, and the sweep of
/// old event ids.
pub fn register(
    registry: &mut JobRegistry,
    settings: &BillingSettings,
    frontend: url::Url,
    host: String,
) -> anyhow::Result<()> {
    receipts::register(registry, frontend, host);
    let parts = JobParts {
        stripe: settings.stripe.as_ref().map(Stripe::new).transpose()?,
        settings: std::sync::Arc::new(settings.clone()),
    };
    registry.sweep("billing events", |conn| {
        Box::pin(store::delete_old_events(conn))
    });
    let sync = parts.clone();
    registry.register::<SyncSubscription, _, _>(move |ctx: JobContext, args| {
        let parts = sync.clone();
        async move {
            let Some(stripe) = parts.stripe else {
                return Err(JobError::permanent(anyhow::anyhow!(
                    "Stripe is not configured"
                )));
            };
            let subscription = stripe
                .subscription(&args.subscription_id)
                .await
                .map_err(|err| match err {
                    StripeError::Unavailable(_) => JobError::from(err),
                    _ => {
                        // The tie it was to settle stays as it is: say so.
                        tracing::error!(subscription = %args.subscription_id, error = %err,
                            "subscription not fetched from Stripe; its state may be stale");
                        count_event("sync", "failed");
                        JobError::permanent(err)
                    }
                })?;
            let fetched_at = at(Utc::now().timestamp()).unwrap_or_else(Utc::now);
            let mut tx = ctx.db.begin(&Actor::Service).await?;
            apply_subscription(
                &mut tx,
                &parts.settings,
                &subscription,
                fetched_at,
                Source::Fetch,
            )
            .await
            .map_err(|err| match err {
                ApplyError::Database(err) => JobError::from(err),
                ApplyError::Malformed(reason) => JobError::permanent(anyhow::anyhow!(reason)),
            })?;
            if ctx.complete_in(&mut tx).await? {
                tx.commit().await?;
            }
            Ok::<(), JobError>(())
        }
    });
    let refresh = parts;
    registry.register::<RefreshPlan, _, _>(move |ctx: JobContext, args| {
        let grace = refresh.settings.past_due_grace;
        async move {
            let mut tx = ctx.db.begin(&Actor::Service).await?;
            refresh_plan(&mut tx, args.user_id, grace, None).await?;
            if ctx.complete_in(&mut tx).await? {
                tx.commit().await?;
            }
            Ok::<(), JobError>(())
        }
    });
    Ok(())
}

/// Counts an event by type (one of [`HANDLED_EVENTS`] or `other`) and outcome.
pub fn count_event(kind: &str, outcome: &str) {
    let kind = HANDLED_EVENTS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("other");
    metrics::counter!("rabt_billing_webhook_events_total", "type" => kind, "outcome" => outcome.to_owned())
        .increment(1);
}
