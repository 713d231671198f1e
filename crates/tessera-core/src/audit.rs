//! Audit events: one structured `tracing` event per security-relevant action, all with the
//! target [`TARGET`] (`audit`) and one schema, so a log pipeline can route them to an audit
//! store with a single filter (`RUST_LOG`-style `audit=info`, or `target == "audit"` on the
//! JSON lines).
//!
//! The schema (every field is optional except `event` and `outcome`; absent fields are not
//! written):
//!
//! | field | meaning |
//! |---|---|
//! | `event` | what happened: [`Event::as_str`] (`login_failed`, `token_issued`, ...) |
//! | `outcome` | `success`, `failure`, `denied`, `throttled` or `locked` |
//! | `client_id` | the OAuth client concerned |
//! | `user` | the user's id (the `sub` claim), never a password |
//! | `account` | first 8 hex of SHA-256 of the username typed at sign-in (the raw text may be a mistyped password) |
//! | `ip` | the client address the request came from |
//! | `grant` | the grant type of a token request |
//! | `token` | first 8 hex of SHA-256 of the token or code concerned |
//! | `family` | the refresh-token family id (an internal identifier, not a credential) |
//! | `kid` | a signing key id |
//! | `scope` | the scope granted, denied or issued |
//! | `reason` | why: the lockout scope (`account`, `ip`), a revocation reason, a reload cause |
//! | `retry_after_s` | for throttling: seconds until the next attempt is considered |
//! | `detail` | a short non-secret description (e.g. the settings a reload changed) |
//!
//! Never a secret, token, code, password or session id: only [`HashPrefix`]es of them.
//! Emit through [`emit`] or the shorthands ([`consent_granted`], [`token_issued`], ...).

use std::net::IpAddr;

use crate::secret::SecretHash;

/// The `tracing` target of every audit event.
pub const TARGET: &str = "audit";

/// What happened.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A user signed in on the login page.
    LoginSucceeded,
    /// A sign-in was refused: wrong credentials (`failure`) or not checked while throttled
    /// (`throttled`).
    LoginFailed,
    /// Too many failed sign-ins locked an account or a client address for a while.
    LoginLocked,
    /// A user approved a client's request on the consent page.
    ConsentGranted,
    /// A user denied a client's request on the consent page.
    ConsentDenied,
    /// A user's remembered consent was withdrawn.
    ConsentRevoked,
    /// A browser session ended (sign-out).
    Logout,
    /// The token endpoint issued an access token (and maybe a refresh token).
    TokenIssued,
    /// A rotated refresh token came back: its family was revoked (RFC 9700 §4.14.2).
    RefreshReuseDetected,
    /// A used authorization code came back: what it issued was revoked (RFC 6749 §4.1.2).
    CodeReuseDetected,
    /// A token or a token family was revoked (RFC 7009, or by an administrator).
    TokenRevoked,
    /// A new signing key was generated and published (a rotation began).
    KeyRotated,
    /// A signing key no token needs any more was removed.
    KeyRemoved,
    /// A signing key was revoked in an emergency.
    KeyRevoked,
    /// The configuration was reloaded (`success`) or a reload was rejected (`failure`).
    ConfigReloaded,
}

impl Event {
    /// The `event` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginLocked => "login_locked",
            Self::ConsentGranted => "consent_granted",
            Self::ConsentDenied => "consent_denied",
            Self::ConsentRevoked => "consent_revoked",
            Self::Logout => "logout",
            Self::TokenIssued => "token_issued",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::CodeReuseDetected => "code_reuse_detected",
            Self::TokenRevoked => "token_revoked",
            Self::KeyRotated => "key_rotated",
            Self::KeyRemoved => "key_removed",
            Self::KeyRevoked => "key_revoked",
            Self::ConfigReloaded => "config_reloaded",
        }
    }
}

/// How it ended.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action took place.
    Success,
    /// The action was refused or failed.
    Failure,
    /// The user said no (consent).
    Denied,
    /// Not even attempted: the caller is being slowed down.
    Throttled,
    /// A lockout began.
    Locked,
}

impl Outcome {
    /// The `outcome` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
            Self::Throttled => "throttled",
            Self::Locked => "locked",
        }
    }
}

/// The first 8 hex digits of a SHA-256: enough to correlate log lines, useless to an attacker.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashPrefix([u8; 4]);

