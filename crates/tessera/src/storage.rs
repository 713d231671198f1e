//! Opening the store named by `--data-dir` / `--database-url`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use tessera_store::{Database, PoolSettings};

use crate::cli::StoreArgs;

/// The database URL: as configured, or the embedded SQLite file in the data directory
/// (which is created, mode 0700).
pub fn url(args: &StoreArgs) -> Result<String> {
    match &args.database_url {
        Some(url) => Ok(url.clone()),
        None => {
            create_private_dir(&args.data_dir)?;
            Ok(format!(
                "sqlite://{}",
                args.data_dir.join("tessera.db").display()
            ))
        }
    }
}

/// Pool settings from the arguments.
pub fn pool(args: &StoreArgs) -> PoolSettings {
    PoolSettings {
        max_connections: args.database_max_connections,
        acquire_timeout: args.database_acquire_timeout,
    }
}

/// Opens the configured database (SQLite or PostgreSQL) and applies pending migrations;
/// refuses a database migrated by a newer Tessera.
pub async fn open(args: &StoreArgs) -> Result<Arc<dyn Database>> {
    let url = url(args)?;
    tessera_store::open(&url, &pool(args))
        .await
        // The URL may hold a password: name the engine, never the URL.
        .with_context(|| format!("cannot open the {} database", engine_of(&url)))
}

/// Applies pending migrations and exits (`tessera migrate`).
pub async fn migrate(args: &StoreArgs) -> Result<()> {
    let url = url(args)?;
    tessera_store::migrate(&url, &pool(args))
        .await
        .with_context(|| format!("cannot migrate the {} database", engine_of(&url)))?;
    println!("the {} database is at the current schema", engine_of(&url));
    Ok(())
}

fn engine_of(url: &str) -> &str {
    url.split(':').next().unwrap_or("configured")
}

/// Creates `dir` (mode 0700 on Unix) if it does not exist.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}
