//! Tessera's resource-server side: validation of RFC 9068 JWT access tokens at every ingress.
//!
//! A [`Guard`] verifies a bearer token against the issuer's published JWKS and returns its
//! [`Claims`]. It needs nothing from the Tessera server crate: any RFC 7517 JWKS endpoint
//! and RFC 9068 tokens will do.
//!
//! Layout:
//! - [`config`]: [`GuardConfig`], the knobs and their safe defaults.
//! - [`jwks`]: fetching and caching the key set (`Cache-Control` with a floor and ceiling,
//!   rate-limited refetch on an unknown `kid`, bounded stale serving while the issuer is down).
//! - [`guard`]: the verification itself (via `jsonwebtoken`, never our own crypto) and the
//!   validation cache keyed by the token's SHA-256.
//! - [`claims`]: the verified claims, strictly typed.
//! - [`credential`]: where the token is taken from (the `Authorization` header; query and
//!   form only when enabled).
//! - [`discovery`]: the issuer's JWKS and introspection endpoints from its URL (RFC 8414).
//! - introspection mode: the issuer's RFC 7662 answer instead of local verification.
//! - [`layer`]: the tower [`GuardLayer`], the [`RequireScopeLayer`] and the axum extractor.
//! - [`error`]: [`GuardError`], mapped to RFC 6750 §3 responses in one place.
//!
//! Why a cache keyed by hash: the token is a bearer credential; holding its hash keeps the
//! cache from being a store of usable credentials. Scope and audience requirements of a route
//! are checked on every request, never baked into a cached result.
#![warn(missing_docs)]

pub mod claims;
pub mod config;
pub mod credential;
pub mod discovery;
pub mod error;
pub mod forward_auth;
pub mod guard;
mod introspection;
pub mod jwks;
pub mod layer;
pub mod revocation_feed;

pub use claims::Claims;
pub use config::{ConfigError, GuardConfig, IntrospectionConfig};
pub use discovery::{DiscoveryError, IssuerMetadata};
pub use error::{GuardError, InvalidReason};
pub use guard::Guard;
pub use layer::{GuardLayer, GuardService, RequireScopeLayer, RequireScopeService, require_scope};

/// Why a guard could not be built from an issuer URL.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The issuer's metadata could not be had.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The resulting configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// HTTP Basic credentials of a client, each form-encoded first (RFC 6749 §2.3.1).
pub(crate) fn basic_credentials(client_id: &str, secret: &str) -> (String, String) {
    let encode = |value: &str| url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    (encode(client_id), encode(secret))
}
