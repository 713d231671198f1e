//! Verification of one bearer token (RFC 9068 §4, RFC 8725) and the validation cache.
//!
//! Order of checks: the cache (by SHA-256 of the token, `exp`, revocation and the key's
//! publication re-checked on each hit), then the header (`alg` allowlisted, `typ`, `kid`,
//! no `crit`), then the key (from the JWKS only, its `alg` equal to the header's), then
//! signature and registered claims through `jsonwebtoken`, then strict typing of the claims
//! we rely on. In introspection mode the issuer's RFC 7662 answer replaces the header, key
//! and signature checks; `iss`, `aud`, `nbf`, `exp` and the cache rules are the same.
//!
//! The cache is a bounded `quick_cache` map (a few dozen bytes of bookkeeping per entry,
//! against about 350 for moka), each entry carrying its deadline, checked on read: an entry
//! past it is a miss and is removed. The `jsonwebtoken` validation rules are built once per
//! allowed algorithm, not per token.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use quick_cache::sync::Cache;
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
    /// The `jsonwebtoken` rules for each allowed algorithm (issuer, audience, leeway,
    /// required claims), built once.
    validations: Vec<Validation>,
    jwks: Arc<JwksCache>,
    /// Set in introspection mode.
    introspector: Option<Introspector>,
    /// Verified results and revoked `jti`s.
    results: Results,
    /// The `kid`s results were verified with, shared by their entries (a few at a time).
    kids: RwLock<Vec<Arc<str>>>,
}

/// At most this many distinct `kid`s are shared; others get their own copy.
const KIDS_SHARED: usize = 16;

/// A verified result as cached: the claims and the key that verified them.
struct Verified {
    claims: Claims,
    /// The key that verified it (`None` in introspection mode).
    kid: Option<Arc<str>>,
}

/// A cached result and its deadline (nanoseconds since the cache's epoch), at most
/// `min(cache_ttl, exp + leeway - now)` after it was put.
#[derive(Clone)]
struct Cached {
    deadline: u64,
    verified: Arc<Verified>,
}

/// The guard's in-memory state: results by SHA-256 of the token (never the token itself),
/// and revoked `jti`s, each refused until its own deadline.
struct Results {
    entries: Cache<[u8; 32], Cached>,
    revoked: Cache<Box<str>, u64>,
    epoch: Instant,
    /// Time added to the real clock, so tests can pass deadlines without waiting.
    #[cfg(test)]
    skew: std::sync::atomic::AtomicU64,
}

