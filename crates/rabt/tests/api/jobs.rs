//! The durable job queue against real Postgres: transactional enqueue,
//! retries with backoff, dead letters, leases, and crashed workers.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rabt::{
    config::JobSettings,
    db::Actor,
    jobs::{self, JobArgs, JobError, JobRegistry, Outcome, Worker},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::helpers::{
    AppOptions, PATIENCE, TestApp, eventually, jobs::Record, spawn_app, spawn_app_with, wait_until,
};

/// A job that always fails.
#[derive(Debug, Serialize, Deserialize)]
struct Flaky;

impl JobArgs for Flaky {
    const KIND: &'static str = "test.flaky";
}

fn settings(lease: Duration) -> JobSettings {
    JobSettings {
        workers: 2,
        lease,
        poll_interval: Duration::from_millis(50),
        notification_retention_days: 90,
        audit_retention: None,
        erasure_grace: Duration::ZERO,
    }
}

/// The effect table exists only in test databases.
async fn create_effects_table(app: &TestApp) {
    sqlx::raw_sql(
        "create table job_effects (job_id uuid primary key, tag text not null); \
         grant select, insert on job_effects to rabt_service;",
    )
    .execute(&app.db.admin)
    .await
    .unwrap();
}

async fn effects(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("select tag from job_effects order by tag")
        .fetch_all(&app.db.admin)
        .await
        .unwrap()
}

async fn job_row(app: &TestApp, id: Uuid) -> (String, i32) {
    sqlx::query_as("select status, attempts from jobs where id = $1")
        .bind(id)
        .fetch_one(&app.db.admin)
        .await
        .unwrap()
}

/// Registers the `Record` handler: effect and completion in one transaction.
fn record_handler(registry: &mut JobRegistry) {
    registry.register::<Record, _, _>(|ctx, args| async move {
        let mut tx = ctx.db.begin(&Actor::Service).await?;
        sqlx::query("insert into job_effects (job_id, tag) values ($1, $2)")
            .bind(ctx.job_id)
            .bind(&args.tag)
            .execute(&mut *tx)
            .await?;
        if ctx.complete_in(&mut tx).await? {
            tx.commit().await?;
        }
        Ok::<(), JobError>(())
    });
}

async fn enqueue(app: &TestApp, tag: &str) -> Uuid {
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    let id = jobs::enqueue(&mut tx, &Record { tag: tag.into() }, 3)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

#[tokio::test]
async fn a_job_exists_only_if_its_transaction_commits() {
    let app = spawn_app().await;
    create_effects_table(&app).await;
    let mut registry = JobRegistry::new();
    record_handler(&mut registry);
    let worker = Worker::new(
        app.app_db().clone(),
        registry,
        settings(Duration::from_secs(30)),
    );

    let mut rolled_back = app.app_db().begin(&Actor::Service).await.unwrap();
    jobs::enqueue(
        &mut rolled_back,
        &Record {
            tag: "never".into(),
        },
        3,
    )
    .await
    .unwrap();
    rolled_back.rollback().await.unwrap();
    let committed = enqueue(&app, "once").await;

    assert_eq!(worker.run_once().await.unwrap(), Outcome::Completed);
    assert_eq!(worker.run_once().await.unwrap(), Outcome::EmptyQueue);
    assert_eq!(effects(&app).await, vec!["once"]);
    assert_eq!(job_row(&app, committed).await, ("succeeded".into(), 1));
}

#[tokio::test]
async fn a_failing_job_is_retried_later_then_dead_lettered() {
    let app = spawn_app().await;
    let mut registry = JobRegistry::new();
    registry.register::<Flaky, _, _>(|_, _| async { Err(anyhow::anyhow!("smtp down").into()) });
    let worker = Worker::new(
        app.app_db().clone(),
        registry,
        settings(Duration::from_secs(30)),
    );
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    let id = jobs::enqueue(&mut tx, &Flaky, 3).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(worker.run_once().await.unwrap(), Outcome::WillRetry);
    // Backoff: not ready again at once.
    assert_eq!(worker.run_once().await.unwrap(), Outcome::EmptyQueue);
    let (status, attempts) = job_row(&app, id).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1));
    let (error, wait): (String, f64) = sqlx::query_as(
        "select last_error, extract(epoch from run_at - now())::float8 from jobs where id = $1",
    )
    .bind(id)
    .fetch_one(&app.db.admin)
    .await
    .unwrap();
    assert!(error.contains("smtp down"));
    assert!(wait > 0.5, "the retry waits (waited {wait}s)");

    // Skip the waits, as time would.
    for expected in [Outcome::WillRetry, Outcome::DeadLettered] {
        sqlx::query("update jobs set run_at = now() where id = $1")
            .bind(id)
            .execute(&app.db.admin)
            .await
            .unwrap();
        assert_eq!(worker.run_once().await.unwrap(), expected);
    }
    assert_eq!(job_row(&app, id).await, ("dead".into(), 3));

    // A dead job stays put until an operator retries it.
    sqlx::query("update jobs set run_at = now() where id = $1")
        .bind(id)
        .execute(&app.db.admin)
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), Outcome::EmptyQueue);
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    assert!(jobs::queue::retry_dead(&mut *tx, id).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(worker.run_once().await.unwrap(), Outcome::WillRetry);
}

