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
