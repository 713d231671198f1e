//! Memory of the in-process validation cache holding many entries (issue 11's target: one
//! million cached validations in at most 300 MB).
//!
//!     cargo run --release -p tessera-cache --example footprint [ENTRIES] [--churn] [--bare]
//!
//! Fills a `LocalCache` of capacity ENTRIES (default 1,000,000) with as many realistic
//! active-token entries, the shape introspection caches, and prints the process's resident
//! memory before and after (VmRSS from /proc/self/status, Linux only) as JSON, with the bytes
//! per entry held.
//!
//! `--churn` puts twice as many entries as the capacity: the steady state of a full cache,
//! where the eviction policy's own bookkeeping (quick_cache's ghost entries) is included.
//!
//! `--bare` fills a plain moka cache of 32-byte keys and unit values with the same per-entry
//! expiry instead: the share of moka's structure alone, for comparison with the earlier
//! moka-based `LocalCache` (767 MB for one million entries).

use std::time::{Duration, Instant};

use tessera_cache::LocalCache;
use tessera_core::introspection::{ActiveToken, ValidationCache};
use tessera_core::secret::SecretHash;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let entries: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    if std::env::args().any(|a| a == "--bare") {
        return bare(entries).await;
    }
    let puts = if std::env::args().any(|a| a == "--churn") {
        entries * 2
    } else {
        entries
    };
    let cache = LocalCache::new(entries, Duration::from_secs(3600));
    let before = rss_kib();
    let started = Instant::now();
    for i in 0..puts {
        // A client-credentials token as Tessera issues it: 22-character jti, a client id,
        // two scopes, the issuer and one audience.
        let token = ActiveToken {
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
        };
        let key = SecretHash::of(&format!("token-{i}"));
        cache.put(&key, &token, Duration::from_secs(3000)).await;
    }
    let after = rss_kib();
    let held = cache.len();
    println!(
        "{{\"capacity\":{},\"puts\":{},\"held\":{},\"rss_before_mib\":{:.1},\"rss_after_mib\":{:.1},\"per_entry_bytes\":{},\"fill_seconds\":{:.1}}}",
        entries,
        puts,
        held,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) / held.max(1),
        started.elapsed().as_secs_f64()
    );
}

/// moka alone: 32-byte keys, unit values, per-entry expiry like `LocalCache`.
async fn bare(entries: u64) {
    struct Fixed;
    impl moka::Expiry<[u8; 32], ()> for Fixed {
        fn expire_after_create(&self, _: &[u8; 32], _: &(), _: Instant) -> Option<Duration> {
            Some(Duration::from_secs(3000))
        }
    }
    let cache: moka::future::Cache<[u8; 32], ()> = moka::future::Cache::builder()
        .max_capacity(entries)
        .expire_after(Fixed)
        .build();
    let before = rss_kib();
    for i in 0..entries {
        cache
            .insert(SecretHash::of(&format!("token-{i}")).0, ())
            .await;
    }
    cache.run_pending_tasks().await;
    let after = rss_kib();
    println!(
        "{{\"bare\":true,\"entries\":{entries},\"rss_after_mib\":{:.1},\"per_entry_bytes\":{}}}",
        after as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) / entries.max(1)
    );
}
