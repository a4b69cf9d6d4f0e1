//! What a `PATCH` body means, field by field: an absent field stays as it is;
//! `null` clears an optional field and is refused (422 naming the field) for
//! one that cannot be cleared; `""` clears optional text too.

use serde::{Deserialize, Deserializer};

use super::FieldError;

/// For an optional field, with `#[serde(default, deserialize_with = "…")]`:
/// absent is `None`, `null` is `Some(None)`.
pub fn absent_or_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// For a field that cannot be cleared, with `#[serde(default, deserialize_with
/// = "…")]`: absent is `None`, `null` is an error.
pub fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Merges a change of optional text into `current`: trimmed, at most `max`
/// characters (else a `too_long` error and `current` stays), and `null` or
/// `""` clears it.
pub fn optional_text(
    field: &str,
    value: Option<Option<String>>,
    max: usize,
    current: Option<String>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        None => current,
        Some(None) => None,
        Some(Some(text)) => {
            let text = text.trim().to_owned();
            if text.chars().count() > max {
                errors.push(FieldError::new(
                    field,
                    "too_long",
                    format!("At most {max} characters."),
                ));
                current
            } else if text.is_empty() {
                None
            } else {
                Some(text)
            }
        }
    }
}

/// Optional free text that comes with a request (a transition's reason or
/// note), as [`optional_text`] reads it: trimmed, `""` is none, and more than
/// `max` characters is a 422.
pub fn optional_note(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, super::ApiError> {
    let mut errors = Vec::new();
    let note = optional_text(field, Some(value), max, None, &mut errors);
    if errors.is_empty() {
        Ok(note)
    } else {
        Err(super::ApiError::validation(errors))
    }
}
