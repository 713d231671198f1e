//! Authorization code grant, token request (RFC 6749 §4.1.3, RFC 7636 §4.5-4.6).

use crate::audit::{AuditEvent, Event, HashPrefix, Outcome};
use crate::client::{AuthenticatedClient, GrantType};
use crate::error::OAuthError;
use crate::grant::{Subject, TokenResponse, UserGrantProof, access_token, refresh_token, response};
use crate::params::Params;
use crate::refresh_family::{Family, NewGrant};
use crate::revocation::RevocationReason;
use crate::secret::{self, SecretHash};
use crate::server::AuthorizationServer;

/// Redeems an authorization code for an access token.
pub async fn exchange(
    server: &AuthorizationServer,
    client: AuthenticatedClient,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let ports = server.ports();
    let registered = client.client();
    if !registered.allows(GrantType::AuthorizationCode) {
        return Err(OAuthError::UnauthorizedClient(
            "the client may not use the authorization code grant",
        ));
    }
    let code = params.require("code")?;
    let verifier = params.require("code_verifier")?;
    let sent_redirect = params.get("redirect_uri")?;
    let sent_resource = params.get("resource")?;

    let hash = SecretHash::of(code);
    let record = ports
        .codes
        .find(&hash)
        .await?
        .ok_or(OAuthError::InvalidGrant("the code is invalid"))?;
    // RFC 6749 §4.1.3: ensure the code was issued to the authenticated client. Checked before
    // anything is consumed, so another client presenting a stolen code cannot burn it.
    if record.client_id != registered.id {
        return Err(OAuthError::InvalidGrant("the code is invalid"));
    }
    // RFC 6749 §4.1.2: a code MUST NOT be used more than once; a second use SHOULD revoke
    // the tokens issued from the first.
    if record.used_at.is_some() {
        return Err(replay(server, &registered.id, &hash, record.family_id.as_deref()).await);
    }
    let now = ports.clock.now();
    if now >= record.expires_at {
        return Err(OAuthError::InvalidGrant("the code has expired"));
    }
    // RFC 6749 §4.1.3: redirect_uri is required if it was in the authorization request, and
    // must then be identical.
    match sent_redirect {
        Some(uri) if uri == record.redirect_uri => {}
        Some(_) => {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri does not match the authorization request",
            ));
        }
        None if record.redirect_uri_explicit => {
            return Err(OAuthError::invalid_request(
                "missing parameter `redirect_uri`",
            ));
        }
        None => {}
    }
    // RFC 7636 §4.6: the verifier must hash to the stored challenge.
    let pkce = record.challenge.verify(verifier)?;
    // RFC 8707 §2.2: a resource at the token endpoint must be one the grant covers.
    let resource = match (sent_resource, record.resource.as_deref()) {
        (Some(sent), Some(bound)) if sent != bound => {
            return Err(OAuthError::InvalidTarget(
                "the resource was not part of the authorization",
            ));
        }
        (sent, bound) => sent.or(bound),
    };
    let audience = registered.audience(resource, &server.policy().issuer)?;
    let user = ports
        .users
        .find(&record.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(OAuthError::InvalidGrant("the user is no longer active"))?;

    let family = Family {
        id: secret::mint_id(ports.random.as_ref()),
        client_id: registered.id.clone(),
        user_id: user.id.clone(),
        scope: record.scope.clone(),
        audience: audience.clone(),
        auth_time: record.auth_time,
        created_at: now,
        absolute_expires_at: now.plus(server.policy().refresh_token_max_lifetime),
        revoked: None,
    };
    let refresh = registered
        .allows(GrantType::RefreshToken)
        .then(|| refresh_token(server, registered, family.absolute_expires_at));
    let subject = Subject::User {
        user: Box::new(user),
        auth_time: record.auth_time,
        nonce: record.nonce.clone(),
        _proof: UserGrantProof::Pkce(pkce),
    };
    let access = access_token(server, &client, subject, audience, &record.scope)?;
    let family_id = family.id.clone();
    let grant = NewGrant {
        family,
        refresh: refresh.as_ref().map(|(_, r)| r.clone()),
        access: access.record.clone(),
    };
    // The single atomic step: of any concurrent redemptions exactly one gets `true`; the
    // others are replays.
    if !ports.codes.redeem(&hash, now, &grant).await? {
        let first = ports.codes.find(&hash).await?.and_then(|r| r.family_id);
        return Err(replay(server, &registered.id, &hash, first.as_deref()).await);
    }
    Ok(response(
        access,
        refresh.map(|(s, _)| s),
        &record.scope,
        Some(&family_id),
    ))
}

/// Answers a replayed code: revokes what its first redemption issued (RFC 6749 §4.1.2,
/// RFC 9700 §4.5.3) and refuses with `invalid_grant`.
async fn replay(
    server: &AuthorizationServer,
    client_id: &str,
    code: &SecretHash,
    family_id: Option<&str>,
) -> OAuthError {
    let mut event = AuditEvent::new(Event::CodeReuseDetected, Outcome::Failure)
        .client(client_id)
        .token(HashPrefix::from(code))
        .reason(RevocationReason::CodeReplay.as_str());
    event.family = family_id;
    event.emit();
    if let Some(id) = family_id
        && let Err(e) = server.revoke_family(id, RevocationReason::CodeReplay).await
    {
        return e;
    }
    OAuthError::InvalidGrant("the code has already been used")
}
