//! The connection to Redis that the shared cache tier and the revocation bus go through.
//!
//! Redis only accelerates; the store stays the truth. So every call is bounded by a short
//! timeout and every failure is reported to the caller as an error it turns into a miss or a
//! no-op: a dead or slow Redis costs a request at most one timeout, never an error. Health is
//! one flag, flipped by each call's outcome, logged once per transition and exported as the
//! `tessera_redis_up` gauge.
//!
//! While Redis is down, a call is let through only once per [`PROBE_INTERVAL`] and the others
//! fail at once: a black-holed Redis (no reset, every call waits the whole timeout) would
//! otherwise add the timeout to every introspection. The connection is made lazily and
//! re-made by `redis`'s `ConnectionManager` after a loss, so a node starts without Redis and
//! recovers by itself.

use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisResult, Script};
use tokio::task::JoinHandle;

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "tessera:";
/// The bound on each Redis call when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
/// While Redis is down, at most one call per interval is tried; the others fail at once.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Keys examined per `SCAN` step of the sweep.
const SCAN_COUNT: u32 = 500;
/// Opening a TCP connection may take longer than a command; bounded all the same.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Deletes those of `KEYS` that have no TTL, checking and deleting in one atomic step so a
/// key re-set with a TTL in between is left alone.
static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('PTTL', k) == -1 then
    redis.call('DEL', k)
    n = n + 1
  end
end
return n
",
    )
});

/// Where Redis is and how to use it.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port][/db]` or `redis+unix:///path`; never logged.
    pub url: String,
    /// Prefix of every key and channel name; must not be empty.
    pub prefix: String,
    /// The bound on each call.
    pub timeout: Duration,
}

impl RedisOptions {
    /// Options for `url` with the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisOptions")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why a Redis operation did not happen.
///
/// Each message includes its cause (no `source` chain), so one line of log says it all.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RedisCacheError {
    /// The URL cannot be used (the URL itself is not repeated: it may hold a password).
    #[error("not a usable Redis URL: {0}")]
    InvalidUrl(redis::RedisError),
    /// An empty prefix would make the sweep touch every key of the database.
    #[error("the Redis key prefix must not be empty")]
    EmptyPrefix,
    /// The timeout is zero.
    #[error("the Redis timeout must be greater than zero")]
    ZeroTimeout,
    /// Redis refused the command, or the connection failed.
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    /// No answer within the timeout.
    #[error("no answer from Redis within {0:?}")]
    Timeout(Duration),
    /// Redis is down and this call was not the one let through to probe it.
    #[error("Redis is unavailable")]
    Unavailable,
    /// A cached value could not be encoded.
    #[error("cannot encode a cache entry: {0}")]
    Encoding(serde_json::Error),
}

impl From<redis::RedisError> for RedisCacheError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

/// A cheap-to-clone handle on one Redis: bounded calls, health, key names.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
    health: Health,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .field("up", &self.is_up())
            .finish()
    }
}

