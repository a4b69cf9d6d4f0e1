//! The HTTP edge: the problem-format error, extractors that use it, and the
//! middleware every route shares.

pub mod client;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod openapi;
pub mod pagination;
pub mod patch;
pub mod rate_limit;
pub mod request_id;

pub use client::ClientInfo;
pub use error::{ApiError, ErrorCode, FieldError};
pub use extract::{AppJson, AppPath, AppQuery};

/// The token of an `Authorization: Bearer …` header, if the request has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
