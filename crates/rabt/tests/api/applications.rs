//! Applications and the notification inbox end to end (API.md §5, §6), with
//! email read from a real SMTP server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    auth::{AuthApp, access, signed_in, spawn, unfold},
    problem,
    projects::{apply, draft, published, transition},
};

async fn step(env: &AuthApp, token: &str, application: &str, to: &str) -> reqwest::Response {
    env.app
        .post_json_as(
            token,
            &format!("/v1/applications/{application}/transitions"),
            &json!({"to": to, "note": "noted"}),
        )
        .await
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

async fn kinds(env: &AuthApp, token: &str) -> Vec<String> {
    let page = json_of(env.app.get_as(token, "/v1/notifications").await).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_application_moves_through_its_machine_and_tells_the_other_side() {
    let env = spawn(vec![]).await;
    let owner = signed_in(&env, "owner@rabt.test").await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let project = published(&env, access(&owner), "Engine").await;
    env.app.drain_jobs().await;
    let mails_before = env.smtp.messages().len();

    let applied = apply(
        &env,
        access(&ada),
        &project,
        "I built the difference engine.",
    )
    .await;
    assert_eq!(applied.status(), 201);
    let application = json_of(applied).await;
    let id = application["id"].as_str().unwrap().to_owned();
    assert_eq!(application["status"], "pending");
    assert_eq!(
        application["proposed_budget"],
        json!({"amount": 2500, "currency": "usd"})
    );

    // The owner is told, in the inbox and by email.
    assert_eq!(kinds(&env, access(&owner)).await, ["application.submitted"]);
    env.app.drain_jobs().await;
    let mails = env
        .smtp
        .wait_for(mails_before + 1, Duration::from_secs(10))
        .await;
    let mail = mails.last().unwrap();
    assert_eq!(mail.to, ["owner@rabt.test"]);
    assert!(
        mail.data.contains("New application to Engine"),
        "{}",
        mail.data
    );

    let project_now = json_of(env.app.get(&format!("/v1/projects/{project}")).await).await;
    assert_eq!(project_now["application_count"], 1);

    // Who sees it: both sides, nobody else.
    let path = format!("/v1/applications/{id}");
    assert_eq!(env.app.get_as(access(&owner), &path).await.status(), 200);
    assert_eq!(env.app.get_as(access(&ada), &path).await.status(), 200);
    assert_eq!(env.app.get_as(access(&eve), &path).await.status(), 404);
    let listed = json_of(
        env.app
            .get_as(
                access(&owner),
                &format!("/v1/projects/{project}/applications"),
            )
            .await,
    )
    .await;
    assert_eq!(listed["items"][0]["id"], json!(id));
    let not_hers = env
        .app
        .get_as(
            access(&eve),
            &format!("/v1/projects/{project}/applications"),
        )
        .await;
    assert_eq!(not_hers.status(), 403);
    let mine = json_of(
        env.app
            .get_as(access(&ada), "/v1/me/applications?status=pending")
            .await,
    )
    .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);

    // Each side only takes its own steps.
    let wrong_side = step(&env, access(&ada), &id, "shortlisted").await;
    assert_eq!(problem(wrong_side).await["code"], "invalid_transition");
    let stranger = step(&env, access(&eve), &id, "withdrawn").await;
    assert_eq!(stranger.status(), 404);
    let shortlisted = step(&env, access(&owner), &id, "shortlisted").await;
    assert_eq!(json_of(shortlisted).await["status"], "shortlisted");
    assert_eq!(kinds(&env, access(&ada)).await, ["application.shortlisted"]);

    // With applications, the project cannot go back to draft.
    let back = transition(&env, access(&owner), &project, "draft", None).await;
    assert_eq!(problem(back).await["code"], "invalid_transition");

    // Ada turns application email off: the inbox still fills, no mail is sent.
    let prefs = env
        .app
        .put_json_as(
            access(&ada),
            "/v1/me/notification-preferences",
            &json!({"messages": "digest", "applications": false, "billing": true,
                      "product_news": false}),
        )
        .await;
    assert_eq!(prefs.status(), 200);
    env.app.drain_jobs().await;
    let mails_now = env.smtp.messages().len();
    let accepted = step(&env, access(&owner), &id, "accepted").await;
    assert_eq!(json_of(accepted).await["status"], "accepted");
    env.app.drain_jobs().await;
    assert_eq!(
        kinds(&env, access(&ada)).await,
        ["application.accepted", "application.shortlisted"]
    );
    assert_eq!(env.smtp.messages().len(), mails_now);

    // Accepted is final for both sides.
    let withdraw = step(&env, access(&ada), &id, "withdrawn").await;
    assert_eq!(problem(withdraw).await["code"], "invalid_transition");
    let history: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "select from_status, to_status, note from application_status_history \
         where application_id = $1::uuid order by at",
    )
    .bind(&id)
    .fetch_all(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(
        history,
        vec![
            ("pending".into(), "shortlisted".into(), Some("noted".into())),
            (
                "shortlisted".into(),
                "accepted".into(),
                Some("noted".into())
            ),
        ]
    );
}

/// The newest mail to `to` once at least `count` mails arrived, unfolded.
async fn mail_to(env: &AuthApp, count: usize, to: &str) -> String {
    let mails = env.smtp.wait_for(count, Duration::from_secs(10)).await;
    let mail = mails
        .iter()
        .rev()
        .find(|m| m.to.iter().any(|t| t == to))
        .unwrap_or_else(|| panic!("no mail to {to}"));
    unfold(&mail.data)
}

#[tokio::test]
async fn a_rejection_and_a_withdrawal_notify_and_email_the_other_side() {
    let env = spawn(vec![]).await;
    let owner = signed_in(&env, "owner@rabt.test").await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let bob = signed_in(&env, "bob@rabt.test").await;
    let project = published(&env, access(&owner), "Engine").await;
    let mut ids = Vec::new();
    for applicant in [&ada, &bob] {
        let applied = apply(&env, access(applicant), &project, "Hello").await;
        assert_eq!(applied.status(), 201);
        ids.push(json_of(applied).await["id"].as_str().unwrap().to_owned());
    }
    env.app.drain_jobs().await;
    let mails = env.smtp.messages().len();

    // The owner rejects Ada: Ada is told.
    let rejected = step(&env, access(&owner), &ids[0], "rejected").await;
    assert_eq!(json_of(rejected).await["status"], "rejected");
    assert_eq!(kinds(&env, access(&ada)).await, ["application.rejected"]);
    env.app.drain_jobs().await;
    let mail = mail_to(&env, mails + 1, "ada@rabt.test").await;
    assert!(
        mail.contains("Subject: Your application to Engine was rejected"),
        "{mail}"
    );
    assert!(
        mail.contains("Your application to \"Engine\" was rejected."),
        "{mail}"
    );
    // The link is click-tracked; its redirect leads to the application.
    assert_eq!(
        crate::helpers::auth::tracked_targets(&env.app, &mail).await,
        [format!("https://app.rabt.test/applications/{}", ids[0])]
    );

    // Bob withdraws: the owner is told.
    let withdrawn = step(&env, access(&bob), &ids[1], "withdrawn").await;
    assert_eq!(json_of(withdrawn).await["status"], "withdrawn");
    assert_eq!(
        kinds(&env, access(&owner)).await,
        [
            "application.withdrawn",
            "application.submitted",
            "application.submitted"
        ]
    );
    assert!(kinds(&env, access(&bob)).await.is_empty());
    env.app.drain_jobs().await;
    let mail = mail_to(&env, mails + 2, "owner@rabt.test").await;
    assert!(
        mail.contains("Subject: An application to Engine was withdrawn"),
        "{mail}"
    );
    assert!(
        mail.contains("An applicant withdrew their application to your project \"Engine\"."),
        "{mail}"
    );
    assert_eq!(env.smtp.messages().len(), mails + 2);
}

#[tokio::test]
async fn housekeeping_deletes_notifications_read_longer_ago_than_the_retention() {
    let env = spawn(vec![("notification_retention_days", "30".into())]).await;
    let owner = signed_in(&env, "owner@rabt.test").await;
    let project = published(&env, access(&owner), "Popular").await;
    for n in 0..4 {
        let applicant = signed_in(&env, &format!("a{n}@rabt.test")).await;
        let applied = apply(&env, access(&applicant), &project, "Hi").await;
        assert_eq!(applied.status(), 201);
    }
    let page = json_of(env.app.get_as(access(&owner), "/v1/notifications").await).await;
    let ids: Vec<uuid::Uuid> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    // Read 31 days ago, read 29 days ago, unread for 31 days, read just now.
    let db = env.app.app_db();
    let mut tx = db.begin(&rabt::db::Actor::Service).await.unwrap();
    for (id, created, read) in [
        (ids[0], "31 days", Some("31 days")),
        (ids[1], "31 days", Some("29 days")),
        (ids[2], "31 days", None),
        (ids[3], "0 days", Some("0 days")),
    ] {
        sqlx::query(
            "update notifications set created_at = now() - $2::interval, \
                                      read_at = now() - $3::interval where id = $1",
        )
        .bind(id)
        .bind(created)
        .bind(read)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let worker = rabt::jobs::Worker::new(
        db.clone(),
        rabt::app::job_registry(&env.app.state.settings).unwrap(),
        env.app.state.settings.jobs.clone(),
    );
    let swept = worker.housekeep().await.unwrap();
    assert_eq!(swept.removed("notifications"), 1);
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("select id from notifications order by id desc")
        .fetch_all(&env.app.db.admin)
        .await
        .unwrap();
    assert_eq!(left, ids[1..]);
}

#[tokio::test]
async fn applying_is_refused_for_own_closed_and_repeated_applications() {
    let env = spawn(vec![]).await;
    let owner = signed_in(&env, "owner@rabt.test").await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let project = published(&env, access(&owner), "Open one").await;
    let hidden = draft(&env, access(&owner), "Draft one").await;

    let own = apply(&env, access(&owner), &project, "Me").await;
    assert_eq!(own.status(), 403);
    assert_eq!(apply(&env, access(&ada), &hidden, "Hi").await.status(), 404);
    let bad = apply(&env, access(&ada), &project, "  ").await;
    assert_eq!(bad.status(), 422);
    let file = uuid::Uuid::new_v4();
    let twice = env
        .app
        .post_json_as(
            access(&ada),
            &format!("/v1/projects/{project}/applications"),
            &json!({"cover_letter": "Hi", "attachment_file_ids": [file, file]}),
        )
        .await;
    assert_eq!(twice.status(), 422);
    assert_eq!(
        problem(twice).await["errors"][0]["field"],
        "attachment_file_ids"
    );

    assert_eq!(
        apply(&env, access(&ada), &project, "First").await.status(),
        201
    );
    let again = apply(&env, access(&ada), &project, "Second").await;
    assert_eq!(problem(again).await["code"], "already_applied");

    // Withdrawn frees the place; the count follows.
    let mine = json_of(env.app.get_as(access(&ada), "/v1/me/applications").await).await;
    let id = mine["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        step(&env, access(&ada), &id, "withdrawn").await.status(),
        200
    );
    let count = json_of(env.app.get(&format!("/v1/projects/{project}")).await).await;
    assert_eq!(count["application_count"], 0);
    assert_eq!(
        apply(&env, access(&ada), &project, "Third").await.status(),
        201
    );

    assert_eq!(
        transition(&env, access(&owner), &project, "in_progress", None)
            .await
            .status(),
        200
    );
    let eve = signed_in(&env, "eve@rabt.test").await;
    let late = apply(&env, access(&eve), &project, "Late").await;
    assert_eq!(problem(late).await["code"], "project_not_open");
}

#[tokio::test]
async fn parallel_submissions_yield_exactly_one_application_and_a_true_count() {
    let env = spawn(vec![]).await;
    let owner = signed_in(&env, "owner@rabt.test").await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let project = published(&env, access(&owner), "Race").await;

    let letters: Vec<String> = (0..8).map(|n| format!("Try {n}")).collect();
    let answers = futures::future::join_all(
        letters
            .iter()
            .map(|letter| apply(&env, access(&ada), &project, letter)),
    )
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);

    // Others applying at once all count.
    let mut tokens = Vec::new();
    for n in 0..6 {
        tokens.push(signed_in(&env, &format!("u{n}@rabt.test")).await);
    }
    let answers = futures::future::join_all(
        tokens
            .iter()
            .map(|t| apply(&env, access(t), &project, "Hello")),
    )
    .await;
    assert!(answers.iter().all(|a| a.status() == 201));
    let (stored, counted): (i64, i32) = sqlx::query_as(
        "select (select count(*) from applications where project_id = $1::uuid), \
                (select application_count from projects where id = $1::uuid)",
    )
    .bind(&project)
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!((stored, counted), (7, 7));
}

async fn apply_with_key(
    env: &AuthApp,
    token: &str,
    project: &str,
    key: &str,
    letter: &str,
) -> reqwest::Response {
    env.app
        .client
        .post(env.app.url(&format!("/v1/projects/{project}/applications")))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"cover_letter": letter}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_application_and_refuses_another_body() {
    let env = spawn(vec![]).await;
    let owner = signed_in(&env, "owner@rabt.test").await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let project = published(&env, access(&owner), "Once").await;

    let first = apply_with_key(&env, access(&ada), &project, "apply-1", "Hello").await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json_of(first).await;
    let again = apply_with_key(&env, access(&ada), &project, "apply-1", "Hello").await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(again).await, first);

    let other = apply_with_key(&env, access(&ada), &project, "apply-1", "Goodbye").await;
    assert_eq!(other.status(), 422);
    assert_eq!(problem(other).await["code"], "idempotency_key_reused");
    // Without the key, applying again is the usual refusal.
    let unkeyed = apply(&env, access(&ada), &project, "Hello").await;
    assert_eq!(problem(unkeyed).await["code"], "already_applied");
}