#[tokio::test]
async fn a_job_with_malformed_arguments_is_dead_lettered_at_once() {
    let app = spawn_app().await;
    create_effects_table(&app).await;
    let mut registry = JobRegistry::new();
    record_handler(&mut registry);
    let worker = Worker::new(
        app.app_db().clone(),
        registry,
        settings(Duration::from_secs(30)),
    );
    let id: Uuid = sqlx::query_scalar(
        "insert into jobs (kind, payload, max_attempts) values ('test.record', '{\"tag\": 7}', 5) \
         returning id",
    )
    .fetch_one(&app.db.admin)
    .await
    .unwrap();
    assert_eq!(worker.run_once().await.unwrap(), Outcome::DeadLettered);
    assert_eq!(job_row(&app, id).await, ("dead".into(), 1));
}

#[tokio::test]
async fn a_panicking_handler_fails_the_attempt_not_the_worker() {
    let app = spawn_app().await;
    let mut registry = JobRegistry::new();
    registry.register::<Flaky, _, _>(|_, _| async {
        #[allow(clippy::panic)]
        {
            panic!("boom")
        }
    });
    let worker = Worker::new(
        app.app_db().clone(),
        registry,
        settings(Duration::from_secs(30)),
    );
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    jobs::enqueue(&mut tx, &Flaky, 3).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(worker.run_once().await.unwrap(), Outcome::WillRetry);
}

