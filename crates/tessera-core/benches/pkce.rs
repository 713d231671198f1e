//! PKCE (RFC 7636): the challenge check at the authorization endpoint and the verifier check
//! at code exchange.
//!
//!     cargo bench -p tessera-core --bench pkce

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use tessera_core::pkce::CodeChallenge;

fn bench(c: &mut Criterion) {
    // RFC 7636 Appendix B's verifier.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let stored = CodeChallenge::parse(Some(&challenge), Some("S256")).expect("valid challenge");
    let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx";
    assert!(stored.verify(verifier).is_ok());
    assert!(stored.verify(wrong).is_err());

    let mut group = c.benchmark_group("pkce");
    group.bench_function("parse_challenge", |b| {
        b.iter(|| CodeChallenge::parse(Some(black_box(&challenge)), Some("S256")))
    });
    group.bench_function("verify_match", |b| {
        b.iter(|| stored.verify(black_box(verifier)).is_ok())
    });
    group.bench_function("verify_mismatch", |b| {
        b.iter(|| stored.verify(black_box(wrong)).is_err())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
