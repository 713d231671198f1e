//! JWT assembly and RS256 signing of an access token (issue 11).
//!
//!     cargo bench -p tessera-core --bench jwt_sign
//!
//! - `jwt_sign/assembly`: `AccessTokenClaims::sign` with a signer that returns a fixed
//!   256-byte signature: header and claims to JSON, base64url, concatenation.
//! - `jwt_sign/rs256`: the same with an RSA-2048 key pair parsed once and kept in memory,
//!   as tessera-store's `KeyPairSigner` holds it (aws-lc-rs, PKCS#1 v1.5 SHA-256).
//! - `jwt_sign/rs256_raw`: the bare aws-lc-rs signature of a message of the same length:
//!   the floor, so `rs256 - rs256_raw` is Tessera's own share.
//! - `jwt_sign/id_token_rs256`: an OpenID Connect ID token (profile and email claims, the
//!   `at_hash` of the access token) signed the same way: what `openid` adds to a code
//!   exchange or a refresh, beside the access token.

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::access_token::AccessTokenClaims;
use tessera_core::id_token::{self, IdTokenClaims, UserClaims};
use tessera_core::keys::{SignError, SigningKey};

/// An RSA key pair parsed once, signing like tessera-store's `KeyPairSigner`.
struct Rs256 {
    pair: RsaKeyPair,
    rng: SystemRandom,
}

impl SigningKey for Rs256 {
    fn kid(&self) -> &str {
        "k-2026-11-27-1"
    }
    fn alg(&self) -> &'static str {
        "RS256"
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .map_err(|_| SignError)?;
        Ok(signature)
    }
}

/// No cryptography: isolates the assembly of the token.
struct Fixed;

impl SigningKey for Fixed {
    fn kid(&self) -> &str {
        "k-2026-11-27-1"
    }
    fn alg(&self) -> &'static str {
        "RS256"
    }
    fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(vec![0x5a; 256])
    }
}

/// A client-credentials access token as Tessera issues it.
fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://auth.example.com".into(),
        sub: "svc-0042".into(),
        aud: "https://api.example.com".into(),
        exp: 1_900_000_900,
        iat: 1_900_000_000,
        nbf: 1_900_000_000,
        jti: "Yp1c0Q7mV9sKxA2bH4eR8w".into(),
        client_id: "svc-0042".into(),
        scope: "orders:read orders:write".into(),
        roles: None,
        auth_time: None,
    }
}

fn bench(c: &mut Criterion) {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key pair");
    let rs256 = Rs256 {
        pair,
        rng: SystemRandom::new(),
    };
    let claims = claims();
    let token = claims.sign(&rs256).expect("signs");
    let signing_input_len = token.rfind('.').expect("three parts");
    let message = vec![b'a'; signing_input_len];

    let id_claims = |access_token: &str| IdTokenClaims {
        iss: "https://auth.example.com".into(),
        sub: "usr_Yp1c0Q7mV9sKxA2bH4eR8w".into(),
        aud: "web-0042".into(),
        exp: 1_900_000_900,
        iat: 1_900_000_000,
        auth_time: 1_899_999_000,
        nonce: Some("n-0S6_WzA2Mj".into()),
        azp: "web-0042".into(),
        at_hash: id_token::at_hash(access_token),
        user: UserClaims {
            name: Some("Olivia Example".into()),
            preferred_username: Some("olivia".into()),
            email: Some("olivia@example.com".into()),
            email_verified: Some(true),
        },
    };

    let mut group = c.benchmark_group("jwt_sign");
    group.bench_function("assembly", |b| {
        b.iter(|| black_box(&claims).sign(&Fixed).expect("signs"))
    });
    group.bench_function("rs256", |b| {
        b.iter(|| black_box(&claims).sign(&rs256).expect("signs"))
    });
    group.bench_function("rs256_raw", |b| {
        b.iter(|| rs256.sign(black_box(&message)).expect("signs"))
    });
    group.bench_function("id_token_rs256", |b| {
        b.iter(|| id_claims(black_box(&token)).sign(&rs256).expect("signs"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
