//! The worker: claims jobs, runs their handlers, keeps their leases alive, and
//! settles them.
//!
//! Execution is at-least-once. A handler can be run again after a crash, so
//! handlers are idempotent: a database effect commits together with
//! [`JobContext::complete_in`]; an external effect (an email) carries a stable
//! id that lets the receiver drop a repeat.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    sync::Arc,
    time::Duration,
};

use futures::{FutureExt as _, future::BoxFuture};
use rand::RngExt as _;
use serde_json::Value;
use sqlx::PgConnection;
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};
use tracing::Instrument as _;
use uuid::Uuid;

use super::queue::{self, ClaimedJob, JobArgs};
use crate::{
    config::JobSettings,
    db::{Actor, Db},
};

/// Why a handler failed: retried with backoff, or dead-lettered at once when
/// running it again cannot help (its arguments are malformed, say).
#[derive(Debug)]
pub struct JobError {
    permanent: bool,
    source: anyhow::Error,
}

impl JobError {
    pub fn permanent(source: impl Into<anyhow::Error>) -> Self {
        Self {
            permanent: true,
            source: source.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for JobError {
    fn from(source: E) -> Self {
        Self {
            permanent: false,
            source: source.into(),
        }
    }
}

/// What a handler gets besides its arguments.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub db: Db,
    pub job_id: Uuid,
    /// 1 on the first run.
    pub attempt: i32,
    worker: Uuid,
    sensitive: bool,
}

impl JobContext {
    /// Marks the job done inside the handler's own transaction, so its database
    /// effect and its completion commit (or roll back) together. `false` means
    /// the lease was lost: roll back, another worker has the job.
    pub async fn complete_in(&self, conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
        queue::complete(conn, self.job_id, self.worker, self.sensitive).await
    }
}

type HandlerFn =
    dyn Fn(JobContext, Value) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync;

/// A housekeeping sweep: deletes what its capability no longer keeps, in the
/// transaction it is given, and says how many rows went.
pub type SweepFn =
    dyn for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<u64, sqlx::Error>> + Send + Sync;

#[derive(Clone)]
struct ErasedHandler {
    run: Arc<HandlerFn>,
    sensitive: bool,
}

/// Which handler runs which kind of job.
#[derive(Default, Clone)]
pub struct JobRegistry {
    handlers: HashMap<&'static str, ErasedHandler>,
    sweeps: Vec<(&'static str, Arc<SweepFn>)>,
}

impl JobRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler for jobs of kind `A::KIND`.
    pub fn register<A, F, Fut>(&mut self, handler: F) -> &mut Self
    where
        A: JobArgs,
        F: Fn(JobContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.handlers.insert(
            A::KIND,
            ErasedHandler {
                run: Arc::new(
                    move |ctx, payload| match serde_json::from_value::<A>(payload) {
                        Ok(args) => handler(ctx, args).boxed(),
                        Err(err) => async move { Err(JobError::permanent(err)) }.boxed(),
                    },
                ),
                sensitive: A::SENSITIVE,
            },
        );
        self
    }

    /// Registers a capability's housekeeping, run hourly by every worker
    /// with the others in one transaction; `name` labels what it removed.
    pub fn sweep<F>(&mut self, name: &'static str, sweep: F) -> &mut Self
    where
        F: for<'c> Fn(&'c mut PgConnection) -> BoxFuture<'c, Result<u64, sqlx::Error>>
            + Send
            + Sync
            + 'static,
    {
        self.sweeps.push((name, Arc::new(sweep)));
        self
    }
}

/// The result of one claim-and-run step; tests drain the queue with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    EmptyQueue,
    Completed,
    WillRetry,
    DeadLettered,
    /// The job's lease ran out while it ran and another worker took it.
    LeaseLost,
}

/// One worker identity; it runs `settings.workers` jobs at a time.
#[derive(Clone)]
pub struct Worker {
    db: Db,
    registry: Arc<JobRegistry>,
    settings: JobSettings,
    id: Uuid,
}

const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_CAP: Duration = Duration::from_secs(3600);

impl Worker {
    pub fn new(db: Db, registry: JobRegistry, settings: JobSettings) -> Self {
        Self {
            db,
            registry: Arc::new(registry),
            settings,
            id: Uuid::now_v7(),
        }
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    async fn extend_lease(&self, job: Uuid) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.begin(&Actor::Service).await?;
        let held = queue::extend_lease(&mut *tx, job, self.id, self.settings.lease).await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn claim(&self) -> Result<Option<ClaimedJob>, sqlx::Error> {
        let mut tx = self.db.begin(&Actor::Service).await?;
        let job = queue::claim(&mut *tx, self.id, self.settings.lease).await?;
        tx.commit().await?;
        Ok(job)
    }

    /// Claims one ready job and runs it to its end.
    pub async fn run_once(&self) -> anyhow::Result<Outcome> {
        let Some(job) = self.claim().await? else {
            return Ok(Outcome::EmptyQueue);
        };
        let span =
            tracing::info_span!("job", job_id = %job.id, kind = %job.kind, attempt = job.attempts);
        Ok(self.execute(job).instrument(span).await?)
    }

    async fn execute(&self, job: ClaimedJob) -> Result<Outcome, sqlx::Error> {
        if job.attempts > job.max_attempts {
            // Its earlier workers all died mid-run; do not try forever.
            return self
                .settle(
                    &job,
                    Err(JobError::permanent(anyhow::anyhow!(
                        "lease expired on every one of {} attempts",
                        job.max_attempts
                    ))),
                    false,
                )
                .await;
        }
        let Some(handler) = self.registry.handlers.get(job.kind.as_str()).cloned() else {
            // Perhaps a newer version enqueued it during a rolling deploy: retry later.
            let err = anyhow::anyhow!("no handler for job kind `{}`", job.kind);
            return self.settle(&job, Err(err.into()), false).await;
        };
        let ctx = JobContext {
            db: self.db.clone(),
            job_id: job.id,
            attempt: job.attempts,
            worker: self.id,
            sensitive: handler.sensitive,
        };
        let started = std::time::Instant::now();
        // Spawned, so a panicking handler is a failed attempt, not a dead worker;
        // aborted with this future, so a stopped worker leaves no handler behind.
        let mut run = AbortOnDropHandle::new(tokio::spawn((handler.run)(ctx, job.payload.clone())));
        let mut heartbeat = tokio::time::interval(self.settings.lease / 3);
        heartbeat.tick().await;
        let result = loop {
            tokio::select! {
                joined = &mut run => break match joined {
                    Ok(result) => result,
                    Err(join_error) => Err(anyhow::anyhow!("handler panicked: {join_error}").into()),
                },
                _ = heartbeat.tick() => {
                    match self.extend_lease(job.id).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job_id = %job.id, "job lease lost while running"),
                        Err(err) => tracing::warn!(job_id = %job.id, error = %err, "could not extend job lease"),
                    }
                }
            }
        };
        metrics::histogram!("job_duration_seconds", "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());
        self.settle(&job, result, handler.sensitive).await
    }

