//! The resource owner's consent (RFC 6749 §4.1.1: the authorization server "obtains an
//! authorization decision" from the resource owner; RFC 9700 §2.5 on user consent).
//!
//! A client registered as first-party (an application of the operator itself) is trusted to
//! act for the user once they sign in. Any other client must be approved by the user for the
//! scopes it asks for; the approval is remembered per user and client, so the user is asked
//! again only for scopes they have not approved yet, or after the consent was revoked
//! (`tessera user revoke-consent`). A denial is not remembered: the next request asks again.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::authorize::AuthorizationRequest;
use crate::error::{OAuthError, StoreError};
use crate::scope::ScopeSet;
use crate::server::AuthorizationServer;
use crate::session::Session;
use crate::time::UnixTime;

/// What a user approved for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The user who approved.
    pub user_id: String,
    /// The client they approved.
    pub client_id: String,
    /// Every scope approved so far.
    pub scopes: ScopeSet,
    /// When the consent was last given (or widened).
    pub granted_at: UnixTime,
}

/// Storage of consents.
///
/// Contract: at most one consent per `(user_id, client_id)`; `save` replaces it whole. A
/// consent goes when its user or client is deleted.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// The consent `user_id` gave `client_id`, if any.
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
    ) -> Result<Option<Consent>, StoreError>;
    /// Stores a consent, replacing the previous one of the same user and client.
    async fn save_consent(&self, consent: &Consent) -> Result<(), StoreError>;
    /// Revokes the user's consent for `client_id`, or for every client when `None`;
    /// returns how many consents were removed.
    async fn revoke_consents(
        &self,
        user_id: &str,
        client_id: Option<&str>,
    ) -> Result<u64, StoreError>;
}

/// Human-readable descriptions of scopes for the consent page (`--scope-description
/// "orders:read=Read your orders"`). A scope without one is shown by its name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeDescriptions(BTreeMap<String, String>);

impl ScopeDescriptions {
    /// Parses `scope=description` entries; a later entry for the same scope wins.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for entry in entries {
            let (scope, text) = parse_entry(entry.as_ref())?;
            map.insert(scope.to_owned(), text.to_owned());
        }
        Ok(Self(map))
    }

    /// The description of `scope`, if one is configured.
    pub fn get(&self, scope: &str) -> Option<&str> {
        self.0.get(scope).map(String::as_str)
    }

    /// The scopes that have a description, in order.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// Checks one `scope=description` entry: a valid scope token (RFC 6749 §3.3), `=`, and a
/// non-empty description.
pub fn parse_entry(entry: &str) -> Result<(&str, &str), String> {
    let Some((scope, text)) = entry.split_once('=') else {
        return Err(format!(
            "{entry:?} must be SCOPE=DESCRIPTION, e.g. \"orders:read=Read your orders\""
        ));
    };
    let (scope, text) = (scope.trim(), text.trim());
    if !ScopeSet::parse(scope).is_ok_and(|s| s.iter().count() == 1) {
        return Err(format!("{scope:?} is not a scope token"));
    }
    if text.is_empty() {
        return Err(format!("the description of {scope} is empty"));
    }
    Ok((scope, text))
}

impl AuthorizationServer {
    /// Whether the user behind `session` must approve `request` first: always when the
    /// client asked for it (`prompt=consent`), never for a first-party client, otherwise
    /// unless an earlier consent covers every requested scope.
    pub async fn consent_required(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
    ) -> Result<bool, OAuthError> {
        if request.prompt.consent {
            return Ok(true);
        }
        if request.client.first_party {
            return Ok(false);
        }
        let consent = self
            .ports()
            .consents
            .find_consent(&session.user_id, &request.client.id)
            .await?;
        Ok(!consent.is_some_and(|c| request.scope.is_subset(&c.scopes)))
    }

    /// Records that the user behind `session` approved `request`: its scopes join those
    /// approved before.
    pub async fn grant_consent(
        &self,
        request: &AuthorizationRequest,
        session: &Session,
    ) -> Result<(), OAuthError> {
        let consents = &self.ports().consents;
        let earlier = consents
            .find_consent(&session.user_id, &request.client.id)
            .await?;
        let scopes = match earlier {
            Some(c) => c.scopes.union(&request.scope),
            None => request.scope.clone(),
        };
        let consent = Consent {
            user_id: session.user_id.clone(),
            client_id: request.client.id.clone(),
            scopes,
            granted_at: self.ports().clock.now(),
        };
        consents.save_consent(&consent).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_parse_and_fall_back_to_nothing() {
        let d = ScopeDescriptions::parse(&[
            "orders:read=Read your orders",
            "profile = See your profile ",
            "orders:read=Read your orders and invoices",
        ])
        .unwrap();
        assert_eq!(d.get("orders:read"), Some("Read your orders and invoices"));
        assert_eq!(d.get("profile"), Some("See your profile"));
        assert_eq!(d.get("write"), None);
    }

    #[test]
    fn malformed_descriptions_are_refused() {
        for bad in [
            "no-equals",
            "=text",
            "two words=text",
            "bad\"scope=text",
            "scope=",
        ] {
            assert!(ScopeDescriptions::parse(&[bad]).is_err(), "{bad}");
        }
        assert!(parse_entry("a=b=c").is_ok(), "the description may hold '='");
    }
}
