//! The embedded SQLite adapter: one file, every store port, migrations applied at open.
//!
//! Each port lives in its own module (`clients`, `users`, `codes`, `sessions`, `keys`),
//! mirroring the core module that declares it. Queries are checked at run time (no sqlx
//! macros), which keeps SQLite from being compiled twice.

mod clients;
mod codes;
mod janitor;
mod keys;
mod refresh;
mod sessions;
mod users;

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlSafeStr;
use sqlx::SqlitePool;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tessera_core::introspection::NoCache;
use tessera_core::keys::KeyRing;
use tessera_core::random::SecureRandom;
use tessera_core::revocation::NoListener;
use tessera_core::time::Clock;
use tessera_core::{Ports, StoreError};

/// The SQLite migrations, embedded in the binary.
fn migrator() -> Migrator {
    let migration = |version, name, sql: &'static str| {
        Migration::new(
            version,
            Cow::Borrowed(name),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(
            1,
            "foundation",
            include_str!("../../migrations/sqlite/0001_foundation.sql"),
        ),
        migration(
            2,
            "refresh families",
            include_str!("../../migrations/sqlite/0002_refresh_families.sql"),
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
    /// Opens (creating if needed) the database at `url` (`sqlite://path`)
    /// and applies pending migrations. Refuses a database migrated by a newer Tessera.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
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
            .connect_with(options.clone())
            .await
            .map_err(StoreError::backend)?;
        migrator().run(&writer).await.map_err(StoreError::backend)?;
        let pool = SqlitePool::connect_with(options)
            .await
            .map_err(StoreError::backend)?;
        Ok(Self { pool, writer })
    }

    /// Whether the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(StoreError::backend)
    }

    /// The domain's ports with every store port served by this database, no validation
    /// cache and no revocation listener (set those fields to wire caches in).
    pub fn ports(
        &self,
        keys: Arc<dyn KeyRing>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn SecureRandom>,
    ) -> Ports {
        let shared = Arc::new(self.clone());
        Ports {
            clients: shared.clone(),
            users: shared.clone(),
            codes: shared.clone(),
            sessions: shared.clone(),
            refresh: shared.clone(),
            revocations: shared,
            on_revocation: Arc::new(NoListener),
            cache: Arc::new(NoCache),
            keys,
            clock,
            random,
        }
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

/// Encodes a list as a JSON array column.
fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list).to_string()
}

/// Decodes a JSON array column.
fn from_json(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(StoreError::backend)
}

/// Decodes a 32-byte hash column.
fn hash_from(bytes: Vec<u8>) -> Result<tessera_core::secret::SecretHash, StoreError> {
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Backend("hash column is not 32 bytes".into()))?;
    Ok(tessera_core::secret::SecretHash(raw))
}
