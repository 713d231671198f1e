//! Opening the store named by `--data-dir` / `--database-url`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use tessera_store::SqliteStore;

use crate::cli::StoreArgs;

/// Opens the configured database, creating the data directory for the embedded default.
pub async fn open(args: &StoreArgs) -> Result<SqliteStore> {
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            create_private_dir(&args.data_dir)?;
            format!("sqlite://{}", args.data_dir.join("tessera.db").display())
        }
    };
    if !url.starts_with("sqlite:") {
        bail!(
            "TESSERA_DATABASE_URL: unsupported database `{}`; this version supports sqlite:// URLs",
            url.split(':').next().unwrap_or_default()
        );
    }
    SqliteStore::open(&url)
        .await
        .with_context(|| format!("cannot open the database at {url}"))
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
