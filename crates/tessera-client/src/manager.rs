//! [`TokenManager`]: a valid access token on every call, renewed ahead of expiry, one
//! renewal at a time however many callers ask.
//!
//! What it guards against, from real deployments of rotating refresh tokens:
//! - Two tasks refreshing the same token: the second presents a rotated token, the server
//!   sees reuse and ends the session (keycloak#16081). Here, renewal is single-flight: the
//!   callers that arrive during a renewal wait for it and share its outcome, success or
//!   failure, and never start their own.
//! - A crash between the server rotating the token and the client saving it loses the only
//!   live refresh token (zitadel#9631). Here, the new token set is saved to the store before
//!   the access token is handed out; a failed save is retried before the next hand-out.
//! - A lost response: the request is retried with the same refresh token, which the
//!   server's grace window accepts once (otherwise it is reuse, and a clean
//!   [`Error::ReauthenticationRequired`]).
//! - A renewal failing while the current token still has time left: callers keep getting
//!   the current token instead of an error (zitadel#9331).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Error;
use crate::oauth::{self, ClientCredentials, Failure};
use crate::store::{MemoryStore, TokenStore};
use crate::tokens::{RenewBefore, TokenSet, unix_now};

/// How renewal requests are retried on network errors, 5xx and 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 4).
    pub attempts: u32,
    /// Backoff before the second attempt; doubled each time, with full jitter (default 200 ms).
    pub base: Duration,
    /// Longest wait between two attempts, `Retry-After` included (default 5 s).
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt` (1-based, ≥ 2): uniformly random up to the
    /// exponential bound, so that many clients failing together do not retry together.
    fn pause(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let bound = self
            .base
            .saturating_mul(1 << (attempt - 2).min(16))
            .min(self.max);
        let jittered = bound.mul_f64(random_fraction());
        retry_after.map_or(jittered, |after| after.min(self.max).max(jittered))
    }
}

fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 1.0;
    }
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// Which grant renews the tokens.
#[derive(Debug, Clone)]
enum Grant {
    /// `refresh_token` (RFC 6749 §6): the user's session, kept in the store.
    RefreshToken,
    /// `client_credentials` (RFC 6749 §4.4): the service's own identity.
    ClientCredentials {
        scope: Option<String>,
        resource: Option<String>,
    },
}

/// Hands out valid access tokens, renewing them ahead of expiry; cheap to clone.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    client: ClientCredentials,
    grant: Grant,
    store: Box<dyn TokenStore>,
    renew_before: RenewBefore,
    retry: RetryPolicy,
    state: Mutex<State>,
    /// Held by the one renewal in flight.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    tokens: Option<TokenSet>,
    /// Whether the store has been read.
    loaded: bool,
    /// Whether `tokens` is newer than what the store holds (a save failed).
    unsaved: bool,
    /// Bumped by every renewal attempt that finished; callers that waited compare it.
    generation: u64,
    /// The outcome of the last renewal if it failed.
    failure: Option<Error>,
}

/// Builds a [`TokenManager`].
pub struct TokenManagerBuilder {
    http: Option<reqwest::Client>,
    token_endpoint: String,
    revocation_endpoint: Option<String>,
    client: ClientCredentials,
    grant: Grant,
    store: Box<dyn TokenStore>,
    renew_before: RenewBefore,
    retry: RetryPolicy,
}

impl TokenManagerBuilder {
    /// The HTTP client to use (default: a new one, without redirects, 10 s timeout).
    pub fn http(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Where the tokens live (default: memory only).
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Box::new(store);
        self
    }

    /// How long before expiry a token is renewed (default [`RenewBefore::Default`]).
    pub fn renew_before(mut self, renew_before: RenewBefore) -> Self {
        self.renew_before = renew_before;
        self
    }

    /// How renewal requests are retried.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The revocation endpoint, for [`TokenManager::logout`].
    pub fn revocation_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.revocation_endpoint = Some(endpoint.into());
        self
    }

    /// The client-credentials scope to request (default: the client's default).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        if let Grant::ClientCredentials { scope: s, .. } = &mut self.grant {
            *s = Some(scope.into());
        }
        self
    }

    /// The client-credentials resource to request (RFC 8707).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        if let Grant::ClientCredentials { resource: r, .. } = &mut self.grant {
            *r = Some(resource.into());
        }
        self
    }

    /// The manager.
    pub fn build(self) -> TokenManager {
        let http = self.http.unwrap_or_else(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default()
        });
        TokenManager {
            inner: Arc::new(Inner {
                http,
                token_endpoint: self.token_endpoint,
                revocation_endpoint: self.revocation_endpoint,
                client: self.client,
                grant: self.grant,
                store: self.store,
                renew_before: self.renew_before,
                retry: self.retry,
                state: Mutex::new(State::default()),
                flight: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

impl TokenManager {
    /// A manager renewing a user's session with its refresh token (RFC 6749 §6). The
    /// session comes from the store (put there by a sign-in); see the builder for options.
    pub fn refreshing(
        token_endpoint: impl Into<String>,
        client: ClientCredentials,
        store: impl TokenStore,
    ) -> TokenManagerBuilder {
        Self::builder(token_endpoint, client, Grant::RefreshToken).store(store)
    }

    /// A manager for a service's own tokens (client credentials, RFC 6749 §4.4).
    pub fn client_credentials(
        token_endpoint: impl Into<String>,
        client: ClientCredentials,
    ) -> TokenManagerBuilder {
        let grant = Grant::ClientCredentials {
            scope: None,
            resource: None,
        };
        Self::builder(token_endpoint, client, grant)
    }

    fn builder(
        token_endpoint: impl Into<String>,
        client: ClientCredentials,
        grant: Grant,
    ) -> TokenManagerBuilder {
        TokenManagerBuilder {
            http: None,
            token_endpoint: token_endpoint.into(),
            revocation_endpoint: None,
            client,
            grant,
            store: Box::new(MemoryStore::new()),
            renew_before: RenewBefore::Default,
            retry: RetryPolicy::default(),
        }
    }

    /// An access token valid for at least the renewal margin, renewing first if needed.
    ///
    /// Concurrent callers share one renewal. If renewal fails while the current token has
    /// not yet expired, the current token is returned; the error is returned only when
    /// there is no usable token.
    pub async fn access_token(&self) -> Result<String, Error> {
        let seen = {
            let state = self.state();
            if state.loaded
                && !state.unsaved
                && let Some(tokens) = &state.tokens
                && !tokens.needs_renewal(unix_now(), self.inner.renew_before)
            {
                return Ok(tokens.access_token.clone());
            }
            state.generation
        };
        self.renew(seen, None).await
    }

    /// Renews because a resource server refused `rejected` (`401 invalid_token`), unless
    /// the token has been renewed since: many requests refused together cause one renewal.
    pub async fn renew_rejected(&self, rejected: &str) -> Result<String, Error> {
        let seen = self.state().generation;
        self.renew(seen, Some(rejected)).await
    }

    /// The current token set, if any (without renewing).
    pub fn tokens(&self) -> Option<TokenSet> {
        self.state().tokens.clone()
    }

    /// Ends the session: revokes the refresh token (the whole family, RFC 7009) when a
    /// revocation endpoint is known, then clears the store. The store is cleared even if
    /// the server cannot be reached; that error is returned afterwards.
    pub async fn logout(&self) -> Result<(), Error> {
        let _flight = self.inner.flight.lock().await;
        self.load_once().await?;
        let tokens = self.state().tokens.clone();
        let revoked = match (&self.inner.revocation_endpoint, tokens) {
            (Some(endpoint), Some(tokens)) => {
                let (token, hint) = match &tokens.refresh_token {
                    Some(refresh) => (refresh.clone(), "refresh_token"),
                    None => (tokens.access_token.clone(), "access_token"),
                };
                oauth::revoke(&self.inner.http, endpoint, &self.inner.client, &token, hint).await
            }
            _ => Ok(()),
        };
        self.inner.store.clear().await?;
        let mut state = self.state();
        state.tokens = None;
        state.unsaved = false;
        state.generation += 1;
        state.failure = Some(Error::ReauthenticationRequired);
        revoked
    }

    /// Renews in the background ahead of expiry, so callers of
    /// [`access_token`](Self::access_token) never wait. Stops when the session ends
    /// (reauthentication required); abort the handle to stop it earlier.
    pub fn spawn_background_renewal(&self) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                match manager.access_token().await {
                    Err(Error::ReauthenticationRequired) => return,
                    Err(error) => {
                        failures += 1;
                        tracing::warn!(%error, "background token renewal failed");
                    }
                    Ok(_) => failures = 0,
                }
                let wait = match (failures, manager.tokens()) {
                    (0, Some(tokens)) => {
                        let margin = manager.inner.renew_before.for_lifetime(tokens.lifetime());
                        tokens
                            .remaining(unix_now())
                            .saturating_sub(margin)
                            .max(Duration::from_secs(1))
                    }
                    _ => manager.inner.retry.pause(failures.clamp(2, 16), None),
                };
                tokio::time::sleep(wait).await;
            }
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn load_once(&self) -> Result<(), Error> {
        if self.state().loaded {
            return Ok(());
        }
        let stored = self.inner.store.load().await?;
        let mut state = self.state();
        state.tokens = stored;
        state.loaded = true;
        Ok(())
    }

    /// The single flight. `seen` is the generation the caller saw before waiting: if a
    /// renewal finished since, its outcome is the caller's too.
    async fn renew(&self, seen: u64, rejected: Option<&str>) -> Result<String, Error> {
        let _flight = self.inner.flight.lock().await;
        self.load_once().await?;
        let now = unix_now();
        {
            let state = self.state();
            if state.generation != seen {
                return match (&state.tokens, &state.failure) {
                    (Some(tokens), None) => Ok(tokens.access_token.clone()),
                    (_, Some(failure)) => usable(state.tokens.as_ref(), now)
                        .map(str::to_owned)
                        .ok_or_else(|| failure.clone()),
                    (None, None) => Err(Error::ReauthenticationRequired),
                };
            }
        }
        // A save that failed earlier is retried before the token is handed out.
        if self.state().unsaved {
            let tokens = self.state().tokens.clone();
            if let Some(tokens) = tokens {
                self.inner.store.save(&tokens).await?;
                self.state().unsaved = false;
            }
        }
        let current = self.state().tokens.clone();
        let due = match (&current, rejected) {
            (None, _) => true,
            (Some(tokens), Some(rejected)) => tokens.access_token == rejected,
            (Some(tokens), None) => tokens.needs_renewal(now, self.inner.renew_before),
        };
        if !due && let Some(tokens) = current {
            return Ok(tokens.access_token);
        }
        let outcome = self.request(current.as_ref()).await;
        self.state().generation += 1;
        match outcome {
            Ok(fresh) => {
                let saved = self.inner.store.save(&fresh).await;
                let access = fresh.access_token.clone();
                let mut state = self.state();
                state.tokens = Some(fresh);
                match saved {
                    Ok(()) => {
                        state.unsaved = false;
                        state.failure = None;
                        Ok(access)
                    }
                    Err(error) => {
                        // Kept in memory (it holds the only live refresh token) and saved
                        // again before the next hand-out; not handed out now.
                        tracing::error!(%error, "rotated tokens could not be saved");
                        state.unsaved = true;
                        let error = Error::from(error);
                        state.failure = Some(error.clone());
                        Err(error)
                    }
                }
            }
            Err(error) => {
                if error == Error::ReauthenticationRequired {
                    // The session is over; the stale refresh token must not be retried.
                    self.state().tokens = None;
                    if let Err(e) = self.inner.store.clear().await {
                        tracing::warn!(error = %e, "could not clear the ended session");
                    }
                }
                let mut state = self.state();
                state.failure = Some(error.clone());
                if rejected.is_none()
                    && let Some(token) = usable(state.tokens.as_ref(), now)
                {
                    tracing::warn!(%error, "token renewal failed; the current token is still valid");
                    return Ok(token.to_owned());
                }
                Err(error)
            }
        }
    }

    /// The renewal request with retries.
    async fn request(&self, current: Option<&TokenSet>) -> Result<TokenSet, Error> {
        let inner = &self.inner;
        let refresh_token;
        let mut form: Vec<(&str, &str)> = Vec::with_capacity(3);
        match &inner.grant {
            Grant::RefreshToken => {
                refresh_token = current
                    .and_then(|t| t.refresh_token.clone())
                    .ok_or(Error::ReauthenticationRequired)?;
                form.push(("grant_type", "refresh_token"));
                form.push(("refresh_token", &refresh_token));
            }
            Grant::ClientCredentials { scope, resource } => {
                form.push(("grant_type", "client_credentials"));
                if let Some(scope) = scope {
                    form.push(("scope", scope));
                }
                if let Some(resource) = resource {
                    form.push(("resource", resource));
                }
            }
        }
        let mut attempt = 1;
        loop {
            let result =
                oauth::token_request(&inner.http, &inner.token_endpoint, &inner.client, &form)
                    .await;
            match result {
                Ok(mut fresh) => {
                    // RFC 6749 §6: without a new refresh token, the old one stays in use.
                    if fresh.refresh_token.is_none() {
                        fresh.refresh_token = current.and_then(|t| t.refresh_token.clone());
                    }
                    return Ok(fresh);
                }
                Err(Failure::Final(Error::Rejected { error, .. }))
                    if error == "invalid_grant" && matches!(inner.grant, Grant::RefreshToken) =>
                {
                    return Err(Error::ReauthenticationRequired);
                }
                Err(Failure::Final(error)) => return Err(error),
                Err(Failure::Transient(reason, retry_after)) => {
                    if attempt >= inner.retry.attempts {
                        return Err(Error::Unavailable(reason));
                    }
                    attempt += 1;
                    let pause = inner.retry.pause(attempt, retry_after);
                    tracing::debug!(%reason, ?pause, attempt, "token request failed; retrying");
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// The access token of `tokens` if it has not expired at `now`.
fn usable(tokens: Option<&TokenSet>, now: u64) -> Option<&str> {
    tokens
        .filter(|t| t.expires_at > now)
        .map(|t| t.access_token.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy {
            attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..100 {
            assert!(policy.pause(2, None) <= Duration::from_millis(100));
            assert!(policy.pause(4, None) <= Duration::from_millis(400));
            assert!(policy.pause(30, None) <= Duration::from_secs(1));
            let after = policy.pause(2, Some(Duration::from_millis(700)));
            assert!(after >= Duration::from_millis(700) && after <= Duration::from_secs(1));
            assert_eq!(
                policy.pause(2, Some(Duration::from_secs(60))),
                Duration::from_secs(1)
            );
        }
    }
}
