//! JWT access tokens (RFC 9068).

use serde::{Deserialize, Serialize};

use crate::error::OAuthError;
use crate::jwt;
use crate::keys::SigningKey;

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// The claims of an access token (RFC 9068 §2.2, RFC 7519 §4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer identifier.
    pub iss: String,
    /// The user id, or the client id for client credentials.
    pub sub: String,
    /// The resource server the token is for.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// Not valid before.
    pub nbf: i64,
    /// Unique token id (for revocation).
    pub jti: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scope, space-delimited; omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub scope: String,
    /// Roles of the user for RBAC (RFC 9068 §2.2.3.1); omitted for client credentials.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub roles: Option<Vec<String>>,
    /// When the user authenticated; omitted for client credentials.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<i64>,
}

impl AccessTokenClaims {
    /// Signs these claims into a compact JWT with `typ: at+jwt`.
    pub fn sign(&self, key: &dyn SigningKey) -> Result<String, OAuthError> {
        jwt::sign(key, ACCESS_TOKEN_TYP, self).map_err(|e| OAuthError::ServerError(Box::new(e)))
    }
}
