//! The guard's JWK Set parsing (`tessera_guard::jwks::usable_keys`, what a JWKS fetch
//! does with the body): arbitrary bytes as the document.
//!
//! Asserts: no panic; a document that is not JSON yields nothing; every key used comes
//! from a member of `keys` that names the same `kid` and `alg`, is a signature key (`use`
//! absent or `sig`), pins an asymmetric algorithm of its key type (never `none` or HMAC,
//! RFC 8725 §3.1-3.2) and carries that type's public parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_guard::jwks::usable_keys;

fuzz_target!(|data: &[u8]| {
    let parsed = usable_keys(data);
    let document: Option<serde_json::Value> = serde_json::from_slice(data).ok();
    let Some(keys) = parsed else {
        return;
    };
    let document = document.expect("keys from a document that is not JSON");
    let members = document["keys"]
        .as_array()
        .expect("keys from a document without a keys array");
    for (kid, alg) in &keys {
        let found = members.iter().any(|jwk| {
            let text = |name: &str| jwk.get(name).and_then(|v| v.as_str());
            let family_ok = match text("kty") {
                Some("RSA") => {
                    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"].contains(&alg.as_str())
                        && text("n").is_some()
                        && text("e").is_some()
                }
                Some("EC") => {
                    matches!(
                        (alg.as_str(), text("crv")),
                        ("ES256", Some("P-256")) | ("ES384", Some("P-384"))
                    ) && text("x").is_some()
                        && text("y").is_some()
                }
                _ => false,
            };
            text("kid") == Some(kid.as_str())
                && text("alg") == Some(alg.as_str())
                && text("use").is_none_or(|u| u == "sig")
                && family_ok
        });
        assert!(
            found,
            "key {kid:?} ({alg}) from no matching member of {document}"
        );
    }
});
