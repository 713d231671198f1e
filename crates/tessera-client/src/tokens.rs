//! The tokens a client holds, and when they need renewing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A token response as kept by the client: what the server sent, and when the access token
/// expires by the local clock.
///
/// `expires_at` is computed when the response arrives, from `expires_in` (RFC 6749 §5.1),
/// never from the token's own `exp`: a client whose clock is off by minutes still renews at
/// the right moment, since both ends of the interval are read from the same clock.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if the grant issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope, if the server said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Local time of receipt, seconds since the epoch.
    pub received_at: u64,
    /// Local time of expiry of the access token, seconds since the epoch.
    pub expires_at: u64,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are credentials: never in logs or panics.
        f.debug_struct("TokenSet")
            .field("scope", &self.scope)
            .field("received_at", &self.received_at)
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// The access token's lifetime as granted.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(self.received_at))
    }

    /// Time left before the access token expires, at local time `now`.
    pub fn remaining(&self, now: u64) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(now))
    }

    /// Whether the access token should be renewed at `now`, renewing `renew_before` ahead
    /// of expiry ([`RenewBefore`]).
    pub fn needs_renewal(&self, now: u64, renew_before: RenewBefore) -> bool {
        self.remaining(now) <= renew_before.for_lifetime(self.lifetime())
    }
}

/// How long before expiry a token is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewBefore {
    /// The larger of 60 s and 20% of the token's lifetime, but at most half the lifetime
    /// (so that a 60-second token is not renewed on every call).
    Default,
    /// A fixed margin (at most the token's lifetime).
    Fixed(Duration),
}

impl RenewBefore {
    /// The margin for a token of `lifetime`.
    pub fn for_lifetime(self, lifetime: Duration) -> Duration {
        match self {
            RenewBefore::Default => Duration::from_secs(60).max(lifetime / 5).min(lifetime / 2),
            RenewBefore::Fixed(margin) => margin.min(lifetime),
        }
    }
}

/// Local wall-clock time, seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(received_at: u64, lifetime: u64) -> TokenSet {
        TokenSet {
            access_token: "a".into(),
            refresh_token: None,
            scope: None,
            received_at,
            expires_at: received_at + lifetime,
        }
    }

    #[test]
    fn the_default_margin_is_the_larger_of_a_minute_and_a_fifth_capped_at_half() {
        let margin = |secs| RenewBefore::Default.for_lifetime(Duration::from_secs(secs));
        assert_eq!(margin(900), Duration::from_secs(180), "15 min: 20%");
        assert_eq!(margin(200), Duration::from_secs(60), "a minute beats 40 s");
        assert_eq!(margin(60), Duration::from_secs(30), "never more than half");
        assert_eq!(margin(3600), Duration::from_secs(720));
    }

    #[test]
    fn renewal_is_due_inside_the_margin_only() {
        let tokens = set(1000, 900);
        assert!(!tokens.needs_renewal(1000, RenewBefore::Default));
        assert!(!tokens.needs_renewal(1719, RenewBefore::Default));
        assert!(tokens.needs_renewal(1720, RenewBefore::Default));
        assert!(tokens.needs_renewal(5000, RenewBefore::Default), "expired");
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let mut tokens = set(1, 2);
        tokens.access_token = "SECRET-ACCESS".into();
        tokens.refresh_token = Some("SECRET-REFRESH".into());
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
