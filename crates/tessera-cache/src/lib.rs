//! Tessera's validation cache and revocation follower.
//!
//! - [`local`]: the in-process tier, a bounded moka cache of active access-token
//!   validations keyed by token hash, each entry with its own TTL, plus a set of recently
//!   revoked `jti`s that blocks both stale hits and late puts.
//! - [`follower`]: keeps the cache true to the store's revocation list: it follows the list
//!   by cursor, evicting every newly revoked `jti`, polling a few times a second and at once
//!   when this process revokes something. Revocations made by other processes (the CLI,
//!   other nodes on the same database) therefore reach this node's cache within one poll.
//!
//! Redis, the shared tier and fast cross-node bus (DESIGN.md), joins here as another
//! `ValidationCache` and another source of eviction events.

#![warn(missing_docs)]

pub mod follower;
pub mod local;

pub use follower::RevocationFollower;
pub use local::LocalCache;
