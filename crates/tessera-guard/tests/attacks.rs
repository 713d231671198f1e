//! The attack matrix: each forged or broken token is its own test, against a real JWKS.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tessera_core::keys::SigningKey;
use tessera_guard::{GuardError, InvalidReason};

use common::*;

#[tokio::test]
async fn a_valid_rs256_token_is_accepted_with_its_claims() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let claims = guard(&server.url)
        .verify(&bearer(&token(&key, &claims())))
        .await
        .unwrap();
    assert_eq!(claims.sub, "user-42");
    assert_eq!(claims.aud, vec![AUDIENCE.to_owned()]);
    assert!(claims.has_scope("orders:read"));
    assert!(!claims.has_scope("orders"));
}

#[tokio::test]
async fn a_valid_es256_token_is_accepted_when_es256_is_allowed() {
    let (key, jwk) = ec_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut config = config(&server.url);
    config.algorithms = vec!["ES256".to_owned()];
    let guard = tessera_guard::Guard::new(config).unwrap();
    assert!(guard.verify(&bearer(&token(&key, &claims()))).await.is_ok());
}

#[tokio::test]
async fn es256_is_refused_when_only_rs256_is_allowed() {
    let (key, jwk) = ec_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let error = guard(&server.url)
        .verify(&bearer(&token(&key, &claims())))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::Algorithm)));
    assert_eq!(server.fetches(), 0, "refused before any key lookup");
}

#[tokio::test]
async fn alg_none_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let header = json!({ "alg": "none", "typ": "at+jwt", "kid": key.kid() });
    let error = guard(&server.url)
        .verify(&bearer(&forge(&header, &claims(), None)))
        .await;
    assert!(
        matches!(
            error,
            Err(GuardError::InvalidToken(
                InvalidReason::Malformed | InvalidReason::Algorithm
            ))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk.clone()], 300).await;
    let modulus = URL_SAFE_NO_PAD.decode(jwk.n.as_deref().unwrap()).unwrap();
    let guard = guard(&server.url);
    for secret in [serde_json::to_vec(&jwk).unwrap(), modulus] {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(key.kid().to_owned());
        let forged =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
        let error = guard.verify(&bearer(&forged)).await;
        assert_eq!(error, Err(invalid(InvalidReason::Algorithm)));
    }
}

#[tokio::test]
async fn hs256_in_the_allowlist_is_refused_at_construction() {
    let mut config = config("http://127.0.0.1:9/jwks");
    config.algorithms = vec!["RS256".to_owned(), "HS256".to_owned()];
    assert!(tessera_guard::Guard::new(config).is_err());
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let (_, jwk) = rsa_key();
    let (attacker, _) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let error = guard(&server.url)
        .verify(&bearer(&token(&attacker, &claims())))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::UnknownKey)));
}

#[tokio::test]
async fn a_missing_kid_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let header = json!({ "alg": "RS256", "typ": "at+jwt" });
    let error = guard(&server.url)
        .verify(&bearer(&forge(&header, &claims(), Some(&key))))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::UnknownKey)));
}

#[tokio::test]
async fn a_kid_with_path_and_sql_characters_is_only_looked_up() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let guard = guard(&server.url);
    for kid in [
        "../../../../etc/passwd",
        "x' OR '1'='1' --",
        "/jwks?kid=1",
        "%2e%2e%2f",
        "\u{0}",
    ] {
        let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": kid });
        let error = guard
            .verify(&bearer(&forge(&header, &claims(), Some(&key))))
            .await;
        assert_eq!(error, Err(invalid(InvalidReason::UnknownKey)), "{kid:?}");
    }
    assert_eq!(server.other_requests(), 0, "the kid never becomes a URL");
    assert!(server.fetches() <= 2, "{} fetches", server.fetches());
}

#[tokio::test]
async fn jku_x5u_and_jwk_headers_are_never_fetched_or_trusted() {
    let (key, jwk) = rsa_key();
    let (attacker, attacker_jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let evil = JwksServer::start(vec![attacker_jwk.clone()], 300).await;
    let guard = guard(&server.url);
    let pointers = |kid: &str| {
        json!({
            "alg": "RS256", "typ": "at+jwt", "kid": kid,
            "jku": evil.url, "x5u": format!("{}/cert.pem", evil.base), "jwk": attacker_jwk,
        })
    };
    // Signed by the attacker, pointing at the attacker's keys: refused.
    let forged = forge(&pointers(attacker.kid()), &claims(), Some(&attacker));
    assert_eq!(
        guard.verify(&bearer(&forged)).await,
        Err(invalid(InvalidReason::UnknownKey))
    );
    // Signed by the attacker under the real kid, with its own embedded jwk: bad signature.
    let forged = forge(&pointers(key.kid()), &claims(), Some(&attacker));
    assert_eq!(
        guard.verify(&bearer(&forged)).await,
        Err(invalid(InvalidReason::Signature))
    );
    // Signed by the real key: judged by the real key alone, the pointers are ignored.
    let genuine = forge(&pointers(key.kid()), &claims(), Some(&key));
    assert!(guard.verify(&bearer(&genuine)).await.is_ok());
    assert_eq!(
        evil.fetches() + evil.other_requests(),
        0,
        "attacker URLs never fetched"
    );
    assert_eq!(server.other_requests(), 0);
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut claims = claims();
    claims["exp"] = json!(now() - 3600);
    claims["iat"] = json!(now() - 7200);
    claims["nbf"] = json!(now() - 7200);
    let error = guard(&server.url)
        .verify(&bearer(&token(&key, &claims)))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::Expired)));
}

