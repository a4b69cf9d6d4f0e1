//! The receipt emailed when an invoice is paid: queued as a job in the
//! transaction of the webhook event that saw the payment, so it is sent once
//! per invoice, and only to a user whose `billing` emails are on.

use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use url::Url;
use uuid::Uuid;

use super::pdf::format_money;
use crate::{
    db::Actor,
    email::{self, Template},
    jobs::{self, JobArgs, JobContext, JobError, JobRegistry},
};

/// Email the receipt of the invoice `stripe_invoice_id`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendReceipt {
    pub stripe_invoice_id: String,
}

impl JobArgs for SendReceipt {
    const KIND: &'static str = "billing.receipt";
}

/// The status an invoice has before an event changes it, locked until the
/// transaction ends so two deliveries of its payment see one change.
pub async fn status_before(
    tx: &mut PgConnection,
    stripe_invoice_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select status from invoices where stripe_invoice_id = $1 for update",
        stripe_invoice_id
    )
    .fetch_optional(tx)
    .await
}

/// Queues the receipt when this change is the invoice's payment.
pub async fn queue_if_paid(
    tx: &mut PgConnection,
    stripe_invoice_id: &str,
    before: Option<&str>,
    after: &str,
    user: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    if after == "paid" && before != Some("paid") && user.is_some() {
        jobs::enqueue(
            tx,
            &SendReceipt {
                stripe_invoice_id: stripe_invoice_id.to_owned(),
            },
            5,
        )
        .await?;
    }
    Ok(())
}

pub fn register(registry: &mut JobRegistry, frontend: Url, host: String) {
    registry.register::<SendReceipt, _, _>(move |ctx: JobContext, args: SendReceipt| {
        let (frontend, host) = (frontend.clone(), host.clone());
        async move {
            let mut tx = ctx.db.begin(&Actor::Service).await?;
            let found = sqlx::query!(
                r#"select i.id, i.number, i.total, i.currency, u.id as user_id, u.email,
                          u.display_name,
                          coalesce(p.billing, true) as "billing!",
                          u.deactivated_at is null and u.suspended_at is null as "active!"
                     from invoices i
                     join users u on u.id = i.user_id
                     left join notification_preferences p on p.user_id = u.id
                    where i.stripe_invoice_id = $1"#,
                args.stripe_invoice_id
            )
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(found) = found
                && found.billing
                && found.active
            {
                let mut link = frontend.clone();
                link.set_path(&format!("/settings/billing/invoices/{}", found.id));
                email::enqueue_from(
                    &mut tx,
                    &host,
                    found.user_id,
                    &found.email,
                    Template::BillingReceipt,
                    json!({
                        "display_name": found.display_name,
                        "amount": format_money(found.total, &found.currency),
                        "number": found.number,
                        "link": link.to_string(),
                    }),
                )
                .await?;
            }
            if ctx.complete_in(&mut tx).await? {
                tx.commit().await?;
            }
            Ok::<(), JobError>(())
        }
    });
}
