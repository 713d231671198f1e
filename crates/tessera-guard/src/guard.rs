//! Verification of one bearer token (RFC 9068 §4, RFC 8725) and the validation cache.
//!
//! Order of checks: the cache (by SHA-256 of the token, `exp`, revocation and the key's
//! publication re-checked on each hit), then the header (`alg` allowlisted, `typ`, `kid`,
//! no `crit`), then the key (from the JWKS only, its `alg` equal to the header's), then
//! signature and registered claims through `jsonwebtoken`, then strict typing of the claims
//! we rely on. In introspection mode the issuer's RFC 7662 answer replaces the header, key
//! and signature checks; `iss`, `aud`, `nbf`, `exp` and the cache rules are the same.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use moka::Expiry;
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::claims::Claims;
use crate::config::{ConfigError, GuardConfig};
use crate::error::{GuardError, InvalidReason};
use crate::introspection::Introspector;
use crate::jwks::JwksCache;

/// A token validator for one issuer and audience; cheap to clone (shared state inside).
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    config: GuardConfig,
    algorithms: Vec<Algorithm>,
    jwks: Arc<JwksCache>,
    /// Set in introspection mode.
    introspector: Option<Introspector>,
    /// Verified results by SHA-256 of the token (never the token itself).
    results: Cache<[u8; 32], Cached>,
    /// Revoked `jti`s, each refused until its token has expired (or for `cache_ttl` when
    /// the expiry is unknown).
    revoked: Cache<String, Duration>,
}

/// A cached result and how long it may live: `min(cache_ttl, exp - now)`.
#[derive(Clone)]
struct Cached {
    claims: Arc<Claims>,
    /// The key that verified it (`None` in introspection mode).
    kid: Option<Arc<str>>,
    ttl: Duration,
}

struct RevokedFor;

