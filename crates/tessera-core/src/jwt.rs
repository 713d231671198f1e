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

/// Why a compact JWT was refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts with a JSON header.
    #[error("malformed JWT")]
    Malformed,
    /// The header's `typ` is not the expected one (RFC 8725 §3.11: explicit typing).
    #[error("unexpected JWT type")]
    WrongType,
    /// The signature does not verify under any published key.
    #[error("invalid signature")]
    BadSignature,
}

#[derive(serde::Deserialize)]
struct ReceivedHeader {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
}

/// Verifies the signature of a compact JWT this server issued, with the expected `typ`,
/// and returns its decoded claims. Claims (expiry included) are the caller's to check.
pub fn verify<C: serde::de::DeserializeOwned>(
    keys: &dyn crate::keys::KeyRing,
    typ: &str,
    token: &str,
) -> Result<C, JwtError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed);
    let parsed: ReceivedHeader =
        serde_json::from_slice(&decode(header)?).map_err(|_| JwtError::Malformed)?;
    if parsed.typ.as_deref() != Some(typ) {
        return Err(JwtError::WrongType);
    }
    // The algorithm comes from our own key, never trusted from the header alone
    // (RFC 8725 §3.1): `verify` refuses any alg the key does not sign with.
    let kid = parsed.kid.ok_or(JwtError::BadSignature)?;
    let signing_input = &token[..header.len() + 1 + claims.len()];
    if !keys.verify(
        &kid,
        &parsed.alg,
        signing_input.as_bytes(),
        &decode(signature)?,
    ) {
        return Err(JwtError::BadSignature);
    }
    serde_json::from_slice(&decode(claims)?).map_err(|_| JwtError::Malformed)
}

/// The `kid` in a compact JWT's header, without verifying anything.
pub fn header_kid(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<ReceivedHeader>(&bytes).ok()?.kid
}
