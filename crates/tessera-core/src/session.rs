//! Browser sessions: who is signed in at the authorization endpoint.
//!
//! The browser holds a random session id in a cookie; the store holds only its hash.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::secret::SecretHash;
use crate::time::UnixTime;

/// A signed-in browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Hash of the session id held in the cookie.
    pub id_hash: SecretHash,
    /// The signed-in user's id.
    pub user_id: String,
    /// When the user authenticated (OIDC `auth_time`).
    pub auth_time: UnixTime,
    /// When the session ends.
    pub expires_at: UnixTime,
}

/// Storage of browser sessions.
///
/// Contract: `find` returns a session whatever its expiry; callers check `expires_at`.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session.
    async fn create(&self, session: &Session) -> Result<(), StoreError>;
    /// The session with this id hash.
    async fn find(&self, id_hash: &SecretHash) -> Result<Option<Session>, StoreError>;
    /// Ends a session; `false` if there was none.
    async fn delete(&self, id_hash: &SecretHash) -> Result<bool, StoreError>;
}