    async fn settle(
        &self,
        job: &ClaimedJob,
        result: Result<(), JobError>,
        sensitive: bool,
    ) -> Result<Outcome, sqlx::Error> {
        let mut tx = self.db.begin(&Actor::Service).await?;
        let outcome = match result {
            Ok(()) => {
                // A handler that completed inside its own transaction already
                // settled the job; then this finds nothing to update.
                queue::complete(&mut *tx, job.id, self.id, sensitive).await?;
                metrics::counter!("jobs_completed_total", "kind" => job.kind.clone()).increment(1);
                Outcome::Completed
            }
            Err(err) => {
                let dead = err.permanent || job.attempts >= job.max_attempts;
                let retry_in = queue::backoff(
                    job.attempts,
                    BACKOFF_BASE,
                    BACKOFF_CAP,
                    rand::rng().random::<f64>(),
                );
                let message = format!("{:#}", err.source);
                let settled =
                    queue::fail(&mut *tx, job.id, self.id, &message, retry_in, err.permanent)
                        .await?;
                metrics::counter!("jobs_failed_total", "kind" => job.kind.clone()).increment(1);
                if !settled {
                    Outcome::LeaseLost
                } else if dead {
                    metrics::counter!("jobs_dead_total", "kind" => job.kind.clone()).increment(1);
                    tracing::error!(job_id = %job.id, kind = %job.kind, error = %message, "job dead-lettered");
                    Outcome::DeadLettered
                } else {
                    tracing::warn!(job_id = %job.id, kind = %job.kind, error = %message,
                        retry_in_secs = retry_in.as_secs(), "job failed; will retry");
                    Outcome::WillRetry
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Runs jobs until `shutdown` fires, then lets running jobs finish within
    /// `grace`. A job still running after that keeps its lease and is run again
    /// by another worker once the lease runs out.
    pub async fn run_until_stopped(self, shutdown: CancellationToken, grace: Duration) {
        let wake = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        tasks.spawn(listen_for_jobs(
            self.db.clone(),
            wake.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(housekeeping(self.clone(), shutdown.clone()));
        for _ in 0..self.settings.workers {
            let worker = self.clone();
            let wake = wake.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move { worker.work_loop(&wake, &shutdown).await });
        }
        tracing::info!(worker_id = %self.id, slots = self.settings.workers, "job worker started");
        shutdown.cancelled().await;
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
            .await
            .is_err()
        {
            tracing::warn!("jobs still running at shutdown; their leases will expire");
            tasks.abort_all();
        }
        tracing::info!(worker_id = %self.id, "job worker stopped");
    }

    async fn work_loop(&self, wake: &Notify, shutdown: &CancellationToken) {
        while !shutdown.is_cancelled() {
            match self.run_once().await {
                Ok(Outcome::EmptyQueue) => {
                    tokio::select! {
                        () = wake.notified() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "job claim failed");
                    tokio::select! {
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }
}

/// Turns `NOTIFY rabt_jobs` into a wake-up, so a new job starts at once rather
/// than at the next poll.
async fn listen_for_jobs(db: Db, wake: Arc<Notify>, shutdown: CancellationToken) {
    // While it is away, workers poll.
    crate::db::follow_channel(&db, "rabt_jobs", "the job listener", &shutdown, |_| {
        wake.notify_waiters();
        std::future::ready(())
    })
    .await;
}

/// What one round of housekeeping removed, by sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept(BTreeMap<&'static str, u64>);

impl Swept {
    /// The rows the sweep `name` removed (0 for a sweep that is not registered).
    pub fn removed(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    fn is_nothing(&self) -> bool {
        self.0.values().all(|n| *n == 0)
    }
}

impl Worker {
    /// One round of housekeeping: succeeded jobs are kept a week for the admin
    /// view and removed after, then every sweep the capabilities registered
    /// runs (idempotency keys, read notifications, …), all in one transaction.
    pub async fn housekeep(&self) -> Result<Swept, sqlx::Error> {
        let mut tx = self.db.begin(&Actor::Service).await?;
        let mut swept = BTreeMap::new();
        let jobs = sqlx::query!(
            "delete from jobs where status = 'succeeded' \
             and finished_at < now() - interval '7 days'",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        swept.insert("jobs", jobs);
        for (name, sweep) in &self.registry.sweeps {
            swept.insert(*name, sweep(&mut tx).await?);
        }
        tx.commit().await?;
        Ok(Swept(swept))
    }
}

/// Runs [`Worker::housekeep`] hourly.
async fn housekeeping(worker: Worker, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match worker.housekeep().await {
            Ok(swept) if swept.is_nothing() => {}
            Ok(swept) => tracing::info!(removed = ?swept.0, "housekeeping removed old rows"),
            Err(err) => tracing::warn!(error = %err, "housekeeping failed"),
        }
    }
}
