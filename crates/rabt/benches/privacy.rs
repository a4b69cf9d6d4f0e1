//! A data export's cost: the `privacy.export` job for a user with 1,000
//! messages and 20 files of 256 KiB of random bytes (collect the records, write the ZIP to
//! a temporary file, store it in the local file store, queue the email).
//! Run with `cargo bench --bench privacy`; it makes (and drops) its own
//! database on the Postgres of `BENCH_DATABASE_URL` (default the local one)
//! and a folder store under the system's temporary directory. Figures go to
//! docs/PERFORMANCE.md; nothing here asserts a timing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::{io::Write as _, sync::Arc, time::Instant};

use common::ScratchDb;
use rabt::{
    app,
    db::Actor,
    files::storage::{Storage, object_key},
    jobs::{self, Outcome, Worker},
    privacy::export::BuildExport,
};
use uuid::Uuid;

const MESSAGES: i64 = 1_000;
const FILES: usize = 20;
const FILE_BYTES: usize = 256 * 1024;
const RUNS: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let db = ScratchDb::create("privacy").await;
    let root = std::env::temp_dir().join(format!("rabt-bench-store-{}", Uuid::new_v4().simple()));
    let settings = Arc::new(db.settings(&[("storage_url", format!("file://{}", root.display()))]));
    rabt::db::migrate(&settings).await.unwrap();
    let state = app::build_state(settings.clone()).await.unwrap();
    let storage = Storage::from_settings(&settings).unwrap();

    let mut tx = state.db.begin(&Actor::Service).await.unwrap();
    let user: Uuid = sqlx::query_scalar(
        "insert into users (email, display_name, bio) \
         values ('exported@bench.test', 'Exported', 'A bio') returning id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let other: Uuid = sqlx::query_scalar(
        "insert into users (email, display_name) values ('other@bench.test', 'Other') returning id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let conversation: Uuid = sqlx::query_scalar(
        "insert into conversations (kind, created_by) values ('group', $1) returning id",
    )
    .bind(user)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "insert into conversation_participants (conversation_id, user_id) \
         values ($1, $2), ($1, $3)",
    )
    .bind(conversation)
    .bind(user)
    .bind(other)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "insert into messages (conversation_id, author_id, body) \
         select $1, $2, 'Message number ' || n || ' about the project, with a sentence or two.' \
         from generate_series(1, $3) n",
    )
    .bind(conversation)
    .bind(user)
    .bind(MESSAGES)
    .execute(&mut *tx)
    .await
    .unwrap();
    for n in 0..FILES {
        let id = Uuid::now_v7();
        let key = object_key(id);
        let mut file = tempfile::tempfile().unwrap();
        // Random bytes, like the images and PDFs most attachments are: they
        // do not compress, so the ZIP's deflate works its hardest for nothing.
        let bytes: Vec<u8> = (0..FILE_BYTES).map(|_| rand::random::<u8>()).collect();
        file.write_all(&bytes).unwrap();
        let size = storage.write_file(&key, file).await.unwrap();
        sqlx::query(
            "insert into files (id, owner_id, purpose, filename, content_type, size_bytes, \
                                object_key, status, completed_at) \
             values ($1, $2, 'message_attachment', $3, 'text/plain', $4, $5, 'ready', now())",
        )
        .bind(id)
        .bind(user)
        .bind(format!("notes-{n}.txt"))
        .bind(i64::try_from(size).unwrap())
        .bind(&key)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let registry = app::job_registry(&settings).unwrap();
    let worker = Worker::new(state.db.clone(), registry, settings.jobs.clone());
    println!(
        "export of a user with {MESSAGES} messages and {FILES} files of {} KiB",
        FILE_BYTES / 1024
    );
    for run in 1..=RUNS {
        let mut tx = state.db.begin(&Actor::Service).await.unwrap();
        let export: Uuid =
            sqlx::query_scalar("insert into data_exports (user_id) values ($1) returning id")
                .bind(user)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        jobs::enqueue(&mut tx, &BuildExport { export_id: export }, 1)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let started = Instant::now();
        assert!(matches!(
            worker.run_once().await.unwrap(),
            Outcome::Completed
        ));
        let elapsed = started.elapsed();
        let mut tx = state.db.begin(&Actor::Service).await.unwrap();
        let size: i64 = sqlx::query_scalar(
            "select size_bytes from data_exports where id = $1 and status = 'ready'",
        )
        .bind(export)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        println!(
            "run {run}: {elapsed:>10.2?}   ZIP {:.1} MiB",
            size as f64 / (1024.0 * 1024.0)
        );
        // The next run is a new export (one pending at a time); the email
        // and the object's deletion that this one queued are not measured.
        sqlx::query("delete from data_exports where id = $1")
            .bind(export)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("delete from jobs where status = 'queued'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    state.db.close().await;
    db.drop().await;
    let _ = std::fs::remove_dir_all(root);
}
