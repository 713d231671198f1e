//! The issuer's key set (RFC 7517 §5): fetched, cached per `Cache-Control`, refreshed with
//! a rate limit, and served stale for a bounded time while the issuer is unreachable.
//!
//! Threats and answers:
//! - Forged `kid`s must not make the guard hammer the issuer: a fetch not due to expiry
//!   happens at most once per `jwks_min_refresh`, and concurrent misses share one fetch.
//! - An issuer outage must not take every resource server down at once: the last good set
//!   is used up to `stale_limit` past its expiry; after that the guard fails closed.
//! - Keys come only from the configured URL: `jku`, `x5u` and `jwk` token headers are
//!   never looked at (RFC 8725 §3.10).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use crate::config::GuardConfig;
use crate::error::{GuardError, InvalidReason};

/// A public key ready to verify, with the one algorithm it may be used with.
pub(crate) struct VerifyKey {
    /// The JWK's `alg`; the token header must name the same.
    pub(crate) alg: Algorithm,
    /// The parsed key.
    pub(crate) key: DecodingKey,
}

/// One fetched key set and until when it is fresh.
struct KeySet {
    keys: HashMap<String, Arc<VerifyKey>>,
    expires_at: Instant,
}

/// The cached JWKS of one issuer.
pub(crate) struct JwksCache {
    client: reqwest::Client,
    url: String,
    floor: Duration,
    ceiling: Duration,
    min_refresh: Duration,
    stale_limit: Duration,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held while fetching (single flight); holds the time of the last fetch attempt.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    /// Whether a background refresh is under way.
    refreshing: AtomicBool,
}

impl JwksCache {
    /// A cache that has fetched nothing yet (the first verification fetches).
    pub(crate) fn new(config: &GuardConfig) -> Result<Self, crate::ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            // Keys come from the configured URL only, not from wherever it redirects.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| crate::ConfigError::Client)?;
        Ok(Self {
            client,
            url: config.jwks_url.clone(),
            floor: config.jwks_max_age_floor,
            ceiling: config.jwks_max_age_ceiling,
            min_refresh: config.jwks_min_refresh,
            stale_limit: config.stale_limit,
            current: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
            refreshing: AtomicBool::new(false),
        })
    }

    /// The key `kid`, refreshing the set if it is expired or lacks `kid` (rate-limited).
    pub(crate) async fn key(&self, kid: &str) -> Result<Arc<VerifyKey>, GuardError> {
        let seen = self.snapshot();
        if let Some(set) = &seen
            && Instant::now() < set.expires_at
            && let Some(key) = set.keys.get(kid)
        {
            return Ok(key.clone());
        }
        let set = self
            .refresh(seen)
            .await
            .ok_or(GuardError::KeysUnavailable)?;
        if Instant::now() > set.expires_at + self.stale_limit {
            return Err(GuardError::KeysUnavailable);
        }
        set.keys
            .get(kid)
            .cloned()
            .ok_or(GuardError::InvalidToken(InvalidReason::UnknownKey))
    }

    /// Whether a result verified with `kid` may still be served, without fetching: the last
    /// set must still publish `kid` (a withdrawn key's results are not served) and be
    /// within the stale limit (past it, cached results fail closed like everything else).
    /// `Ok(true)` means the set is past its max-age and should be refreshed.
    pub(crate) fn still_publishes(&self, kid: &str) -> Result<bool, GuardError> {
        let set = self.snapshot().ok_or(GuardError::KeysUnavailable)?;
        let now = Instant::now();
        if now > set.expires_at + self.stale_limit {
            return Err(GuardError::KeysUnavailable);
        }
        if !set.keys.contains_key(kid) {
            return Err(InvalidReason::UnknownKey.into());
        }
        Ok(now >= set.expires_at)
    }

    /// Refreshes an expired set in the background, one refresh at a time, so a guard
    /// serving only cache hits still follows the issuer's key changes.
    pub(crate) fn refresh_in_background(self: &Arc<Self>) {
        if self
            .refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let seen = this.snapshot();
            this.refresh(seen).await;
            this.refreshing.store(false, Ordering::Release);
        });
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, set: Arc<KeySet>) {
        match self.current.write() {
            Ok(mut guard) => *guard = Some(set),
            Err(poisoned) => *poisoned.into_inner() = Some(set),
        }
    }

    /// Fetches a new set unless another caller just did or the rate limit forbids it;
    /// returns the best set there is (possibly stale, for the caller to judge).
    async fn refresh(&self, seen: Option<Arc<KeySet>>) -> Option<Arc<KeySet>> {
        let mut last_attempt = self.last_attempt.lock().await;
        let current = self.snapshot();
        let replaced = match (&current, &seen) {
            (Some(now), Some(before)) => !Arc::ptr_eq(now, before),
            (Some(_), None) => true,
            _ => false,
        };
        if replaced {
            return current;
        }
        let now = Instant::now();
        // The first attempt after expiry always goes out (the issuer asked for it via
        // max-age); other attempts (unknown kid, retries while down) are rate-limited.
        let due = current.as_ref().is_none_or(|set| {
            now >= set.expires_at && last_attempt.is_none_or(|at| at < set.expires_at)
        });
        if !due && last_attempt.is_some_and(|at| now < at + self.min_refresh) {
            return current;
        }
        *last_attempt = Some(now);
        match self.fetch().await {
            Ok(set) => {
                let set = Arc::new(set);
                self.store(set.clone());
                Some(set)
            }
            Err(error) => {
                tracing::warn!(%error, url = %self.url, "JWKS fetch failed; keeping the last good set");
                current
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|_| FetchError::Unreachable)?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age)
            .unwrap_or(Duration::ZERO)
            .clamp(self.floor, self.ceiling);
        let body = response.bytes().await.map_err(|_| FetchError::Body)?;
        let keys = parse_keys(&body).ok_or(FetchError::Body)?;
        tracing::debug!(keys = keys.len(), ?max_age, "JWKS fetched");
        Ok(KeySet {
            keys,
            expires_at: Instant::now() + max_age,
        })
    }
}

