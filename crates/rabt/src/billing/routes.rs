//! HTTP routes of billing (API.md §7).

use std::time::Duration;

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    ApplyError, Outcome,
    model::{CheckoutRequest, Invoice, Limits, Plan, PlanOffer, RedirectUrl, SubscriptionView},
    pdf, store,
    stripe::{Event, NewCheckout, Stripe},
};
use crate::{
    audit::{self, Action},
    auth::{AuthUser, StepUp},
    db::Actor,
    http::{
        ApiError, AppJson, AppPath, AppQuery, ClientInfo, ErrorCode, FieldError,
        idempotency::IdempotencyKey,
        openapi::{Conflict, InvalidToken, NotFound, StepUpRequired, UpstreamError, Validation},
        pagination::{self, Page},
    },
    money::Money,
    signature,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plans))
        .routes(routes!(checkout))
        .routes(routes!(portal))
        .routes(routes!(subscription))
        .routes(routes!(list_invoices))
        .routes(routes!(get_invoice))
        .routes(routes!(invoice_pdf))
        .routes(routes!(webhook))
}

/// How long the plans page waits for a price from Stripe before it shows
/// the plan without one.
const PRICE_WAIT: Duration = Duration::from_secs(2);

/// The plans on offer, with their prices and limits (public).
#[utoipa::path(get, path = "/billing/plans", tag = "billing",
    responses((status = 200, body = [PlanOffer])))]
pub async fn plans(State(state): State<AppState>) -> Json<Vec<PlanOffer>> {
    let settings = &state.settings.billing;
    let mut offers = Vec::with_capacity(Plan::ALL.len());
    for plan in Plan::ALL {
        let price = match plan.price_id(settings) {
            Some(id) => state.billing.price(id, PRICE_WAIT).await,
            None => None,
        };
        offers.push(PlanOffer {
            id: plan,
            name: plan.name().to_owned(),
            price: price.as_ref().and_then(|p| {
                p.unit_amount.map(|amount| Money {
                    amount,
                    currency: p.currency.clone(),
                })
            }),
            interval: price
                .as_ref()
                .and_then(|p| p.recurring.as_ref())
                .map(|r| r.interval.clone()),
            limits: Limits {
                open_projects: plan.open_projects(settings),
            },
        });
    }
    // The free plan costs nothing, in the currency the paid ones are sold in.
    let currency = offers
        .iter()
        .find_map(|o| o.price.as_ref().map(|p| p.currency.clone()))
        .unwrap_or_else(|| "usd".to_owned());
    if let Some(free) = offers.iter_mut().find(|o| o.id == Plan::Free) {
        free.price = Some(Money {
            amount: 0,
            currency,
        });
    }
    Json(offers)
}

/// The caller's Stripe customer, made on first use. Parallel first calls
/// wait for each other on a lock, so they make one; the transaction holding
/// it spans the call to Stripe (at most `RABT_STRIPE_TIMEOUT_MS`), once per
/// user.
async fn customer_for(
    state: &AppState,
    stripe: &Stripe,
    caller: &AuthUser,
) -> Result<String, ApiError> {
    {
        let mut tx = state.db.read(&caller.actor()).await?;
        if let Some(customer) = store::customer_of(&mut tx, caller.id).await? {
            return Ok(customer);
        }
    }
    // Only the service writes the customer table: the link from a Stripe
    // customer to a user is what webhooks trust.
    let mut tx = state.db.begin(&Actor::Service).await?;
    store::lock_customer(&mut tx, caller.id).await?;
    if let Some(customer) = store::customer_of(&mut tx, caller.id).await? {
        return Ok(customer);
    }
    let (email, name) = store::contact(&mut tx, caller.id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let customer = stripe.create_customer(caller.id, &email, &name).await?;
    store::insert_customer(&mut tx, caller.id, &customer.id).await?;
    tx.commit().await?;
    Ok(customer.id)
}

/// The key of a Stripe call made for a request: from the client's
/// `Idempotency-Key` when it sent one (a retried request gets the same
/// session; `what` names the call and what it is for, so the same key on
/// another plan is another call), else a new one.
fn stripe_key(what: &str, user: Uuid, client_key: Option<&str>) -> String {
    match client_key {
        Some(key) => {
            let digest = Sha256::digest(format!("{user}:{key}").as_bytes());
            format!("rabt-{what}-{}", hex::encode(&digest[..16]))
        }
        None => format!("rabt-{what}-{}", Uuid::now_v7()),
    }
}

/// A Stripe Checkout session that subscribes the caller to `plan`.
#[utoipa::path(post, path = "/billing/checkout", tag = "billing",
    request_body = CheckoutRequest, security(("bearer" = [])),
    responses(
        (status = 200, body = RedirectUrl),
        Validation,
        Conflict,
        UpstreamError,
    ))]
