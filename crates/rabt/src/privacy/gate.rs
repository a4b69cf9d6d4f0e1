//! The policy gate: while a newer privacy policy is unaccepted, a signed-in
//! user's state-changing requests answer 403 `policy_acceptance_required`,
//! except those that accept it, export or erase the account (and auth,
//! mounted outside this layer). Reads pass. One layer, so no route can
//! forget it.

use std::time::Duration;

use axum::{
    Extension,
    extract::Request,
    middleware::Next,
    response::{IntoResponse as _, Response},
};

use crate::{
    db::Actor,
    http::{ApiError, ErrorCode, bearer},
    state::AppState,
};

/// How long an instance trusts the version in force it read; publishing
/// on this instance forgets it at once.
const CURRENT_TTL: Duration = Duration::from_secs(10);

/// The version in force, cached per instance.
#[derive(Clone)]
pub struct Policies {
    current: moka::future::Cache<(), Option<String>>,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            current: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(CURRENT_TTL)
                .build(),
        }
    }
}

impl Policies {
    pub async fn current_version(&self, state: &AppState) -> Result<Option<String>, ApiError> {
        if let Some(known) = self.current.get(&()).await {
            return Ok(known);
        }
        let mut tx = state.db.read(&Actor::Service).await?;
        let version = super::store::current_version(&mut tx).await?;
        drop(tx);
        self.current.insert((), version.clone()).await;
        Ok(version)
    }

    pub async fn forget(&self) {
        self.current.invalidate(&()).await;
    }
}

/// Paths a user may change while a policy waits for them: accepting it,
/// exporting or erasing their data, and publishing policies (a correction
/// must not wait for its publisher's consent). Mounted under `/v1`, the
/// layer sees paths without it.
fn exempt(method: &axum::http::Method, path: &str) -> bool {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    matches!(
        path,
        "/me/consents" | "/me/export" | "/admin/legal/privacy-policy"
    ) || (method == axum::http::Method::DELETE && path == "/me")
}

pub async fn enforce(
    Extension(state): Extension<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method().is_safe() || exempt(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    // Anonymous writes (webhooks, one-click unsubscribes) are the handlers'
    // to judge; a bad token is refused by the handler's extractor.
    let Some(user) = bearer(request.headers())
        .and_then(|token| state.tokens.verify(token).ok())
        .map(|claims| claims.sub)
    else {
        return next.run(request).await;
    };
    let version = match state.policies.current_version(&state).await {
        Ok(Some(version)) => version,
        Ok(None) => return next.run(request).await,
        Err(err) => return err.into_response(),
    };
    let accepted = async {
        let mut tx = state.db.read(&Actor::Service).await?;
        Ok::<bool, ApiError>(super::store::has_accepted(&mut tx, user, &version).await?)
    };
    match accepted.await {
        Ok(true) => next.run(request).await,
        Ok(false) => ApiError::new(ErrorCode::PolicyAcceptanceRequired)
            .with_detail(format!(
                "Accept privacy policy version {version} (POST /v1/me/consents) to make changes."
            ))
            .into_response(),
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    #[test]
    fn only_consent_export_erasure_and_publishing_pass_the_gate() {
        for (method, path) in [
            (Method::POST, "/me/consents"),
            (Method::POST, "/v1/me/consents"),
            (Method::POST, "/me/export"),
            (Method::DELETE, "/me"),
            (Method::POST, "/admin/legal/privacy-policy"),
        ] {
            assert!(super::exempt(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::PATCH, "/me"),
            (Method::POST, "/projects"),
            (Method::DELETE, "/me/consents/x"),
            (Method::POST, "/me/consentsx"),
        ] {
            assert!(!super::exempt(&method, path), "{method} {path}");
        }
    }
}
