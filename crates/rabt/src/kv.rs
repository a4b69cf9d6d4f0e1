//! Short-lived shared state: Redis when `REDIS_URL` is set, this process's
//! memory otherwise, behind one type.
//!
//! With Redis every instance of a deployment sees the same values (session
//! checks, rate-limit counters, caches); in memory they are per instance, which
//! is right for a single-instance deployment and for development. Keys are
//! namespaced with `RABT_REDIS_KEY_PREFIX`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret as _;

use crate::config::Settings;

/// A rate: `requests` per `period`, with bursts up to `requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub requests: u32,
    pub period: Duration,
}

impl Rate {
    pub const fn per_minute(requests: u32) -> Self {
        Self {
            requests,
            period: Duration::from_secs(60),
        }
    }

    fn interval_ms(self) -> i64 {
        let ms = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX);
        (ms / i64::from(self.requests.max(1))).max(1)
    }
}

/// The verdict of one rate-limited request, or of a batch of them
/// ([`Kv::rate_limit_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// How many requests were admitted (at least one when allowed).
    pub granted: u32,
    /// How long until a request would be allowed (zero when allowed).
    pub retry_after: Duration,
    /// Requests left in the current burst, after those granted.
    pub remaining: u32,
}

/// One step of GCRA (the generic cell rate algorithm) for up to `want`
/// requests at once: `tat` is the stored "theoretical arrival time". Grants
/// as many as the burst allows now (at least one, or the request is refused)
/// and returns the decision and, when allowed, the new `tat` to store. The
/// Redis script below is the same arithmetic.
fn gcra(now_ms: i64, tat_ms: Option<i64>, rate: Rate, want: u32) -> (RateDecision, Option<i64>) {
    let interval = rate.interval_ms();
    let burst = i64::from(rate.requests.max(1)) * interval;
    let tat = tat_ms.unwrap_or(now_ms).max(now_ms);
    let available = (now_ms + burst - tat).div_euclid(interval);
    if available < 1 {
        let wait = u64::try_from(tat + interval - burst - now_ms).unwrap_or(0);
        return (
            RateDecision {
                allowed: false,
                granted: 0,
                retry_after: Duration::from_millis(wait),
                remaining: 0,
            },
            None,
        );
    }
    let granted = available.min(i64::from(want.max(1)));
    (
        RateDecision {
            allowed: true,
            granted: u32::try_from(granted).unwrap_or(1),
            retry_after: Duration::ZERO,
            remaining: u32::try_from(available - granted).unwrap_or(u32::MAX),
        },
        Some(tat + granted * interval),
    )
}

const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2]) * interval
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local available = math.floor((now + burst - tat) / interval)
if available < 1 then
  return {0, tat + interval - burst - now, 0}
end
local granted = math.min(want, available)
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
return {granted, 0, available - granted}
";

/// Raises the counter at KEYS[1] to ARGV[1] unless it already holds as much;
/// the expiry (ARGV[2] ms) is renewed either way. Returns the value it holds.
const RAISE_SCRIPT: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]))
local wanted = tonumber(ARGV[1])
if current == nil or current < wanted then current = wanted end
redis.call('SET', KEYS[1], current, 'PX', ARGV[2])
return current
";

/// The most the in-process store keeps of [`Kv::remember`]ed values, in bytes.
const REMEMBERED_BYTES: u64 = 64 * 1024 * 1024;

/// Shared state, in Redis or in memory.
#[derive(Clone)]
pub struct Kv {
    backend: Backend,
    prefix: Arc<str>,
}

#[derive(Clone)]
enum Backend {
    Redis {
        conn: ConnectionManager,
        gcra: Arc<redis::Script>,
        raise: Arc<redis::Script>,
        /// The bound of every call (`RABT_REDIS_TIMEOUT_MS`).
        timeout: Duration,
    },
    Memory(Arc<Memory>),
}

struct Memory {
    values: moka::future::Cache<String, (Arc<[u8]>, Duration)>,
    /// What [`Kv::remember`] keeps: bounded by size, not by count, and apart
    /// from `values`, so that cached answers never push out sessions.
    remembered: moka::future::Cache<String, (Arc<[u8]>, Duration)>,
    rates: Mutex<HashMap<String, i64>>,
    /// Serialises `raise`, so two raisers cannot lower each other's value.
    raising: tokio::sync::Mutex<()>,
    epoch: Instant,
}

struct PerEntryTtl;

