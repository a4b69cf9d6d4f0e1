//! What every handler can reach, built once at start.
//!
//! Handlers and extractors name only the parts they use (`State<Db>`, an
//! extractor bound on `Kv: FromRef<S>`), through the `FromRef` impls derived
//! here, so a capability does not depend on the whole of the application.

use std::{sync::Arc, time::Duration};

use axum::extract::FromRef;

use crate::{
    auth::{sessions::HeldChecks, tokens::AccessTokens},
    config::Settings,
    crypto::Keyring,
    db::Db,
    files::storage::Storage,
    http::{pagination::Cursors, rate_limit::Limiter},
    kv::Kv,
    query_cache::QueryCache,
    realtime::Hub,
    telemetry,
};

/// What every handler can reach.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: Db,
    pub kv: Kv,
    pub settings: Arc<Settings>,
    #[from_ref(skip)]
    pub metrics: Option<&'static metrics_exporter_prometheus::PrometheusHandle>,
    #[from_ref(skip)]
    pub openapi_json: Arc<String>,
    pub tokens: AccessTokens,
    /// For calls to identity providers.
    pub http: reqwest::Client,
    pub cursors: Cursors,
    /// Seals and opens encrypted columns.
    pub keyring: Arc<Keyring>,
    /// Answers to anonymous searches.
    pub query_cache: QueryCache,
    /// Counts requests against their rate limits.
    pub rate_limiter: Limiter,
    /// Session checks this instance answered in the last second.
    pub session_checks: HeldChecks,
    /// Where file objects are, and how their URLs are signed.
    pub storage: Storage,
    /// This instance's realtime sockets.
    pub realtime: Hub,
    /// Set when a shutdown starts: readiness fails while requests are served.
    pub draining: crate::server::Draining,
    /// Stripe, and the plans' prices it sells.
    pub billing: crate::billing::Billing,
    /// The privacy policy in force, as the policy gate knows it.
    pub policies: crate::privacy::gate::Policies,
}

/// Connects what the state holds.
pub async fn build(
    settings: Arc<Settings>,
    openapi: utoipa::openapi::OpenApi,
) -> anyhow::Result<AppState> {
    let db = Db::connect_lazy(&settings)?;
    let tokens = AccessTokens::from_settings(&settings);
    let cursors = Cursors::from_settings(&settings);
    let keyring = Arc::new(Keyring::from_settings(&settings));
    let kv = Kv::connect(&settings).await?;
    let openapi_json = openapi
        .to_json()
        .map_err(|e| anyhow::anyhow!("could not render the OpenAPI document: {e}"))?;
    let query_cache = QueryCache::new(kv.clone(), settings.search_cache);
    let storage = Storage::from_settings(&settings)?;
    Ok(AppState {
        billing: crate::billing::Billing::from_settings(&settings.billing)?,
        policies: crate::privacy::gate::Policies::default(),
        storage,
        realtime: Hub::default(),
        draining: crate::server::Draining::default(),
        db,
        rate_limiter: Limiter::new(kv.clone()),
        session_checks: HeldChecks::default(),
        kv,
        query_cache,
        settings,
        metrics: telemetry::metrics_handle(),
        openapi_json: Arc::new(openapi_json),
        tokens,
        cursors,
        keyring,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| anyhow::anyhow!("HTTP client: {e}"))?,
    })
}