#[tokio::test]
async fn many_workers_share_the_queue_and_run_each_job_once() {
    let app = spawn_app().await;
    create_effects_table(&app).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut registry = JobRegistry::new();
    {
        let runs = runs.clone();
        registry.register::<Record, _, _>(move |ctx, args| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                let mut tx = ctx.db.begin(&Actor::Service).await?;
                sqlx::query("insert into job_effects (job_id, tag) values ($1, $2)")
                    .bind(ctx.job_id)
                    .bind(&args.tag)
                    .execute(&mut *tx)
                    .await?;
                ctx.complete_in(&mut tx).await?;
                tx.commit().await?;
                Ok::<(), JobError>(())
            }
        });
    }
    for n in 0..40 {
        enqueue(&app, &format!("job-{n:02}")).await;
    }
    // Four workers (think: four instances) drain the queue concurrently.
    let workers: Vec<Worker> = (0..4)
        .map(|_| {
            Worker::new(
                app.app_db().clone(),
                registry.clone(),
                settings(Duration::from_secs(30)),
            )
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in workers {
        tasks
            .spawn(async move { while worker.run_once().await.unwrap() != Outcome::EmptyQueue {} });
    }
    while tasks.join_next().await.is_some() {}
    assert_eq!(runs.load(Ordering::SeqCst), 40);
    assert_eq!(effects(&app).await.len(), 40);
}

#[tokio::test]
async fn a_job_whose_worker_dies_mid_run_runs_again_and_takes_effect_once() {
    let app = spawn_app().await;
    create_effects_table(&app).await;
    let lease = Duration::from_secs(1);

    // Worker A writes the effect, then hangs before committing: it is killed there.
    let started = Arc::new(Notify::new());
    let mut hanging = JobRegistry::new();
    {
        let started = started.clone();
        hanging.register::<Record, _, _>(move |ctx, args| {
            let started = started.clone();
            async move {
                let mut tx = ctx.db.begin(&Actor::Service).await?;
                sqlx::query("insert into job_effects (job_id, tag) values ($1, $2)")
                    .bind(ctx.job_id)
                    .bind(&args.tag)
                    .execute(&mut *tx)
                    .await?;
                started.notify_one();
                std::future::pending::<()>().await;
                tx.commit().await?;
                Ok::<(), JobError>(())
            }
        });
    }
    let mut healthy = JobRegistry::new();
    record_handler(&mut healthy);

    let id = enqueue(&app, "exactly-once").await;
    let worker_a = Worker::new(app.app_db().clone(), hanging, settings(lease));
    let worker_b = Worker::new(app.app_db().clone(), healthy, settings(lease));

    let a = tokio::spawn(async move { worker_a.run_once().await });
    started.notified().await;
    // While A holds the lease, B finds nothing to do.
    assert_eq!(worker_b.run_once().await.unwrap(), Outcome::EmptyQueue);
    // Kill A mid-job: its handler stops, its transaction rolls back, and nothing
    // is settled. The job waits for A's lease to run out, as after a crash.
    a.abort();
    let _ = a.await;
    let outcome = eventually(PATIENCE, "A's lease to run out", async || {
        match worker_b.run_once().await.unwrap() {
            Outcome::EmptyQueue => Err("B still finds nothing to do"),
            outcome => Ok(outcome),
        }
    })
    .await;
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(effects(&app).await, vec!["exactly-once"]);
    assert_eq!(job_row(&app, id).await, ("succeeded".into(), 2));
}

#[tokio::test]
async fn the_served_app_runs_jobs_as_they_are_enqueued_and_drains_on_shutdown() {
    let done = Arc::new(AtomicUsize::new(0));
    let mut registry = JobRegistry::new();
    {
        let done = done.clone();
        registry.register::<Flaky, _, _>(move |_, _| {
            let done = done.clone();
            async move {
                // Long enough that the shutdown finds it running.
                tokio::time::sleep(Duration::from_millis(300)).await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok::<(), JobError>(())
            }
        });
    }
    let app = spawn_app_with(AppOptions {
        workers: true,
        jobs: Some(registry),
        ..AppOptions::default()
    })
    .await;
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    let id = jobs::enqueue(&mut tx, &Flaky, 3).await.unwrap();
    tx.commit().await.unwrap();

    // Woken by NOTIFY, the worker claims it well before the next poll would.
    wait_until(PATIENCE, "the job to start", async || {
        job_row(&app, id).await.0 == "running"
    })
    .await;
    let mut app = app;
    app.shutdown.cancel();
    app.server.take().unwrap().await.unwrap().unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 1, "the running job finished");
    assert_eq!(job_row(&app, id).await.0, "succeeded");
}

#[tokio::test]
async fn a_job_running_longer_than_its_lease_keeps_it_by_heartbeat() {
    let app = spawn_app().await;
    let lease = Duration::from_secs(1);
    let mut slow = JobRegistry::new();
    slow.register::<Flaky, _, _>(|_, _| async {
        // Runs well past its 1 s lease.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        Ok::<(), JobError>(())
    });
    let mut tx = app.app_db().begin(&Actor::Service).await.unwrap();
    let id = jobs::enqueue(&mut tx, &Flaky, 3).await.unwrap();
    tx.commit().await.unwrap();

    let holder = Worker::new(app.app_db().clone(), slow, settings(lease));
    let running = tokio::spawn(async move { holder.run_once().await });
    // Another worker keeps asking well past the first lease: the heartbeat
    // keeps the job with its holder.
    let mut rival_registry = JobRegistry::new();
    rival_registry.register::<Flaky, _, _>(|_, _| async { Ok::<(), JobError>(()) });
    let rival = Worker::new(app.app_db().clone(), rival_registry, settings(lease));
    // Time must pass here: what is tested is that nothing happens for twice
    // the lease, so there is no condition to wait for.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(rival.run_once().await.unwrap(), Outcome::EmptyQueue);
    }
    assert_eq!(running.await.unwrap().unwrap(), Outcome::Completed);
    assert_eq!(job_row(&app, id).await, ("succeeded".into(), 1));
}
