//! Client authentication's own work: the presented secret's SHA-256 compared in constant
//! time with the stored hash (`SecretHash::matches`), for a right and a wrong secret. The
//! client lookup is the store's (and the client cache's) and is not measured here.
//!
//!     cargo bench -p tessera-core --bench client_auth

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::random::SecureRandom;
use tessera_core::secret::{self, SecretHash};

/// A deterministic stand-in for the CSPRNG: the secret's shape is what matters here.
struct Counter;

impl SecureRandom for Counter {
    fn fill(&self, bytes: &mut [u8]) {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i % 251).unwrap_or(0).wrapping_mul(37);
        }
    }
}

fn bench(c: &mut Criterion) {
    let presented = secret::mint(&Counter, "tss_");
    let stored = SecretHash::of(&presented);
    let mut wrong = presented.clone();
    wrong.pop();
    wrong.push('~');
    assert!(stored.matches(&presented));
    assert!(!stored.matches(&wrong));

    let mut group = c.benchmark_group("client_auth");
    group.bench_function("secret_match", |b| {
        b.iter(|| stored.matches(black_box(&presented)))
    });
    group.bench_function("secret_mismatch", |b| {
        b.iter(|| stored.matches(black_box(&wrong)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
