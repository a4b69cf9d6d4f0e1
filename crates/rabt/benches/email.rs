//! Email's costs: each template's render time (minijinja, MJML to HTML), and
//! the outbox's throughput through the whole sender (suppression check,
//! tokens, render, SMTP to a local sink, the attempt's record) with 4
//! workers. Run with `cargo bench --bench email`; it makes (and drops) its
//! own database on the Postgres of `BENCH_DATABASE_URL` (default the local
//! one) and sends mail to a sink on 127.0.0.1 only. Figures go to
//! docs/PERFORMANCE.md; nothing here asserts a timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::ScratchDb;
use rabt::{
    app::{Application, ServeOptions},
    db::Actor,
    email::{self, Template, Templates},
};
use serde_json::json;
use sqlx::{Connection as _, Executor as _};
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn report(name: &str, iterations: u32, elapsed: Duration) {
    let per = elapsed / iterations;
    let rate = f64::from(iterations) / elapsed.as_secs_f64();
    println!("{name:<56} {per:>12.2?} per op   {rate:>10.0} ops/s");
}

fn renders() {
    let templates = Templates::load().unwrap();
    for template in Template::ALL {
        let n = 500;
        let started = Instant::now();
        for _ in 0..n {
            std::hint::black_box(templates.preview(template).unwrap());
        }
        report(
            &format!("render {} (HTML + text)", template.name()),
            n,
            started.elapsed(),
        );
    }
}

/// The least SMTP server that takes mail: it answers every command and
/// counts the messages it accepts.
async fn sink(received: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                let mut line = String::new();
                write.write_all(b"220 sink ESMTP\r\n").await?;
                let mut in_data = false;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok::<(), std::io::Error>(());
                    }
                    if in_data {
                        if line == ".\r\n" {
                            in_data = false;
                            received.fetch_add(1, Ordering::Relaxed);
                            write.write_all(b"250 OK queued\r\n").await?;
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    if upper.starts_with("EHLO") {
                        write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
                    } else if upper.starts_with("DATA") {
                        in_data = true;
                        write.write_all(b"354 go on\r\n").await?;
                    } else if upper.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await?;
                        return Ok(());
                    } else {
                        write.write_all(b"250 OK\r\n").await?;
                    }
                }
            });
        }
    });
    address
}

async fn outbox() {
    let scratch = ScratchDb::create("email").await;
    let url = scratch.url.clone();
    let received = Arc::new(AtomicUsize::new(0));
    let smtp = sink(received.clone()).await;
    let settings = scratch.settings(&[
        ("smtp_url", format!("smtp://{smtp}")),
        ("job_workers", "4".into()),
        ("job_poll_interval_ms", "20".into()),
        ("email_per_domain_per_minute", "0".into()),
    ]);
    let app = Application::build(
        settings,
        ServeOptions {
            // One worker with RABT_JOB_WORKERS (4) slots; it starts with the app.
            workers: true,
            migrate: true,
        },
    )
    .await
    .unwrap();
    let db = app.state().db.clone();
    let mut conn = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
    conn.execute(
        "insert into users (email, display_name) \
         select 'u' || n || '@bench.test', 'User ' || n from generate_series(1, 1000) n",
    )
    .await
    .unwrap();
    let users: Vec<(Uuid, String)> = sqlx::query_as("select id, email from users")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let messages = 2_000;
    let mut tx = db.begin(&Actor::Service).await.unwrap();
    for n in 0..messages {
        let (user, address) = &users[n % users.len()];
        email::enqueue_from(
            &mut tx,
            "bench.test",
            *user,
            address,
            Template::ApplicationEvent,
            json!({"display_name": "Ada", "event": "shortlisted",
                   "project_title": "A bakery website",
                   "link": format!("https://app.rabt.test/applications/{n}")}),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    // The workers start with the app; the clock with them.
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    while received.load(Ordering::Relaxed) < messages {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the outbox stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report(
        "transactional emails sent through SMTP, 4 workers",
        u32::try_from(messages).unwrap(),
        started.elapsed(),
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
    let sent: i64 =
        sqlx::query_scalar("select count(*) from email_messages where sent_at is not null")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    println!("  {sent} messages recorded as sent");
    drop(conn);
    db.close().await;
    scratch.drop().await;
}

fn main() {
    renders();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(outbox());
}
