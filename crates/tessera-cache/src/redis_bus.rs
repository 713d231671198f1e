//! The revocation wake-up bus on Redis pub/sub.
//!
//! The store's revocation list stays the truth and every node keeps polling it (see
//! [`RevocationFollower`]); the bus only shortens the wait. After this node commits a
//! revocation it catches up inline and publishes an empty message on `{prefix}revocations`;
//! every subscribed node (this one included) then catches up at once instead of at its next
//! poll. A lost message, a dead Redis or a partition therefore delays eviction by at most one
//! poll interval, never loses it. Messages carry nothing: what to evict is read from the list.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt, StreamExt};
use redis::aio::PubSub;
use tessera_core::revocation::RevocationListener;
use tokio::task::JoinHandle;

use crate::follower::RevocationFollower;
use crate::redis_link::{RedisCacheError, RedisLink};

/// First wait before re-subscribing; doubled after each failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before re-subscribing.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle subscription is pinged, to notice a silently dead connection.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Bound on opening the subscription and on each keepalive ping.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Publishes this node's revocations and wakes this node's follower on everyone else's.
///
/// As the process's [`RevocationListener`]: catches up inline (as the bare follower does),
/// then publishes.
#[derive(Clone)]
pub struct RedisBus {
    link: RedisLink,
    follower: RevocationFollower,
    subscribed: Arc<AtomicBool>,
    /// Also called on every wake-up (the key ring reloads on it).
    hook: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("channel", &self.channel())
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// A bus on `link` waking `follower`; call [`RedisBus::subscribe`] to start listening.
    pub fn new(link: RedisLink, follower: RevocationFollower) -> Self {
        Self {
            link,
            follower,
            subscribed: Arc::new(AtomicBool::new(false)),
            hook: None,
        }
    }

    /// Also calls `hook` on every wake-up, for state other than the revocation list that
    /// nodes must pick up at once (the signing-key ring).
    pub fn with_hook(mut self, hook: Arc<dyn Fn() + Send + Sync>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Wakes every subscribed node, from a process without a follower (the CLI after a key
    /// operation). A failure only means the nodes wait for their next poll.
    pub async fn wake_all(link: &RedisLink) -> Result<(), RedisCacheError> {
        let mut conn = link.connection();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(format!("{}revocations", link.prefix())).arg("");
        link.bounded(publish.exec_async(&mut conn)).await
    }

    /// Catches up and runs the hook.
    async fn wake(&self) {
        self.follower.revoked().await;
        if let Some(hook) = &self.hook {
            hook();
        }
    }

    /// The channel: `{prefix}revocations`.
    pub fn channel(&self) -> String {
        format!("{}revocations", self.link.prefix())
    }

    /// Tells every subscribed node to catch up now; a failure only means they wait for their
    /// next poll.
    pub async fn publish(&self) -> Result<(), RedisCacheError> {
        Self::wake_all(&self.link).await
    }

    /// Whether the subscription is live and the catch-up that follows each (re)subscription
    /// is done.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Listens on a dedicated connection until the runtime stops, catching up on every
    /// message and once after each (re)subscription (for what was published meanwhile);
    /// re-subscribes after a loss with backoff.
    pub fn subscribe(&self) -> JoinHandle<()> {
        self.set_subscribed(false);
        let bus = self.clone();
        tokio::spawn(async move { bus.follow().await })
    }

    async fn follow(&self) {
        let mut backoff = MIN_BACKOFF;
        // Whether the last attempt succeeded, so each change is logged once.
        let mut was_subscribed = None;
        loop {
            match self.open().await {
                Ok(pubsub) => {
                    backoff = MIN_BACKOFF;
                    self.wake().await;
                    self.set_subscribed(true);
                    if was_subscribed != Some(true) {
                        tracing::info!(channel = %self.channel(), "following the revocation bus");
                    }
                    let reason = self.listen(pubsub).await;
                    self.set_subscribed(false);
                    tracing::warn!(
                        reason,
                        "lost the revocation bus; re-subscribing (the revocation list is still polled)"
                    );
                    was_subscribed = Some(false);
                }
                Err(error) => {
                    if was_subscribed != Some(false) {
                        tracing::warn!(
                            %error,
                            "cannot subscribe to the revocation bus; will retry (the revocation list is still polled)"
                        );
                    }
                    was_subscribed = Some(false);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn open(&self) -> Result<PubSub, RedisCacheError> {
        let subscribe = async {
            let mut pubsub = self.link.client().get_async_pubsub().await?;
            pubsub.subscribe(self.channel()).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(RedisCacheError::Timeout(SUBSCRIBE_TIMEOUT)),
        }
    }

    /// Catches up on each message until the connection is lost; returns why it ended.
    async fn listen(&self, pubsub: PubSub) -> &'static str {
        let (mut sink, mut messages) = pubsub.split();
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.reset();
        loop {
            tokio::select! {
                message = messages.next() => {
                    if message.is_none() {
                        return "connection closed";
                    }
                    // One catch-up answers every message already waiting.
                    loop {
                        match messages.next().now_or_never() {
                            Some(Some(_)) => continue,
                            Some(None) => {
                                self.wake().await;
                                return "connection closed";
                            }
                            None => break,
                        }
                    }
                    self.wake().await;
                }
                _ = keepalive.tick() => {
                    let ping = tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.ping::<redis::Value>());
                    if !matches!(ping.await, Ok(Ok(_))) {
                        return "keepalive ping failed";
                    }
                }
            }
        }
    }

    fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Release);
        metrics::gauge!("tessera_revocation_bus_subscribed").set(f64::from(u8::from(subscribed)));
    }
}

#[async_trait]
impl RevocationListener for RedisBus {
    async fn revoked(&self) {
        self.follower.revoked().await;
        // Failures are recorded in the link's health (and logged once per transition).
        let _ = self.publish().await;
    }
}