impl moka::Expiry<String, (Arc<[u8]>, Duration)> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &(Arc<[u8]>, Duration),
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &(Arc<[u8]>, Duration),
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl Kv {
    /// Connects to Redis when configured (failing the start if it cannot be
    /// reached within a few seconds), else uses memory.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let prefix: Arc<str> = settings.redis_key_prefix.as_str().into();
        let Some(url) = &settings.redis_url else {
            return Ok(Self::memory(prefix));
        };
        let client = redis::Client::open(url.expose_secret())
            .context("REDIS_URL is not a valid Redis URL")?;
        // Every call is bounded: a stalled Redis delays a request by this
        // much, then the caller goes on without it (each use says how).
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.redis_timeout.max(Duration::from_secs(1))))
            .set_response_timeout(Some(settings.redis_timeout))
            .set_number_of_retries(3);
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            client.get_connection_manager_with_config(config),
        )
        .await
        .context("REDIS_URL: Redis did not answer within 10 s")?
        .context("REDIS_URL: could not connect to Redis")?;
        Ok(Self {
            backend: Backend::Redis {
                conn,
                gcra: Arc::new(redis::Script::new(GCRA_SCRIPT)),
                raise: Arc::new(redis::Script::new(RAISE_SCRIPT)),
                timeout: settings.redis_timeout,
            },
            prefix,
        })
    }

    /// The in-process store.
    pub fn memory(prefix: Arc<str>) -> Self {
        Self {
            backend: Backend::Memory(Arc::new(Memory {
                values: moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .expire_after(PerEntryTtl)
                    .build(),
                remembered: moka::future::Cache::builder()
                    .weigher(|key: &String, (value, _): &(Arc<[u8]>, Duration)| {
                        u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
                    })
                    .max_capacity(REMEMBERED_BYTES)
                    .expire_after(PerEntryTtl)
                    .build(),
                rates: Mutex::new(HashMap::new()),
                raising: tokio::sync::Mutex::new(()),
                epoch: Instant::now(),
            })),
            prefix,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Redis { .. } => "redis",
            Backend::Memory(_) => "memory",
        }
    }

    fn key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.prefix.len() + key.len());
        full.push_str(&self.prefix);
        full.push_str(key);
        full
    }

    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis { conn, .. } => {
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn.clone())
                    .await
                    .context("redis GET")?;
                Ok(value)
            }
            Backend::Memory(memory) => Ok(memory.values.get(&key).await.map(|(v, _)| v.to_vec())),
        }
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis { conn, .. } => {
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                let () = redis::cmd("SET")
                    .arg(&key)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut conn.clone())
                    .await
                    .context("redis SET")?;
                Ok(())
            }
            Backend::Memory(memory) => {
                memory.values.insert(key, (value.into(), ttl)).await;
                Ok(())
            }
        }
    }

    /// Keeps `value` under `key` for at most `ttl`, as a cache: the in-process
    /// store may drop it sooner to stay within its memory bound (Redis evicts
    /// as its `maxmemory-policy` says). Read it back with [`Kv::recall`].
    pub async fn remember(&self, key: &str, value: &[u8], ttl: Duration) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Redis { .. } => self.set(key, value, ttl).await,
            Backend::Memory(memory) => {
                memory
                    .remembered
                    .insert(self.key(key), (value.into(), ttl))
                    .await;
                Ok(())
            }
        }
    }

    /// What [`Kv::remember`] kept under `key`, if it still does.
    pub async fn recall(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match &self.backend {
            Backend::Redis { .. } => self.get(key).await,
            Backend::Memory(memory) => Ok(memory
                .remembered
                .get(&self.key(key))
                .await
                .map(|(v, _)| v.to_vec())),
        }
    }

    /// Reads and removes `key` in one step: of two concurrent takers, only one
    /// gets the value.
    pub async fn take(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis { conn, .. } => {
                let value: Option<Vec<u8>> = redis::cmd("GETDEL")
                    .arg(&key)
                    .query_async(&mut conn.clone())
                    .await
                    .context("redis GETDEL")?;
                Ok(value)
            }
            Backend::Memory(memory) => {
                Ok(memory.values.remove(&key).await.map(|(v, _)| v.to_vec()))
            }
        }
    }

    /// Raises the number under `key` to `value` if it holds less (or nothing),
    /// atomically: a late writer of an older value never lowers a newer one.
    /// Returns the number it holds afterwards.
    pub async fn raise(&self, key: &str, value: i64, ttl: Duration) -> anyhow::Result<i64> {
        let key = self.key(key);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        match &self.backend {
            Backend::Redis { conn, raise, .. } => raise
                .key(&key)
                .arg(value)
                .arg(ms)
                .invoke_async(&mut conn.clone())
                .await
                .context("redis raise script"),
            Backend::Memory(memory) => {
                let _one_at_a_time = memory.raising.lock().await;
                let current = memory
                    .values
                    .get(&key)
                    .await
                    .and_then(|(v, _)| std::str::from_utf8(&v).ok()?.parse::<i64>().ok());
                let held = current.map_or(value, |c| c.max(value));
                memory
                    .values
                    .insert(key, (held.to_string().into_bytes().into(), ttl))
                    .await;
                Ok(held)
            }
        }
    }

    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis { conn, .. } => {
                let _: i64 = redis::cmd("DEL")
                    .arg(&key)
                    .query_async(&mut conn.clone())
                    .await
                    .context("redis DEL")?;
                Ok(())
            }
            Backend::Memory(memory) => {
                memory.values.invalidate(&key).await;
                Ok(())
            }
        }
    }

    /// Counts one request against `key` at `rate` (GCRA), atomically across
    /// every instance sharing the Redis.
    pub async fn rate_limit(&self, key: &str, rate: Rate) -> anyhow::Result<RateDecision> {
        self.rate_limit_batch(key, rate, 1).await
    }

    /// Counts up to `want` requests at once against `key` at `rate`, as many
    /// as the burst allows now: the grant of a batch that requests then use
    /// without asking again (see `http::rate_limit`).
    pub async fn rate_limit_batch(
        &self,
        key: &str,
        rate: Rate,
        want: u32,
    ) -> anyhow::Result<RateDecision> {
        let key = self.key(key);
        match &self.backend {
            Backend::Redis { conn, gcra, .. } => {
                let (granted, wait_ms, remaining): (i64, i64, i64) = gcra
                    .key(&key)
                    .arg(rate.interval_ms())
                    .arg(rate.requests.max(1))
                    .arg(want.max(1))
                    .invoke_async(&mut conn.clone())
                    .await
                    .context("redis rate limit script")?;
                Ok(RateDecision {
                    allowed: granted >= 1,
                    granted: u32::try_from(granted).unwrap_or(0),
                    retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
                    remaining: u32::try_from(remaining).unwrap_or(0),
                })
            }
            Backend::Memory(memory) => {
                let now = i64::try_from(memory.epoch.elapsed().as_millis()).unwrap_or(i64::MAX);
                let mut rates = memory
                    .rates
                    .lock()
                    .map_err(|_| anyhow::anyhow!("rate table poisoned"))?;
                if rates.len() > 100_000 {
                    rates.retain(|_, tat| *tat > now);
                }
                let (decision, new_tat) = gcra(now, rates.get(&key).copied(), rate, want);
                if let Some(tat) = new_tat {
                    rates.insert(key, tat);
                }
                Ok(decision)
            }
        }
    }

    /// Whether the store answers, for readiness.
    pub async fn ping(&self) -> bool {
        match &self.backend {
            Backend::Redis { conn, timeout, .. } => {
                let mut conn = conn.clone();
                let command = redis::cmd("PING");
                let ping = command.query_async::<String>(&mut conn);
                matches!(tokio::time::timeout(*timeout, ping).await, Ok(Ok(_)))
            }
            Backend::Memory(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_PER_SECOND: Rate = Rate {
        requests: 5,
        period: Duration::from_secs(1),
    };

    #[test]
    fn gcra_allows_a_full_burst_then_refuses() {
        let mut tat = None;
        for expected_remaining in (0..5).rev() {
            let (decision, new_tat) = gcra(1_000, tat, FIVE_PER_SECOND, 1);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
            tat = new_tat;
        }
        let (decision, new_tat) = gcra(1_000, tat, FIVE_PER_SECOND, 1);
        assert!(!decision.allowed);
        assert_eq!(decision.retry_after, Duration::from_millis(200));
        assert_eq!(new_tat, None);
    }

    #[test]
    fn gcra_refills_one_request_per_interval() {
        let mut tat = None;
        for _ in 0..5 {
            tat = gcra(0, tat, FIVE_PER_SECOND, 1).1;
        }
        assert!(!gcra(199, tat, FIVE_PER_SECOND, 1).0.allowed);
        let (decision, _) = gcra(200, tat, FIVE_PER_SECOND, 1);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, 0);
    }

    #[test]
    fn gcra_grants_a_batch_up_to_what_the_burst_holds() {
        let (first, tat) = gcra(0, None, FIVE_PER_SECOND, 3);
        assert_eq!(
            (first.allowed, first.granted, first.remaining),
            (true, 3, 2)
        );
        let (second, tat) = gcra(0, tat, FIVE_PER_SECOND, 3);
        assert_eq!(
            (second.allowed, second.granted, second.remaining),
            (true, 2, 0)
        );
        let (third, none) = gcra(0, tat, FIVE_PER_SECOND, 3);
        assert!(!third.allowed && third.granted == 0 && none.is_none());
        assert_eq!(third.retry_after, Duration::from_millis(200));
    }

    #[tokio::test]
    async fn memory_store_keeps_values_until_they_expire() {
        let kv = Kv::memory("t:".into());
        kv.set("a", b"1", Duration::from_millis(50)).await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), Some(b"1".to_vec()));
        kv.delete("a").await.unwrap();
        assert_eq!(kv.get("a").await.unwrap(), None);
        kv.set("b", b"2", Duration::from_millis(20)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(kv.get("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn remembered_values_expire_and_stay_within_their_bound() {
        let kv = Kv::memory("t:".into());
        kv.remember("a", b"1", Duration::from_millis(30))
            .await
            .unwrap();
        assert_eq!(kv.recall("a").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(kv.get("a").await.unwrap(), None, "kept apart from `set`");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(kv.recall("a").await.unwrap(), None);

        let megabyte = vec![7u8; 1024 * 1024];
        for i in 0..100 {
            kv.remember(&format!("big:{i}"), &megabyte, Duration::from_secs(60))
                .await
                .unwrap();
        }
        let Backend::Memory(memory) = &kv.backend else {
            unreachable!("Kv::memory")
        };
        memory.remembered.run_pending_tasks().await;
        assert!(memory.remembered.weighted_size() <= REMEMBERED_BYTES);
        assert!(memory.remembered.entry_count() < 100);
    }
}