/// The `max-age` directive of a `Cache-Control` value (RFC 9111 §5.2.2.1); `no-store` and
/// `no-cache` count as zero (the floor then applies).
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

/// Why a fetch failed (logged, never returned to clients).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("JWKS endpoint unreachable")]
    Unreachable,
    #[error("JWKS endpoint answered {0}")]
    Status(u16),
    #[error("JWKS body is not a JWK Set")]
    Body,
}

/// The usable keys of a JWK Set document by `kid`; `None` if the body is not a JWK Set.
fn parse_keys(body: &[u8]) -> Option<HashMap<String, Arc<VerifyKey>>> {
    // RFC 7517 §5: a JWK Set is a JSON object. serde would also take a struct's array form
    // (`[[...]]`), which is no JWK Set (found by fuzz/jwks).
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !value.is_object() {
        return None;
    }
    let set: RawJwks = serde_json::from_value(value).ok()?;
    Some(
        set.keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<RawJwk>(value).ok())
            .filter_map(RawJwk::into_key)
            .map(|(kid, key)| (kid, Arc::new(key)))
            .collect(),
    )
}

/// The `kid` and pinned algorithm (`"RS256"`, ...) of every key the guard would use from a
/// JWK Set document, parsed as a fetched one is; `None` if the body is not a JWK Set. It
/// exists for the fuzz targets (`fuzz/`): the guard itself only uses keys it fetched.
#[doc(hidden)]
pub fn usable_keys(body: &[u8]) -> Option<Vec<(String, String)>> {
    let keys = parse_keys(body)?;
    Some(
        keys.into_iter()
            .map(|(kid, key)| (kid, format!("{:?}", key.alg)))
            .collect(),
    )
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// One JWK as published; keys we cannot use are skipped, not fatal to the set.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl RawJwk {
    fn into_key(self) -> Option<(String, VerifyKey)> {
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        // A key without `alg` could be used with any algorithm of its family; we require
        // the issuer to pin it (RFC 8725 §3.1).
        let alg: Algorithm = self.alg?.parse().ok()?;
        let key = match (self.kty.as_str(), alg) {
            (
                "RSA",
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
            ) => DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok()?,
            ("EC", Algorithm::ES256) if self.crv.as_deref() == Some("P-256") => {
                DecodingKey::from_ec_components(self.x.as_deref()?, self.y.as_deref()?).ok()?
            }
            ("EC", Algorithm::ES384) if self.crv.as_deref() == Some("P-384") => {
                DecodingKey::from_ec_components(self.x.as_deref()?, self.y.as_deref()?).ok()?
            }
            _ => return None,
        };
        Some((self.kid?, VerifyKey { alg, key }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_no_store_is_zero() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn keys_that_cannot_be_used_are_skipped_and_a_non_set_is_refused() {
        let doc = br#"{"keys":[
            {"kty":"RSA","kid":"a","alg":"RS256","use":"sig","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"no-alg","n":"AQAB","e":"AQAB"},
            {"kty":"RSA","kid":"enc","alg":"RS256","use":"enc","n":"AQAB","e":"AQAB"},
            {"kty":"oct","kid":"hmac","alg":"HS256","k":"AQAB"},
            "not a key"
        ]}"#;
        assert_eq!(
            usable_keys(doc),
            Some(vec![("a".to_owned(), "RS256".to_owned())])
        );
        assert_eq!(usable_keys(b"{}"), None);
        assert_eq!(usable_keys(b"not json"), None);
        // The array form serde accepts for a struct is not a JWK Set (found by fuzz/jwks).
        assert_eq!(usable_keys(b"[[]]"), None);
        assert_eq!(
            usable_keys(br#"[[{"kty":"RSA","kid":"a","alg":"RS256","n":"AQAB","e":"AQAB"}]]"#),
            None
        );
    }
}
