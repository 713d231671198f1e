//! JWKS behaviour against a real server: rate-limited refetch, max-age refresh, and
//! bounded stale serving while the issuer is down.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use tessera_guard::{Guard, GuardError, InvalidReason};
use tokio::task::JoinSet;

use common::*;

#[tokio::test]
async fn an_unknown_kid_flood_causes_a_bounded_number_of_fetches() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let guard = guard(&server.url);
    assert!(guard.verify(&bearer(&token(&key, &claims()))).await.is_ok());
    let mut tasks = JoinSet::new();
    for batch in 0..100 {
        let guard = guard.clone();
        tasks.spawn(async move {
            for i in 0..100 {
                let kid = format!(
                    "forged-{batch}-{i}-{:x}",
                    (batch * 7919 + i * 104_729) % 65_521
                );
                let header = json!({ "alg": "RS256", "typ": "at+jwt", "kid": kid });
                let forged = forge(&header, &claims(), None);
                let error = guard.verify(&bearer(&forged)).await;
                assert_eq!(error, Err(invalid(InvalidReason::UnknownKey)));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    // One initial fetch; the default 10 s min-refresh allows at most one more.
    assert!(
        server.fetches() <= 2,
        "{} fetches for 10,000 forged kids",
        server.fetches()
    );
}

#[tokio::test]
async fn an_unknown_kid_refetches_after_min_refresh() {
    let (old, jwk) = rsa_key();
    let (new, new_jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut config = config(&server.url);
    config.jwks_min_refresh = Duration::from_millis(100);
    let guard = Guard::new(config).unwrap();
    assert!(guard.verify(&bearer(&token(&old, &claims()))).await.is_ok());
    server.publish(new_jwk);
    let token = token(&new, &claims());
    eventually(Duration::from_secs(10), || async {
        guard.verify(&bearer(&token)).await.is_ok()
    })
    .await;
    assert!(server.fetches() >= 2);
}

#[tokio::test]
async fn the_jwks_is_refreshed_after_max_age() {
    let (old, jwk) = rsa_key();
    let (new, new_jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 1).await;
    let mut config = config(&server.url);
    config.jwks_max_age_floor = Duration::from_secs(1);
    // Unknown kids may not trigger a fetch here: only max-age can bring the new key.
    config.jwks_min_refresh = Duration::from_secs(3600);
    let guard = Guard::new(config).unwrap();
    assert!(guard.verify(&bearer(&token(&old, &claims()))).await.is_ok());
    server.publish(new_jwk);
    let token = token(&new, &claims());
    assert_eq!(
        guard.verify(&bearer(&token)).await,
        Err(invalid(InvalidReason::UnknownKey)),
        "not refetched before max-age"
    );
    assert_eq!(server.fetches(), 1);
    eventually(Duration::from_secs(10), || async {
        guard.verify(&bearer(&token)).await.is_ok()
    })
    .await;
    assert_eq!(server.fetches(), 2, "one fetch per max-age");
}

#[tokio::test]
async fn with_the_server_down_keys_serve_until_stale_then_fail_closed() {
    let (key, jwk) = rsa_key();
    let mut server = JwksServer::start(vec![jwk], 1).await;
    let mut config = config(&server.url);
    config.jwks_max_age_floor = Duration::from_millis(200);
    config.jwks_max_age_ceiling = Duration::from_millis(200);
    config.stale_limit = Duration::from_secs(1);
    config.jwks_min_refresh = Duration::from_millis(50);
    config.fetch_timeout = Duration::from_secs(1);
    let guard = Guard::new(config).unwrap();
    let started = Instant::now();
    let cached = token(&key, &claims());
    assert!(guard.verify(&bearer(&cached)).await.is_ok());
    server.shut_down().await;
    // A token never seen, verifiable with the last good JWKS: accepted while not stale.
    assert!(guard.verify(&bearer(&token(&key, &claims()))).await.is_ok());
    eventually(Duration::from_secs(15), || async {
        guard.verify(&bearer(&token(&key, &claims()))).await == Err(GuardError::KeysUnavailable)
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(1200),
        "failed closed only after max-age + stale limit"
    );
    assert_eq!(
        guard.verify(&bearer(&token(&key, &claims()))).await,
        Err(GuardError::KeysUnavailable),
        "stays closed"
    );
    // Past the stale limit, a result cached before the outage fails closed too: the guard
    // can no longer tell whether its key was withdrawn (say, after a compromise).
    assert_eq!(
        guard.verify(&bearer(&cached)).await,
        Err(GuardError::KeysUnavailable)
    );
}

#[tokio::test]
async fn with_the_server_down_cached_results_keep_passing_until_stale() {
    let (key, jwk) = rsa_key();
    let mut server = JwksServer::start(vec![jwk], 1).await;
    let mut config = config(&server.url);
    config.jwks_max_age_floor = Duration::from_millis(100);
    config.jwks_max_age_ceiling = Duration::from_millis(100);
    config.stale_limit = Duration::from_secs(3600);
    config.jwks_min_refresh = Duration::from_millis(50);
    let guard = Guard::new(config).unwrap();
    let cached = token(&key, &claims());
    assert!(guard.verify(&bearer(&cached)).await.is_ok());
    server.shut_down().await;
    // Hits past max-age try to refresh in the background and fail; within the stale
    // limit the cached result still stands.
    for _ in 0..20 {
        assert!(guard.verify(&bearer(&cached)).await.is_ok());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cache_hits_alone_keep_the_key_set_fresh() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 1).await;
    let mut config = config(&server.url);
    config.jwks_max_age_floor = Duration::from_millis(100);
    config.jwks_max_age_ceiling = Duration::from_millis(100);
    // No unknown kid ever arrives: only max-age can bring news of the withdrawal.
    config.jwks_min_refresh = Duration::from_secs(3600);
    let guard = Guard::new(config).unwrap();
    let cached = token(&key, &claims());
    assert!(guard.verify(&bearer(&cached)).await.is_ok());
    server.withdraw_all();
    // Every request is a cache hit; the refresh they trigger learns the key is gone.
    eventually(Duration::from_secs(10), || async {
        guard.verify(&bearer(&cached)).await == Err(invalid(InvalidReason::UnknownKey))
    })
    .await;
    assert!(server.fetches() >= 2);
}

#[tokio::test]
async fn repeated_verifications_hit_the_cache_without_fetching() {
    let (key, jwk) = rsa_key();
    let (other, _) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let guard = guard(&server.url);
    let token = token(&key, &claims());
    assert!(guard.verify(&bearer(&token)).await.is_ok());
    let fetches = server.fetches();
    for _ in 0..100 {
        assert!(guard.verify(&bearer(&token)).await.is_ok());
    }
    assert_eq!(server.fetches(), fetches);
    // That no signature is re-checked on a hit is shown by the server-down test: a cached
    // result still passes once verification of new tokens has failed closed.
    let _ = other;
}

#[tokio::test]
async fn a_withdrawn_key_stops_serving_its_cached_results() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut config = config(&server.url);
    config.jwks_min_refresh = Duration::from_millis(50);
    let guard = Guard::new(config).unwrap();
    let token = token(&key, &claims());
    assert!(guard.verify(&bearer(&token)).await.is_ok());
    server.withdraw_all();
    // An unknown kid makes the guard refetch (after min-refresh): the key is gone.
    let probe = forge(
        &json!({ "alg": "RS256", "typ": "at+jwt", "kid": "probe" }),
        &claims(),
        None,
    );
    eventually(Duration::from_secs(10), || async {
        guard.verify(&bearer(&probe)).await.is_err() && server.fetches() >= 2
    })
    .await;
    assert_eq!(
        guard.verify(&bearer(&token)).await,
        Err(invalid(InvalidReason::UnknownKey))
    );
}

#[tokio::test]
async fn no_jwks_ever_fetched_fails_closed() {
    let (key, _) = rsa_key();
    let guard = guard("http://127.0.0.1:9/jwks");
    let error = guard.verify(&bearer(&token(&key, &claims()))).await;
    assert_eq!(error, Err(GuardError::KeysUnavailable));
}
