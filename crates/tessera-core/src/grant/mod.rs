//! The token endpoint's grants, one module each (RFC 6749 §4).
//!
//! Every grant ends in [`issue`], which needs an [`AuthenticatedClient`] and, for a user's
//! token, a [`PkceVerified`] proof: a flow that skipped a check cannot mint a token.

pub mod authorization_code;
pub mod client_credentials;

use serde::Serialize;

use crate::access_token::AccessTokenClaims;
use crate::client::AuthenticatedClient;
use crate::error::OAuthError;
use crate::pkce::PkceVerified;
use crate::scope::ScopeSet;
use crate::secret;
use crate::server::AuthorizationServer;
use crate::time::UnixTime;
use crate::user::User;

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The access token (a JWT).
    pub access_token: String,
    /// Always `Bearer` (RFC 6750).
    pub token_type: &'static str,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// The granted scope (RFC 6749 §5.1: required when it differs from the request; always
    /// sent here so clients need not guess).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// On whose behalf a token is issued.
pub(crate) enum Subject {
    /// A user, through a code redeemed with a verified PKCE proof.
    User {
        user: User,
        auth_time: UnixTime,
        _pkce: PkceVerified,
    },
    /// The client itself (client credentials, RFC 6749 §4.4).
    Client,
}

/// Mints an access token for an authenticated client.
pub(crate) fn issue(
    server: &AuthorizationServer,
    client: &AuthenticatedClient,
    subject: Subject,
    audience: String,
    scope: &ScopeSet,
) -> Result<TokenResponse, OAuthError> {
    let policy = server.policy();
    let ports = server.ports();
    let now = ports.clock.now();
    let client = client.client();
    let (sub, roles, auth_time) = match subject {
        Subject::User {
            user, auth_time, ..
        } => (user.id, Some(user.roles), Some(auth_time.0)),
        Subject::Client => (client.id.clone(), None, None),
    };
    let claims = AccessTokenClaims {
        iss: policy.issuer.clone(),
        sub,
        aud: audience,
        exp: now.plus(policy.access_token_ttl).0,
        iat: now.0,
        nbf: now.0,
        jti: secret::mint_id(ports.random.as_ref()),
        client_id: client.id.clone(),
        scope: scope.to_string(),
        roles,
        auth_time,
    };
    let access_token = claims.sign(ports.keys.signing_key().as_ref())?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: policy.access_token_ttl.as_secs(),
        scope: claims.scope,
    })
}
