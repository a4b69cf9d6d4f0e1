//! The realtime load tool behind `scripts/bench-realtime` (numbers go to
//! docs/PERFORMANCE.md; nothing here asserts a timing, and it never runs in
//! CI). It opens `BENCH_SOCKETS` WebSockets spread over the users that
//! scripts/bench/realtime-data.sql made (half on each of the two instances
//! in `BENCH_URLS`), reports the first instance's memory with them open, then
//! sends `BENCH_RATE` messages a second for `BENCH_SECONDS` through the
//! first instance's REST API, and measures each message's store → delivered
//! latency (its `created_at` to its arrival) on the sockets of each instance.
//! Traffic goes to the loopback addresses it is given, only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use rabt::{auth::tokens::AccessTokens, config::Settings};
use sqlx::Row as _;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest as _, http::HeaderValue};
use uuid::Uuid;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn number(name: &str, default: u64) -> u64 {
    env(name, &default.to_string()).parse().expect(name)
}

fn loopback(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("a URL");
    let host = parsed.host_str().unwrap_or_default();
    assert!(
        host == "127.0.0.1" || host == "[::1]" || host == "::1",
        "the load goes to loopback only, not {host}"
    );
    url.trim_end_matches('/').to_owned()
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--bench") && std::env::var("BENCH_URLS").is_err() {
        println!("realtime: run through scripts/bench-realtime");
        return;
    }
    let urls: Vec<String> = env("BENCH_URLS", "").split(',').map(loopback).collect();
    let database = env("BENCH_DATABASE_URL", "");
    let sockets_wanted = number("BENCH_SOCKETS", 10_000);
    let rate = number("BENCH_RATE", 1_000);
    let seconds = number("BENCH_SECONDS", 30);
    let pid = env("BENCH_SERVER_PID", "");
    let settings = Settings::load_with(&[
        ("database_url", database.clone()),
        ("jwt_secret", env("RABT_JWT_SECRET", "")),
        (
            "public_url",
            env("RABT_PUBLIC_URL", "http://127.0.0.1:8080"),
        ),
    ])
    .expect("bench settings");
    let tokens = AccessTokens::from_settings(&settings);

    let db = sqlx::PgPool::connect(&database)
        .await
        .expect("bench database");
    let users: Vec<(Uuid, String)> = sqlx::query(
        "select u.id, s.id as session from bench_users u \
         join sessions s on s.user_id = u.id order by u.n",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|row| {
        let (user, session): (Uuid, Uuid) = (row.get(0), row.get(1));
        (user, tokens.issue(user, session, vec![], 1).unwrap())
    })
    .collect();
    let pairs: Vec<(usize, usize, Uuid)> = sqlx::query(
        "select a.n, b.n, p.conversation from bench_pairs p \
         join bench_users a on a.id = p.low join bench_users b on b.id = p.high",
    )
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .map(|row| {
        let (a, b): (i64, i64) = (row.get(0), row.get(1));
        (a as usize, b as usize, row.get(2))
    })
    .collect();
    println!(
        "realtime: {} users, {} conversations, {} instances",
        users.len(),
        pairs.len(),
        urls.len()
    );

    // Latencies by the instance the receiving socket is on.
    let latencies: Arc<Vec<Mutex<Vec<f64>>>> =
        Arc::new(urls.iter().map(|_| Mutex::new(Vec::new())).collect());
    let received = Arc::new(AtomicU64::new(0));
    let rss_before = if pid.is_empty() { 0 } else { rss_kib(&pid) };
    let mut on_first = 0_u64;
    let opened = Instant::now();
    let mut open = Vec::new();
    for i in 0..sockets_wanted as usize {
        let (_, token) = &users[i % users.len()];
        // Each user's sockets alternate between the instances, so both see
        // every conversation.
        let instance = (i / users.len()) % urls.len();
        if instance == 0 {
            on_first += 1;
        }
        let ws_url = format!("{}/v1/realtime", urls[instance].replacen("http", "ws", 1));
        let mut request = ws_url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(&format!("bearer, {token}")).unwrap(),
        );
        open.push(async move { (instance, tokio_tungstenite::connect_async(request).await) });
        if open.len() == 200 || i + 1 == sockets_wanted as usize {
            for (instance, connected) in futures::future::join_all(open.drain(..)).await {
                let (ws, _) = connected.expect("socket opens");
                let (latencies, received) = (latencies.clone(), received.clone());
                tokio::spawn(async move {
                    let (_, mut read) = ws.split();
                    while let Some(Ok(frame)) = read.next().await {
                        let Message::Text(text) = frame else { continue };
                        let now = chrono::Utc::now();
                        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                        if frame["type"] != "message.created" {
                            continue;
                        }
                        let created = frame["message"]["created_at"]
                            .as_str()
                            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
                        if let Some(created) = created {
                            let lag = now.signed_duration_since(created);
                            latencies[instance]
                                .lock()
                                .unwrap()
                                .push(lag.num_microseconds().unwrap_or(0) as f64 / 1000.0);
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        }
    }
    println!(
        "realtime: {sockets_wanted} sockets open in {:.1?}",
        opened.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    if !pid.is_empty() {
        let kib = rss_kib(&pid);
        println!(
            "realtime: first instance RSS: {:.1} MiB before, {:.1} MiB with its {on_first} \
             sockets ({:.1} KiB more per socket)",
            rss_before as f64 / 1024.0,
            kib as f64 / 1024.0,
            kib.saturating_sub(rss_before) as f64 / on_first.max(1) as f64
        );
    }

    // Messages through the first instance, at the rate, spread over pairs.
    let client = reqwest::Client::new();
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let total = rate * seconds;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = Vec::new();
    for k in 0..total as usize {
        interval.tick().await;
        let (a, _, conversation) = pairs[k % pairs.len()];
        let url = format!("{}/v1/conversations/{conversation}/messages", urls[0]);
        let token = users[a].1.clone();
        let (client, sent, failed) = (client.clone(), sent.clone(), failed.clone());
        inflight.push(tokio::spawn(async move {
            let ok = client
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({"body": format!("load message {k}")}))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 201);
            if ok {
                sent.fetch_add(1, Ordering::Relaxed);
            } else {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    futures::future::join_all(inflight).await;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = sent.load(Ordering::Relaxed);
    println!(
        "realtime: {sent} messages stored in {elapsed:.1?} ({:.0}/s asked {rate}/s), {} refused, {} deliveries",
        sent as f64 / elapsed.as_secs_f64(),
        failed.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed)
    );
    for (instance, lags) in latencies.iter().enumerate() {
        let mut lags = lags.lock().unwrap().clone();
        lags.sort_by(f64::total_cmp);
        println!(
            "realtime: store -> delivered on instance {} ({}): n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
            instance + 1,
            if instance == 0 {
                "the storing one"
            } else {
                "across instances"
            },
            lags.len(),
            percentile(&lags, 50.0),
            percentile(&lags, 99.0),
            lags.last().copied().unwrap_or(f64::NAN),
        );
    }
    if !pid.is_empty() {
        println!(
            "realtime: first instance RSS after the run: {:.1} MiB",
            rss_kib(&pid) as f64 / 1024.0
        );
    }
}
