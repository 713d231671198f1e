//! Memory of the guard's validation cache holding many verified results (issue 11).
//!
//!     cargo run --release -p tessera-guard --example guard_footprint [ENTRIES]
//!
//! Starts a JWKS endpoint on loopback with one ES256 key (signing is fast, and the cached
//! result does not depend on the algorithm), builds a guard whose cache holds ENTRIES
//! (default 100,000, the guard's default capacity), verifies that many distinct tokens with
//! the claims Tessera issues, and prints the process's resident memory before and after
//! (VmRSS from /proc/self/status, Linux only) as JSON, with the bytes per result held.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use tessera_guard::Guard;

use common::*;

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
        .unwrap_or(100_000);
    let (key, jwk) = ec_key();
    let server = JwksServer::start(vec![jwk], 3600).await;
    let mut config = config(&server.url);
    config.cache_capacity = entries;
    config.algorithms = vec!["ES256".to_owned()];
    let guard = Guard::new(config).expect("guard");
    // One verification first, so the JWKS and the HTTP client are in memory before measuring.
    let first = token(&key, &claims());
    guard.verify_token(&first).await.expect("verifies");
    let before = rss_kib();
    let started = Instant::now();
    for _ in 1..entries {
        let token = token(&key, &claims());
        guard.verify_token(&token).await.expect("verifies");
    }
    let after = rss_kib();
    let held = guard.cached_results();
    println!(
        "{{\"capacity\":{},\"verified\":{},\"held\":{},\"rss_before_mib\":{:.1},\"rss_after_mib\":{:.1},\"per_entry_bytes\":{},\"fill_seconds\":{:.1}}}",
        entries,
        entries,
        held,
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after.saturating_sub(before) * 1024) / held.max(1),
        started.elapsed().as_secs_f64()
    );
}
