//! The validation cache: revocation by `jti` and expiry re-checked on each hit.

mod common;

use std::time::Duration;

use serde_json::json;
use tessera_guard::{Guard, InvalidReason};

use common::*;

#[tokio::test]
async fn evict_jti_refuses_cached_and_future_tokens_of_that_jti() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let guard = guard(&server.url);
    let mut claims = claims();
    claims["jti"] = json!("revoked-1");
    let cached = token(&key, &claims);
    assert!(guard.verify(&bearer(&cached)).await.is_ok());
    guard.evict_jti("revoked-1").await;
    assert_eq!(
        guard.verify(&bearer(&cached)).await,
        Err(invalid(InvalidReason::Revoked))
    );
    claims["sub"] = json!("someone-else");
    let fresh = token(&key, &claims);
    assert_eq!(
        guard.verify(&bearer(&fresh)).await,
        Err(invalid(InvalidReason::Revoked))
    );
    let other = token(&key, &common::claims());
    assert!(
        guard.verify(&bearer(&other)).await.is_ok(),
        "other jtis unaffected"
    );
}

#[tokio::test]
async fn a_cached_result_does_not_outlive_exp() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut config = config(&server.url);
    config.leeway = Duration::ZERO;
    let guard = Guard::new(config).unwrap();
    let mut claims = claims();
    claims["exp"] = json!(now() + 1);
    let token = token(&key, &claims);
    assert!(guard.verify(&bearer(&token)).await.is_ok());
    eventually(Duration::from_secs(10), || async {
        guard.verify(&bearer(&token)).await == Err(invalid(InvalidReason::Expired))
    })
    .await;
}

#[tokio::test]
async fn a_revocation_from_the_feed_lasts_until_the_token_expires_not_just_the_cache_ttl() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut config = config(&server.url);
    config.cache_ttl = Duration::from_millis(200);
    let guard = Guard::new(config).unwrap();
    let mut claims = claims();
    claims["jti"] = json!("revoked-long");
    claims["exp"] = json!(now() + 600);
    let token = token(&key, &claims);
    guard.revoke_jti("revoked-long", now() + 600).await;
    // Well past the cache TTL (a short one here), the token is still refused.
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_millis(800) {
        assert_eq!(
            guard.verify(&bearer(&token)).await,
            Err(invalid(InvalidReason::Revoked))
        );
        tokio::task::yield_now().await;
    }
}
