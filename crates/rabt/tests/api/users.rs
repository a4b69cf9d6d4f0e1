//! Profiles and moderation (API.md §4).

use serde_json::{Value, json};

use crate::helpers::{
    auth::{AuthApp, PASSWORD, access, login, signed_in, spawn},
    problem,
};

fn id(pair: &Value) -> String {
    pair["user"]["id"].as_str().unwrap().to_owned()
}

async fn patch(env: &AuthApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    env.app.patch_json_as(token, path, &body).await
}

#[tokio::test]
async fn a_user_edits_their_profile_and_bad_fields_are_named() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let updated = patch(
        &env,
        access(&ada),
        "/v1/me",
        json!({"headline": " Engine programmer ", "skills": ["Rust", "rust", "Postgres"],
               "location": "London", "bio": "Notes on the analytical engine."}),
    )
    .await;
    assert_eq!(updated.status(), 200);
    let me: Value = updated.json().await.unwrap();
    assert_eq!(me["headline"], "Engine programmer");
    assert_eq!(me["skills"], json!(["rust", "postgres"]));
    assert_eq!(me["plan"], "free");

    let bad = patch(
        &env,
        access(&ada),
        "/v1/me",
        json!({"display_name": "", "visibility": "secret", "skills": ["x".repeat(41)]}),
    )
    .await;
    assert_eq!(bad.status(), 422);
    let fields: Vec<String> = problem(bad).await["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields, vec!["display_name", "skills[0]", "visibility"]);

    let cleared = patch(&env, access(&ada), "/v1/me", json!({"headline": ""})).await;
    assert_eq!(
        cleared.json::<Value>().await.unwrap()["headline"],
        Value::Null
    );
    let unknown = patch(&env, access(&ada), "/v1/me", json!({"suspended": false})).await;
    assert_eq!(unknown.status(), 422);
}