#[tokio::test]
async fn expiry_within_leeway_is_accepted() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut claims = claims();
    claims["exp"] = json!(now() - 5);
    assert!(
        guard(&server.url)
            .verify(&bearer(&token(&key, &claims)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut claims = claims();
    claims["nbf"] = json!(now() + 3600);
    let error = guard(&server.url)
        .verify(&bearer(&token(&key, &claims)))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::NotYetValid)));
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut claims = claims();
    claims["iss"] = json!("https://evil.test");
    let error = guard(&server.url)
        .verify(&bearer(&token(&key, &claims)))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::Issuer)));
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let guard = guard(&server.url);
    for aud in [json!("billing-api"), json!(["billing-api", "other"])] {
        let mut claims = claims();
        claims["aud"] = aud;
        let error = guard.verify(&bearer(&token(&key, &claims))).await;
        assert_eq!(error, Err(invalid(InvalidReason::Audience)));
    }
}

#[tokio::test]
async fn a_wrong_typ_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let guard = guard(&server.url);
    for typ in ["JWT", "id_token+jwt", "AT+JWT"] {
        let forged = tessera_core::jwt::sign(&key, typ, &claims()).unwrap();
        assert_eq!(
            guard.verify(&bearer(&forged)).await,
            Err(invalid(InvalidReason::Type))
        );
    }
    let header = json!({ "alg": "RS256", "kid": key.kid() });
    let untyped = forge(&header, &claims(), Some(&key));
    assert_eq!(
        guard.verify(&bearer(&untyped)).await,
        Err(invalid(InvalidReason::Type))
    );
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let genuine = token(&key, &claims());
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("orders:read orders:write admin");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    let error = guard(&server.url).verify(&bearer(&tampered)).await;
    assert_eq!(error, Err(invalid(InvalidReason::Signature)));
}

#[tokio::test]
async fn a_truncated_signature_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let guard = guard(&server.url);
    let genuine = token(&key, &claims());
    let (signed, signature) = genuine.rsplit_once('.').unwrap();
    // Fewer signature bytes, still well-formed base64url: the signature check refuses.
    let bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let shorter = format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 16])
    );
    let error = guard.verify(&bearer(&shorter)).await;
    assert_eq!(error, Err(invalid(InvalidReason::Signature)));
    // Characters cut mid-byte: refused as malformed or as a bad signature.
    let cut = &genuine[..genuine.len() - 3];
    let error = guard.verify(&bearer(cut)).await;
    assert!(
        matches!(
            error,
            Err(GuardError::InvalidToken(
                InvalidReason::Signature | InvalidReason::Malformed
            ))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_empty_signature_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let genuine = token(&key, &claims());
    let unsigned = &genuine[..=genuine.rfind('.').unwrap()];
    let error = guard(&server.url).verify(&bearer(unsigned)).await;
    assert!(
        matches!(
            error,
            Err(GuardError::InvalidToken(
                InvalidReason::Signature | InvalidReason::Malformed
            ))
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_string_typed_exp_is_refused_not_skipped() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut claims = claims();
    claims["exp"] = json!((now() + 600).to_string());
    let error = guard(&server.url)
        .verify(&bearer(&token(&key, &claims)))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::Claims)));
}

#[tokio::test]
async fn ill_typed_or_missing_required_claims_are_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let guard = guard(&server.url);
    let cases = [
        ("iat", json!("now")),
        ("nbf", json!("0")),
        ("sub", json!(42)),
        ("jti", json!(null)),
        ("client_id", json!(["a"])),
        ("scope", json!(7)),
    ];
    for (name, value) in cases {
        let mut claims = claims();
        claims[name] = value;
        let error = guard.verify(&bearer(&token(&key, &claims))).await;
        assert_eq!(error, Err(invalid(InvalidReason::Claims)), "{name}");
    }
    for name in ["exp", "iat", "sub", "jti", "client_id", "iss", "aud"] {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(name);
        let error = guard.verify(&bearer(&token(&key, &claims))).await;
        assert!(error.is_err(), "{name} missing");
    }
}

#[tokio::test]
async fn a_crit_header_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": key.kid(), "crit": ["exp"] });
    let error = guard(&server.url)
        .verify(&bearer(&forge(&header, &claims(), Some(&key))))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::Critical)));
}

#[tokio::test]
async fn a_non_bearer_scheme_is_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let error = guard(&server.url)
        .verify(&format!("Basic {}", token(&key, &claims())))
        .await;
    assert_eq!(error, Err(invalid(InvalidReason::Malformed)));
}
