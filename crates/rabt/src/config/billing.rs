//! Plans, their limits and Stripe: the billing settings' validation, called
//! from [`super::raw`].

use std::time::Duration;

use secrecy::SecretString;

use super::{
    BillingSettings, ConfigError, StripeSettings,
    raw::{RawSettings, given, parse_http_url},
};

impl RawSettings {
    /// Plans, Stripe and invoices. Stripe is on with a secret key, and then
    /// needs its webhook secret too: payments whose events cannot be
    /// verified would never reach a plan.
    pub(super) fn billing(&self) -> Result<BillingSettings, ConfigError> {
        let limit = |key: &str, value: u32| {
            if value > 1_000_000 {
                Err(ConfigError::new(key, "must be 0..=1000000"))
            } else {
                Ok(value)
            }
        };
        let price = |key: &str, value: &Option<String>| match given(value) {
            Some(id) if id.starts_with("price_") && id.len() <= 255 => Ok(Some(id)),
            Some(_) => Err(ConfigError::new(
                key,
                "must be a Stripe price id (`price_…`)",
            )),
            None => Ok(None),
        };
        let stripe = match (
            given(&self.stripe_secret_key),
            given(&self.stripe_webhook_secret),
        ) {
            (Some(secret_key), Some(webhook_secret)) => {
                if !(secret_key.starts_with("sk_") || secret_key.starts_with("rk_")) {
                    return Err(ConfigError::new(
                        "stripe_secret_key",
                        "must be a Stripe secret or restricted key (`sk_…`, `rk_…`)",
                    ));
                }
                if !webhook_secret.starts_with("whsec_") {
                    return Err(ConfigError::new(
                        "stripe_webhook_secret",
                        "must be a Stripe endpoint secret (`whsec_…`)",
                    ));
                }
                Some(StripeSettings {
                    secret_key: SecretString::from(secret_key),
                    webhook_secret: SecretString::from(webhook_secret),
                    api_base: parse_http_url("stripe_api_base", &self.stripe_api_base)?,
                    timeout: Duration::from_millis(self.stripe_timeout_ms),
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "stripe_webhook_secret",
                    "is required with the secret key",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "stripe_secret_key",
                    "is required with the webhook secret",
                ));
            }
        };
        if !(100..=60_000).contains(&self.stripe_timeout_ms) {
            return Err(ConfigError::new("stripe_timeout_ms", "must be 100..=60000"));
        }
        if self.billing_past_due_grace_days > 90 {
            return Err(ConfigError::new(
                "billing_past_due_grace_days",
                "must be 0..=90",
            ));
        }
        let issuer: Vec<String> = self
            .invoice_issuer
            .split(';')
            .map(|line| line.trim().to_owned())
            .filter(|line| !line.is_empty())
            .collect();
        if issuer.is_empty() || issuer.len() > 8 || issuer.iter().any(|l| l.chars().count() > 120) {
            return Err(ConfigError::new(
                "invoice_issuer",
                "must be 1 to 8 lines of at most 120 characters, separated by `;`",
            ));
        }
        Ok(BillingSettings {
            free_open_projects: limit("plan_free_open_projects", self.plan_free_open_projects)?,
            pro_open_projects: limit("plan_pro_open_projects", self.plan_pro_open_projects)?,
            team_open_projects: self
                .plan_team_open_projects
                .map(|v| limit("plan_team_open_projects", v))
                .transpose()?,
            price_pro: price("stripe_price_pro", &self.stripe_price_pro)?,
            price_team: price("stripe_price_team", &self.stripe_price_team)?,
            stripe,
            past_due_grace: Duration::from_secs(
                u64::from(self.billing_past_due_grace_days) * 86_400,
            ),
            invoice_issuer: issuer,
        })
    }
}
