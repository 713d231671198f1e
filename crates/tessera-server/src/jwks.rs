//! The JWK Set endpoint (RFC 7517 §5): public signing keys only.
//!
//! Cacheable for `max-age`, with a strong `ETag` over the document so that verifiers can
//! revalidate cheaply: `If-None-Match` with the current tag gets `304 Not Modified`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::AppState;

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let body = match serde_json::to_vec(&state.server.jwks()) {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let etag = format!(
        "\"{}\"",
        URL_SAFE_NO_PAD.encode(&Sha256::digest(&body)[..16])
    );
    let cache = format!("public, max-age={}", state.jwks_max_age.as_secs());
    // RFC 9110 §13.1.2: a list of tags, or `*`.
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag.as_str()));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if let Ok(value) = HeaderValue::from_str(&cache) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}
