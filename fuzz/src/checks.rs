//! Invariants the targets assert, and small helpers to build requests from fuzz input.

use axum::http::{HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use tessera_core::params::Params;

use crate::server::{Answer, SECRET};

/// The error codes an OAuth JSON endpoint may answer with a 4xx (RFC 6749 §5.2, RFC 8707
/// §2 `invalid_target`, RFC 8628's `slow_down` for the token endpoint's rate limit).
pub const CLIENT_ERROR_CODES: [&str; 8] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "slow_down",
];

/// The RFC 7636 S256 challenge of `verifier`.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A parsed parameter set re-serialises to a string that parses back to the same set
/// (names, values and order), and parsing is deterministic.
pub fn params_roundtrip(input: &[u8]) -> Option<Params> {
    let parsed = Params::parse(input).ok()?;
    assert_eq!(
        Params::parse(input).ok().as_ref(),
        Some(&parsed),
        "parsing is deterministic"
    );
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in parsed.pairs() {
        serializer.append_pair(name, value);
    }
    let serialized = serializer.finish();
    let reparsed = Params::parse(serialized.as_bytes())
        .unwrap_or_else(|e| panic!("re-serialised form {serialized:?} no longer parses: {e}"));
    assert_eq!(
        reparsed.pairs().collect::<Vec<_>>(),
        parsed.pairs().collect::<Vec<_>>(),
        "a form re-serialised as {serialized:?} parses to other pairs"
    );
    Some(parsed)
}

/// Asserts what every answer of an OAuth JSON endpoint (token, introspection) must be:
/// a 2xx or 4xx, never 5xx; a JSON object body; an error body with a known `error` code and
/// an `error_description`; never cached. Returns the parsed body.
pub fn oauth_json(answer: &Answer) -> serde_json::Map<String, serde_json::Value> {
    let body = String::from_utf8_lossy(&answer.body);
    assert!(
        answer.status.is_success() || answer.status.is_client_error(),
        "status {} (body {body})",
        answer.status
    );
    let content_type = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?} for status {} (body {body})",
        answer.status
    );
    let json: serde_json::Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("body is not JSON ({e}): {body}"));
    let serde_json::Value::Object(object) = json else {
        panic!("body is not a JSON object: {body}");
    };
    assert_eq!(
        answer.headers.get(header::CACHE_CONTROL),
        Some(&HeaderValue::from_static("no-store")),
        "an OAuth answer is never cached (status {})",
        answer.status
    );
    if answer.status.is_client_error() {
        let code = object.get("error").and_then(|v| v.as_str());
        assert!(
            code.is_some_and(|c| CLIENT_ERROR_CODES.contains(&c)),
            "unknown error code in {body}"
        );
        assert!(
            object
                .get("error_description")
                .is_some_and(|v| v.is_string()),
            "an error without description: {body}"
        );
        if answer.status.as_u16() == 401 {
            // RFC 6749 §5.2: only invalid_client is a 401.
            assert_eq!(code, Some("invalid_client"), "401 body {body}");
        }
    }
    object
}

/// Bytes usable in a header value: those `HeaderValue` accepts are kept, others dropped.
pub fn header_value(bytes: &[u8]) -> Option<HeaderValue> {
    HeaderValue::from_bytes(bytes).ok()
}

/// Whether `line` holds [`SECRET`]: as it is, percent-decoded, or base64-encoded after a
/// scheme (`Basic <base64>`).
pub fn holds_secret(line: &[u8]) -> bool {
    let decoded = |bytes: &[u8]| {
        let plus_as_space: Vec<u8> = bytes
            .iter()
            .map(|b| if *b == b'+' { b' ' } else { *b })
            .collect();
        let text: String = url::form_urlencoded::parse(&plus_as_space)
            .flat_map(|(k, v)| [k.into_owned(), v.into_owned()])
            .collect();
        String::from_utf8_lossy(bytes).contains(SECRET) || text.contains(SECRET)
    };
    if decoded(line) {
        return true;
    }
    let text = String::from_utf8_lossy(line);
    text.split_once(' ')
        .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok())
        .is_some_and(|raw| decoded(&raw))
}
