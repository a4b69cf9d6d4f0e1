//! The admin surface (API.md §10): each endpoint behind its permission, the
//! job queue without its arguments, and the tamper-evident audit log.

use std::{process::Command, time::Duration};

use rabt::audit::Verdict;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    auth::{self, PASSWORD, login, signed_in},
    problem,
};

#[tokio::test]
async fn every_admin_endpoint_refuses_anonymous_callers_and_members() {
    let env = auth::spawn(vec![]).await;
    let member = auth::access(&signed_in(&env, "member@rabt.test").await).to_owned();
    let job = Uuid::now_v7();
    let gets = [
        "/v1/admin/analytics/overview",
        "/v1/admin/email/stats",
        "/v1/admin/email/suppressions",
        "/v1/admin/jobs",
        "/v1/admin/audit-log",
    ];
    for path in gets {
        assert_eq!(env.app.get(path).await.status(), 401, "{path}");
        let response = env.app.get_as(&member, path).await;
        assert_eq!(response.status(), 403, "{path}");
        assert_eq!(problem(response).await["code"], "forbidden");
    }
    let retry = format!("/v1/admin/jobs/{job}/retry");
    assert_eq!(env.app.post_json(&retry, &json!({})).await.status(), 401);
    assert_eq!(
        env.app
            .post_json_as(&member, &retry, &json!({}))
            .await
            .status(),
        403
    );
    let lift = "/v1/admin/email/suppressions/a@rabt.test";
    assert_eq!(env.app.delete_as(&member, lift).await.status(), 403);
}

