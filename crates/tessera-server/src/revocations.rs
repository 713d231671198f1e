//! The revocation feed, `GET /api/v2/auth/revocations?after=SEQ&wait=SECONDS`.
//!
//! Remote gateways follow the revocation list with a cursor: each answer carries the
//! entries after `after` and the `next` cursor. With `wait`, an empty answer is held back
//! (long poll, at most 30 s) until something is revoked, so a follower learns of a
//! revocation within one list poll of this server without hammering it. HTTP Basic client
//! authentication (a GET has no form body for credentials).

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tessera_core::OAuthError;
use tessera_core::params::Params;
use tessera_core::revocation_feed;

use crate::AppState;
use crate::error::ApiError;
use crate::no_store;
use crate::token::basic_credentials;

/// The longest a request may wait for a revocation.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How often a waiting request looks at the list again.
const POLL: Duration = Duration::from_millis(100);

/// Handles a feed request.
pub async fn feed(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    match answer(&state, &headers, query.as_deref().unwrap_or_default()).await {
        Ok(page) => no_store(Json(page)),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    query: &str,
) -> Result<revocation_feed::FeedPage, OAuthError> {
    let client = state
        .server
        .authenticate_basic(basic_credentials(headers)?)
        .await?;
    let params = Params::parse(query.as_bytes())?;
    let number = |name: &'static str| -> Result<u64, OAuthError> {
        params
            .get(name)?
            .map(str::parse::<u64>)
            .transpose()
            .map_err(|_| {
                OAuthError::invalid_request("after and wait must be non-negative integers")
            })
            .map(Option::unwrap_or_default)
    };
    let after = i64::try_from(number("after")?).unwrap_or(i64::MAX);
    let wait = Duration::from_secs(number("wait")?).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    loop {
        let page = revocation_feed::page(&state.server, &client, after).await?;
        if !page.revocations.is_empty() || Instant::now() >= deadline {
            return Ok(page);
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
