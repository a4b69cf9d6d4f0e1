//! Postgres: the pools, migrations, and the per-request row-level-security
//! transaction.
//!
//! The server logs in as (or switches to) `rabt_app`, which owns no table rights.
//! Every unit of work runs in a transaction that first switches to the role of
//! its [`Actor`] and publishes the actor's claims to the request-context SQL
//! functions (`auth.uid()`, `auth.has_permission()`), in the round trip of its
//! `BEGIN`. Reads take a read-only transaction ([`Db::read`]) whose end the
//! request does not wait for; anonymous reads take a connection that already
//! runs as `rabt_anonymous`, and need no transaction at all. The policies in
//! `migrations/` then decide which rows that actor may see or change,
//! so a bug in a handler cannot leak another user's rows.

use std::time::Duration;

use anyhow::Context as _;
use secrecy::ExposeSecret as _;
use sqlx::{
    Connection as _, Executor as _, PgConnection, PgPool, Postgres, Transaction,
    pool::PoolConnection,
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

/// Whether a transaction may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// How many connections [`Db::begin`] tries before it gives up on a broken one.
const BEGIN_ATTEMPTS: u32 = 3;

/// A pooled connection idle for longer than this is checked before it is
/// handed out; one used more recently passed the check the pool makes when a
/// connection comes back, and a broken one is replaced by [`Db::begin`].
const CHECK_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// The user id and permissions the request-context functions read.
fn claims(actor: &Actor) -> (String, String) {
    match actor {
        Actor::User { id, permissions } => (id.to_string(), permissions.join(",")),
        Actor::Anonymous | Actor::Service => (String::new(), String::new()),
    }
}

/// The statement that opens a transaction for `actor`: `BEGIN` and the
/// claims in one simple-protocol batch, so one round trip. The values are
/// literals, so each is checked against the characters its kind can hold (a
/// role of ours, a UUID, permission names of the catalogue): `None` when one
/// holds anything else, and no quoting rule is ever relied on.
fn opening(actor: &Actor, access: Access) -> Option<String> {
    let (user_id, permissions) = claims(actor);
    let plain = |value: &str| {
        value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b',' | b'-'))
    };
    if !(plain(actor.role()) && plain(&user_id) && plain(&permissions)) {
        return None;
    }
    let begin = match access {
        Access::ReadWrite => "begin",
        Access::ReadOnly => "begin read only",
    };
    Some(format!(
        "{begin}; select set_config('role', '{role}', true), \
         set_config('request.user_id', '{user_id}', true), \
         set_config('request.permissions', '{permissions}', true)",
        role = actor.role(),
    ))
}

/// Whether `err` says the connection itself is gone (rather than the statement
/// being refused).
fn is_broken_connection(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
}

/// A read-only transaction, or for an anonymous caller a connection of the
/// anonymous pool ([`Db::read`]): use it as the connection it derefs to;
/// dropping it ends it.
#[derive(Debug)]
pub struct Reading(Read);

#[derive(Debug)]
enum Read {
    Transaction(Transaction<'static, Postgres>),
    Session(PoolConnection<Postgres>),
}

impl std::ops::Deref for Reading {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match &self.0 {
            Read::Transaction(tx) => tx,
            Read::Session(conn) => conn,
        }
    }
}

impl std::ops::DerefMut for Reading {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match &mut self.0 {
            Read::Transaction(tx) => tx,
            Read::Session(conn) => conn,
        }
    }
}

/// The options both pools share: a size, lazy connections, and the checks of
/// [`CHECK_WHEN_IDLE_FOR`].
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
        // Checking every connection on its way out costs a round trip per
        // request; see CHECK_WHEN_IDLE_FOR.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// The connection pools, behind the only doors to the data: [`Db::begin`]
/// and [`Db::read`].
#[derive(Clone, Debug)]
pub struct Db {
    pool: PgPool,
    /// Connections whose session runs as `rabt_anonymous`, with empty claims,
    /// for anonymous reads: no transaction to open or end, and the policies
    /// apply as they do to any anonymous request. `None` for pools too small
    /// to share (under four connections).
    anonymous: Option<PgPool>,
}

/// The smallest `RABT_DATABASE_MAX_CONNECTIONS` that keeps a quarter of its
/// connections for anonymous reads.
const SHARED_FROM: u32 = 4;

