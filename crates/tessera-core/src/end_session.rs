//! Signing out of the browser session (`GET|POST /api/v2/auth/logout`), after OpenID
//! Connect RP-Initiated Logout 1.0.
//!
//! The session ends whatever else the request says. The browser is then sent back to the
//! client only to a `post_logout_redirect_uri` registered for the `client_id` it names, by
//! exact string comparison (RP-Initiated Logout §3: the OP "MUST NOT perform post-logout
//! redirection" to an unregistered URI); any other request ends on a "signed out" page, so
//! the endpoint can never be used as an open redirector.

use crate::authorize;
use crate::error::OAuthError;
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
    /// `post_logout_redirect_uri`, `client_id` and `state`.
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
        // Without an ID token hint (Tessera issues none yet) the client must name itself, or
        // there is nothing to check the URI against.
        let Ok(Some(client_id)) = params.get("client_id") else {
            return refused("client_id is missing or repeated");
        };
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
}
