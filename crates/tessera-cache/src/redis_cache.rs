//! The shared validation-cache tier, in Redis.
//!
//! Keys (all under the configured prefix, every one written with a TTL):
//! - `{prefix}v:{hex of the token's SHA-256}` → the JSON of the [`ActiveToken`], living the
//!   TTL it was put with;
//! - `{prefix}r:{jti}` → a revocation marker, living the longest cache TTL, so that it
//!   outlives every entry of that `jti` put before it.
//!
//! Both the read and the write are one Lua script each, so one round trip and atomic: a read
//! returns an entry only if its `jti` carries no marker, and a write is refused if the marker
//! is already there. An eviction therefore hides the `jti`'s entries at once and blocks later
//! puts (the `ValidationCache` contract), whichever node wrote them. Entries are never looked
//! up by anything but the token hash, so the token itself is never stored or logged.
//!
//! Every failure (Redis down, slow, or refusing) is a miss or a no-op; see [`RedisLink`].

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use tessera_core::introspection::{ActiveToken, CacheTier, ValidationCache};
use tessera_core::secret::SecretHash;

use crate::redis_link::{RedisCacheError, RedisLink};

/// Returns `{entry, pttl}` for `KEYS[1]`, or nil when absent or its `jti` is marked revoked
/// (`ARGV[1]` is the marker key prefix).
static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local ok, t = pcall(cjson.decode, v)
if ok and type(t) == 'table' and type(t.jti) == 'string'
   and redis.call('EXISTS', ARGV[1] .. t.jti) == 1 then
  return false
end
return {v, redis.call('PTTL', KEYS[1])}
",
    )
});

/// Sets `KEYS[1]` to `ARGV[1]` for `ARGV[2]` ms unless the marker `KEYS[2]` exists; 1 if set.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
",
    )
});

/// The Redis tier of the validation cache; cheap to clone.
#[derive(Debug, Clone)]
pub struct RedisCache {
    link: RedisLink,
    /// How long a revocation marker lives: the longest TTL any entry may have.
    marker_ttl: Duration,
}

impl RedisCache {
    /// A cache on `link` whose entries live at most `max_ttl` (the validation cache TTL).
    pub fn new(link: RedisLink, max_ttl: Duration) -> Self {
        Self {
            link,
            marker_ttl: max_ttl.max(Duration::from_secs(1)),
        }
    }

    /// The connection, for its health and the bus.
    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    /// Whether the last Redis call succeeded.
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Deletes every key under the prefix that has no TTL; see [`RedisLink`].
    pub async fn sweep_keys_without_ttl(&self) -> Result<u64, RedisCacheError> {
        self.link.sweep_keys_without_ttl().await
    }

    /// The entry for a token hash and how long it has left, unless absent, revoked or
    /// unreadable. Failures are misses.
    pub async fn get_with_ttl(&self, key: &SecretHash) -> Option<(ActiveToken, Duration)> {
        let mut conn = self.link.connection();
        let mut get = GET.key(self.entry_key(key));
        get.arg(self.marker_key(""));
        let (json, pttl): (String, i64) = self
            .link
            .bounded(get.invoke_async::<Option<(String, i64)>>(&mut conn))
            .await
            .ok()??;
        // -1 would be an entry without a TTL, which this cache never writes: not trusted.
        let left = Duration::from_millis(u64::try_from(pttl).ok().filter(|ms| *ms > 0)?);
        match serde_json::from_str::<ActiveToken>(&json) {
            Ok(token) => Some((token, left)),
            Err(e) => {
                // Written by another version, or by hand: a miss, and the validation path
                // overwrites it.
                tracing::debug!(key = %key.log_label(), error = %e, "unreadable shared cache entry");
                None
            }
        }
    }

    fn entry_key(&self, key: &SecretHash) -> String {
        let mut out = String::with_capacity(self.link.prefix().len() + 2 + 64);
        out.push_str(self.link.prefix());
        out.push_str("v:");
        for b in key.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }

    fn marker_key(&self, jti: &str) -> String {
        format!("{}r:{jti}", self.link.prefix())
    }

    async fn try_put(
        &self,
        key: &SecretHash,
        token: &ActiveToken,
        ttl: Duration,
    ) -> Result<(), RedisCacheError> {
        let json = serde_json::to_string(token).map_err(RedisCacheError::Encoding)?;
        let ms = millis(ttl);
        let mut conn = self.link.connection();
        match &token.jti {
            Some(jti) => {
                let mut put = PUT.key(self.entry_key(key));
                put.key(self.marker_key(jti)).arg(json).arg(ms);
                self.link
                    .bounded(put.invoke_async::<i64>(&mut conn))
                    .await?;
            }
            None => {
                let mut set = redis::cmd("SET");
                set.arg(self.entry_key(key)).arg(json).arg("PX").arg(ms);
                self.link.bounded(set.exec_async(&mut conn)).await?;
            }
        }
        Ok(())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whole milliseconds, at least 1 (`PX 0` is an error).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl ValidationCache for RedisCache {
    async fn get(&self, key: &SecretHash) -> Option<(ActiveToken, CacheTier)> {
        self.get_with_ttl(key)
            .await
            .map(|(token, _)| (token, CacheTier::Shared))
    }

    async fn put(&self, key: &SecretHash, token: &ActiveToken, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        // A failure is a no-op: the next validation on any node puts it again.
        let _ = self.try_put(key, token, ttl).await;
    }

    async fn evict_jti(&self, jti: &str) {
        let mut set = redis::cmd("SET");
        set.arg(self.marker_key(jti))
            .arg(1)
            .arg("PX")
            .arg(millis(self.marker_ttl));
        let mut conn = self.link.connection();
        // A failure is a no-op here; every other node's follower sets the same marker, and
        // each node's local tier refuses the `jti` in any case (see `TieredCache`).
        let _ = self.link.bounded(set.exec_async(&mut conn)).await;
    }
}
