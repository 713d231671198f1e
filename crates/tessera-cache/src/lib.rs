//! Tessera's validation cache, client cache and revocation bus.
//!
//! - [`local`]: the in-process tier, a bounded quick_cache map of active access-token
//!   validations keyed by token hash, each entry with its own TTL, plus a set of recently
//!   revoked `jti`s that blocks both stale hits and late puts.
//! - [`redis_cache`]: the shared tier in Redis, with the same contract (revocation markers
//!   checked atomically on every read and write), so a token validated on one node is a hit on
//!   the others.
//! - [`tiered`]: the local tier in front of the optional shared one; what `tessera serve` uses.
//! - [`follower`]: keeps the caches true to the store's revocation list: it follows the list
//!   by cursor, evicting every newly revoked `jti`, polling a few times a second and at once
//!   when this process revokes something. Revocations made by other processes (the CLI,
//!   other nodes on the same database) therefore reach this node's cache within one poll.
//! - [`redis_bus`]: Redis pub/sub that wakes every node's follower as soon as any node
//!   revokes, instead of at its next poll.
//! - [`redis_link`]: the Redis connection both go through: every call bounded by a short
//!   timeout, every failure a miss or no-op, health tracked and exported.
//! - [`clients`]: a [`ClientStore`](tessera_core::client::ClientStore) decorator that keeps
//!   recently found clients in process for a few seconds, so client authentication does not
//!   read the database on every request; writes through it evict at once, changes made
//!   elsewhere show within its TTL.
//!
//! The store is the truth throughout: Redis is an accelerator, and a node without it (never
//! configured, down, or partitioned away) is slower, never wrong.

#![warn(missing_docs)]

pub mod clients;
pub mod follower;
pub mod local;
pub mod redis_bus;
pub mod redis_cache;
pub mod redis_link;
pub mod tiered;

pub use clients::CachingClientStore;
pub use follower::RevocationFollower;
pub use local::LocalCache;
pub use redis_bus::RedisBus;
pub use redis_cache::RedisCache;
pub use redis_link::{RedisCacheError, RedisLink, RedisOptions};
pub use tiered::TieredCache;
