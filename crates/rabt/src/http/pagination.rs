//! Keyset pagination: `?limit=` (1..=100, default 20) and an opaque `?cursor=`
//! that the server signs, so a cursor it did not issue (or one that was edited)
//! is refused with 422 instead of steering a query.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::Sha256;
use uuid::Uuid;

use super::{ApiError, FieldError};
use crate::config::Settings;

pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;

/// Checks `limit`: absent is 20; outside 1..=100 is 422.
pub fn limit(value: Option<i64>) -> Result<i64, ApiError> {
    match value {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::validation(vec![FieldError::new(
            "limit",
            "out_of_range",
            "Between 1 and 100.",
        )])),
    }
}

/// The sort key of the row a page ended on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Key {
    #[serde(rename = "t")]
    Time(DateTime<Utc>),
    #[serde(rename = "i")]
    Int(i64),
    #[serde(rename = "f")]
    Float(f64),
    #[serde(rename = "s")]
    Text(String),
}

/// Where a page ended, the one keyset position of every listing: the order it
/// belongs to (`S`, a listing's sort enum, or `()` for a fixed order), the
/// sort key and id of the last row, and whether the search had widened to
/// typos. A cursor is this, signed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position<S> {
    #[serde(rename = "o")]
    pub order: S,
    #[serde(rename = "k")]
    pub key: Key,
    pub id: Uuid,
    #[serde(default, rename = "f", skip_serializing_if = "std::ops::Not::not")]
    pub fuzzy: bool,
}

impl<S: PartialEq> Position<S> {
    /// The key and id to continue after in `order`; a cursor issued for
    /// another order is 422.
    pub fn within(&self, order: &S) -> Result<(&Key, Uuid), ApiError> {
        if self.order == *order {
            Ok((&self.key, self.id))
        } else {
            Err(wrong_order())
        }
    }
}

/// The error for a cursor of another sort, or whose key does not fit its sort.
pub fn wrong_order() -> ApiError {
    ApiError::validation(vec![FieldError::new(
        "cursor",
        "invalid",
        "This cursor belongs to another sort.",
    )])
}

/// A page of a listing: its rows and the cursor of the next page.
#[derive(Debug)]
pub struct Page<R> {
    pub items: Vec<R>,
    pub next_cursor: Option<String>,
}

impl<R> Page<R> {
    /// Cuts rows fetched with `limit + 1` to `limit`; when the extra row was
    /// there, signs the position of the last row kept as the next cursor.
    pub fn from_rows<P: Serialize>(
        cursors: &Cursors,
        mut rows: Vec<R>,
        limit: i64,
        position_of: impl FnOnce(&R) -> P,
    ) -> Result<Self, ApiError> {
        let limit = usize::try_from(limit).unwrap_or(0);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = match rows.last().filter(|_| more) {
            Some(last) => Some(cursors.encode(&position_of(last))?),
            None => None,
        };
        Ok(Self {
            items: rows,
            next_cursor,
        })
    }

    /// The same page with each row turned into what the API shows.
    pub fn map<T>(self, f: impl FnMut(R) -> T) -> Page<T> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// Signs and opens cursors with a key derived from `RABT_JWT_SECRET`.
#[derive(Clone)]
pub struct Cursors {
    key: [u8; 32],
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Cursors {
    pub fn from_settings(settings: &Settings) -> Self {
        let mut mac = HmacSha256::new_from_slice(settings.jwt_secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        mac.update(b"rabt pagination cursor v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // A 32-byte key is always accepted by HMAC.
        HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| HmacSha256::new(&Default::default()))
    }

    pub fn encode<T: Serialize>(&self, position: &T) -> Result<String, ApiError> {
        let json = serde_json::to_vec(position).map_err(ApiError::internal)?;
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..16]);
        Ok(format!("{payload}.{tag}"))
    }

    pub fn decode<T: DeserializeOwned>(&self, cursor: &str) -> Result<T, ApiError> {
        let invalid = || {
            ApiError::validation(vec![FieldError::new(
                "cursor",
                "invalid",
                "Not a cursor this server issued.",
            )])
        };
        if cursor.len() > 1024 {
            return Err(invalid());
        }
        let (payload, tag) = cursor.split_once('.').ok_or_else(invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        if tag.len() != 16 {
            return Err(invalid());
        }
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        // Constant-time comparison of the tag.
        mac.verify_truncated_left(&tag).map_err(|_| invalid())?;
        let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        serde_json::from_slice(&json).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors(secret: &str) -> Cursors {
        Cursors::from_settings(
            &Settings::load_with(&[
                ("database_url", "postgres://x@h/db".into()),
                ("jwt_secret", secret.into()),
            ])
            .unwrap(),
        )
    }

    #[test]
    fn a_cursor_round_trips_and_an_edited_one_is_refused() {
        let c = cursors("cursor-secret-cursor-secret-cursor-secret");
        let cursor = c.encode(&("2026-11-25T12:00:00Z", 42)).unwrap();
        let back: (String, i32) = c.decode(&cursor).unwrap();
        assert_eq!(back, ("2026-11-25T12:00:00Z".to_owned(), 42));

        let (payload, tag) = cursor.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"["2030-01-01T00:00:00Z",1]"#);
        for bad in [
            format!("{forged_payload}.{tag}"),
            format!("{payload}.AAAA"),
            payload.to_owned(),
            "garbage".to_owned(),
        ] {
            assert!(c.decode::<(String, i32)>(&bad).is_err(), "{bad}");
        }
        let other = cursors("another-secret-another-secret-another-1");
        assert!(other.decode::<(String, i32)>(&cursor).is_err());
    }

    #[test]
    fn a_page_keeps_limit_rows_and_a_cursor_only_when_more_follow() {
        let c = cursors("cursor-secret-cursor-secret-cursor-secret");
        let full = Page::from_rows(&c, vec![1, 2, 3], 2, |last| *last).unwrap();
        assert_eq!(full.items, [1, 2]);
        let cursor = full.next_cursor.expect("a next page");
        assert_eq!(c.decode::<i32>(&cursor).unwrap(), 2);
        let last = Page::from_rows(&c, vec![1, 2], 2, |last| *last).unwrap();
        assert_eq!(last.items, [1, 2]);
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn a_position_continues_only_its_own_order() {
        let position = Position {
            order: 'n',
            key: Key::Int(7),
            id: Uuid::nil(),
            fuzzy: false,
        };
        assert_eq!(position.within(&'n').unwrap(), (&Key::Int(7), Uuid::nil()));
        assert!(position.within(&'o').is_err());
    }

    #[test]
    fn limits_outside_the_range_are_refused() {
        assert_eq!(limit(None).unwrap(), 20);
        assert_eq!(limit(Some(100)).unwrap(), 100);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }
}
