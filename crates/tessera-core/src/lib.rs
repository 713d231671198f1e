//! Tessera's pure OAuth 2.0 domain.
//!
//! This crate holds the rules of the authorization server and nothing that does I/O:
//! request parameters ([`params`]), PKCE ([`pkce`]), scopes ([`scope`]), clients and their
//! authentication ([`client`]), users ([`user`]), the authorization request and its code
//! ([`authorize`], [`authorization_code`]), the user's consent ([`consent`]), browser sessions
//! and signing out of them ([`session`], [`end_session`]), access-token
//! claims and JWT encoding ([`access_token`], [`jwt`]), signing keys ([`keys`]), refresh
//! token families and the revocation list ([`refresh_family`], [`revocation`], and RFC 7009
//! in [`revoke`]), and one module per grant type under [`grant`]. OpenID Connect's ID
//! tokens and user claims are [`id_token`], its UserInfo answer [`userinfo`]. Errors are mapped to RFC 6749 codes in
//! [`error`]. Brute-force protection of the login form is [`login_throttle`] (with the
//! client address from [`client_ip`]), the token endpoint's per-client limit
//! [`rate_limit`], and every security-relevant action is written as an [`audit`] event.
//!
//! Adapters implement the ports declared next to the flow that uses them (`ClientStore` in
//! [`client`], `CodeStore` in [`authorization_code`], ...). [`AuthorizationServer`] wires
//! the ports together; an HTTP adapter makes one call into it per request.

#![warn(missing_docs)]

pub mod access_token;
pub mod audit;
pub mod authorization_code;
pub mod authorize;
pub mod client;
pub mod client_ip;
pub mod consent;
pub mod end_session;
pub mod error;
pub mod grant;
pub mod id_token;
pub mod introspection;
pub mod janitor;
pub mod jwt;
pub mod key_schedule;
pub mod keys;
pub mod login_throttle;
pub mod params;
pub mod pkce;
pub mod policy;
pub mod random;
pub mod rate_limit;
pub mod refresh_family;
pub mod revocation;
pub mod revocation_feed;
pub mod revoke;
pub mod scope;
pub mod secret;
pub mod server;
pub mod session;
pub mod sign_in;
pub mod time;
pub mod user;
pub mod userinfo;

pub use error::{OAuthError, StoreError};
pub use server::{AuthorizationServer, Ports};
