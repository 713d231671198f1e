//! The token endpoint's grants, one module each (RFC 6749 §4, §6).
//!
//! Every grant mints its access token through [`access_token`], which needs an
//! [`AuthenticatedClient`] and, for a user's token, a [`UserGrantProof`]: a PKCE proof for a
//! code, or a rotation proof for a refresh. A flow that skipped a check cannot mint a token.
//! The ID token of an OpenID Connect grant is minted there too, beside its access token.

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use serde::Serialize;

use crate::access_token::AccessTokenClaims;
use crate::client::{AuthenticatedClient, Client};
use crate::error::OAuthError;
use crate::id_token::{self, IdTokenClaims, OPENID, UserClaims};
use crate::pkce::PkceVerified;
use crate::refresh_family::{IssuedAccessToken, NewRefreshToken, REFRESH_PREFIX};
use crate::scope::ScopeSet;
use crate::secret::{self, SecretHash};
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
    /// A new refresh token, when the grant issues one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope (RFC 6749 §5.1: required when it differs from the request; always
    /// sent here so clients need not guess).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// The ID token, when the granted scope holds `openid` (OIDC Core §3.1.3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// For whom the token was issued (the audit trail); never sent.
    #[serde(skip)]
    pub issued_to: IssuedTo,
}

/// For whom a token response was issued, for the audit trail.
#[derive(Debug, Clone, Default)]
pub struct IssuedTo {
    /// The user's id, for a user's token (none for the client's own).
    pub user: Option<String>,
    /// The refresh-token family the tokens belong to, if any.
    pub family: Option<String>,
}

/// How a user's token was earned.
pub(crate) enum UserGrantProof {
    /// A code redeemed with a verified PKCE verifier.
    Pkce(PkceVerified),
    /// A refresh token that was live and bound to this client.
    Refresh(refresh_token::RefreshVerified),
}

/// On whose behalf a token is issued.
pub(crate) enum Subject {
    /// A user.
    User {
        /// Boxed: a user record is large beside the client's unit variant.
        user: Box<User>,
        auth_time: UnixTime,
        /// The authorization request's `nonce`, for the ID token (none on a refresh).
        nonce: Option<String>,
        _proof: UserGrantProof,
    },
    /// The client itself (client credentials, RFC 6749 §4.4).
    Client,
}

/// A signed access token and what the store must remember about it.
pub(crate) struct MintedAccessToken {
    pub token: String,
    pub record: IssuedAccessToken,
    /// Its lifetime in seconds (`exp - iat`), for `expires_in`.
    pub lifetime: u64,
    /// The user's id, for a user's token.
    pub user: Option<String>,
    /// The ID token minted with it, for a user's grant with `openid` scope.
    pub id_token: Option<String>,
}

/// Mints an access token for an authenticated client, and for a user's grant whose scope
/// holds `openid` the ID token that goes with it (OIDC Core §3.1.3.3, §12.2).
pub(crate) fn access_token(
    server: &AuthorizationServer,
    client: &AuthenticatedClient,
    subject: Subject,
    audience: String,
    scope: &ScopeSet,
) -> Result<MintedAccessToken, OAuthError> {
    let policy = server.policy();
    let ports = server.ports();
    let now = ports.clock.now();
    let client = client.client();
    let mut oidc = None;
    let (sub, roles, auth_time, user) = match subject {
        Subject::User {
            user,
            auth_time,
            nonce,
            ..
        } => {
            let user = *user;
            if scope.contains(OPENID) {
                oidc = Some((UserClaims::released(&user, scope), nonce));
            }
            (
                user.id.clone(),
                Some(user.roles),
                Some(auth_time.0),
                Some(user.id),
            )
        }
        Subject::Client => (client.id.clone(), None, None, None),
    };
    // A client's own lifetime beats the global one.
    let lifetime = client.access_token_ttl.unwrap_or(policy.access_token_ttl);
    let exp = now.plus(lifetime);
    let claims = AccessTokenClaims {
        iss: policy.issuer.clone(),
        sub,
        aud: audience,
        exp: exp.0,
        iat: now.0,
        nbf: now.0,
        jti: secret::mint_id(ports.random.as_ref()),
        client_id: client.id.clone(),
        scope: scope.to_string(),
        roles,
        auth_time,
    };
    let key = ports.keys.signing_key();
    let token = claims.sign(key.as_ref())?;
    let id_token = match (oidc, auth_time) {
        (Some((released, nonce)), Some(auth_time)) => Some(
            IdTokenClaims {
                iss: claims.iss.clone(),
                sub: claims.sub.clone(),
                aud: client.id.clone(),
                // As long as the access token: the key schedule keeps a key published for
                // that long after its last use, so the ID token stays verifiable too.
                exp: claims.exp,
                iat: claims.iat,
                auth_time,
                nonce,
                azp: client.id.clone(),
                at_hash: id_token::at_hash(&token),
                user: released,
            }
            .sign(key.as_ref())?,
        ),
        _ => None,
    };
    Ok(MintedAccessToken {
        token,
        id_token,
        record: IssuedAccessToken {
            jti: claims.jti,
            expires_at: exp,
        },
        lifetime: lifetime.as_secs(),
        user,
    })
}

/// A fresh refresh token: the secret for the client and the record for the store, expiring
/// after the refresh TTL (the client's own, else the global one) but never past `cap` (the
/// family's absolute limit).
pub(crate) fn refresh_token(
    server: &AuthorizationServer,
    client: &Client,
    cap: UnixTime,
) -> (String, NewRefreshToken) {
    let ports = server.ports();
    let now = ports.clock.now();
    let ttl = client
        .refresh_token_ttl
        .unwrap_or_else(|| server.policy().refresh_token_ttl);
    let secret = secret::mint(ports.random.as_ref(), REFRESH_PREFIX);
    let record = NewRefreshToken {
        token_hash: SecretHash::of(&secret),
        issued_at: now,
        expires_at: now.plus(ttl).min(cap),
    };
    (secret, record)
}

/// The response for a minted access token (and refresh token, if any) of `family`.
pub(crate) fn response(
    access: MintedAccessToken,
    refresh_token: Option<String>,
    scope: &ScopeSet,
    family: Option<&str>,
) -> TokenResponse {
    TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: access.lifetime,
        refresh_token,
        scope: scope.to_string(),
        id_token: access.id_token,
        issued_to: IssuedTo {
            user: access.user,
            family: family.map(str::to_owned),
        },
    }
}
