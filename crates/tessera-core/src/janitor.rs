//! The janitor: removes what can no longer be used, so the store stays small.
//!
//! Expired codes, refresh tokens, sessions and revocation-list entries are dead by
//! definition; a family is dead once it is revoked or holds no live refresh token, and none
//! of the access tokens it issued is still within its lifetime.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::time::UnixTime;

/// What one pass removed, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Authorization codes past their expiry.
    pub codes: u64,
    /// Refresh tokens past their expiry.
    pub refresh_tokens: u64,
    /// Dead families (with whatever tokens they still held).
    pub families: u64,
    /// Records of issued access tokens past their expiry.
    pub access_token_records: u64,
    /// Revocation-list entries whose tokens have expired.
    pub revocations: u64,
    /// Browser sessions past their expiry.
    pub sessions: u64,
}

impl Purged {
    /// The kinds with their counts, for logs and metrics.
    pub fn by_kind(&self) -> [(&'static str, u64); 6] {
        [
            ("codes", self.codes),
            ("refresh_tokens", self.refresh_tokens),
            ("families", self.families),
            ("access_token_records", self.access_token_records),
            ("revocations", self.revocations),
            ("sessions", self.sessions),
        ]
    }

    /// Everything removed.
    pub fn total(&self) -> u64 {
        self.by_kind().iter().map(|(_, n)| n).sum()
    }
}

/// Removal of expired records.
///
/// Contract: removes only records that are dead at `now` (as the module doc defines), in
/// transactions of at most `batch` rows each so no lock is held long, until none is left.
#[async_trait]
pub trait Janitor: Send + Sync {
    /// One pass.
    async fn purge_expired(&self, now: UnixTime, batch: u32) -> Result<Purged, StoreError>;
}
