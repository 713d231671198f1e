//! Tessera's persistence and key-material adapters.
//!
//! - [`sqlite`]: the embedded default, implementing every store port of `tessera-core` on
//!   one SQLite file through sqlx, with the schema migrations applied at open.
//! - [`postgres`]: the same ports on PostgreSQL, for several nodes sharing one database;
//!   every guarantee (single-use codes, one winner per refresh, an ordered revocation list)
//!   is enforced by the database.
//! - [`open`] picks the engine from the URL and returns it as a [`Database`]; [`ports`]
//!   wires one into the domain.
//! - [`key_material`]: RSA signing keys generated with aws-lc-rs, sealed at rest with
//!   AES-256-GCM under the [`master_key`], and held parsed in memory for signing.
//! - [`random`]: the OS CSPRNG behind the core's `SecureRandom` port.

#![warn(missing_docs)]

mod codec;
pub mod key_material;
pub mod master_key;
pub mod postgres;
pub mod random;
mod schema;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tessera_core::authorization_code::CodeStore;
use tessera_core::client::ClientStore;
use tessera_core::consent::ConsentStore;
use tessera_core::introspection::NoCache;
use tessera_core::janitor::Janitor;
use tessera_core::keys::{KeyRing, KeyStore};
use tessera_core::random::SecureRandom;
use tessera_core::refresh_family::RefreshStore;
use tessera_core::revocation::{NoListener, RevocationList};
use tessera_core::session::SessionStore;
use tessera_core::time::Clock;
use tessera_core::user::UserStore;
use tessera_core::{Ports, StoreError};

pub use master_key::MasterKey;
pub use postgres::PostgresStore;
pub use random::OsRandom;
pub use schema::SchemaError;
pub use sqlite::SqliteStore;

/// How many connections a store keeps and how long a caller waits for a free one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once. SQLite: the readers; its one writer comes on top.
    pub max_connections: u32,
    /// How long a query waits for a connection before failing with
    /// `StoreError::Unavailable` (answered with 503).
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    /// sqlx's defaults: 10 connections, 30 s.
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Every store port on one database, plus what a process needs to run on it.
#[async_trait]
pub trait Database:
    ClientStore
    + UserStore
    + CodeStore
    + SessionStore
    + ConsentStore
    + RefreshStore
    + RevocationList
    + KeyStore
    + Janitor
    + Send
    + Sync
{
    /// Whether the database answers (for readiness probes).
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes the connections, waiting for queries in flight.
    async fn close(&self);
    /// The engine's name: `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;
}

/// The URL names an engine this build does not have.
#[derive(Debug, thiserror::Error)]
#[error(
    "unsupported database URL scheme `{scheme}`: expected sqlite://PATH or \
     postgres://USER@HOST/DATABASE (postgresql:// also works)"
)]
pub struct UnsupportedDatabase {
    /// The scheme found (never the rest of the URL, which may hold a password).
    pub scheme: String,
}

/// The engines [`open`] knows.
enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    fn of(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            _ => {
                // Only a plausible scheme is echoed; anything else could be a secret.
                let plausible = !scheme.is_empty()
                    && scheme.len() <= 32
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
                let scheme = if plausible { scheme } else { "(none)" };
                Err(StoreError::Backend(Box::new(UnsupportedDatabase {
                    scheme: scheme.to_owned(),
                })))
            }
        }
    }
}

/// Opens the database at `url`, by scheme: `sqlite:` (created if missing) or `postgres:` /
/// `postgresql:` (the database must exist), and applies pending migrations. Fails with
/// [`UnsupportedDatabase`] for any other scheme, [`SchemaError::NewerThanThisTessera`] for a
/// database migrated by a newer Tessera, `StoreError::Unavailable` if the server cannot be
/// reached.
pub async fn open(url: &str, pool: &PoolSettings) -> Result<Arc<dyn Database>, StoreError> {
    Ok(match Engine::of(url)? {
        Engine::Sqlite => Arc::new(SqliteStore::open_with(url, pool).await?),
        Engine::Postgres => Arc::new(PostgresStore::open_with(url, pool).await?),
    })
}

/// Applies pending migrations to the database at `url` and closes it again (`tessera
/// migrate`); the same checks as [`open`].
pub async fn migrate(url: &str, pool: &PoolSettings) -> Result<(), StoreError> {
    let db = open(url, pool).await?;
    db.close().await;
    Ok(())
}

/// The domain's ports with every store port served by `db`, no validation cache, no
/// revocation listener and no client cache (set those fields to wire caches in; `tessera
/// serve` puts `tessera_cache::CachingClientStore` in front of `clients`).
pub fn ports(
    db: Arc<dyn Database>,
    keys: Arc<dyn KeyRing>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn SecureRandom>,
) -> Ports {
    Ports {
        clients: db.clone(),
        users: db.clone(),
        codes: db.clone(),
        sessions: db.clone(),
        consents: db.clone(),
        refresh: db.clone(),
        revocations: db,
        on_revocation: Arc::new(NoListener),
        cache: Arc::new(NoCache),
        keys,
        clock,
        random,
    }
}
