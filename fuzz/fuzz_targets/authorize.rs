//! The authorization endpoint, `GET /api/v2/auth/authorize`: the strict query parser and
//! the validation of the authorization request (client, redirect URI, state, response type,
//! PKCE, scope, resource), through the real router, signed out (the login page) or signed
//! in as `alice` (a code, or the consent page of the third-party client).
//!
//! Input: one flag byte, then the query string (bytes a URI cannot hold are
//! percent-encoded, `%` is left alone so malformed escapes reach the parser). Flags: bit 0
//! sends `alice`'s session cookie, bit 1 an unknown session cookie.
//!
//! Asserts: never a 5xx; only 200 (an HTML page), 303 or 400; a query that parses
//! re-serialises to the same pairs; every redirect goes to a redirect URI registered for the
//! client named in the request (no open redirector, RFC 9700 §4.1.3 and §4.11), carries
//! `iss` (RFC 9207), and carries a code only for a signed-in user; no markup from the
//! request is reflected unescaped (`<x-fuzz`, `x-fuzz="` never appear in a page).
#![no_main]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use tessera_fuzz::checks::params_roundtrip;
use tessera_fuzz::server::{HTTPS_REDIRECT, ISSUER, NATIVE_REDIRECT, REDIRECT, test_server};
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, query)) = data.split_first() else {
        return;
    };
    let server = test_server();
    let mut uri = String::from("/api/v2/auth/authorize?");
    for &b in query {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    let mut request = Request::builder().uri(uri.as_str());
    let signed_in = flags & 1 != 0;
    if signed_in {
        request = request.header(header::COOKIE, server.session_cookie.as_str());
    } else if flags & 2 != 0 {
        request = request.header(header::COOKIE, server.unknown_session_cookie.as_str());
    }
    let Ok(request) = request.body(Body::empty()) else {
        return;
    };
    // What the router's `RawQuery` will hand the parser.
    let raw_query = request.uri().query().unwrap_or_default().to_owned();
    let params = params_roundtrip(raw_query.as_bytes());
    let answer = tessera_fuzz::block_on(server.send(request));
    let body = String::from_utf8_lossy(&answer.body);
    assert!(
        matches!(answer.status.as_u16(), 200 | 303 | 400),
        "status {} for {raw_query:?}: {body}",
        answer.status
    );
    assert!(
        !body.contains("<x-fuzz") && !body.contains("x-fuzz=\""),
        "request markup reflected unescaped for {raw_query:?}"
    );
    if answer.status == StatusCode::SEE_OTHER {
        let location = answer
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("a 303 has a Location");
        let target = Url::parse(location)
            .unwrap_or_else(|e| panic!("Location {location:?} is not absolute: {e}"));
        let client = params
            .as_ref()
            .and_then(|p| p.get("client_id").ok().flatten())
            .expect("a redirect only for a request naming its client");
        let registered: &[&str] = match client {
            "web" => &[REDIRECT, HTTPS_REDIRECT],
            "spa" => &[REDIRECT],
            "partner" => &[REDIRECT, NATIVE_REDIRECT],
            other => panic!("redirect for client {other:?}, which has no redirect URI"),
        };
        assert!(
            registered.iter().any(|r| same_endpoint(r, &target)),
            "redirect to {location:?}, not registered for {client}"
        );
        let pairs: Vec<(String, String)> = target.query_pairs().into_owned().collect();
        assert!(
            pairs.iter().any(|(k, v)| k == "iss" && v == ISSUER),
            "redirect without iss: {location}"
        );
        let has = |name: &str| pairs.iter().any(|(k, _)| k == name);
        assert!(
            has("code") != has("error"),
            "a redirect carries a code or an error: {location}"
        );
        assert!(
            !has("code") || signed_in,
            "a code without a session: {location}"
        );
    }
});

/// Whether `target` is the registered redirect URI `registered` plus response parameters:
/// same scheme, host, path and registered query; any port for a loopback IP (RFC 8252 §7.3).
fn same_endpoint(registered: &str, target: &Url) -> bool {
    let Ok(registered) = Url::parse(registered) else {
        return false;
    };
    let loopback = registered.host_str() == Some("127.0.0.1");
    registered.scheme() == target.scheme()
        && registered.host_str() == target.host_str()
        && (loopback || registered.port() == target.port())
        && registered.path() == target.path()
        && target.username().is_empty()
        && target.password().is_none()
        && target.fragment().is_none()
        && target
            .query()
            .unwrap_or_default()
            .starts_with(registered.query().unwrap_or_default())
}
