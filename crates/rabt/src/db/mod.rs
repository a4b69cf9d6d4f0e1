//! Postgres: the pool, migrations, and the per-request row-level-security
//! transaction.
//!
//! The server logs in as (or switches to) `rabt_app`, which owns no table rights.
//! Every unit of work runs in a transaction that first switches to the role of
//! its [`Actor`] and publishes the actor's claims to the request-context SQL
//! functions (`auth.uid()`, `auth.has_permission()`), in one round trip. The
//! policies in `migrations/` then decide which rows that actor may see or change,
//! so a bug in a handler cannot leak another user's rows.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use sqlx::{
    Executor as _, PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Settings;

/// The embedded, forward-only migrations of `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Who a transaction acts for; decides the database role and the claims the
/// policies see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A request without a signed-in user.
    Anonymous,
    /// A signed-in user and the permissions their roles grant.
    User { id: Uuid, permissions: Vec<String> },
    /// Background workers and verified webhooks: the explicit `rabt_service`
    /// policies apply.
    Service,
}

impl Actor {
    fn role(&self) -> &'static str {
        match self {
            Self::Anonymous => "rabt_anonymous",
            Self::User { .. } => "rabt_authenticated",
            Self::Service => "rabt_service",
        }
    }
}

/// The connection pool, behind the only door to the data: [`Db::begin`].
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
}

impl Db {
    /// Connects lazily: the pool opens connections on first use, so a server can
    /// start (and report itself unready) while Postgres is still coming up.
    pub fn connect_lazy(settings: &Settings) -> anyhow::Result<Self> {
        let options: PgConnectOptions = settings
            .database_url()
            .parse()
            .context("DATABASE_URL is not a valid Postgres URL")?;
        let options = options.application_name("rabt").options([
            ("statement_timeout", "15s"),
            ("idle_in_transaction_session_timeout", "30s"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.database_max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(300))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Least privilege even when the URL names a more powerful
                    // login (development): from here on the server is `rabt_app`.
                    conn.execute("set role rabt_app").await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction acting for `actor`: role and claims are set with
    /// `set_config(…, true)`, so they end with the transaction and can never leak
    /// into the next use of the pooled connection.
    pub async fn begin(
        &self,
        actor: &Actor,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let (user_id, permissions) = match actor {
            Actor::User { id, permissions } => (id.to_string(), permissions.join(",")),
            Actor::Anonymous | Actor::Service => (String::new(), String::new()),
        };
        sqlx::query!(
            "select set_config('role', $1, true) as role, \
                    set_config('request.user_id', $2, true) as user_id, \
                    set_config('request.permissions', $3, true) as permissions",
            actor.role(),
            user_id,
            permissions,
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(tx)
    }

    /// `select 1` within a short deadline, for readiness.
    pub async fn ping(&self) -> bool {
        let check = sqlx::query!("select 1 as ready").fetch_one(&self.pool);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), check).await,
            Ok(Ok(_))
        )
    }

    /// Records pool gauges for `/metrics`.
    pub fn record_metrics(&self) {
        metrics::gauge!("db_pool_connections").set(f64::from(self.pool.size()));
        metrics::gauge!("db_pool_idle_connections").set(self.pool.num_idle() as f64);
        metrics::gauge!("db_pool_max_connections")
            .set(f64::from(self.pool.options().get_max_connections()));
    }
}

/// Hands each payload of `NOTIFY channel` to `on_notify` until `shutdown`,
/// listening again 5 s after a lost connection (`what` names the listener in
/// the log). Notifications sent while it was away are lost: callers keep a
/// slower path (polling, expiry) that does not depend on them.
pub async fn follow_channel<F, Fut>(
    db: &Db,
    channel: &str,
    what: &str,
    shutdown: &CancellationToken,
    on_notify: F,
) where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    follow_channel_from(db, channel, what, shutdown, || async {}, on_notify).await;
}

/// [`follow_channel`], calling `on_listening` each time it listens (again):
/// what was missed while it was away can be made up for there.
pub async fn follow_channel_from<L, LFut, F, Fut>(
    db: &Db,
    channel: &str,
    what: &str,
    shutdown: &CancellationToken,
    mut on_listening: L,
    mut on_notify: F,
) where
    L: FnMut() -> LFut,
    LFut: std::future::Future<Output = ()>,
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while !shutdown.is_cancelled() {
        let follow = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(db.pool()).await?;
            listener.listen(channel).await?;
            on_listening().await;
            // `try_recv` answers `None` when the connection was lost. `recv`
            // would reconnect by itself and hide the gap, in which
            // notifications were lost: a new listener calls `on_listening`.
            while let Some(notification) = listener.try_recv().await? {
                on_notify(notification.payload().to_owned()).await;
            }
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            result = follow => match result {
                Ok(()) => tracing::warn!("{what} lost its Postgres connection; listening again soon"),
                Err(err) => tracing::warn!(error = %err, "{what} lost its Postgres connection; listening again soon"),
            },
            () = shutdown.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Applies pending migrations over the migration connection (the schema
/// owner's). Safe to run from several instances at once: sqlx holds an
/// advisory lock while it migrates.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let options: PgConnectOptions = settings
        .migration_database_url
        .expose_secret()
        .parse()
        .context("the migration database URL is not a valid Postgres URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("could not connect to Postgres to migrate")?;
    MIGRATOR
        .run(&pool)
        .await
        .context("applying migrations failed")?;
    pool.close().await;
    Ok(())
}
