//! Is this session alive, and what may its user do? Postgres is the truth; the
//! answer is cached in the shared store (Redis when configured, so every
//! instance sees a revocation or a changed role at once; in process otherwise).
//!
//! A revocation commits in Postgres first, then marks the session dead in the
//! cache. Grants are versioned (migrations/0015): every change to a user's
//! roles, to a role's permissions, or to their suspension bumps the user's
//! version in the same transaction. A cached answer carries the version it
//! was read at, and the check compares it with the user's current version in
//! the shared store on every request, so a removed permission counts from the
//! next request. The current version reaches the store from the writer after
//! its commit ([`publish_grants`]) and, whoever the writer was (`rabt admin`,
//! SQL), from `NOTIFY rabt_grants` ([`follow_grant_changes`]). The store only
//! ever raises a version, so a slow reader cannot put an older one back. Live
//! answers are cached for a minute at most.
//!
//! Each instance also holds the answers it found for [`HELD_FOR`] (one
//! second) in its own memory ([`HeldChecks`]), so a busy session costs a
//! round trip to the store once a second rather than on every request. The
//! instance that ends a session or changes grants drops what it holds at
//! once, and every instance drops what it holds of a session when `NOTIFY
//! rabt_sessions` announces its end ([`follow_session_ends`]) and of a user
//! when `NOTIFY rabt_grants` announces new grants: a revocation made
//! elsewhere counts here as soon as its notification arrives (milliseconds),
//! and within that second if it is lost.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::store;
use crate::{
    auth::grants::Grants,
    db::{Actor, Db},
    http::ApiError,
    kv::Kv,
    state::AppState,
};

const DEAD: &[u8] = b"0";
/// How long an instance answers a session check from its own memory.
pub const HELD_FOR: Duration = Duration::from_secs(1);
const ALIVE_FOR: Duration = Duration::from_secs(60);
/// How long the store remembers a user's grants version; a forgotten one only
/// makes the next check read Postgres.
const VERSION_KEPT: Duration = Duration::from_secs(3600);

fn key(session: Uuid) -> String {
    format!("session:{session}")
}

fn version_key(user: Uuid) -> String {
    format!("grants-version:{user}")
}

/// Live sessions' answers held in this process, for [`HELD_FOR`].
#[derive(Clone)]
pub struct HeldChecks(moka::future::Cache<Uuid, Held>);

#[derive(Clone)]
struct Held {
    user: Uuid,
    grants: Grants,
}

impl std::fmt::Debug for HeldChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldChecks")
            .field("entries", &self.0.entry_count())
            .finish()
    }
}

impl Default for HeldChecks {
    fn default() -> Self {
        Self(
            moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(HELD_FOR)
                .support_invalidation_closures()
                .build(),
        )
    }
}

impl HeldChecks {
    async fn forget_sessions(&self, sessions: &[Uuid]) {
        for session in sessions {
            self.0.invalidate(session).await;
        }
    }

    fn forget_users(&self, users: &[Uuid]) {
        let users = users.to_vec();
        if let Err(err) = self
            .0
            .invalidate_entries_if(move |_, held| users.contains(&held.user))
        {
            // Only when closures are not supported, which the builder asks for.
            tracing::error!(error = %err, "could not drop held session checks");
            self.0.invalidate_all();
        }
    }
}

/// A live session's cached answer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Cached {
    grants: Grants,
    version: i64,
}

/// The grants of `user` if `session` is alive, `None` if it has ended.
pub async fn check(
    state: &AppState,
    session: Uuid,
    user: Uuid,
) -> Result<Option<Grants>, ApiError> {
    if let Some(held) = state.session_checks.0.get(&session).await
        && held.user == user
    {
        return Ok(Some(held.grants));
    }
    let grants = check_store(state, session, user).await?;
    if let Some(grants) = &grants {
        let held = Held {
            user,
            grants: grants.clone(),
        };
        state.session_checks.0.insert(session, held).await;
    }
    Ok(grants)
}

/// [`check`], asking the shared store, then Postgres.
async fn check_store(
    state: &AppState,
    session: Uuid,
    user: Uuid,
) -> Result<Option<Grants>, ApiError> {
    let session_key = key(session);
    let version_key = version_key(user);
    let (cached, current) = tokio::join!(state.kv.get(&session_key), state.kv.get(&version_key));
    match (cached, current) {
        (Ok(Some(value)), _) if value == DEAD => return Ok(None),
        (Ok(Some(value)), Ok(Some(current))) => {
            let current = std::str::from_utf8(&current)
                .ok()
                .and_then(|c| c.parse::<i64>().ok());
            if let Ok(cached) = serde_json::from_slice::<Cached>(&value)
                && Some(cached.version) == current
            {
                return Ok(Some(cached.grants));
            }
        }
        (Err(err), _) | (_, Err(err)) => {
            tracing::warn!(error = %err, "session cache unavailable; asking Postgres");
        }
        _ => {}
    }
    let mut tx = state.db.begin(&Actor::Service).await?;
    let loaded = if store::touch_session(&mut tx, session, user).await? {
        let grants = super::grants::grants_of(&mut tx, user).await?;
        let version = super::grants::grants_version(&mut tx, user).await?;
        Some(Cached { grants, version })
    } else {
        None
    };
    tx.commit().await?;
    let (value, ttl) = match &loaded {
        Some(cached) => (
            serde_json::to_vec(cached).map_err(ApiError::internal)?,
            ALIVE_FOR,
        ),
        None => (DEAD.to_vec(), dead_for(state)),
    };
    if let Err(err) = state.kv.set(&session_key, &value, ttl).await {
        tracing::warn!(error = %err, "could not cache a session check");
    }
    if let Some(cached) = &loaded
        && let Err(err) = state
            .kv
            .raise(&version_key, cached.version, VERSION_KEPT)
            .await
    {
        tracing::warn!(error = %err, "could not cache a grants version");
    }
    Ok(loaded.map(|cached| cached.grants))
}

