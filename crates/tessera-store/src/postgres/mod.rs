//! The PostgreSQL adapter: every store port on one database shared by any number of nodes.
//!
//! Each port lives in its own module (`clients`, `users`, `codes`, `sessions`, `consents`,
//! `keys`, `refresh`, `janitor`), mirroring the SQLite adapter. Queries are checked at run time
//! (no sqlx macros) and the schema migrations are embedded and applied at open.
//!
//! Transactions run at PostgreSQL's default READ COMMITTED level. Every compare-and-set is
//! a conditional UPDATE of one row: a concurrent loser waits for the winner's row lock,
//! then re-evaluates its WHERE clause against the committed row and changes nothing.
//! Where a step depends on a second row (a rotation on its family not being revoked), that
//! row is locked first (see `refresh`). Deadlocks and serialization failures are retried
//! inside the store (`retry`), never surfaced.

mod clients;
mod codes;
mod consents;
mod janitor;
mod keys;
mod refresh;
mod retry;
mod revocations;
mod sessions;
mod users;

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tessera_core::keys::KeyRing;
use tessera_core::random::SecureRandom;
use tessera_core::time::Clock;
use tessera_core::{Ports, StoreError};

use crate::codec::{from_json, hash_from, scope_from, to_json};
use crate::{Database, PoolSettings, schema};
use retry::{Failure, retry};

/// The PostgreSQL migrations, embedded in the binary; the same versions as SQLite's.
fn migrator() -> Migrator {
    schema::migrator(&[
        (
            1,
            "foundation",
            include_str!("../../migrations/postgres/0001_foundation.sql"),
        ),
        (
            2,
            "refresh families",
            include_str!("../../migrations/postgres/0002_refresh_families.sql"),
        ),
        (
            3,
            "client token lifetimes",
            include_str!("../../migrations/postgres/0003_client_token_lifetimes.sql"),
        ),
        (
            4,
            "consent and sign-out",
            include_str!("../../migrations/postgres/0004_consent_and_sign_out.sql"),
        ),
        (
            5,
            "openid connect",
            include_str!("../../migrations/postgres/0005_openid_connect.sql"),
        ),
    ])
}

/// Every store port on one PostgreSQL database, through a pool of connections.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to the existing database at `url` (`postgres://user@host/db`) with the
    /// default pool settings and applies pending migrations. Refuses a database migrated by
    /// a newer Tessera ([`SchemaError::NewerThanThisTessera`](crate::SchemaError)).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &PoolSettings::default()).await
    }

    /// Like [`open`](Self::open), with the given pool size and acquire timeout.
    pub async fn open_with(url: &str, settings: &PoolSettings) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url).map_err(StoreError::backend)?;
        if options.get_application_name().is_none() {
            // Lets an operator tell Tessera's sessions apart in pg_stat_activity.
            options = options.application_name("tessera");
        }
        // Migrations run on a connection of their own: sqlx's migrator holds a session-level
        // advisory lock (so nodes starting together migrate once), and a failed run would
        // leave that lock held on a connection kept for queries. Closing it releases the
        // lock. (A one-connection pool rather than a bare connection keeps this future
        // `Send` for any caller: sqlx's `Acquire` for `&mut PgConnection` is not general
        // enough for that.)
        let migrations = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        let migrated = migrator().run(&migrations).await;
        migrations.close().await;
        migrated.map_err(|e| schema::migrate_err(e, map_err))?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
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

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Database for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        PostgresStore::ping(self).await
    }

    async fn close(&self) {
        PostgresStore::close(self).await;
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }
}

/// Maps a sqlx error: unique-constraint violations are conflicts, connection trouble
/// (including a server shutting down or out of connection slots) is unavailability,
/// anything else a backend failure.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::Database(db) if db.code().as_deref().is_some_and(is_unavailable) => {
            StoreError::Unavailable(Box::new(e))
        }
        // Transient: the caller answers 503 and readiness reports it.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::backend(e),
    }
}

/// SQLSTATEs that mean the server cannot serve us right now: class 08 (connection
/// exception), 53300 (too many connections), 57P01-57P03 (shutting down, starting up).
fn is_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "53300" | "57P01" | "57P02" | "57P03")
}
