//! What can go wrong getting a token, typed so callers can act on it.

use crate::store::StoreError;

/// Why no token could be had.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The refresh token is gone: refused by the server (`invalid_grant`: expired, revoked,
    /// reused) or never stored. The user must sign in again; retrying will not help.
    #[error("reauthentication required: the session has ended")]
    ReauthenticationRequired,
    /// The server refused the request for another reason (RFC 6749 §5.2), e.g. bad client
    /// credentials (`invalid_client`) or a scope it will not grant.
    #[error("the authorization server refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The OAuth error code.
        error: String,
        /// The server's description, if any.
        description: Option<String>,
    },
    /// The server could not be reached or kept failing (network errors, 5xx, 429) after
    /// the retries; a later call may succeed.
    #[error("the authorization server is unavailable: {0}")]
    Unavailable(String),
    /// The server's answer was not a usable token response.
    #[error("unusable token response: {0}")]
    Response(String),
    /// The token store failed.
    #[error("{0}")]
    Store(String),
    /// The issuer's metadata could not be read.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// Interactive sign-in failed (state mismatch, error redirect, timeout).
    #[error("sign-in failed: {0}")]
    Login(String),
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Error::Store(error.to_string())
    }
}
