//! The revocation endpoint, `POST /api/v2/auth/revoke` (RFC 7009).
//!
//! Thin: read the form and the Basic credentials, make one core call. Whatever the token
//! was, a request from an authenticated client is answered 200 with an empty body
//! (RFC 7009 §2.2), so the endpoint cannot be used to probe tokens.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;
use crate::form::read_form;
use crate::no_store;
use crate::token::basic_credentials;

/// Handles a revocation request.
pub async fn revoke(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let params = match read_form(&parts.headers, body).await {
        Ok(p) => p,
        Err(e) => return ApiError::with_status(e.to_oauth(), e.status()).into_response(),
    };
    let basic = match basic_credentials(&parts.headers) {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match state.server.revoke(&params, basic).await {
        Ok(outcome) => {
            tracing::info!(?outcome, "revocation request");
            no_store(StatusCode::OK)
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
