//! JWS Compact Serialization of a JWT (RFC 7515 §7.1, RFC 7519 §7.1).
//!
//! Encoding is a few lines over `serde_json` and base64url; signing is delegated to the
//! [`SigningKey`] port so that the hot path uses a key parsed once, not per token.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::keys::{SignError, SigningKey};

/// The JOSE header of a token Tessera signs.
#[derive(Debug, Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Encodes and signs `claims` as a JWT with header `typ` (e.g. `at+jwt`, RFC 9068 §2.1).
pub fn sign<C: Serialize>(
    key: &dyn SigningKey,
    typ: &str,
    claims: &C,
) -> Result<String, SignError> {
    let header = Header {
        alg: key.alg(),
        typ,
        kid: key.kid(),
    };
    let header = serde_json::to_vec(&header).map_err(|_| SignError)?;
    let claims = serde_json::to_vec(claims).map_err(|_| SignError)?;
    let mut out = String::with_capacity(64 + claims.len() * 4 / 3 + 360);
    URL_SAFE_NO_PAD.encode_string(header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut out);
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    Ok(out)
}
