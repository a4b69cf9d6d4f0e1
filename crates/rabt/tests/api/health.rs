//! Operations: liveness, readiness, metrics and the API description.

use rabt::{
    app::{Application, ServeOptions},
    db::Actor,
};

use crate::helpers::{
    AppOptions, TestDb, auth, jobs::Record, problem, spawn_app, spawn_app_with, test_settings,
};

#[tokio::test]
async fn liveness_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/health/live").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn readiness_checks_postgres_and_redis() {
    let app = spawn_app().await;
    let body: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["redis"], "ok");
}

#[tokio::test]
async fn readiness_reports_memory_when_no_redis_is_configured() {
    let app = spawn_app_with(AppOptions {
        redis: false,
        ..AppOptions::default()
    })
    .await;
    let body: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(body["redis"], "memory");
}

#[tokio::test]
async fn readiness_is_503_while_postgres_is_unreachable() {
    let db = TestDb::new().await;
    // Nothing listens on port 1: the pool connects lazily, so the app starts and
    // reports itself unready instead of crashing.
    let settings = test_settings(
        &db,
        true,
        &[("database_url", "postgres://rabt@127.0.0.1:1/nowhere".into())],
    );
    let app = Application::build(
        settings,
        ServeOptions {
            workers: false,
            migrate: false,
        },
    )
    .await
    .unwrap();
    let url = format!("http://{}/health/ready", app.local_addr());
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 503);
    let body = problem(response).await;
    assert_eq!(body["code"], "unavailable");
    assert!(body["detail"].as_str().unwrap().contains("postgres"));
    shutdown.cancel();
}

#[tokio::test]
async fn metrics_count_requests_per_route_template_and_show_pool_and_queue() {
    let app = spawn_app().await;
    let user = uuid::Uuid::now_v7();
    app.get(&format!("/v1/users/{user}")).await;
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    rabt::jobs::enqueue(&mut tx, &Record { tag: "m".into() }, 3)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/v1/users/{id}",status="4xx"}"#),
        "{text}"
    );
    assert!(
        !text.contains(&user.to_string()),
        "raw paths must not be labels"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("db_pool_connections"));
    assert!(
        text.contains(r#"jobs_queue_depth{status="queued"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_describes_the_routes() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/v1/users/{id}",
        "/v1/auth/mfa/totp/enroll",
        "/v1/auth/mfa/totp/verify",
        "/v1/auth/mfa/totp",
        "/v1/auth/mfa/challenge",
        "/v1/auth/mfa/recovery-codes",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not described");
    }
    // A sign-in answers a token pair or a challenge; a step-up names its token.
    let login = &doc["paths"]["/v1/auth/login"]["post"]["responses"]["200"];
    assert!(login.to_string().contains("SignInAnswer"), "{login}");
    let answer = &doc["components"]["schemas"]["SignInAnswer"];
    assert_eq!(
        answer["oneOf"].as_array().map(Vec::len),
        Some(2),
        "{answer}"
    );
    assert!(
        doc["components"]["schemas"]["Problem"]["properties"]
            .get("mfa_token")
            .is_some()
    );
    let change = &doc["paths"]["/v1/auth/password/change"]["post"]["responses"];
    assert!(
        change["403"]["description"]
            .as_str()
            .unwrap()
            .contains("mfa_required")
    );
    assert!(doc["components"]["schemas"].get("Problem").is_some());
}

/// Schemathesis's `status_code_conformance` for what the extractors answer
/// before a handler runs: every operation, sent without a body by nobody, by a
/// revoked token and by a member without permissions, answers only statuses
/// its description lists.
#[tokio::test]
async fn every_status_a_bad_or_unprivileged_caller_gets_is_documented() {
    let env = auth::spawn(vec![]).await;
    let member = auth::signed_in(&env, "member@rabt.test").await;
    let revoked = auth::signed_in(&env, "gone@rabt.test").await;
    let logout = env
        .app
        .post_json_as(
            auth::access(&revoked),
            "/v1/auth/logout",
            &serde_json::json!({"scope": "session"}),
        )
        .await;
    assert_eq!(logout.status(), 204);
    let doc: serde_json::Value = env.app.get("/openapi.json").await.json().await.unwrap();
    let callers = [
        ("nobody", None),
        ("a revoked token", Some(auth::access(&revoked))),
        ("a member", Some(auth::access(&member))),
    ];

    let mut undocumented = Vec::new();
    let mut refused_tokens = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", &uuid::Uuid::now_v7().to_string())
            .replace("{name}", "member")
            .replace("{provider}", "github");
        for (method, op) in item.as_object().unwrap() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (who, token) in callers {
                let mut request = env
                    .app
                    .client
                    .request(method.clone(), env.app.url(&concrete));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let status = request.send().await.unwrap().status();
                if status == 401 && who == "a revoked token" {
                    refused_tokens += 1;
                }
                if op["responses"].get(status.as_str()).is_none() {
                    undocumented.push(format!("{method} {path} answered {status} to {who}"));
                }
            }
        }
    }
    assert!(undocumented.is_empty(), "undocumented: {undocumented:#?}");
    assert!(
        refused_tokens > 20,
        "only {refused_tokens} refused a revoked token"
    );
}

/// `schema`, or the component its `$ref` names.
fn resolved<'a>(
    doc: &'a serde_json::Value,
    schema: &'a serde_json::Value,
) -> &'a serde_json::Value {
    match schema["$ref"].as_str() {
        Some(path) => doc.pointer(path.trim_start_matches('#')).unwrap(),
        None => schema,
    }
}

/// The allowed values a schema lists, looking through `$ref`, `oneOf` (a
/// nullable value) and `items` (a comma-separated list).
fn allowed(doc: &serde_json::Value, schema: &serde_json::Value) -> Vec<String> {
    let schema = resolved(doc, schema);
    if let Some(values) = schema["enum"].as_array() {
        return values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
    }
    schema["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(schema.get("items"))
        .flat_map(|s| allowed(doc, s))
        .collect()
}

#[tokio::test]
async fn the_openapi_document_lists_the_allowed_values_of_enumerated_fields() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.get("/openapi.json").await.json().await.unwrap();
    let params = doc["paths"]["/v1/projects"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no {name} parameter"))
    };
    assert_eq!(
        allowed(&doc, &param("sort")["schema"]),
        ["relevance", "newest", "oldest", "budget_high", "budget_low"]
    );
    assert_eq!(
        allowed(&doc, &param("status")["schema"]),
        [
            "draft",
            "open",
            "in_progress",
            "completed",
            "cancelled",
            "archived"
        ]
    );
    assert_eq!(param("status")["explode"], false);
    assert_eq!(
        allowed(&doc, &param("facets")["schema"]),
        ["category", "skills", "status"]
    );
    let preferences = &doc["components"]["schemas"]["Preferences"];
    assert_eq!(
        allowed(&doc, &preferences["properties"]["messages"]),
        ["never", "immediately", "digest"]
    );
}

#[tokio::test]
async fn the_docs_page_renders_the_document_under_its_own_policy() {
    let app = spawn_app().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(csp.contains("default-src 'none'"));
    // No third-party origin: the renderer comes from the server itself.
    assert!(!csp.contains("http"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("/openapi.json"));
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a script")
        .to_owned();
    assert!(script.starts_with("/docs/"), "{script}");
    assert!(
        !html.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    let served = app.get(&script).await;
    assert_eq!(served.status(), 200);
    assert!(
        served.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(served.bytes().await.unwrap().len() > 100_000);
}
