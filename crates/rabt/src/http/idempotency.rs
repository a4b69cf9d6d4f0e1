//! `Idempotency-Key` for the `POST`s that create something (API.md §1).
//!
//! The first response under a key is saved in the same transaction as what it
//! created, so "created" and "remembered" commit together or not at all:
//! - a replay (same user, key and request) gets the saved response, marked
//!   `Idempotent-Replayed: true`, and creates nothing;
//! - the same key with another request is 422 `idempotency_key_reused`;
//! - a concurrent duplicate waits, before doing any work, for the first to
//!   finish (a transaction lock on the user and key), then answers with the
//!   first response, or does the work itself if the first failed (nothing is
//!   saved for a failure), or is 409 `conflict` if its wait times out. Claiming
//!   first matters: done the other way round, a duplicate apply would meet the
//!   first's application and answer `already_applied` instead of the replay.
//!
//! Keys live 24 hours; an older one is forgotten when the key is used again,
//! and by the worker's hourly housekeeping.
//!
//! A handler uses it as:
//! ```ignore
//! let idem = Idempotent::new(key, user.id, "POST /v1/projects", &body)?;
//! let mut tx = state.db.begin(&actor).await?;
//! if let Some(saved) = idem.claim(&mut tx).await? { return Ok(saved); }
//! /* … create … */
//! idem.commit(&state.db, &actor, tx, StatusCode::CREATED, &created).await
//! ```

use axum::{
    Json,
    extract::FromRequestParts,
    http::{HeaderName, HeaderValue, StatusCode, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::{ApiError, ErrorCode, FieldError};
use crate::db::{Actor, Db};

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The `Idempotency-Key` header, if sent: 1..=255 visible ASCII characters.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(Self(None));
        };
        let key =
            value.to_str().ok().map(str::trim).filter(|k| {
                (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
            });
        match key {
            Some(key) => Ok(Self(Some(key.to_owned()))),
            None => Err(ApiError::validation(vec![FieldError::new(
                "Idempotency-Key",
                "invalid",
                "1 to 255 visible ASCII characters.",
            )])),
        }
    }
}

/// One creating request under an optional key.
#[derive(Debug)]
pub struct Idempotent {
    key: Option<String>,
    user: Uuid,
    hash: Vec<u8>,
}

impl Idempotent {
    /// `route` names the operation, so one key cannot replay another endpoint;
    /// `request` is the parsed body (its canonical JSON is what is compared).
    pub fn new(
        key: IdempotencyKey,
        user: Uuid,
        route: &str,
        request: &impl Serialize,
    ) -> Result<Self, ApiError> {
        let body = serde_json::to_value(request).map_err(ApiError::internal)?;
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update([0]);
        hasher.update(body.to_string().as_bytes());
        Ok(Self {
            key: key.0,
            user,
            hash: hasher.finalize().to_vec(),
        })
    }

    /// Takes the key for the rest of the transaction, waiting while a request
    /// under the same key runs, then answers its saved response if it left one.
    /// `None`: do the work, then [`Idempotent::commit`].
    pub async fn claim(&self, conn: &mut PgConnection) -> Result<Option<Response>, ApiError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let locked = sqlx::query!(
            "select from pg_advisory_xact_lock( \
                 hashtextextended('rabt.idempotency:' || $1::uuid::text || ':' || $2, 0))",
            self.user,
            key,
        )
        .execute(&mut *conn)
        .await;
        match locked {
            Ok(_) => self.saved(conn).await,
            Err(err) if is_timeout(&err) => Err(in_progress()),
            Err(err) => Err(err.into()),
        }
    }

    /// The response saved under this key, if there is one.
    async fn saved(&self, conn: &mut PgConnection) -> Result<Option<Response>, ApiError> {
        let Some(key) = &self.key else {
            return Ok(None);
        };
        let row = sqlx::query!(
            "select request_hash, response_status, response_body from idempotency_keys \
             where user_id = $1 and key = $2 and created_at > now() - interval '24 hours'",
            self.user,
            key,
        )
        .fetch_optional(&mut *conn)
        .await?;
        match row {
            None => Ok(None),
            Some(saved) => self
                .replay(
                    &saved.request_hash,
                    saved.response_status,
                    saved.response_body,
                )
                .map(Some),
        }
    }

    fn replay(
        &self,
        hash: &[u8],
        status: i16,
        body: serde_json::Value,
    ) -> Result<Response, ApiError> {
        if hash != self.hash.as_slice() {
            return Err(ApiError::new(ErrorCode::IdempotencyKeyReused)
                .with_detail("This Idempotency-Key was used for a different request."));
        }
        let status = u16::try_from(status)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        let mut response = (status, Json(body)).into_response();
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
        Ok(response)
    }

    /// Saves `body` as the response under the key (when one was sent) and
    /// commits. If another request under the same key committed first, this
    /// one's work is rolled back and the first response is answered instead.
    pub async fn commit<T: Serialize>(
        &self,
        db: &Db,
        actor: &Actor,
        mut tx: Transaction<'static, Postgres>,
        status: StatusCode,
        body: &T,
    ) -> Result<Response, ApiError> {
        let value = serde_json::to_value(body).map_err(ApiError::internal)?;
        let Some(key) = &self.key else {
            tx.commit().await?;
            return Ok((status, Json(value)).into_response());
        };
        // An expired entry under the same key makes room for this one.
        sqlx::query!(
            "delete from idempotency_keys where user_id = $1 and key = $2 \
             and created_at <= now() - interval '24 hours'",
            self.user,
            key,
        )
        .execute(&mut *tx)
        .await?;
        // After a claim nobody else holds the key; a handler that did not
        // claim it meets a concurrent duplicate here instead.
        let saved = sqlx::query!(
            "insert into idempotency_keys (user_id, key, request_hash, response_status, \
                                           response_body) \
             values ($1, $2, $3, $4, $5)",
            self.user,
            key,
            self.hash,
            i16::try_from(status.as_u16()).unwrap_or(200),
            value,
        )
        .execute(&mut *tx)
        .await;
        match saved {
            Ok(_) => {
                tx.commit().await?;
                Ok((status, Json(value)).into_response())
            }
            Err(err)
                if err
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation()) =>
            {
                tx.rollback().await?;
                let mut tx = db.begin(actor).await?;
                let first = self.saved(&mut tx).await?;
                tx.commit().await?;
                first.ok_or_else(in_progress)
            }
            Err(err) if is_timeout(&err) => Err(in_progress()),
            Err(err) => Err(err.into()),
        }
    }
}

/// A lock or statement timeout: the first request under the key still runs.
fn is_timeout(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "55P03" || c == "57014")
}

fn in_progress() -> ApiError {
    ApiError::new(ErrorCode::Conflict)
        .with_detail("A request with this Idempotency-Key is in progress.")
}

/// Registers the hourly sweep of keys older than a day.
pub fn register(registry: &mut crate::jobs::JobRegistry) {
    registry.sweep("idempotency_keys", |conn| Box::pin(sweep(conn)));
}

/// Forgets keys older than 24 hours; returns how many.
pub async fn sweep(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "delete from idempotency_keys where created_at <= now() - interval '24 hours'"
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
