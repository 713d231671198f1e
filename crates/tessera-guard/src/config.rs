//! The guard's configuration: where the keys are, what a valid token must say, and how
//! long results and keys may be kept.

use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Configuration of a [`Guard`](crate::Guard); build with [`GuardConfig::new`] and adjust
/// the public fields. Defaults are the safe ones.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The issuer's JWKS URL (RFC 7517 §5).
    pub jwks_url: String,
    /// The exact `iss` a token must carry (RFC 9068 §4).
    pub issuer: String,
    /// The audience this resource server is; a token's `aud` must contain it.
    pub audience: String,
    /// Accepted JWS algorithms (default `["RS256"]`); `none` and HMAC are refused.
    pub algorithms: Vec<String>,
    /// Clock leeway for `exp` and `nbf` (default 60 s).
    pub leeway: Duration,
    /// The JOSE `typ` a token must carry (default `at+jwt`, RFC 9068 §2.1).
    pub required_typ: String,
    /// How long a verified result may be reused (default 300 s), never past `exp`.
    pub cache_ttl: Duration,
    /// How many verified results are kept at most (default 100,000).
    pub cache_capacity: u64,
    /// Minimum time between two JWKS fetches not due to expiry (default 10 s).
    pub jwks_min_refresh: Duration,
    /// Lower bound of the JWKS lifetime taken from `Cache-Control: max-age` (default 60 s).
    pub jwks_max_age_floor: Duration,
    /// Upper bound of the JWKS lifetime taken from `Cache-Control: max-age` (default 1 h).
    pub jwks_max_age_ceiling: Duration,
    /// How long past its expiry the last good JWKS is still used while refreshes fail
    /// (default 1 h); after that, verification fails closed.
    pub stale_limit: Duration,
    /// Timeout of one JWKS fetch, discovery or introspection request (default 5 s).
    pub fetch_timeout: Duration,
    /// Introspection mode: check each token online at the issuer (RFC 7662) instead of
    /// against the JWKS; results are cached under the same rules. `None` (the default)
    /// verifies locally.
    pub introspection: Option<IntrospectionConfig>,
    /// Accept the token from the `access_token` query parameter (RFC 6750 §2.3) when no
    /// `Authorization` header carries one. Off by default: URLs end up in logs and
    /// `Referer` headers (RFC 6750 §5.3).
    pub allow_query_token: bool,
    /// Accept the token from an `application/x-www-form-urlencoded` body's `access_token`
    /// (RFC 6750 §2.2, not for GET). Off by default; the tower layer only (a gateway does
    /// not send the body to the forward-auth service).
    pub allow_form_token: bool,
}

/// Where and as whom the guard introspects tokens in introspection mode.
#[derive(Clone)]
pub struct IntrospectionConfig {
    /// The issuer's introspection endpoint (RFC 7662 §2).
    pub endpoint: String,
    /// A confidential client registered at the issuer, allowed to introspect.
    pub client_id: String,
    /// Its secret, sent with HTTP Basic authentication (RFC 6749 §2.3.1).
    pub client_secret: String,
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl GuardConfig {
    /// A configuration with the safe defaults for the given JWKS URL, issuer and audience.
    pub fn new(
        jwks_url: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            jwks_url: jwks_url.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: vec!["RS256".to_owned()],
            leeway: Duration::from_secs(60),
            required_typ: "at+jwt".to_owned(),
            cache_ttl: Duration::from_secs(300),
            cache_capacity: 100_000,
            jwks_min_refresh: Duration::from_secs(10),
            jwks_max_age_floor: Duration::from_secs(60),
            jwks_max_age_ceiling: Duration::from_secs(3600),
            stale_limit: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
            introspection: None,
            allow_query_token: false,
            allow_form_token: false,
        }
    }

    /// A configuration for introspection mode: each new token is checked at `endpoint`
    /// (RFC 7662) as `client_id`; no JWKS is fetched.
    pub fn introspecting(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        let mut config = Self::new("", issuer, audience);
        config.introspection = Some(IntrospectionConfig {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        });
        config
    }

    /// The allowlist parsed, refusing `none`, every HMAC algorithm and unknown names.
    pub(crate) fn allowed_algorithms(&self) -> Result<Vec<Algorithm>, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithm);
        }
        self.algorithms
            .iter()
            .map(|name| {
                let alg: Algorithm = name
                    .parse()
                    .map_err(|_| ConfigError::Algorithm(name.clone()))?;
                // RFC 8725 §3.1-3.2: a verifier holding public keys must never accept a
                // symmetric algorithm, or the public key becomes the HMAC secret.
                match alg {
                    Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                        Err(ConfigError::Algorithm(name.clone()))
                    }
                    other => Ok(other),
                }
            })
            .collect()
    }

    /// Checks the values that would make the guard unsafe or useless.
    pub(crate) fn check(&self) -> Result<Vec<Algorithm>, ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::Missing("issuer"));
        }
        if self.audience.is_empty() {
            return Err(ConfigError::Missing("audience"));
        }
        if self.required_typ.is_empty() {
            return Err(ConfigError::Missing("required_typ"));
        }
        if self.jwks_max_age_floor > self.jwks_max_age_ceiling {
            return Err(ConfigError::MaxAgeBounds);
        }
        match &self.introspection {
            Some(introspection) => {
                reqwest::Url::parse(&introspection.endpoint)
                    .map_err(|_| ConfigError::IntrospectionUrl)?;
                if introspection.client_id.is_empty() {
                    return Err(ConfigError::Missing("introspection client_id"));
                }
            }
            None => {
                reqwest::Url::parse(&self.jwks_url).map_err(|_| ConfigError::JwksUrl)?;
            }
        }
        self.allowed_algorithms()
    }
}

/// Why a [`GuardConfig`] was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An algorithm is unknown, `none`, or symmetric (HMAC).
    #[error("algorithm {0:?} is not accepted by the guard (only asymmetric JWS algorithms)")]
    Algorithm(String),
    /// The algorithm allowlist is empty.
    #[error("the algorithm allowlist is empty")]
    NoAlgorithm,
    /// A required setting is empty.
    #[error("{0} must not be empty")]
    Missing(&'static str),
    /// The JWKS URL does not parse.
    #[error("the JWKS URL is not a valid URL")]
    JwksUrl,
    /// The introspection endpoint does not parse.
    #[error("the introspection endpoint is not a valid URL")]
    IntrospectionUrl,
    /// The max-age floor is above the ceiling.
    #[error("jwks_max_age_floor must not exceed jwks_max_age_ceiling")]
    MaxAgeBounds,
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built")]
    Client,
}
