//! Durable background work: a Postgres-backed queue (the transactional outbox)
//! and the worker that drains it. See `queue` for the invariants.

pub mod queue;
pub mod runner;

pub use queue::{JobArgs, enqueue, enqueue_at};
pub use runner::{JobContext, JobError, JobRegistry, Outcome, Worker};
