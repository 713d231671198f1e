//! Authorization codes (RFC 6749 §4.1.2): short-lived, single-use, bound to their request.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::pkce::CodeChallenge;
use crate::refresh_family::NewGrant;
use crate::scope::ScopeSet;
use crate::secret::SecretHash;
use crate::time::UnixTime;

/// Prefix of every authorization code, so secret scanners can recognise leaked ones.
pub const CODE_PREFIX: &str = "tsc_";

/// What a code is bound to; stored under the hash of the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    /// Hash of the code.
    pub code_hash: SecretHash,
    /// The client the code was issued to.
    pub client_id: String,
    /// The user who authorized it.
    pub user_id: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent explicitly (RFC 6749 §4.1.3 then requires it again).
    pub redirect_uri_explicit: bool,
    /// The PKCE challenge.
    pub challenge: CodeChallenge,
    /// The granted scope.
    pub scope: ScopeSet,
    /// The RFC 8707 resource requested, if any.
    pub resource: Option<String>,
    /// When the user authenticated.
    pub auth_time: UnixTime,
    /// When the code stops being redeemable.
    pub expires_at: UnixTime,
    /// When the code was redeemed; `None` while unused.
    pub used_at: Option<UnixTime>,
    /// The family its redemption started, so a replay can revoke it.
    pub family_id: Option<String>,
    /// The OpenID Connect `nonce` of the request, for the ID token (OIDC Core §3.1.2.1).
    pub nonce: Option<String>,
}

/// Storage of authorization codes.
///
/// Contract: `redeem` is atomic: of any number of concurrent calls for one code, exactly
/// one returns `true`, and only if the code existed and was unused; that call also stores
/// the new grant and links it to the code. Used codes stay findable (with `used_at` and
/// `family_id` set) until they expire, so a replay can be recognised and answered.
#[async_trait]
pub trait CodeStore: Send + Sync {
    /// Stores a newly issued code.
    async fn insert(&self, record: &CodeRecord) -> Result<(), StoreError>;
    /// The code with this hash, used or not.
    async fn find(&self, code_hash: &SecretHash) -> Result<Option<CodeRecord>, StoreError>;
    /// Marks the code used at `now` and stores `grant` (family, first refresh token, access
    /// token record) in the same transaction; `true` if this call was the one that did.
    async fn redeem(
        &self,
        code_hash: &SecretHash,
        now: UnixTime,
        grant: &NewGrant,
    ) -> Result<bool, StoreError>;
}
