//! Column encodings both engines share: lists as JSON arrays, hashes as 32-byte blobs,
//! scopes space-delimited, optional lifetimes as whole seconds.

use std::time::Duration;

use tessera_core::StoreError;
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;

/// Encodes a list as a JSON array column.
pub(crate) fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list).to_string()
}

/// Decodes a JSON array column.
pub(crate) fn from_json(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(StoreError::backend)
}

/// Decodes a 32-byte hash column.
pub(crate) fn hash_from(bytes: Vec<u8>) -> Result<SecretHash, StoreError> {
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Backend("hash column is not 32 bytes".into()))?;
    Ok(SecretHash(raw))
}

/// Decodes a space-delimited scope column.
pub(crate) fn scope_from(text: &str) -> ScopeSet {
    ScopeSet::from_tokens(text.split(' ').filter(|s| !s.is_empty()))
}

/// Encodes an optional lifetime as whole seconds (NULL for none).
pub(crate) fn ttl_to(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Decodes an optional lifetime column: positive whole seconds, or NULL for none.
pub(crate) fn ttl_from(secs: Option<i64>) -> Result<Option<Duration>, StoreError> {
    secs.map(|s| match u64::try_from(s) {
        Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(StoreError::Backend(
            "lifetime column is not positive".into(),
        )),
    })
    .transpose()
}
