//! The test harness: every test gets its own database, cloned from a migrated
//! template (fast), its own app on port 0, and typed helpers. The database is
//! dropped when the test's `TestApp` goes away.
//!
//! Services come from `RABT_TEST_DATABASE_URL` (a superuser connection to a
//! maintenance database; `DATABASE_URL` as a fallback) and `RABT_TEST_REDIS_URL`
//! (`REDIS_URL`), which `scripts/test` provides.
//!
//! Setup that tests of several capabilities share lives here too, never in a
//! test module: [`auth`] (an app with mail, signed-in users), [`projects`]
//! (projects and applications made through the API), [`messaging`]
//! (conversations and a WebSocket client) and [`jobs`] (job kinds of the
//! tests).

pub mod auth;
pub mod jobs;
pub mod messaging;
pub mod projects;
pub mod redis;
pub mod storage;
pub mod stripe;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rabt::{
    app::{Application, ServeOptions},
    config::Settings,
    db::{Actor, Db},
    jobs::JobRegistry,
    state::AppState,
};
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection, PgPool, postgres::PgPoolOptions};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub fn admin_url() -> String {
    std::env::var("RABT_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("RABT_TEST_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The URL of database `name` on the admin server.
pub fn url_for(name: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("admin url parses");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

fn assert_identifier(name: &str) {
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "not a safe identifier: {name}"
    );
}

/// The template's name changes whenever a migration does, so a stale template
/// is never cloned.
fn template_name() -> String {
    let mut hasher = Sha256::new();
    for migration in rabt::db::MIGRATOR.iter() {
        hasher.update(migration.version.to_be_bytes());
        hasher.update(&migration.checksum);
    }
    format!("rabt_tpl_{}", &hex::encode(hasher.finalize())[..16])
}

async fn ensure_template(admin: &mut PgConnection) -> String {
    let template = template_name();
    // Test processes run in parallel: one builds, the others wait.
    admin
        .execute("select pg_advisory_lock(7263110001)")
        .await
        .expect("template lock");
    let exists: bool =
        sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(&template)
            .fetch_one(&mut *admin)
            .await
            .expect("template lookup");
    if !exists {
        let building = format!("{template}_building");
        assert_identifier(&building);
        admin
            .execute(AssertSqlSafe(format!(
                "drop database if exists {building} with (force)"
            )))
            .await
            .expect("drop half-built template");
        admin
            .execute(AssertSqlSafe(format!("create database {building}")))
            .await
            .expect("create template");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url_for(&building))
            .await
            .expect("connect to template");
        rabt::db::MIGRATOR
            .run(&pool)
            .await
            .expect("migrations apply");
        pool.close().await;
        admin
            .execute(AssertSqlSafe(format!(
                "alter database {building} rename to {template}"
            )))
            .await
            .expect("publish template");
        drop_stale_databases(admin).await;
    }
    admin
        .execute("select pg_advisory_unlock(7263110001)")
        .await
        .expect("template unlock");
    template
}

/// Databases of test runs that were killed before they could clean up.
async fn drop_stale_databases(admin: &mut PgConnection) {
    let cutoff = now_secs().saturating_sub(6 * 3600);
    let names: Vec<String> =
        sqlx::query_scalar("select datname from pg_database where datname like 'rabt_t\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .split('_')
            .nth(2)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        if created < cutoff {
            assert_identifier(&name);
            let _ = admin
                .execute(AssertSqlSafe(format!(
                    "drop database if exists {name} with (force)"
                )))
                .await;
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A database of this test's own, dropped on drop.
pub struct TestDb {
    pub name: String,
    /// A superuser pool on it, for arranging and checking behind RLS's back.
    pub admin: PgPool,
}

impl TestDb {
    pub async fn new() -> Self {
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("connect to the test Postgres (see scripts/test)");
        let template = ensure_template(&mut admin).await;
        let name = format!("rabt_t_{}_{}", now_secs(), Uuid::new_v4().simple());
        assert_identifier(&name);
        admin
            .execute(AssertSqlSafe(format!(
                "create database {name} template {template}"
            )))
            .await
            .expect("clone template");
        admin.close().await.ok();
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&url_for(&name))
            .await
            .expect("connect to test database");
        Self { name, admin: pool }
    }

    pub fn url(&self) -> String {
        url_for(&self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            // The test's own pool dies with the database (`with (force)`).
            runtime.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = admin
                        .execute(AssertSqlSafe(format!(
                            "drop database if exists {name} with (force)"
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// How a test wants its app.
pub struct AppOptions {
    pub redis: bool,
    pub workers: bool,
    /// `None`: the server's own job handlers.
    pub jobs: Option<JobRegistry>,
    pub overrides: Vec<(&'static str, String)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            redis: true,
            workers: false,
            jobs: None,
            overrides: Vec::new(),
        }
    }
}

/// A running app on its own database.
pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Last, so the app stops before its database is dropped.
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// Shared by every test instance, so a second instance accepts the first's tokens.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0001";

/// Settings for an app on `db`, as a test deployment would have them.
pub fn test_settings(db: &TestDb, redis: bool, extra: &[(&'static str, String)]) -> Settings {
    let mut overrides: Vec<(&str, String)> = vec![
        ("env", "test".into()),
        ("database_url", db.url()),
        ("migration_database_url", db.url()),
        ("bind", "127.0.0.1:0".into()),
        ("redis_url", if redis { redis_url() } else { String::new() }),
        (
            "redis_key_prefix",
            format!("test:{}:", Uuid::new_v4().simple()),
        ),
        ("job_poll_interval_ms", "50".into()),
        // Stopping a test's app need not wait for load balancers.
        ("shutdown_drain_secs", "0".into()),
        // A busy test machine may keep Redis waiting; tests of limits and
        // caches must not see it as down. The fault tests set their own bound.
        ("redis_timeout_ms", "2000".into()),
        ("database_max_connections", "8".into()),
        ("frontend_url", "https://app.rabt.test".into()),
        ("jwt_secret", TEST_JWT_SECRET.into()),
        // Tests fire many requests from one address; the limits have their own tests.
        ("rate_limit_auth_per_minute", "100000".into()),
        ("rate_limit_write_per_minute", "100000".into()),
        ("rate_limit_read_per_minute", "100000".into()),
        (
            "storage_url",
            format!(
                "file://{}",
                std::env::temp_dir().join("rabt-test-files").display()
            ),
        ),
        (
            "mail_dir",
            std::env::temp_dir()
                .join("rabt-test-mail")
                .display()
                .to_string(),
        ),
    ];
    overrides.extend(extra.iter().cloned());
    Settings::load_with(&overrides).expect("test settings are valid")
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    rabt::telemetry::init_logging(rabt::config::LogFormat::Json);
    let db = TestDb::new().await;
    let settings = test_settings(&db, options.redis, &options.overrides);
    let jobs = match options.jobs {
        Some(jobs) => jobs,
        None => rabt::app::job_registry(&settings).expect("job registry"),
    };
    let app = Application::build_with(
        settings,
        ServeOptions {
            workers: options.workers,
            migrate: false,
        },
        jobs,
    )
    .await
    .expect("app builds");
    let address = app.local_addr();
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client"),
        state,
        shutdown,
        server: Some(server),
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    pub fn app_db(&self) -> &Db {
        &self.state.db
    }

    /// Inserts a user directly (as the superuser), returning its id.
    pub async fn insert_user(&self, email: &str, name: &str, visibility: &str) -> Uuid {
        sqlx::query_scalar(
            "insert into users (email, display_name, visibility) values ($1, $2, $3) returning id",
        )
        .bind(email)
        .bind(name)
        .bind(visibility)
        .fetch_one(&self.db.admin)
        .await
        .expect("user inserted")
    }

    pub fn as_user(id: Uuid) -> Actor {
        Actor::User {
            id,
            permissions: Vec::new(),
        }
    }

    /// Runs queued jobs until none is ready.
    pub async fn drain_jobs(&self) {
        let registry = rabt::app::job_registry(&self.state.settings).expect("job registry");
        let worker = rabt::jobs::Worker::new(
            self.state.db.clone(),
            registry,
            self.state.settings.jobs.clone(),
        );
        while worker.run_once().await.expect("job runs") != rabt::jobs::Outcome::EmptyQueue {}
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// A request to `path` with `token` as its bearer.
    fn request_as(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    async fn send_json_as(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.request_as(method, token, path)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post_json_as(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.send_json_as(reqwest::Method::POST, token, path, body)
            .await
    }

    pub async fn put_json_as(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.send_json_as(reqwest::Method::PUT, token, path, body)
            .await
    }

    pub async fn patch_json_as(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.send_json_as(reqwest::Method::PATCH, token, path, body)
            .await
    }

    pub async fn delete_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.request_as(reqwest::Method::DELETE, token, path)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.request_as(reqwest::Method::GET, token, path)
            .send()
            .await
            .expect("request sent")
    }

    /// A second instance of this deployment: same database, same Redis keys,
    /// same signing key.
    pub async fn second_instance(&self) -> (SocketAddr, CancellationToken) {
        let limits = self.state.settings.rate_limits;
        let settings = test_settings(
            &self.db,
            true,
            &[
                ("rate_limit_auth_per_minute", limits.auth.to_string()),
                ("rate_limit_write_per_minute", limits.write.to_string()),
                ("rate_limit_read_per_minute", limits.read.to_string()),
                (
                    "redis_key_prefix",
                    self.state.settings.redis_key_prefix.clone(),
                ),
                (
                    "smtp_url",
                    self.state
                        .settings
                        .email
                        .smtp_url
                        .as_ref()
                        .map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned())
                        .unwrap_or_default(),
                ),
            ],
        );
        let app = Application::build(
            settings,
            ServeOptions {
                workers: false,
                migrate: false,
            },
        )
        .await
        .expect("second instance builds");
        let address = app.local_addr();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        (address, shutdown)
    }

    /// One round of the worker's housekeeping on this app's database.
    pub async fn housekeep(&self) -> rabt::jobs::runner::Swept {
        let worker = rabt::jobs::Worker::new(
            self.state.db.clone(),
            rabt::app::job_registry(&self.state.settings).expect("job registry"),
            self.state.settings.jobs.clone(),
        );
        worker.housekeep().await.expect("housekeeping runs")
    }

    /// Stops the app and waits for it to finish draining.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stops cleanly");
        }
    }
}

/// Reads a response as a problem document, checking its media type.
pub async fn problem(response: reqwest::Response) -> serde_json::Value {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    response.json().await.expect("problem body is JSON")
}

/// How long a test waits for something that happens in the background (a
/// job, a notification, a server coming up) before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// How often [`eventually`] looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Looks every 20 ms until `probe` answers `Ok`, and returns its value. After
/// `limit` it panics, naming `what` it waited for and the last `Err` (what it
/// saw instead).
pub async fn eventually<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, E>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "waited {limit:?} for {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until `condition` holds, looking every 20 ms; panics after `limit`,
/// naming `what` it waited for.
pub async fn wait_until(limit: Duration, what: &str, mut condition: impl AsyncFnMut() -> bool) {
    eventually(limit, what, async || {
        if condition().await {
            Ok(())
        } else {
            Err("not yet")
        }
    })
    .await;
}

/// A message an SMTP client handed to [`SmtpSink`].
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A small real SMTP server for tests: it speaks enough of RFC 5321 (EHLO/HELO,
/// MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) for a real client
/// such as lettre, and keeps what it receives for the test to read.
#[derive(Clone)]
pub struct SmtpSink {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedMail>>>,
    arrived: Arc<tokio::sync::Notify>,
    /// Recipients refused at `RCPT TO` with `550 5.1.1`.
    refused: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("smtp bind");
        let address = listener.local_addr().expect("smtp address");
        let sink = Self {
            address,
            received: Arc::default(),
            arrived: Arc::default(),
            refused: Arc::default(),
        };
        let server = sink.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let _ = server.session(socket).await;
                });
            }
        });
        sink
    }

    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.received.lock().expect("smtp sink lock").clone()
    }

    /// Makes the sink refuse `address` for good, as a server does for a
    /// mailbox that does not exist.
    pub fn refuse(&self, address: &str) {
        self.refused
            .lock()
            .expect("smtp sink lock")
            .push(address.to_owned());
    }

    /// Waits until at least `count` messages arrived (or panics after `limit`).
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.arrived.notified();
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("expected {count} mails, got {}", self.messages().len());
            }
        }
    }

    async fn session(&self, socket: tokio::net::TcpStream) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 rabt-test-sink ESMTP\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            if upper.starts_with("EHLO") {
                write
                    .write_all(b"250-rabt-test-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?;
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                write.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("MAIL FROM:") {
                from = angle_address(&command);
                to.clear();
                write.write_all(b"250 OK\r\n").await?;
            } else if upper.starts_with("RCPT TO:") {
                let address = angle_address(&command);
                if self
                    .refused
                    .lock()
                    .expect("smtp sink lock")
                    .contains(&address)
                {
                    write
                        .write_all(b"550 5.1.1 No such mailbox here\r\n")
                        .await?;
                } else {
                    to.push(address);
                    write.write_all(b"250 OK\r\n").await?;
                }
            } else if upper == "DATA" {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                self.received
                    .lock()
                    .expect("smtp sink lock")
                    .push(ReceivedMail {
                        from: from.clone(),
                        to: std::mem::take(&mut to),
                        data,
                    });
                self.arrived.notify_waiters();
                write.write_all(b"250 OK queued\r\n").await?;
            } else if upper == "RSET" {
                from.clear();
                to.clear();
                write.write_all(b"250 OK\r\n").await?;
            } else if upper == "QUIT" {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            } else {
                write.write_all(b"502 Command not implemented\r\n").await?;
            }
        }
    }
}

fn angle_address(command: &str) -> String {
    command
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address.to_owned())
        .unwrap_or_default()
}
