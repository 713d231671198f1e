//! The token endpoint, `POST /api/v2/auth/token` (RFC 6749 §3.2).
//!
//! Thin: read the form and the Basic credentials, make one core call, and answer with the
//! token response (RFC 6749 §5.1) or the error (§5.2), never cached.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::percent_decode_str;
use tessera_core::OAuthError;

use crate::AppState;
use crate::error::ApiError;
use crate::form::read_form;

/// Handles a token request.
pub async fn token(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let params = match read_form(&parts.headers, body).await {
        Ok(p) => p,
        Err(e) => return ApiError::with_status(e.to_oauth(), e.status()).into_response(),
    };
    let basic = match basic_credentials(&parts.headers) {
        Ok(b) => b,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match state.server.token(&params, basic).await {
        Ok(issued) => {
            let grant = params.get("grant_type").ok().flatten().unwrap_or_default();
            metrics::counter!("tessera_tokens_issued_total", "grant" => grant.to_owned())
                .increment(1);
            let mut response = Json(issued).into_response();
            // RFC 6749 §5.1: the response MUST NOT be cached.
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Decodes `Authorization: Basic` client credentials (RFC 6749 §2.3.1): base64 of
/// `urlencode(id) ":" urlencode(secret)`. Other schemes are not client authentication here.
pub(crate) fn basic_credentials(
    headers: &HeaderMap,
) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = OAuthError::InvalidClient { basic: true };
    let value = value.to_str().map_err(|_| malformed)?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || OAuthError::InvalidClient { basic: true };
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| malformed())
    };
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        // id "a b", secret "p:%" encoded per RFC 6749 §2.3.1 as "a+b:p%3A%25".
        let h = header(&format!("Basic {}", STANDARD.encode("a+b:p%3A%25")));
        assert_eq!(
            basic_credentials(&h).unwrap(),
            Some(("a b".to_owned(), "p:%".to_owned()))
        );
    }

    #[test]
    fn malformed_basic_is_invalid_client_and_other_schemes_are_ignored() {
        assert!(basic_credentials(&header("Basic !!!")).is_err());
        assert!(
            basic_credentials(&header(&format!("Basic {}", STANDARD.encode("nocolon")))).is_err()
        );
        assert_eq!(basic_credentials(&header("Bearer abc")).unwrap(), None);
        assert_eq!(basic_credentials(&HeaderMap::new()).unwrap(), None);
    }
}
