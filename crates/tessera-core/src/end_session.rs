//! Signing out of the browser session (`GET|POST /api/v2/auth/logout`), after OpenID
//! Connect RP-Initiated Logout 1.0.
//!
//! The session ends whatever else the request says. The browser is then sent back to the
//! client only to a `post_logout_redirect_uri` registered for the `client_id` it names, by
//! exact string comparison (RP-Initiated Logout §3: the OP "MUST NOT perform post-logout
//! redirection" to an unregistered URI); any other request ends on a "signed out" page, so
//! the endpoint can never be used as an open redirector.
//!
//! The client names itself with `client_id` or with an `id_token_hint`: an ID token this
//! server signed (under a key it still publishes) for that client, whose audience is the
//! client. An expired hint is still a good hint (RP-Initiated Logout §2: the OP need not
//! check expiry); one that does not verify names no one.

use crate::authorize;
use crate::error::OAuthError;
use crate::id_token::{ID_TOKEN_TYP, IdTokenClaims};
use crate::jwt;
use crate::params::Params;
use crate::secret::SecretHash;
use crate::server::AuthorizationServer;

/// Where the browser goes once signed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutDestination {
    /// Back to the client: the registered URI with `state` echoed.
    Redirect(String),
    /// A "signed out" page; `refused` says why a requested redirect was not made.
    SignedOutPage {
        /// Why the `post_logout_redirect_uri` was not followed, if one was sent.
        refused: Option<&'static str>,
    },
}

impl AuthorizationServer {
    /// Ends the browser session behind a cookie value; `true` if there was one.
    pub async fn end_session(&self, session_id: &str) -> Result<bool, OAuthError> {
        let deleted = self
            .ports()
            .sessions
            .delete(&SecretHash::of(session_id))
            .await?;
        Ok(deleted)
    }

    /// Where to send the browser after signing out, from the logout request's
    /// `post_logout_redirect_uri`, `client_id`, `id_token_hint` and `state`.
    pub async fn logout_destination(
        &self,
        params: &Params,
    ) -> Result<LogoutDestination, OAuthError> {
        let refused =
            |why: &'static str| Ok(LogoutDestination::SignedOutPage { refused: Some(why) });
        let Ok(uri) = params.get("post_logout_redirect_uri") else {
            return refused("post_logout_redirect_uri is repeated");
        };
        let Some(uri) = uri else {
            return Ok(LogoutDestination::SignedOutPage { refused: None });
        };
        let Ok(named) = params.get("client_id") else {
            return refused("client_id is repeated");
        };
        let hinted = match params.get("id_token_hint") {
            Ok(Some(hint)) => match self.id_token_audience(hint) {
                Some(aud) => Some(aud),
                None => return refused("id_token_hint is not an ID token this server issued"),
            },
            Ok(None) => None,
            Err(_) => return refused("id_token_hint is repeated"),
        };
        // Without either there is nothing to check the URI against.
        let client_id = match (named, hinted.as_deref()) {
            (Some(named), Some(hinted)) if named != hinted => {
                return refused("client_id is not the audience of id_token_hint");
            }
            (Some(id), _) | (None, Some(id)) => id.to_owned(),
            (None, None) => return refused("neither client_id nor id_token_hint was sent"),
        };
        let client_id = client_id.as_str();
        let Ok(state) = params.get("state") else {
            return refused("state is repeated");
        };
        let Some(client) = self.ports().clients.find(client_id).await? else {
            return refused("the client is not registered");
        };
        if !client.has_post_logout_redirect_uri(uri) {
            return refused("post_logout_redirect_uri is not registered for this client");
        }
        // The registered URI exactly as registered, plus `state` when one was sent.
        let location = match state {
            Some(state) => authorize::redirect_with(uri, &[("state", state)]),
            None => Some(uri.to_owned()),
        };
        match location {
            Some(location) => Ok(LogoutDestination::Redirect(location)),
            None => refused("post_logout_redirect_uri is not a valid URI"),
        }
    }

    /// The client an ID token hint was issued to: its `aud`, if the token verifies under a
    /// key this server publishes and names this issuer. Its expiry is not checked.
    fn id_token_audience(&self, hint: &str) -> Option<String> {
        let claims: IdTokenClaims =
            jwt::verify(self.ports().keys.as_ref(), ID_TOKEN_TYP, hint).ok()?;
        (claims.iss == self.policy().issuer).then_some(claims.aud)
    }
}
