//! The query cache (crates/rabt/src/query_cache.rs): anonymous searches are
//! answered from it until a change to what they show, through the API or not.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    PATIENCE,
    auth::{AuthApp, access, signed_in, spawn_on},
    eventually,
    projects::{apply, published, titles_of},
};

/// An anonymous search: its `Cache-Status` and its page.
async fn anonymous(env: &AuthApp, query: &str) -> (String, Value) {
    let response = env.app.get(&format!("/v1/projects?{query}")).await;
    assert_eq!(response.status(), 200);
    let status = response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, response.json().await.unwrap())
}

/// Searches until the answer comes from the cache twice in a row, 100 ms
/// apart: the notifications of the writes before may still arrive and drop
/// what an earlier search kept.
async fn until_hit(env: &AuthApp, query: &str) -> Value {
    let what = format!("{query} to come from the cache twice in a row");
    eventually(PATIENCE, &what, async || {
        let (status, page) = anonymous(env, query).await;
        if status != "rabt; hit" {
            return Err(status);
        }
        // Time must pass: a notification still on its way gives no sign to
        // wait for, only time to arrive in.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, again) = anonymous(env, query).await;
        if status != "rabt; hit" {
            return Err(status);
        }
        assert_eq!(again, page);
        Ok(page)
    })
    .await
}

async fn answers_until_a_change(redis: bool) {
    let env = spawn_on(redis, Vec::new()).await;
    let owner = signed_in(&env, "potter@rabt.test").await;
    let token = access(&owner);
    let first = published(&env, token, "Kiln firing schedule").await;

    let (status, page) = anonymous(&env, "q=kiln&facets=category").await;
    assert_eq!(status, "rabt; fwd=miss");
    assert_eq!(titles_of(&page), ["Kiln firing schedule"]);
    assert_eq!(until_hit(&env, "q=kiln&facets=category").await, page);
    // Another query is another answer.
    let (status, _) = anonymous(&env, "q=kiln").await;
    assert_eq!(status, "rabt; fwd=miss");
    // A signed-in caller may see their own drafts: never from the cache.
    let response = env.app.get_as(token, "/v1/projects?q=kiln").await;
    assert_eq!(response.headers()["cache-status"], "rabt; fwd=bypass");

    // A refused write changes nothing, and keeps the answers.
    until_hit(&env, "q=kiln&facets=category").await;
    let refused = env
        .app
        .post_json("/v1/projects", &json!({"title": "Kiln"}))
        .await;
    assert_eq!(refused.status(), 401);
    let (status, _) = anonymous(&env, "q=kiln&facets=category").await;
    assert_eq!(status, "rabt; hit");
    // A write through the API drops them before it answers, even one that no
    // trigger hears (preferences are no part of a search).
    let response = env
        .app
        .put_json_as(
            token,
            "/v1/me/notification-preferences",
            &json!({"messages": "digest", "applications": true, "billing": true,
                      "product_news": false}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let (status, _) = anonymous(&env, "q=kiln&facets=category").await;
    assert_eq!(status, "rabt; fwd=miss");

    // A write through the API is read at once.
    published(&env, token, "Kiln repair").await;
    let (status, page) = anonymous(&env, "q=kiln&facets=category").await;
    assert_eq!(status, "rabt; fwd=miss");
    assert_eq!(titles_of(&page), ["Kiln repair", "Kiln firing schedule"]);
    assert_eq!(page["facets"]["category"][0]["count"], 2);

    // So is an application, which the project counts.
    let applicant = signed_in(&env, "apprentice@rabt.test").await;
    until_hit(&env, "q=kiln&facets=category").await;
    let applied = apply(&env, access(&applicant), &first, "I can fire kilns.").await;
    assert_eq!(applied.status(), 201);
    let (status, page) = anonymous(&env, "q=kiln&facets=category").await;
    assert_eq!(status, "rabt; fwd=miss");
    let counted = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == first.as_str());
    assert_eq!(counted.unwrap()["application_count"], 1);

    // So is a change of the owner's name, shown on every project.
    let response = env
        .app
        .patch_json_as(token, "/v1/me", &json!({"display_name": "Potter"}))
        .await;
    assert_eq!(response.status(), 200);
    let (_, page) = anonymous(&env, "q=kiln&facets=category").await;
    for project in page["items"].as_array().unwrap() {
        assert_eq!(project["owner"]["display_name"], "Potter");
    }

    // A change made outside the API reaches the cache through the database's
    // notification, long before the answer would expire.
    until_hit(&env, "q=kiln&facets=category").await;
    sqlx::query("update projects set title = 'Glaze recipes' where id = $1")
        .bind(first.parse::<Uuid>().unwrap())
        .execute(&env.app.db.admin)
        .await
        .unwrap();
    eventually(PATIENCE, "the change to reach the cache", async || {
        let (_, page) = anonymous(&env, "q=kiln&facets=category").await;
        if titles_of(&page) == ["Kiln repair"] {
            Ok(())
        } else {
            Err(format!("still answered from before the change: {page}"))
        }
    })
    .await;
}

#[tokio::test]
async fn anonymous_searches_are_answered_from_redis_until_a_change() {
    answers_until_a_change(true).await;
}

#[tokio::test]
async fn anonymous_searches_are_answered_from_memory_until_a_change() {
    answers_until_a_change(false).await;
}

#[tokio::test]
async fn a_cache_of_zero_seconds_is_off() {
    let env = spawn_on(true, vec![("search_cache_secs", "0".into())]).await;
    let owner = signed_in(&env, "potter@rabt.test").await;
    published(&env, access(&owner), "Kiln firing schedule").await;
    for _ in 0..2 {
        let (status, page) = anonymous(&env, "q=kiln").await;
        assert_eq!(status, "rabt; fwd=bypass");
        assert_eq!(titles_of(&page), ["Kiln firing schedule"]);
    }
}
