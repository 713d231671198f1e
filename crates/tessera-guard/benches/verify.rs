//! The guard's verification of an RS256 access token, cached and uncached, beside the raw
//! aws-lc-rs verification of the same token (issue 11: uncached validation should approach
//! the verification limit). Every figure comes from the same run, so the noise of a shared
//! machine weighs on all of them alike.
//!
//!     cargo bench -p tessera-guard --bench verify
//!
//! - `verify/guard_cached`: `Guard::verify_token` of a token it holds a result for (SHA-256,
//!   cache read, `exp`, revocation and key re-checks, the claims cloned out).
//! - `verify/guard_uncached`: the same on a guard whose cache (16 entries) is cycled by 512
//!   distinct tokens: every call a miss (header checks, JWKS lookup, `jsonwebtoken::decode`
//!   with signature and claim checks, strict claims, the cache fill and an eviction).
//! - `verify/jsonwebtoken_decode`: `jsonwebtoken::decode` alone, with its `Validation` and
//!   key built beforehand, into `serde_json::Value`.
//! - `verify/raw_components`: aws-lc-rs verifying the signature from the key's (n, e), as
//!   `jsonwebtoken` 11 does on every call.
//! - `verify/raw_parsed_key`: aws-lc-rs verifying with a key parsed once: the floor.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::hint::black_box;

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tessera_guard::Guard;

use common::*;

/// Distinct tokens cycled through the small cache of the uncached case.
const POOL: usize = 512;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (key, jwk) = rsa_key();
    let n = URL_SAFE_NO_PAD
        .decode(jwk.n.as_deref().expect("RSA n"))
        .expect("n");
    let e = URL_SAFE_NO_PAD
        .decode(jwk.e.as_deref().expect("RSA e"))
        .expect("e");
    let server = runtime.block_on(JwksServer::start(vec![jwk.clone()], 3600));

    let cached_guard = guard(&server.url);
    let token = token(&key, &claims());
    runtime
        .block_on(cached_guard.verify_token(&token))
        .expect("the token verifies");

    let mut small = config(&server.url);
    small.cache_capacity = 16;
    let uncached_guard = Guard::new(small).expect("guard");
    let pool: Vec<String> = (0..POOL).map(|_| common::token(&key, &claims())).collect();
    for t in &pool {
        runtime
            .block_on(uncached_guard.verify_token(t))
            .expect("the pool verifies");
    }

    let (message, signature) = token.rsplit_once('.').expect("three parts");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("signature");
    let components = RsaPublicKeyComponents { n: &n, e: &e };
    let parsed = components
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        .expect("public key");
    parsed
        .verify_sig(message.as_bytes(), &signature)
        .expect("the signature verifies");

    let decoding_key = DecodingKey::from_rsa_components(
        jwk.n.as_deref().expect("RSA n"),
        jwk.e.as_deref().expect("RSA e"),
    )
    .expect("decoding key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 60;
    validation.validate_nbf = true;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.required_spec_claims = HashSet::from(["exp", "iss", "aud", "sub"].map(String::from));

    let mut group = c.benchmark_group("verify");
    group.bench_function("guard_cached", |b| {
        b.iter(|| runtime.block_on(cached_guard.verify_token(black_box(&token))))
    });
    let mut i = 0;
    group.bench_function("guard_uncached", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            runtime.block_on(uncached_guard.verify_token(black_box(&pool[i])))
        })
    });
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding_key, &validation)
        })
    });
    group.bench_function("raw_components", |b| {
        b.iter(|| {
            components.verify(
                &RSA_PKCS1_2048_8192_SHA256,
                black_box(message.as_bytes()),
                &signature,
            )
        })
    });
    group.bench_function("raw_parsed_key", |b| {
        b.iter(|| parsed.verify_sig(black_box(message.as_bytes()), &signature))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
