//! Projects and applications as tests arrange them: through the API, as their
//! owners and applicants would.

use serde_json::{Value, json};

use crate::helpers::auth::AuthApp;

/// `token`'s holder creates a project from `body`.
pub async fn create(env: &AuthApp, token: &str, body: Value) -> reqwest::Response {
    env.app.post_json_as(token, "/v1/projects", &body).await
}

/// A publishable draft; returns its id.
pub async fn draft(env: &AuthApp, token: &str, title: &str) -> String {
    let response = create(
        env,
        token,
        json!({"title": title, "summary": "A short summary", "category": "web",
               "skills": ["rust"], "budget": {"min": 1000, "max": 5000, "currency": "usd"}}),
    )
    .await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Asks to move project `id` to status `to`.
pub async fn transition(
    env: &AuthApp,
    token: &str,
    id: &str,
    to: &str,
    reason: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({"to": to});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    env.app
        .post_json_as(token, &format!("/v1/projects/{id}/transitions"), &body)
        .await
}

/// A published project; returns its id.
pub async fn published(env: &AuthApp, token: &str, title: &str) -> String {
    let id = draft(env, token, title).await;
    assert_eq!(
        transition(env, token, &id, "open", None).await.status(),
        200
    );
    id
}

/// The titles on a page of search results, in order.
pub fn titles_of(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect()
}

/// `token`'s holder applies to `project`.
pub async fn apply(env: &AuthApp, token: &str, project: &str, letter: &str) -> reqwest::Response {
    env.app
        .post_json_as(
            token,
            &format!("/v1/projects/{project}/applications"),
            &json!({"cover_letter": letter, "proposed_budget": {"amount": 2500, "currency": "usd"}}),
        )
        .await
}
