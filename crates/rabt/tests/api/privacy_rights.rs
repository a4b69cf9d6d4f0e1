//! The rights of API.md §11 that take work: a copy of one's data, and the
//! erasure of one's account (also by an admin, `DELETE /users/{id}`).

use std::io::Read as _;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    files::ready_file,
    helpers::{
        auth::{self, AuthApp, PASSWORD, access, login, signed_in},
        messaging::{self, User},
        problem,
        projects::{apply, published},
        storage::{Backend, spawn_files},
        stripe::{BillingApp, PRICE_PRO, subscription},
    },
};

async fn count(env: &AuthApp, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id)
        .fetch_one(&env.app.db.admin)
        .await
        .unwrap()
}

/// Runs the queued erasure jobs now, whenever they were due.
async fn run_erasures_now(env: &AuthApp) {
    sqlx::query("update jobs set run_at = now() where kind = 'privacy.erase'")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    env.app.drain_jobs().await;
}

async fn erase(env: &AuthApp, token: &str, body: Value) -> reqwest::Response {
    env.app
        .client
        .delete(env.app.url("/v1/me"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The files of a ZIP, by name.
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        assert_eq!(file.compression(), zip::CompressionMethod::Deflated);
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        files.insert(file.name().unwrap().into_owned(), content);
    }
    files
}

#[tokio::test]
async fn an_export_holds_every_kind_of_record_about_the_user_and_nothing_of_others() {
    let files_app = spawn_files(Backend::S3, vec![]).await;
    let env = &files_app.env;
    sqlx::query(
        "insert into privacy_policies (version, content, content_html) \
         values ('needle-policy', 'Policy', '<p>Policy</p>')",
    )
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    let ada = messaging::user(env, "ada@rabt.test").await;
    let eve = messaging::user(env, "eve@rabt.test").await;
    let ada_id: Uuid = ada.id.parse().unwrap();

    // A record of every kind, each with a needle of its own.
    let profile = env
        .app
        .patch_json_as(&ada.token, "/v1/me", &json!({"bio": "needle-profile"}))
        .await;
    assert_eq!(profile.status(), 200);
    let preferences = env
        .app
        .put_json_as(
            &ada.token,
            "/v1/me/notification-preferences",
            &json!({"messages": "digest", "applications": true, "billing": true,
                    "product_news": true}),
        )
        .await;
    assert_eq!(preferences.status(), 200);
    published(env, &ada.token, "needle-project").await;
    let eves_project = published(env, &eve.token, "eve-only-project").await;
    let applied = apply(env, &ada.token, &eves_project, "needle-application letter").await;
    assert_eq!(applied.status(), 201);
    let conversation = messaging::conversation(env, &ada, &[&eve]).await;
    messaging::say(env, &ada, &conversation, "needle-message").await;
    messaging::say(env, &eve, &conversation, "eve-only-message").await;
    let file = ready_file(
        &files_app,
        &ada.token,
        "message_attachment",
        "needle.txt",
        "text/plain",
        b"needle-file-bytes",
    )
    .await;
    sqlx::query(
        "insert into notifications (user_id, kind, payload) \
         values ($1, 'test.needle', '{\"what\": \"needle-notification\"}')",
    )
    .bind(ada_id)
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    sqlx::query(
        "insert into billing_customers (user_id, stripe_customer_id) values ($1, 'cus_needle')",
    )
    .bind(ada_id)
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    sqlx::query(
        "insert into invoices (stripe_invoice_id, stripe_customer_id, user_id, status, currency, \
             subtotal, tax, total, amount_due, amount_paid, customer_name, issued_at, state_at) \
         values ('in_needle', 'cus_needle', $1, 'paid', 'eur', 1500, 0, 1500, 1500, 1500, \
                 'needle-invoice', now(), now())",
    )
    .bind(ada_id)
    .execute(&env.app.db.admin)
    .await
    .unwrap();

    // An admin acted on ada: the entry is about her, its actor's address is not.
    sqlx::query(
        "insert into audit_log (actor_id, action, subject_id, ip, user_agent) \
         values ($1, 'user_suspended', $2, '203.0.113.99', 'admins-browser')",
    )
    .bind(eve.id.parse::<Uuid>().unwrap())
    .bind(ada_id)
    .execute(&env.app.db.admin)
    .await
    .unwrap();

    let first = env
        .app
        .post_json_as(&ada.token, "/v1/me/export", &json!({}))
        .await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "pending");
    let id = first["id"].as_str().unwrap().to_owned();
    // One at a time: asking again while it is built answers the same one.
    let again: Value = env
        .app
        .post_json_as(&ada.token, "/v1/me/export", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], first["id"]);
    let path = format!("/v1/me/exports/{id}");
    assert_eq!(env.app.get_as(&eve.token, &path).await.status(), 404);

    env.app.drain_jobs().await;
    let export: Value = env
        .app
        .get_as(&ada.token, &path)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["status"], "ready", "{export}");
    assert!(export["expires_at"].is_string());
    let url = export["download_url"].as_str().unwrap();
    let download = env
        .app
        .client
        .get(files_app.reach(url))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let bytes = download.bytes().await.unwrap();
    assert_eq!(export["size_bytes"].as_u64(), Some(bytes.len() as u64));
    let zip = unzip(&bytes);

    let text = |name: &str| -> String {
        String::from_utf8(zip.get(name).unwrap_or_else(|| panic!("no {name}")).clone()).unwrap()
    };
    for (document, needle) in [
        ("profile.json", "needle-profile"),
        ("projects.json", "needle-project"),
        ("applications.json", "needle-application"),
        ("messages.json", "needle-message"),
        ("notifications.json", "needle-notification"),
        ("files.json", "needle.txt"),
        ("billing.json", "needle-invoice"),
        ("billing.json", "cus_needle"),
        ("sessions.json", "127.0.0.1"),
        ("consents.json", "needle-policy"),
        ("conversations.json", &conversation),
        ("audit_log.json", "data_export_requested"),
        ("emails.json", "verify_email"),
        ("notification_preferences.json", "digest"),
    ] {
        assert!(
            text(document).contains(needle),
            "{needle} not in {document}"
        );
    }
    for name in [
        "identities.json",
        "second_factors.json",
        "roles.json",
        "README.txt",
    ] {
        assert!(zip.contains_key(name), "no {name}");
    }
    let stored = zip
        .iter()
        .find(|(name, _)| name.starts_with(&format!("files/{file}-")))
        .map(|(_, bytes)| bytes.clone())
        .expect("the file's bytes");
    assert_eq!(stored, b"needle-file-bytes");
    // Nothing of another user, and no secret.
    let everything: String = zip
        .values()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .collect();
    for absent in [
        "eve-only-message",
        "eve-only-project",
        "eve@rabt.test",
        "$argon2",
        "password_hash",
    ] {
        assert!(!everything.contains(absent), "{absent} is in the export");
    }

    // The user is emailed the link, which works until the export expires.
    let mails = env.smtp.messages();
    let mail = mails
        .iter()
        .rev()
        .find(|m| m.data.contains("Your rabt data export is ready"))
        .expect("the export mail");
    assert_eq!(mail.to, vec!["ada@rabt.test"]);
    assert!(auth::unfold(&mail.data).contains(&format!("exports/{id}")));

    // Expired: the sweep deletes the row, then the object.
    sqlx::query("update data_exports set expires_at = now() - interval '1 second' where id = $1")
        .bind(id.parse::<Uuid>().unwrap())
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    env.app.housekeep().await;
    env.app.drain_jobs().await;
    assert_eq!(env.app.get_as(&ada.token, &path).await.status(), 404);
    let key = format!("exports/{id}");
    assert_eq!(env.app.state.storage.size(&key).await.unwrap(), None);

    // A new export replaces the one before: one copy at most.
    let export_now = async || -> String {
        let response = env
            .app
            .post_json_as(&ada.token, "/v1/me/export", &json!({}))
            .await;
        assert_eq!(response.status(), 202);
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        env.app.drain_jobs().await;
        id
    };
    let second = export_now().await;
    assert!(
        env.app
            .state
            .storage
            .size(&format!("exports/{second}"))
            .await
            .unwrap()
            .is_some()
    );
    let third = export_now().await;
    assert_eq!(
        env.app
            .get_as(&ada.token, &format!("/v1/me/exports/{second}"))
            .await
            .status(),
        404
    );
    env.app.drain_jobs().await;
    assert_eq!(
        env.app
            .state
            .storage
            .size(&format!("exports/{second}"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        env.app
            .get_as(&ada.token, &format!("/v1/me/exports/{third}"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_erasure_with_no_grace_removes_the_account_keeps_the_conversation_and_frees_the_email() {
    let env = auth::spawn(vec![("erasure_grace_days", "0".into())]).await;
    let ada = messaging::user(&env, "ada@rabt.test").await;
    let eve = messaging::user(&env, "eve@rabt.test").await;
    let ada_id: Uuid = ada.id.parse().unwrap();
    let conversation = messaging::conversation(&env, &eve, &[&ada]).await;
    messaging::say(&env, &ada, &conversation, "hello from ada").await;
    messaging::say(&env, &eve, &conversation, "hello from eve").await;

    let wrong = erase(&env, &ada.token, json!({"password": "not it at all"})).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(problem(wrong).await["code"], "invalid_credentials");
    let missing = erase(&env, &ada.token, json!({})).await;
    assert_eq!(missing.status(), 422);
    assert_eq!(
        count(
            &env,
            "select count(*) from users where id = $1 and deactivated_at is null",
            ada_id
        )
        .await,
        1
    );

    let accepted = erase(&env, &ada.token, json!({"password": PASSWORD})).await;
    assert_eq!(accepted.status(), 202);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["status"], "scheduled");
    // Deactivated at once, every session ended.
    assert_eq!(env.app.get_as(&ada.token, "/v1/me").await.status(), 401);

    env.app.drain_jobs().await;
    assert_eq!(
        count(&env, "select count(*) from users where id = $1", ada_id).await,
        0
    );
    for table in [
        "sessions",
        "consents",
        "notification_preferences",
        "conversation_participants",
    ] {
        let sql = format!("select count(*) from {table} where user_id = $1");
        assert_eq!(count(&env, &sql, ada_id).await, 0, "{table}");
    }
    assert_eq!(
        count(
            &env,
            "select count(*) from audit_log where action = 'user_erased' and subject_id = $1",
            ada_id
        )
        .await,
        1
    );

    // The other participant still reads the conversation, without ada.
    let messages = env
        .app
        .get_as(
            &eve.token,
            &format!("/v1/conversations/{conversation}/messages"),
        )
        .await;
    assert_eq!(messages.status(), 200);
    let messages: Value = messages.json().await.unwrap();
    let text = messages.to_string();
    assert!(text.contains("hello from ada"), "{text}");
    assert!(text.contains("hello from eve"), "{text}");
    let by_ada = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["body"] == "hello from ada")
        .unwrap();
    assert!(by_ada["author_id"].is_null(), "{by_ada}");
    let seen = env
        .app
        .get_as(&eve.token, &format!("/v1/conversations/{conversation}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!seen.contains(&ada.id), "{seen}");
    assert!(!seen.contains("ada@rabt.test"), "{seen}");

    // The address is free again.
    let again = signed_in(&env, "ada@rabt.test").await;
    let me: Value = env
        .app
        .get_as(access(&again), "/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(me["id"], json!(ada.id));
}

#[tokio::test]
async fn signing_in_during_the_grace_period_cancels_ones_own_erasure_but_not_an_admins() {
    let env = auth::spawn(vec![]).await;
    let ada = messaging::user(&env, "ada@rabt.test").await;
    let ada_id: Uuid = ada.id.parse().unwrap();
    let accepted = erase(&env, &ada.token, json!({"password": PASSWORD})).await;
    assert_eq!(accepted.status(), 202);
    let erase_after: chrono::DateTime<chrono::Utc> =
        accepted.json::<Value>().await.unwrap()["erase_after"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
    assert!(erase_after > chrono::Utc::now() + chrono::Duration::days(29));
    assert_eq!(env.app.get_as(&ada.token, "/v1/me").await.status(), 401);
    env.app.drain_jobs().await;
    let told = env
        .smtp
        .messages()
        .into_iter()
        .find(|m| m.data.contains("Your rabt account will be deleted"))
        .expect("the user is told, and how to cancel");
    assert_eq!(told.to, vec!["ada@rabt.test"]);

    // Signing in cancels it.
    let signed = login(&env, "ada@rabt.test", PASSWORD).await;
    assert_eq!(signed.status(), 200);
    let token = signed.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(env.app.get_as(&token, "/v1/me").await.status(), 200);
    assert_eq!(
        count(
            &env,
            "select count(*) from account_erasures where user_id = $1",
            ada_id
        )
        .await,
        0
    );
    // The job, when its time comes, finds nothing to do.
    run_erasures_now(&env).await;
    assert_eq!(
        count(
            &env,
            "select count(*) from users where id = $1 and deactivated_at is null",
            ada_id
        )
        .await,
        1
    );

    // An admin's erasure is not cancelled by signing in.
    let root = auth::admin(&env, "root@rabt.test").await;
    let by_admin = env
        .app
        .delete_as(&root, &format!("/v1/users/{ada_id}"))
        .await;
    assert_eq!(by_admin.status(), 202);
    assert_eq!(login(&env, "ada@rabt.test", PASSWORD).await.status(), 403);
    assert_eq!(
        count(&env, "select count(*) from audit_log where action = 'erasure_requested' and subject_id = $1 and details->>'by' = 'admin'", ada_id).await,
        1
    );
    sqlx::query("update account_erasures set erase_after = now() where user_id = $1")
        .bind(ada_id)
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    run_erasures_now(&env).await;
    assert_eq!(
        count(&env, "select count(*) from users where id = $1", ada_id).await,
        0
    );
}

#[tokio::test]
async fn an_erasure_cancels_the_subscription_and_resumes_after_a_failure() {
    let app = BillingApp::start(vec![("erasure_grace_days", "0".into())]).await;
    let env = &app.env;
    let ada: User = messaging::user(env, "ada@rabt.test").await;
    let ada_id: Uuid = ada.id.parse().unwrap();
    let customer = app.checkout(&ada.token, "pro").await;
    app.stripe
        .set_subscription(subscription("sub_erased", &customer, PRICE_PRO, "active"));
    sqlx::query(
        "insert into subscriptions (stripe_subscription_id, stripe_customer_id, user_id, plan, \
             status, state_at) values ('sub_erased', $2, $1, 'pro', 'active', now())",
    )
    .bind(ada_id)
    .bind(&customer)
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    sqlx::query(
        "insert into invoices (stripe_invoice_id, stripe_customer_id, user_id, status, currency, \
             subtotal, tax, total, amount_due, amount_paid, customer_name, customer_email, \
             issued_at, state_at) \
         values ('in_kept', $2, $1, 'paid', 'eur', 1500, 0, 1500, 1500, 1500, 'Ada', \
                 'ada@rabt.test', now(), now())",
    )
    .bind(ada_id)
    .bind(&customer)
    .execute(&env.app.db.admin)
    .await
    .unwrap();

    // Stripe is down: the erasure waits, the account stays deactivated.
    app.stripe.fail_with(Some(503));
    let accepted = erase(env, &ada.token, json!({"password": PASSWORD})).await;
    assert_eq!(accepted.status(), 202);
    env.app.drain_jobs().await;
    assert_eq!(
        count(env, "select count(*) from users where id = $1", ada_id).await,
        1
    );
    let failed: (String, i32) =
        sqlx::query_as("select status, attempts from jobs where kind = 'privacy.erase'")
            .fetch_one(&env.app.db.admin)
            .await
            .unwrap();
    assert_eq!(failed, ("queued".to_owned(), 1), "retried later");
    // Once begun, signing in no longer cancels it.
    assert_eq!(login(env, "ada@rabt.test", PASSWORD).await.status(), 403);

    // Back: the retry cancels the subscription and erases.
    app.stripe.fail_with(None);
    run_erasures_now(env).await;
    assert_eq!(
        count(env, "select count(*) from users where id = $1", ada_id).await,
        0
    );
    let cancels = app.stripe.calls_to("/v1/subscriptions/sub_erased");
    assert!(cancels.iter().any(|c| c.method == "DELETE"), "{cancels:?}");
    let kept: (String, Option<Uuid>) = sqlx::query_as(
        "select status, user_id from subscriptions where stripe_subscription_id = 'sub_erased'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(kept, ("canceled".to_owned(), None));
    let invoice: (Option<String>, Option<String>, i64) = sqlx::query_as(
        "select customer_name, customer_email, total from invoices where stripe_invoice_id = 'in_kept'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(invoice, (None, None, 1500), "kept, without the person");

    // Running it again (a crash after the commit, a retry by hand) is a no-op.
    sqlx::query("update jobs set status = 'queued', run_at = now() where kind = 'privacy.erase'")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    env.app.drain_jobs().await;
    let dead: i64 = sqlx::query_scalar(
        "select count(*) from jobs where kind = 'privacy.erase' and status <> 'succeeded'",
    )
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(dead, 0);
}
