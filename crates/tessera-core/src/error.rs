//! Errors, mapped to RFC 6749 §5.2 codes in one place.
//!
//! Descriptions are fixed strings chosen by the server: they never echo a parameter value,
//! so a code, secret or token can never travel back in an error body or a log line.

use std::borrow::Cow;

/// An OAuth 2.0 error as the token endpoint reports it (RFC 6749 §5.2).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A required parameter is missing, repeated, malformed or unsupported.
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// Client authentication failed; `basic` records whether HTTP Basic was attempted,
    /// which obliges a `WWW-Authenticate` challenge (RFC 6749 §5.2).
    #[error("invalid_client")]
    InvalidClient {
        /// The client tried the `Authorization: Basic` header.
        basic: bool,
    },
    /// The grant (code) is invalid, expired, used, or bound to another client or redirect URI.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// The authenticated client may not use this grant type.
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(&'static str),
    /// The grant type is not one this server supports.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// The requested scope is unknown, malformed or beyond what the client may ask for.
    #[error("invalid_scope: {0}")]
    InvalidScope(Cow<'static, str>),
    /// The requested resource (audience) is not valid for this client (RFC 8707 §2).
    #[error("invalid_target: {0}")]
    InvalidTarget(&'static str),
    /// A backing service (the database) cannot be reached right now; retrying later may
    /// succeed (RFC 6749 §4.1.2.1 `temporarily_unavailable`, answered with 503).
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The client made more token requests than its rate limit allows (answered with 429 and
    /// `Retry-After`). `slow_down` is the token-endpoint error registered for "you are asking
    /// too often" (RFC 8628 §3.5, IANA OAuth Extensions Error registry); unlike
    /// `temporarily_unavailable` (a 503 here, for a database outage) it puts the cause on
    /// the client, not the server.
    #[error("slow_down")]
    SlowDown {
        /// How long the client should wait, in whole seconds.
        retry_after: std::time::Duration,
    },
    /// An internal failure; the cause is logged by the adapter and never shown to the caller.
    #[error("server_error")]
    ServerError(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl OAuthError {
    /// The RFC 6749 §5.2 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient { .. } => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::TemporarilyUnavailable(_) => "temporarily_unavailable",
            Self::SlowDown { .. } => "slow_down",
            Self::ServerError(_) => "server_error",
        }
    }

    /// A human-readable `error_description` that never contains caller-supplied values.
    pub fn description(&self) -> Cow<'static, str> {
        match self {
            Self::InvalidRequest(d) | Self::InvalidScope(d) => d.clone(),
            Self::InvalidClient { .. } => Cow::Borrowed("client authentication failed"),
            Self::InvalidGrant(d) | Self::UnauthorizedClient(d) | Self::InvalidTarget(d) => {
                Cow::Borrowed(d)
            }
            Self::UnsupportedGrantType => Cow::Borrowed("the grant_type is not supported"),
            Self::TemporarilyUnavailable(_) => {
                Cow::Borrowed("the service is temporarily unavailable; try again shortly")
            }
            Self::SlowDown { .. } => Cow::Borrowed(
                "too many token requests from this client; retry after the time in Retry-After",
            ),
            Self::ServerError(_) => Cow::Borrowed("the server could not complete the request"),
        }
    }

    /// The HTTP status: 401 for `invalid_client`, 429 for `slow_down`, 503 for
    /// `temporarily_unavailable`, 500 for internal failures, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidClient { .. } => 401,
            Self::TemporarilyUnavailable(_) => 503,
            Self::SlowDown { .. } => 429,
            Self::ServerError(_) => 500,
            _ => 400,
        }
    }

    /// Shorthand for a fixed `invalid_request` description.
    pub fn invalid_request(description: &'static str) -> Self {
        Self::InvalidRequest(Cow::Borrowed(description))
    }
}

/// A failure of a storage adapter. Contracts such as "already used" are not errors: they
/// are part of each port method's return type.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with the same identity already exists.
    #[error("a record with this identity already exists")]
    Conflict,
    /// The backend cannot be reached (connection refused, pool exhausted); transient.
    #[error("storage backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend failed (connection, query, corrupt row); the source says how.
    #[error("storage backend failure")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_) => Self::TemporarilyUnavailable(Box::new(e)),
            _ => Self::ServerError(Box::new(e)),
        }
    }
}
