//! The in-process validation cache (moka).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::future::Cache;
use tessera_core::introspection::{ActiveToken, CacheTier, ValidationCache};
use tessera_core::secret::SecretHash;

/// Per-entry expiry: each value carries the TTL it was put with.
struct PerEntry;

impl Expiry<[u8; 32], (ActiveToken, Duration)> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &(ActiveToken, Duration),
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.1)
    }
}

/// A bounded in-process cache of active validations.
#[derive(Clone)]
pub struct LocalCache {
    entries: Cache<[u8; 32], (ActiveToken, Duration)>,
    /// `jti`s revoked while their entries may still live; kept as long as the longest TTL.
    revoked: Cache<String, ()>,
    max_ttl: Duration,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

impl LocalCache {
    /// A cache of at most `capacity` entries, none living longer than `max_ttl`.
    pub fn new(capacity: u64, max_ttl: Duration) -> Self {
        Self {
            entries: Cache::builder()
                .max_capacity(capacity)
                .expire_after(PerEntry)
                .build(),
            revoked: Cache::builder()
                // Revocations are rarer than validations; the bound is a safety net.
                .max_capacity(capacity.max(1024))
                .time_to_live(max_ttl.max(Duration::from_secs(1)))
                .build(),
            max_ttl,
        }
    }

    /// The longest TTL an entry is meant to have (the validation cache TTL).
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// Whether `jti` was evicted recently enough that its entries may still live elsewhere.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Entries currently held (approximate; for metrics).
    pub fn len(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Whether the cache is empty (approximate).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies pending maintenance (evictions, entry counts) now; for measurements and tests.
    pub async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }
}

#[async_trait]
impl ValidationCache for LocalCache {
    async fn get(&self, key: &SecretHash) -> Option<(ActiveToken, CacheTier)> {
        let (token, _) = self.entries.get(&key.0).await?;
        let revoked = match &token.jti {
            Some(jti) => self.revoked.contains_key(jti),
            None => false,
        };
        if revoked {
            self.entries.invalidate(&key.0).await;
            return None;
        }
        Some((token, CacheTier::Local))
    }

    async fn put(&self, key: &SecretHash, token: &ActiveToken, ttl: Duration) {
        self.entries.insert(key.0, (token.clone(), ttl)).await;
        // A revocation that raced with this validation wins: check after inserting, so that
        // either the eviction saw the entry or this check sees the eviction.
        if let Some(jti) = &token.jti
            && self.revoked.contains_key(jti)
        {
            self.entries.invalidate(&key.0).await;
        }
    }

    async fn evict_jti(&self, jti: &str) {
        // Marking is enough: `get` refuses entries of a marked jti and removes them.
        self.revoked.insert(jti.to_owned(), ()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(jti: &str, exp: i64) -> ActiveToken {
        ActiveToken {
            scope: "read".into(),
            client_id: "c".into(),
            sub: "s".into(),
            aud: "a".into(),
            iss: "i".into(),
            exp,
            iat: 0,
            nbf: 0,
            jti: Some(jti.into()),
            token_type: "Bearer".into(),
        }
    }

    #[tokio::test]
    async fn hit_then_eviction_by_jti() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        let key = SecretHash::of("t1");
        cache
            .put(&key, &token("j1", 10), Duration::from_secs(60))
            .await;
        assert_eq!(
            cache.get(&key).await.map(|(t, _)| t.jti),
            Some(Some("j1".into()))
        );
        cache.evict_jti("j2").await;
        assert!(
            cache.get(&key).await.is_some(),
            "another jti leaves it alone"
        );
        cache.evict_jti("j1").await;
        assert!(cache.get(&key).await.is_none());
    }

    #[tokio::test]
    async fn a_put_after_the_eviction_is_refused() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        cache.evict_jti("j1").await;
        let key = SecretHash::of("t1");
        cache
            .put(&key, &token("j1", 10), Duration::from_secs(60))
            .await;
        assert!(cache.get(&key).await.is_none());
    }

    #[tokio::test]
    async fn entries_expire_after_their_own_ttl() {
        let cache = LocalCache::new(100, Duration::from_secs(300));
        let short = SecretHash::of("short");
        let long = SecretHash::of("long");
        cache
            .put(&short, &token("a", 10), Duration::from_millis(50))
            .await;
        cache
            .put(&long, &token("b", 10), Duration::from_secs(60))
            .await;
        // moka measures time with its own clock; wait on it rather than pausing tokio.
        let deadline = Instant::now() + Duration::from_secs(5);
        while cache.get(&short).await.is_some() {
            assert!(Instant::now() < deadline, "the short entry never expired");
            tokio::task::yield_now().await;
        }
        assert!(cache.get(&long).await.is_some());
    }
}
