//! Roles and permissions (API.md §4): the catalogue, custom roles, grants that
//! take effect on the next request, and nobody granting what they lack.

use serde_json::{Value, json};

use crate::helpers::{
    PATIENCE,
    auth::{AuthApp, access, signed_in, spawn},
    eventually, problem,
};

async fn make(env: &AuthApp, email: &str, role: &str) {
    assert!(
        rabt::roles::grant_by_email(env.app.app_db(), email, role)
            .await
            .unwrap()
    );
}

fn id(pair: &Value) -> String {
    pair["user"]["id"].as_str().unwrap().to_owned()
}

async fn put_roles(env: &AuthApp, as_pair: &Value, user: &str, roles: Value) -> reqwest::Response {
    env.app
        .put_json_as(
            access(as_pair),
            &format!("/v1/users/{user}/roles"),
            &json!({ "roles": roles }),
        )
        .await
}

#[tokio::test]
async fn the_catalogue_and_the_builtin_roles_are_listed() {
    let env = spawn(vec![]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let permissions: Vec<String> = env
        .app
        .get_as(access(&ada), "/v1/permissions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(permissions.len(), 10);
    assert!(permissions.contains(&"roles.assign".to_owned()));
    let roles: Vec<Value> = env
        .app
        .get_as(access(&ada), "/v1/roles")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["admin", "member", "moderator"]);
    let moderator = roles.iter().find(|r| r["name"] == "moderator").unwrap();
    assert_eq!(
        moderator["permissions"],
        json!(["projects.moderate", "users.manage", "users.read_private"])
    );
    assert_eq!(moderator["builtin"], true);
}

#[tokio::test]
async fn a_granted_role_counts_from_the_next_request() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make(&env, "admin@rabt.test", "admin").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let hidden = signed_in(&env, "hidden@rabt.test").await;
    sqlx::query("update users set visibility = 'private' where email = 'hidden@rabt.test'")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let hidden_profile = format!("/v1/users/{}", id(&hidden));
    // Eve's session has been checked (and cached) without the permission.
    assert_eq!(
        env.app.get_as(access(&eve), &hidden_profile).await.status(),
        404
    );

    let granted = put_roles(&env, &admin, &id(&eve), json!(["moderator"])).await;
    assert_eq!(granted.status(), 200);
    assert_eq!(
        granted.json::<Value>().await.unwrap()["roles"],
        json!(["member", "moderator"])
    );
    // Same access token, next request: the database now shows her private rows.
    assert_eq!(
        env.app.get_as(access(&eve), &hidden_profile).await.status(),
        200
    );
    let me: Value = env
        .app
        .get_as(access(&eve), "/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["member", "moderator"]));

    let removed = put_roles(&env, &admin, &id(&eve), json!([])).await;
    assert_eq!(removed.status(), 200);
    assert_eq!(
        env.app.get_as(access(&eve), &hidden_profile).await.status(),
        404
    );
}

#[tokio::test]
async fn nobody_grants_a_permission_they_lack_themselves_included() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make(&env, "admin@rabt.test", "admin").await;
    // A role that may assign roles, and nothing else.
    let created = env
        .app
        .post_json_as(
            access(&admin),
            "/v1/roles",
            &json!({"name": "assigner", "description": "Hands out roles", "permissions": ["roles.assign"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let sam = signed_in(&env, "sam@rabt.test").await;
    make(&env, "sam@rabt.test", "assigner").await;
    let eve = signed_in(&env, "eve@rabt.test").await;

    for (target, roles) in [
        (id(&sam), json!(["assigner", "admin"])),
        (id(&eve), json!(["moderator"])),
    ] {
        let refused = put_roles(&env, &sam, &target, roles).await;
        assert_eq!(refused.status(), 403);
        assert_eq!(problem(refused).await["code"], "forbidden");
    }
    // Within their own permissions, fine.
    assert_eq!(
        put_roles(&env, &sam, &id(&eve), json!(["assigner"]))
            .await
            .status(),
        200
    );
    // Taking away what they lack is refused too.
    let admin_id = id(&admin);
    assert_eq!(
        put_roles(&env, &sam, &admin_id, json!([])).await.status(),
        403
    );
    // A plain member may not assign at all.
    let plain = signed_in(&env, "plain@rabt.test").await;
    assert_eq!(
        put_roles(&env, &plain, &id(&eve), json!([])).await.status(),
        403
    );
}

#[tokio::test]
async fn custom_roles_are_managed_and_builtin_ones_are_fixed() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make(&env, "admin@rabt.test", "admin").await;
    let token = access(&admin);

    let bad = env
        .app
        .post_json_as(
            token,
            "/v1/roles",
            &json!({"name": "Bad Name", "permissions": []}),
        )
        .await;
    assert_eq!(problem(bad).await["errors"][0]["field"], "name");
    let unknown = env
        .app
        .post_json_as(
            token,
            "/v1/roles",
            &json!({"name": "editor", "permissions": ["rockets.launch"]}),
        )
        .await;
    assert_eq!(unknown.status(), 422);
    let created = env
        .app
        .post_json_as(
            token,
            "/v1/roles",
            &json!({"name": "editor", "permissions": ["users.manage"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let twice = env
        .app
        .post_json_as(
            token,
            "/v1/roles",
            &json!({"name": "editor", "permissions": []}),
        )
        .await;
    assert_eq!(problem(twice).await["code"], "conflict");

    let patched = env
        .app
        .client
        .patch(env.app.url("/v1/roles/editor"))
        .bearer_auth(token)
        .json(
            &json!({"description": "Edits", "permissions": ["users.manage", "users.read_private"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert_eq!(
        patched.json::<Value>().await.unwrap()["permissions"],
        json!(["users.manage", "users.read_private"])
    );

    for builtin in ["admin", "member", "moderator"] {
        let deleted = env
            .app
            .client
            .delete(env.app.url(&format!("/v1/roles/{builtin}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 409, "{builtin}");
    }
    let deleted = env
        .app
        .client
        .delete(env.app.url("/v1/roles/editor"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    // Without roles.manage: 403.
    let eve = signed_in(&env, "eve@rabt.test").await;
    let refused = env
        .app
        .post_json_as(
            access(&eve),
            "/v1/roles",
            &json!({"name": "mine", "permissions": []}),
        )
        .await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn the_database_refuses_role_changes_without_the_permission() {
    let env = spawn(vec![]).await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let eve_id: uuid::Uuid = id(&eve).parse().unwrap();
    let member = rabt::db::Actor::User {
        id: eve_id,
        permissions: vec![],
    };
    let mut tx = env.app.app_db().begin(&member).await.unwrap();
    let self_grant =
        sqlx::query("insert into user_roles (user_id, role_name) values ($1, 'admin')")
            .bind(eve_id)
            .execute(&mut *tx)
            .await;
    assert!(self_grant.is_err(), "RLS refuses a self-grant");
    drop(tx);
    let mut tx = env.app.app_db().begin(&member).await.unwrap();
    let escalate = sqlx::query(
        "insert into role_permissions (role_name, permission_name) values ('member', 'roles.manage')",
    )
    .execute(&mut *tx)
    .await;
    assert!(escalate.is_err());
    // Even with roles.manage, built-in roles are fixed by the database.
    let manager = rabt::db::Actor::User {
        id: eve_id,
        permissions: vec!["roles.manage".into()],
    };
    drop(tx);
    let mut tx = env.app.app_db().begin(&manager).await.unwrap();
    let fixed = sqlx::query(
        "insert into role_permissions (role_name, permission_name) values ('member', 'roles.manage')",
    )
    .execute(&mut *tx)
    .await;
    assert!(fixed.is_err());
}

#[tokio::test]
async fn creating_a_role_twice_under_one_idempotency_key_creates_it_once() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make(&env, "admin@rabt.test", "admin").await;
    let send = |body: Value| {
        env.app
            .client
            .post(env.app.url("/v1/roles"))
            .bearer_auth(access(&admin))
            .header("Idempotency-Key", "role-1")
            .json(&body)
            .send()
    };
    let body = json!({"name": "curator", "permissions": ["projects.moderate"]});
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    // Without the key the second create would be a 409 (the name is taken).
    let again = send(body).await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let other = send(json!({"name": "other", "permissions": []}))
        .await
        .unwrap();
    assert_eq!(problem(other).await["code"], "idempotency_key_reused");
}

/// Waits (bounded) until `path` answers `status` for `token`: for changes that
/// reach the server through NOTIFY rather than through the request itself.
async fn eventually_status(env: &AuthApp, token: &str, path: &str, status: u16) {
    eventually(
        PATIENCE,
        &format!("{path} to answer {status}"),
        async || {
            let got = env.app.get_as(token, path).await.status();
            if got == status {
                Ok(())
            } else {
                Err(format!("{path} still answers {got}"))
            }
        },
    )
    .await;
}

/// A custom role that may read private profiles, held by a fresh user whose
/// session has been checked (and cached) with it.
async fn reader_with_cached_grants(env: &AuthApp, admin: &Value) -> (Value, String) {
    let created = env
        .app
        .post_json_as(
            access(admin),
            "/v1/roles",
            &json!({"name": "reader", "permissions": ["users.read_private", "analytics.read"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let rita = signed_in(env, "rita@rabt.test").await;
    make(env, "rita@rabt.test", "reader").await;
    let hidden = signed_in(env, "hidden@rabt.test").await;
    sqlx::query("update users set visibility = 'private' where email = 'hidden@rabt.test'")
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    let hidden_profile = format!("/v1/users/{}", id(&hidden));
    assert_eq!(
        env.app
            .get_as(access(&rita), &hidden_profile)
            .await
            .status(),
        200
    );
    (rita, hidden_profile)
}

#[tokio::test]
async fn a_permission_taken_from_a_role_counts_from_its_holders_next_request() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make(&env, "admin@rabt.test", "admin").await;
    let (rita, hidden_profile) = reader_with_cached_grants(&env, &admin).await;

    let patched = env
        .app
        .patch_json_as(
            access(&admin),
            "/v1/roles/reader",
            &json!({"permissions": ["analytics.read"]}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    // The very next request, with the same access token.
    assert_eq!(
        env.app
            .get_as(access(&rita), &hidden_profile)
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn a_deleted_role_counts_from_its_holders_next_request() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make(&env, "admin@rabt.test", "admin").await;
    let (rita, hidden_profile) = reader_with_cached_grants(&env, &admin).await;

    let deleted = env.app.delete_as(access(&admin), "/v1/roles/reader").await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        env.app
            .get_as(access(&rita), &hidden_profile)
            .await
            .status(),
        404
    );
    let me: Value = env
        .app
        .get_as(access(&rita), "/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["member"]));
}

#[tokio::test]
async fn a_change_made_outside_the_api_reaches_cached_sessions() {
    let env = spawn(vec![]).await;
    let admin = signed_in(&env, "admin@rabt.test").await;
    make(&env, "admin@rabt.test", "admin").await;
    let (rita, hidden_profile) = reader_with_cached_grants(&env, &admin).await;

    // `rabt admin revoke` writes Postgres only; NOTIFY carries the change.
    assert!(
        rabt::roles::revoke_by_email(env.app.app_db(), "rita@rabt.test", "reader")
            .await
            .unwrap()
    );
    eventually_status(&env, access(&rita), &hidden_profile, 404).await;

    // An operator's hand-written SQL, the same way.
    make(&env, "rita@rabt.test", "reader").await;
    eventually_status(&env, access(&rita), &hidden_profile, 200).await;
    sqlx::query(
        "delete from role_permissions \
         where role_name = 'reader' and permission_name = 'users.read_private'",
    )
    .execute(&env.app.db.admin)
    .await
    .unwrap();
    eventually_status(&env, access(&rita), &hidden_profile, 404).await;
}

#[tokio::test]
async fn the_database_refuses_grants_beyond_the_granters_own_permissions() {
    let env = spawn(vec![]).await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let eve_id: uuid::Uuid = id(&eve).parse().unwrap();
    let other = signed_in(&env, "other@rabt.test").await;
    let other_id: uuid::Uuid = id(&other).parse().unwrap();
    make(&env, "other@rabt.test", "moderator").await;
    sqlx::query("insert into roles (name) values ('helper')")
        .execute(&env.app.db.admin)
        .await
        .unwrap();

    // roles.assign alone: granting admin, or moderator, is beyond it.
    let assigner = rabt::db::Actor::User {
        id: eve_id,
        permissions: vec!["roles.assign".into()],
    };
    for role in ["admin", "moderator"] {
        let mut tx = env.app.app_db().begin(&assigner).await.unwrap();
        let granted = sqlx::query("insert into user_roles (user_id, role_name) values ($1, $2)")
            .bind(eve_id)
            .bind(role)
            .execute(&mut *tx)
            .await;
        assert!(granted.is_err(), "{role} granted through SQL");
    }
    // Nor can they take moderator away from someone.
    let mut tx = env.app.app_db().begin(&assigner).await.unwrap();
    let taken = sqlx::query("delete from user_roles where user_id = $1")
        .bind(other_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(taken.rows_affected(), 0);
    // A role without permissions is within anyone's.
    let granted = sqlx::query("insert into user_roles (user_id, role_name) values ($1, 'helper')")
        .bind(eve_id)
        .execute(&mut *tx)
        .await;
    assert!(granted.is_ok());
    tx.commit().await.unwrap();

    // roles.manage alone: a custom role cannot be given what the manager lacks.
    let manager = rabt::db::Actor::User {
        id: eve_id,
        permissions: vec!["roles.manage".into()],
    };
    let mut tx = env.app.app_db().begin(&manager).await.unwrap();
    let escalated = sqlx::query(
        "insert into role_permissions (role_name, permission_name) values ('helper', 'users.delete')",
    )
    .execute(&mut *tx)
    .await;
    assert!(escalated.is_err());
    let mut tx = env.app.app_db().begin(&manager).await.unwrap();
    let own = sqlx::query(
        "insert into role_permissions (role_name, permission_name) values ('helper', 'roles.manage')",
    )
    .execute(&mut *tx)
    .await;
    assert!(own.is_ok(), "a permission the manager holds can be given");
}

#[tokio::test]
async fn a_signed_in_request_appends_only_the_audit_entries_its_permissions_allow() {
    let env = spawn(vec![]).await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let eve_id: uuid::Uuid = id(&eve).parse().unwrap();
    let append = |permissions: Vec<String>, action: &'static str| {
        let db = env.app.app_db().clone();
        async move {
            let actor = rabt::db::Actor::User {
                id: eve_id,
                permissions,
            };
            let mut tx = db.begin(&actor).await.unwrap();
            sqlx::query("insert into audit_log (actor_id, action, subject_id) values ($1, $2, $1)")
                .bind(eve_id)
                .bind(action)
                .execute(&mut *tx)
                .await
                .is_ok()
        }
    };
    for action in [
        "user_suspended",
        "roles_changed",
        "login_succeeded",
        "user_deactivated",
    ] {
        assert!(!append(vec![], action).await, "a member forged {action}");
    }
    assert!(!append(vec!["users.manage".into()], "roles_changed").await);
    assert!(append(vec!["users.manage".into()], "user_suspended").await);
    assert!(append(vec!["roles.assign".into()], "roles_changed").await);
}

/// The permissions code demands by type are exactly the database's catalogue,
/// so a permission added to one and not the other fails here.
#[tokio::test]
async fn the_typed_permissions_are_the_catalogue_of_the_database() {
    let app = crate::helpers::spawn_app().await;
    let mut catalogue: Vec<String> = sqlx::query_scalar("select name from permissions")
        .fetch_all(&app.db.admin)
        .await
        .unwrap();
    catalogue.sort();
    let mut typed: Vec<String> = rabt::auth::ALL_PERMISSIONS
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    typed.sort();
    assert_eq!(typed, catalogue);
}
