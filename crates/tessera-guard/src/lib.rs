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
//! - [`layer`]: the tower [`GuardLayer`], the [`RequireScopeLayer`] and the axum extractor.
//! - [`error`]: [`GuardError`], mapped to RFC 6750 §3 responses in one place.
//!
//! Why a cache keyed by hash: the token is a bearer credential; holding its hash keeps the
//! cache from being a store of usable credentials. Scope and audience requirements of a route
//! are checked on every request, never baked into a cached result.
#![warn(missing_docs)]

pub mod claims;
pub mod config;
pub mod error;
pub mod forward_auth;
pub mod guard;
pub mod jwks;
pub mod layer;
pub mod revocation_feed;

pub use claims::Claims;
pub use config::{ConfigError, GuardConfig};
pub use error::{GuardError, InvalidReason};
pub use guard::Guard;
pub use layer::{GuardLayer, GuardService, RequireScopeLayer, RequireScopeService, require_scope};
