//! The erasure of an account (API.md §11, and `DELETE /users/{id}` of §4).
//!
//! A request deactivates the account at once (the database revokes its
//! sessions with it, and [`crate::auth::sessions::publish_grants`] tells
//! every instance) and queues `privacy.erase` for the end of the grace
//! period (`RABT_ERASURE_GRACE_DAYS`). Until then the user cancels their own
//! request by signing in (`auth::store::cancel_own_erasure`); an admin's
//! request is not cancelled that way, nor is any once the job has begun.
//!
//! The job cancels the user's Stripe subscriptions (outside any transaction:
//! Stripe is a network call), then removes the account in one transaction:
//! the `users` row goes, and with it (by the foreign keys) the profile,
//! sessions and refresh tokens, sign-in identities, second factors,
//! consents, notifications, projects and applications, conversation
//! memberships and files (whose objects the files trigger queues for
//! deletion). What others keep loses its link to the person: messages stay
//! in their conversations with no author ("deleted user"), invoices stay as
//! the law requires with the customer's name and address cleared, audit
//! entries keep the id they were about (no name, no email) until their
//! retention ends. The email address is free for a new sign-up.
//!
//! Crash safety: every step can run again. A crash before the last commit
//! leaves the request and its job in place, and the job, retried, finds the
//! subscriptions already cancelled (Stripe's 400 or 404 for those counts as
//! done) and removes the account; a job that finds no request (cancelled, or
//! already carried out) does nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    audit::{self, Action},
    billing::stripe::{Stripe, StripeError},
    http::ClientInfo,
    jobs::{self, JobArgs, JobContext, JobError, JobRegistry},
};

/// Attempts before an erasure is dead-lettered (for an operator to retry
/// from `/admin/jobs` once Stripe answers again).
const MAX_ATTEMPTS: i32 = 25;

/// Carries out the erasure request of `user_id`, if it still stands.
#[derive(Debug, Serialize, Deserialize)]
pub struct EraseAccount {
    pub user_id: Uuid,
}

impl JobArgs for EraseAccount {
    const KIND: &'static str = "privacy.erase";
}

/// Who asked for an erasure.
#[derive(Debug, Clone, Copy)]
pub enum Requester {
    /// The user, through `DELETE /me`: cancelled by signing in.
    User,
    /// An admin with `users.delete`, through `DELETE /users/{id}`.
    Admin(Uuid),
}

/// Deactivates `user` and schedules their erasure after `grace`, in the
/// caller's transaction (as the service). `None` when there is no such
/// user. A second request keeps the earlier date; an admin's request makes
/// a user's own one no longer cancellable by signing in.
pub async fn request(
    conn: &mut PgConnection,
    user: Uuid,
    requester: Requester,
    grace: std::time::Duration,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let deactivated = sqlx::query_scalar!(
        "update users set deactivated_at = coalesce(deactivated_at, now()) where id = $1 \
         returning id",
        user,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if deactivated.is_none() {
        return Ok(None);
    }
    let (by, by_self) = match requester {
        Requester::User => (user, true),
        Requester::Admin(admin) => (admin, false),
    };
    let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2);
    let erase_after = sqlx::query_scalar!(
        r#"insert into account_erasures (user_id, requested_by, by_self, erase_after)
           values ($1, $2, $3, now() + make_interval(secs => $4::int8::float8))
           on conflict (user_id) do update set
               by_self = account_erasures.by_self and excluded.by_self,
               requested_by = case when excluded.by_self then account_erasures.requested_by
                                   else excluded.requested_by end,
               erase_after = least(account_erasures.erase_after, excluded.erase_after)
           returning erase_after"#,
        user,
        by,
        by_self,
        grace_secs,
    )
    .fetch_one(&mut *conn)
    .await?;
    jobs::enqueue_at(
        conn,
        &EraseAccount { user_id: user },
        MAX_ATTEMPTS,
        Some(erase_after),
    )
    .await?;
    count("requested");
    Ok(Some(erase_after))
}

/// Registers `privacy.erase`; `stripe` is `None` when billing is off (then
/// no subscription can be live).
pub fn register(registry: &mut JobRegistry, stripe: Option<Stripe>) {
    registry.register::<EraseAccount, _, _>(move |ctx: JobContext, args: EraseAccount| {
        let stripe = stripe.clone();
        async move {
            let outcome = erase(&ctx, args.user_id, stripe.as_ref()).await;
            if outcome.is_err() {
                count("failed");
            }
            outcome
        }
    });
}

