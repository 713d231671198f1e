//! Where tokens are kept between renewals and across restarts.
//!
//! The manager saves a rotated refresh token *before* it hands out the access token that
//! came with it: the old refresh token is dead the moment the server rotated it, so a crash
//! after use but before saving would lose the only live one. A store's `save` must
//! therefore be durable when it returns (the file store writes a temporary file, syncs it,
//! renames it over the old one and syncs the directory).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::tokens::TokenSet;

/// Why a store failed.
#[derive(Debug, thiserror::Error)]
#[error("token store: {0}")]
pub struct StoreError(pub String);

/// Durable storage of one token set.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The stored token set, if any.
    async fn load(&self) -> Result<Option<TokenSet>, StoreError>;
    /// Replaces the stored token set; durable when it returns.
    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError>;
    /// Removes the stored token set (logout, or a refresh token the server refused).
    async fn clear(&self) -> Result<(), StoreError>;
}

/// Tokens in memory only: for services whose tokens may die with the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tokens: Mutex<Option<TokenSet>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `tokens`.
    pub fn with(tokens: TokenSet) -> Self {
        Self {
            tokens: Mutex::new(Some(tokens)),
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<TokenSet>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        Ok(self.slot().clone())
    }

    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        *self.slot() = Some(tokens.clone());
        Ok(())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        *self.slot() = None;
        Ok(())
    }
}

/// Tokens in a JSON file readable by its owner only (mode 0600), replaced atomically.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// A store at `path` (created on the first save, with its directory, mode 0700).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io(what: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError(format!("cannot {what} {}: {error}", path.display()))
}

#[async_trait]
impl TokenStore for FileStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| StoreError(format!("{} is not a token file", self.path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &self.path, e)),
        }
    }

    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(tokens)
            .map_err(|e| StoreError(format!("cannot encode tokens: {e}")))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StoreError(format!("token file writer failed: {e}")))?
    }

    async fn clear(&self) -> Result<(), StoreError> {
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove", &self.path, e)),
        }
    }
}

/// Writes `bytes` to a temporary file in the same directory (0600), syncs it, renames it
/// over `path` and syncs the directory: after a crash the file is the old or the new one,
/// never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(|e| io("create", dir, e))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tokens");
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io("write", &temp, e));
    }
    if let Err(e) = std::fs::rename(&temp, path) {
        let _ = std::fs::remove_file(&temp);
        return Err(io("replace", path, e));
    }
    // The rename is durable once the directory entry is.
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync", dir, e))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(access: &str) -> TokenSet {
        TokenSet {
            access_token: access.into(),
            refresh_token: Some(format!("{access}-refresh")),
            scope: Some("read".into()),
            received_at: 10,
            expires_at: 910,
        }
    }

    #[tokio::test]
    async fn the_file_store_round_trips_replaces_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("nested/tokens.json"));
        assert_eq!(store.load().await.unwrap(), None);
        store.save(&tokens("one")).await.unwrap();
        store.save(&tokens("two")).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(tokens("two")));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["tokens.json"],
            "no temporary file is left behind"
        );
        store.clear().await.unwrap();
        store.clear().await.unwrap();
        assert_eq!(store.load().await.unwrap(), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_token_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg/tokens.json");
        FileStore::new(&path).save(&tokens("one")).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("cfg")), 0o700);
    }

    #[tokio::test]
    async fn a_corrupt_file_is_an_error_not_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(FileStore::new(&path).load().await.is_err());
    }
}