pub async fn checkout(
    State(state): State<AppState>,
    caller: AuthUser,
    IdempotencyKey(client_key): IdempotencyKey,
    AppJson(request): AppJson<CheckoutRequest>,
) -> Result<Json<RedirectUrl>, ApiError> {
    let stripe = state.billing.stripe()?;
    let plan = Plan::parse(&request.plan)
        .filter(|p| *p != Plan::Free)
        .ok_or_else(|| {
            ApiError::validation(vec![FieldError::new("plan", "invalid", "`pro` or `team`.")])
        })?;
    let price = plan.price_id(&state.settings.billing).ok_or_else(|| {
        ApiError::unavailable(format!(
            "The {} plan is not on sale here: no Stripe price is configured.",
            plan.as_str()
        ))
    })?;
    {
        let mut tx = state.db.read(&caller.actor()).await?;
        if store::has_live_subscription(&mut tx, caller.id).await? {
            return Err(ApiError::new(ErrorCode::Conflict)
                .with_detail("You already have a subscription: change it in the billing portal."));
        }
    }
    let customer = customer_for(&state, stripe, &caller).await?;
    let frontend = &state.settings.frontend_url;
    let success = crate::auth::jobs::frontend_link(frontend, "/billing/success", None);
    let cancel = crate::auth::jobs::frontend_link(frontend, "/billing/cancel", None);
    let session = stripe
        .create_checkout_session(&NewCheckout {
            user: caller.id,
            customer: &customer,
            price,
            success_url: &format!("{success}?session_id={{CHECKOUT_SESSION_ID}}"),
            cancel_url: &cancel,
            idempotency_key: &stripe_key(
                &format!("checkout-{}", plan.as_str()),
                caller.id,
                client_key.as_deref(),
            ),
        })
        .await?;
    let url = session.url.ok_or_else(|| {
        ApiError::new(ErrorCode::UpstreamError).with_detail("Stripe sent a session without a URL.")
    })?;
    Ok(Json(RedirectUrl { url }))
}

/// A Stripe billing-portal session of the caller (needs a recent second
/// factor when two-factor sign-in is on).
#[utoipa::path(post, path = "/billing/portal", tag = "billing",
    security(("bearer" = [])),
    responses(
        (status = 200, body = RedirectUrl),
        StepUpRequired,
        UpstreamError,
    ))]
pub async fn portal(
    State(state): State<AppState>,
    caller: StepUp,
    IdempotencyKey(client_key): IdempotencyKey,
) -> Result<Json<RedirectUrl>, ApiError> {
    let stripe = state.billing.stripe()?;
    let customer = customer_for(&state, stripe, &caller).await?;
    let back = crate::auth::jobs::frontend_link(&state.settings.frontend_url, "/billing", None);
    let session = stripe
        .create_portal_session(
            &customer,
            &back,
            &stripe_key("portal", caller.id, client_key.as_deref()),
        )
        .await?;
    Ok(Json(RedirectUrl { url: session.url }))
}

/// The caller's plan and the subscription behind it.
#[utoipa::path(get, path = "/billing/subscription", tag = "billing",
    security(("bearer" = [])),
    responses((status = 200, body = SubscriptionView)))]
