//! Sign-in with Google and GitHub, end to end against local fake providers that
//! speak the real protocols: OpenID discovery, authorization code with PKCE
//! (S256), id_tokens signed RS256 with a test key published as a JWKS, and
//! GitHub's token and emails APIs.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::helpers::{AppOptions, TestApp, problem, spawn_app_with};

const CLIENT_ID: &str = "rabt-test-client";
const CLIENT_SECRET: &str = "rabt-test-secret";

/// What the fake puts in the next id_token (tests break one claim at a time).
#[derive(Clone)]
struct Claims {
    sub: String,
    email: String,
    email_verified: bool,
    audience: String,
    expires_in: i64,
    wrong_nonce: bool,
}

impl Default for Claims {
    fn default() -> Self {
        Self {
            sub: "google-sub-1".into(),
            email: "ada@rabt.test".into(),
            email_verified: true,
            audience: CLIENT_ID.into(),
            expires_in: 300,
            wrong_nonce: false,
        }
    }
}

#[derive(Clone)]
struct Fake {
    address: Arc<Mutex<Option<SocketAddr>>>,
    claims: Arc<Mutex<Claims>>,
    /// code → (code_challenge, nonce)
    codes: Arc<Mutex<HashMap<String, (String, String)>>>,
    github_emails: Arc<Mutex<Value>>,
}

impl Fake {
    fn issuer(&self) -> String {
        format!("http://{}", self.address.lock().unwrap().unwrap())
    }
}

async fn discovery(State(fake): State<Fake>) -> Json<Value> {
    let issuer = fake.issuer();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("fixtures/oidc-test-jwks.json"),
    )
        .into_response()
}

/// The user consents at once: back to the client with a code.
async fn authorize(State(fake): State<Fake>, Query(q): Query<HashMap<String, String>>) -> Response {
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    fake.codes.lock().unwrap().insert(
        code.clone(),
        (
            q["code_challenge"].clone(),
            q.get("nonce").cloned().unwrap_or_default(),
        ),
    );
    let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &q["state"]);
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// Checks the code, the client secret and the PKCE verifier.
fn redeem(fake: &Fake, form: &HashMap<String, String>) -> Result<String, Box<Response>> {
    let refuse = |why: &str| {
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant", "why": why})),
            )
                .into_response(),
        )
    };
    if form.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
        return Err(refuse("client"));
    }
    let (challenge, nonce) = fake
        .codes
        .lock()
        .unwrap()
        .remove(form.get("code").map_or("", String::as_str))
        .ok_or_else(|| refuse("code"))?;
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != challenge {
        return Err(refuse("pkce"));
    }
    Ok(nonce)
}

