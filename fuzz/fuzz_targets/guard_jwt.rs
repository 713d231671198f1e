//! The guard's JWT verification (`tessera_guard::Guard`, RFC 9068 / RFC 8725 checks over
//! `jsonwebtoken`), with a fixed JWK Set (an RS256 and an ES256 test key).
//!
//! Input: one flag byte, then by mode (bits 0-1):
//! - 0: the token, arbitrary bytes (bit 2: as a whole `Authorization` header value, so the
//!   `Bearer` parsing is fuzzed too);
//! - 1, 2: a JOSE header and a claims set (any bytes, split at the first `\n`), signed here
//!   with the RS256 (1) or ES256 (2) test key, so the fuzzer gets past the signature to the
//!   header and claims checks;
//! - 3: a claims set (any bytes) under a valid ES256 `at+jwt` header.
//!
//! Asserts: no panic; an accepted token is signed by a test key (checked here with aws-lc-rs,
//! apart from the guard), its header names an allowed `alg`, `typ: at+jwt`, the `kid` of the
//! key that signed it and no `crit`; its claims name our issuer and audience and are within
//! `exp`/`nbf` (with the leeway).
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tessera_fuzz::guard::{LEEWAY, test_guard};
use tessera_fuzz::keys::{AUDIENCE, Alg, EC_KID, ISSUER, test_keys};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let keys = test_keys();
    let guard = test_guard();
    let token = match flags & 0b11 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        mode @ (1 | 2) => {
            let (header, payload) = tessera_fuzz::split_once(rest, b'\n');
            let alg = if mode == 1 { Alg::Rs256 } else { Alg::Es256 };
            keys.sign(alg, header, payload)
        }
        _ => {
            let header = format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{EC_KID}"}}"#);
            keys.sign(Alg::Es256, header.as_bytes(), rest)
        }
    };
    let header_mode = flags & 0b111 == 0b100;
    let verified = tessera_fuzz::block_on(async {
        if header_mode {
            guard.verify(&token).await
        } else {
            guard.verify_token(&token).await
        }
    });
    let Ok(claims) = verified else {
        return;
    };
    // The compact JWS itself: in header mode, what follows the scheme (as the guard reads it).
    let jws = if header_mode {
        token
            .split_once(' ')
            .map(|(_, t)| t.trim_matches(' '))
            .unwrap_or_default()
            .to_owned()
    } else {
        token.clone()
    };
    let signer = [Alg::Rs256, Alg::Es256]
        .into_iter()
        .find(|alg| keys.signed_by(*alg, &jws))
        .unwrap_or_else(|| panic!("accepted a token no test key signed: {jws:?}"));
    let header: serde_json::Value = jws
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice(&h).ok())
        .unwrap_or_else(|| panic!("accepted a token whose header is not JSON: {jws:?}"));
    assert_eq!(header["alg"], signer.name(), "header {header}");
    assert_eq!(header["kid"], signer.kid(), "header {header}");
    assert_eq!(header["typ"], "at+jwt", "header {header}");
    assert!(header.get("crit").is_none(), "header {header}");
    assert_eq!(claims.iss, ISSUER, "{claims:?}");
    assert!(claims.aud.iter().any(|a| a == AUDIENCE), "{claims:?}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let leeway = LEEWAY.as_secs() as i64;
    assert!(claims.exp >= now - leeway, "accepted expired: {claims:?}");
    assert!(
        claims.nbf.is_none_or(|nbf| nbf <= now + leeway),
        "accepted before nbf: {claims:?}"
    );
});
