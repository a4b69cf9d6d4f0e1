//! The HTTP edge every route shares: problem bodies, request ids, headers,
//! CORS, JSON parsing, limits, timeouts and panics.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::post};
use rabt::{app::with_edge, http::AppJson, state::AppState};
use serde::{Deserialize, Serialize};

use crate::helpers::{AppOptions, TestApp, problem, spawn_app, spawn_app_with};

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    title: String,
    count: u32,
}

/// The app's own edge around routes that exist only in these tests.
async fn spawn_probe(app: &TestApp) -> SocketAddr {
    let routes: Router<AppState> = Router::new()
        .route(
            "/probe",
            post(|AppJson(probe): AppJson<Probe>| async move { AppJson(probe) }),
        )
        .route(
            "/slow",
            post(|| async {
                // A handler slower than the request timeout the test sets (1 s).
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/panic",
            post(|| async {
                #[allow(clippy::panic)]
                {
                    panic!("secret internal detail")
                }
                #[allow(unreachable_code)]
                ""
            }),
        );
    let router = with_edge(routes, app.state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    address
}

async fn post_probe(
    app: &TestApp,
    address: SocketAddr,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(format!("http://{address}/probe"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem_quoting_the_request_id() {
    let app = spawn_app().await;
    let response = app.get("/v1/nothing-here").await;
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = problem(response).await;
    assert_eq!(body["code"], "not_found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "https://rabt.dev/problems/not_found");
    assert_eq!(body["request_id"], request_id.as_str());
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_an_allow_header() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "allow was {allow}");
    assert_eq!(problem(response).await["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_malformed_path_id_is_a_404_not_a_400() {
    let app = spawn_app().await;
    let response = app.get("/v1/users/not-a-uuid").await;
    assert_eq!(response.status(), 404);
    assert_eq!(problem(response).await["code"], "not_found");
}

#[tokio::test]
async fn a_sane_client_request_id_is_echoed_and_an_odd_one_replaced() {
    let app = spawn_app().await;
    let sane = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "client-trace.42")
        .send()
        .await
        .unwrap();
    assert_eq!(sane.headers()["x-request-id"], "client-trace.42");

    let odd = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "spaces and {braces}")
        .send()
        .await
        .unwrap();
    let replaced = odd.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(replaced, "spaces and {braces}");
    assert!(uuid::Uuid::parse_str(replaced).is_ok());
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/health/live", "/v1/nothing-here"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        // Served over plain HTTP with an http:// public URL: no HSTS.
        assert!(headers.get("strict-transport-security").is_none());
    }
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let app = spawn_app_with(AppOptions {
        overrides: vec![("public_url", "https://api.rabt.test".into())],
        ..AppOptions::default()
    })
    .await;
    let response = app.get("/health/live").await;
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
}

#[tokio::test]
async fn cors_admits_the_frontend_origin_and_no_other() {
    let app = spawn_app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/users/x"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let allowed = preflight("https://app.rabt.test").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.rabt.test"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );

    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn malformed_json_is_a_400_invalid_json() {
    let app = spawn_app().await;
    let address = spawn_probe(&app).await;
    let response = post_probe(&app, address, "application/json", b"{\"title\": ".to_vec()).await;
    assert_eq!(response.status(), 400);
    assert_eq!(problem(response).await["code"], "invalid_json");
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_422_naming_the_field() {
    let app = spawn_app().await;
    let address = spawn_probe(&app).await;

    let unknown = post_probe(
        &app,
        address,
        "application/json",
        br#"{"title":"a","count":1,"is_admin":true}"#.to_vec(),
    )
    .await;
    assert_eq!(unknown.status(), 422);
    let body = problem(unknown).await;
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["errors"][0]["field"], "is_admin");
    assert_eq!(body["errors"][0]["code"], "unknown_field");

    let wrong_type = post_probe(
        &app,
        address,
        "application/json",
        br#"{"title":"a","count":-3}"#.to_vec(),
    )
    .await;
    assert_eq!(wrong_type.status(), 422);
    assert_eq!(problem(wrong_type).await["errors"][0]["field"], "count");

    let fine = post_probe(
        &app,
        address,
        "application/json; charset=utf-8",
        br#"{"title":"a","count":3}"#.to_vec(),
    )
    .await;
    assert_eq!(fine.status(), 200);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let address = spawn_probe(&app).await;
    let response = post_probe(&app, address, "text/plain", b"title=a".to_vec()).await;
    assert_eq!(response.status(), 415);
    assert_eq!(problem(response).await["code"], "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem() {
    let app = spawn_app().await;
    let address = spawn_probe(&app).await;
    let big = format!(
        r#"{{"title":"{}","count":1}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    let response = post_probe(&app, address, "application/json", big.into_bytes()).await;
    assert_eq!(response.status(), 413);
    assert_eq!(problem(response).await["code"], "payload_too_large");
}

#[tokio::test]
async fn a_request_over_the_timeout_is_a_503_problem() {
    let app = spawn_app_with(AppOptions {
        overrides: vec![("request_timeout_secs", "1".into())],
        ..AppOptions::default()
    })
    .await;
    let address = spawn_probe(&app).await;
    let response = app
        .client
        .post(format!("http://{address}/slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(problem(response).await["code"], "unavailable");
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_problem_without_internals() {
    let app = spawn_app().await;
    let address = spawn_probe(&app).await;
    let response = app
        .client
        .post(format!("http://{address}/panic"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(!text.contains("secret internal detail"));
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], "internal");
}

#[tokio::test]
async fn shutdown_lets_the_server_stop_cleanly() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health/live").await.status(), 200);
    let address = app.address;
    app.stop().await;
    assert!(tokio::net::TcpStream::connect(address).await.is_err());
}

#[tokio::test]
async fn authentication_routes_have_a_tighter_body_limit() {
    let app = crate::helpers::spawn_app().await;
    let padding = "x".repeat(rabt::app::AUTH_BODY_LIMIT + 1);
    let response = app
        .post_json(
            "/v1/auth/login",
            &serde_json::json!({"email": "a@rabt.test", "password": padding}),
        )
        .await;
    assert_eq!(response.status(), 413);
    assert_eq!(
        crate::helpers::problem(response).await["code"],
        "payload_too_large"
    );
}
