//! The one error type of the HTTP edge, rendered as `application/problem+json`
//! (RFC 9457) with the stable codes of the API contract.
//!
//! Internal causes are logged, with the request id, and never sent: a 500 says
//! only that something went wrong and which request it was.

use std::fmt;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use super::request_id;

/// The error codes of the contract, each with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidJson,
    InvalidToken,
    Unauthorized,
    InvalidCredentials,
    TokenExpired,
    RefreshTokenReused,
    Forbidden,
    EmailNotVerified,
    AccountSuspended,
    PolicyAcceptanceRequired,
    MfaRequired,
    NotFound,
    MethodNotAllowed,
    /// A plain request to an endpoint that speaks WebSocket (426).
    UpgradeRequired,
    Conflict,
    InvalidTransition,
    AlreadyApplied,
    ProjectNotOpen,
    UploadMissing,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    IdempotencyKeyReused,
    FileContentMismatch,
    PlanLimitReached,
    RateLimited,
    Internal,
    /// A third party (Stripe) refused or broke a call rabt made for the
    /// request (502).
    UpstreamError,
    Unavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidToken => "invalid_token",
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TokenExpired => "token_expired",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::Forbidden => "forbidden",
            Self::EmailNotVerified => "email_not_verified",
            Self::AccountSuspended => "account_suspended",
            Self::PolicyAcceptanceRequired => "policy_acceptance_required",
            Self::MfaRequired => "mfa_required",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UpgradeRequired => "upgrade_required",
            Self::Conflict => "conflict",
            Self::InvalidTransition => "invalid_transition",
            Self::AlreadyApplied => "already_applied",
            Self::ProjectNotOpen => "project_not_open",
            Self::UploadMissing => "upload_missing",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ValidationFailed => "validation_failed",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::FileContentMismatch => "file_content_mismatch",
            Self::PlanLimitReached => "plan_limit_reached",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::UpstreamError => "upstream_error",
            Self::Unavailable => "unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidJson | Self::InvalidToken => StatusCode::BAD_REQUEST,
            Self::Unauthorized
            | Self::InvalidCredentials
            | Self::TokenExpired
            | Self::RefreshTokenReused => StatusCode::UNAUTHORIZED,
            Self::PlanLimitReached => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden
            | Self::EmailNotVerified
            | Self::AccountSuspended
            | Self::PolicyAcceptanceRequired
            | Self::MfaRequired => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            Self::Conflict
            | Self::InvalidTransition
            | Self::AlreadyApplied
            | Self::ProjectNotOpen
            | Self::UploadMissing => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ValidationFailed | Self::IdempotencyKeyReused | Self::FileContentMismatch => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::UpstreamError => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidJson => "Invalid JSON",
            Self::InvalidToken => "Invalid token",
            Self::Unauthorized => "Unauthorized",
            Self::InvalidCredentials => "Invalid credentials",
            Self::TokenExpired => "Token expired",
            Self::RefreshTokenReused => "Refresh token reused",
            Self::Forbidden => "Forbidden",
            Self::EmailNotVerified => "Email not verified",
            Self::AccountSuspended => "Account suspended",
            Self::PolicyAcceptanceRequired => "Policy acceptance required",
            Self::MfaRequired => "Two-factor sign-in required",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::UpgradeRequired => "Upgrade required",
            Self::Conflict => "Conflict",
            Self::InvalidTransition => "Invalid transition",
            Self::AlreadyApplied => "Already applied",
            Self::ProjectNotOpen => "Project not open",
            Self::UploadMissing => "Upload missing",
            Self::PayloadTooLarge => "Payload too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::ValidationFailed => "Validation failed",
            Self::IdempotencyKeyReused => "Idempotency key reused",
            Self::FileContentMismatch => "File content mismatch",
            Self::PlanLimitReached => "Plan limit reached",
            Self::RateLimited => "Rate limited",
            Self::Internal => "Internal error",
            Self::UpstreamError => "Upstream error",
            Self::Unavailable => "Service unavailable",
        }
    }

    /// The code a bare status from a lower layer (router, timeout, body limit)
    /// stands for.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::InvalidJson,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => Self::ValidationFailed,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::GATEWAY_TIMEOUT => Self::Unavailable,
            _ => Self::Internal,
        }
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// Where the value sits, as a dotted path (`budget.min`, `skills[2]`).
    pub field: String,
    /// A stable code a UI can translate: `required`, `too_short`, `too_long`,
    /// `invalid`, `invalid_type`, `unknown_field`, `out_of_range`.
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The error body every failing response carries.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody {
    /// `https://rabt.dev/problems/{code}`
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    /// The stable error code.
    pub code: &'static str,
    pub detail: String,
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// With `mfa_required` from an action that needs a recent second factor:
    /// the single-use token (5 minutes) to send to `POST /v1/auth/mfa/challenge`
    /// with a code, which raises this session and answers a new token pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
}

