//! Client credentials grant (RFC 6749 §4.4).

use crate::client::{AuthenticatedClient, GrantType};
use crate::error::OAuthError;
use crate::grant::{Subject, TokenResponse, access_token, response};
use crate::params::Params;
use crate::scope::ScopeSet;
use crate::server::AuthorizationServer;

/// Issues a token to the client itself, on its own behalf.
pub async fn grant(
    server: &AuthorizationServer,
    client: AuthenticatedClient,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    let registered = client.client();
    // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential
    // clients."
    if registered.is_public() {
        return Err(OAuthError::UnauthorizedClient(
            "public clients may not use client_credentials",
        ));
    }
    if !registered.allows(GrantType::ClientCredentials) {
        return Err(OAuthError::UnauthorizedClient(
            "the client may not use client_credentials",
        ));
    }
    let scope = ScopeSet::requested(params.get("scope")?, &registered.scopes)?;
    let audience = registered.audience(params.get("resource")?, &server.policy().issuer)?;
    let access = access_token(server, &client, Subject::Client, audience, &scope)?;
    // RFC 6749 §4.4.3: a refresh token SHOULD NOT be included.
    Ok(response(access, None, &scope, None))
}
