//! The revocation feed: the revocation list, read by cursor, for remote gateways.
//!
//! Gateways that cache validations locally must drop a token as soon as it is revoked. They
//! follow this feed: each call returns the entries after the caller's cursor and the cursor
//! to use next. Only authenticated confidential clients may read it (the `jti`s are not
//! secrets, but which tokens were revoked and when is nobody else's business).

use serde::Serialize;

use crate::client::AuthenticatedClient;
use crate::error::OAuthError;
use crate::revocation::RevokedEntry;
use crate::server::AuthorizationServer;

/// The most entries one page of the feed carries.
pub const PAGE: u32 = 1000;

/// One entry as the feed shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedEntry {
    /// Position in the list.
    pub seq: i64,
    /// The revoked access token's `jti`.
    pub jti: String,
    /// When the token expires; the entry can be forgotten afterwards.
    pub exp: i64,
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedPage {
    /// Entries after the requested cursor, oldest first.
    pub revocations: Vec<FeedEntry>,
    /// The cursor for the next call: the last entry's `seq`, or the requested one if empty.
    pub next: i64,
}

impl From<RevokedEntry> for FeedEntry {
    fn from(e: RevokedEntry) -> Self {
        Self {
            seq: e.seq,
            jti: e.jti,
            exp: e.expires_at.0,
        }
    }
}

/// Reads one page after `after` for an authenticated client.
pub async fn page(
    server: &AuthorizationServer,
    client: &AuthenticatedClient,
    after: i64,
) -> Result<FeedPage, OAuthError> {
    if client.client().is_public() {
        return Err(OAuthError::InvalidClient { basic: true });
    }
    let entries = server
        .ports()
        .revocations
        .revoked_since(after.max(0), PAGE)
        .await?;
    let next = entries.last().map_or(after.max(0), |e| e.seq);
    Ok(FeedPage {
        revocations: entries.into_iter().map(FeedEntry::from).collect(),
        next,
    })
}
