//! Token revocation (RFC 7009).
//!
//! The client authenticates as at the token endpoint. A refresh token revokes its whole
//! family; an access token goes on the revocation list until it expires. Unknown, invalid,
//! expired or already revoked tokens, and tokens of other clients, change nothing and get
//! the same answer (RFC 7009 §2.2), so the endpoint reveals nothing about them.

use crate::access_token::{ACCESS_TOKEN_TYP, AccessTokenClaims};
use crate::audit::{AuditEvent, Event, HashPrefix, Outcome};
use crate::client::AuthenticatedClient;
use crate::error::OAuthError;
use crate::jwt;
use crate::params::Params;
use crate::refresh_family::REFRESH_PREFIX;
use crate::revocation::{Revocation, RevocationReason};
use crate::secret::SecretHash;
use crate::server::AuthorizationServer;
use crate::time::UnixTime;

/// What a revocation request did; the HTTP answer is 200 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// A refresh token's family was revoked.
    Family,
    /// An access token was put on the revocation list.
    AccessToken,
    /// Nothing was revoked (unknown, expired, already revoked, or another client's token).
    Nothing,
}

/// Handles a revocation request of an authenticated client.
pub async fn revoke(
    server: &AuthorizationServer,
    client: AuthenticatedClient,
    params: &Params,
) -> Result<Revoked, OAuthError> {
    let token = params.require("token")?;
    // RFC 7009 §2.1: the hint may speed up the lookup, but the server must search further
    // if it is wrong; an unknown hint is ignored.
    let refresh_first = match params.get("token_type_hint")? {
        Some("access_token") => false,
        Some(_) | None => token.starts_with(REFRESH_PREFIX),
    };
    if refresh_first {
        match revoke_refresh(server, &client, token).await? {
            Revoked::Nothing => revoke_access(server, &client, token).await,
            done => Ok(done),
        }
    } else {
        match revoke_access(server, &client, token).await? {
            Revoked::Nothing => revoke_refresh(server, &client, token).await,
            done => Ok(done),
        }
    }
}

async fn revoke_refresh(
    server: &AuthorizationServer,
    client: &AuthenticatedClient,
    token: &str,
) -> Result<Revoked, OAuthError> {
    let ports = server.ports();
    let Some((_, family)) = ports.refresh.find(&SecretHash::of(token)).await? else {
        return Ok(Revoked::Nothing);
    };
    // RFC 7009 §2.1: the server verifies the token was issued to the requesting client.
    if family.client_id != client.client().id {
        return Ok(Revoked::Nothing);
    }
    let revoked = server
        .revoke_family(&family.id, RevocationReason::ClientRequest)
        .await?;
    if revoked {
        AuditEvent::new(Event::TokenRevoked, Outcome::Success)
            .client(&family.client_id)
            .user(&family.user_id)
            .family(&family.id)
            .token(HashPrefix::of(token))
            .reason(RevocationReason::ClientRequest.as_str())
            .emit();
    }
    Ok(if revoked {
        Revoked::Family
    } else {
        Revoked::Nothing
    })
}

async fn revoke_access(
    server: &AuthorizationServer,
    client: &AuthenticatedClient,
    token: &str,
) -> Result<Revoked, OAuthError> {
    let ports = server.ports();
    let Ok(claims) = jwt::verify::<AccessTokenClaims>(ports.keys.as_ref(), ACCESS_TOKEN_TYP, token)
    else {
        return Ok(Revoked::Nothing);
    };
    let now = ports.clock.now();
    if claims.iss != server.policy().issuer
        || claims.client_id != client.client().id
        || now >= UnixTime(claims.exp)
    {
        return Ok(Revoked::Nothing);
    }
    let revocation = Revocation {
        at: now,
        reason: RevocationReason::ClientRequest,
    };
    ports
        .revocations
        .revoke_access_token(&claims.jti, UnixTime(claims.exp), revocation)
        .await?;
    metrics::counter!(
        "tessera_revocations_published_total",
        "kind" => "access_token",
        "reason" => RevocationReason::ClientRequest.as_str()
    )
    .increment(1);
    ports.on_revocation.revoked().await;
    let mut event = AuditEvent::new(Event::TokenRevoked, Outcome::Success)
        .client(&claims.client_id)
        .token(HashPrefix::of(token))
        .reason(RevocationReason::ClientRequest.as_str());
    // A client's own token has the client as its subject; a user's has the user.
    if claims.sub != claims.client_id {
        event.user = Some(&claims.sub);
    }
    event.emit();
    Ok(Revoked::AccessToken)
}
