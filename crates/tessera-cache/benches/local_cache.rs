//! The in-process validation cache (`LocalCache`): lookups and fills in a cache holding
//! 100,000 realistic entries.
//!
//!     cargo bench -p tessera-cache --bench local_cache
//!
//! - `get_hit`: a held entry (hash lookup, deadline and revocation checks, unpacking the
//!   `ActiveToken` the caller gets).
//! - `get_miss`: an unknown token hash.
//! - `put`: replacing a held entry (packing, insertion, the revocation re-check).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use tessera_cache::LocalCache;
use tessera_core::introspection::{ActiveToken, ValidationCache};
use tessera_core::secret::SecretHash;

const HELD: usize = 100_000;

fn token(i: usize) -> ActiveToken {
    ActiveToken {
        scope: "orders:read orders:write".to_owned(),
        client_id: format!("svc-{:04}", i % 1000),
        sub: format!("svc-{:04}", i % 1000),
        aud: "https://api.example.com".to_owned(),
        iss: "https://auth.example.com".to_owned(),
        exp: 1_900_000_000,
        iat: 1_899_999_100,
        nbf: 1_899_999_100,
        jti: Some(format!("{i:022}")),
        token_type: "Bearer".to_owned(),
    }
}

fn bench(c: &mut Criterion) {
    // Room for more than HELD: every filled entry stays.
    let cache = LocalCache::new(2 * HELD as u64, Duration::from_secs(300));
    let keys: Vec<SecretHash> = (0..HELD)
        .map(|i| SecretHash::of(&format!("token-{i}")))
        .collect();
    let tokens: Vec<ActiveToken> = (0..HELD).map(token).collect();
    // No method of LocalCache awaits anything: polling once completes it.
    for (key, token) in keys.iter().zip(&tokens) {
        cache
            .put(key, token, Duration::from_secs(300))
            .now_or_never()
            .expect("put does not wait");
    }
    for key in keys.iter().step_by(997) {
        assert!(
            cache.get(key).now_or_never().flatten().is_some(),
            "filled entries are held"
        );
    }
    let unknown = SecretHash::of("never put");

    let mut group = c.benchmark_group("local_cache");
    let mut i = 0;
    group.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % HELD;
            cache.get(black_box(&keys[i])).now_or_never().flatten()
        })
    });
    group.bench_function("get_miss", |b| {
        b.iter(|| cache.get(black_box(&unknown)).now_or_never().flatten())
    });
    group.bench_function("put", |b| {
        b.iter(|| {
            i = (i + 7919) % HELD;
            cache
                .put(&keys[i], black_box(&tokens[i]), Duration::from_secs(300))
                .now_or_never()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
