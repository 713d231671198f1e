//! Server policy: the issuer and the lifetimes the flows apply.

use std::time::Duration;

use crate::client_ip::IpNetwork;
use crate::consent::ScopeDescriptions;
use crate::login_throttle::ThrottleSettings;
use crate::rate_limit::RateLimit;

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
    /// What scopes mean, for the consent page (`TESSERA_SCOPE_DESCRIPTIONS`).
    pub scope_descriptions: ScopeDescriptions,
    /// Brute-force protection of the login form (`TESSERA_LOGIN_*`).
    pub login_throttle: ThrottleSettings,
    /// The token endpoint's per-client rate limit (`TESSERA_TOKEN_RATE_LIMIT`), off by default.
    pub token_rate_limit: RateLimit,
    /// Reverse proxies whose `X-Forwarded-For` is believed (`TESSERA_TRUSTED_PROXIES`); none
    /// by default, so the client address is the socket peer.
    pub trusted_proxies: Vec<IpNetwork>,
}

impl Policy {
    /// Defaults for `issuer`: 15-minute access tokens, 60-second codes, 8-hour sessions,
    /// 14-day refresh tokens within a 90-day family limit, no grace window; login throttling
    /// at its defaults, no token rate limit, no trusted proxies.
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
            scope_descriptions: ScopeDescriptions::default(),
            login_throttle: ThrottleSettings::default(),
            token_rate_limit: RateLimit::Off,
            trusted_proxies: Vec::new(),
        }
    }
}

/// An inclusive range a duration setting must fall in, e.g. [`ACCESS_TOKEN_TTL_BOUNDS`].
///
/// Displays as `"{min} to {max}"` in the compact form of [`format_duration`]
/// (`"1m to 24h"`), for error messages that name the allowed range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The shortest allowed value.
    pub min: Duration,
    /// The longest allowed value.
    pub max: Duration,
}

impl Bounds {
    /// The range `min..=max`.
    pub const fn new(min: Duration, max: Duration) -> Self {
        Self { min, max }
    }

    /// Whether `value` lies within the bounds (both ends included).
    pub fn contains(&self, value: Duration) -> bool {
        self.min <= value && value <= self.max
    }
}

impl std::fmt::Display for Bounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to {}",
            format_duration(self.min),
            format_duration(self.max)
        )
    }
}

/// Allowed lifetimes of access tokens, globally (`TESSERA_ACCESS_TOKEN_TTL`) and per client
/// (`tessera client create|update --access-token-ttl`): 1 minute to 24 hours.
pub const ACCESS_TOKEN_TTL_BOUNDS: Bounds =
    Bounds::new(Duration::from_secs(60), Duration::from_secs(24 * 3600));

/// Allowed lifetimes of refresh tokens, globally (`TESSERA_REFRESH_TOKEN_TTL`) and per client
/// (`tessera client create|update --refresh-token-ttl`): 1 hour to 365 days. A refresh TTL
/// must also be at least the access TTL it goes with, see [`refresh_covers_access`].
pub const REFRESH_TOKEN_TTL_BOUNDS: Bounds =
    Bounds::new(Duration::from_secs(3600), Duration::from_secs(365 * 86_400));

/// The rule between the two lifetimes: a refresh token must live at least as long as the
/// access tokens issued with it (`refresh >= access`), or a client could hold an access
/// token that outlives every way to renew it.
pub fn refresh_covers_access(access: Duration, refresh: Duration) -> bool {
    refresh >= access
}

/// A duration in the compact form durations are written in settings: whole days (`7d`) when
/// more than a day, else the largest of hours, minutes or seconds that is exact (`24h`,
/// `90m`, `45s`). Fractions of a second are dropped.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 86_400 && secs.is_multiple_of(86_400) {
        format!("{}d", secs / 86_400)
    } else if secs > 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs > 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const HOUR: Duration = Duration::from_secs(3600);
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn access_token_ttl_bounds_are_one_minute_to_a_day_inclusive() {
        let b = ACCESS_TOKEN_TTL_BOUNDS;
        assert!(!b.contains(MIN - Duration::from_secs(1)));
        assert!(b.contains(MIN));
        assert!(b.contains(15 * MIN));
        assert!(b.contains(24 * HOUR));
        assert!(!b.contains(24 * HOUR + Duration::from_secs(1)));
        assert!(!b.contains(Duration::ZERO));
        assert_eq!(b.to_string(), "1m to 24h");
    }

    #[test]
    fn refresh_token_ttl_bounds_are_one_hour_to_a_year_inclusive() {
        let b = REFRESH_TOKEN_TTL_BOUNDS;
        assert!(!b.contains(HOUR - Duration::from_secs(1)));
        assert!(b.contains(HOUR));
        assert!(b.contains(14 * DAY));
        assert!(b.contains(365 * DAY));
        assert!(!b.contains(365 * DAY + Duration::from_secs(1)));
        assert_eq!(b.to_string(), "1h to 365d");
    }

    #[test]
    fn the_defaults_lie_within_the_bounds() {
        let p = Policy::new("https://issuer.example");
        assert!(ACCESS_TOKEN_TTL_BOUNDS.contains(p.access_token_ttl));
        assert!(REFRESH_TOKEN_TTL_BOUNDS.contains(p.refresh_token_ttl));
        assert!(refresh_covers_access(
            p.access_token_ttl,
            p.refresh_token_ttl
        ));
    }

    #[test]
    fn refresh_must_cover_access() {
        assert!(refresh_covers_access(HOUR, HOUR));
        assert!(refresh_covers_access(HOUR, DAY));
        assert!(!refresh_covers_access(2 * HOUR, HOUR));
    }

    #[test]
    fn durations_format_compactly() {
        for (d, text) in [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_secs(90), "90s"),
            (MIN, "1m"),
            (90 * MIN, "90m"),
            (HOUR, "1h"),
            (DAY, "24h"),
            (DAY + HOUR, "25h"),
            (2 * DAY, "2d"),
            (365 * DAY, "365d"),
            (Duration::from_millis(1500), "1s"),
        ] {
            assert_eq!(format_duration(d), text, "{d:?}");
        }
    }
}