impl RedisLink {
    /// Prepares the connection without making it (it is made on first use and re-made after
    /// a loss), so this fails only on bad options. Must be called within a Tokio runtime.
    pub fn open(options: &RedisOptions) -> Result<Self, RedisCacheError> {
        if options.prefix.is_empty() {
            return Err(RedisCacheError::EmptyPrefix);
        }
        if options.timeout.is_zero() {
            return Err(RedisCacheError::ZeroTimeout);
        }
        let client = Client::open(options.url.as_str()).map_err(RedisCacheError::InvalidUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT.max(options.timeout)))
            .set_response_timeout(Some(options.timeout))
            // Few, quick retries: a caller never waits past its own timeout anyway, and a
            // failed reconnection is started again by the next call.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(RedisCacheError::InvalidUrl)?;
        metrics::gauge!("tessera_redis_up").set(0.0);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                manager,
                prefix: options.prefix.clone(),
                timeout: options.timeout,
                health: Health::new(),
            }),
        })
    }

    /// Whether the last call succeeded (false before the first).
    pub fn is_up(&self) -> bool {
        self.inner.health.is_up()
    }

    /// The prefix of every key and channel.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The bound on each call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Sends a `PING`; true when Redis answered in time.
    pub async fn ping(&self) -> bool {
        let mut conn = self.connection();
        self.bounded(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .is_ok()
    }

    /// Pings every `every`, so that health and the `tessera_redis_up` gauge stay current
    /// (and a down Redis is noticed coming back) when no requests need it.
    pub fn watch(&self, every: Duration) -> JoinHandle<()> {
        let link = self.clone();
        tokio::spawn(async move {
            loop {
                link.ping().await;
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Deletes every key under the prefix that has no TTL (none should: every key is written
    /// with one; this repairs what a bug or a manual write left behind). Returns how many.
    pub async fn sweep_keys_without_ttl(&self) -> Result<u64, RedisCacheError> {
        let pattern = format!("{}*", glob_escape(&self.inner.prefix));
        let mut conn = self.connection();
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .bounded(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn),
                )
                .await?;
            if !keys.is_empty() {
                let mut sweep = SWEEP.prepare_invoke();
                for key in &keys {
                    sweep.key(key.as_slice());
                }
                removed += self.bounded(sweep.invoke_async::<u64>(&mut conn)).await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// A handle for issuing commands (cheap: the connection is shared and multiplexed).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.inner.manager.clone()
    }

    /// The client, for connections that cannot be shared (pub/sub).
    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Runs one call within the timeout, unless Redis is down and it is not yet time to
    /// probe it again; records the outcome in the health flag.
    pub(crate) async fn bounded<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, RedisCacheError> {
        let health = &self.inner.health;
        if !health.admit() {
            return Err(RedisCacheError::Unavailable);
        }
        let outcome = match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisCacheError::Redis(e)),
            Err(_) => Err(RedisCacheError::Timeout(self.inner.timeout)),
        };
        match &outcome {
            Ok(_) => health.succeeded(),
            Err(e) => health.failed(e),
        }
        outcome
    }
}

/// Escapes `SCAN MATCH` glob characters so the prefix matches only itself.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// Up or down, as of the last call; and when the next probe of a down Redis is due.
struct Health {
    state: AtomicU8,
    /// Milliseconds since `epoch` before which no call is let through while down.
    next_probe: AtomicU64,
    epoch: Instant,
}

impl Health {
    fn new() -> Self {
        Self {
            state: AtomicU8::new(UNKNOWN),
            next_probe: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) == UP
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn probe_interval_ms() -> u64 {
        u64::try_from(PROBE_INTERVAL.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go to Redis now: always while up; while down, one per interval.
    fn admit(&self) -> bool {
        if self.state.load(Ordering::Acquire) != DOWN {
            return true;
        }
        let now = self.now_ms();
        let due = self.next_probe.load(Ordering::Acquire);
        now >= due
            && self
                .next_probe
                .compare_exchange(
                    due,
                    now.saturating_add(Self::probe_interval_ms()),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn succeeded(&self) {
        if self.state.swap(UP, Ordering::AcqRel) != UP {
            metrics::gauge!("tessera_redis_up").set(1.0);
            tracing::info!("redis is available");
        }
    }

    fn failed(&self, error: &RedisCacheError) {
        self.next_probe.store(
            self.now_ms().saturating_add(Self::probe_interval_ms()),
            Ordering::Release,
        );
        if self.state.swap(DOWN, Ordering::AcqRel) != DOWN {
            metrics::gauge!("tessera_redis_up").set(0.0);
            tracing::warn!(
                %error,
                "redis is unavailable; carrying on without it (misses, no-ops) until it answers again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_in_the_prefix_are_escaped() {
        assert_eq!(glob_escape("tessera:"), "tessera:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn a_down_redis_is_probed_once_per_interval() {
        let health = Health::new();
        assert!(health.admit(), "unknown: let through");
        health.failed(&RedisCacheError::Unavailable);
        assert!(!health.is_up());
        assert!(!health.admit(), "just failed: not yet");
        health
            .next_probe
            .store(health.now_ms().saturating_sub(1), Ordering::Release);
        assert!(health.admit(), "probe due");
        assert!(!health.admit(), "only one probe per interval");
        health.succeeded();
        assert!(health.is_up());
        assert!(health.admit());
    }

    #[tokio::test]
    async fn bad_options_are_refused() {
        let empty = RedisOptions {
            prefix: String::new(),
            ..RedisOptions::new("redis://127.0.0.1:6379")
        };
        assert!(matches!(
            RedisLink::open(&empty),
            Err(RedisCacheError::EmptyPrefix)
        ));
        assert!(matches!(
            RedisLink::open(&RedisOptions::new("http://example.com")),
            Err(RedisCacheError::InvalidUrl(_))
        ));
    }
}
