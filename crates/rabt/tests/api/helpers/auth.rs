//! An app with a real SMTP server behind it, and the sign-up, sign-in and
//! token steps that tests of signed-in behaviour start from.

use serde_json::{Value, json};

use crate::helpers::{AppOptions, SmtpSink, TestApp, spawn_app_with};

/// The password of every account these helpers make.
pub const PASSWORD: &str = "tangerine-umbrella-42";

/// An app that sends its mail to a [`SmtpSink`] the test reads.
pub struct AuthApp {
    pub app: TestApp,
    pub smtp: SmtpSink,
}

/// With Redis; `extra` overrides settings.
pub async fn spawn(extra: Vec<(&'static str, String)>) -> AuthApp {
    spawn_on(true, extra).await
}

/// With Redis, or with the in-process store when `redis` is false.
pub async fn spawn_on(redis: bool, extra: Vec<(&'static str, String)>) -> AuthApp {
    let smtp = SmtpSink::start().await;
    let mut overrides = vec![("smtp_url", format!("smtp://{}", smtp.address))];
    overrides.extend(extra);
    let app = spawn_app_with(AppOptions {
        redis,
        overrides,
        ..AppOptions::default()
    })
    .await;
    AuthApp { app, smtp }
}

/// Undoes quoted-printable soft breaks and `=3D`, which lettre may use for long
/// lines.
pub fn unfold(data: &str) -> String {
    data.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The token of the first link to `path` in the newest mail to `to`.
pub fn token_in_mail(smtp: &SmtpSink, to: &str, path: &str) -> String {
    let mail = smtp
        .messages()
        .into_iter()
        .rev()
        .find(|m| m.to.iter().any(|t| t == to))
        .unwrap_or_else(|| panic!("no mail to {to}"));
    let body = unfold(&mail.data);
    let link = format!("https://app.rabt.test{path}?token=");
    let at = body
        .find(&link)
        .unwrap_or_else(|| panic!("no {link} in {body}"));
    body[at + link.len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Signs up `email` and runs the jobs, so the verification mail is sent.
pub async fn signup(env: &AuthApp, email: &str) {
    let response = env
        .app
        .post_json(
            "/v1/auth/signup",
            &json!({"email": email, "password": PASSWORD, "display_name": "Ada"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    env.app.drain_jobs().await;
}

/// Signs up and verifies; returns the token pair.
pub async fn signed_in(env: &AuthApp, email: &str) -> Value {
    signup(env, email).await;
    let token = token_in_mail(&env.smtp, email, "/auth/verify-email");
    let response = env
        .app
        .post_json("/v1/auth/verify-email", &json!({"token": token}))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A plain login (no refresh cookie).
pub async fn login(env: &AuthApp, email: &str, password: &str) -> reqwest::Response {
    env.app
        .post_json(
            "/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
}

/// The access token of a token pair.
pub fn access(pair: &Value) -> &str {
    pair["access_token"].as_str().unwrap()
}

/// Where each click-tracked link (`/v1/email/c/…`) of a mail's unfolded text
/// redirects, in order of appearance (each link once).
pub async fn tracked_targets(app: &crate::helpers::TestApp, text: &str) -> Vec<String> {
    let mut paths: Vec<String> = Vec::new();
    for (at, _) in text.match_indices("/v1/email/c/") {
        let path: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c))
            .collect();
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    let mut targets = Vec::new();
    for path in paths {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 302, "{path}");
        targets.push(response.headers()["location"].to_str().unwrap().to_owned());
    }
    targets
}

/// Signs up `email`, makes it an `admin` and signs in again, so the token
/// carries the role; returns the access token.
pub async fn admin(env: &AuthApp, email: &str) -> String {
    signed_in(env, email).await;
    assert!(
        rabt::roles::grant_by_email(env.app.app_db(), email, "admin")
            .await
            .unwrap()
    );
    let pair: Value = login(env, email, PASSWORD).await.json().await.unwrap();
    access(&pair).to_owned()
}