pub async fn subscription(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<SubscriptionView>, ApiError> {
    state.billing.stripe()?;
    let mut tx = state.db.read(&caller.actor()).await?;
    let plan = store::plan_of(&mut tx, caller.id).await?;
    let current = store::current_subscription(&mut tx, caller.id).await?;
    Ok(Json(SubscriptionView {
        plan: plan.as_deref().and_then(Plan::parse).unwrap_or(Plan::Free),
        status: current.as_ref().map(|s| s.status.clone()),
        current_period_end: current.as_ref().and_then(|s| s.current_period_end),
        cancel_at_period_end: current.is_some_and(|s| s.cancel_at_period_end),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InvoiceParams {
    /// Another user's invoices (needs `billing.read_all`); the caller's by
    /// default.
    pub user_id: Option<Uuid>,
    /// 1..=100, default 20.
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A page of invoices, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoicePage {
    pub items: Vec<Invoice>,
    pub next_cursor: Option<String>,
}

/// The caller's invoices, newest first.
#[utoipa::path(get, path = "/billing/invoices", tag = "billing",
    params(InvoiceParams), security(("bearer" = [])),
    responses((status = 200, body = InvoicePage), Validation))]
pub async fn list_invoices(
    State(state): State<AppState>,
    caller: AuthUser,
    AppQuery(params): AppQuery<InvoiceParams>,
) -> Result<Json<InvoicePage>, ApiError> {
    state.billing.stripe()?;
    let limit = pagination::limit(params.limit)?;
    let after: Option<Uuid> = params
        .cursor
        .as_deref()
        .map(|c| state.cursors.decode(c))
        .transpose()?;
    // The policy shows another user's rows only to `billing.read_all`.
    let user = params.user_id.unwrap_or(caller.id);
    let mut tx = state.db.read(&caller.actor()).await?;
    let rows = store::list_invoices(&mut tx, user, after, limit + 1).await?;
    let page = Page::from_rows(&state.cursors, rows, limit, |last| last.id)?;
    Ok(Json(InvoicePage {
        items: page.items.iter().map(|r| r.view()).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One of the caller's invoices.
#[utoipa::path(get, path = "/billing/invoices/{id}", tag = "billing",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = Invoice), NotFound))]
pub async fn get_invoice(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Json<Invoice>, ApiError> {
    state.billing.stripe()?;
    let mut tx = state.db.read(&caller.actor()).await?;
    let row = store::find_invoice(&mut tx, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(row.view()))
}

/// The invoice as a PDF.
#[utoipa::path(get, path = "/billing/invoices/{id}/pdf", tag = "billing",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, content_type = "application/pdf", body = Vec<u8>),
        NotFound,
    ))]
pub async fn invoice_pdf(
    State(state): State<AppState>,
    caller: AuthUser,
    AppPath(id): AppPath<Uuid>,
) -> Result<Response, ApiError> {
    state.billing.stripe()?;
    let row = {
        let mut tx = state.db.read(&caller.actor()).await?;
        store::find_invoice(&mut tx, id)
            .await?
            .ok_or_else(ApiError::not_found)?
    };
    let filename: String = row
        .number
        .as_deref()
        .unwrap_or("draft")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let settings = state.settings.clone();
    let bytes =
        tokio::task::spawn_blocking(move || pdf::render(&row, &settings.billing.invoice_issuer))
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("PDF task: {e}")))?
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    let disposition =
        HeaderValue::from_str(&format!("inline; filename=\"invoice-{filename}.pdf\""))
            .unwrap_or_else(|_| HeaderValue::from_static("inline"));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/pdf"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Stripe's answer: the event was taken (applied, or already).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAck {
    pub received: bool,
}

/// Stripe's events (`Stripe-Signature` checked over the raw body, with a
/// 5-minute tolerance). Each event id is applied once; an event older than
/// the state a subscription holds does not move it back.
#[utoipa::path(post, path = "/billing/webhook", tag = "billing",
    request_body(content = String, content_type = "application/json",
        description = "A Stripe event, exactly as Stripe sent it"),
    params(("Stripe-Signature" = String, Header, description = "`t=…,v1=…`")),
    responses(
        (status = 200, body = WebhookAck),
        InvalidToken,
    ))]
pub async fn webhook(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookAck>, ApiError> {
    let Some(stripe) = state.settings.billing.stripe.as_ref() else {
        return Err(ApiError::unavailable("Billing is not configured."));
    };
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Err(err) = signature::verify(
        &body,
        header,
        stripe.webhook_secret.expose_secret(),
        Utc::now().timestamp(),
    ) {
        super::count_event("unverified", err.as_str());
        tracing::warn!(reason = err.as_str(), "webhook refused: bad signature");
        audit_failure(&state, &client, json!({"reason": err.as_str()})).await;
        return Err(ApiError::new(ErrorCode::InvalidToken)
            .with_detail("The Stripe-Signature header does not verify this body."));
    }
    let event: Event = serde_json::from_slice(&body).map_err(|_| {
        super::count_event("unreadable", "refused");
        ApiError::new(ErrorCode::InvalidJson).with_detail("The body is not a Stripe event.")
    })?;
    let mut tx = state.db.begin(&Actor::Service).await?;
    match super::apply_event(&mut tx, &state.settings.billing, &event).await {
        Ok(outcome) => {
            tx.commit().await?;
            super::count_event(&event.kind, outcome.as_str());
            if outcome != Outcome::Replayed {
                tracing::info!(event = %event.id, kind = %event.kind, outcome = outcome.as_str(), "webhook applied");
            }
            Ok(Json(WebhookAck { received: true }))
        }
        Err(ApplyError::Malformed(reason)) => {
            // Retrying cannot help: record it as ignored, so Stripe stops.
            drop(tx);
            super::count_event(&event.kind, "failed");
            tracing::error!(event = %event.id, kind = %event.kind, %reason, "webhook event unreadable");
            let mut tx = state.db.begin(&Actor::Service).await?;
            let created = super::at(event.created).unwrap_or_else(Utc::now);
            if store::record_event(&mut tx, &event.id, &event.kind, created).await? {
                store::set_event_outcome(&mut tx, &event.id, Outcome::Ignored.as_str()).await?;
            }
            tx.commit().await?;
            audit_failure(
                &state,
                &client,
                json!({"event": event.id, "type": event.kind, "reason": reason}),
            )
            .await;
            Ok(Json(WebhookAck { received: true }))
        }
        Err(ApplyError::Database(err)) => {
            super::count_event(&event.kind, "failed");
            Err(err.into())
        }
    }
}

/// Records a refused or failed webhook in the audit log; a failure to record
/// it is logged, and does not change the answer.
async fn audit_failure(state: &AppState, client: &ClientInfo, details: serde_json::Value) {
    let recorded = async {
        let mut tx = state.db.begin(&Actor::Service).await?;
        audit::record(
            &mut tx,
            None,
            Action::BillingWebhookFailed,
            None,
            client,
            details,
        )
        .await?;
        tx.commit().await?;
        Ok::<(), ApiError>(())
    };
    if let Err(err) = recorded.await {
        tracing::warn!(error = ?err, "webhook failure not audited");
    }
}
