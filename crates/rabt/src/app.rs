//! Assembly: state, router, middleware, and the serve loop with graceful
//! shutdown.
//!
//! `Application::build` does everything that can fail (connect, bind) so that a
//! start either fails with a clear error or runs; `run_until_stopped` then
//! serves until a shutdown signal, drains requests and jobs, and returns.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Extension, Router, extract::DefaultBodyLimit, http::StatusCode, middleware};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{
    catch_panic::CatchPanicLayer,
    compression::{
        CompressionLayer,
        predicate::{DefaultPredicate, Predicate as _, SizeAbove},
    },
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
};
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    admin, applications, auth, billing,
    config::Settings,
    db::Db,
    email::{self, EmailSender},
    files,
    http::{
        ApiError, middleware as mw,
        rate_limit::{self, Routes},
        request_id,
    },
    jobs::{JobRegistry, Worker},
    messaging, notifications, ops, privacy, projects, realtime, roles,
    state::AppState,
    users,
};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "rabt API",
        description = "rabt connects people with projects. Errors are \
            application/problem+json (RFC 9457) with a stable `code`.",
        license(name = "AGPL-3.0-only")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "operations", description = "Health, metrics and this description"),
        (name = "auth", description = "Sign-up, sign-in, tokens and sessions"),
        (name = "users", description = "Accounts and profiles"),
        (name = "roles", description = "Roles and permissions"),
        (name = "projects", description = "Projects, their search and status machine"),
        (name = "applications", description = "Applications to projects"),
        (name = "messaging", description = "Conversations, messages and the realtime WebSocket"),
        (name = "notifications", description = "The notification inbox and preferences"),
        (name = "files", description = "Uploads through signed URLs, and downloads"),
        (name = "billing", description = "Plans, Stripe subscriptions, invoices and Stripe's webhooks"),
        (name = "email", description = "The links in sent mail (open pixel, click tracking, one-click unsubscribe) and bounce events"),
        (name = "privacy", description = "The privacy policy, its publishing, and the caller's consents"),
        (name = "admin", description = "Analytics, email statistics and suppressions, jobs, the audit log"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` scheme that authenticated routes name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The router and the OpenAPI document, built from the same route list so they
/// cannot disagree.
pub fn router(state: AppState) -> Router {
    let (api, _) = api_router();
    with_edge(api, state)
}

fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::live))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(ops::docs))
        .routes(routes!(ops::docs_script))
        .nest(
            "/v1",
            users::routes::router()
                .merge(roles::routes::router())
                .merge(projects::routes::router())
                .merge(applications::routes::router())
                .merge(messaging::routes::router())
                .merge(notifications::routes::router())
                .merge(files::routes::router())
                .merge(billing::routes::router())
                .merge(email::routes::router())
                .merge(admin::routes::router())
                .merge(privacy::routes::router())
                .fallback(|| async { ApiError::not_found() })
                // After the rate limit (added below, so it runs first): a
                // refused write costs its quota like any other.
                .layer(middleware::from_fn(privacy::gate::enforce))
                .layer(middleware::from_fn_with_state(
                    Routes::Api,
                    rate_limit::enforce,
                ))
                .merge(realtime::router().layer(middleware::from_fn_with_state(
                    Routes::Realtime,
                    rate_limit::enforce,
                )))
                .merge(
                    auth::routes::router()
                        // Credentials and tokens are small: a tighter body limit.
                        .layer(DefaultBodyLimit::max(AUTH_BODY_LIMIT))
                        .layer(middleware::from_fn_with_state(
                            Routes::Auth,
                            rate_limit::enforce,
                        )),
                ),
        )
        .split_for_parts();
    crate::http::openapi::CommonProblems::apply(&mut openapi);
    (router, openapi)
}

/// The body limit of `/v1/auth/*` (the rest have `RABT_BODY_LIMIT_BYTES`).
pub const AUTH_BODY_LIMIT: usize = 64 * 1024;

/// The OpenAPI document as `rabt openapi` prints it and `/openapi.json` serves it.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_router().1
}

/// The smallest response body worth compressing, in bytes.
const COMPRESS_FROM: u64 = 1024;

/// Wraps routes in the edge every route shares: request ids and logging, problem
/// bodies for bare errors and panics, security headers, CORS, compression,
/// timeout, body limit, and per-route metrics.
pub fn with_edge(api: Router<AppState>, state: AppState) -> Router {
    let settings = &state.settings;
    let hsts = settings.public_url.scheme() == "https" || settings.tls.is_some();
    let router = api
        .fallback(|| async { ApiError::not_found() })
        // Per route (and for the fallback), so the matched template is known.
        .layer(middleware::from_fn(mw::track_metrics))
        // What the layers mounted with each group of routes read.
        .layer(Extension(state.query_cache.clone()))
        .layer(Extension(state.clone()))
        .with_state(state.clone());
    let mut router = router
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        .layer(mw::cors(&settings.cors_origins));
    for (name, value) in mw::security_headers(hsts) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    router
        // gzip, br or zstd for clients that ask (Accept-Encoding), for
        // bodies of 1 KiB and more: below that the framing costs more than
        // it saves (docs/PERFORMANCE.md has the sizes).
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(COMPRESS_FROM))),
        )
        .layer(CatchPanicLayer::custom(mw::panic_to_problem))
        .layer(middleware::from_fn(mw::problem_for_bare_errors))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .layer(middleware::from_fn(request_id::middleware))
        .layer(middleware::from_fn_with_state(
            state.draining.clone(),
            crate::server::close_when_draining,
        ))
}

/// A built, bound application, ready to serve.
pub struct Application {
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    state: AppState,
    worker: Option<Worker>,
    /// RABT_METRICS_BIND's listener, when set.
    metrics: Option<TcpListener>,
}

/// How `serve` runs.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub workers: bool,
    pub migrate: bool,
}

impl Application {
    pub async fn build(settings: Settings, options: ServeOptions) -> anyhow::Result<Self> {
        let jobs = job_registry(&settings)?;
        Self::build_with(settings, options, jobs).await
    }

    /// Builds with a given set of job handlers.
    pub async fn build_with(
        settings: Settings,
        options: ServeOptions,
        jobs: JobRegistry,
    ) -> anyhow::Result<Self> {
        let settings = Arc::new(settings);
        if options.migrate {
            crate::db::migrate(&settings).await?;
        }
        let state = build_state(settings.clone()).await?;
        if settings.env == crate::config::Environment::Production {
            refuse_demo_accounts(&state.db).await?;
        }
        if let Some(email) = &settings.bootstrap_admin_email {
            bootstrap_admin(&state.db, email).await;
        }
        let tls = settings
            .tls
            .as_ref()
            .map(|files| crate::server::tls_acceptor(&files.cert, &files.key))
            .transpose()?;
        let listener = TcpListener::bind(settings.bind)
            .await
            .map_err(|e| anyhow::anyhow!("RABT_BIND: cannot listen on {}: {e}", settings.bind))?;
        let metrics = match settings.metrics_bind {
            Some(address) => Some(crate::ops::bind_metrics(address).await?),
            None => None,
        };
        let worker = options
            .workers
            .then(|| Worker::new(state.db.clone(), jobs, settings.jobs.clone()));
        Ok(Self {
            listener,
            tls,
            router: router(state.clone()),
            state,
            worker,
            metrics,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.settings.bind)
    }

    /// Where `/metrics` is served apart (RABT_METRICS_BIND), if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` fires, then stops taking connections, lets open
    /// requests and running jobs finish (within `RABT_SHUTDOWN_TIMEOUT_SECS`),
    /// and returns.
    /// Serves until `shutdown` fires, then drains: readiness fails at once,
    /// requests are still served for `RABT_SHUTDOWN_DRAIN_SECS` (HTTP/1.1
    /// answers say `Connection: close`), then the listener closes, idle
    /// connections are closed, and open requests and running jobs get
    /// `RABT_SHUTDOWN_TIMEOUT_SECS` to finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let shutdown = {
            let stop = CancellationToken::new();
            let (draining, drain) = (
                self.state.draining.clone(),
                self.state.settings.shutdown_drain,
            );
            let (signal, stop_after) = (shutdown, stop.clone());
            tokio::spawn(async move {
                signal.cancelled().await;
                draining.start();
                if !drain.is_zero() {
                    tracing::info!(drain_secs = drain.as_secs(), "draining: readiness is off");
                    tokio::time::sleep(drain).await;
                }
                stop_after.cancel();
            });
            stop
        };
        let grace = self.state.settings.shutdown_timeout;
        if let Some(listener) = self.metrics {
            tokio::spawn(crate::ops::serve_metrics(
                listener,
                self.state.clone(),
                shutdown.clone(),
            ));
        }
        let worker = self.worker.map(|worker| {
            let shutdown = shutdown.clone();
            tokio::spawn(worker.run_until_stopped(shutdown, grace))
        });
        let grants = tokio::spawn(crate::auth::sessions::follow_grant_changes(
            self.state.db.clone(),
            self.state.kv.clone(),
            self.state.session_checks.clone(),
            {
                let hub = self.state.realtime.clone();
                move |user| hub.check_users(&[user])
            },
            shutdown.clone(),
        ));
        let session_ends = tokio::spawn(crate::auth::sessions::follow_session_ends(
            self.state.db.clone(),
            self.state.session_checks.clone(),
            {
                let hub = self.state.realtime.clone();
                move |session| match session {
                    Some(session) => hub.end_sessions(&[session]),
                    None => hub.check_all(),
                }
            },
            shutdown.clone(),
        ));
        let realtime = tokio::spawn(crate::realtime::hub::follow(
            self.state.db.clone(),
            self.state.realtime.clone(),
            shutdown.clone(),
        ));
        // Sockets live apart from the connections `serve` drains: at shutdown
        // they are closed with "going away", so clients reconnect elsewhere.
        let sockets = {
            let (hub, shutdown) = (self.state.realtime.clone(), shutdown.clone());
            tokio::spawn(async move {
                shutdown.cancelled().await;
                hub.close_all();
            })
        };
        let searches = tokio::spawn(crate::query_cache::follow_changes(
            self.state.db.clone(),
            self.state.query_cache.clone(),
            shutdown.clone(),
        ));
        let settings = &self.state.settings;
        let limits = crate::server::Limits {
            max_connections: settings.max_connections,
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
        };
        crate::server::serve(
            self.listener,
            self.router,
            self.tls,
            limits,
            shutdown,
            grace + Duration::from_secs(1),
        )
        .await;
        if let Some(worker) = worker {
            worker.await?;
        }
        grants.abort();
        session_ends.abort();
        realtime.abort();
        sockets.abort();
        searches.abort();
        self.state.db.close().await;
        Ok(())
    }
}

/// Makes `RABT_BOOTSTRAP_ADMIN_EMAIL` an admin once its account is verified. A
/// start never fails over it: the account may not exist or be verified yet
/// (then the next start after that does it).
async fn bootstrap_admin(db: &Db, email: &str) {
    match roles::bootstrap_admin(db, email).await {
        Ok(true) => tracing::info!("RABT_BOOTSTRAP_ADMIN_EMAIL made admin"),
        Ok(false) => {}
        Err(err) => tracing::warn!(error = %err, "RABT_BOOTSTRAP_ADMIN_EMAIL not applied"),
    }
}

/// A production start refuses to run while demo accounts (with their
/// published password) exist. A database that cannot be asked is logged and
/// the start goes on: the check must not turn an outage into a crash loop.
async fn refuse_demo_accounts(db: &Db) -> anyhow::Result<()> {
    let check = tokio::time::timeout(Duration::from_secs(5), auth::demo::accounts_exist(db));
    match check.await {
        Ok(Ok(false)) => Ok(()),
        Ok(Ok(true)) => anyhow::bail!(
            "demo accounts (@{}) exist in this database; a production start refuses to run \
             until they are deleted",
            auth::demo::DOMAIN
        ),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "could not check for demo accounts");
            Ok(())
        }
        Err(_) => {
            tracing::warn!("could not check for demo accounts in 5 s");
            Ok(())
        }
    }
}

/// The state of a server built from `settings`, with this build's OpenAPI
/// document.
pub async fn build_state(settings: Arc<Settings>) -> anyhow::Result<AppState> {
    crate::state::build(settings, openapi_document()).await
}

/// Every job kind this server knows how to run.
pub fn job_registry(settings: &Settings) -> anyhow::Result<JobRegistry> {
    let mut registry = JobRegistry::new();
    let host = settings
        .public_url
        .host_str()
        .unwrap_or("rabt.local")
        .to_owned();
    EmailSender::from_settings(settings)?.register(&mut registry);
    auth::jobs::register(&mut registry, settings.frontend_url.clone(), host.clone());
    email::news::register(&mut registry, settings.frontend_url.clone(), host.clone());
    notifications::register(
        &mut registry,
        settings.frontend_url.clone(),
        host.clone(),
        settings.jobs.notification_retention_days,
    );
    messaging::register(&mut registry, settings.frontend_url.clone(), host.clone());
    realtime::register(&mut registry, settings.realtime.retention);
    crate::http::idempotency::register(&mut registry);
    if let Some(retention) = settings.jobs.audit_retention {
        registry.sweep("audit log", move |conn| {
            Box::pin(crate::audit::prune(conn, retention))
        });
    }
    let storage = files::storage::Storage::from_settings(settings)?;
    files::register(
        &mut registry,
        storage.clone(),
        settings.files.detached_grace,
    );
    privacy::register(
        &mut registry,
        storage,
        settings
            .billing
            .stripe
            .as_ref()
            .map(billing::stripe::Stripe::new)
            .transpose()?,
        host.clone(),
    );
    billing::register(
        &mut registry,
        &settings.billing,
        settings.frontend_url.clone(),
        host,
    )?;
    Ok(registry)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received; draining");
}
