//! The two-tier validation cache: this process's memory first, then Redis when configured.
//!
//! A shared hit is copied into the local tier for what is left of it (never past the shared
//! entry's own TTL, the local maximum or the token's `exp`), so a token validated on one node
//! is answered from memory on the others after their first lookup. Puts and evictions go to
//! both tiers. The local tier's revoked set is consulted before a shared hit is returned:
//! evictions reach it through this node's follower even when Redis missed the marker (it was
//! down, or restored from an older snapshot).

use std::time::Duration;

use async_trait::async_trait;
use tessera_core::introspection::{ActiveToken, CacheTier, ValidationCache, remaining};
use tessera_core::secret::SecretHash;
use tessera_core::time::{Clock, SystemClock};

use crate::local::LocalCache;
use crate::redis_cache::RedisCache;

/// Local tier in front of an optional shared tier.
#[derive(Debug, Clone)]
pub struct TieredCache {
    local: LocalCache,
    shared: Option<RedisCache>,
}

impl TieredCache {
    /// The local tier, backed by `shared` when given.
    pub fn new(local: LocalCache, shared: Option<RedisCache>) -> Self {
        Self { local, shared }
    }

    /// The local tier.
    pub fn local(&self) -> &LocalCache {
        &self.local
    }

    /// The shared tier, when configured.
    pub fn shared(&self) -> Option<&RedisCache> {
        self.shared.as_ref()
    }
}

#[async_trait]
impl ValidationCache for TieredCache {
    async fn get(&self, key: &SecretHash) -> Option<(ActiveToken, CacheTier)> {
        if let Some(hit) = self.local.get(key).await {
            return Some(hit);
        }
        let (token, left) = self.shared.as_ref()?.get_with_ttl(key).await?;
        if let Some(jti) = &token.jti
            && self.local.is_revoked(jti)
        {
            return None;
        }
        let ttl = left
            .min(self.local.max_ttl())
            .min(remaining(token.exp, SystemClock.now()));
        if !ttl.is_zero() {
            self.local.put(key, &token, ttl).await;
        }
        Some((token, CacheTier::Shared))
    }

    async fn put(&self, key: &SecretHash, token: &ActiveToken, ttl: Duration) {
        self.local.put(key, token, ttl).await;
        if let Some(shared) = &self.shared {
            shared.put(key, token, ttl).await;
        }
    }

    async fn evict_jti(&self, jti: &str) {
        // Local first: it cannot fail or wait, and it is what this node answers from.
        self.local.evict_jti(jti).await;
        if let Some(shared) = &self.shared {
            shared.evict_jti(jti).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_shared_tier_it_is_the_local_cache() {
        let cache = TieredCache::new(LocalCache::new(10, Duration::from_secs(60)), None);
        let key = SecretHash::of("t");
        let token = ActiveToken {
            scope: String::new(),
            client_id: "c".into(),
            sub: "s".into(),
            aud: "a".into(),
            iss: "i".into(),
            exp: i64::MAX,
            iat: 0,
            nbf: 0,
            jti: Some("j".into()),
            token_type: "Bearer".into(),
        };
        cache.put(&key, &token, Duration::from_secs(60)).await;
        assert_eq!(
            cache.get(&key).await.map(|(_, t)| t),
            Some(CacheTier::Local)
        );
        cache.evict_jti("j").await;
        assert!(cache.get(&key).await.is_none());
    }
}
