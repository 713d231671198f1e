//! Why a request was refused, and its RFC 6750 §3 response, in one place.
//!
//! The variants carry enough for logs and tests; the response carries only the generic
//! RFC 6750 error code and description, never which check failed (that would help an
//! attacker probe) and never the token.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The realm named in every challenge (RFC 6750 §3).
const REALM: &str = "tessera";

/// Why a bearer token was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// No `Authorization: Bearer` credential was sent (RFC 6750 §3.1: no error code).
    #[error("no bearer token")]
    MissingToken,
    /// The token is not acceptable; the reason is for logs only.
    #[error("invalid token: {0}")]
    InvalidToken(InvalidReason),
    /// The token is valid but lacks the scope the route requires (RFC 6750 §3.1).
    #[error("insufficient scope: {0} required")]
    InsufficientScope(String),
    /// The keys to verify the token cannot be had: no JWKS was ever fetched, or the last
    /// good one is past the stale limit. The guard fails closed.
    #[error("signing keys unavailable")]
    KeysUnavailable,
    /// Introspection mode: the issuer could not be asked (unreachable, an error answer, or
    /// it refused the guard's own client credentials). The guard fails closed.
    #[error("introspection unavailable")]
    IssuerUnavailable,
    /// The request carries the token in more than one way, or a malformed
    /// `access_token` parameter (RFC 6750 §2, §3.1 `invalid_request`).
    #[error("invalid request")]
    InvalidRequest,
}

/// Which check an invalid token failed (for logs and tests, never sent to the client).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    /// The credential is not a single `Bearer` token of three base64url parts.
    #[error("malformed")]
    Malformed,
    /// The header's `alg` is outside the allowlist or differs from the key's.
    #[error("algorithm not accepted")]
    Algorithm,
    /// The header's `typ` is not the required one (RFC 8725 §3.11).
    #[error("wrong type")]
    Type,
    /// The header has no `kid`, or no published key has it.
    #[error("unknown key")]
    UnknownKey,
    /// The header names critical extensions we do not understand (RFC 7515 §4.1.11).
    #[error("unsupported critical header")]
    Critical,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` is past (with leeway).
    #[error("expired")]
    Expired,
    /// `nbf` is in the future (with leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not contain the configured audience.
    #[error("wrong audience")]
    Audience,
    /// A required claim is missing or has the wrong JSON type.
    #[error("bad claims")]
    Claims,
    /// The token's `jti` was revoked.
    #[error("revoked")]
    Revoked,
    /// Introspection mode: the issuer says the token is not active.
    #[error("inactive")]
    Inactive,
}

impl From<InvalidReason> for GuardError {
    fn from(reason: InvalidReason) -> Self {
        Self::InvalidToken(reason)
    }
}

impl GuardError {
    /// The HTTP status of this refusal (RFC 6750 §3.1).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            // The token may well be good; we cannot tell, so we refuse without blaming it.
            Self::KeysUnavailable | Self::IssuerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` challenge of this refusal, if any (RFC 6750 §3).
    pub fn challenge(&self) -> Option<String> {
        match self {
            // RFC 6750 §3.1: a request without authentication gets no error code.
            Self::MissingToken => Some(format!("Bearer realm=\"{REALM}\"")),
            Self::InvalidToken(_) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", \
                 error_description=\"The access token is invalid\""
            )),
            Self::InsufficientScope(scope) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", \
                 error_description=\"The access token lacks a required scope\", \
                 scope=\"{}\"",
                quoted(scope)
            )),
            Self::InvalidRequest => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_request\", \
                 error_description=\"The request is malformed\""
            )),
            Self::KeysUnavailable | Self::IssuerUnavailable => None,
        }
    }
}

/// Keeps a value inside a quoted-string: scope tokens (RFC 6749 §3.3) never contain `"` or
/// `\`, but a misconfigured route must not be able to break the header.
fn quoted(value: &str) -> String {
    value
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

impl IntoResponse for GuardError {
    fn into_response(self) -> Response {
        match &self {
            Self::InvalidToken(reason) => tracing::debug!(%reason, "bearer token refused"),
            Self::KeysUnavailable => tracing::warn!("JWKS unavailable; failing closed"),
            Self::IssuerUnavailable => tracing::warn!("introspection unavailable; failing closed"),
            _ => {}
        }
        let mut response = self.status().into_response();
        if let Some(challenge) = self.challenge()
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}
