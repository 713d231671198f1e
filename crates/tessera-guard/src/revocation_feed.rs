//! Following the issuer's revocation feed, so a revoked token is refused within a second
//! although its signature stays valid until it expires.
//!
//! The feed (`GET {issuer}/api/v2/auth/revocations?after=SEQ&wait=S`, HTTP Basic client
//! authentication) lists revoked `jti`s with their expiry, in order, by cursor. The follower
//! first reads everything still listed, so a freshly started guard already refuses tokens
//! revoked before it started, then long-polls for more. While the issuer is unreachable it
//! retries; tokens revoked meanwhile are caught on reconnection, from the last cursor.

use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::Guard;

/// Where the feed is and how to authenticate to it.
#[derive(Clone)]
pub struct FeedConfig {
    /// The feed URL, `{issuer}/api/v2/auth/revocations`.
    pub url: String,
    /// A confidential client registered at the issuer.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// How long one long poll may wait (default 25 s; the issuer caps it at 30 s).
    pub wait: Duration,
    /// Pause before retrying after a failed poll (default 1 s).
    pub retry: Duration,
}

impl std::fmt::Debug for FeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("FeedConfig")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl FeedConfig {
    /// The feed of `issuer` (its base URL), read as `client_id`.
    pub fn new(
        issuer: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            url: format!("{}/api/v2/auth/revocations", issuer.trim_end_matches('/')),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            wait: Duration::from_secs(25),
            retry: Duration::from_secs(1),
        }
    }
}

/// Why the initial catch-up failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The feed could not be reached or read.
    #[error("cannot read the revocation feed: {0}")]
    Unreachable(String),
    /// The issuer refused the client's credentials.
    #[error("the revocation feed refused the client credentials")]
    Unauthorized,
}

#[derive(Deserialize)]
struct Page {
    revocations: Vec<Entry>,
    next: i64,
}

#[derive(Deserialize)]
struct Entry {
    jti: String,
    exp: i64,
}

/// Catches up on everything the feed lists, then follows it in the background, revoking
/// each `jti` in `guard` until its token expires. Returns once the catch-up is done.
pub async fn follow(guard: Guard, config: FeedConfig) -> Result<JoinHandle<()>, FeedError> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| FeedError::Unreachable(e.to_string()))?;
    let mut cursor = 0;
    loop {
        let page = poll(&client, &config, cursor, Duration::ZERO).await?;
        let done = page.revocations.is_empty();
        apply(&guard, page, &mut cursor).await;
        if done {
            break;
        }
    }
    Ok(tokio::spawn(async move {
        loop {
            match poll(&client, &config, cursor, config.wait).await {
                Ok(page) => apply(&guard, page, &mut cursor).await,
                Err(e) => {
                    tracing::warn!(error = %e, "revocation feed unavailable; retrying");
                    tokio::time::sleep(config.retry).await;
                }
            }
        }
    }))
}

async fn apply(guard: &Guard, page: Page, cursor: &mut i64) {
    for entry in &page.revocations {
        guard.revoke_jti(&entry.jti, entry.exp).await;
    }
    *cursor = page.next.max(*cursor);
}

async fn poll(
    client: &reqwest::Client,
    config: &FeedConfig,
    after: i64,
    wait: Duration,
) -> Result<Page, FeedError> {
    let (id, secret) = crate::basic_credentials(&config.client_id, &config.client_secret);
    let response = client
        .get(format!(
            "{}?after={after}&wait={}",
            config.url,
            wait.as_secs()
        ))
        .basic_auth(id, Some(secret))
        .timeout(wait + Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| FeedError::Unreachable(e.without_url().to_string()))?;
    match response.status().as_u16() {
        200 => response
            .json::<Page>()
            .await
            .map_err(|e| FeedError::Unreachable(e.without_url().to_string())),
        401 => Err(FeedError::Unauthorized),
        status => Err(FeedError::Unreachable(format!("HTTP {status}"))),
    }
}
