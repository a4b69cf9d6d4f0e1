//! The `rabt` binary as an operator runs it: a bad setting stops the start with
//! one line naming it; `serve` migrates, answers, and stops cleanly on SIGTERM.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use crate::helpers::{TestDb, auth::unfold, eventually, redis_url, wait_until};

fn rabt() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rabt"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("RABT_LOG_FORMAT", "json")
        .stdin(Stdio::null());
    command
}

#[test]
fn a_missing_setting_stops_the_start_with_one_line_naming_it() {
    let output = rabt().arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.trim(),
        "rabt: configuration: DATABASE_URL is required"
    );
}

#[test]
fn email_preview_writes_each_template_for_designers_without_any_settings() {
    let out = std::env::temp_dir().join(format!("rabt-preview-{}", uuid::Uuid::new_v4()));
    let output = rabt()
        .args(["email", "preview", "password_reset", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let html = std::fs::read_to_string(out.join("password_reset.html")).unwrap();
    let text = std::fs::read_to_string(out.join("password_reset.txt")).unwrap();
    let subject = std::fs::read_to_string(out.join("password_reset.subject.txt")).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(text.contains("Ada Lovelace"));
    assert_eq!(subject, "Reset your rabt password");
    let output = rabt()
        .args(["email", "preview", "no_such_template", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("password_reset"));
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn a_malformed_setting_is_named() {
    let output = rabt()
        .arg("serve")
        .env("DATABASE_URL", "postgres://x@127.0.0.1/db")
        .env("RABT_BODY_LIMIT_BYTES", "lots")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr
            .trim()
            .starts_with("rabt: configuration: RABT_BODY_LIMIT_BYTES is"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1);
}

#[test]
fn production_refuses_to_start_without_real_secrets() {
    let output = rabt()
        .arg("serve")
        .env("DATABASE_URL", "postgres://x@127.0.0.1/db")
        .env("RABT_ENV", "production")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("RABT_JWT_SECRET")
    );
}

#[test]
fn config_check_prints_the_effective_settings_without_secrets() {
    let output = rabt()
        .args(["config", "check"])
        .env("DATABASE_URL", "postgres://rabt:hunter2@127.0.0.1/db")
        .env(
            "RABT_JWT_SECRET",
            "a-jwt-secret-that-is-long-enough-0123456789",
        )
        .env("RABT_ERASURE_GRACE_DAYS", "14")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    for line in [
        "DATABASE_URL=postgres://rabt:redacted@127.0.0.1/db",
        "RABT_JWT_SECRET=<redacted>",
        "RABT_ERASURE_GRACE_DAYS=14",
        "RABT_BIND=127.0.0.1:8080",
    ] {
        assert!(stdout.lines().any(|l| l == line), "no {line} in {stdout}");
    }
    assert!(!stdout.contains("hunter2"), "{stdout}");
    assert!(!stdout.contains("a-jwt-secret"), "{stdout}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("configuration valid"), "{stderr}");
}

#[test]
fn config_check_refuses_what_serve_refuses() {
    let output = rabt()
        .args(["config", "check"])
        .env("DATABASE_URL", "postgres://x@127.0.0.1/db")
        .env("RABT_ENV", "production")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("RABT_JWT_SECRET"), "{stderr}");
    let out_of_range = rabt()
        .args(["config", "check"])
        .env("DATABASE_URL", "postgres://x@127.0.0.1/db")
        .env("RABT_ERASURE_GRACE_DAYS", "1000")
        .output()
        .unwrap();
    assert_eq!(out_of_range.status.code(), Some(2));
    assert!(
        String::from_utf8(out_of_range.stderr)
            .unwrap()
            .contains("RABT_ERASURE_GRACE_DAYS")
    );
}

#[test]
fn openapi_prints_the_document() {
    let output = rabt().arg("openapi").output().unwrap();
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(doc["paths"].get("/v1/users/{id}").is_some());
}

#[tokio::test]
async fn serve_migrates_answers_and_stops_cleanly_on_sigterm() {
    // An empty database: `serve` applies the migrations itself.
    let db = TestDb::new().await;
    let empty = format!("{}_empty", db.name);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {empty}")))
        .execute(&db.admin)
        .await
        .unwrap();
    let (port, metrics_port) = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        (
            probe.local_addr().unwrap().port(),
            other.local_addr().unwrap().port(),
        )
    };
    let child = rabt()
        .arg("serve")
        .env("DATABASE_URL", crate::helpers::url_for(&empty))
        .env("REDIS_URL", redis_url())
        .env("RABT_BIND", format!("127.0.0.1:{port}"))
        .env("RABT_METRICS_BIND", format!("127.0.0.1:{metrics_port}"))
        .env("RABT_SHUTDOWN_DRAIN_SECS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let ready = format!("http://127.0.0.1:{port}/health/ready");
    wait_until(
        Duration::from_secs(30),
        "the server to be ready",
        async || {
            reqwest::get(&ready)
                .await
                .is_ok_and(|response| response.status() == 200)
        },
    )
    .await;

    // Metrics are served on their own address, not the API's.
    let public = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let private = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    let exposition = private.text().await.unwrap();
    assert!(exposition.contains("jobs_queue_depth"), "{exposition}");

    // What a container's health check runs.
    let database = crate::helpers::url_for(&empty);
    let healthcheck = move |url: Option<String>| {
        let mut command = rabt();
        command
            .arg("healthcheck")
            .env("DATABASE_URL", &database)
            .env("RABT_BIND", format!("0.0.0.0:{port}"));
        if let Some(url) = url {
            command.args(["--url", &url]);
        }
        command.output().unwrap()
    };
    let healthy = tokio::task::spawn_blocking({
        let healthcheck = healthcheck.clone();
        move || healthcheck(None)
    })
    .await
    .unwrap();
    assert_eq!(healthy.status.code(), Some(0), "{healthy:?}");
    let wrong = tokio::task::spawn_blocking({
        let healthcheck = healthcheck.clone();
        move || healthcheck(Some(format!("http://127.0.0.1:{port}/health/nowhere")))
    })
    .await
    .unwrap();
    assert_eq!(wrong.status.code(), Some(1));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Draining: readiness fails at once, requests are still answered, and
    // HTTP/1.1 clients are told not to reuse their connection.
    wait_until(Duration::from_secs(5), "readiness to fail", async || {
        reqwest::get(&ready)
            .await
            .is_ok_and(|response| response.status() == 503)
    })
    .await;
    let live = reqwest::get(format!("http://127.0.0.1:{port}/health/live"))
        .await
        .expect("still served while draining");
    assert_eq!(live.status(), 200);
    assert_eq!(live.headers()["connection"], "close");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "exit: {:?}", output.status);
    let logs = String::from_utf8(output.stdout).unwrap();
    assert!(logs.contains("shutdown signal received"), "{logs}");
    // Every log line is JSON.
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }

    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&crate::helpers::admin_url())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "drop database {empty} with (force)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

#[tokio::test]
async fn admin_grant_and_revoke_change_a_users_roles() {
    let db = TestDb::new().await;
    sqlx::query("insert into users (email, display_name) values ('Ops@rabt.test', 'Ops')")
        .execute(&db.admin)
        .await
        .unwrap();
    let run = |args: &[&str]| {
        rabt()
            .arg("admin")
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    };
    let granted = run(&["grant", "ops@rabt.test", "admin"]);
    assert!(granted.status.success(), "{granted:?}");
    assert_eq!(
        String::from_utf8_lossy(&granted.stdout).trim(),
        "granted admin to ops@rabt.test"
    );
    let again = run(&["grant", "ops@rabt.test", "admin"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "ops@rabt.test already has admin"
    );
    let roles: Vec<String> = sqlx::query_scalar("select role_name from user_roles")
        .fetch_all(&db.admin)
        .await
        .unwrap();
    assert_eq!(roles, vec!["admin"]);

    let nobody = run(&["grant", "nobody@rabt.test", "admin"]);
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no user has the email"));
    let no_role = run(&["grant", "ops@rabt.test", "overlord"]);
    assert!(!no_role.status.success());

    // The last active admin keeps the role.
    let last = run(&["revoke", "ops@rabt.test", "admin"]);
    assert!(!last.status.success());
    assert!(
        String::from_utf8_lossy(&last.stderr).contains("is the last active admin"),
        "{last:?}"
    );
    sqlx::query("insert into users (email, display_name) values ('dev@rabt.test', 'Dev')")
        .execute(&db.admin)
        .await
        .unwrap();
    assert!(run(&["grant", "dev@rabt.test", "admin"]).status.success());
    let revoked = run(&["revoke", "ops@rabt.test", "admin"]);
    assert!(revoked.status.success(), "{revoked:?}");
    let left: Vec<String> =
        sqlx::query_scalar("select u.email from user_roles r join users u on u.id = r.user_id")
            .fetch_all(&db.admin)
            .await
            .unwrap();
    assert_eq!(left, vec!["dev@rabt.test"]);
}

#[tokio::test]
async fn the_bootstrap_admin_email_is_made_admin_at_start_once_verified() {
    let db = TestDb::new().await;
    sqlx::query("insert into users (email, display_name) values ('root@rabt.test', 'Root')")
        .execute(&db.admin)
        .await
        .unwrap();
    let start = || async {
        let settings = crate::helpers::test_settings(
            &db,
            false,
            &[("bootstrap_admin_email", "ROOT@rabt.test".into())],
        );
        let app = rabt::app::Application::build(
            settings,
            rabt::app::ServeOptions {
                workers: false,
                migrate: false,
            },
        )
        .await
        .unwrap();
        drop(app);
        sqlx::query_scalar::<_, String>("select role_name from user_roles")
            .fetch_all(&db.admin)
            .await
            .unwrap()
    };
    // Whoever signed up with the address has not shown they own it yet.
    assert!(start().await.is_empty());
    sqlx::query("update users set email_verified_at = now() where email = 'root@rabt.test'")
        .execute(&db.admin)
        .await
        .unwrap();
    assert_eq!(start().await, vec!["admin"]);
}

fn key(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

fn keyring(current: u8, old: &[u8]) -> rabt::crypto::Keyring {
    let old: Vec<String> = old.iter().map(|b| key(*b)).collect();
    let settings = rabt::config::Settings::load_with(&[
        ("database_url", "postgres://x@h/db".into()),
        ("encryption_key", key(current)),
        ("encryption_old_keys", old.join(",")),
    ])
    .unwrap();
    rabt::crypto::Keyring::from_settings(&settings)
}

#[tokio::test]
async fn keys_rotate_reseals_old_values_under_the_new_key() {
    let db = TestDb::new().await;
    let user: uuid::Uuid = sqlx::query_scalar(
        "insert into users (email, display_name) values ('k@rabt.test', 'K') returning id",
    )
    .fetch_one(&db.admin)
    .await
    .unwrap();
    let context = rabt::crypto::oauth_token_context("github", "42");
    let sealed = keyring(1, &[]).seal(b"gho_old", &context);
    sqlx::query(
        "insert into oauth_identities (user_id, provider, subject, access_token, token_key_id) \
         values ($1, 'github', '42', $2, $3)",
    )
    .bind(user)
    .bind(&sealed.bytes)
    .bind(&sealed.key_id)
    .execute(&db.admin)
    .await
    .unwrap();
    // A TOTP secret, sealed the same way.
    let factor = uuid::Uuid::now_v7();
    let totp_context = rabt::crypto::totp_secret_context(factor);
    let totp = keyring(1, &[]).seal(b"totp-secret-bytes", &totp_context);
    sqlx::query(
        "insert into totp_factors (id, user_id, secret_sealed, secret_key_id, verified_at) \
         values ($1, $2, $3, $4, now())",
    )
    .bind(factor)
    .bind(user)
    .bind(&totp.bytes)
    .bind(&totp.key_id)
    .execute(&db.admin)
    .await
    .unwrap();
    let rotate = |current: u8, old: &[u8]| {
        let old: Vec<String> = old.iter().map(|b| key(*b)).collect();
        rabt()
            .args(["keys", "rotate"])
            .env("DATABASE_URL", db.url())
            .env("RABT_ENCRYPTION_KEY", key(current))
            .env("RABT_ENCRYPTION_OLD_KEYS", old.join(","))
            .env("RUST_LOG", "error")
            .output()
            .unwrap()
    };

    // Without the old key the value cannot be read, and nothing changes.
    let blind = rotate(2, &[]);
    assert!(!blind.status.success(), "{blind:?}");
    assert!(String::from_utf8_lossy(&blind.stderr).contains("RABT_ENCRYPTION_OLD_KEYS"));

    let done = rotate(2, &[1]);
    assert!(done.status.success(), "{done:?}");
    let new = keyring(2, &[]);
    assert_eq!(
        String::from_utf8_lossy(&done.stdout).trim(),
        format!("re-encrypted 2 value(s) under key {}", new.current_id())
    );
    let (bytes, key_id): (Vec<u8>, String) =
        sqlx::query_as("select access_token, token_key_id from oauth_identities")
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert_eq!(key_id, new.current_id());
    // The new key alone now reads it.
    let opened = new
        .open(&rabt::crypto::Sealed { bytes, key_id }, &context)
        .unwrap();
    assert_eq!(opened, b"gho_old");
    let (bytes, key_id): (Vec<u8>, String) =
        sqlx::query_as("select secret_sealed, secret_key_id from totp_factors")
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert_eq!(key_id, new.current_id());
    let opened = new
        .open(&rabt::crypto::Sealed { bytes, key_id }, &totp_context)
        .unwrap();
    assert_eq!(opened, b"totp-secret-bytes");

    let again = rotate(2, &[]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("re-encrypted 0 value(s)"));
}

/// The first `token=` value in the newest mail written to `dir`.
async fn token_from_mail_dir(dir: &std::path::Path) -> String {
    let mail = eventually(Duration::from_secs(20), "a mail written", async || {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .ok_or("no mail in the folder")
    })
    .await;
    let data = unfold(&std::fs::read_to_string(mail.path()).unwrap());
    let at = data.find("token=").expect("a link with a token");
    data[at + 6..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn logs_of_the_auth_flows_hold_no_password_or_token() {
    let db = TestDb::new().await;
    let mail_dir = std::env::temp_dir().join(format!("rabt-logs-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&mail_dir).unwrap();
    let log_path = mail_dir.join("stdout.log");
    let err_path = mail_dir.join("stderr.log");
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = rabt()
        .arg("serve")
        .env("DATABASE_URL", db.url())
        .env("REDIS_URL", redis_url())
        .env(
            "RABT_REDIS_KEY_PREFIX",
            format!("logs:{}:", uuid::Uuid::now_v7()),
        )
        .env("RABT_BIND", format!("127.0.0.1:{port}"))
        .env("RABT_MAIL_DIR", &mail_dir)
        .env("RABT_FRONTEND_URL", "https://app.rabt.test")
        .env("RUST_LOG", "debug,sqlx=debug")
        // A file, not a pipe: nobody reads a pipe until the end, and debug logs
        // would fill it and block the server.
        .stdout(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_until(
        Duration::from_secs(30),
        "the server to be ready",
        async || {
            client
                .get(format!("{base}/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;

    let password = "correct-horse-battery-staple-7";
    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{base}{path}")).json(&body).send()
    };
    let signup = post(
        "/v1/auth/signup",
        serde_json::json!({"email": "logs@rabt.test", "password": password, "display_name": "L"}),
    )
    .await
    .unwrap();
    assert_eq!(signup.status(), 202);
    let verify_token = token_from_mail_dir(&mail_dir).await;
    let verified: serde_json::Value = post(
        "/v1/auth/verify-email",
        serde_json::json!({"token": verify_token}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let login: serde_json::Value = post(
        "/v1/auth/login",
        serde_json::json!({"email": "logs@rabt.test", "password": password}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let wrong = post(
        "/v1/auth/login",
        serde_json::json!({"email": "logs@rabt.test", "password": "not-the-password-9"}),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status(), 401);
    let refreshed: serde_json::Value = post(
        "/v1/auth/token/refresh",
        serde_json::json!({"refresh_token": login["refresh_token"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let me = client
        .get(format!("{base}/v1/me"))
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut child = child;
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(&log_path).unwrap(),
        std::fs::read_to_string(&err_path).unwrap()
    );
    let _ = std::fs::remove_dir_all(&mail_dir);
    // The logs are there and about these requests…
    assert!(logs.contains("/v1/auth/login"), "{logs}");
    assert!(logs.lines().count() > 10);
    // …and hold none of the secrets that went through them.
    let mut secrets = vec![
        password.to_owned(),
        "not-the-password-9".to_owned(),
        verify_token,
    ];
    for pair in [&verified, &login, &refreshed] {
        for field in ["access_token", "refresh_token"] {
            secrets.push(pair[field].as_str().unwrap().to_owned());
        }
    }
    for secret in secrets {
        assert!(secret.len() > 8);
        assert!(!logs.contains(&secret), "a secret is in the logs: {secret}");
    }
}

#[tokio::test]
async fn a_worker_serves_its_metrics_on_the_metrics_address_and_stops_on_sigterm() {
    let db = TestDb::new().await;
    let metrics_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = rabt()
        .arg("worker")
        .env("DATABASE_URL", crate::helpers::url_for(&db.name))
        .env("REDIS_URL", redis_url())
        .env("RABT_METRICS_BIND", format!("127.0.0.1:{metrics_port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let exposition = eventually(
        Duration::from_secs(30),
        "the worker's metrics",
        async || {
            let response = reqwest::get(&url).await.map_err(|e| e.to_string())?;
            if response.status() != 200 {
                return Err(format!("status {}", response.status()));
            }
            response.text().await.map_err(|e| e.to_string())
        },
    )
    .await;
    assert!(exposition.contains("jobs_queue_depth"), "{exposition}");
    assert!(exposition.contains("db_pool_connections"), "{exposition}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "exit: {:?}", output.status);
}
