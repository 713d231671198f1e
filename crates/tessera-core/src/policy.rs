//! Server policy: the issuer and the lifetimes the flows apply.

use std::time::Duration;

/// Settings the flows read; built by the binary from flags, environment and defaults.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The issuer identifier (RFC 8414 §2): an absolute URL without a trailing slash.
    pub issuer: String,
    /// Lifetime of access tokens (`TESSERA_ACCESS_TOKEN_TTL`).
    pub access_token_ttl: Duration,
    /// Lifetime of authorization codes; RFC 6749 §4.1.2 recommends at most 10 minutes.
    pub code_ttl: Duration,
    /// Lifetime of a signed-in browser session.
    pub session_ttl: Duration,
    /// Lifetime each rotation gives a refresh token (`TESSERA_REFRESH_TOKEN_TTL`).
    pub refresh_token_ttl: Duration,
    /// Absolute limit of a family from the code exchange (`TESSERA_REFRESH_TOKEN_MAX_LIFETIME`).
    pub refresh_token_max_lifetime: Duration,
    /// Window in which a lost refresh response may be retried (`TESSERA_REFRESH_GRACE`);
    /// zero turns it off.
    pub refresh_grace: Duration,
    /// Longest life of a cached validation (`TESSERA_VALIDATION_CACHE_TTL`).
    pub validation_cache_ttl: Duration,
}

impl Policy {
    /// Defaults for `issuer`: 15-minute access tokens, 60-second codes, 8-hour sessions,
    /// 14-day refresh tokens within a 90-day family limit, no grace window.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            access_token_ttl: Duration::from_secs(15 * 60),
            code_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(8 * 3600),
            refresh_token_ttl: Duration::from_secs(14 * 86_400),
            refresh_token_max_lifetime: Duration::from_secs(90 * 86_400),
            refresh_grace: Duration::ZERO,
            validation_cache_ttl: Duration::from_secs(300),
        }
    }
}
