//! Refresh-token families (RFC 9700 §4.14.2): one authorization grant and everything
//! issued from it.
//!
//! A family starts when a code is redeemed. At any time it has at most one live refresh
//! token: each rotation marks the presented token rotated and stores its successor, in one
//! atomic step. Presenting a rotated token is reuse, and revokes the whole family: its
//! refresh tokens die with it and the access tokens it issued go on the revocation list.
//! A short grace window (off by default) lets a client whose response was lost retry: the
//! retry supersedes the successor that was never used, so the family still has one live
//! token.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::revocation::{Revocation, RevocationReason};
use crate::scope::ScopeSet;
use crate::secret::SecretHash;
use crate::time::UnixTime;

/// Prefix of every refresh token, so secret scanners can recognise leaked ones.
pub const REFRESH_PREFIX: &str = "tsr_";

/// A grant: the client, user, scope and audience every token of the family is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Family id.
    pub id: String,
    /// The client the grant belongs to.
    pub client_id: String,
    /// The user who authorized it.
    pub user_id: String,
    /// The granted scope; refreshes may narrow it per request, never widen it.
    pub scope: ScopeSet,
    /// The audience of the family's access tokens.
    pub audience: String,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// When the grant was made.
    pub created_at: UnixTime,
    /// No refresh token of the family lives past this (`TESSERA_REFRESH_TOKEN_MAX_LIFETIME`).
    pub absolute_expires_at: UnixTime,
    /// Set once the family is revoked.
    pub revoked: Option<Revocation>,
}

/// One refresh token of a family, stored under its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Hash of the token.
    pub token_hash: SecretHash,
    /// The family.
    pub family_id: String,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it expires (sliding, capped by the family's absolute limit).
    pub expires_at: UnixTime,
    /// When it was rotated (or superseded); `None` while it is the live token.
    pub rotated_at: Option<UnixTime>,
    /// The token that replaced it.
    pub successor: Option<SecretHash>,
}

/// A refresh token about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// Hash of the token.
    pub token_hash: SecretHash,
    /// Issue time.
    pub issued_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
}

/// An access token issued from a family, remembered so it can be revoked with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedAccessToken {
    /// The token's `jti`.
    pub jti: String,
    /// The token's `exp`.
    pub expires_at: UnixTime,
}

/// What a code redemption creates, atomically with consuming the code.
#[derive(Debug, Clone)]
pub struct NewGrant {
    /// The family.
    pub family: Family,
    /// Its first refresh token, when the client may refresh.
    pub refresh: Option<NewRefreshToken>,
    /// The access token issued with it.
    pub access: IssuedAccessToken,
}

/// Storage of families and their refresh tokens.
///
/// Contract: `rotate`, `supersede` and `revoke_family` are each atomic. Of any number of
/// concurrent `rotate` calls for one token exactly one returns `true`; none returns `true`
/// once the family is revoked; a family never has two unrotated tokens.
#[async_trait]
pub trait RefreshStore: Send + Sync {
    /// The token with this hash and its family.
    async fn find(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<(RefreshToken, Family)>, StoreError>;

    /// Rotation: if `old` is unrotated and its family not revoked, marks it rotated at `now`
    /// with successor `new`, stores `new`, and records `access` in the family. `true` if
    /// this call did it.
    async fn rotate(
        &self,
        old: &SecretHash,
        new: &NewRefreshToken,
        access: &IssuedAccessToken,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Grace-window retry: if `stale` (the successor of `old`) is still unrotated and the
    /// family not revoked, marks `stale` rotated, stores `new` as `old`'s successor, and
    /// records `access`. `true` if this call did it.
    async fn supersede(
        &self,
        old: &SecretHash,
        stale: &SecretHash,
        new: &NewRefreshToken,
        access: &IssuedAccessToken,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Revokes a family: its refresh tokens die and the unexpired access tokens it issued go
    /// on the revocation list. `true` if this call revoked it (`false` if already revoked
    /// or unknown).
    async fn revoke_family(
        &self,
        family_id: &str,
        reason: RevocationReason,
        now: UnixTime,
    ) -> Result<bool, StoreError>;

    /// Revokes every unrevoked family of a user; returns how many.
    async fn revoke_user_families(
        &self,
        user_id: &str,
        reason: RevocationReason,
        now: UnixTime,
    ) -> Result<u64, StoreError>;
}
