//! The introspection endpoint, `POST /api/v2/auth/introspect` (RFC 7662).
//!
//! Thin: read the form and the Basic credentials, make one core call, answer the JSON.
//! An unauthenticated caller gets `401 invalid_client` and learns nothing about the token.

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use tessera_core::introspection::{CacheTier, Source};

use crate::AppState;
use crate::error::ApiError;
use crate::form::read_form;
use crate::no_store;
use crate::token::basic_credentials;

/// Handles an introspection request.
pub async fn introspect(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let params = match read_form(&parts.headers, body).await {
        Ok(p) => p,
        Err(e) => return ApiError::with_status(e.to_oauth(), e.status()).into_response(),
    };
    let basic = match basic_credentials(&parts.headers) {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match state.server.introspect(&params, basic).await {
        Ok((answer, source)) => {
            let (outcome, tier) = match source {
                Source::Cache(CacheTier::Local) => ("hit", "local"),
                Source::Cache(CacheTier::Shared) => ("hit", "shared"),
                Source::Validated => ("miss", "none"),
            };
            metrics::counter!("tessera_introspection_cache_total", "outcome" => outcome, "tier" => tier)
                .increment(1);
            let active = if answer.active { "true" } else { "false" };
            metrics::counter!("tessera_introspections_total", "active" => active).increment(1);
            no_store(Json(answer))
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