async fn erase(ctx: &JobContext, user: Uuid, stripe: Option<&Stripe>) -> Result<(), JobError> {
    let mut tx = ctx.db.begin(&crate::db::Actor::Service).await?;
    let Some(subscriptions) = due(&mut tx, user).await? else {
        // Cancelled, carried out already, or moved later by a new request
        // (whose own job comes then).
        if ctx.complete_in(&mut tx).await? {
            tx.commit().await?;
        }
        return Ok(());
    };
    // From here on signing in no longer cancels it: subscriptions are about
    // to be cancelled, which a cancelled erasure could not undo.
    sqlx::query!(
        "update account_erasures set by_self = false where user_id = $1",
        user
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    for subscription in &subscriptions {
        let Some(stripe) = stripe else {
            return Err(anyhow::anyhow!(
                "the account has a live subscription and billing is not configured"
            )
            .into());
        };
        cancel_subscription(stripe, subscription).await?;
    }

    let mut tx = ctx.db.begin(&crate::db::Actor::Service).await?;
    // Locks the request again.
    let Some(live) = due(&mut tx, user).await? else {
        if ctx.complete_in(&mut tx).await? {
            tx.commit().await?;
        }
        return Ok(());
    };
    // A checkout that completed meanwhile: cancel it too, on the next run.
    if live.iter().any(|id| !subscriptions.contains(id)) {
        return Err(anyhow::anyhow!("a subscription started while the account was erased").into());
    }
    let by_self = remove(&mut tx, user).await?;
    audit::record(
        &mut tx,
        None,
        Action::UserErased,
        Some(user),
        &ClientInfo {
            ip: None,
            user_agent: None,
        },
        json!({ "requested_by": if by_self { "user" } else { "admin" } }),
    )
    .await?;
    if ctx.complete_in(&mut tx).await? {
        tx.commit().await?;
        count("erased");
        tracing::info!(%user, "account erased");
    }
    Ok(())
}

/// The live Stripe subscriptions of `user`, when their erasure is due (the
/// request row locked); `None` when there is nothing to do now.
async fn due(conn: &mut PgConnection, user: Uuid) -> Result<Option<Vec<String>>, sqlx::Error> {
    let due = sqlx::query_scalar!(
        r#"select erase_after <= now() as "due!" from account_erasures
           where user_id = $1 for update"#,
        user,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if due != Some(true) {
        return Ok(None);
    }
    let live = sqlx::query_scalar!(
        "select stripe_subscription_id from subscriptions \
         where user_id = $1 and status not in ('canceled', 'incomplete_expired') \
         order by created_at",
        user,
    )
    .fetch_all(conn)
    .await?;
    Ok(Some(live))
}

/// Cancels one subscription at Stripe; one Stripe has cancelled or
/// forgotten already counts as cancelled.
async fn cancel_subscription(stripe: &Stripe, id: &str) -> Result<(), JobError> {
    match stripe.cancel_subscription(id).await {
        Ok(_) => Ok(()),
        Err(StripeError::Refused { status: 404, .. }) => Ok(()),
        Err(err @ StripeError::Refused { status: 400, .. }) => {
            // Refused as already cancelled, or for another reason: ask.
            match stripe.subscription(id).await {
                Ok(subscription) if subscription.status == "canceled" => Ok(()),
                Ok(_) => Err(anyhow::Error::new(err).into()),
                Err(StripeError::Refused { status: 404, .. }) => Ok(()),
                Err(other) => Err(anyhow::Error::new(other).into()),
            }
        }
        Err(err) => Err(anyhow::Error::new(err).into()),
    }
}

/// Removes the account and what only it kept; says whether the user asked
/// for it themself.
async fn remove(conn: &mut PgConnection, user: Uuid) -> Result<bool, sqlx::Error> {
    let by_self = sqlx::query_scalar!(
        r#"delete from account_erasures where user_id = $1
           returning requested_by is not distinct from user_id as "by_self!""#,
        user,
    )
    .fetch_one(&mut *conn)
    .await?;
    // Billing records stay (the law keeps invoices) without the person.
    sqlx::query!(
        "update subscriptions set status = 'canceled', past_due_since = null, \
             cancel_at_period_end = false, updated_at = now() \
         where user_id = $1 and status not in ('canceled', 'incomplete_expired')",
        user,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update invoices set customer_name = null, customer_email = null, updated_at = now() \
         where user_id = $1",
        user,
    )
    .execute(&mut *conn)
    .await?;
    // Their own unsubscribes go with the address; bounces and complaints
    // are the mailbox's, kept to protect the sender's reputation.
    sqlx::query!(
        "delete from email_suppressions where reason = 'unsubscribed' \
         and address = (select lower(email) from users where id = $1)",
        user,
    )
    .execute(&mut *conn)
    .await?;
    // Mail not sent yet (or dead-lettered) holds the address.
    sqlx::query!(
        "delete from jobs where kind = 'email.send' and status <> 'running' \
         and payload->>'user_id' = $1::uuid::text",
        user,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("delete from users where id = $1", user)
        .execute(conn)
        .await?;
    Ok(by_self)
}

/// Counts an erasure by outcome: `requested`, `erased`, `failed` (an
/// attempt that will be retried), `canceled`.
pub fn count(outcome: &'static str) {
    metrics::counter!("rabt_erasures_total", "outcome" => outcome).increment(1);
}
