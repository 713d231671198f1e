//! The embedded SQLite adapter: one file, every store port, migrations applied at open.
//!
//! Each port lives in its own module (`clients`, `users`, `codes`, `sessions`, `consents`,
//! `keys`), mirroring the core module that declares it. Queries are checked at run time (no
//! sqlx macros), which keeps SQLite from being compiled twice.

mod clients;
mod codes;
mod consents;
mod janitor;
mod keys;
mod refresh;
mod sessions;
mod users;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tessera_core::keys::KeyRing;
use tessera_core::random::SecureRandom;
use tessera_core::time::Clock;
use tessera_core::{Ports, StoreError};

use crate::codec::{from_json, hash_from, to_json};
use crate::{Database, PoolSettings, schema};

/// The SQLite migrations, embedded in the binary.
fn migrator() -> Migrator {
    schema::migrator(&[
        (
            1,
            "foundation",
            include_str!("../../migrations/sqlite/0001_foundation.sql"),
        ),
        (
            2,
            "refresh families",
            include_str!("../../migrations/sqlite/0002_refresh_families.sql"),
        ),
        (
            3,
            "client token lifetimes",
            include_str!("../../migrations/sqlite/0003_client_token_lifetimes.sql"),
        ),
        (
            4,
            "consent and sign-out",
            include_str!("../../migrations/sqlite/0004_consent_and_sign_out.sql"),
        ),
    ])
}

/// Every store port on one SQLite database.
///
/// Reads go through a pool of connections; every write goes through one dedicated
/// connection. SQLite admits one writer at a time anyway: queueing writers on the pool's
/// fair async semaphore instead of in SQLite's busy handler (which sleeps and retries)
/// keeps write latency flat under contention. Other processes (the CLI) still coordinate
/// with the server through SQLite's locks and the busy timeout.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) with the default
    /// pool settings and applies pending migrations. Refuses a database migrated by a newer
    /// Tessera ([`SchemaError::NewerThanThisTessera`](crate::SchemaError)).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &PoolSettings::default()).await
    }

    /// Like [`open`](Self::open), with `settings.max_connections` readers (the one writer
    /// comes on top) and `settings.acquire_timeout` for readers and writers alike.
    pub async fn open_with(url: &str, settings: &PoolSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::backend)?
            .create_if_missing(true)
            .foreign_keys(true)
            // WAL lets readers proceed while a writer commits; the busy timeout turns
            // writer contention into waiting instead of SQLITE_BUSY errors.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        if let Err(e) = migrator().run(&writer).await {
            writer.close().await;
            return Err(schema::migrate_err(e, map_err));
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool, writer })
    }

    /// Whether the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(map_err)
    }

    /// The domain's ports with every store port served by this database, no validation
    /// cache and no revocation listener (set those fields to wire caches in).
    pub fn ports(
        &self,
        keys: Arc<dyn KeyRing>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn SecureRandom>,
    ) -> Ports {
        crate::ports(Arc::new(self.clone()), keys, clock, random)
    }

    /// A write transaction on the writer connection. `BEGIN IMMEDIATE` takes SQLite's write
    /// lock up front (waiting out other processes' writers), so the transaction's first
    /// conditional UPDATE is a compare-and-set no concurrent writer can interleave with.
    async fn write_transaction(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)
    }

    /// Closes the pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Maps a sqlx error: unique-constraint violations are conflicts, connection trouble is
/// unavailability, anything else a backend failure.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        // Transient: the caller answers 503 and readiness reports it.
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StoreError::Unavailable(Box::new(e))
        }
        _ => StoreError::backend(e),
    }
}

#[async_trait]
impl Database for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        SqliteStore::ping(self).await
    }

    async fn close(&self) {
        SqliteStore::close(self).await;
    }

    fn engine(&self) -> &'static str {
        "sqlite"
    }
}
