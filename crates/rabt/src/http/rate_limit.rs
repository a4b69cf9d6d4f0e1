//! Rate limits for every API route, by class, in one layer that each group of
//! routes is mounted with ([`enforce`], attached in `app::api_router` with the
//! group's [`Routes`]): a route's class follows from where it is mounted, not
//! from its path.
//!
//! | class | routes | counted per |
//! | --- | --- | --- |
//! | `auth` | [`Routes::Auth`]: `/v1/auth/*` | client address (handlers add per-account and per-email limits) |
//! | `realtime` | [`Routes::Realtime`]: WebSocket connects | user, else client address |
//! | `write` | [`Routes::Api`]: `POST`, `PUT`, `PATCH`, `DELETE` | user, else client address |
//! | `read` | [`Routes::Api`]: `GET`, `HEAD` | user, else client address |
//!
//! Operations routes (`/health/*`, `/metrics`, `/openapi.json`, `/docs`) are
//! mounted without the layer; `OPTIONS` preflights are never limited. The user is the subject of a valid
//! access token (signature and expiry; the session itself is checked by the
//! handler), so a forged token is counted by address like an anonymous call.
//! The address is the one [`super::client::client_ip`] trusts.
//!
//! Counters live in [`crate::kv::Kv`]: shared and atomic across instances with
//! Redis, per process without. Each instance takes grants from them in
//! batches ([`Limiter`]), so most requests cost no round trip; all instances
//! together never admit more than the limit. Every limited response carries `RateLimit-Policy`
//! and `RateLimit` (draft-ietf-httpapi-ratelimit-headers); a refusal is 429
//! `rate_limited` with `Retry-After`, counted in `rate_limited_total{class}`.
//! The auth handlers add their own limits (per address, account and email; see
//! `auth::routes::limit`), counted under the same metric with classes such as
//! `login_account`; their refusals keep their own `Retry-After` and get no
//! `RateLimit` headers from this layer, whose quota is not the one exhausted.
//! If the store fails, requests pass (logged): an outage of Redis must not take
//! the API down with it.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Extension,
    extract::{ConnectInfo, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{ApiError, client::client_ip};
use crate::{
    config::RateLimits,
    kv::{Kv, Rate, RateDecision},
    state::AppState,
};

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

    fn per_minute(self, limits: &RateLimits) -> u32 {
        match self {
            Self::Auth => limits.auth,
            Self::Write => limits.write,
            Self::Read => limits.read,
            Self::Realtime => limits.realtime,
        }
    }
}

/// A group of routes mounted with one limit layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Sign-up, sign-in and tokens.
    Auth,
    /// WebSocket connects.
    Realtime,
    /// Every other API route: reads and writes by method.
    Api,
}

impl Routes {
    /// The class a request to these routes counts against; `None` for an
    /// `OPTIONS` preflight.
    pub fn class(self, method: &Method) -> Option<Class> {
        if method == Method::OPTIONS {
            return None;
        }
        Some(match self {
            Self::Auth => Class::Auth,
            Self::Realtime => Class::Realtime,
            Self::Api if matches!(*method, Method::GET | Method::HEAD) => Class::Read,
            Self::Api => Class::Write,
        })
    }
}

const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const STATE: HeaderName = HeaderName::from_static("ratelimit");

/// How long requests may use a batch taken from the shared counter. Grants
/// left unused by then are dropped (counted, never given back).
const BATCH_FOR: Duration = Duration::from_secs(1);
/// The largest batch taken at once.
const MAX_BATCH: u32 = 100;
/// How many subjects' batches one instance keeps at most.
const MAX_SUBJECTS: u64 = 100_000;

/// The shared counters ([`Kv`]) with a batch of grants per subject held in
/// this process, so that most requests are counted without a round trip to
/// Redis.
///
/// A request takes one grant from its subject's batch. An empty (or expired)
/// batch is refilled from the shared GCRA counter with one second's worth of
/// the subject's rate ([`batch_size`], at most [`MAX_BATCH`]), as many as the
/// counter allows at that moment; a refusal of the counter is remembered
/// until its `Retry-After`. Every grant is taken from the shared counter
/// before it is used, so all instances together never admit more than the
/// limit. The tolerance goes the other way: grants held by one instance are
/// not available to another, so a subject whose requests are spread over N
/// instances can be refused up to (N − 1) batches early, and a batch unused
/// within [`BATCH_FOR`] is lost. A rate of 60 a minute or less is a batch of
/// one: every request asks the counter, exactly as without batches.
#[derive(Clone)]
pub struct Limiter {
    kv: Kv,
    batches: moka::future::Cache<String, Arc<tokio::sync::Mutex<Batch>>>,
}

#[derive(Debug, Default)]
struct Batch {
    /// Grants left, usable until `until`.
    left: u32,
    until: Option<Instant>,
    /// What the shared counter had left after this batch was taken.
    remaining: u32,
    /// The counter refused until then.
    refused_until: Option<Instant>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("kv", &self.kv).finish()
    }
}

/// The grants taken at once for a rate of `per_minute`: a second's worth.
pub fn batch_size(per_minute: u32) -> u32 {
    (per_minute / 60).clamp(1, MAX_BATCH)
}

impl Limiter {
    pub fn new(kv: Kv) -> Self {
        Self {
            kv,
            batches: moka::future::Cache::builder()
                .max_capacity(MAX_SUBJECTS)
                .time_to_idle(BATCH_FOR * 2)
                .build(),
        }
    }

