//! Faults of the parts around rabt (issue: reliability): each test breaks a
//! service of its own, never the machine's shared ones.

use std::time::Duration;

use crate::helpers::{
    auth::{access, signed_in, spawn},
    redis::OwnRedis,
};

/// A request whose client gives up after 3 s, as the client of a fault run does.
async fn me_within_3s(env: &crate::helpers::auth::AuthApp, token: &str) -> reqwest::StatusCode {
    env.app
        .client
        .get(env.app.url("/v1/me"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .expect("answered before the client gave up")
        .status()
}

#[tokio::test]
async fn a_stalled_redis_delays_a_request_by_its_call_timeout_not_more() {
    let redis = OwnRedis::start().await;
    let env = spawn(vec![
        ("redis_url", redis.url()),
        ("redis_timeout_ms", "250".into()),
    ])
    .await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    assert_eq!(me_within_3s(&env, access(&pair)).await, 200);

    // Every Redis call now waits; the request goes on without Redis where that
    // is safe (rate limits, cached session checks), from Postgres.
    redis.pause(5000).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the held session check
    assert_eq!(me_within_3s(&env, access(&pair)).await, 200);
    assert_eq!(me_within_3s(&env, access(&pair)).await, 200);
    // Readiness says which part is down.
    let ready = env.app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("redis"), "{body}");
}

/// A TCP relay to Postgres that a test can cut (every connection dropped, new
/// ones refused) and restore: Postgres going away without touching the
/// machine's server.
struct CutPostgres {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    relays: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CutPostgres {
    async fn start() -> Self {
        let target = url::Url::parse(&crate::helpers::admin_url()).unwrap();
        let upstream = format!(
            "{}:{}",
            target.host_str().unwrap_or("127.0.0.1"),
            target.port().unwrap_or(5432)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let relays = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_cut, tasks) = (cut.clone(), relays.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if is_cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: the client sees its connection closed
                }
                let upstream = upstream.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(relay.abort_handle());
            }
        });
        Self { port, cut, relays }
    }

    /// A URL of `database` through the relay.
    fn url(&self, database: &str) -> String {
        let mut url = url::Url::parse(&crate::helpers::url_for(database)).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for relay in self.relays.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn while_postgres_is_away_requests_answer_503_with_retry_after_and_recover() {
    let relay = CutPostgres::start().await;
    let db = crate::helpers::TestDb::new().await;
    let env = spawn(vec![("database_url", relay.url(&db.name))]).await;
    let pair = signed_in(&env, "ada@rabt.test").await;
    assert_eq!(me_within_3s(&env, access(&pair)).await, 200);

    relay.cut();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the held session check
    for _ in 0..3 {
        let response = env
            .app
            .client
            .get(env.app.url("/v1/me"))
            .bearer_auth(access(&pair))
            .timeout(Duration::from_secs(3))
            .send()
            .await
            .expect("answered before the client gave up");
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "unavailable");
    }
    assert_eq!(env.app.get("/health/ready").await.status(), 503);

    relay.restore();
    crate::helpers::wait_until(
        Duration::from_secs(10),
        "requests to be served again",
        async || me_within_3s(&env, access(&pair)).await == 200,
    )
    .await;
}