impl Db {
    /// Connects lazily: the pools open connections on first use, so a server
    /// can start (and report itself unready) while Postgres is still coming
    /// up. `RABT_DATABASE_MAX_CONNECTIONS` counts both pools.
    pub fn connect_lazy(settings: &Settings) -> anyhow::Result<Self> {
        let options: PgConnectOptions = settings
            .database_url()
            .parse()
            .context("DATABASE_URL is not a valid Postgres URL")?;
        let options = options.application_name("rabt").options([
            ("statement_timeout", "15s"),
            ("idle_in_transaction_session_timeout", "30s"),
        ]);
        let max = settings.database_max_connections;
        let anonymous = (max >= SHARED_FROM).then_some(max / 4);
        let pool = pool_options(max - anonymous.unwrap_or(0))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Least privilege even when the URL names a more powerful
                    // login (development): from here on the server is `rabt_app`.
                    conn.execute("set role rabt_app").await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options.clone());
        let anonymous = anonymous.map(|size| {
            pool_options(size)
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // For the whole session; `rabt_app` is a member of
                        // `rabt_anonymous` and of nothing it could reach from
                        // here without a `set role` of ours.
                        conn.execute("set role rabt_anonymous").await?;
                        conn.execute(
                            "select set_config('request.user_id', '', false), \
                                    set_config('request.permissions', '', false)",
                        )
                        .await?;
                        Ok(())
                    })
                })
                .connect_lazy_with(options)
        });
        Ok(Self { pool, anonymous })
    }

    /// Closes both pools, waiting for their connections to come back.
    pub async fn close(&self) {
        if let Some(anonymous) = &self.anonymous {
            anonymous.close().await;
        }
        self.pool.close().await;
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Opens a transaction acting for `actor`: role and claims are set with
    /// `set_config(…, true)`, so they end with the transaction and can never leak
    /// into the next use of the pooled connection. `BEGIN` and the claims travel
    /// together, in one round trip ([`opening`]).
    pub async fn begin(
        &self,
        actor: &Actor,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.open(actor, Access::ReadWrite).await
    }

    /// Opens a read-only transaction acting for `actor`, for requests that
    /// only read: Postgres refuses any write in it. It ends when the
    /// [`Reading`] is dropped, with a `ROLLBACK` that the pool sends after the
    /// response, together with the check it makes of every returned
    /// connection: for a transaction that wrote nothing, a rollback is a
    /// commit, and the request waits for neither.
    ///
    /// An anonymous caller's reading is a connection of the anonymous pool,
    /// outside any transaction: each statement sees its own snapshot, and a
    /// setting made with `set_config(…, true)` ends with its statement. Reads
    /// that need either take [`Db::read_transaction`].
    pub async fn read(&self, actor: &Actor) -> Result<Reading, sqlx::Error> {
        if let (Actor::Anonymous, Some(anonymous)) = (actor, &self.anonymous) {
            return anonymous.acquire().await.map(|c| Reading(Read::Session(c)));
        }
        self.read_transaction(actor).await
    }

    /// [`Db::read`], always in a read-only transaction, with transaction-scoped
    /// settings (read committed: each statement sees what was committed
    /// before it began).
    pub async fn read_transaction(&self, actor: &Actor) -> Result<Reading, sqlx::Error> {
        self.open(actor, Access::ReadOnly)
            .await
            .map(|tx| Reading(Read::Transaction(tx)))
    }

    async fn open(
        &self,
        actor: &Actor,
        access: Access,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let Some(opening) = opening(actor, access) else {
            // Claims that cannot be written as plain literals (none today)
            // take the parameterised path: two round trips instead of one.
            return self.open_with_parameters(actor, access).await;
        };
        // A connection that broke while it sat in the pool fails here, at
        // the first exchange, before anything was done: take another. Bounded,
        // so a database that is really down answers at once.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self
                .pool
                .begin_with(sqlx::AssertSqlSafe(opening.clone()))
                .await
            {
                Err(err) if attempts < BEGIN_ATTEMPTS && is_broken_connection(&err) => {
                    tracing::debug!(error = %err, "a pooled connection was broken; taking another");
                }
                result => return result,
            }
        }
    }

    async fn open_with_parameters(
        &self,
        actor: &Actor,
        access: Access,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let begin = match access {
            Access::ReadWrite => "begin",
            Access::ReadOnly => "begin read only",
        };
        let mut tx = self.pool.begin_with(begin).await?;
        let (user_id, permissions) = claims(actor);
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
        let pools = std::iter::once(&self.pool).chain(&self.anonymous);
        let (mut size, mut idle, mut max) = (0, 0, 0);
        for pool in pools {
            size += pool.size();
            idle += pool.num_idle();
            max += pool.options().get_max_connections();
        }
        metrics::gauge!("db_pool_connections").set(f64::from(size));
        metrics::gauge!("db_pool_idle_connections").set(idle as f64);
        metrics::gauge!("db_pool_max_connections").set(f64::from(max));
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
    on_listening: L,
    on_notify: F,
) where
    L: FnMut() -> LFut,
    LFut: std::future::Future<Output = ()>,
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    follow_channel_within(db, channel, what, shutdown, None, on_listening, on_notify).await;
}

/// [`follow_channel_from`] for a channel that someone notifies at least every
/// `heard_within` (a heartbeat): a listener that hears nothing for that long
/// counts as lost (a half-open connection never says so) and listens again.
pub async fn follow_channel_within<L, LFut, F, Fut>(
    db: &Db,
    channel: &str,
    what: &str,
    shutdown: &CancellationToken,
    heard_within: Option<Duration>,
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
            loop {
                let next = match heard_within {
                    Some(limit) => match tokio::time::timeout(limit, listener.try_recv()).await {
                        Ok(next) => next?,
                        Err(_) => {
                            tracing::warn!("{what} heard nothing for {limit:?}");
                            return Ok(());
                        }
                    },
                    None => listener.try_recv().await?,
                };
                let Some(notification) = next else { break };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claims_open_the_transaction_in_one_statement() {
        let id = Uuid::nil();
        let user = Actor::User {
            id,
            permissions: vec!["users.manage".into(), "roles.assign".into()],
        };
        assert_eq!(
            opening(&user, Access::ReadWrite).as_deref(),
            Some(
                "begin; select set_config('role', 'rabt_authenticated', true), \
                 set_config('request.user_id', '00000000-0000-0000-0000-000000000000', true), \
                 set_config('request.permissions', 'users.manage,roles.assign', true)"
            )
        );
        let anonymous = opening(&Actor::Anonymous, Access::ReadOnly).unwrap();
        assert!(anonymous.starts_with("begin read only; "), "{anonymous}");
        assert!(
            anonymous.contains("'rabt_anonymous'") && anonymous.contains("'request.user_id', ''")
        );
    }

    #[test]
    fn a_claim_that_is_not_plain_is_never_written_as_a_literal() {
        for permission in ["x'; drop table users; --", "a b", "\\", "é", "x\0"] {
            let user = Actor::User {
                id: Uuid::nil(),
                permissions: vec![permission.into()],
            };
            assert_eq!(opening(&user, Access::ReadWrite), None, "{permission}");
        }
    }
}
