//! The introspection endpoint, `POST /api/v2/auth/introspect` (RFC 7662): the form reader,
//! client authentication, and the handler's look-up of access tokens (Tessera's own JWT
//! verification, the revocation list) and refresh tokens, through the real router.
//!
//! Input: one flag byte, then (when a flag asks for it) a header line ending in `\n`, then
//! the form body. Flags: bits 0-1 the content type (form, form with charset, none, the
//! header line); bits 2-3 the `Authorization` header (none, `svc`'s valid Basic
//! credentials, `Basic` of the header line base64-encoded, the header line as it is).
//! Placeholders in the body (`@AT@`, `@UAT@`, `@RT@`, `@CODE@`, `@WEBCODE@`) become live
//! secrets (see `tessera_fuzz::server`).
//!
//! Asserts: never a 5xx; always a JSON object, never cached; errors carry a known code; a
//! form that parses re-serialises to the same pairs; a 200 goes only to a caller holding a
//! client secret; `active: true` only for a token the harness issued (nothing forged,
//! truncated or altered is ever active), with our issuer and a future `exp`; an inactive
//! answer says nothing but `active: false`.
#![no_main]

use axum::body::Body;
use axum::http::{Request, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use tessera_fuzz::checks::{header_value, holds_secret, oauth_json, params_roundtrip};
use tessera_fuzz::server::{ISSUER, SECRET, test_server};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let content_type = flags & 0b11;
    let auth = (flags >> 2) & 0b11;
    let (line, body) = if content_type == 3 || auth >= 2 {
        tessera_fuzz::split_once(rest, b'\n')
    } else {
        (&[][..], rest)
    };
    let server = test_server();
    tessera_fuzz::block_on(async {
        let (body, _) = server.expand(body).await;
        let mut request = Request::builder()
            .method("POST")
            .uri("/api/v2/auth/introspect");
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
        let authorization = match auth {
            1 => header_value(
                format!("Basic {}", STANDARD.encode(format!("svc:{SECRET}"))).as_bytes(),
            ),
            2 => header_value(format!("Basic {}", STANDARD.encode(line)).as_bytes()),
            3 => header_value(line),
            _ => None,
        };
        let authenticated = authorization.is_some() && (auth == 1 || holds_secret(line));
        if let Some(v) = authorization {
            request = request.header(header::AUTHORIZATION, v);
        }
        let params = params_roundtrip(&body);
        let request = request.body(Body::from(body)).expect("a request");
        let answer = server.send(request).await;
        let json = oauth_json(&answer);
        if !answer.status.is_success() {
            return;
        }
        let form_secret = params
            .as_ref()
            .and_then(|p| p.get("client_secret").ok().flatten())
            == Some(SECRET);
        assert!(
            authenticated || form_secret,
            "an introspection answer for an unauthenticated caller: {json:?}"
        );
        match json.get("active") {
            Some(serde_json::Value::Bool(true)) => {
                let token = params
                    .as_ref()
                    .and_then(|p| p.get("token").ok().flatten())
                    .expect("an active answer for a request with a token");
                assert!(
                    server.was_issued(token),
                    "active: true for a token the server never issued: {token:?} -> {json:?}"
                );
                assert_eq!(json.get("iss").and_then(|v| v.as_str()), Some(ISSUER));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                assert!(
                    json.get("exp")
                        .and_then(|v| v.as_i64())
                        .is_some_and(|exp| exp > now),
                    "active but expired: {json:?}"
                );
                assert!(matches!(
                    json.get("token_type").and_then(|v| v.as_str()),
                    Some("Bearer" | "refresh_token")
                ));
            }
            Some(serde_json::Value::Bool(false)) => {
                assert_eq!(json.len(), 1, "an inactive answer says more: {json:?}");
            }
            other => panic!("no boolean active member ({other:?}) in {json:?}"),
        }
    });
});
