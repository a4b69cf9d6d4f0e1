//! The shared rate limiter (route classes, subjects, headers, Redis sharing).

use serde_json::json;

use crate::helpers::{
    auth::{access, signed_in, spawn},
    problem,
};

#[tokio::test]
async fn reads_are_limited_per_address_with_headers_and_a_problem() {
    let env = spawn(vec![("rate_limit_read_per_minute", "3".into())]).await;
    let app = &env.app;
    for left in [2, 1, 0] {
        let response = app.get("/v1/projects").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-policy"], "\"read\";q=3;w=60");
        let state = response.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            state.starts_with(&format!("\"read\";r={left};t=")),
            "{state}"
        );
    }
    // A forwarding header from an untrusted peer does not buy a new address.
    let refused = app
        .client
        .get(app.url("/v1/projects"))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert!(refused.headers().contains_key("ratelimit"));
    assert_eq!(problem(refused).await["code"], "rate_limited");

    // Operations routes are never limited.
    assert_eq!(app.get("/health/live").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("rate_limited_total{class=\"read\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_signed_in_user_has_their_own_budget_shared_by_every_instance() {
    let env = spawn(vec![("rate_limit_write_per_minute", "2".into())]).await;
    let ada = signed_in(&env, "ada@rabt.test").await;
    let eve = signed_in(&env, "eve@rabt.test").await;
    let (second, stop) = env.app.second_instance().await;
    let body = json!({"title": "Limited"});
    let first = env
        .app
        .post_json_as(access(&ada), "/v1/projects", &body)
        .await;
    assert_eq!(first.status(), 201);
    // The other instance counts against the same budget (Redis).
    let on_second = env
        .app
        .client
        .post(format!("http://{second}/v1/projects"))
        .bearer_auth(access(&ada))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(on_second.status(), 201);
    let third = env
        .app
        .post_json_as(access(&ada), "/v1/projects", &body)
        .await;
    assert_eq!(third.status(), 429);
    // Eve, from the same address, is untouched.
    let hers = env
        .app
        .post_json_as(access(&eve), "/v1/projects", &body)
        .await;
    assert_eq!(hers.status(), 201);
    stop.cancel();
}

#[tokio::test]
async fn authentication_is_limited_per_address_whatever_the_account() {
    let env = spawn(vec![("rate_limit_auth_per_minute", "2".into())]).await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let response = env
            .app
            .post_json(
                "/v1/auth/login",
                &json!({"email": format!("nobody{n}@rabt.test"), "password": "wrong-password-1"}),
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let env = spawn(vec![
        ("rate_limit_read_per_minute", "1".into()),
        ("trusted_proxies", "127.0.0.1/32".into()),
    ])
    .await;
    let app = &env.app;
    let get_from = |forwarded: &'static str| {
        app.client
            .get(app.url("/v1/projects"))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    assert_eq!(get_from("198.51.100.7").await.unwrap().status(), 200);
    assert_eq!(get_from("198.51.100.7").await.unwrap().status(), 429);
    // Another client behind the same proxy.
    assert_eq!(get_from("198.51.100.8").await.unwrap().status(), 200);
    // What a client writes left of the hop the proxy appended buys nothing.
    assert_eq!(
        get_from("203.0.113.1, 198.51.100.7")
            .await
            .unwrap()
            .status(),
        429
    );
    // A hop that does not parse ends the walk at the proxy: both requests
    // count against the proxy's own address, whatever is written left of it.
    assert_eq!(get_from("203.0.113.2, junk").await.unwrap().status(), 200);
    assert_eq!(get_from("203.0.113.3, junk").await.unwrap().status(), 429);
}

#[tokio::test]
async fn a_refused_sign_in_names_its_own_wait_and_claims_no_quota_left() {
    let env = spawn(vec![("rate_limit_account_per_minute", "2".into())]).await;
    let attempt = |email: &'static str| {
        env.app
            .client
            .post(env.app.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": "wrong-password-1"}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(attempt("target@rabt.test").await.unwrap().status(), 401);
    }
    let refused = attempt("target@rabt.test").await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // The auth class still has quota, but that is not the limit that refused.
    assert!(!refused.headers().contains_key("ratelimit"));
    assert!(!refused.headers().contains_key("ratelimit-policy"));
    assert_eq!(problem(refused).await["code"], "rate_limited");
    // Another account, from the same address, is still heard.
    assert_eq!(attempt("other@rabt.test").await.unwrap().status(), 401);

    let metrics = env.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("rate_limited_total{class=\"login_account\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn mail_requests_are_limited_per_email_address_and_hour() {
    let env = spawn(vec![("rate_limit_email_per_hour", "1".into())]).await;
    let forgot = |email: &'static str| {
        env.app
            .client
            .post(env.app.url("/v1/auth/password/forgot"))
            .json(&json!({"email": email}))
            .send()
    };
    assert_eq!(forgot("ada@rabt.test").await.unwrap().status(), 202);
    let refused = forgot("ada@rabt.test").await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry), "{retry}");
    assert_eq!(forgot("eve@rabt.test").await.unwrap().status(), 202);
    let metrics = env.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("rate_limited_total{class=\"forgot_email\"} 1"),
        "{metrics}"
    );
}
