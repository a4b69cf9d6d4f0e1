//! Is this session alive, and what may its user do? Postgres is the truth; the
//! answer is cached in the shared store (Redis when configured, so every
//! instance sees a revocation or a changed role at once; in process otherwise).
//!
//! A revocation commits in Postgres first, then marks the session dead in the
//! cache; a role change commits, then drops the cached answers of the user's
//! sessions so that their next request reloads. Live answers are cached for a
//! minute at most, so even a lost cache write is healed within that minute.

use std::time::Duration;

use uuid::Uuid;

use super::store;
use crate::{app::AppState, db::Actor, http::ApiError, roles::store::Grants};

const DEAD: &[u8] = b"0";
const ALIVE_FOR: Duration = Duration::from_secs(60);

fn key(session: Uuid) -> String {
    format!("session:{session}")
}

/// The grants of `user` if `session` is alive, `None` if it has ended.
pub async fn check(
    state: &AppState,
    session: Uuid,
    user: Uuid,
) -> Result<Option<Grants>, ApiError> {
    match state.kv.get(&key(session)).await {
        Ok(Some(value)) if value == DEAD => return Ok(None),
        Ok(Some(value)) => {
            if let Ok(grants) = serde_json::from_slice::<Grants>(&value) {
                return Ok(Some(grants));
            }
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "session cache unavailable; asking Postgres"),
    }
    let mut tx = state.db.begin(&Actor::Service).await?;
    let grants = if store::touch_session(&mut tx, session, user).await? {
        Some(crate::roles::store::grants_of(&mut tx, user).await?)
    } else {
        None
    };
    tx.commit().await?;
    let (value, ttl) = match &grants {
        Some(grants) => (
            serde_json::to_vec(grants).map_err(ApiError::internal)?,
            ALIVE_FOR,
        ),
        None => (DEAD.to_vec(), dead_for(state)),
    };
    if let Err(err) = state.kv.set(&key(session), &value, ttl).await {
        tracing::warn!(error = %err, "could not cache a session check");
    }
    Ok(grants)
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

/// Makes the next request of each of `users`' sessions reload their grants,
/// after a change of roles committed.
pub async fn reload_grants(state: &AppState, users: &[Uuid]) -> Result<(), ApiError> {
    if users.is_empty() {
        return Ok(());
    }
    let mut tx = state.db.begin(&Actor::Service).await?;
    let sessions = store::live_sessions_of(&mut tx, users).await?;
    tx.commit().await?;
    for session in sessions {
        if let Err(err) = state.kv.delete(&key(session)).await {
            tracing::error!(error = %err, session = %session,
                "could not drop cached grants; they refresh within a minute");
        }
    }
    Ok(())
}
