//! Privacy policy versions, consents and the policy gate (API.md §11).

use serde_json::{Value, json};

use crate::helpers::{
    auth::{self, AuthApp, signed_in},
    problem,
};

async fn publish(env: &AuthApp, token: &str, version: &str, content: &str) -> reqwest::Response {
    env.app
        .post_json_as(
            token,
            "/v1/admin/legal/privacy-policy",
            &json!({"version": version, "content": content}),
        )
        .await
}

async fn me(env: &AuthApp, token: &str) -> Value {
    env.app.get_as(token, "/v1/me").await.json().await.unwrap()
}

#[tokio::test]
async fn policies_are_public_published_by_legal_managers_and_accepted_at_sign_up() {
    let env = auth::spawn(vec![]).await;
    assert_eq!(env.app.get("/v1/legal/privacy-policy").await.status(), 404);
    let member = auth::access(&signed_in(&env, "member@rabt.test").await).to_owned();
    assert_eq!(
        publish(&env, &member, "2026-12-01", "Hello").await.status(),
        403
    );
    let admin = auth::admin(&env, "legal@rabt.test").await;
    for (version, content) in [("", "Text"), ("bad version!", "Text"), ("v1", "")] {
        let response = publish(&env, &admin, version, content).await;
        assert_eq!(response.status(), 422, "{version:?} {content:?}");
    }
    let response = publish(
        &env,
        &admin,
        "2026-12-01",
        "# Privacy\n\nWe keep **little**. <script>alert(1)</script>",
    )
    .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        publish(&env, &admin, "2026-12-01", "Again").await.status(),
        409
    );
    let policy: Value = env
        .app
        .get("/v1/legal/privacy-policy")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(policy["version"], "2026-12-01");
    let html = policy["content_html"].as_str().unwrap();
    assert!(html.contains("<strong>little</strong>"), "{html}");
    assert!(!html.contains("<script"), "{html}");

    // Signing up now accepts the version in force.
    let newcomer = auth::access(&signed_in(&env, "new@rabt.test").await).to_owned();
    assert_eq!(
        me(&env, &newcomer).await["policy"],
        json!({"accepted_version": "2026-12-01", "current_version": "2026-12-01"})
    );
    let consents: Value = env
        .app
        .get_as(&newcomer, "/v1/me/consents")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(consents.as_array().unwrap().len(), 1, "{consents}");
    assert_eq!(consents[0]["policy_version"], "2026-12-01");
    assert_eq!(consents[0]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn an_unaccepted_policy_blocks_writes_but_not_reads_or_the_consent() {
    let env = auth::spawn(vec![]).await;
    let ada = auth::access(&signed_in(&env, "ada@rabt.test").await).to_owned();
    let admin = auth::admin(&env, "legal@rabt.test").await;
    let change = json!({"headline": "Baker and coder"});
    // Before any policy: writes pass.
    assert_eq!(
        env.app
            .patch_json_as(&ada, "/v1/me", &change)
            .await
            .status(),
        200
    );
    assert_eq!(
        publish(&env, &admin, "v2", "Newer terms").await.status(),
        201
    );

    let response = env.app.patch_json_as(&ada, "/v1/me", &change).await;
    assert_eq!(response.status(), 403);
    let body = problem(response).await;
    assert_eq!(body["code"], "policy_acceptance_required");
    let response = env
        .app
        .post_json_as(
            &ada,
            "/v1/projects",
            &json!({"title": "A bakery website", "description": "Bread online",
                    "budget": {"amount": 100000, "currency": "usd"}, "skills": ["rust"]}),
        )
        .await;
    assert_eq!(response.status(), 403);
    // Reads still answer, and say what is missing.
    let mine = me(&env, &ada).await;
    assert_eq!(
        mine["policy"],
        json!({"accepted_version": null, "current_version": "v2"})
    );
    // Only a published version can be accepted.
    let response = env
        .app
        .post_json_as(&ada, "/v1/me/consents", &json!({"policy_version": "v9"}))
        .await;
    assert_eq!(response.status(), 422);
    let response = env
        .app
        .post_json_as(&ada, "/v1/me/consents", &json!({"policy_version": "v2"}))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        env.app
            .patch_json_as(&ada, "/v1/me", &change)
            .await
            .status(),
        200
    );
    assert_eq!(me(&env, &ada).await["policy"]["accepted_version"], "v2");
}