async fn google_token(
    State(fake): State<Fake>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let nonce = match redeem(&fake, &form) {
        Ok(nonce) => nonce,
        Err(response) => return *response,
    };
    let claims = fake.claims.lock().unwrap().clone();
    let now = chrono::Utc::now().timestamp();
    let id_claims = json!({
        "iss": fake.issuer(),
        "aud": claims.audience,
        "sub": claims.sub,
        "email": claims.email,
        "email_verified": claims.email_verified,
        "name": "Ada Lovelace",
        "iat": now,
        "exp": now + claims.expires_in,
        "nonce": if claims.wrong_nonce { "someone-elses-nonce".to_owned() } else { nonce },
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-key-1".into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!("fixtures/oidc-test-key.pem"))
        .unwrap();
    let id_token = jsonwebtoken::encode(&header, &id_claims, &key).unwrap();
    Json(json!({"access_token": "google-access", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

async fn github_token(
    State(fake): State<Fake>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match redeem(&fake, &form) {
        Ok(_) => Json(json!({"access_token": "gho_test", "token_type": "bearer"})).into_response(),
        Err(response) => *response,
    }
}

fn github_authorised(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some("Bearer gho_test")
}

async fn github_user(headers: HeaderMap) -> Response {
    if !github_authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(json!({"id": 4242, "login": "ada", "name": "Ada L."})).into_response()
}

async fn github_emails(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if !github_authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    Json(fake.github_emails.lock().unwrap().clone()).into_response()
}

async fn start_fake() -> Fake {
    let fake = Fake {
        address: Arc::default(),
        claims: Arc::default(),
        codes: Arc::default(),
        github_emails: Arc::new(Mutex::new(json!([
            {"email": "old@elsewhere.test", "primary": false, "verified": true},
            {"email": "ada@rabt.test", "primary": true, "verified": true},
        ]))),
    };
    let router = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/authorize", get(authorize))
        .route("/token", post(google_token))
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(github_token))
        .route("/user", get(github_user))
        .route("/user/emails", get(github_emails))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    *fake.address.lock().unwrap() = Some(listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    fake
}

async fn spawn_with_providers() -> (TestApp, Fake) {
    let fake = start_fake().await;
    let issuer = fake.issuer();
    let app = spawn_app_with(AppOptions {
        overrides: vec![
            ("oauth_google_client_id", CLIENT_ID.into()),
            ("oauth_google_client_secret", CLIENT_SECRET.into()),
            ("oauth_google_issuer", issuer.clone()),
            ("oauth_github_client_id", CLIENT_ID.into()),
            ("oauth_github_client_secret", CLIENT_SECRET.into()),
            (
                "oauth_github_authorize_url",
                format!("{issuer}/login/oauth/authorize"),
            ),
            (
                "oauth_github_token_url",
                format!("{issuer}/login/oauth/access_token"),
            ),
            ("oauth_github_api_url", issuer.clone()),
        ],
        ..AppOptions::default()
    })
    .await;
    (app, fake)
}

fn location(response: &reqwest::Response) -> url::Url {
    assert_eq!(response.status(), 302, "expected a redirect");
    url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
}

fn query(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Browser steps: rabt → provider → rabt's callback. Returns the callback answer.
async fn sign_in(app: &TestApp, provider: &str) -> reqwest::Response {
    let start = app
        .get(&format!(
            "/v1/auth/oauth/{provider}/authorize?redirect_to=https%3A%2F%2Fapp.rabt.test%2Fwelcome"
        ))
        .await;
    let cookie = browser_cookie(&start);
    let at_provider = location(&start);
    assert!(query(&at_provider, "state").is_some());
    assert!(query(&at_provider, "code_challenge").is_some());
    let consent = app.client.get(at_provider).send().await.unwrap();
    app.client
        .get(callback_here(app, &consent))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// The cookie that binds the flow to this browser, as the browser would send it.
fn browser_cookie(authorize: &reqwest::Response) -> String {
    let set = authorize
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("rabt_oauth="))
        .expect("the flow cookie");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax"));
    set.split(';').next().unwrap().to_owned()
}

/// The provider sends the browser to rabt's public URL; the test app listens on
/// a random port of the same host.
fn callback_here(app: &TestApp, consent: &reqwest::Response) -> url::Url {
    let mut callback = location(consent);
    assert!(callback.path().ends_with("/callback"));
    callback.set_port(Some(app.address.port())).unwrap();
    callback
}

async fn exchange(app: &TestApp, callback: reqwest::Response) -> Value {
    let back = location(&callback);
    assert_eq!(back.path(), "/welcome");
    let code = query(&back, "code").expect("one-time code");
    let response = app
        .post_json("/v1/auth/oauth/exchange", &json!({"code": code}))
        .await;
    assert_eq!(response.status(), 200);
    let pair: Value = response.json().await.unwrap();
    let again = app
        .post_json("/v1/auth/oauth/exchange", &json!({"code": code}))
        .await;
    assert_eq!(problem(again).await["code"], "invalid_token", "single use");
    pair
}

#[tokio::test]
async fn google_sign_in_creates_a_verified_account_and_signs_in() {
    let (app, _fake) = spawn_with_providers().await;
    let pair = exchange(&app, sign_in(&app, "google").await).await;
    assert_eq!(pair["user"]["email"], "ada@rabt.test");
    assert_eq!(pair["user"]["email_verified"], true);
    assert_eq!(pair["user"]["display_name"], "Ada Lovelace");
    let me = app
        .get_as(pair["access_token"].as_str().unwrap(), "/v1/me")
        .await;
    assert_eq!(me.status(), 200);

    // Signing in again finds the same account through the identity.
    let again = exchange(&app, sign_in(&app, "google").await).await;
    assert_eq!(again["user"]["id"], pair["user"]["id"]);
}

#[tokio::test]
async fn the_provider_token_is_stored_sealed_under_the_current_key() {
    let (app, _fake) = spawn_with_providers().await;
    exchange(&app, sign_in(&app, "github").await).await;
    let (bytes, key_id): (Vec<u8>, String) =
        sqlx::query_as("select access_token, token_key_id from oauth_identities")
            .fetch_one(&app.db.admin)
            .await
            .unwrap();
    assert!(!bytes.windows(8).any(|w| w == b"gho_test"));
    assert_eq!(key_id, app.state.keyring.current_id());
    let (provider, subject): (String, String) =
        sqlx::query_as("select provider, subject from oauth_identities")
            .fetch_one(&app.db.admin)
            .await
            .unwrap();
    let opened = app
        .state
        .keyring
        .open(
            &rabt::crypto::Sealed { bytes, key_id },
            &rabt::crypto::oauth_token_context(&provider, &subject),
        )
        .unwrap();
    assert_eq!(opened, b"gho_test");
}

#[tokio::test]
async fn github_sign_in_uses_the_primary_verified_email() {
    let (app, _fake) = spawn_with_providers().await;
    let pair = exchange(&app, sign_in(&app, "github").await).await;
    assert_eq!(pair["user"]["email"], "ada@rabt.test");
    let linked: (String, String) = sqlx::query_as("select provider, subject from oauth_identities")
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(linked, ("github".into(), "4242".into()));
}

#[tokio::test]
async fn a_provider_identity_links_to_an_existing_account_by_verified_email() {
    let (app, fake) = spawn_with_providers().await;
    let google = exchange(&app, sign_in(&app, "google").await).await;
    let github = exchange(&app, sign_in(&app, "github").await).await;
    assert_eq!(google["user"]["id"], github["user"]["id"]);

    // An unverified address at the provider links nothing.
    *fake.claims.lock().unwrap() = Claims {
        sub: "google-sub-2".into(),
        email: "grace@rabt.test".into(),
        email_verified: false,
        ..Claims::default()
    };
    let refused = sign_in(&app, "google").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(problem(refused).await["code"], "email_not_verified");
}

#[tokio::test]
async fn taking_over_an_unverified_account_removes_its_password() {
    let (app, _fake) = spawn_with_providers().await;
    // Someone registered the address without ever proving it.
    sqlx::query(
        "insert into users (email, display_name, password_hash) \
         values ('ada@rabt.test', 'Squatter', '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g')",
    )
    .execute(&app.db.admin)
    .await
    .unwrap();
    exchange(&app, sign_in(&app, "google").await).await;
    let (hash, verified): (Option<String>, bool) = sqlx::query_as(
        "select password_hash, email_verified_at is not null from users where email = 'ada@rabt.test'",
    )
    .fetch_one(&app.db.admin)
    .await
    .unwrap();
    assert_eq!(hash, None);
    assert!(verified);
}

#[tokio::test]
async fn a_bad_state_is_refused() {
    let (app, _fake) = spawn_with_providers().await;
    let forged = app
        .get("/v1/auth/oauth/google/callback?code=anything&state=forged-state")
        .await;
    assert_eq!(forged.status(), 400);
    assert_eq!(problem(forged).await["code"], "invalid_token");

    // A state is good once, and only in the browser that started it.
    let start = app
        .get("/v1/auth/oauth/google/authorize?redirect_to=https%3A%2F%2Fapp.rabt.test%2F")
        .await;
    let cookie = browser_cookie(&start);
    let consent = app.client.get(location(&start)).send().await.unwrap();
    let callback = callback_here(&app, &consent);
    let elsewhere = app.client.get(callback.clone()).send().await.unwrap();
    assert_eq!(elsewhere.status(), 400, "another browser (no flow cookie)");
    let with_cookie = |url: url::Url| app.client.get(url).header("cookie", cookie.clone()).send();
    assert_eq!(with_cookie(callback.clone()).await.unwrap().status(), 302);
    assert_eq!(with_cookie(callback).await.unwrap().status(), 400, "replay");
}

#[tokio::test]
async fn a_wrong_nonce_a_wrong_audience_or_an_expired_id_token_is_refused() {
    let (app, fake) = spawn_with_providers().await;
    for broken in [
        Claims {
            wrong_nonce: true,
            ..Claims::default()
        },
        Claims {
            audience: "another-client".into(),
            ..Claims::default()
        },
        Claims {
            expires_in: -600,
            ..Claims::default()
        },
    ] {
        *fake.claims.lock().unwrap() = broken;
        let response = sign_in(&app, "google").await;
        assert_eq!(response.status(), 400);
        assert_eq!(problem(response).await["code"], "invalid_token");
    }
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn redirect_to_must_be_a_page_of_the_web_app() {
    let (app, _fake) = spawn_with_providers().await;
    for target in [
        "https%3A%2F%2Fevil.example%2F",
        "https%3A%2F%2Fapp.rabt.test.evil.example%2F",
        "javascript%3Aalert(1)",
    ] {
        let response = app
            .get(&format!(
                "/v1/auth/oauth/google/authorize?redirect_to={target}"
            ))
            .await;
        assert_eq!(response.status(), 422, "{target}");
    }
}

#[tokio::test]
async fn an_unconfigured_provider_is_503_and_an_unknown_one_404() {
    let app = spawn_app_with(AppOptions::default()).await;
    let response = app
        .get("/v1/auth/oauth/google/authorize?redirect_to=https%3A%2F%2Fapp.rabt.test%2F")
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(problem(response).await["code"], "unavailable");
    let unknown = app
        .get("/v1/auth/oauth/myspace/authorize?redirect_to=https%3A%2F%2Fapp.rabt.test%2F")
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn an_oversized_provider_answer_is_refused() {
    let (app, fake) = spawn_with_providers().await;
    let padding: Vec<Value> = (0..10_000)
        .map(|n| json!({"email": format!("other{n}@elsewhere.test"), "primary": false, "verified": true}))
        .collect();
    *fake.github_emails.lock().unwrap() = Value::Array(padding);
    let response = sign_in(&app, "github").await;
    assert_eq!(response.status(), 503);
    assert_eq!(problem(response).await["code"], "unavailable");
    let users: i64 = sqlx::query_scalar("select count(*) from users")
        .fetch_one(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(users, 0);
}
