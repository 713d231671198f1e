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
mod writer;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Value;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tessera_core::keys::KeyRing;
use tessera_core::random::SecureRandom;
use tessera_core::time::Clock;
use tessera_core::{Ports, StoreError};

use crate::codec::{from_json, hash_from, to_json};
use crate::{Database, PoolSettings, schema};

use self::writer::Writer;

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
        (
            5,
            "openid connect",
            include_str!("../../migrations/sqlite/0005_openid_connect.sql"),
        ),
    ])
}

/// How long a write waits for another process's write lock (the CLI's) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Every store port on one SQLite database.
///
/// Reads go through a pool of sqlx connections; every write is a job for one writer thread
/// that owns the one write connection (rusqlite, see `sqlite/writer.rs`). SQLite admits one
/// writer at a time anyway: queueing writers in process instead of in SQLite's busy handler
/// (which sleeps and retries) keeps write latency flat under contention, and the thread
/// commits what is queued together (group commit): one fsync for many writes, each still
/// atomic, isolated and durable before its caller hears of it. Other processes (the CLI) still coordinate with
/// the server through SQLite's locks and the busy timeout.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) with the default
    /// pool settings and applies pending migrations. Refuses a database migrated by a newer
    /// Tessera ([`SchemaError::NewerThanThisTessera`](crate::SchemaError)).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &PoolSettings::default()).await
    }

    /// Like [`open`](Self::open), with `settings.max_connections` readers (the one writer
    /// comes on top) and `settings.acquire_timeout` for the readers.
    pub async fn open_with(url: &str, settings: &PoolSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::backend)?
            .create_if_missing(true)
            .foreign_keys(true)
            // WAL lets readers proceed while a writer commits; the busy timeout turns
            // writer contention into waiting instead of SQLITE_BUSY errors.
            .journal_mode(SqliteJournalMode::Wal)
            // SQLite's default, spelled out: in WAL mode every COMMIT syncs the log, so a
            // write is durable when its caller hears of it (group commit shares that sync
            // between the writes of a batch; it never skips it).
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        // Migrations run through sqlx on a connection of their own, closed before the
        // writer thread opens its connection.
        let migrating = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(options.clone())
            .await
            .map_err(map_err)?;
        let migrated = migrator().run(&migrating).await;
        migrating.close().await;
        if let Err(e) = migrated {
            return Err(schema::migrate_err(e, map_err));
        }
        let path = options.get_filename().to_owned();
        let open = move || open_writer(&path);
        let conn = open().map_err(map_write_err)?;
        let writer =
            Writer::start(conn, Box::new(open)).map_err(|e| StoreError::Backend(Box::new(e)))?;
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

    /// Runs `work` as one atomic write on the writer connection, committed with the other
    /// writes queued at the same time. Everything `work` wrote is rolled back if it returns
    /// an error; the answer comes once the COMMIT containing it has returned. The batch
    /// holds SQLite's write lock (`BEGIN IMMEDIATE`) and runs its jobs one at a time, so a
    /// job's first conditional UPDATE is a compare-and-set no other writer can interleave
    /// with. `work` runs on the writer thread: it must only run statements, and must not
    /// open or end transactions itself.
    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// One statement as a write (see [`write`](Self::write)); the number of rows it changed.
    async fn execute(&self, sql: &'static str, params: Vec<Value>) -> Result<u64, StoreError> {
        self.write(move |conn| run(conn, sql, rusqlite::params_from_iter(params)))
            .await
    }

    /// Closes the pool and the writer, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// Opens the writer thread's connection with the pool's settings: WAL, `synchronous=FULL`
/// (SQLite's default, spelled out: in WAL mode every COMMIT syncs the log, so a write is
/// durable when its caller hears of it; group commit shares that sync between the writes
/// of a batch, it never skips it), foreign keys, and a busy timeout for the CLI's writes.
fn open_writer(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "full")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// `sql` with `params` (`rusqlite::params!` or a `Vec<Value>` through `params_from_iter`) on
/// the writer connection, prepared once per connection; the number of rows it changed.
fn run(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<u64, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(map_write_err)?;
    let changed = statement.execute(params).map_err(map_write_err)?;
    Ok(changed as u64)
}

/// A statement parameter.
fn v(value: impl Into<Value>) -> Value {
    value.into()
}

/// Maps an error of the writer connection like [`map_err`] maps sqlx's.
fn map_write_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi;
    match &e {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict
        }
        _ if writer::is_transient(&e) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::backend(e),
    }
}

/// Maps a sqlx error: unique-constraint violations are conflicts, transient trouble (see
/// [`is_transient`]) is unavailability, anything else a backend failure.
fn map_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ if is_transient(&e) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::backend(e),
    }
}

/// `SQLITE_FULL`, the primary result code of a write the disk (or `max_page_count`) has no
/// room for.
const SQLITE_FULL: i32 = 13;

/// Whether an error is transient, so that the caller answers 503 and may retry: connection
/// trouble, and a full disk (`SQLITE_FULL`, extended codes included), which SQLite rolls
/// back cleanly and which ends when space comes back.
pub(super) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_FULL),
        _ => false,
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