/// Access tokens of a dead session stay refused until they would have expired.
fn dead_for(state: &AppState) -> Duration {
    state.settings.auth.access_token_ttl + Duration::from_secs(30)
}

/// Marks sessions dead in the cache, after their revocation committed.
pub async fn forget(state: &AppState, sessions: &[Uuid]) {
    state.session_checks.forget_sessions(sessions).await;
    state.realtime.end_sessions(sessions);
    for session in sessions {
        if let Err(err) = state.kv.set(&key(*session), DEAD, dead_for(state)).await {
            tracing::error!(error = %err, session = %session,
                "could not mark a revoked session in the cache; it ends within a minute");
        }
    }
}

/// After a change of grants committed: makes the next request of each of
/// `users`' sessions read their grants again, on every instance sharing the
/// store. A failure is logged, not returned (the change has happened); the
/// `NOTIFY` of the same change reaches every server as well.
pub async fn publish_grants(state: &AppState, users: &[Uuid]) {
    if users.is_empty() {
        return;
    }
    state.session_checks.forget_users(users);
    let versions = async {
        let mut tx = state.db.begin(&Actor::Service).await?;
        let versions = super::grants::grants_versions(&mut tx, users).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(versions)
    };
    match versions.await {
        Ok(versions) => {
            for (user, version) in versions {
                raise_version(&state.kv, user, version).await;
            }
        }
        Err(err) => tracing::error!(error = %err,
            "could not read changed grants versions; NOTIFY rabt_grants carries them"),
    }
}

async fn raise_version(kv: &Kv, user: Uuid, version: i64) {
    if let Err(err) = kv.raise(&version_key(user), version, VERSION_KEPT).await {
        tracing::error!(error = %err, user = %user,
            "could not publish a grants version; cached grants end within a minute");
    }
}

/// Follows `NOTIFY rabt_grants` (`"<user id> <version>"`, sent by the
/// database with every change of grants, whoever made it) into the store,
/// and calls `on_change` with the user (whose sockets recheck their
/// session), until `shutdown`.
pub async fn follow_grant_changes(
    db: Db,
    kv: Kv,
    held: HeldChecks,
    on_change: impl Fn(Uuid) + Clone,
    shutdown: CancellationToken,
) {
    crate::db::follow_channel(
        &db,
        "rabt_grants",
        "the grants listener",
        &shutdown,
        |payload| {
            let kv = kv.clone();
            let held = held.clone();
            let on_change = on_change.clone();
            async move {
                let parsed = payload
                    .split_once(' ')
                    .and_then(|(u, v)| Some((u.parse::<Uuid>().ok()?, v.parse::<i64>().ok()?)));
                match parsed {
                    Some((user, version)) => {
                        held.forget_users(&[user]);
                        raise_version(&kv, user, version).await;
                        on_change(user);
                    }
                    None => tracing::warn!("unreadable rabt_grants notification"),
                }
            }
        },
    )
    .await;
}

/// Follows `NOTIFY rabt_sessions` (a session id, sent by the database when a
/// session ends, whoever ended it) into this instance's [`HeldChecks`], and
/// calls `on_end` with the session (whose sockets close), until `shutdown`.
/// Each time it starts listening it drops everything held and calls `on_end`
/// with `None` (every socket checks its session), since an end may have been
/// missed while it was not.
pub async fn follow_session_ends(
    db: Db,
    held: HeldChecks,
    on_end: impl Fn(Option<Uuid>) + Clone,
    shutdown: CancellationToken,
) {
    crate::db::follow_channel_from(
        &db,
        "rabt_sessions",
        "the session listener",
        &shutdown,
        || {
            held.0.invalidate_all();
            on_end(None);
            async {}
        },
        |payload| {
            let held = held.clone();
            let on_end = on_end.clone();
            async move {
                match payload.parse::<Uuid>() {
                    Ok(session) => {
                        held.forget_sessions(&[session]).await;
                        on_end(Some(session));
                    }
                    Err(_) => {
                        tracing::warn!("unreadable rabt_sessions notification");
                        held.0.invalidate_all();
                        on_end(None);
                    }
                }
            }
        },
    )
    .await;
}
