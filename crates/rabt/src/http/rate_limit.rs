//! Rate limits for every route, by class, in one layer.
//!
//! | class | routes | counted per |
//! | --- | --- | --- |
//! | `auth` | `/v1/auth/*` | client address (handlers add per-account and per-email limits) |
//! | `realtime` | `GET /v1/realtime` (WebSocket connects) | user, else client address |
//! | `write` | other `POST`, `PUT`, `PATCH`, `DELETE` | user, else client address |
//! | `read` | other `GET`, `HEAD` | user, else client address |
//!
//! Operations routes (`/health/*`, `/metrics`, `/openapi.json`, `/docs`) and
//! `OPTIONS` preflights are not limited. The user is the subject of a valid
//! access token (signature and expiry; the session itself is checked by the
//! handler), so a forged token is counted by address like an anonymous call.
//! The address is the one [`super::client::client_ip`] trusts.
//!
//! Counters live in [`crate::kv::Kv`]: shared and atomic across instances with
//! Redis, per process without. Every limited response carries `RateLimit-Policy`
//! and `RateLimit` (draft-ietf-httpapi-ratelimit-headers); a refusal is 429
//! `rate_limited` with `Retry-After`, counted in `rate_limited_total{class}`.
//! The auth handlers add their own limits (per address, account and email; see
//! `auth::routes::limit`), counted under the same metric with classes such as
//! `login_account`; their refusals keep their own `Retry-After` and get no
//! `RateLimit` headers from this layer, whose quota is not the one exhausted.
//! If the store fails, requests pass (logged): an outage of Redis must not take
//! the API down with it.

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{ApiError, client::client_ip};
use crate::{kv::Rate, state::AppState};

/// The limits of each class, per minute (`RABT_RATE_LIMIT_*_PER_MINUTE`), and
/// those the auth handlers add (`RABT_RATE_LIMIT_AUTH_ADDRESS_PER_MINUTE`,
/// `RABT_RATE_LIMIT_ACCOUNT_PER_MINUTE`, `RABT_RATE_LIMIT_EMAIL_PER_HOUR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub auth: u32,
    pub write: u32,
    pub read: u32,
    pub realtime: u32,
    /// Each of sign-in, sign-up, resend, forgot-password and OAuth start, per
    /// client address and minute.
    pub auth_address: u32,
    /// Password checks per account and minute (sign-in, password change).
    pub account: u32,
    /// Each kind of mail request (sign-up, resend, forgot-password) per email
    /// address and hour.
    pub email_per_hour: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            auth: 30,
            write: 120,
            read: 600,
            realtime: 30,
            auth_address: 20,
            account: 10,
            email_per_hour: 5,
        }
    }
}

/// A class of routes sharing one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Auth,
    Write,
    Read,
    Realtime,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Write => "write",
            Self::Read => "read",
            Self::Realtime => "realtime",
        }
    }

    /// The class of a request, or `None` for unlimited operations routes.
    pub fn of(method: &Method, path: &str) -> Option<Self> {
        if method == Method::OPTIONS || !path.starts_with("/v1/") {
            return None;
        }
        if path.starts_with("/v1/auth/") {
            return Some(Self::Auth);
        }
        if path == "/v1/realtime" {
            return Some(Self::Realtime);
        }
        Some(match *method {
            Method::GET | Method::HEAD => Self::Read,
            _ => Self::Write,
        })
    }

    fn per_minute(self, limits: &RateLimits) -> u32 {
        match self {
            Self::Auth => limits.auth,
            Self::Write => limits.write,
            Self::Read => limits.read,
            Self::Realtime => limits.realtime,
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const STATE: HeaderName = HeaderName::from_static("ratelimit");

/// Whole seconds, rounded up: a client told to wait 0 s when 0.4 s remain
/// would be refused again.
pub fn seconds(duration: Duration) -> u64 {
    duration
        .as_millis()
        .div_ceil(1000)
        .try_into()
        .unwrap_or(u64::MAX)
}

/// The layer: counts the request against its class and subject.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(class) = Class::of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let per_minute = class.per_minute(&state.settings.rate_limits).max(1);
    let rate = Rate::per_minute(per_minute);
    let user = match class {
        Class::Auth => None,
        _ => bearer(request.headers())
            .and_then(|token| state.tokens.verify(token).ok())
            .map(|claims| claims.sub),
    };
    let subject = match user {
        Some(id) => format!("user:{id}"),
        None => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip());
            let ip = client_ip(peer, request.headers(), &state.settings.trusted_proxies);
            format!(
                "ip:{}",
                ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
            )
        }
    };
    let decision = match state
        .kv
        .rate_limit(&format!("rl:{}:{subject}", class.name()), rate)
        .await
    {
        Ok(decision) => decision,
        Err(err) => {
            tracing::warn!(error = %err, "rate limiter unavailable; request let through");
            return next.run(request).await;
        }
    };
    let policy = format!("\"{}\";q={per_minute};w=60", class.name());
    let mut response = if decision.allowed {
        let response = next.run(request).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            // A handler's own limit refused; this class's quota says nothing
            // about when to come back.
            return response;
        }
        response
    } else {
        metrics::counter!("rate_limited_total", "class" => class.name()).increment(1);
        ApiError::rate_limited(seconds(decision.retry_after)).into_response()
    };
    // Seconds until the full quota is back (allowed) or the next request is.
    let reset = if decision.allowed {
        let interval = Duration::from_secs(60) / per_minute;
        interval * per_minute.saturating_sub(decision.remaining)
    } else {
        decision.retry_after
    };
    let state_value = format!(
        "\"{}\";r={};t={}",
        class.name(),
        decision.remaining,
        seconds(reset)
    );
    let headers = response.headers_mut();
    for (name, value) in [(POLICY, policy), (STATE, state_value)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_classes() {
        let cases = [
            (Method::POST, "/v1/auth/login", Some(Class::Auth)),
            (
                Method::GET,
                "/v1/auth/oauth/google/start",
                Some(Class::Auth),
            ),
            (Method::GET, "/v1/realtime", Some(Class::Realtime)),
            (Method::GET, "/v1/projects", Some(Class::Read)),
            (Method::HEAD, "/v1/projects", Some(Class::Read)),
            (Method::POST, "/v1/projects", Some(Class::Write)),
            (Method::DELETE, "/v1/projects/x", Some(Class::Write)),
            (Method::OPTIONS, "/v1/projects", None),
            (Method::GET, "/health/ready", None),
            (Method::GET, "/metrics", None),
            (Method::GET, "/openapi.json", None),
        ];
        for (method, path, class) in cases {
            assert_eq!(Class::of(&method, path), class, "{method} {path}");
        }
    }
}
