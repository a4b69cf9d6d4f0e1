//! The query cache: whole answers to searches that do not depend on who asks,
//! kept in the shared store ([`Kv`]) for `RABT_SEARCH_CACHE_SECS`, and for a
//! few seconds ([`LOCAL_FOR`]) in this process too, so that a hot answer
//! costs no round trip at all.
//!
//! Every answer is kept under the current *generation*, a random token in the
//! store, and a change to what searches read retires the token, so no answer
//! computed before the change is found after it:
//! - a write through the API retires it after its commit, before its response
//!   leaves ([`drop_after_writes`]), so a client reads its own writes;
//! - every other writer (`rabt admin`, jobs, SQL) reaches it through
//!   `NOTIFY rabt_search`, which triggers on `projects` and `users` send
//!   (migrations/0016; [`follow_changes`]).
//!
//! The listener drops every answer whenever it starts listening, after a lost
//! connection too, so a notification missed meanwhile leaves nothing behind;
//! answers also expire on their own, which bounds what a failed write to the
//! store can leave.
//!
//! The in-process tier is emptied by everything that retires the generation
//! here: a write through this instance (before its response leaves, so its
//! client reads its own writes) and every `NOTIFY rabt_search`, which carries
//! the writes of every other instance and writer within milliseconds. Its
//! entries also live at most [`LOCAL_FOR`], which bounds what it can serve
//! while the listener is reconnecting. An answer found in the store is copied
//! into the tier only if nothing retired answers since the lookup began (an
//! epoch counter), so an answer read just before a write is never kept after
//! it. Tokens are random rather
//! than counted, so a store that forgets the generation (eviction, restart)
//! never brings an old one back. The cache fails open: when the store does not
//! answer, the search runs.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Extension,
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::{db::Db, kv::Kv};

const GENERATION: &str = "query-cache:generation";
/// How long the store keeps a generation after it was made; forgetting it only
/// makes every answer a miss once.
const GENERATION_KEPT: Duration = Duration::from_secs(86_400);
/// Larger answers are not kept: a page of 20 projects with long descriptions
/// is worth recomputing rather than holding in Redis.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long an answer stays in this process's tier at most.
pub const LOCAL_FOR: Duration = Duration::from_secs(5);
/// The most the in-process tier holds, in bytes of answers.
const LOCAL_BYTES: u64 = 16 * 1024 * 1024;

type Hash = [u8; 32];

/// `Cache-Status` (RFC 9211): whether an answer came from the query cache.
pub static CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

#[derive(Clone)]
pub struct QueryCache {
    kv: Kv,
    ttl: Option<Duration>,
    local: moka::future::Cache<Hash, Arc<[u8]>>,
    /// Counts the retirements seen here; see the module's documentation.
    epoch: Arc<AtomicU64>,
}

/// The answer of a lookup.
pub enum Lookup {
    /// The body of the answer, as it was first sent.
    Hit(Arc<[u8]>),
    /// Not there: compute it, then [`QueryCache::keep`] it in this slot.
    Miss(Slot),
    /// The cache is off or its store did not answer.
    Off,
}

/// Where a missed answer goes: its key under the generation it was looked
/// up in, and the epoch of this process's tier at the lookup.
pub struct Slot {
    key: String,
    hash: Hash,
    epoch: u64,
}

impl Lookup {
    /// The `Cache-Status` value for this lookup's response.
    pub fn status(&self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Hit(_) => "rabt; hit",
            Self::Miss(_) => "rabt; fwd=miss",
            Self::Off => "rabt; fwd=bypass",
        })
    }
}

