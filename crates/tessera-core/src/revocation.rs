//! The access-token revocation list.
//!
//! Access tokens are self-contained JWTs, so revoking one means remembering its `jti` until
//! the token would have expired anyway; introspection and gateways consult the list.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::time::UnixTime;

/// Why a token or family was revoked; recorded with the revocation.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    /// A rotated refresh token was presented again (RFC 9700 §4.14.2).
    RefreshTokenReuse,
    /// An authorization code was redeemed a second time (RFC 6749 §4.1.2).
    CodeReplay,
    /// The client asked for it at the revocation endpoint (RFC 7009).
    ClientRequest,
    /// An operator signed the user out everywhere.
    UserSignOut,
}

impl RevocationReason {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::CodeReplay => "code_replay",
            Self::ClientRequest => "client_request",
            Self::UserSignOut => "user_sign_out",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::RefreshTokenReuse,
            Self::CodeReplay,
            Self::ClientRequest,
            Self::UserSignOut,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// When and why something was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// When.
    pub at: UnixTime,
    /// Why.
    pub reason: RevocationReason,
}

/// One entry of the revocation list, in the order caches and gateways follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Position in the list; strictly increasing in the order entries were added.
    pub seq: i64,
    /// The revoked token's `jti`.
    pub jti: String,
    /// When the token expires (the entry is useless afterwards).
    pub expires_at: UnixTime,
}

/// Storage of revoked access-token ids.
///
/// Contract: revoking is idempotent (the first revocation's time, reason and position are
/// kept); every newly listed `jti` (here or through `RefreshStore::revoke_family` and
/// `revoke_user_families`) gets a `seq` greater than any before it; an entry may be dropped
/// once `expires_at` has passed, since the token is dead anyway.
#[async_trait]
pub trait RevocationList: Send + Sync {
    /// Puts an access token's `jti` on the list until `expires_at`.
    async fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: UnixTime,
        revocation: Revocation,
    ) -> Result<(), StoreError>;
    /// Whether the `jti` is on the list.
    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError>;
    /// Entries with `seq > after`, oldest first, at most `limit`.
    async fn revoked_since(&self, after: i64, limit: u32) -> Result<Vec<RevokedEntry>, StoreError>;
    /// The highest `seq` handed out so far (0 before the first).
    async fn latest_seq(&self) -> Result<i64, StoreError>;
}

/// Told after a revocation is committed, so that this process's caches catch up before the
/// revoking request is answered, instead of at their next poll of the list.
#[async_trait]
pub trait RevocationListener: Send + Sync {
    /// Something was added to the revocation list; returns once caches have caught up.
    async fn revoked(&self);
}

/// A listener for processes without caches (the CLI, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoListener;

#[async_trait]
impl RevocationListener for NoListener {
    async fn revoked(&self) {}
}
