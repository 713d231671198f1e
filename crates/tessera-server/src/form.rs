//! Reading `application/x-www-form-urlencoded` bodies strictly.
//!
//! axum's `Form` replaces invalid UTF-8 and keeps the last of repeated parameters; OAuth
//! needs both refused (RFC 6749 §3.2), so bodies are read here and parsed by
//! `tessera_core::params`.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::LengthLimitError;
use tessera_core::OAuthError;
use tessera_core::params::{Params, ParamsError};
use tower_http::timeout::TimeoutError;

/// The largest request body accepted, in bytes; larger bodies get 413.
pub const MAX_BODY: usize = 64 * 1024;

/// Why a form body was refused.
#[derive(Debug)]
pub enum FormError {
    /// The content type is not `application/x-www-form-urlencoded`.
    ContentType,
    /// The body exceeds [`MAX_BODY`].
    TooLarge,
    /// The client did not send the body in time.
    TimedOut,
    /// The body was cut short or its framing was broken.
    Unreadable,
    /// The body could not be read or parsed.
    Malformed(ParamsError),
}

impl FormError {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TimedOut => StatusCode::REQUEST_TIMEOUT,
            // RFC 6749 §5.2 speaks of 400 for every malformed request.
            Self::ContentType | Self::Unreadable | Self::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The refusal as an OAuth `invalid_request`.
    pub fn to_oauth(&self) -> OAuthError {
        match self {
            Self::ContentType => {
                OAuthError::invalid_request("the body must be application/x-www-form-urlencoded")
            }
            Self::TooLarge => OAuthError::invalid_request("the request body is too large"),
            Self::TimedOut => OAuthError::invalid_request("the request body was not sent in time"),
            Self::Unreadable => OAuthError::invalid_request("the request body could not be read"),
            Self::Malformed(e) => OAuthError::from(e.clone()),
        }
    }
}

/// Whether the body is declared `application/x-www-form-urlencoded` (parameters of the
/// media type, such as `charset`, aside).
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Checks the content type and reads and parses a form body.
pub async fn read_form(headers: &HeaderMap, body: Body) -> Result<Params, FormError> {
    if !is_form(headers) {
        return Err(FormError::ContentType);
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(read_error)?;
    Params::parse(&bytes).map_err(FormError::Malformed)
}

/// Tells an oversized body and a slow one from a broken one, by the error's causes.
fn read_error(e: axum::Error) -> FormError {
    let inner = e.into_inner();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
    while let Some(c) = cause {
        if c.is::<LengthLimitError>() {
            return FormError::TooLarge;
        }
        if c.is::<TimeoutError>() {
            return FormError::TimedOut;
        }
        cause = c.source();
    }
    FormError::Unreadable
}
