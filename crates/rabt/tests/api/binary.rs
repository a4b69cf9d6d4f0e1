//! The `rabt` binary as an operator runs it: a bad setting stops the start with
//! one line naming it; `serve` migrates, answers, and stops cleanly on SIGTERM.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use crate::helpers::{TestDb, redis_url};

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
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let child = rabt()
        .arg("serve")
        .env("DATABASE_URL", crate::helpers::url_for(&empty))
        .env("REDIS_URL", redis_url())
        .env("RABT_BIND", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let ready = format!("http://127.0.0.1:{port}/health/ready");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(&ready).await
            && response.status() == 200
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

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