#[tokio::test]
async fn me_shows_the_plan_and_policy_and_a_null_avatar_clears_it() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    sqlx::query("update users set plan = 'pro' where email = 'ada@rabt.test'")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let me: Value = env
        .app
        .get_as(access(&ada), "/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["plan"], "pro");
    assert_eq!(
        me["policy"],
        json!({"accepted_version": null, "current_version": null})
    );

    // One of Ada's ready avatar uploads (the files tests upload them for real).
    let file: uuid::Uuid = sqlx::query_scalar(
        "insert into files (owner_id, purpose, filename, content_type, size_bytes, object_key, \
                            status, completed_at) \
         values ($1::text::uuid, 'avatar', 'a.png', 'image/png', 10, \
                 'files/' || gen_random_uuid(), 'ready', now()) returning id",
    )
    .bind(ada["user"]["id"].as_str().unwrap())
    .fetch_one(&env.app.db.admin)
    .await
    .unwrap();
    let file = file.to_string();
    let set: Value = patch(
        &env,
        access(&ada),
        "/v1/me",
        json!({"avatar_file_id": file}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(set["avatar_file_id"], file.as_str());
    assert!(
        set["avatar_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/avatar?v={file}"))
    );
    // Absent leaves it; null clears it.
    let kept: Value = patch(&env, access(&ada), "/v1/me", json!({"headline": "Hi"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["avatar_file_id"], file.as_str());
    let cleared: Value = patch(
        &env,
        access(&ada),
        "/v1/me",
        json!({"avatar_file_id": null}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(cleared["avatar_file_id"], Value::Null);
    assert_eq!(cleared["avatar_url"], Value::Null);
}

#[tokio::test]
async fn signed_in_requests_read_only_their_own_email_in_the_database() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let ada_id: uuid::Uuid = id(&ada).parse().unwrap();
    let eve_id: uuid::Uuid = id(&eve).parse().unwrap();
    let as_eve = |permissions: Vec<String>| rabt::db::Actor::User {
        id: eve_id,
        permissions,
    };

    // Ada's profile is public, yet her address is not Eve's to select.
    let mut tx = env.app.app_db().begin(&as_eve(vec![])).await.unwrap();
    let column = sqlx::query_scalar::<_, String>("select email from users where id = $1")
        .bind(ada_id)
        .fetch_optional(&mut *tx)
        .await;
    assert!(column.is_err(), "the email column is not granted");
    drop(tx);
    let mut tx = env.app.app_db().begin(&as_eve(vec![])).await.unwrap();
    let email = |id: uuid::Uuid| {
        sqlx::query_scalar::<_, Option<String>>("select public.user_email($1)").bind(id)
    };
    assert_eq!(email(ada_id).fetch_one(&mut *tx).await.unwrap(), None);
    assert_eq!(
        email(eve_id).fetch_one(&mut *tx).await.unwrap().as_deref(),
        Some("eve@rabt.test")
    );
    drop(tx);
    let mut tx = env
        .app
        .app_db()
        .begin(&as_eve(vec!["users.read_private".into()]))
        .await
        .unwrap();
    assert_eq!(
        email(ada_id).fetch_one(&mut *tx).await.unwrap().as_deref(),
        Some("ada@rabt.test")
    );
}

#[tokio::test]
async fn the_email_shows_only_to_the_user_and_to_moderators() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let mo = signed_in(&env, "mo@rabt.test").await;
    rabt::roles::grant_by_email(env.app.app_db(), "mo@rabt.test", "moderator")
        .await
        .unwrap();
    let path = format!("/v1/users/{}", id(&ada));
    let as_self: Value = env
        .app
        .get_as(access(&ada), &path)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(as_self["email"], "ada@rabt.test");
    let as_moderator: Value = env
        .app
        .get_as(access(&mo), &path)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(as_moderator["email"], "ada@rabt.test");
    let as_other: Value = env
        .app
        .get_as(access(&eve), &path)
        .await
        .json()
        .await
        .unwrap();
    assert!(as_other.get("email").is_none());
    let anonymous: Value = env.app.get(&path).await.json().await.unwrap();
    assert!(anonymous.get("email").is_none());
    assert_eq!(anonymous["display_name"], "Ada");

    patch(
        &env,
        access(&ada),
        "/v1/me",
        json!({"visibility": "private"}),
    )
    .await;
    assert_eq!(env.app.get_as(access(&eve), &path).await.status(), 404);
    assert_eq!(env.app.get_as(access(&mo), &path).await.status(), 200);
}

#[tokio::test]
async fn a_moderator_suspends_a_user_whose_sessions_end_at_once() {
    let env = spawn(vec![]).await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let mo = signed_in(&env, "mo@rabt.test").await;
    rabt::roles::grant_by_email(env.app.app_db(), "mo@rabt.test", "moderator")
        .await
        .unwrap();
    let path = format!("/v1/users/{}", id(&eve));

    // Without users.manage: refused.
    let refused = patch(&env, access(&eve), &path, json!({"suspended": true})).await;
    assert_eq!(refused.status(), 403);

    assert_eq!(env.app.get_as(access(&eve), "/v1/me").await.status(), 200);
    let suspended = patch(
        &env,
        access(&mo),
        &path,
        json!({"suspended": true, "headline": "Under review"}),
    )
    .await;
    assert_eq!(suspended.status(), 200);
    assert_eq!(env.app.get_as(access(&eve), "/v1/me").await.status(), 401);
    let attempt = login(&env, "eve@rabt.test", PASSWORD).await;
    assert_eq!(problem(attempt).await["code"], "account_suspended");

    let reinstated = patch(&env, access(&mo), &path, json!({"suspended": false})).await;
    assert_eq!(reinstated.status(), 200);
    assert_eq!(login(&env, "eve@rabt.test", PASSWORD).await.status(), 200);
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_log where action like 'user_%' order by at, id",
    )
    .fetch_all(&env.app.db.admin)
    .await
    .unwrap();
    assert_eq!(actions, vec!["user_suspended", "user_reinstated"]);
}

#[tokio::test]
async fn deleting_a_user_deactivates_them_and_ends_their_sessions() {
    let env = spawn(vec![]).await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let root = signed_in(&env, "root@rabt.test").await;
    rabt::roles::grant_by_email(env.app.app_db(), "root@rabt.test", "admin")
        .await
        .unwrap();
    let path = format!("/v1/users/{}", id(&eve));
    let by_eve = env
        .app
        .client
        .delete(env.app.url(&path))
        .bearer_auth(access(&eve))
        .send()
        .await
        .unwrap();
    assert_eq!(by_eve.status(), 403);
    let by_root = env
        .app
        .client
        .delete(env.app.url(&path))
        .bearer_auth(access(&root))
        .send()
        .await
        .unwrap();
    assert_eq!(by_root.status(), 202);
    assert_eq!(env.app.get_as(access(&eve), "/v1/me").await.status(), 401);
    assert_eq!(login(&env, "eve@rabt.test", PASSWORD).await.status(), 403);
}

#[tokio::test]
async fn a_user_cannot_lift_their_own_suspension_through_the_database() {
    let env = spawn(vec![]).await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let eve_id: uuid::Uuid = id(&eve).parse().unwrap();
    sqlx::query("update users set suspended_at = now() where id = $1")
        .bind(eve_id)
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let mut tx = env
        .app
        .app_db()
        .begin(&rabt::db::Actor::User {
            id: eve_id,
            permissions: vec![],
        })
        .await
        .unwrap();
    let lifted = sqlx::query("update users set suspended_at = null where id = $1")
        .bind(eve_id)
        .execute(&mut *tx)
        .await;
    assert!(lifted.is_err());
}

#[tokio::test]
async fn a_suspended_users_sessions_are_refused_even_before_they_are_revoked() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    // Suspended straight in the database: no session was revoked.
    sqlx::query("update users set suspended_at = now() where lower(email) = 'ada@rabt.test'")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let me = env.app.get_as(access(&ada), "/v1/me").await;
    assert_eq!(me.status(), 401);
}
