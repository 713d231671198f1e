//! Introspection (RFC 7662) and its validation cache, over real sockets: the answers for
//! every kind of token, the cache's promises (no store read on a hit, never past `exp`,
//! evicted by revocation), and two nodes on one database.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Node, PASSWORD, REDIRECT, SECRET, TestServer, browser_login, http, query_of};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_core::access_token::AccessTokenClaims;
use tessera_core::refresh_family::RefreshStore;
use tessera_core::revocation::RevocationReason;
use tessera_core::time::Clock;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// Introspects `token` as client `svc` (or `as_client` with the shared test secret).
async fn introspect_as(server: &TestServer, as_client: &str, token: &str) -> (u16, Value) {
    let r = http()
        .post(server.url("/api/v2/auth/introspect"))
        .basic_auth(as_client, Some(SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn introspect(server: &TestServer, token: &str) -> Value {
    let (status, body) = introspect_as(server, "svc", token).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Alice's tokens through the confidential client `web`.
async fn web_tokens(server: &TestServer) -> Value {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
    let url = server.url(&format!(
        "/api/v2/auth/authorize?response_type=code&client_id=web&redirect_uri={}\
         &code_challenge={challenge}&code_challenge_method=S256&scope=read",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    ));
    let code = query_of(&browser_login(&url, "alice", PASSWORD).await)["code"].clone();
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth("web", Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

async fn revoke(server: &TestServer, client: &str, token: &str) {
    let r = http()
        .post(server.url("/api/v2/auth/revoke"))
        .basic_auth(client, Some(SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn inactive() -> Value {
    json!({"active": false})
}

#[tokio::test]
async fn active_access_tokens_carry_the_rfc7662_members() {
    let server = TestServer::start().await;
    let token = common::service_token(&server).await;
    let body = introspect(&server, &token).await;
    assert_eq!(body["active"], true);
    for member in [
        "scope",
        "client_id",
        "sub",
        "aud",
        "iss",
        "exp",
        "iat",
        "nbf",
        "jti",
        "token_type",
    ] {
        assert!(body.get(member).is_some(), "{member} missing: {body}");
    }
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["client_id"], "svc");
    assert_eq!(body["iss"], server.issuer);

    let user = web_tokens(&server).await;
    let body = introspect(&server, user["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (body["active"].as_bool(), body["sub"].as_str()),
        (Some(true), Some("usr_alice"))
    );
    assert_eq!(body["scope"], "read");
}

#[tokio::test]
async fn everything_that_is_not_active_gets_exactly_active_false() {
    let server = TestServer::start().await;
    let good = common::service_token(&server).await;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[2] = URL_SAFE_NO_PAD.encode([1u8; 256]);
    let bad_signature = parts.join(".");
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"at+jwt"}"#),
        good.split('.').nth(1).unwrap()
    );
    // Signed with our own key but naming another issuer.
    let mut claims: AccessTokenClaims = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(good.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    claims.iss = "https://evil.example".into();
    let foreign_issuer = claims
        .sign(server.state.server.ports().keys.signing_key().as_ref())
        .unwrap();
    let other_server = TestServer::start().await;
    let other_servers_token = common::service_token(&other_server).await;
    for (name, token) in [
        ("garbage", "not a token".to_owned()),
        ("bad signature", bad_signature),
        ("alg none", alg_none),
        ("foreign issuer", foreign_issuer),
        ("another server's key", other_servers_token),
        ("unknown refresh token", "tsr_unknown".to_owned()),
        ("huge", "x".repeat(4000)),
    ] {
        assert_eq!(introspect(&server, &token).await, inactive(), "{name}");
    }
    // Expired: the clock moves past the 15-minute lifetime.
    server.clock.advance(15 * 60);
    assert_eq!(introspect(&server, &good).await, inactive(), "expired");
}

#[tokio::test]
async fn revoked_access_tokens_are_inactive() {
    let server = TestServer::start().await;
    let token = common::service_token(&server).await;
    revoke(&server, "svc", &token).await;
    assert_eq!(introspect(&server, &token).await, inactive());
}

#[tokio::test]
async fn refresh_tokens_are_active_only_while_live_and_only_to_their_client() {
    let server = TestServer::start().await;
    let tokens = web_tokens(&server).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = introspect_as(&server, "web", refresh).await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "refresh_token");
    assert_eq!(body["client_id"], "web");
    assert_eq!(body["sub"], "usr_alice");
    assert!(body.get("jti").is_none());
    let (_, body) = introspect_as(&server, "svc", refresh).await;
    assert_eq!(body, inactive(), "another client learns nothing");

    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth("web", Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, body) = introspect_as(&server, "web", refresh).await;
    assert_eq!(body, inactive(), "a rotated refresh token");
}

#[tokio::test]
async fn callers_must_authenticate_as_confidential_clients() {
    let server = TestServer::start().await;
    let token = common::service_token(&server).await;
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, Vec<(&'a str, &'a str)>);
    let cases: [Case; 4] = [
        ("no authentication", None, vec![("token", &token)]),
        (
            "wrong secret",
            Some(("svc", "wrong")),
            vec![("token", &token)],
        ),
        (
            "unknown client",
            Some(("ghost", SECRET)),
            vec![("token", &token)],
        ),
        (
            "public client",
            None,
            vec![("token", &token), ("client_id", "spa")],
        ),
    ];
    for (name, basic, form) in cases {
        let mut request = http()
            .post(server.url("/api/v2/auth/introspect"))
            .form(&form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{name}");
        assert!(
            body.get("active").is_none() && body.get("sub").is_none(),
            "{name}: {body}"
        );
    }
}

#[tokio::test]
async fn a_cache_hit_does_not_touch_the_store_and_never_outlives_exp() {
    let server = TestServer::start_node(Node {
        cache: true,
        ..Node::default()
    })
    .await;
    let token = common::service_token(&server).await;
    let first = introspect(&server, &token).await;
    assert_eq!(first["active"], true);
    let reads = server.revocation_reads.load(Ordering::SeqCst);
    assert_eq!(
        reads, 1,
        "the first introspection consults the revocation list"
    );
    for _ in 0..5 {
        assert_eq!(introspect(&server, &token).await, first);
    }
    assert_eq!(
        server.revocation_reads.load(Ordering::SeqCst),
        reads,
        "hits read no store"
    );
    // The entry was cached for up to 300 s; the token expires at 900 s. Move the clock past
    // the token's expiry: the cached entry must not answer active.
    server.clock.advance(15 * 60);
    assert_eq!(introspect(&server, &token).await, inactive());
}

#[tokio::test]
async fn revocation_evicts_cached_results_before_the_revoking_request_returns() {
    let server = TestServer::start_node(Node {
        cache: true,
        ..Node::default()
    })
    .await;
    let token = common::service_token(&server).await;
    assert_eq!(introspect(&server, &token).await["active"], true);
    revoke(&server, "svc", &token).await;
    assert_eq!(
        introspect(&server, &token).await,
        inactive(),
        "access token revocation"
    );

    // A family revoked by refresh-token reuse takes its cached access tokens with it.
    let tokens = web_tokens(&server).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(introspect(&server, access).await["active"], true);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    for expected in [200, 400] {
        let r = http()
            .post(server.url("/api/v2/auth/token"))
            .basic_auth("web", Some(SECRET))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), expected);
    }
    assert_eq!(
        introspect(&server, access).await,
        inactive(),
        "family revoked by reuse"
    );
}

/// Polls `check` until it holds, failing after `limit`; returns the time it took.
async fn within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "not within {limit:?}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_node_reaches_the_other_nodes_cache_within_a_second() {
    let a = TestServer::start_node(Node {
        cache: true,
        ..Node::default()
    })
    .await;
    let b = TestServer::start_node(Node {
        share: Some(&a),
        cache: true,
        ..Node::default()
    })
    .await;
    let token = common::service_token(&a).await;
    assert_eq!(introspect(&b, &token).await["active"], true);
    assert_eq!(
        introspect(&b, &token).await["active"],
        true,
        "now cached on b"
    );
    revoke(&a, "svc", &token).await;
    let took = within(Duration::from_secs(1), async || {
        introspect(&b, &token).await == inactive()
    })
    .await;
    println!("node b refused the token {took:?} after node a revoked it");
}

/// Whether the machine's Redis answers; under `CI=true` its absence fails the test.
async fn redis_available() -> bool {
    let up = tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .is_ok();
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and Redis is not reachable at 127.0.0.1:6379"
        );
        eprintln!("SKIPPED: Redis is not reachable at 127.0.0.1:6379");
    }
    up
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_redis_a_revocation_reaches_the_other_node_within_a_second_without_polling() {
    if !redis_available().await {
        return;
    }
    let prefix = format!(
        "tessera-test-{}:",
        tessera_core::secret::mint_id(&tessera_store::OsRandom::default())
    );
    let node = |share| Node {
        share,
        cache: true,
        redis_prefix: Some(prefix.clone()),
        ..Node::default()
    };
    let a = TestServer::start_node(node(None)).await;
    let b = TestServer::start_node(node(Some(&a))).await;
    let token = common::service_token(&a).await;
    assert_eq!(
        introspect(&a, &token).await["active"],
        true,
        "validated on a, shared via Redis"
    );
    let reads = b.revocation_reads.load(Ordering::SeqCst);
    assert_eq!(introspect(&b, &token).await["active"], true);
    assert_eq!(
        b.revocation_reads.load(Ordering::SeqCst),
        reads,
        "b answered from the shared tier without reading the store"
    );
    revoke(&a, "svc", &token).await;
    // b polls the list only hourly here: only the Redis bus (or marker) can make this pass.
    let took = within(Duration::from_secs(1), async || {
        introspect(&b, &token).await == inactive()
    })
    .await;
    println!("through Redis, node b refused the token {took:?} after node a revoked it");
    cleanup_redis(&prefix).await;
}

/// Deletes this test's Redis keys (all of them carry TTLs anyway).
async fn cleanup_redis(prefix: &str) {
    let Ok(mut conn) =
        redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection())
    else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut conn);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_made_outside_the_server_reach_its_cache_within_a_second() {
    let server = TestServer::start_node(Node {
        cache: true,
        ..Node::default()
    })
    .await;
    let tokens = web_tokens(&server).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&server, &access).await["active"], true);
    // What `tessera user revoke-tokens` does from another process: straight to the store.
    let now = server.clock.now();
    let n = RefreshStore::revoke_user_families(
        &server.store,
        "usr_alice",
        RevocationReason::UserSignOut,
        now,
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    within(Duration::from_secs(1), async || {
        introspect(&server, &access).await == inactive()
    })
    .await;
}

#[tokio::test]
async fn discovery_advertises_introspection() {
    let server = TestServer::start().await;
    let meta: Value = http()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["introspection_endpoint"],
        server.url("/api/v2/auth/introspect")
    );
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
}
