//! Signing keys as the flows see them: something that signs, and the public JWKs to publish.
//!
//! The key material itself (generation, sealing at rest, parsing) lives in an adapter; the
//! domain only needs the ports below.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::key_schedule::KeySchedule;
use crate::time::UnixTime;

/// A public signing key as published in the JWKS (RFC 7517 §4): RSA (RFC 7518 §6.3.1) or
/// P-256 EC (RFC 7518 §6.2.1). Only public members exist here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `RSA` or `EC`.
    pub kty: String,
    /// Intended use, always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// The algorithm this key signs with: `RS256` or `ES256`.
    pub alg: String,
    /// Key id: the RFC 7638 thumbprint of the key.
    pub kid: String,
    /// RSA modulus, base64url big-endian without leading zeros.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub n: Option<String>,
    /// RSA public exponent, base64url big-endian.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub e: Option<String>,
    /// EC curve, `P-256`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub crv: Option<String>,
    /// EC x coordinate, base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub y: Option<String>,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The published keys.
    pub keys: Vec<Jwk>,
}

/// A signing operation failed (the key material is unusable).
#[derive(Debug, thiserror::Error)]
#[error("signing failed")]
pub struct SignError;

/// A private key held parsed in memory, ready to sign.
pub trait SigningKey: Send + Sync {
    /// The `kid` to put in the JWS header.
    fn kid(&self) -> &str;
    /// The JWS `alg` of the signatures this key makes.
    fn alg(&self) -> &'static str;
    /// Signs `message`, returning the raw signature bytes.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// The keys a server signs with and publishes.
pub trait KeyRing: Send + Sync {
    /// The one key that signs new tokens.
    fn signing_key(&self) -> Arc<dyn SigningKey>;
    /// Every key a verifier may need, for the JWKS endpoint.
    fn published(&self) -> Jwks;
    /// Whether `signature` over `message` verifies under the published key `kid` with
    /// algorithm `alg`; `false` for an unknown kid or algorithm.
    fn verify(&self, kid: &str, alg: &str, message: &[u8], signature: &[u8]) -> bool;
    /// Whether `kid` is published now (a token of an unpublished key no longer verifies).
    fn publishes(&self, kid: &str) -> bool;
}

/// A key as stored: its schedule, public half in the clear, private half sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The schedule (kid, generation, activation, revocation).
    pub schedule: KeySchedule,
    /// The public JWK.
    pub public: Jwk,
    /// The private key, encrypted at rest; opaque to the domain.
    pub sealed_private: Vec<u8>,
}

/// Storage of signing keys.
///
/// Contract: kids and generations are unique; `insert` of an existing kid or generation
/// returns `StoreError::Conflict` and changes nothing (this is what makes each scheduled
/// step happen once across nodes). `reseal` replaces the sealed private keys of every
/// listed kid in one transaction, or none.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key.
    async fn insert(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// All stored keys, by generation.
    async fn list(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Deletes a key; `false` if there was none.
    async fn delete(&self, kid: &str) -> Result<bool, StoreError>;
    /// Marks a key revoked at `at`; `false` if unknown or already revoked.
    async fn revoke(&self, kid: &str, at: UnixTime) -> Result<bool, StoreError>;
    /// Replaces sealed private keys (re-encryption under a new master key), atomically.
    async fn reseal(&self, sealed: &[(String, Vec<u8>)]) -> Result<(), StoreError>;
}