impl Expiry<String, Duration> for RevokedFor {
    fn expire_after_create(&self, _: &String, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

struct PerEntry;

impl Expiry<[u8; 32], Cached> for PerEntry {
    fn expire_after_create(&self, _: &[u8; 32], value: &Cached, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("issuer", &self.inner.config.issuer)
            .field("audience", &self.inner.config.audience)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// A guard for `config`, refusing unsafe settings (`none` or HMAC algorithms, empty
    /// issuer or audience). Fetches nothing until the first verification.
    pub fn new(config: GuardConfig) -> Result<Self, ConfigError> {
        let algorithms = config.check()?;
        let jwks = Arc::new(JwksCache::new(&config)?);
        let introspector = match &config.introspection {
            Some(introspection) => Some(Introspector::new(&config, introspection)?),
            None => None,
        };
        let results = Cache::builder()
            .max_capacity(config.cache_capacity)
            .expire_after(PerEntry)
            .build();
        let revoked = Cache::builder()
            .max_capacity(config.cache_capacity.max(1024))
            .expire_after(RevokedFor)
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                algorithms,
                jwks,
                introspector,
                results,
                revoked,
            }),
        })
    }

    /// Builds a guard for tokens of `issuer` with `audience`, finding the JWKS through the
    /// issuer's metadata (RFC 8414, OpenID Connect discovery as fallback) with the other
    /// settings at their defaults. Use [`crate::discovery::discover`] to adjust them.
    pub async fn from_issuer(issuer: &str, audience: &str) -> Result<Self, crate::BuildError> {
        let defaults = GuardConfig::new("", issuer, audience);
        let metadata = crate::discovery::discover(issuer, defaults.fetch_timeout).await?;
        Ok(Self::new(metadata.guard_config(audience))?)
    }

    /// The configuration the guard runs with.
    pub fn config(&self) -> &GuardConfig {
        &self.inner.config
    }

    /// Verifies the value of an `Authorization` header (`Bearer <token>`, RFC 6750 §2.1)
    /// and returns the token's claims. Scope requirements are the caller's to check.
    pub async fn verify(&self, authorization: &str) -> Result<Claims, GuardError> {
        let token = crate::credential::header_token(authorization)?;
        self.verify_token(&token).await
    }

    /// Verifies a bare compact JWT and returns its claims.
    pub async fn verify_token(&self, token: &str) -> Result<Claims, GuardError> {
        self.verify_shared(token)
            .await
            .map(|claims| Claims::clone(&claims))
    }

    async fn verify_shared(&self, token: &str) -> Result<Arc<Claims>, GuardError> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        if let Some(hit) = self.inner.results.get(&hash).await {
            // The entry never outlives `exp`, but leeway and clock steps make re-checking
            // cheap insurance; revocation may have happened after it was cached.
            self.check_live(&hit.claims, now).await?;
            if let Some(kid) = &hit.kid {
                match self.inner.jwks.still_publishes(kid) {
                    Ok(expired) => {
                        if expired {
                            self.inner.jwks.refresh_in_background();
                        }
                    }
                    Err(error) => {
                        if matches!(error, GuardError::InvalidToken(_)) {
                            self.inner.results.invalidate(&hash).await;
                        }
                        return Err(error);
                    }
                }
            }
            return Ok(hit.claims);
        }
        let (kid, claims) = self.verify_uncached(token).await?;
        let claims = Arc::new(claims);
        self.check_live(&claims, now).await?;
        let until_exp = (claims.exp + leeway_secs(&self.inner.config) - now).max(0);
        let ttl = self
            .inner
            .config
            .cache_ttl
            .min(Duration::from_secs(until_exp.unsigned_abs()));
        if !ttl.is_zero() {
            let cached = Cached {
                claims: claims.clone(),
                kid: kid.map(Arc::from),
                ttl,
            };
            self.inner.results.insert(hash, cached).await;
        }
        Ok(claims)
    }

    /// Refuses every token with this `jti`, cached or not, for `cache_ttl`.
    pub async fn evict_jti(&self, jti: &str) {
        let ttl = self.inner.config.cache_ttl.max(Duration::from_secs(1));
        self.inner.revoked.insert(jti.to_owned(), ttl).await;
    }

    /// Refuses every token with this `jti`, cached or not, until `exp` (plus the leeway) has
    /// passed: the revocation feed follower calls this, since a revoked token's signature
    /// stays valid until then.
    pub async fn revoke_jti(&self, jti: &str, exp: i64) {
        let until = exp.saturating_add(leeway_secs(&self.inner.config)) - unix_now();
        let ttl = Duration::from_secs(u64::try_from(until).unwrap_or(0))
            .max(self.inner.config.cache_ttl)
            .max(Duration::from_secs(1));
        self.inner.revoked.insert(jti.to_owned(), ttl).await;
    }

    async fn check_live(&self, claims: &Claims, now: i64) -> Result<(), GuardError> {
        if claims.exp + leeway_secs(&self.inner.config) < now {
            return Err(InvalidReason::Expired.into());
        }
        if self.inner.revoked.contains_key(&claims.jti) {
            return Err(InvalidReason::Revoked.into());
        }
        Ok(())
    }

    /// Verifies a token not in the cache; returns the `kid` that verified it (JWT mode).
    async fn verify_uncached(&self, token: &str) -> Result<(Option<String>, Claims), GuardError> {
        if let Some(introspector) = &self.inner.introspector {
            let claims = introspector.introspect(token).await?;
            self.check_introspected(&claims)?;
            return Ok((None, claims));
        }
        let config = &self.inner.config;
        // An unknown `alg` (including `none`) fails to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| InvalidReason::Malformed)?;
        // RFC 8725 §3.1: only allowlisted algorithms, whatever the header says.
        if !self.inner.algorithms.contains(&header.alg) {
            return Err(InvalidReason::Algorithm.into());
        }
        // RFC 8725 §3.11 / RFC 9068 §4: explicit typing against token substitution.
        if header.typ.as_deref() != Some(config.required_typ.as_str()) {
            return Err(InvalidReason::Type.into());
        }
        // RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
        if header.crit.is_some() {
            return Err(InvalidReason::Critical.into());
        }
        // `jku`, `x5u`, `jwk`, `x5c` are deliberately unused: keys come from our JWKS only.
        let kid = header.kid.as_deref().ok_or(InvalidReason::UnknownKey)?;
        let key = self.inner.jwks.key(kid).await?;
        // The key pins its algorithm: an RSA key never verifies an HS256 token.
        if key.alg != header.alg {
            return Err(InvalidReason::Algorithm.into());
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.required_spec_claims =
            HashSet::from(["exp", "iss", "aud", "sub"].map(String::from));
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation)
            .map_err(|error| reason(error.kind()))?;
        Ok((Some(kid.to_owned()), Claims::parse(data.claims)?))
    }

    /// The registered-claim checks `jsonwebtoken` does in JWT mode, for an introspection
    /// answer (`exp` is checked by the caller in both modes).
    fn check_introspected(&self, claims: &Claims) -> Result<(), GuardError> {
        let config = &self.inner.config;
        if claims.iss != config.issuer {
            return Err(InvalidReason::Issuer.into());
        }
        if !claims.aud.contains(&config.audience) {
            return Err(InvalidReason::Audience.into());
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > unix_now() + leeway_secs(config))
        {
            return Err(InvalidReason::NotYetValid.into());
        }
        Ok(())
    }
}

fn reason(kind: &ErrorKind) -> InvalidReason {
    match kind {
        ErrorKind::InvalidSignature => InvalidReason::Signature,
        ErrorKind::ExpiredSignature => InvalidReason::Expired,
        ErrorKind::ImmatureSignature => InvalidReason::NotYetValid,
        ErrorKind::InvalidIssuer => InvalidReason::Issuer,
        ErrorKind::InvalidAudience => InvalidReason::Audience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => InvalidReason::Algorithm,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            InvalidReason::Claims
        }
        _ => InvalidReason::Malformed,
    }
}

fn leeway_secs(config: &GuardConfig) -> i64 {
    i64::try_from(config.leeway.as_secs()).unwrap_or(i64::MAX / 4)
}

pub(crate) fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs).unwrap_or(i64::MAX / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_hmac_are_refused_at_construction() {
        for alg in ["none", "HS256", "HS384", "HS512", "XX1"] {
            let mut config = GuardConfig::new("http://127.0.0.1:1/jwks", "https://i", "api");
            config.algorithms = vec![alg.to_owned()];
            assert!(
                matches!(Guard::new(config), Err(ConfigError::Algorithm(_))),
                "{alg}"
            );
        }
    }
}
