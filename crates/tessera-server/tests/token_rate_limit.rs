//! The token endpoint's per-client rate limit over a real socket: `429 slow_down` with
//! `Retry-After` when a client exceeds it, other clients unaffected, nothing spent by
//! requests that fail client authentication, off by default and changed by a reload.

mod common;

use common::{SECRET, TestServer, http};
use serde_json::Value;
use tessera_core::client::GrantType;
use tessera_core::rate_limit::RateLimit;

/// A client-credentials request of `client` with `secret`: status, Retry-After, body.
async fn token(server: &TestServer, client: &str, secret: &str) -> (u16, Option<String>, Value) {
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    if status == 429 {
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["content-type"], "application/json");
    }
    (status, retry_after, r.json().await.unwrap())
}

fn limit(text: &str) -> RateLimit {
    RateLimit::parse(text).unwrap()
}

#[tokio::test]
async fn a_client_over_its_limit_gets_429_with_retry_after_and_others_are_unaffected() {
    let server = TestServer::start_with(|p| p.token_rate_limit = limit("3/m")).await;
    server
        .add_client("batch", Some(SECRET), &[GrantType::ClientCredentials], &[])
        .await;
    for _ in 0..3 {
        assert_eq!(token(&server, "svc", SECRET).await.0, 200);
    }
    let (status, retry_after, body) = token(&server, "svc", SECRET).await;
    assert_eq!(status, 429);
    // 3 per minute: the next request is allowed in 20 s.
    assert_eq!(retry_after.as_deref(), Some("20"));
    assert_eq!(body["error"], "slow_down");
    assert!(body["error_description"].is_string());
    assert!(body.get("access_token").is_none());

    // Another client has its own bucket.
    for _ in 0..3 {
        assert_eq!(token(&server, "batch", SECRET).await.0, 200);
    }

    server.clock.advance(15);
    let (status, retry_after, _) = token(&server, "svc", SECRET).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("5")));
    server.clock.advance(5);
    assert_eq!(token(&server, "svc", SECRET).await.0, 200);
    assert_eq!(token(&server, "svc", SECRET).await.0, 429);
}

#[tokio::test]
async fn requests_that_fail_client_authentication_spend_nothing() {
    let server = TestServer::start_with(|p| p.token_rate_limit = limit("2/m")).await;
    // Someone naming svc without its secret cannot use up svc's allowance.
    for _ in 0..5 {
        let (status, _, body) = token(&server, "svc", "not-the-secret").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
    }
    assert_eq!(token(&server, "svc", SECRET).await.0, 200);
    assert_eq!(token(&server, "svc", SECRET).await.0, 200);
    assert_eq!(token(&server, "svc", SECRET).await.0, 429);
}

#[tokio::test]
async fn the_limit_is_off_by_default_and_a_reload_changes_it() {
    let server = TestServer::start().await;
    for _ in 0..30 {
        assert_eq!(token(&server, "svc", SECRET).await.0, 200);
    }
    let reload = |rate: &str| {
        let mut policy = (*server.state.server.policy()).clone();
        policy.token_rate_limit = limit(rate);
        server.state.server.set_policy(policy);
    };
    reload("1/h");
    assert_eq!(token(&server, "svc", SECRET).await.0, 200);
    let (status, retry_after, _) = token(&server, "svc", SECRET).await;
    assert_eq!((status, retry_after.as_deref()), (429, Some("3600")));
    reload("off");
    assert_eq!(token(&server, "svc", SECRET).await.0, 200);
}
