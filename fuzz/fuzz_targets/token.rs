//! The token endpoint, `POST /api/v2/auth/token`: the strict form reader, HTTP Basic client
//! authentication and the grant dispatch (authorization code, client credentials, refresh),
//! through the real router over SQLite.
//!
//! Input: one flag byte, then (when a flag asks for it) a header line ending in `\n`, then
//! the form body. Flags: bits 0-1 the content type (form, form with charset, none, the
//! header line); bits 2-3 the `Authorization` header (none, `Basic` of the header line
//! base64-encoded, the header line as it is, `basic` lower-case); bit 4 `GET` instead of
//! `POST`. Placeholders in the body (`@CODE@`, `@WEBCODE@`, `@RT@`, `@UAT@`, `@AT@`) become
//! live secrets (see `tessera_fuzz::server`).
//!
//! Asserts: never a 5xx; always a JSON object, never cached; errors carry a known code and a
//! description; a form that parses re-serialises to the same pairs; a 200 is a Bearer token
//! response, and only a request holding a secret (a live code or refresh token from the
//! harness, or a client secret) ever gets one.
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use tessera_fuzz::checks::{header_value, holds_secret, oauth_json, params_roundtrip};
use tessera_fuzz::server::{SECRET, test_server};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let content_type = flags & 0b11;
    let auth = (flags >> 2) & 0b11;
    let (line, body) = if content_type == 3 || auth != 0 {
        tessera_fuzz::split_once(rest, b'\n')
    } else {
        (&[][..], rest)
    };
    let server = test_server();
    tessera_fuzz::block_on(async {
        let (body, expanded) = server.expand(body).await;
        let mut request = Request::builder()
            .method(if flags & 0x10 != 0 {
                Method::GET
            } else {
                Method::POST
            })
            .uri("/api/v2/auth/token");
        let form = "application/x-www-form-urlencoded";
        match content_type {
            0 => request = request.header(header::CONTENT_TYPE, form),
            1 => request = request.header(header::CONTENT_TYPE, format!("{form}; charset=UTF-8")),
            2 => {}
            _ => {
                if let Some(v) = header_value(line) {
                    request = request.header(header::CONTENT_TYPE, v);
                }
            }
        }
        let basic = |scheme: &str| format!("{scheme} {}", STANDARD.encode(line));
        let authorization = match auth {
            1 => header_value(basic("Basic").as_bytes()),
            2 => header_value(line),
            3 => header_value(basic("basic").as_bytes()),
            _ => None,
        };
        if let Some(v) = authorization {
            request = request.header(header::AUTHORIZATION, v);
        }
        let params = params_roundtrip(&body);
        let request = request.body(Body::from(body)).expect("a request");
        let answer = server.send(request).await;
        let json = oauth_json(&answer);
        if answer.status.is_success() {
            assert_eq!(answer.status.as_u16(), 200);
            assert_eq!(
                json.get("token_type").and_then(|v| v.as_str()),
                Some("Bearer")
            );
            let token = json.get("access_token").and_then(|v| v.as_str());
            assert!(
                token.is_some_and(|t| t.split('.').count() == 3),
                "no JWT access token in {json:?}"
            );
            assert!(
                json.get("expires_in")
                    .and_then(|v| v.as_u64())
                    .is_some_and(|s| s > 0)
            );
            // Who gets a token at all: a request that held a live secret minted by the
            // harness, or the client secret (in the form, or anywhere in the Basic line,
            // however it was percent-encoded there).
            let form_secret = params
                .as_ref()
                .and_then(|p| p.get("client_secret").ok().flatten())
                == Some(SECRET);
            assert!(
                expanded > 0 || form_secret || holds_secret(line),
                "a token for a request holding no secret: {json:?}"
            );
        }
    });
});
