//! Follows the store's revocation list and evicts each newly revoked `jti` from the cache.
//!
//! The store is the truth: revocations are written there first (by this node, another node
//! or the CLI) and get increasing sequence numbers. The follower keeps a cursor and reads
//! what came after it every `poll` interval, and also inline whenever this process revokes
//! something (it is the process's `RevocationListener`), so a revocation answered by this
//! node is already effective in this node's cache.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::StoreError;
use tessera_core::introspection::ValidationCache;
use tessera_core::revocation::{RevocationList, RevocationListener};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// How many entries one read of the list takes.
const PAGE: u32 = 500;

/// Handle of a running follower; also the process's revocation listener.
#[derive(Clone)]
pub struct RevocationFollower {
    list: Arc<dyn RevocationList>,
    cache: Arc<dyn ValidationCache>,
    /// The last `seq` evicted; the lock also keeps two catch-ups from interleaving.
    cursor: Arc<Mutex<i64>>,
    on_evict: Arc<dyn Fn(u64) + Send + Sync>,
}

impl std::fmt::Debug for RevocationFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationFollower")
    }
}

#[async_trait]
impl RevocationListener for RevocationFollower {
    async fn revoked(&self) {
        self.catch_up_logged().await;
    }
}

impl RevocationFollower {
    /// Starts following from the list's current end (the cache starts empty, so nothing
    /// before it can be cached) and polls every `poll`. `on_evict` is called with the
    /// number of evictions of each catch-up, for metrics.
    pub async fn start(
        list: Arc<dyn RevocationList>,
        cache: Arc<dyn ValidationCache>,
        poll: Duration,
        on_evict: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<(Self, JoinHandle<()>), StoreError> {
        let cursor = list.latest_seq().await?;
        let follower = Self {
            list,
            cache,
            cursor: Arc::new(Mutex::new(cursor)),
            on_evict: Arc::new(on_evict),
        };
        let handle = {
            let follower = follower.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(poll).await;
                    follower.catch_up_logged().await;
                }
            })
        };
        Ok((follower, handle))
    }

    /// Evicts everything revoked since the last catch-up; returns how many.
    pub async fn catch_up(&self) -> Result<u64, StoreError> {
        let mut cursor = self.cursor.lock().await;
        let mut evicted = 0;
        loop {
            let page = self.list.revoked_since(*cursor, PAGE).await?;
            for entry in &page {
                self.cache.evict_jti(&entry.jti).await;
                *cursor = entry.seq;
                evicted += 1;
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        if evicted > 0 {
            (self.on_evict)(evicted);
        }
        Ok(evicted)
    }

    async fn catch_up_logged(&self) {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "cannot read the revocation list; will retry");
        }
    }
}
