//! Is this session alive? Postgres is the truth; the answer is cached in the
//! shared store (Redis when configured, so every instance sees a revocation at
//! once; in process otherwise).
//!
//! A revocation commits in Postgres first, then marks the session dead in the
//! cache. "Alive" answers are cached for a minute at most, so even a lost cache
//! write is healed within that minute.

use std::time::Duration;

use uuid::Uuid;

use super::store;
use crate::{app::AppState, db::Actor, http::ApiError};

const ALIVE: &[u8] = b"1";
const DEAD: &[u8] = b"0";
const ALIVE_FOR: Duration = Duration::from_secs(60);

fn key(session: Uuid) -> String {
    format!("session:{session}")
}

/// Whether `session` of `user` is alive.
pub async fn is_alive(state: &AppState, session: Uuid, user: Uuid) -> Result<bool, ApiError> {
    match state.kv.get(&key(session)).await {
        Ok(Some(value)) if value == ALIVE => return Ok(true),
        Ok(Some(value)) if value == DEAD => return Ok(false),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "session cache unavailable; asking Postgres"),
    }
    let mut tx = state.db.begin(&Actor::Service).await?;
    let alive = store::touch_session(&mut tx, session, user).await?;
    tx.commit().await?;
    let (value, ttl) = if alive {
        (ALIVE, ALIVE_FOR)
    } else {
        (DEAD, dead_for(state))
    };
    if let Err(err) = state.kv.set(&key(session), value, ttl).await {
        tracing::warn!(error = %err, "could not cache a session check");
    }
    Ok(alive)
}

/// Access tokens of a dead session stay refused until they would have expired.
fn dead_for(state: &AppState) -> Duration {
    state.settings.auth.access_token_ttl + Duration::from_secs(30)
}

/// Marks sessions dead in the cache, after their revocation committed.
pub async fn forget(state: &AppState, sessions: &[Uuid]) {
    for session in sessions {
        if let Err(err) = state.kv.set(&key(*session), DEAD, dead_for(state)).await {
            tracing::error!(error = %err, session = %session,
                "could not mark a revoked session in the cache; it ends within a minute");
        }
    }
}
