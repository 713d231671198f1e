//! The master key that seals private signing keys at rest (AES-256-GCM).
//!
//! From `TESSERA_MASTER_KEY` (base64 of 32 bytes), or, in embedded mode, from
//! `<data-dir>/master.key`, created with mode 0600 on first start.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::random::OsRandom;
use tessera_core::random::SecureRandom;

/// The file name of the embedded master key inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Why the master key could not be loaded.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The value is not base64 of exactly 32 bytes.
    #[error("the master key must be base64 of exactly 32 bytes")]
    Malformed,
    /// The key file could not be read or created.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// A 256-bit key for sealing private keys.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// Parses base64 (standard alphabet, padded or not) of 32 bytes.
    pub fn from_base64(value: &str) -> Result<Self, MasterKeyError> {
        let trimmed = value.trim().trim_end_matches('=');
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .map_err(|_| MasterKeyError::Malformed)?;
        raw.try_into()
            .map(Self)
            .map_err(|_| MasterKeyError::Malformed)
    }

    /// Loads `<dir>/master.key`, creating it (mode 0600) if absent. Returns the key and
    /// whether it was just created, so the caller can say so.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), MasterKeyError> {
        let path = dir.join(MASTER_KEY_FILE);
        let io = |source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match fs::read_to_string(&path) {
            Ok(text) => return Ok((Self::from_base64(&text)?, false)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut raw = [0u8; 32];
        OsRandom::default().fill(&mut raw);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        file.write_all(STANDARD.encode(raw).as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        Ok((Self(raw), true))
    }

    /// The raw key bytes.
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_file_is_private_and_reloads_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, created) = MasterKey::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (k2, created) = MasterKey::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(k1.bytes(), k2.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
        let ok = STANDARD.encode([7u8; 32]);
        assert!(MasterKey::from_base64(&ok).is_ok());
    }
}
