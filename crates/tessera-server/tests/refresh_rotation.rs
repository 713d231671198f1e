//! Refresh-token rotation, reuse detection, the grace window, expiry, and code replay
//! (RFC 6749 §6, §4.1.2, RFC 9700 §4.14.2), over a real socket.

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{PASSWORD, REDIRECT, SECRET, TestServer, browser_login, http, query_of};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::refresh_family::RefreshStore;
use tessera_core::revocation::{RevocationList, RevocationReason};
use tessera_core::secret::SecretHash;

use common::VERIFIER;
const DAY: i64 = 86_400;

/// Status and JSON body of a token-endpoint call.
async fn token(server: &TestServer, form: &[(&str, &str)]) -> (u16, Value) {
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Signs alice in for `spa` and redeems the code: the first token response of a family.
async fn sign_in(server: &TestServer, scope: &str) -> Value {
    common::spa_tokens(server, scope).await
}

async fn redeem(server: &TestServer, code: &str) -> (u16, Value) {
    token(
        server,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("code", code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await
}

async fn refresh(server: &TestServer, refresh_token: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "spa"),
        ("refresh_token", refresh_token),
    ];
    token(server, &form).await
}

fn rt(body: &Value) -> String {
    body["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

fn jti(body: &Value) -> String {
    let payload = body["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_owned()
}

async fn revoked(server: &TestServer, body: &Value) -> bool {
    RevocationList::is_access_token_revoked(&server.store, &jti(body))
        .await
        .unwrap()
}

async fn family_revocation(server: &TestServer, refresh_token: &str) -> Option<RevocationReason> {
    let (_, family) = RefreshStore::find(&server.store, &SecretHash::of(refresh_token))
        .await
        .unwrap()
        .expect("token is stored");
    family.revoked.map(|r| r.reason)
}

fn assert_invalid_grant(answer: (u16, Value), what: &str) {
    assert_eq!(answer.0, 400, "{what}: {}", answer.1);
    assert_eq!(answer.1["error"], "invalid_grant", "{what}");
}

#[tokio::test]
async fn code_exchange_issues_a_prefixed_refresh_token_but_client_credentials_never_does() {
    let server = TestServer::start().await;
    let first = sign_in(&server, "read").await;
    let token = rt(&first);
    assert!(
        token.starts_with("tsr_") && token.len() >= 4 + 43,
        "{token}"
    );
    let cc = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth("svc", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let cc: Value = cc.json().await.unwrap();
    assert!(cc.get("refresh_token").is_none());
}

#[tokio::test]
async fn a_chain_of_twenty_rotations_invalidates_every_predecessor() {
    let server = TestServer::start().await;
    let mut current = rt(&sign_in(&server, "read write").await);
    let mut seen = vec![current.clone()];
    for step in 0..20 {
        let (status, body) = refresh(&server, &current).await;
        assert_eq!(status, 200, "step {step}: {body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "read write");
        let next = rt(&body);
        assert!(!seen.contains(&next), "step {step}: a new token every time");
        seen.push(next.clone());
        current = next;
    }
    // Every old token now fails (and, being reuse, kills the family: check the first one
    // last so the earlier checks are each judged on their own).
    let oldest = seen[0].clone();
    assert_invalid_grant(
        refresh(&server, &seen[19]).await,
        "the 19th token after rotation",
    );
    assert_eq!(
        family_revocation(&server, &oldest).await,
        Some(RevocationReason::RefreshTokenReuse)
    );
    for (i, old) in seen.iter().enumerate() {
        assert_invalid_grant(refresh(&server, old).await, &format!("token {i}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_have_one_winner_and_the_losers_count_as_reuse() {
    let server = Arc::new(TestServer::start().await);
    let token = rt(&sign_in(&server, "read").await);
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (server, token, barrier) = (server.clone(), token.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            refresh(&server, &token).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => winners.push(body),
            400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins");
    assert_eq!(
        family_revocation(&server, &token).await,
        Some(RevocationReason::RefreshTokenReuse),
        "the losers presented a rotated token"
    );
    assert!(
        revoked(&server, &winners[0]).await,
        "the winner's access token is revoked too"
    );
    assert_invalid_grant(
        refresh(&server, &rt(&winners[0])).await,
        "the winner's successor",
    );
}

#[tokio::test]
async fn reuse_revokes_the_successor_and_every_access_token_of_the_family() {
    let server = TestServer::start().await;
    let first = sign_in(&server, "read").await;
    let (_, second) = refresh(&server, &rt(&first)).await;
    let (_, third) = refresh(&server, &rt(&second)).await;
    let other_family = sign_in(&server, "read").await;
    assert!(!revoked(&server, &first).await);

    assert_invalid_grant(
        refresh(&server, &rt(&first)).await,
        "reuse of the first token",
    );
    assert_invalid_grant(refresh(&server, &rt(&third)).await, "the live successor");
    for (name, body) in [("first", &first), ("second", &second), ("third", &third)] {
        assert!(
            revoked(&server, body).await,
            "{name} access token is on the revocation list"
        );
    }
    assert!(
        !revoked(&server, &other_family).await,
        "another family is untouched"
    );
    let (status, _) = refresh(&server, &rt(&other_family)).await;
    assert_eq!(
        status, 200,
        "another family of the same user still refreshes"
    );
}

#[tokio::test]
async fn grace_window_lets_a_lost_response_be_retried_exactly_once_per_successor() {
    let server =
        TestServer::start_with(|p| p.refresh_grace = std::time::Duration::from_secs(30)).await;
    let first = rt(&sign_in(&server, "read").await);
    let (_, lost) = refresh(&server, &first).await; // the response that never arrived
    let lost = rt(&lost);
    server.clock.advance(5);
    let (status, retried) = refresh(&server, &first).await;
    assert_eq!(status, 200, "a retry inside the window succeeds: {retried}");
    let retried = rt(&retried);
    assert_ne!(retried, lost);
    assert_invalid_grant(refresh(&server, &lost).await, "the superseded successor");
    // Presenting the superseded token was itself reuse: the family is gone now.
    assert_eq!(
        family_revocation(&server, &first).await,
        Some(RevocationReason::RefreshTokenReuse)
    );

    // Once the successor has been used, a retry of its predecessor is reuse.
    let first = rt(&sign_in(&server, "read").await);
    let (_, second) = refresh(&server, &first).await;
    let (status, _) = refresh(&server, &rt(&second)).await;
    assert_eq!(status, 200, "the successor is used");
    assert_invalid_grant(
        refresh(&server, &first).await,
        "retry after the successor was used",
    );
    assert_eq!(
        family_revocation(&server, &first).await,
        Some(RevocationReason::RefreshTokenReuse)
    );

    // Outside the window, a retry is reuse too.
    let first = rt(&sign_in(&server, "read").await);
    let (_, second) = refresh(&server, &first).await;
    server.clock.advance(31);
    assert_invalid_grant(refresh(&server, &first).await, "retry after the window");
    assert_invalid_grant(refresh(&server, &rt(&second)).await, "its unused successor");
}

#[tokio::test]
async fn without_a_grace_window_a_retry_is_reuse() {
    let server = TestServer::start().await;
    let first = rt(&sign_in(&server, "read").await);
    let (_, second) = refresh(&server, &first).await;
    assert_invalid_grant(refresh(&server, &first).await, "immediate retry");
    assert_invalid_grant(
        refresh(&server, &rt(&second)).await,
        "the successor dies with the family",
    );
}

#[tokio::test]
async fn validity_slides_with_each_rotation_under_the_absolute_cap() {
    let server = TestServer::start_with(|p| {
        p.refresh_token_ttl = std::time::Duration::from_secs(14 * DAY as u64);
        p.refresh_token_max_lifetime = std::time::Duration::from_secs(30 * DAY as u64);
    })
    .await;
    // Each rotation 13 days after the previous one keeps the family alive past 14 days...
    let mut current = rt(&sign_in(&server, "read").await);
    for step in 0..2 {
        server.clock.advance(13 * DAY);
        let (status, body) = refresh(&server, &current).await;
        assert_eq!(status, 200, "step {step}: {body}");
        current = rt(&body);
    }
    // ...day 26 now; the next token would live to day 40, but the cap is day 30.
    let (token, _) = RefreshStore::find(&server.store, &SecretHash::of(&current))
        .await
        .unwrap()
        .unwrap();
    let (_, family) = RefreshStore::find(&server.store, &SecretHash::of(&current))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        token.expires_at, family.absolute_expires_at,
        "expiry capped at the family limit"
    );
    server.clock.advance(4 * DAY);
    assert_invalid_grant(refresh(&server, &current).await, "past the absolute limit");

    // A token left unused for longer than the TTL expires on its own.
    let idle = rt(&sign_in(&server, "read").await);
    server.clock.advance(14 * DAY);
    assert_invalid_grant(refresh(&server, &idle).await, "idle past the TTL");
    let fresh = rt(&sign_in(&server, "read").await);
    server.clock.advance(14 * DAY - 1);
    assert_eq!(
        refresh(&server, &fresh).await.0,
        200,
        "one second before expiry"
    );
}

#[tokio::test]
async fn scope_may_narrow_but_not_widen_and_tokens_are_bound_to_their_client() {
    let server = TestServer::start().await;
    let first = rt(&sign_in(&server, "read").await);
    let form = |scope| {
        [
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", first.as_str()),
            ("scope", scope),
        ]
    };
    let (status, body) = token(&server, &form("read write")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "wider scope"
    );
    let other_client = [
        ("grant_type", "refresh_token"),
        ("refresh_token", first.as_str()),
    ];
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth("web", Some(SECRET))
        .form(&other_client)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(
        family_revocation(&server, &first).await,
        None,
        "a foreign client revokes nothing"
    );

    let wide = rt(&sign_in(&server, "read%20write").await);
    let narrow = [
        ("grant_type", "refresh_token"),
        ("client_id", "spa"),
        ("refresh_token", wide.as_str()),
        ("scope", "read"),
    ];
    let (status, body) = token(&server, &narrow).await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("read")),
        "{body}"
    );
    let (status, body) = refresh(&server, &rt(&body)).await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("read write")),
        "the grant keeps its scope"
    );
}

#[tokio::test]
async fn a_replayed_code_revokes_what_its_first_redemption_issued() {
    let server = TestServer::start().await;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
    let url = server.url(&format!(
        "/api/v2/auth/authorize?response_type=code&client_id=spa&redirect_uri={}\
         &code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    ));
    let code = query_of(&browser_login(&url, "alice", PASSWORD).await)["code"].clone();
    let (status, first) = redeem(&server, &code).await;
    assert_eq!(status, 200);
    let (_, refreshed) = refresh(&server, &rt(&first)).await;
    assert_invalid_grant(redeem(&server, &code).await, "second redemption");
    assert!(
        revoked(&server, &first).await,
        "the first access token is revoked"
    );
    assert!(
        revoked(&server, &refreshed).await,
        "and what its refresh token issued"
    );
    assert_invalid_grant(
        refresh(&server, &rt(&refreshed)).await,
        "the family's refresh token",
    );
    assert_eq!(
        family_revocation(&server, &rt(&first)).await,
        Some(RevocationReason::CodeReplay)
    );
}

#[tokio::test]
async fn a_client_without_the_refresh_grant_gets_no_refresh_token() {
    use tessera_core::client::GrantType;
    let server = TestServer::start().await;
    server
        .add_client(
            "oneshot",
            None,
            &[GrantType::AuthorizationCode],
            &[REDIRECT],
        )
        .await;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
    let url = server.url(&format!(
        "/api/v2/auth/authorize?response_type=code&client_id=oneshot&redirect_uri={}\
         &code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    ));
    let code = query_of(&browser_login(&url, "alice", PASSWORD).await)["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "oneshot"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
    ];
    let (status, body) = token(&server, &form).await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none(), "{body}");
    let misuse = [
        ("grant_type", "refresh_token"),
        ("client_id", "oneshot"),
        ("refresh_token", "tsr_x"),
    ];
    let (status, body) = token(&server, &misuse).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
}
