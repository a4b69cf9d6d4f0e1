//! The per-request cost of files: signing upload and download URLs, and the
//! storage I/O of `complete` (HEAD, ranged GET of the first bytes, the copy
//! to the file's own key, the upload's removal), against an in-process S3
//! server (s3s-fs, SigV4 checked) and the local folder store. Run with
//! `cargo bench --bench files`; figures go to docs/PERFORMANCE.md. Timings
//! are printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder as ConnBuilder,
};
use rabt::{
    config::Settings,
    files::storage::{Grant, LocalMethod, Storage, object_key, upload_key},
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};
use uuid::Uuid;

fn report(name: &str, iterations: u32, elapsed: Duration) {
    let per = elapsed / iterations;
    let rate = f64::from(iterations) / elapsed.as_secs_f64();
    println!("{name:<56} {per:>12.2?} per op   {rate:>10.0} ops/s");
}

async fn s3_server(root: &std::path::Path) -> std::net::SocketAddr {
    std::fs::create_dir_all(root.join("bench")).unwrap();
    let mut builder = S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
    builder.set_auth(SimpleAuth::from_single("bench", "bench-secret-key"));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    address
}

fn settings(extra: &[(&str, String)]) -> Settings {
    let mut overrides = vec![
        (
            "database_url",
            "postgres://bench@127.0.0.1/bench".to_owned(),
        ),
        (
            "jwt_secret",
            "bench-secret-bench-secret-bench-secret".to_owned(),
        ),
    ];
    overrides.extend(extra.iter().cloned());
    Settings::load_with(&overrides).unwrap()
}

async fn measure(name: &str, storage: &Storage, checks: u32) {
    let ttl = Duration::from_secs(900);
    let disposition = "inline; filename=\"a.png\"; filename*=UTF-8''a.png";
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        let id = Uuid::now_v7();
        std::hint::black_box(
            storage
                .upload_url(&upload_key(id), "image/png", disposition, 4096, ttl)
                .await
                .unwrap(),
        );
    }
    report(&format!("{name}: sign an upload URL"), n, started.elapsed());
    let started = Instant::now();
    for _ in 0..n {
        let id = Uuid::now_v7();
        std::hint::black_box(
            storage
                .download_url(&object_key(id), "image/png", disposition, ttl)
                .await
                .unwrap(),
        );
    }
    report(
        &format!("{name}: sign a download URL"),
        n,
        started.elapsed(),
    );

    // `complete`'s I/O on a 4 KiB upload, each through the signed URL first.
    let http = reqwest::Client::new();
    let body = vec![7u8; 4096];
    let mut ids = Vec::new();
    for _ in 0..checks {
        let id = Uuid::now_v7();
        let signed = storage
            .upload_url(&upload_key(id), "image/png", disposition, 4096, ttl)
            .await
            .unwrap();
        let mut request = http.put(signed.url.as_str()).body(body.clone());
        for (name, value) in &signed.headers {
            request = request.header(name, value);
        }
        assert!(request.send().await.unwrap().status().is_success());
        ids.push(id);
    }
    let started = Instant::now();
    for id in &ids {
        let key = upload_key(*id);
        let size = storage.size(&key).await.unwrap().unwrap();
        std::hint::black_box(storage.first_bytes(&key, size.min(65_536)).await.unwrap());
    }
    report(
        &format!("{name}: check an upload (HEAD + ranged GET)"),
        checks,
        started.elapsed(),
    );
    let started = Instant::now();
    for id in &ids {
        storage
            .copy(&upload_key(*id), &object_key(*id))
            .await
            .unwrap();
        storage.delete(&upload_key(*id)).await.unwrap();
    }
    report(
        &format!("{name}: keep it (copy + delete)"),
        checks,
        started.elapsed(),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let root = std::env::temp_dir().join(format!("rabt-bench-files-{}", Uuid::now_v7()));
    runtime.block_on(async {
        let address = s3_server(&root.join("s3")).await;
        let s3 = Storage::from_settings(&settings(&[
            ("storage_url", "s3://bench".into()),
            ("s3_endpoint", format!("http://{address}")),
            ("aws_access_key_id", "bench".into()),
            ("aws_secret_access_key", "bench-secret-key".into()),
        ]))
        .unwrap();
        measure("S3 (s3s-fs)", &s3, 2_000).await;
        let local = Storage::from_settings(&settings(&[
            (
                "storage_url",
                format!("file://{}", root.join("local").display()),
            ),
            ("public_url", "http://127.0.0.1:9".into()),
        ]))
        .unwrap();
        // The local store's URLs are served by rabt; write straight to it.
        measure_local(&local).await;
    });
    let _ = std::fs::remove_dir_all(&root);
}

async fn measure_local(storage: &Storage) {
    let ttl = Duration::from_secs(900);
    let n = 100_000;
    let started = Instant::now();
    for _ in 0..n {
        let id = Uuid::now_v7();
        std::hint::black_box(
            storage
                .upload_url(&upload_key(id), "image/png", "inline", 4096, ttl)
                .await
                .unwrap(),
        );
    }
    report(
        "local: sign an upload URL (HMAC-SHA256)",
        n,
        started.elapsed(),
    );

    let checks = 5_000;
    let mut ids = Vec::new();
    for _ in 0..checks {
        let id = Uuid::now_v7();
        let grant = Grant {
            method: LocalMethod::Put,
            key: upload_key(id),
            expires: i64::MAX,
            content_type: "image/png".into(),
            disposition: "inline".into(),
            max_bytes: 4096,
        };
        let body = futures::stream::iter([Ok(bytes::Bytes::from(vec![7u8; 4096]))]).boxed();
        assert!(storage.write(&grant, body).await.is_ok());
        ids.push(id);
    }
    let started = Instant::now();
    for id in &ids {
        let key = upload_key(*id);
        let size = storage.size(&key).await.unwrap().unwrap();
        std::hint::black_box(storage.first_bytes(&key, size.min(65_536)).await.unwrap());
    }
    report(
        "local: check an upload (stat + ranged read)",
        checks,
        started.elapsed(),
    );
    let started = Instant::now();
    for id in &ids {
        storage
            .copy(&upload_key(*id), &object_key(*id))
            .await
            .unwrap();
        storage.delete(&upload_key(*id)).await.unwrap();
    }
    report("local: keep it (copy + delete)", checks, started.elapsed());
}
