//! A small typed client of Stripe's HTTP API: the calls and the fields of
//! their objects rabt uses, nothing more.
//!
//! Every call carries the pinned [`API_VERSION`], so the shapes below do not
//! change under us when the account's default version moves; every `POST`
//! carries an `Idempotency-Key`, so a retried call does not make a second
//! customer or session. Unknown fields are ignored: Stripe adds fields within
//! a version.

use std::collections::HashMap;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use url::Url;

use crate::{
    config::StripeSettings,
    http::{ApiError, ErrorCode},
};

/// The Stripe API version every request asks for.
pub const API_VERSION: &str = "2025-09-30.clover";

/// A configured Stripe account.
#[derive(Clone, Debug)]
pub struct Stripe {
    http: reqwest::Client,
    base: Url,
    key: SecretString,
}

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Not reached, timed out, or failed on Stripe's side (5xx, 429): worth
    /// retrying later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// Stripe refused the call (4xx): retrying the same call will not help.
    #[error("Stripe refused the call ({status}, {kind}): {message}")]
    Refused {
        status: u16,
        kind: String,
        message: String,
    },
    /// An answer that is not the object asked for.
    #[error("Stripe's answer could not be read: {0}")]
    Malformed(String),
}

impl StripeError {
    /// Whether a later retry of the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<StripeError> for ApiError {
    fn from(err: StripeError) -> Self {
        tracing::warn!(error = %err, "Stripe call failed");
        match err {
            StripeError::Unavailable(_) => {
                ApiError::unavailable("The payment provider cannot be reached; try again shortly.")
            }
            StripeError::Refused { .. } | StripeError::Malformed(_) => {
                ApiError::new(ErrorCode::UpstreamError)
                    .with_detail("The payment provider refused the request.")
            }
        }
    }
}

/// Stripe's error body: `{"error": {"type", "code", "message"}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

/// An id field that Stripe may also send expanded, as the object.
fn id_of<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Expandable {
        Id(String),
        Object { id: String },
    }
    Ok(match Expandable::deserialize(deserializer)? {
        Expandable::Id(id) | Expandable::Object { id } => id,
    })
}

fn optional_id_of<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "id_of")] String);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|w| w.0))
}

