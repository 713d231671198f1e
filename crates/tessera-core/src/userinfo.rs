//! The UserInfo endpoint's answer (OIDC Core §5.3): who the bearer of an access token is.
//!
//! The access token is checked exactly as introspection checks it (signature under one of
//! our keys, issuer, `nbf <= now < exp`, not revoked; through the same validation cache),
//! then it must carry the `openid` scope and name a user who still exists and is enabled.
//! The answer holds `sub` and what the token's scope releases (see [`UserClaims`]).

use serde::Serialize;

use crate::error::OAuthError;
use crate::id_token::{OPENID, UserClaims};
use crate::introspection;
use crate::scope::ScopeSet;
use crate::server::AuthorizationServer;

/// A UserInfo response (OIDC Core §5.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    /// The user's id, the same `sub` as in the ID token.
    pub sub: String,
    /// What the token's scope releases.
    #[serde(flatten)]
    pub claims: UserClaims,
}

/// Why a UserInfo request was refused (RFC 6750 §3.1).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum UserInfoError {
    /// The token is malformed, not ours, expired or revoked, or its user is gone
    /// (`invalid_token`, 401).
    #[error("invalid_token")]
    InvalidToken,
    /// The token is valid but was not granted the `openid` scope (`insufficient_scope`,
    /// 403).
    #[error("insufficient_scope")]
    InsufficientScope,
    /// Storage failed.
    #[error(transparent)]
    Server(#[from] OAuthError),
}

impl AuthorizationServer {
    /// The claims about the user an access token was issued for.
    pub async fn userinfo(&self, access_token: &str) -> Result<UserInfo, UserInfoError> {
        let Some((token, _)) = introspection::access(self, access_token).await? else {
            return Err(UserInfoError::InvalidToken);
        };
        let scope = ScopeSet::from_tokens(token.scope.split(' ').filter(|s| !s.is_empty()));
        if !scope.contains(OPENID) {
            return Err(UserInfoError::InsufficientScope);
        }
        // A client's own token (client credentials) has the client as its subject: there
        // is no user to describe, whatever its scope.
        if token.sub == token.client_id {
            return Err(UserInfoError::InvalidToken);
        }
        let user = self
            .ports()
            .users
            .find(&token.sub)
            .await
            .map_err(OAuthError::from)?
            .filter(|u| !u.disabled)
            .ok_or(UserInfoError::InvalidToken)?;
        Ok(UserInfo {
            claims: UserClaims::released(&user, &scope),
            sub: user.id,
        })
    }
}