impl Results {
    fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
        Self {
            entries: Cache::new(capacity),
            revoked: Cache::new(capacity.max(1024)),
            epoch: Instant::now(),
            #[cfg(test)]
            skew: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Nanoseconds since the epoch.
    fn now(&self) -> u64 {
        let now = nanos(self.epoch.elapsed());
        #[cfg(test)]
        let now = now.saturating_add(self.skew.load(std::sync::atomic::Ordering::SeqCst));
        now
    }

    /// The live result for `hash`; one past its deadline is removed.
    fn get(&self, hash: &[u8; 32]) -> Option<Arc<Verified>> {
        let hit = self.entries.get(hash)?;
        if self.now() >= hit.deadline {
            // Only this entry: a fresh one put in the meantime stays.
            self.entries.remove_if(hash, |e| e.deadline == hit.deadline);
            return None;
        }
        Some(hit.verified)
    }

    fn put(&self, hash: [u8; 32], verified: Arc<Verified>, ttl: Duration) {
        let deadline = self.now().saturating_add(nanos(ttl));
        self.entries.insert(hash, Cached { deadline, verified });
    }

    fn remove(&self, hash: &[u8; 32]) {
        self.entries.remove(hash);
    }

    fn revoke(&self, jti: &str, ttl: Duration) {
        let until = self.now().saturating_add(nanos(ttl));
        // A later, shorter revocation never shortens an earlier one.
        let until = self
            .revoked
            .get(jti)
            .map_or(until, |earlier| earlier.max(until));
        self.revoked.insert(jti.into(), until);
    }

    fn is_revoked(&self, jti: &str) -> bool {
        self.revoked
            .get(jti)
            .is_some_and(|until| self.now() < until)
    }

    #[cfg(test)]
    fn advance(&self, by: Duration) {
        self.skew
            .fetch_add(nanos(by), std::sync::atomic::Ordering::SeqCst);
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
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
        let validations = algorithms
            .iter()
            .map(|&alg| validation(&config, alg))
            .collect();
        let results = Results::new(config.cache_capacity);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                algorithms,
                validations,
                jwks,
                introspector,
                results,
                kids: RwLock::new(Vec::new()),
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

    /// How many verified results the cache holds (expired ones included until they are
    /// read or pushed out); for metrics and measurements.
    pub fn cached_results(&self) -> u64 {
        self.inner.results.entries.len() as u64
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
            .map(|verified| verified.claims.clone())
    }

    async fn verify_shared(&self, token: &str) -> Result<Arc<Verified>, GuardError> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        let results = &self.inner.results;
        if let Some(hit) = results.get(&hash) {
            // The entry never outlives `exp`, but leeway and clock steps make re-checking
            // cheap insurance; revocation may have happened after it was cached.
            self.check_live(&hit.claims, now)?;
            if let Some(kid) = &hit.kid {
                match self.inner.jwks.still_publishes(kid) {
                    Ok(expired) => {
                        if expired {
                            self.inner.jwks.refresh_in_background();
                        }
                    }
                    Err(error) => {
                        if matches!(error, GuardError::InvalidToken(_)) {
                            results.remove(&hash);
                        }
                        return Err(error);
                    }
                }
            }
            return Ok(hit);
        }
        let (kid, claims) = self.verify_uncached(token).await?;
        self.check_live(&claims, now)?;
        let verified = Arc::new(Verified { claims, kid });
        let until_exp = (verified.claims.exp + leeway_secs(&self.inner.config) - now).max(0);
        let ttl = self
            .inner
            .config
            .cache_ttl
            .min(Duration::from_secs(until_exp.unsigned_abs()));
        if !ttl.is_zero() {
            // A revocation racing this put needs no re-check: every hit checks revocation.
            results.put(hash, verified.clone(), ttl);
        }
        Ok(verified)
    }

    /// The one shared copy of `kid` (entries of the same key point to one string).
    fn shared_kid(&self, kid: &str) -> Arc<str> {
        let found = |kids: &Vec<Arc<str>>| kids.iter().find(|k| &***k == kid).cloned();
        let known = match self.inner.kids.read() {
            Ok(kids) => found(&kids),
            Err(poisoned) => found(&poisoned.into_inner()),
        };
        if let Some(kid) = known {
            return kid;
        }
        let mut kids = match self.inner.kids.write() {
            Ok(kids) => kids,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(kid) = found(&kids) {
            return kid;
        }
        let kid: Arc<str> = Arc::from(kid);
        if kids.len() < KIDS_SHARED {
            kids.push(kid.clone());
        }
        kid
    }

    /// Refuses every token with this `jti`, cached or not, for `cache_ttl`.
    pub async fn evict_jti(&self, jti: &str) {
        let ttl = self.inner.config.cache_ttl.max(Duration::from_secs(1));
        self.inner.results.revoke(jti, ttl);
    }

    /// Refuses every token with this `jti`, cached or not, until `exp` (plus the leeway) has
    /// passed: the revocation feed follower calls this, since a revoked token's signature
    /// stays valid until then.
    pub async fn revoke_jti(&self, jti: &str, exp: i64) {
        let until = exp.saturating_add(leeway_secs(&self.inner.config)) - unix_now();
        let ttl = Duration::from_secs(u64::try_from(until).unwrap_or(0))
            .max(self.inner.config.cache_ttl)
            .max(Duration::from_secs(1));
        self.inner.results.revoke(jti, ttl);
    }

    fn check_live(&self, claims: &Claims, now: i64) -> Result<(), GuardError> {
        if claims.exp + leeway_secs(&self.inner.config) < now {
            return Err(InvalidReason::Expired.into());
        }
        if self.inner.results.is_revoked(&claims.jti) {
            return Err(InvalidReason::Revoked.into());
        }
        Ok(())
    }

    /// Verifies a token not in the cache; returns the `kid` that verified it (JWT mode).
    async fn verify_uncached(&self, token: &str) -> Result<(Option<Arc<str>>, Claims), GuardError> {
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
        let validation = self
            .inner
            .validations
            .iter()
            .find(|v| v.algorithms == [key.alg])
            .ok_or(InvalidReason::Algorithm)?;
        // The claims are typed strictly in the same pass as the signature and registered-claim
        // checks (`Claims` refuses ill-typed members itself), not through a `Value` first.
        let claims = match jsonwebtoken::decode::<Claims>(token, &key.key, validation) {
            Ok(data) => data.claims,
            // Claims that do not parse (only ever after a good signature): the slower path
            // tells why, exactly as before (a registered-claim failure, else ill-typed).
            Err(error) if matches!(error.kind(), ErrorKind::Json(_)) => {
                let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, validation)
                    .map_err(|error| reason(error.kind()))?;
                Claims::parse(data.claims)?
            }
            Err(error) => return Err(reason(error.kind()).into()),
        };
        Ok((Some(self.shared_kid(kid)), claims))
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

/// The `jsonwebtoken` rules for tokens of `alg`: issuer, audience, `exp` and `nbf` with the
/// leeway, and the registered claims that must be present.
fn validation(config: &GuardConfig, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = config.leeway.as_secs();
    validation.validate_nbf = true;
    validation.set_issuer(&[config.issuer.as_str()]);
    validation.set_audience(&[config.audience.as_str()]);
    validation.required_spec_claims = HashSet::from(["exp", "iss", "aud", "sub"].map(String::from));
    validation
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

    fn verified(jti: &str) -> Arc<Verified> {
        Arc::new(Verified {
            claims: Claims {
                iss: "https://i".into(),
                sub: "s".into(),
                aud: vec!["api".into()],
                exp: 0,
                iat: 0,
                nbf: None,
                jti: jti.into(),
                client_id: "c".into(),
                scope: None,
                extra: serde_json::Map::new(),
            },
            kid: None,
        })
    }

    #[test]
    fn a_result_lives_exactly_its_ttl_and_is_removed_when_read_after() {
        let results = Results::new(100);
        results.put([1; 32], verified("a"), Duration::from_secs(10));
        results.put([2; 32], verified("b"), Duration::from_secs(60));
        results.advance(Duration::from_millis(9_999));
        assert!(results.get(&[1; 32]).is_some(), "just before its deadline");
        results.advance(Duration::from_millis(1));
        assert!(results.get(&[1; 32]).is_none(), "at its deadline");
        assert_eq!(results.entries.len(), 1, "removed on read");
        assert!(results.get(&[2; 32]).is_some());
    }

    #[test]
    fn a_revocation_lasts_its_own_ttl_and_a_shorter_one_does_not_cut_it() {
        let results = Results::new(100);
        results.revoke("j", Duration::from_secs(600));
        results.revoke("j", Duration::from_secs(1));
        results.advance(Duration::from_secs(599));
        assert!(results.is_revoked("j"));
        assert!(!results.is_revoked("k"));
        results.advance(Duration::from_secs(1));
        assert!(!results.is_revoked("j"));
    }

    #[test]
    fn the_results_are_bounded() {
        let results = Results::new(10);
        for i in 0..1000u32 {
            let mut hash = [0; 32];
            hash[..4].copy_from_slice(&i.to_le_bytes());
            results.put(hash, verified("a"), Duration::from_secs(60));
        }
        assert!(
            results.entries.len() <= 10,
            "holds {}",
            results.entries.len()
        );
    }
}