/// An error answered to the client as a problem document.
pub struct ApiError {
    code: ErrorCode,
    detail: Option<String>,
    errors: Vec<FieldError>,
    retry_after_secs: Option<u64>,
    mfa_token: Option<String>,
    source: Option<anyhow::Error>,
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code.as_str())
            .field("detail", &self.detail)
            .field("errors", &self.errors)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(detail) => write!(f, "{}: {detail}", self.code.as_str()),
            None => f.write_str(self.code.as_str()),
        }
    }
}

impl ApiError {
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            errors: Vec::new(),
            retry_after_secs: None,
            mfa_token: None,
            source: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds the token of a second-factor challenge (`mfa_required`).
    pub fn with_mfa_token(mut self, token: String) -> Self {
        self.mfa_token = Some(token);
        self
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound)
    }

    /// 503 `unavailable`, with `Retry-After: 1`: a dependency is away or
    /// busy, and the client may try again shortly.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut err = Self::new(ErrorCode::Unavailable).with_detail(detail);
        err.retry_after_secs = Some(1);
        err
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut err = Self::new(ErrorCode::RateLimited);
        err.retry_after_secs = Some(retry_after_secs.max(1));
        err
    }

    /// 422 `validation_failed` listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => "1 field is invalid".to_owned(),
            n => format!("{n} fields are invalid"),
        };
        let mut err = Self::new(ErrorCode::ValidationFailed).with_detail(detail);
        err.errors = errors;
        err
    }

    /// A failure the client cannot act on; the cause is logged, not sent.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut err = Self::new(ErrorCode::Internal);
        err.source = Some(source.into());
        err
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn field_errors(&self) -> &[FieldError] {
        &self.errors
    }

    fn default_detail(&self) -> &'static str {
        match self.code {
            ErrorCode::NotFound => "There is nothing here, or it is not yours to see.",
            ErrorCode::MethodNotAllowed => "This resource does not answer that method.",
            ErrorCode::PayloadTooLarge => "The request body is larger than this endpoint accepts.",
            ErrorCode::RateLimited => "Too many requests; try again after Retry-After seconds.",
            ErrorCode::Internal => "Something went wrong on our side; quote the request id.",
            ErrorCode::Unavailable => "The service cannot answer right now; try again shortly.",
            ErrorCode::Unauthorized => "Sign in to do this.",
            ErrorCode::Forbidden => "You may not do this.",
            _ => self.code.title(),
        }
    }

    pub fn body(&self) -> ProblemBody {
        let code = self.code.as_str();
        ProblemBody {
            kind: format!("https://rabt.dev/problems/{code}"),
            title: self.code.title(),
            status: self.code.status().as_u16(),
            code,
            detail: self
                .detail
                .clone()
                .unwrap_or_else(|| self.default_detail().to_owned()),
            request_id: request_id::current(),
            errors: self.errors.clone(),
            mfa_token: self.mfa_token.clone(),
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(err)
    }
}

/// The name of the constraint a database error broke, if it broke a named one.
/// Each capability maps its own constraints to the contract's errors next to
/// the code that owns them (`.map_err(on_constraint)` in its routes); what
/// none maps falls to [`From<sqlx::Error>`].
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    err.as_database_error()?.constraint()
}

/// The column a check constraint guards, by the schema's naming rule
/// `{table}_{column}_{rule}` (`users_display_name_length`), so a check that
/// fires names the field without the edge knowing any capability's tables.
/// Only the rules that mirror a field's documented limits (`length`,
/// `format`) name it, and never a column the server fills itself (hashes,
/// rendered HTML, sealed values, keys), whose name is nobody's business.
fn checked_column<'a>(constraint: &'a str, table: &str) -> Option<&'a str> {
    const RULES: [&str; 2] = ["length", "format"];
    const SERVER_MADE: [&str; 5] = ["_hash", "_html", "_sealed", "_key", "_id"];
    let rest = constraint.strip_prefix(table)?.strip_prefix('_')?;
    let (column, rule) = rest.rsplit_once('_')?;
    let server_made = SERVER_MADE.iter().any(|suffix| column.ends_with(suffix))
        || matches!(column, "key" | "hash" | "payload" | "plan");
    (RULES.contains(&rule) && !server_made).then_some(column)
}

