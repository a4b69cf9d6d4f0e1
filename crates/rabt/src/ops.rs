//! Operations endpoints: liveness, readiness, metrics, and the API description.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    db::Actor,
    http::{ApiError, error::ProblemBody},
    jobs,
    state::AppState,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok`
    status: &'static str,
    /// `ok` or `down`
    database: &'static str,
    /// `ok`, `down`, or `memory` when no Redis is configured.
    redis: &'static str,
}

/// The process is running.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process runs", body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The instance can serve: Postgres answers, and Redis when configured.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is down (`unavailable`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    if state.draining.is_draining() {
        return Err(ApiError::unavailable("Not ready: shutting down."));
    }
    let (database, redis) = tokio::join!(state.db.ping(), state.kv.ping());
    let redis_state = match (state.kv.backend_name(), redis) {
        ("memory", _) => "memory",
        (_, true) => "ok",
        (_, false) => "down",
    };
    if !database || redis_state == "down" {
        let mut down = Vec::new();
        if !database {
            down.push("postgres");
        }
        if redis_state == "down" {
            down.push("redis");
        }
        return Err(ApiError::unavailable(format!(
            "Not ready: {} down.",
            down.join(" and ")
        )));
    }
    Ok(Json(Readiness {
        status: "ok",
        database: "ok",
        redis: redis_state,
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String,
        content_type = "text/plain; version=0.0.4")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if state.settings.metrics_bind.is_some() {
        // Served on RABT_METRICS_BIND only.
        return crate::http::ApiError::not_found().into_response();
    }
    render(&state).await
}

/// Serves `GET /metrics` alone on `listener` (RABT_METRICS_BIND) until
/// `shutdown`.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let router = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(state): State<AppState>| async move { render(&state).await }),
        )
        .with_state(state);
    if let Err(err) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::error!(error = %err, "the metrics listener failed");
    }
}

/// Binds RABT_METRICS_BIND, naming it when that fails.
pub async fn bind_metrics(
    address: std::net::SocketAddr,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("RABT_METRICS_BIND: cannot listen on {address}: {e}"))
}

async fn render(state: &AppState) -> Response {
    state.db.record_metrics();
    record_job_depth(state).await;
    let body = state
        .metrics
        .map(metrics_exporter_prometheus::PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

async fn record_job_depth(state: &AppState) {
    let depth = async {
        let mut tx = state.db.begin(&Actor::Service).await?;
        let depth = jobs::queue::depth(&mut *tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(depth)
    };
    match depth.await {
        Ok(rows) => {
            for (status, count) in rows {
                metrics::gauge!("jobs_queue_depth", "status" => status).set(count as f64);
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not read job queue depth"),
    }
}

/// The OpenAPI 3.1 description of this server.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.openapi_json.as_ref().clone(),
    )
        .into_response()
}

/// A browsable rendering of `/openapi.json`.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML page", body = String, content_type = "text/html")))]
pub async fn docs() -> Response {
    // The renderer is served by rabt itself (assets/docs): the page reaches
    // no other origin, and nothing else may run or frame it. RapiDoc styles
    // its elements inline, hence 'unsafe-inline' for styles only.
    let csp = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
               font-src 'self'; img-src 'self' data:; connect-src 'self'; \
               frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
    (
        StatusCode::OK,
        [(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        )],
        Html(DOCS_PAGE),
    )
        .into_response()
}

/// The API reference's renderer, RapiDoc 9.3.8 (MIT), compiled into the
/// binary from `assets/docs` (see its README for the source and licences).
const DOCS_SCRIPT: &[u8] = include_bytes!("../assets/docs/rapidoc-9.3.8.min.js");

/// The renderer `/docs` loads; its name carries its version, so it may be
/// cached for good.
#[utoipa::path(get, path = "/docs/rapidoc-9.3.8.min.js", tag = "operations",
    responses((status = 200, description = "JavaScript", body = String,
        content_type = "text/javascript")))]
pub async fn docs_script() -> Response {
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        DOCS_SCRIPT,
    )
        .into_response()
}

// System fonts: RapiDoc's own default (Open Sans) would be fetched from
// Google, which the policy refuses anyway.
const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>rabt API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <script src="/docs/rapidoc-9.3.8.min.js" defer></script>
</head>
<body>
  <rapi-doc spec-url="/openapi.json" render-style="read" show-header="false"
    theme="light" primary-color="#18181b" allow-server-selection="false"
    regular-font="system-ui, -apple-system, 'Segoe UI', sans-serif"
    mono-font="ui-monospace, 'SFMono-Regular', Menlo, monospace"></rapi-doc>
</body>
</html>
"##;