#[tokio::test]
async fn concurrent_applies_under_one_key_answer_the_first_application() {
    let env = spawn(vec![]).await;
    let owner = signed_in(&env, "owner@rabt.test").await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let project = published(&env, access(&owner), "Race").await;

    let answers = futures::future::join_all(
        (0..8).map(|_| apply_with_key(&env, access(&ada), &project, "apply-race", "Hello")),
    )
    .await;
    let mut created = Vec::new();
    for answer in answers {
        match answer.status().as_u16() {
            201 => created.push(json_of(answer).await),
            409 => assert_eq!(problem(answer).await["code"], "conflict"),
            other => panic!("unexpected {other}: {}", answer.text().await.unwrap()),
        }
    }
    assert!(!created.is_empty());
    assert!(created.iter().all(|a| *a == created[0]), "{created:?}");
    let stored: Vec<String> =
        sqlx::query_scalar("select id::text from applications where project_id = $1::uuid")
            .bind(&project)
            .fetch_all(&env.app.db.admin)
            .await
            .unwrap();
    assert_eq!(stored, [created[0]["id"].as_str().unwrap()]);
}

#[tokio::test]
async fn the_inbox_pages_and_marks_read_and_preferences_are_validated() {
    let env = spawn(vec![]).await;
    let owner = signed_in(&env, "owner@rabt.test").await;
    let project = published(&env, access(&owner), "Popular").await;
    for n in 0..3 {
        let applicant = signed_in(&env, &format!("a{n}@rabt.test")).await;
        assert_eq!(
            apply(&env, access(&applicant), &project, "Hi")
                .await
                .status(),
            201
        );
    }
    let token = access(&owner);
    let first = json_of(env.app.get_as(token, "/v1/notifications?limit=2").await).await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = json_of(
        env.app
            .get_as(token, &format!("/v1/notifications?limit=2&cursor={cursor}"))
            .await,
    )
    .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_cursor"], Value::Null);

    let one = first["items"][0]["id"].clone();
    let marked = env
        .app
        .post_json_as(token, "/v1/notifications/read", &json!({"ids": [one]}))
        .await;
    assert_eq!(marked.status(), 204);
    let unread = json_of(env.app.get_as(token, "/v1/notifications?unread=true").await).await;
    assert_eq!(unread["items"].as_array().unwrap().len(), 2);
    let all = env
        .app
        .post_json_as(token, "/v1/notifications/read", &json!({"all": true}))
        .await;
    assert_eq!(all.status(), 204);
    let unread = json_of(env.app.get_as(token, "/v1/notifications?unread=true").await).await;
    assert_eq!(unread["items"], json!([]));
    let neither = env
        .app
        .post_json_as(token, "/v1/notifications/read", &json!({}))
        .await;
    assert_eq!(neither.status(), 422);

    let defaults = json_of(
        env.app
            .get_as(token, "/v1/me/notification-preferences")
            .await,
    )
    .await;
    assert_eq!(
        defaults,
        json!({"messages": "immediately", "applications": true, "billing": true,
               "product_news": false})
    );
    let bad = env
        .app
        .put_json_as(
            token,
            "/v1/me/notification-preferences",
            &json!({"messages": "hourly", "applications": true, "billing": true,
                      "product_news": false}),
        )
        .await;
    assert_eq!(bad.status(), 422);
    let partial = env
        .app
        .put_json_as(
            token,
            "/v1/me/notification-preferences",
            &json!({"messages": "never"}),
        )
        .await;
    assert_eq!(partial.status(), 422);
}
