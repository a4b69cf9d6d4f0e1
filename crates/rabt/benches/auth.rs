//! The per-request cost of authentication, and login throughput at the chosen
//! Argon2 parameters. Run with `cargo bench --bench auth`; figures go to
//! docs/PERFORMANCE.md. Timings are printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use rabt::{
    auth::{passwords, tokens::AccessTokens},
    config::Settings,
    kv::Kv,
};
use secrecy::SecretString;
use uuid::Uuid;

fn report(name: &str, iterations: u32, elapsed: Duration) {
    let per = elapsed / iterations;
    let rate = f64::from(iterations) / elapsed.as_secs_f64();
    println!("{name:<48} {per:>12.2?} per op   {rate:>12.0} ops/s");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = Settings::load_with(&[
        ("database_url", "postgres://bench@127.0.0.1/bench".into()),
        (
            "jwt_secret",
            "bench-secret-bench-secret-bench-secret".into(),
        ),
    ])
    .unwrap();
    let tokens = AccessTokens::from_settings(&settings);
    let token = tokens
        .issue(Uuid::now_v7(), Uuid::now_v7(), vec!["member".into()], 1)
        .unwrap();

    let n = 200_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(tokens.verify(std::hint::black_box(&token)).unwrap());
    }
    report("access token verify (HS256 + claims)", n, started.elapsed());

    let kv = Kv::memory("bench:".into());
    let key = format!("session:{}", Uuid::now_v7());
    runtime.block_on(async {
        kv.set(&key, b"1", Duration::from_secs(60)).await.unwrap();
        let n = 200_000;
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(kv.get(&key).await.unwrap());
        }
        report(
            "cached session check (in-process store)",
            n,
            started.elapsed(),
        );
    });

    if let Ok(url) = std::env::var("REDIS_URL") {
        let settings = Settings::load_with(&[
            ("database_url", "postgres://bench@127.0.0.1/bench".into()),
            ("redis_url", url),
        ])
        .unwrap();
        runtime.block_on(async {
            let kv = Kv::connect(&settings).await.unwrap();
            kv.set(&key, b"1", Duration::from_secs(60)).await.unwrap();
            let n = 20_000;
            let started = Instant::now();
            for _ in 0..n {
                std::hint::black_box(kv.get(&key).await.unwrap());
            }
            report(
                "cached session check (Redis, one client)",
                n,
                started.elapsed(),
            );
        });
    }

    runtime.block_on(async {
        let password = SecretString::from("bench-password-for-argon2".to_owned());
        let hash = passwords::hash(&password).await.unwrap();
        let n = 50;
        let started = Instant::now();
        for _ in 0..n {
            assert!(passwords::verify(&password, &hash).await.unwrap());
        }
        report(
            "password verify, sequential (one login)",
            n,
            started.elapsed(),
        );

        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per_task = 25;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..cores {
            let (password, hash) = (password.clone(), hash.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    assert!(passwords::verify(&password, &hash).await.unwrap());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let total = u32::try_from(cores * per_task).unwrap_or(u32::MAX);
        report(
            &format!("password verify, {cores} in parallel (login throughput)"),
            total,
            started.elapsed(),
        );
    });
}