#[tokio::test]
async fn the_analytics_overview_counts_what_happened() {
    use crate::helpers::{
        messaging::{conversation, say, user},
        projects::{apply, draft, published},
    };
    let env = auth::spawn(vec![]).await;
    let owner = user(&env, "owner@rabt.test").await;
    let applicant = user(&env, "applicant@rabt.test").await;
    let project = published(&env, &owner.token, "A bakery website").await;
    draft(&env, &owner.token, "Not yet").await;
    assert_eq!(
        apply(&env, &applicant.token, &project, "Hello")
            .await
            .status(),
        201
    );
    let talk = conversation(&env, &owner, &[&applicant]).await;
    say(&env, &owner, &talk, "Hi").await;
    say(&env, &applicant, &talk, "Hello back").await;
    let admin = auth::admin(&env, "admin@rabt.test").await;

    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    let response = env
        .app
        .get_as(
            &admin,
            &format!("/v1/admin/analytics/overview?from={yesterday}&to={today}"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let overview: Value = response.json().await.unwrap();
    let day = |series: &Value, day: chrono::NaiveDate| {
        series
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["day"] == day.to_string())
            .unwrap_or_else(|| panic!("{series}"))["count"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(overview["users"]["total"], 3, "{overview}");
    assert_eq!(day(&overview["users"]["new"], today), 3);
    assert_eq!(day(&overview["users"]["new"], yesterday), 0);
    assert_eq!(day(&overview["users"]["active"], today), 3);
    assert_eq!(day(&overview["applications"], today), 1);
    assert_eq!(day(&overview["messages"], today), 2);
    assert_eq!(
        overview["projects_by_status"],
        json!([{"key": "draft", "count": 1}, {"key": "open", "count": 1}])
    );
    assert_eq!(
        overview["subscriptions_by_plan"],
        json!([{"key": "free", "count": 3}])
    );
    let response = env
        .app
        .get_as(&admin, "/v1/admin/analytics/overview?from=2026-02-30")
        .await;
    assert_eq!(response.status(), 422);
}

#[tokio::test]
async fn jobs_are_listed_without_their_arguments_and_only_failed_or_dead_ones_are_retried() {
    let env = auth::spawn(vec![]).await;
    let admin = auth::admin(&env, "ops@rabt.test").await;
    let db = &env.app.db.admin;
    let insert = |status: &'static str, error: Option<&'static str>| async move {
        sqlx::query_scalar::<_, Uuid>(
            "insert into jobs (kind, payload, status, attempts, max_attempts, last_error, \
                               finished_at, run_at) \
             values ('test.job', '{\"token\": \"secret-token-1234\"}', $1, \
                     case when $1 = 'dead' then 5 else 1 end, 5, $2, \
                     case when $1 = 'dead' then now() end, now() + interval '1 hour') \
             returning id",
        )
        .bind(status)
        .bind(error)
        .fetch_one(db)
        .await
        .unwrap()
    };
    let dead = insert("dead", Some("boom")).await;
    let failed = insert("queued", Some("try again")).await;
    let waiting = insert("queued", None).await;

    let response = env.app.get_as(&admin, "/v1/admin/jobs?status=dead").await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(!body.contains("secret-token"), "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["id"], dead.to_string());
    assert_eq!(items[0]["status"], "dead");
    assert_eq!(items[0]["last_error"], "boom");
    let failed_page: Value = env
        .app
        .get_as(&admin, "/v1/admin/jobs?status=failed")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(failed_page["items"][0]["id"], failed.to_string());
    assert_eq!(
        env.app
            .get_as(&admin, "/v1/admin/jobs?status=lost")
            .await
            .status(),
        422
    );

    for (id, expected) in [
        (dead, 202),
        (failed, 202),
        (waiting, 409),
        (Uuid::now_v7(), 404),
    ] {
        let response = env
            .app
            .post_json_as(&admin, &format!("/v1/admin/jobs/{id}/retry"), &json!({}))
            .await;
        assert_eq!(response.status(), expected, "{id}");
    }
    let (status, attempts, due): (String, i32, bool) =
        sqlx::query_as("select status, attempts, run_at <= now() from jobs where id = $1")
            .bind(dead)
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts, due), ("queued", 0, true));
    let retried: i64 =
        sqlx::query_scalar("select count(*) from audit_log where action = 'job_retried'")
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!(retried, 2);
}

#[tokio::test]
async fn the_audit_log_is_filtered_and_paged_for_holders_of_users_read_private() {
    let env = auth::spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let ada_id = ada["user"]["id"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(login(&env, "ada@rabt.test", PASSWORD).await.status(), 200);
    }
    assert_eq!(
        login(&env, "ada@rabt.test", "wrong-password")
            .await
            .status(),
        401
    );
    let admin = auth::admin(&env, "auditor@rabt.test").await;
    let path = format!("/v1/admin/audit-log?actor_id={ada_id}&action=login_succeeded&limit=2");
    let first: Value = env.app.get_as(&admin, &path).await.json().await.unwrap();
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{first}");
    assert!(
        items
            .iter()
            .all(|e| e["action"] == "login_succeeded" && e["actor_id"] == ada_id)
    );
    assert!(
        items[0]["seq"].as_i64() > items[1]["seq"].as_i64(),
        "newest first"
    );
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = env
        .app
        .get_as(&admin, &format!("{path}&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["items"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let response = env
        .app
        .get_as(
            &admin,
            "/v1/admin/audit-log?from=2026-12-07T00:00:00Z&to=2026-12-01T00:00:00Z",
        )
        .await;
    assert_eq!(response.status(), 422);
}

fn verify_with_the_binary(database_url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rabt"))
        .args(["audit", "verify"])
        .env("DATABASE_URL", database_url)
        .env_remove("REDIS_URL")
        .env("RABT_LOG_FORMAT", "json")
        .output()
        .unwrap()
}

#[tokio::test]
async fn audit_verify_finds_an_altered_or_removed_entry_and_survives_erasure_and_pruning() {
    let env = auth::spawn(vec![]).await;
    signed_in(&env, "ada@rabt.test").await;
    signed_in(&env, "bob@rabt.test").await;
    for who in ["ada@rabt.test", "bob@rabt.test"] {
        assert_eq!(login(&env, who, PASSWORD).await.status(), 200);
    }
    let db = &env.app.db.admin;
    let app_db = env.app.app_db();
    let entries = match rabt::audit::verify(app_db).await.unwrap() {
        Verdict::Intact { entries } => entries,
        broken => panic!("{broken:?}"),
    };
    assert!(entries >= 6, "{entries}");
    let output = verify_with_the_binary(&env.app.db.url());
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("intact"));

    // An erased actor's id becomes null: the chain still holds.
    sqlx::query("delete from users where email = 'bob@rabt.test'")
        .execute(db)
        .await
        .unwrap();
    assert!(matches!(
        rabt::audit::verify(app_db).await.unwrap(),
        Verdict::Intact { .. }
    ));

    // Altered behind rabt's back.
    sqlx::query("update audit_log set details = '{\"mfa\": \"skipped\"}' where seq = 2")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(
        rabt::audit::verify(app_db).await.unwrap(),
        Verdict::Broken {
            seq: 2,
            problem: "altered: its content does not match its hash".into()
        }
    );
    let output = verify_with_the_binary(&env.app.db.url());
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("broken at entry 2"),
        "{output:?}"
    );
    // Removed: the next entry no longer follows.
    let fresh = auth::spawn(vec![]).await;
    signed_in(&fresh, "cy@rabt.test").await;
    assert_eq!(login(&fresh, "cy@rabt.test", PASSWORD).await.status(), 200);
    sqlx::query("delete from audit_log where seq = 1")
        .execute(&fresh.app.db.admin)
        .await
        .unwrap();
    assert!(matches!(
        rabt::audit::verify(fresh.app.app_db()).await.unwrap(),
        Verdict::Broken { seq: 1, .. }
    ));

    // Pruning keeps what is left verifiable from its anchor.
    let pruned = auth::spawn(vec![]).await;
    signed_in(&pruned, "dee@rabt.test").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut tx = pruned
        .app
        .app_db()
        .begin(&rabt::db::Actor::Service)
        .await
        .unwrap();
    let removed = rabt::audit::prune(&mut tx, Duration::ZERO).await.unwrap();
    tx.commit().await.unwrap();
    assert!(removed >= 1);
    assert_eq!(
        login(&pruned, "dee@rabt.test", PASSWORD).await.status(),
        200
    );
    assert_eq!(
        rabt::audit::verify(pruned.app.app_db()).await.unwrap(),
        Verdict::Intact { entries: 1 }
    );
}

/// The counters behind projects by status agree with counting the rows,
/// after concurrent inserts, transitions and deletions.
#[tokio::test]
async fn the_project_status_counters_agree_with_the_rows() {
    let env = auth::spawn(vec![]).await;
    let owner = env
        .app
        .insert_user("owner@rabt.test", "Owner", "public")
        .await;
    let db = env.app.db.admin.clone();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    sqlx::query("insert into projects (owner_id, title) values ($1, 'counted')")
                        .bind(owner)
                        .execute(&db)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    sqlx::query(
        "update projects set status = 'open' where id in \
         (select id from projects where owner_id = $1 order by id limit 40)",
    )
    .bind(owner)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "delete from projects where id in \
         (select id from projects where owner_id = $1 order by id desc limit 15)",
    )
    .bind(owner)
    .execute(&db)
    .await
    .unwrap();
    let counted: Vec<(String, i64)> =
        sqlx::query_as("select status, count(*) from projects group by status order by status")
            .fetch_all(&db)
            .await
            .unwrap();
    let kept: Vec<(String, i64)> = sqlx::query_as(
        "select status, sum(n)::int8 from project_status_counts \
         group by status having sum(n) <> 0 order by status",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(kept, counted);
    assert_eq!(
        counted,
        vec![("draft".to_owned(), 45), ("open".to_owned(), 40)]
    );
    // A truncation empties them with the table.
    sqlx::query("truncate projects cascade")
        .execute(&db)
        .await
        .unwrap();
    let left: i64 = sqlx::query_scalar("select count(*) from project_status_counts")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