impl HashPrefix {
    /// The prefix of a secret's (token's, code's, username's) SHA-256.
    pub fn of(secret: &str) -> Self {
        Self::from(&SecretHash::of(secret))
    }
}

impl From<&SecretHash> for HashPrefix {
    fn from(hash: &SecretHash) -> Self {
        Self([hash.0[0], hash.0[1], hash.0[2], hash.0[3]])
    }
}

impl std::fmt::Display for HashPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for HashPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HashPrefix({self})")
    }
}

/// One audit event: build it with [`AuditEvent::new`] and the setters, then [`emit`] it.
#[derive(Debug, Clone, Copy)]
pub struct AuditEvent<'a> {
    /// What happened.
    pub event: Event,
    /// How it ended.
    pub outcome: Outcome,
    /// The client concerned.
    pub client_id: Option<&'a str>,
    /// The user's id.
    pub user: Option<&'a str>,
    /// Hash prefix of the username typed at sign-in.
    pub account: Option<HashPrefix>,
    /// The client address.
    pub ip: Option<IpAddr>,
    /// The grant type.
    pub grant: Option<&'a str>,
    /// Hash prefix of the token or code concerned.
    pub token: Option<HashPrefix>,
    /// The refresh-token family id.
    pub family: Option<&'a str>,
    /// A signing key id.
    pub kid: Option<&'a str>,
    /// The scope concerned.
    pub scope: Option<&'a str>,
    /// Why (lockout scope, revocation reason, reload cause).
    pub reason: Option<&'a str>,
    /// Seconds until the next attempt is considered.
    pub retry_after_s: Option<u64>,
    /// A short non-secret description.
    pub detail: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    /// An event with only `event` and `outcome` set.
    pub fn new(event: Event, outcome: Outcome) -> Self {
        Self {
            event,
            outcome,
            client_id: None,
            user: None,
            account: None,
            ip: None,
            grant: None,
            token: None,
            family: None,
            kid: None,
            scope: None,
            reason: None,
            retry_after_s: None,
            detail: None,
        }
    }

    /// Sets `client_id`.
    pub fn client(mut self, client_id: &'a str) -> Self {
        self.client_id = Some(client_id);
        self
    }

    /// Sets `user` (a user id, never a username or password).
    pub fn user(mut self, user_id: &'a str) -> Self {
        self.user = Some(user_id);
        self
    }

    /// Sets `account` to the hash prefix of a typed username.
    pub fn account(mut self, username: &str) -> Self {
        self.account = Some(HashPrefix::of(username));
        self
    }

    /// Sets `ip`, when known.
    pub fn ip(mut self, ip: Option<IpAddr>) -> Self {
        self.ip = ip;
        self
    }

    /// Sets `grant`.
    pub fn grant(mut self, grant: &'a str) -> Self {
        self.grant = Some(grant);
        self
    }

    /// Sets `token` to the hash prefix of a token or code.
    pub fn token(mut self, token: HashPrefix) -> Self {
        self.token = Some(token);
        self
    }

    /// Sets `family`.
    pub fn family(mut self, family_id: &'a str) -> Self {
        self.family = Some(family_id);
        self
    }

    /// Sets `kid`.
    pub fn kid(mut self, kid: &'a str) -> Self {
        self.kid = Some(kid);
        self
    }

    /// Sets `scope`.
    pub fn scope(mut self, scope: &'a str) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Sets `reason`.
    pub fn reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets `retry_after_s`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// Sets `detail`.
    pub fn detail(mut self, detail: &'a str) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Writes the event (see [`emit`]).
    pub fn emit(self) {
        emit(&self);
    }
}

/// Writes one audit event: `warn` for lockouts, reuse, key revocation and failed reloads
/// (someone should look), `info` otherwise.
pub fn emit(e: &AuditEvent<'_>) {
    macro_rules! write_event {
        ($level:expr) => {
            tracing::event!(
                target: "audit",
                $level,
                event = e.event.as_str(),
                outcome = e.outcome.as_str(),
                client_id = e.client_id,
                user = e.user,
                account = e.account.map(tracing::field::display),
                ip = e.ip.map(tracing::field::display),
                grant = e.grant,
                token = e.token.map(tracing::field::display),
                family = e.family,
                kid = e.kid,
                scope = e.scope,
                reason = e.reason,
                retry_after_s = e.retry_after_s,
                detail = e.detail,
                "{}",
                e.event.as_str()
            )
        };
    }
    let alarming = matches!(
        e.event,
        Event::LoginLocked
            | Event::RefreshReuseDetected
            | Event::CodeReuseDetected
            | Event::KeyRevoked
    ) || (e.event == Event::ConfigReloaded && e.outcome == Outcome::Failure);
    if alarming {
        write_event!(tracing::Level::WARN);
    } else {
        write_event!(tracing::Level::INFO);
    }
}

/// A user approved `client_id`'s request for `scope` on the consent page.
pub fn consent_granted(client_id: &str, user_id: &str, scope: &str, ip: Option<IpAddr>) {
    AuditEvent::new(Event::ConsentGranted, Outcome::Success)
        .client(client_id)
        .user(user_id)
        .scope(scope)
        .ip(ip)
        .emit();
}

/// A user denied `client_id`'s request for `scope` on the consent page.
pub fn consent_denied(client_id: &str, user_id: &str, scope: &str, ip: Option<IpAddr>) {
    AuditEvent::new(Event::ConsentDenied, Outcome::Denied)
        .client(client_id)
        .user(user_id)
        .scope(scope)
        .ip(ip)
        .emit();
}

/// A user's remembered consent was withdrawn: for one client, or all when `client_id` is
/// `None`.
pub fn consent_revoked(client_id: Option<&str>, user_id: &str) {
    let mut e = AuditEvent::new(Event::ConsentRevoked, Outcome::Success).user(user_id);
    e.client_id = client_id;
    e.emit();
}

/// A browser session ended (sign-out), for `client_id` when the request named one.
pub fn logout(client_id: Option<&str>, user_id: &str, ip: Option<IpAddr>) {
    let mut e = AuditEvent::new(Event::Logout, Outcome::Success)
        .user(user_id)
        .ip(ip);
    e.client_id = client_id;
    e.emit();
}

/// The token endpoint issued `access_token` to `client_id` by `grant`, for `user` unless it
/// is the client's own token; `family` links the refresh tokens issued with it.
pub fn token_issued(
    client_id: &str,
    grant: &str,
    user: Option<&str>,
    family: Option<&str>,
    scope: &str,
    access_token: &str,
) {
    let mut e = AuditEvent::new(Event::TokenIssued, Outcome::Success)
        .client(client_id)
        .grant(grant)
        .scope(scope)
        .token(HashPrefix::of(access_token));
    e.user = user;
    e.family = family;
    e.emit();
}

/// A signing key was generated and published.
pub fn key_rotated(kid: &str) {
    AuditEvent::new(Event::KeyRotated, Outcome::Success)
        .kid(kid)
        .emit();
}

/// A signing key no token needs any more was removed.
pub fn key_removed(kid: &str) {
    AuditEvent::new(Event::KeyRemoved, Outcome::Success)
        .kid(kid)
        .emit();
}

/// A signing key was revoked in an emergency.
pub fn key_revoked(kid: &str) {
    AuditEvent::new(Event::KeyRevoked, Outcome::Success)
        .kid(kid)
        .emit();
}

/// A configuration reload was applied (`detail`: the changes) or rejected (`detail`: why).
pub fn config_reloaded(cause: &str, applied: bool, detail: &str) {
    let outcome = if applied {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    AuditEvent::new(Event::ConfigReloaded, outcome)
        .reason(cause)
        .detail(detail)
        .emit();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_prefixes_are_eight_hex_digits_of_sha256() {
        // SHA-256("abc") = ba7816bf...
        assert_eq!(HashPrefix::of("abc").to_string(), "ba7816bf");
        assert_eq!(
            HashPrefix::from(&SecretHash::of("abc")).to_string(),
            SecretHash::of("abc").log_label()
        );
    }

    #[test]
    fn event_and_outcome_names_are_snake_case() {
        for e in [
            Event::LoginSucceeded,
            Event::LoginFailed,
            Event::LoginLocked,
            Event::ConsentGranted,
            Event::ConsentDenied,
            Event::ConsentRevoked,
            Event::Logout,
            Event::TokenIssued,
            Event::RefreshReuseDetected,
            Event::CodeReuseDetected,
            Event::TokenRevoked,
            Event::KeyRotated,
            Event::KeyRemoved,
            Event::KeyRevoked,
            Event::ConfigReloaded,
        ] {
            let name = e.as_str();
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(Outcome::Throttled.as_str(), "throttled");
    }
}
