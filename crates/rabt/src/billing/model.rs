//! Plans, subscriptions and invoices as the API shows them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{config::BillingSettings, money::Money};

/// The plans rabt sells, in rising order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    Free,
    Pro,
    Team,
}

impl Plan {
    pub const ALL: [Plan; 3] = [Plan::Free, Plan::Pro, Plan::Team];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Pro => "pro",
            Self::Team => "team",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Free => "Free",
            Self::Pro => "Pro",
            Self::Team => "Team",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The open projects this plan allows at once; `None`: no limit.
    pub fn open_projects(self, settings: &BillingSettings) -> Option<u32> {
        match self {
            Self::Free => Some(settings.free_open_projects),
            Self::Pro => Some(settings.pro_open_projects),
            Self::Team => settings.team_open_projects,
        }
    }

    /// The Stripe price of a paid plan, when one is configured.
    pub fn price_id(self, settings: &BillingSettings) -> Option<&str> {
        match self {
            Self::Free => None,
            Self::Pro => settings.price_pro.as_deref(),
            Self::Team => settings.price_team.as_deref(),
        }
    }

    /// The plan a Stripe price buys: `free` for a price that is no plan's.
    pub fn of_price(settings: &BillingSettings, price: &str) -> Self {
        [Self::Pro, Self::Team]
            .into_iter()
            .find(|p| p.price_id(settings) == Some(price))
            .unwrap_or(Self::Free)
    }
}

/// The open-project limit of a plan by its stored name. A name that is no
/// plan (set by hand) fails closed to the free plan's limit.
pub fn open_project_limit(settings: &BillingSettings, plan: Option<&str>) -> Option<i64> {
    plan.and_then(Plan::parse)
        .unwrap_or(Plan::Free)
        .open_projects(settings)
        .map(i64::from)
}

/// What a plan allows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Limits {
    /// Open projects at once; `null`: no limit.
    pub open_projects: Option<u32>,
}

/// A plan on offer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanOffer {
    pub id: Plan,
    pub name: String,
    /// Per `interval`; `{0, …}` for `free`; `null` while the price cannot be
    /// read from Stripe (or none is configured).
    pub price: Option<Money>,
    /// `month` or `year`; `null` for `free`.
    pub interval: Option<String>,
    pub limits: Limits,
}

/// What to buy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// `pro` or `team`.
    pub plan: String,
}

/// Where to send the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedirectUrl {
    pub url: String,
}

/// The caller's subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// The plan in force now (`free` without a subscription).
    pub plan: Plan,
    /// Stripe's status (`active`, `trialing`, `past_due`, `canceled`, …);
    /// `null` without a subscription.
    pub status: Option<String>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
}

#[derive(Debug)]
pub struct SubscriptionRow {
    pub plan: String,
    pub status: String,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
}

/// One line of an invoice.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InvoiceLine {
    pub description: String,
    pub quantity: i64,
    /// Minor units of the invoice's currency.
    pub amount: i64,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
}

/// An invoice, mirrored from Stripe.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invoice {
    pub id: Uuid,
    /// Stripe's number (`7FE1103-0001`); `null` while a draft.
    pub number: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: String,
    pub subtotal: Money,
    pub tax: Money,
    pub total: Money,
    pub amount_due: Money,
    pub amount_paid: Money,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// Stripe's page of the invoice, where it can be paid.
    pub hosted_invoice_url: Option<String>,
    pub lines: Vec<InvoiceLine>,
    pub issued_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    /// `GET` it for the PDF.
    pub pdf_url: String,
}

#[derive(Debug)]
pub struct InvoiceRow {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
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
    pub lines: serde_json::Value,
    pub issued_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
}

impl InvoiceRow {
    pub fn lines(&self) -> Vec<InvoiceLine> {
        serde_json::from_value(self.lines.clone()).unwrap_or_default()
    }

    pub fn money(&self, amount: i64) -> Money {
        Money {
            amount,
            currency: self.currency.clone(),
        }
    }

    pub fn view(&self) -> Invoice {
        Invoice {
            id: self.id,
            number: self.number.clone(),
            status: self.status.clone(),
            subtotal: self.money(self.subtotal),
            tax: self.money(self.tax),
            total: self.money(self.total),
            amount_due: self.money(self.amount_due),
            amount_paid: self.money(self.amount_paid),
            period_start: self.period_start,
            period_end: self.period_end,
            hosted_invoice_url: self.hosted_invoice_url.clone(),
            lines: self.lines(),
            issued_at: self.issued_at,
            paid_at: self.paid_at,
            pdf_url: format!("/v1/billing/invoices/{}/pdf", self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_by_name_and_unknown_names_fail_closed_to_free() {
        assert_eq!(Plan::parse("team"), Some(Plan::Team));
        assert_eq!(Plan::parse("enterprise"), None);
        assert!(Plan::Free < Plan::Pro && Plan::Pro < Plan::Team);
    }
}