    /// Counts one request against `key` at `rate`.
    pub async fn check(&self, key: &str, rate: Rate) -> anyhow::Result<RateDecision> {
        let per_minute = rate.requests;
        let want = batch_size(per_minute);
        if want == 1 {
            return self.kv.rate_limit(key, rate).await;
        }
        let batch = self
            .batches
            .get_with_by_ref(key, async { Arc::default() })
            .await;
        // One request per subject refills at a time; the others wait for
        // its answer and take from the new batch.
        let mut batch = batch.lock().await;
        let now = Instant::now();
        if let Some(until) = batch.refused_until {
            if now < until {
                return Ok(RateDecision {
                    allowed: false,
                    granted: 0,
                    retry_after: until - now,
                    remaining: 0,
                });
            }
            batch.refused_until = None;
        }
        if batch.left == 0 || batch.until.is_none_or(|until| now >= until) {
            let taken = self.kv.rate_limit_batch(key, rate, want).await?;
            if !taken.allowed {
                batch.left = 0;
                batch.refused_until = Some(now + taken.retry_after);
                return Ok(taken);
            }
            *batch = Batch {
                left: taken.granted,
                until: Some(now + BATCH_FOR),
                remaining: taken.remaining,
                refused_until: None,
            };
        }
        batch.left -= 1;
        Ok(RateDecision {
            allowed: true,
            granted: 1,
            retry_after: Duration::ZERO,
            remaining: batch.remaining + batch.left,
        })
    }
}

/// Whole seconds, rounded up: a client told to wait 0 s when 0.4 s remain
/// would be refused again.
pub fn seconds(duration: Duration) -> u64 {
    duration
        .as_millis()
        .div_ceil(1000)
        .try_into()
        .unwrap_or(u64::MAX)
}

/// The layer of a group of routes: counts the request against its class and
/// subject. The application's state comes as a request extension, which the
/// edge adds (`app::with_edge`).
pub async fn enforce(
    State(routes): State<Routes>,
    Extension(state): Extension<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(class) = routes.class(request.method()) else {
        return next.run(request).await;
    };
    let per_minute = class.per_minute(&state.settings.rate_limits).max(1);
    let rate = Rate::per_minute(per_minute);
    let user = match class {
        Class::Auth => None,
        _ => super::bearer(request.headers())
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
        .rate_limiter
        .check(&format!("rl:{}:{subject}", class.name()), rate)
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

/// Counts a request against one of the handlers' own limits, named `class`
/// (`login_account`, `erase_account`, …, the `class` of
/// `rate_limited_total`), for `subject`; 429 with `Retry-After` when over it.
/// When the store fails it lets the request through (logged): these limits
/// guard actions whose own cost (a password hash) still bounds guessing.
pub async fn limit_action(kv: &Kv, class: &str, subject: &str, rate: Rate) -> Result<(), ApiError> {
    match kv.rate_limit(&format!("rl:{class}:{subject}"), rate).await {
        Ok(decision) if decision.allowed => Ok(()),
        Ok(decision) => {
            metrics::counter!("rate_limited_total", "class" => class.to_owned()).increment(1);
            Err(ApiError::rate_limited(seconds(decision.retry_after)))
        }
        Err(err) => {
            tracing::warn!(error = %err, "rate limiter unavailable");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_admit_the_burst_and_nothing_past_it() {
        let kv = Kv::memory("t:".into());
        // Two instances on one store; 600 a minute is a batch of 10.
        let (one, two) = (Limiter::new(kv.clone()), Limiter::new(kv));
        let rate = Rate::per_minute(600);
        assert_eq!(batch_size(600), 10);
        let mut admitted = 0;
        for i in 0..700 {
            let limiter = if i % 3 == 0 { &one } else { &two };
            if limiter.check("rl:read:ip:1", rate).await.unwrap().allowed {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 600);
        let refused = one.check("rl:read:ip:1", rate).await.unwrap();
        assert!(!refused.allowed && refused.retry_after > Duration::ZERO);
        // Other subjects have their own.
        assert!(one.check("rl:read:ip:2", rate).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn a_slow_rate_asks_the_counter_every_time() {
        let kv = Kv::memory("t:".into());
        let (one, two) = (Limiter::new(kv.clone()), Limiter::new(kv));
        let rate = Rate::per_minute(3);
        assert!(one.check("k", rate).await.unwrap().allowed);
        assert!(two.check("k", rate).await.unwrap().allowed);
        let last = one.check("k", rate).await.unwrap();
        assert!(last.allowed && last.remaining == 0);
        assert!(!two.check("k", rate).await.unwrap().allowed);
    }

    #[test]
    fn each_group_of_routes_counts_against_its_class() {
        let cases = [
            (Routes::Auth, Method::POST, Some(Class::Auth)),
            (Routes::Auth, Method::GET, Some(Class::Auth)),
            (Routes::Realtime, Method::GET, Some(Class::Realtime)),
            (Routes::Api, Method::GET, Some(Class::Read)),
            (Routes::Api, Method::HEAD, Some(Class::Read)),
            (Routes::Api, Method::POST, Some(Class::Write)),
            (Routes::Api, Method::DELETE, Some(Class::Write)),
            (Routes::Api, Method::OPTIONS, None),
            (Routes::Auth, Method::OPTIONS, None),
        ];
        for (routes, method, class) in cases {
            assert_eq!(routes.class(&method), class, "{routes:?} {method}");
        }
    }
}
