//! Embedded schema migrations, shared by both engines, and why a database cannot be used.
//!
//! Each engine embeds its own SQL (the dialects differ) under the same versions. A database
//! that records a migration this build does not know was migrated by a newer Tessera: its
//! schema may have changed under us, so opening it fails instead of guessing.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use tessera_core::StoreError;

/// Why an open database's schema cannot be used by this build.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A migration this build does not know was applied: a newer Tessera migrated it.
    #[error(
        "the database was migrated by a newer Tessera (it has migration {version}, unknown to \
         this version); upgrade Tessera or point it at another database"
    )]
    NewerThanThisTessera {
        /// The unknown migration's version.
        version: i64,
    },
    /// An applied migration differs from the one embedded here.
    #[error("migration {version} applied to the database differs from this Tessera's")]
    Modified {
        /// The migration's version.
        version: i64,
    },
    /// A migration failed halfway and was left recorded as unfinished.
    #[error("migration {version} was left partially applied")]
    Dirty {
        /// The migration's version.
        version: i64,
    },
}

/// The migrations `(version, description, sql)` as a migrator that refuses unknown applied
/// versions (`ignore_missing = false`, also sqlx's default, set here so it stays so) and
/// locks the database while it runs, so nodes starting together migrate once.
pub(crate) fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = migrations
        .iter()
        .map(|&(version, name, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(name),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.set_ignore_missing(false).set_locking(true);
    migrator
}

/// Maps a migration failure: schema disagreements get their own error, a database error
/// goes through the engine's mapping (so an unreachable server is `Unavailable`).
pub(crate) fn migrate_err(e: MigrateError, map_sql: fn(sqlx::Error) -> StoreError) -> StoreError {
    let schema = match e {
        MigrateError::VersionMissing(version) => SchemaError::NewerThanThisTessera { version },
        MigrateError::VersionMismatch(version) => SchemaError::Modified { version },
        MigrateError::Dirty(version) => SchemaError::Dirty { version },
        MigrateError::Execute(e) => return map_sql(e),
        other => return StoreError::backend(other),
    };
    StoreError::Backend(Box::new(schema))
}
