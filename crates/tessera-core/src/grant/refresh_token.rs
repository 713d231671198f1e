//! Refresh token grant with rotation and reuse detection (RFC 6749 §6, RFC 9700 §4.14.2).
//!
//! Every refresh returns a new pair and invalidates the presented token, in one atomic
//! store step. Presenting a rotated token again is reuse and revokes the family, unless it
//! is a retry inside the grace window whose successor was never used: then the retry
//! supersedes that successor (see [`crate::refresh_family`]).

use crate::audit::{AuditEvent, Event, HashPrefix, Outcome};
use crate::client::{AuthenticatedClient, GrantType};
use crate::error::OAuthError;
use crate::grant::{Subject, TokenResponse, UserGrantProof, access_token, refresh_token, response};
use crate::params::Params;
use crate::refresh_family::{Family, RefreshToken};
use crate::revocation::RevocationReason;
use crate::scope::ScopeSet;
use crate::secret::SecretHash;
use crate::server::AuthorizationServer;
use crate::time::UnixTime;

/// Proof that the presented refresh token was live, unexpired and bound to the client.
#[derive(Debug)]
pub struct RefreshVerified(());

/// What the presented token's state asks for.
enum Step {
    /// The live token: rotate it.
    Rotate,
    /// A retry inside the grace window: supersede the unused successor.
    Supersede(SecretHash),
}

/// Exchanges a refresh token for a new access token and refresh token.
pub async fn refresh(
    server: &AuthorizationServer,
    client: AuthenticatedClient,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let ports = server.ports();
    let registered = client.client();
    if !registered.allows(GrantType::RefreshToken) {
        return Err(OAuthError::UnauthorizedClient(
            "the client may not use the refresh_token grant",
        ));
    }
    let presented = params.require("refresh_token")?;
    let requested_scope = params.get("scope")?;
    let hash = SecretHash::of(presented);
    let invalid = OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked");

    let Some((token, family)) = ports.refresh.find(&hash).await? else {
        return Err(invalid);
    };
    // RFC 6749 §6: the token must have been issued to the authenticated client. Another
    // client presenting it proves nothing about the rightful one, so nothing is revoked.
    if family.client_id != registered.id || family.revoked.is_some() {
        return Err(invalid);
    }
    let now = ports.clock.now();
    let step = match (token.rotated_at, token.successor) {
        (None, _) => Step::Rotate,
        (Some(rotated_at), Some(successor)) if in_grace(server, rotated_at, now) => {
            match ports.refresh.find(&successor).await? {
                Some((next, _)) if next.rotated_at.is_none() => Step::Supersede(successor),
                _ => return Err(reuse(server, &family, &hash).await),
            }
        }
        _ => return Err(reuse(server, &family, &hash).await),
    };
    // Expiry is always checked here, on the server (the seed's "critical consideration").
    if now >= token.expires_at || now >= family.absolute_expires_at {
        return Err(invalid);
    }
    // RFC 6749 §6: the scope may be narrowed, never widened.
    let scope = ScopeSet::requested(requested_scope, &family.scope)?;
    let user = ports
        .users
        .find(&family.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(OAuthError::InvalidGrant("the user is no longer active"))?;

    let subject = Subject::User {
        user: Box::new(user),
        auth_time: family.auth_time,
        // OIDC Core §12.2: the ID token of a refresh carries no nonce.
        nonce: None,
        _proof: UserGrantProof::Refresh(RefreshVerified(())),
    };
    let access = access_token(server, &client, subject, family.audience.clone(), &scope)?;
    let (secret, next) = refresh_token(server, registered, family.absolute_expires_at);
    let won = match &step {
        Step::Rotate => {
            ports
                .refresh
                .rotate(&hash, &next, &access.record, now)
                .await?
        }
        Step::Supersede(stale) => {
            ports
                .refresh
                .supersede(&hash, stale, &next, &access.record, now)
                .await?
        }
    };
    if !won {
        // Another request rotated this token (or the successor) first: this one presented a
        // token that is no longer live, which is reuse.
        return Err(reuse(server, &family, &hash).await);
    }
    Ok(response(access, Some(secret), &scope, Some(&family.id)))
}

fn in_grace(server: &AuthorizationServer, rotated_at: UnixTime, now: UnixTime) -> bool {
    let grace = server.policy().refresh_grace;
    !grace.is_zero() && now < rotated_at.plus(grace)
}

/// Revokes the family of a reused token and refuses the request.
async fn reuse(
    server: &AuthorizationServer,
    family: &Family,
    presented: &SecretHash,
) -> OAuthError {
    metrics::counter!("tessera_refresh_reuse_detected_total").increment(1);
    AuditEvent::new(Event::RefreshReuseDetected, Outcome::Failure)
        .client(&family.client_id)
        .user(&family.user_id)
        .family(&family.id)
        .token(HashPrefix::from(presented))
        .reason(RevocationReason::RefreshTokenReuse.as_str())
        .emit();
    let revoked = server
        .revoke_family(&family.id, RevocationReason::RefreshTokenReuse)
        .await;
    match revoked {
        Ok(_) => OAuthError::InvalidGrant("the refresh token is invalid, expired or revoked"),
        Err(e) => e,
    }
}

/// A refresh token's state for listings and tests: live, or why not.
pub fn is_live(token: &RefreshToken, family: &Family, now: UnixTime) -> bool {
    token.rotated_at.is_none()
        && family.revoked.is_none()
        && now < token.expires_at
        && now < family.absolute_expires_at
}
