//! Files (API.md §8): uploads go straight to object storage through signed
//! URLs, are checked before they count, and are private by default.
//!
//! The flow: `POST /files` validates the declared name, type and size
//! against the purpose's limits and the user's quota, records a `pending`
//! row and answers a presigned `PUT`; the client uploads; `POST
//! /files/{id}/complete` reads the object's size and first bytes and makes
//! the file `ready` only when they are what was declared. Downloads are
//! signed, short-lived URLs. [`storage`] is the one interface to both
//! backends (S3, or a local folder whose URLs rabt serves itself).
//!
//! Who sees a file is decided by row-level security (migrations/0025): the
//! uploader, and whoever can see what it is attached to. Other capabilities
//! attach files with [`attach_own_ready`], which admits only the caller's
//! own ready files.
//!
//! Cleanup is durable: deleting a row (by its owner, the sweeps below, or an
//! account's erasure) queues a `files.delete_object` job in the same
//! transaction, retried until the store confirms. The worker's housekeeping
//! removes uploads left pending for 24 hours and files detached from
//! everything for longer than `RABT_FILES_DETACHED_GRACE_HOURS`.

pub mod model;
pub mod routes;
pub mod storage;
pub mod store;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use self::{model::Purpose, storage::Storage};
use crate::{
    http::{ApiError, FieldError},
    jobs::{JobArgs, JobContext, JobError, JobRegistry},
};

/// How long an upload may stay pending before it is removed.
pub const PENDING_TTL: Duration = Duration::from_secs(24 * 3600);

/// Remove an object whose row is gone (queued by the database's trigger).
#[derive(Debug, Serialize, Deserialize)]
pub struct DeleteObject {
    pub object_key: String,
}

impl JobArgs for DeleteObject {
    const KIND: &'static str = "files.delete_object";
}

/// Registers the object deletion job and the sweeps of stale uploads and
/// detached files.
pub fn register(registry: &mut JobRegistry, storage: Storage, detached_grace: Duration) {
    registry.sweep("files_pending", |conn| {
        Box::pin(store::sweep_pending(conn, PENDING_TTL))
    });
    registry.sweep("files_detached", move |conn| {
        Box::pin(async move {
            let removed = store::sweep_detached(conn, detached_grace).await?;
            let stored = store::stored_bytes(conn).await?;
            metrics::gauge!("files_stored_bytes").set(stored as f64);
            Ok(removed)
        })
    });
    registry.register::<DeleteObject, _, _>(move |_ctx: JobContext, args| {
        let storage = storage.clone();
        async move {
            // Only keys rabt made: a forged payload cannot reach other objects.
            if storage::parse_key(&args.object_key).is_none() {
                return Err(JobError::permanent(anyhow::anyhow!(
                    "not a file object key"
                )));
            }
            storage.delete(&args.object_key).await?;
            Ok(())
        }
    });
}

/// Attaches `ids` for the caller: each must be one of `owner`'s own ready
/// files uploaded for `purpose`; any other id (someone else's, still
/// pending, removed, or of another purpose) is a 422 on `field`, without
/// saying which of those it was. Run it in the transaction that stores the
/// reference (an avatar, an application; messages when they come), so the
/// check and the reference commit together.
pub async fn attach_own_ready(
    conn: &mut PgConnection,
    owner: Uuid,
    ids: &[Uuid],
    purpose: Purpose,
    field: &str,
) -> Result<(), ApiError> {
    if ids.is_empty() {
        return Ok(());
    }
    let attached = store::attach(conn, owner, ids, purpose).await?;
    let refused: Vec<String> = ids
        .iter()
        .filter(|id| !attached.contains(id))
        .map(Uuid::to_string)
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(vec![FieldError::new(
            field,
            "invalid_file",
            format!(
                "Not one of your ready {} files: {}.",
                purpose.as_str(),
                refused.join(", ")
            ),
        )]))
    }
}
