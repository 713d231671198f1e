//! The JWK Set endpoint (RFC 7517 §5): public signing keys only.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// `GET /.well-known/jwks.json`, cacheable for the configured max-age.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.server.jwks()).into_response();
    let cache = format!("public, max-age={}", state.jwks_max_age.as_secs());
    if let Ok(value) = HeaderValue::from_str(&cache) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