impl QueryCache {
    /// `ttl`: how long answers are kept (`None`: the cache is off).
    pub fn new(kv: Kv, ttl: Option<Duration>) -> Self {
        let local_for = ttl.map_or(LOCAL_FOR, |ttl| ttl.min(LOCAL_FOR));
        let local = moka::future::Cache::builder()
            .weigher(|_: &Hash, body: &Arc<[u8]>| u32::try_from(body.len()).unwrap_or(u32::MAX))
            .max_capacity(LOCAL_BYTES)
            .time_to_live(local_for.max(Duration::from_millis(1)))
            .build();
        Self {
            kv,
            ttl,
            local,
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Looks up the answer to `query` (everything the answer depends on; its
    /// JSON form is hashed with this build's version).
    pub async fn lookup(&self, kind: &str, query: &impl Serialize) -> Lookup {
        let (lookup, tier) = self.look(kind, query).await;
        let outcome = match lookup {
            Lookup::Hit(_) => "hit",
            Lookup::Miss(_) => "miss",
            Lookup::Off => "off",
        };
        metrics::counter!("query_cache_lookups_total", "outcome" => outcome, "tier" => tier)
            .increment(1);
        lookup
    }

    /// The lookup and the tier that decided it (`local` or `store`).
    async fn look(&self, kind: &str, query: &impl Serialize) -> (Lookup, &'static str) {
        if self.ttl.is_none() {
            return (Lookup::Off, "store");
        }
        let Ok(query) = serde_json::to_vec(query) else {
            return (Lookup::Off, "store");
        };
        let hash: Hash = Sha256::new()
            .chain_update(env!("CARGO_PKG_VERSION"))
            .chain_update([0])
            .chain_update(kind)
            .chain_update([0])
            .chain_update(&query)
            .finalize()
            .into();
        if let Some(body) = self.local.get(&hash).await {
            return (Lookup::Hit(body), "local");
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let generation = match self.generation().await {
            Ok(generation) => generation,
            Err(err) => {
                tracing::warn!(error = %err, "query cache: the store did not answer");
                return (Lookup::Off, "store");
            }
        };
        let slot = Slot {
            key: format!("query-cache:{generation}:{}", hex::encode(hash)),
            hash,
            epoch,
        };
        let lookup = match self.kv.recall(&slot.key).await {
            Ok(Some(body)) => {
                let body: Arc<[u8]> = body.into();
                self.keep_here(&slot, body.clone()).await;
                Lookup::Hit(body)
            }
            Ok(None) => Lookup::Miss(slot),
            Err(err) => {
                tracing::warn!(error = %err, "query cache: the store did not answer");
                Lookup::Off
            }
        };
        (lookup, "store")
    }

    /// Keeps `body` in `slot` (unless it is too large to be worth it).
    pub async fn keep(&self, slot: Slot, body: &[u8]) {
        let Some(ttl) = self.ttl else { return };
        if body.len() > MAX_ANSWER_BYTES {
            return;
        }
        self.keep_here(&slot, body.into()).await;
        if let Err(err) = self.kv.remember(&slot.key, body, ttl).await {
            tracing::warn!(error = %err, "query cache: could not keep an answer");
        }
    }

    /// Copies an answer into this process's tier, unless answers were
    /// retired since its lookup began. Checked again after the insert: a
    /// retirement between the first check and the insert removes it here,
    /// and one after the second check empties the tier after the insert.
    async fn keep_here(&self, slot: &Slot, body: Arc<[u8]>) {
        if self.epoch.load(Ordering::SeqCst) != slot.epoch {
            return;
        }
        self.local.insert(slot.hash, body).await;
        if self.epoch.load(Ordering::SeqCst) != slot.epoch {
            self.local.invalidate(&slot.hash).await;
        }
    }

    /// Retires every kept answer at once.
    pub async fn drop_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.local.invalidate_all();
        if let Err(err) = self
            .kv
            .set(GENERATION, new_generation().as_bytes(), GENERATION_KEPT)
            .await
        {
            tracing::warn!(error = %err, "query cache: could not retire the generation");
        }
    }

    /// The current generation, made if the store has none.
    async fn generation(&self) -> anyhow::Result<String> {
        if let Some(current) = self.kv.get(GENERATION).await? {
            return Ok(String::from_utf8_lossy(&current).into_owned());
        }
        // Two instances may both make one here; the answers of the one that
        // loses are only never found.
        let made = new_generation();
        self.kv
            .set(GENERATION, made.as_bytes(), GENERATION_KEPT)
            .await?;
        Ok(made)
    }
}

fn new_generation() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

/// The layer of the routes whose writes can change what a cached search
/// answers (projects, applications, which count on the project, and
/// profiles, an owner's name and visibility): each capability mounts its
/// router with it. Retires the cached answers after every write through
/// them, unless the write was refused (4xx: nothing was committed). A 5xx may
/// come after a commit, so it retires them too. The retirement runs as a task
/// of its own, so a client that hangs up or a request that times out after
/// its commit cannot cancel it.
pub async fn drop_after_writes(
    Extension(cache): Extension<QueryCache>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !request.method().is_safe();
    let response = next.run(request).await;
    if writes
        && !response.status().is_client_error()
        && let Err(err) = tokio::spawn(async move { cache.drop_all().await }).await
    {
        tracing::warn!(error = %err, "query cache: the retirement did not finish");
    }
    response
}

/// Follows `NOTIFY rabt_search` (sent by the database with every change to
/// what searches read, whoever made it) until `shutdown`. Each time it starts
/// listening it drops every answer, since a change may have been missed while
/// it was not.
pub async fn follow_changes(db: Db, cache: QueryCache, shutdown: CancellationToken) {
    crate::db::follow_channel_from(
        &db,
        "rabt_search",
        "the query cache listener",
        &shutdown,
        || {
            let cache = cache.clone();
            async move { cache.drop_all().await }
        },
        |_| {
            let cache = cache.clone();
            async move { cache.drop_all().await }
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> QueryCache {
        QueryCache::new(Kv::memory("t:".into()), Some(Duration::from_secs(60)))
    }

    #[tokio::test]
    async fn keeps_an_answer_until_every_answer_is_dropped() {
        let cache = cache();
        let Lookup::Miss(slot) = cache.lookup("k", &("a", 1)).await else {
            panic!("a first lookup misses")
        };
        cache.keep(slot, b"answer").await;
        assert!(matches!(cache.lookup("k", &("a", 1)).await, Lookup::Hit(b) if &*b == b"answer"));
        assert!(matches!(
            cache.lookup("k", &("a", 2)).await,
            Lookup::Miss(_)
        ));
        assert!(matches!(
            cache.lookup("other", &("a", 1)).await,
            Lookup::Miss(_)
        ));
        cache.drop_all().await;
        assert!(matches!(
            cache.lookup("k", &("a", 1)).await,
            Lookup::Miss(_)
        ));
    }

    #[tokio::test]
    async fn an_answer_looked_up_before_a_drop_is_never_found_after_it() {
        let cache = cache();
        let Lookup::Miss(slot) = cache.lookup("k", &1).await else {
            panic!("a first lookup misses")
        };
        // A write lands while the answer is being computed.
        cache.drop_all().await;
        cache.keep(slot, b"computed before the write").await;
        assert!(matches!(cache.lookup("k", &1).await, Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn a_kept_answer_is_served_from_this_process_until_a_retirement_here() {
        let cache = cache();
        let Lookup::Miss(slot) = cache.lookup("k", &1).await else {
            panic!("a first lookup misses")
        };
        cache.keep(slot, b"answer").await;
        // Another instance retired the store's generation; until this
        // process hears of it (NOTIFY) or LOCAL_FOR passes, it answers from
        // its own tier, without asking the store.
        cache
            .kv
            .set(GENERATION, b"another", GENERATION_KEPT)
            .await
            .unwrap();
        assert!(matches!(cache.lookup("k", &1).await, Lookup::Hit(b) if &*b == b"answer"));
        cache.drop_all().await;
        assert!(matches!(cache.lookup("k", &1).await, Lookup::Miss(_)));
    }

    #[tokio::test]
    async fn an_answer_from_the_store_is_copied_here_only_if_nothing_was_retired_meanwhile() {
        let writer = cache();
        let Lookup::Miss(slot) = writer.lookup("k", &1).await else {
            panic!("a first lookup misses")
        };
        writer.keep(slot, b"answer").await;
        // A second instance on the same store finds it there and keeps a copy.
        let reader = QueryCache::new(writer.kv.clone(), writer.ttl);
        assert!(matches!(reader.lookup("k", &1).await, Lookup::Hit(_)));
        reader
            .kv
            .set(GENERATION, b"gone", GENERATION_KEPT)
            .await
            .unwrap();
        assert!(matches!(reader.lookup("k", &1).await, Lookup::Hit(_)));
        // A slot from before a retirement never lands in the local tier.
        let stale = Slot {
            key: "query-cache:old:x".into(),
            hash: [7; 32],
            epoch: reader.epoch.load(Ordering::SeqCst),
        };
        reader.drop_all().await;
        reader.keep_here(&stale, b"old".as_slice().into()).await;
        assert!(reader.local.get(&[7; 32]).await.is_none());
    }

    #[tokio::test]
    async fn off_keeps_nothing() {
        let cache = QueryCache::new(Kv::memory("t:".into()), None);
        assert!(matches!(cache.lookup("k", &1).await, Lookup::Off));
    }

    #[tokio::test]
    async fn large_answers_are_not_kept() {
        let cache = cache();
        let Lookup::Miss(slot) = cache.lookup("k", &1).await else {
            panic!("a first lookup misses")
        };
        cache.keep(slot, &vec![b'x'; MAX_ANSWER_BYTES + 1]).await;
        assert!(matches!(cache.lookup("k", &1).await, Lookup::Miss(_)));
    }
}