#[derive(Debug, Clone, Deserialize)]
pub struct Customer {
    pub id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: Option<String>,
    pub mode: Option<String>,
    pub client_reference_id: Option<String>,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub customer: Option<String>,
    #[serde(default, deserialize_with = "optional_id_of")]
    pub subscription: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PortalSession {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Recurring {
    pub interval: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Price {
    pub id: String,
    pub unit_amount: Option<i64>,
    pub currency: String,
    pub recurring: Option<Recurring>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionItem {
    pub price: Price,
    /// Since API version 2025-03-31 the period lives on the items.
    pub current_period_end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: String,
    #[serde(deserialize_with = "id_of")]
    pub customer: String,
    pub status: String,
    #[serde(default)]
    pub cancel_at_period_end: bool,
    pub items: List<SubscriptionItem>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Period {
    pub start: Option<i64>,
    pub end: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceLine {
    pub description: Option<String>,
    pub quantity: Option<i64>,
    pub amount: i64,
    pub period: Option<Period>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusTransitions {
    pub paid_at: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionDetails {
    #[serde(default, deserialize_with = "optional_id_of")]
    pub subscription: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvoiceParent {
    pub subscription_details: Option<SubscriptionDetails>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TaxAmount {
    pub amount: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Invoice {
    pub id: String,
    #[serde(deserialize_with = "id_of")]
    pub customer: String,
    pub number: Option<String>,
    pub status: Option<String>,
    pub currency: String,
    pub subtotal: i64,
    pub total: i64,
    pub total_excluding_tax: Option<i64>,
    pub total_taxes: Option<Vec<TaxAmount>>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub period_start: Option<i64>,
    pub period_end: Option<i64>,
    pub hosted_invoice_url: Option<String>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub created: i64,
    pub status_transitions: Option<StatusTransitions>,
    pub parent: Option<InvoiceParent>,
    pub lines: List<InvoiceLine>,
}

impl Invoice {
    /// The subscription the invoice bills, if any.
    pub fn subscription(&self) -> Option<&str> {
        self.parent
            .as_ref()?
            .subscription_details
            .as_ref()?
            .subscription
            .as_deref()
    }

    /// The tax in the total: what the total holds beyond its tax-free part.
    pub fn tax(&self) -> i64 {
        match (self.total_excluding_tax, &self.total_taxes) {
            (Some(untaxed), _) => self.total - untaxed,
            (None, Some(taxes)) => taxes.iter().map(|t| t.amount).sum(),
            (None, None) => 0,
        }
    }
}

/// A webhook event: which object changed, and when.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds since the epoch.
    pub created: i64,
    pub data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

impl Stripe {
    pub fn new(settings: &StripeSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout.min(std::time::Duration::from_secs(3)))
            .timeout(settings.timeout)
            .build()
            .map_err(|e| anyhow::anyhow!("Stripe HTTP client: {e}"))?;
        Ok(Self {
            http,
            base: settings.api_base.clone(),
            key: settings.secret_key.clone(),
        })
    }

    fn url(&self, path: &str) -> Result<Url, StripeError> {
        self.base
            .join(path)
            .map_err(|e| StripeError::Malformed(format!("bad path {path}: {e}")))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, StripeError> {
        let response = request
            .bearer_auth(self.key.expose_secret())
            .header("Stripe-Version", API_VERSION)
            .send()
            .await
            .map_err(|e| StripeError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| StripeError::Unavailable(e.without_url().to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| StripeError::Malformed(e.to_string()));
        }
        let (kind, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => (
                error.kind.unwrap_or_default(),
                error.message.unwrap_or_default(),
            ),
            Err(_) => (String::new(), String::new()),
        };
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(StripeError::Unavailable(format!(
                "{status} {kind} {message}"
            )));
        }
        Err(StripeError::Refused {
            status: status.as_u16(),
            kind,
            message,
        })
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        let request = self
            .http
            .post(self.url(path)?)
            .header("Idempotency-Key", idempotency_key)
            .form(form);
        self.send(request).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, StripeError> {
        self.send(self.http.get(self.url(path)?)).await
    }

    /// Makes the customer of `user`. The key is the user's, so a retry (or a
    /// parallel first checkout that got past the lock) gets the same one.
    pub async fn create_customer(
        &self,
        user: uuid::Uuid,
        email: &str,
        name: &str,
    ) -> Result<Customer, StripeError> {
        self.post(
            "/v1/customers",
            &[
                ("email", email.to_owned()),
                ("name", name.to_owned()),
                ("metadata[rabt_user_id]", user.to_string()),
            ],
            &format!("rabt-customer-{user}"),
        )
        .await
    }

    /// A Checkout session that subscribes `customer` to `price`.
    pub async fn create_checkout_session(
        &self,
        checkout: &NewCheckout<'_>,
    ) -> Result<CheckoutSession, StripeError> {
        let user = checkout.user.to_string();
        self.post(
            "/v1/checkout/sessions",
            &[
                ("mode", "subscription".to_owned()),
                ("customer", checkout.customer.to_owned()),
                ("client_reference_id", user.clone()),
                ("line_items[0][price]", checkout.price.to_owned()),
                ("line_items[0][quantity]", "1".to_owned()),
                ("success_url", checkout.success_url.to_owned()),
                ("cancel_url", checkout.cancel_url.to_owned()),
                ("metadata[rabt_user_id]", user.clone()),
                ("subscription_data[metadata][rabt_user_id]", user),
            ],
            checkout.idempotency_key,
        )
        .await
    }

    /// A billing-portal session of `customer`, returning to `return_url`.
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
        idempotency_key: &str,
    ) -> Result<PortalSession, StripeError> {
        self.post(
            "/v1/billing_portal/sessions",
            &[
                ("customer", customer.to_owned()),
                ("return_url", return_url.to_owned()),
            ],
            idempotency_key,
        )
        .await
    }

    pub async fn subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        self.get(&format!("/v1/subscriptions/{}", path_segment(id)?))
            .await
    }

    /// Cancels a subscription at once, without proration or a final
    /// invoice (an account's erasure). Stripe refuses to cancel one twice
    /// (400), and no longer knows one it deleted (404): the caller decides
    /// what those mean.
    pub async fn cancel_subscription(&self, id: &str) -> Result<Subscription, StripeError> {
        let url = self.url(&format!("/v1/subscriptions/{}", path_segment(id)?))?;
        self.send(self.http.delete(url)).await
    }

    pub async fn price(&self, id: &str) -> Result<Price, StripeError> {
        self.get(&format!("/v1/prices/{}", path_segment(id)?)).await
    }
}

/// What a Checkout session is made of.
pub struct NewCheckout<'a> {
    pub user: uuid::Uuid,
    pub customer: &'a str,
    pub price: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    pub idempotency_key: &'a str,
}

/// An id as one path segment: Stripe ids are letters, digits and `_`.
fn path_segment(id: &str) -> Result<&str, StripeError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(StripeError::Malformed(format!("not a Stripe id: {id:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_arrive_as_strings_or_expanded_objects() {
        let session: CheckoutSession = serde_json::from_value(serde_json::json!({
            "id": "cs_1", "url": null, "mode": "subscription", "client_reference_id": null,
            "customer": {"id": "cus_1", "object": "customer"}, "subscription": "sub_1"
        }))
        .unwrap();
        assert_eq!(session.customer.as_deref(), Some("cus_1"));
        assert_eq!(session.subscription.as_deref(), Some("sub_1"));
    }

    #[test]
    fn only_stripe_shaped_ids_go_into_a_path() {
        assert!(path_segment("sub_1Pgc6rB7WZ01zgkW").is_ok());
        for bad in ["", "../v1/customers", "sub 1", "sub_1/x", "sub_1?expand=x"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
    }
}
