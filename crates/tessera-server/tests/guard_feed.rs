//! `tessera-guard` against a real Tessera: JWKS verification of the server's tokens, and the
//! revocation feed making a guard refuse revoked tokens within a second, including tokens
//! revoked before the guard started.

mod common;

use std::time::{Duration, Instant};

use common::{AUDIENCE, SECRET, TestServer, http, service_token};
use tessera_guard::revocation_feed::{self, FeedConfig, FeedError};
use tessera_guard::{Guard, GuardConfig};

fn guard_for(server: &TestServer) -> Guard {
    let config = GuardConfig::new(
        server.url("/.well-known/jwks.json"),
        &server.issuer,
        AUDIENCE,
    );
    Guard::new(config).unwrap()
}

async fn revoke(server: &TestServer, token: &str) {
    let r = http()
        .post(server.url("/api/v2/auth/revoke"))
        .basic_auth("svc", Some(SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_following_guard_refuses_a_revoked_token_within_a_second_despite_its_cache() {
    let server = TestServer::start().await;
    let guard = guard_for(&server);
    let _follow = revocation_feed::follow(
        guard.clone(),
        FeedConfig::new(&server.issuer, "svc", SECRET),
    )
    .await
    .unwrap();
    let token = service_token(&server).await;
    let claims = guard.verify(&format!("Bearer {token}")).await.unwrap();
    assert_eq!(claims.sub, "svc");
    assert!(
        guard.verify(&format!("Bearer {token}")).await.is_ok(),
        "now cached"
    );
    revoke(&server, &token).await;
    let revoked_at = Instant::now();
    while guard.verify(&format!("Bearer {token}")).await.is_ok() {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still accepted"
        );
        tokio::task::yield_now().await;
    }
    let other = service_token(&server).await;
    assert!(
        guard.verify(&format!("Bearer {other}")).await.is_ok(),
        "only the revoked jti"
    );
}

#[tokio::test]
async fn a_guard_started_after_a_revocation_refuses_the_token_from_the_start() {
    let server = TestServer::start().await;
    let token = service_token(&server).await;
    revoke(&server, &token).await;
    let guard = guard_for(&server);
    let _follow = revocation_feed::follow(
        guard.clone(),
        FeedConfig::new(&server.issuer, "svc", SECRET),
    )
    .await
    .unwrap();
    assert!(guard.verify(&format!("Bearer {token}")).await.is_err());
}

#[tokio::test]
async fn the_feed_needs_valid_client_credentials() {
    let server = TestServer::start().await;
    let guard = guard_for(&server);
    let refused =
        revocation_feed::follow(guard, FeedConfig::new(&server.issuer, "svc", "wrong")).await;
    assert!(matches!(refused, Err(FeedError::Unauthorized)));
}
