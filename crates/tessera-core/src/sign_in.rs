//! Signing in on the login page: the throttle first, then the password, then a session.
//!
//! The order is the point. An attempt the [`login_throttle`](crate::login_throttle) refuses
//! never reaches the user store or Argon2, so a throttled answer costs an attacker's target
//! nothing and cannot depend on the password or on whether the user exists. An attempt it
//! lets through always runs one Argon2 verification (against a dummy hash for an unknown
//! user), so the time taken does not say which usernames exist either. Every outcome is an
//! [`audit`](crate::audit) event and a metric.

use std::net::IpAddr;
use std::time::Duration;

use crate::audit::{AuditEvent, Event, Outcome};
use crate::error::OAuthError;
use crate::login_throttle::Scope;
use crate::secret::{self, SecretHash};
use crate::server::{AuthorizationServer, NewSession, SESSION_PREFIX};
use crate::session::Session;
use crate::user;

/// One submission of the login form.
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    /// The username as typed.
    pub username: &'a str,
    /// The password as typed; only ever handed to Argon2.
    pub password: &'a str,
    /// The client whose authorization request the form belongs to (for the audit trail).
    pub client_id: &'a str,
    /// The address the form came from (see [`crate::client_ip`]); `None` when unknown,
    /// which skips the per-address count.
    pub ip: Option<IpAddr>,
}

/// A sign-in attempt failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown user, wrong password or disabled account: deliberately indistinguishable.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// Too many failed attempts for this username or from this address: the attempt was
    /// refused (or its failure started a lockout). Says nothing about whether the
    /// credentials were right or the user exists.
    #[error("too many failed attempts; try again later")]
    TooManyAttempts {
        /// How long until an attempt is considered again.
        retry_after: Duration,
    },
    /// Storage failed.
    #[error(transparent)]
    Server(#[from] OAuthError),
}

/// Checks an attempt and starts a browser session.
pub(crate) async fn sign_in(
    server: &AuthorizationServer,
    attempt: &LoginAttempt<'_>,
) -> Result<NewSession, SignInError> {
    let ports = server.ports();
    let policy = server.policy();
    let limits = policy.login_throttle;
    let event = |event, outcome| {
        AuditEvent::new(event, outcome)
            .client(attempt.client_id)
            .account(attempt.username)
            .ip(attempt.ip)
    };
    let now_ms = ports.clock.now_millis();
    let started = match server
        .login_throttle()
        .begin(attempt.username, attempt.ip, &limits, now_ms)
    {
        Ok(started) => started,
        Err(refused) => {
            metrics::counter!("tessera_login_throttled_total", "scope" => refused.scope.as_str())
                .increment(1);
            event(Event::LoginFailed, Outcome::Throttled)
                .reason(refused.scope.as_str())
                .retry_after(refused.retry_after.as_secs())
                .emit();
            return Err(SignInError::TooManyAttempts {
                retry_after: refused.retry_after,
            });
        }
    };
    let found = ports
        .users
        .find_by_username(attempt.username)
        .await
        .map_err(OAuthError::from)?;
    let verified = user::verify_password(found.as_ref(), attempt.password);
    let user = match found {
        Some(user) if verified => user,
        other => {
            let locked = started.failed(ports.clock.now_millis());
            metrics::counter!("tessera_login_failures_total").increment(1);
            let user_id = other.as_ref().map(|u| u.id.as_str());
            let mut failed = event(Event::LoginFailed, Outcome::Failure);
            failed.user = user_id;
            failed.emit();
            for scope in &locked {
                metrics::counter!("tessera_login_lockouts_total", "scope" => scope.as_str())
                    .increment(1);
                let mut lockout = event(Event::LoginLocked, Outcome::Locked)
                    .reason(scope.as_str())
                    .retry_after(limits.lockout.as_secs());
                if *scope == Scope::Account {
                    lockout.user = user_id;
                }
                lockout.emit();
            }
            return Err(if locked.is_empty() {
                SignInError::InvalidCredentials
            } else {
                SignInError::TooManyAttempts {
                    retry_after: limits.lockout,
                }
            });
        }
    };
    started.succeeded();
    let id = secret::mint(ports.random.as_ref(), SESSION_PREFIX);
    let now = ports.clock.now();
    let session = Session {
        id_hash: SecretHash::of(&id),
        user_id: user.id,
        auth_time: now,
        expires_at: now.plus(policy.session_ttl),
    };
    ports
        .sessions
        .create(&session)
        .await
        .map_err(OAuthError::from)?;
    event(Event::LoginSucceeded, Outcome::Success)
        .user(&session.user_id)
        .emit();
    Ok(NewSession { id, session })
}
