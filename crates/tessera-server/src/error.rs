//! The one place where errors become HTTP responses.
//!
//! OAuth errors become RFC 6749 §5.2 JSON bodies; internal failures are logged here (with
//! their source chain, which never holds request secrets) and reach the caller only as a
//! generic `server_error`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::OAuthError;

/// An error response of the OAuth JSON endpoints.
#[derive(Debug)]
pub struct ApiError {
    error: OAuthError,
    status: Option<StatusCode>,
}

impl ApiError {
    /// Overrides the status the error code implies (413 for an oversized body, 405, 404).
    pub fn with_status(error: OAuthError, status: StatusCode) -> Self {
        Self {
            error,
            status: Some(status),
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            status: None,
        }
    }
}

/// The JSON body of an OAuth error (RFC 6749 §5.2; RFC 6750 §3 reuses its members).
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error: &'a str,
    pub(crate) error_description: &'a str,
}

/// Logs an internal error with its chain of causes.
pub(crate) fn log_internal(error: &OAuthError) {
    if let OAuthError::ServerError(source) | OAuthError::TemporarilyUnavailable(source) = error {
        let mut chain = source.to_string();
        let mut cause = source.source();
        while let Some(c) = cause {
            chain.push_str(": ");
            chain.push_str(&c.to_string());
            cause = c.source();
        }
        tracing::error!(error = %chain, "internal error");
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        log_internal(&self.error);
        let status = self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.error.status()).unwrap_or(StatusCode::BAD_REQUEST)
        });
        let description = self.error.description();
        let body = ErrorBody {
            error: self.error.code(),
            error_description: &description,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        // RFC 6585 §4: a 429 may say how long to wait; whole seconds, at least one.
        if let OAuthError::SlowDown { retry_after } = self.error {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
        }
        // RFC 6749 §5.2: a 401 after HTTP Basic MUST carry a WWW-Authenticate challenge.
        if let OAuthError::InvalidClient { basic: true } = self.error {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="tessera", charset="UTF-8""#),
            );
        }
        response
    }
}
