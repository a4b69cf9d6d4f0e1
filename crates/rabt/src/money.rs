//! Money: amounts in minor units (cents) with an ISO 4217 currency, the one
//! way every capability states a price, a budget or a proposal.
//!
//! Amounts are `i64` minor units from 0 to 10^12, so sums of a few of them
//! cannot overflow and no float ever holds money.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::FieldError;

/// The largest amount, in minor units.
pub const MAX_MINOR_UNITS: i64 = 1_000_000_000_000;

/// An ISO 4217 code, lowercase (`usd`): three ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "usd")]
pub struct Currency(String);

impl Currency {
    /// Trims and lowercases `text`; `None` unless it is three letters.
    pub fn parse(text: &str) -> Option<Self> {
        let code = text.trim().to_ascii_lowercase();
        (code.len() == 3 && code.bytes().all(|b| b.is_ascii_lowercase())).then_some(Self(code))
    }

    /// As [`Currency::parse`], recording a field error for `field` when invalid.
    pub fn parse_field(field: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<Self> {
        let parsed = Self::parse(text);
        if parsed.is_none() {
            errors.push(invalid_currency(field));
        }
        parsed
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The error for a currency that is not an ISO 4217 code.
pub fn invalid_currency(field: &str) -> FieldError {
    FieldError::new(field, "invalid", "An ISO 4217 code such as `usd`.")
}

/// Checks that `amount` lies in `floor..=MAX_MINOR_UNITS`, recording `message`
/// as an `out_of_range` error of `field` when it does not.
pub fn check_amount(
    field: &str,
    amount: i64,
    floor: i64,
    message: &str,
    errors: &mut Vec<FieldError>,
) -> bool {
    let ok = (floor..=MAX_MINOR_UNITS).contains(&amount);
    if !ok {
        errors.push(FieldError::new(field, "out_of_range", message));
    }
    ok
}

/// An amount of money, as the API reads and writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// Minor units, 0 to 10^12.
    pub amount: i64,
    /// ISO 4217, lowercase (`usd`).
    pub currency: String,
}

impl Money {
    /// The amount and its currency when both are valid; errors are recorded
    /// under `field.amount` and `field.currency`.
    pub fn parse(self, field: &str, errors: &mut Vec<FieldError>) -> Option<(i64, Currency)> {
        let currency = Currency::parse_field(&format!("{field}.currency"), &self.currency, errors);
        let amount_ok = check_amount(
            &format!("{field}.amount"),
            self.amount,
            0,
            "0 to 10^12 minor units.",
            errors,
        );
        Some((self.amount, currency?)).filter(|_| amount_ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_three_letters_lowercased() {
        assert_eq!(
            Currency::parse(" EUR ").map(Currency::into_string),
            Some("eur".into())
        );
        for bad in ["", "eu", "euro", "e1r", "€ur"] {
            assert_eq!(Currency::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn money_out_of_range_or_in_a_bad_currency_is_refused_with_its_field() {
        let mut errors = Vec::new();
        let money = Money {
            amount: MAX_MINOR_UNITS + 1,
            currency: "dollars".into(),
        };
        assert_eq!(money.parse("price", &mut errors), None);
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["price.currency", "price.amount"]);

        let mut errors = Vec::new();
        let money = Money {
            amount: 0,
            currency: "USD".into(),
        };
        let (amount, currency) = money.parse("price", &mut errors).unwrap();
        assert_eq!((amount, currency.as_str()), (0, "usd"));
        assert!(errors.is_empty());
    }
}