/// A constraint violation that no capability mapped: the code should have
/// validated first. Says what kind of rule was broken, never which or how.
fn unmapped_violation(err: &sqlx::Error) -> Option<ApiError> {
    let db_err = err.as_database_error()?;
    let mapped = match db_err.kind() {
        sqlx::error::ErrorKind::UniqueViolation => ApiError::new(ErrorCode::Conflict),
        sqlx::error::ErrorKind::CheckViolation | sqlx::error::ErrorKind::NotNullViolation => {
            let field = db_err
                .constraint()
                .zip(db_err.table())
                .and_then(|(name, table)| checked_column(name, table));
            match field {
                Some(field) => ApiError::validation(vec![FieldError::new(
                    field,
                    "invalid",
                    "This value breaks a rule of this field.",
                )]),
                None => ApiError::validation(vec![FieldError::new(
                    "body",
                    "invalid",
                    "A value breaks a rule of this resource.",
                )]),
            }
        }
        sqlx::error::ErrorKind::ForeignKeyViolation => ApiError::validation(vec![FieldError::new(
            "body",
            "invalid",
            "A referenced resource does not exist.",
        )]),
        _ => return None,
    };
    tracing::warn!(constraint = ?db_err.constraint(), "unmapped constraint violation");
    Some(mapped)
}

/// Whether `err` says Postgres is away (the connection broke, the server is
/// shutting down or not yet accepting, or no connection could be had) rather
/// than that the statement was wrong: the client gets 503, not 500.
fn database_unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01..57P03: admin or crash shutdown,
            // cannot connect now; 53300: too many connections.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if let Some(mapped) = unmapped_violation(&err) {
            return mapped;
        }
        match err {
            sqlx::Error::RowNotFound => Self::not_found(),
            sqlx::Error::PoolTimedOut => {
                tracing::warn!("database pool exhausted");
                Self::unavailable("The database is busy; try again shortly.")
            }
            other if database_unreachable(&other) => {
                tracing::warn!(error = %other, "database unavailable");
                Self::unavailable("The database cannot be reached; try again shortly.")
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            tracing::error!(error = ?source, code = self.code.as_str(), "request failed");
        }
        let status = self.code.status();
        let body = self.body();
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_from_its_own_status_family() {
        for code in [
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
        ] {
            assert_eq!(ErrorCode::for_status(code.status()), code);
        }
    }

    #[test]
    fn a_check_named_by_the_schema_rule_names_its_column() {
        assert_eq!(
            checked_column("users_display_name_length", "users"),
            Some("display_name")
        );
        assert_eq!(
            checked_column("projects_title_length", "projects"),
            Some("title")
        );
        assert_eq!(checked_column("projects_status_check", "projects"), None);
        assert_eq!(checked_column("users_password_hash_length", "users"), None);
        assert_eq!(
            checked_column("projects_description_html_length", "projects"),
            None
        );
        assert_eq!(
            checked_column("idempotency_keys_key_length", "idempotency_keys"),
            None
        );
        assert_eq!(
            checked_column("applications_budget_amount", "applications"),
            None
        );
        assert_eq!(
            checked_column("users_display_name_length", "projects"),
            None
        );
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let err = ApiError::internal(anyhow::anyhow!("relation users does not exist"));
        let body = serde_json::to_string(&err.body()).unwrap();
        assert!(!body.contains("relation"));
        assert!(body.contains(r#""code":"internal""#));
    }

    #[test]
    fn validation_errors_count_their_fields() {
        let err = ApiError::validation(vec![
            FieldError::new("title", "too_short", "at least 3 characters"),
            FieldError::new("skills[0]", "too_long", "at most 40 characters"),
        ]);
        let body = err.body();
        assert_eq!(body.status, 422);
        assert_eq!(body.detail, "2 fields are invalid");
        assert_eq!(body.errors.len(), 2);
    }
}
