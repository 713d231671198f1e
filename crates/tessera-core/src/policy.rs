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
}

impl Policy {
    /// Defaults for `issuer`: 15-minute access tokens, 60-second codes, 8-hour sessions.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            access_token_ttl: Duration::from_secs(15 * 60),
            code_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}
