//! The client cache of `tessera serve` (`CachingClientStore`) over real sockets: a client
//! deleted or given a new secret through a node is refused by that node at once, and by every
//! node within the cache's TTL when the change comes from elsewhere.

mod common;

use std::time::{Duration, Instant};

use common::{Node, SECRET, TestServer, http};
use tessera_core::client::ClientStore;
use tessera_core::secret::SecretHash;

const NEW_SECRET: &str = "tss_the-rotated-secret-that-is-long-enough-0123456789";

/// The status of a client-credentials token request as `id` with `secret`.
async fn token_status(server: &TestServer, id: &str, secret: &str) -> u16 {
    http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The status of an introspection request as `id` with `secret`.
async fn introspect_status(server: &TestServer, id: &str, secret: &str, token: &str) -> u16 {
    http()
        .post(server.url("/api/v2/auth/introspect"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The status of a revocation request as `id` with `secret`.
async fn revoke_status(server: &TestServer, id: &str, secret: &str, token: &str) -> u16 {
    http()
        .post(server.url("/api/v2/auth/revoke"))
        .basic_auth(id, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The node's client store: the cache in front of the database.
fn clients(server: &TestServer) -> &dyn ClientStore {
    server.state.server.ports().clients.as_ref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_rekeyed_or_deleted_through_the_node_is_refused_at_once() {
    // A TTL far longer than the test: only the eviction can explain a refusal.
    let server = TestServer::start_node(Node {
        client_cache: Some(Duration::from_secs(300)),
        ..Node::default()
    })
    .await;
    let token = common::service_token(&server).await;
    assert_eq!(introspect_status(&server, "svc", SECRET, &token).await, 200);
    assert_eq!(
        token_status(&server, "web", SECRET).await,
        400,
        "web is cached"
    );

    // The cache is in use: a change made behind it (another process) is not seen yet.
    ClientStore::delete(&server.store, "web").await.unwrap();
    assert_eq!(
        token_status(&server, "web", SECRET).await,
        400,
        "still authenticated from memory (unauthorized_client, not invalid_client)"
    );

    // A new secret through the node: the old one is refused on the very next request.
    assert!(
        clients(&server)
            .set_secret("svc", SecretHash::of(NEW_SECRET))
            .await
            .unwrap()
    );
    assert_eq!(token_status(&server, "svc", SECRET).await, 401);
    assert_eq!(introspect_status(&server, "svc", SECRET, &token).await, 401);
    assert_eq!(revoke_status(&server, "svc", SECRET, &token).await, 401);
    assert_eq!(token_status(&server, "svc", NEW_SECRET).await, 200);
    assert_eq!(
        introspect_status(&server, "svc", NEW_SECRET, &token).await,
        200
    );

    // Deleted through the node: refused at once on every endpoint that authenticates.
    assert!(clients(&server).delete("svc").await.unwrap());
    assert_eq!(token_status(&server, "svc", NEW_SECRET).await, 401);
    assert_eq!(
        introspect_status(&server, "svc", NEW_SECRET, &token).await,
        401
    );
    assert_eq!(revoke_status(&server, "svc", NEW_SECRET, &token).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_refuses_a_client_deleted_elsewhere_within_the_ttl() {
    let ttl = Duration::from_secs(1);
    let a = TestServer::start_node(Node {
        client_cache: Some(ttl),
        ..Node::default()
    })
    .await;
    let b = TestServer::start_node(Node {
        share: Some(&a),
        client_cache: Some(ttl),
        ..Node::default()
    })
    .await;
    let token = common::service_token(&a).await;
    // Node b reads svc now and keeps it for at most the TTL from here.
    let filled = Instant::now();
    assert_eq!(introspect_status(&b, "svc", SECRET, &token).await, 200);

    // Deleted through node a: a refuses at once...
    assert!(clients(&a).delete("svc").await.unwrap());
    assert_eq!(introspect_status(&a, "svc", SECRET, &token).await, 401);
    // ...and b, which cannot know, refuses once its entry expires.
    let first = introspect_status(&b, "svc", SECRET, &token).await;
    assert!(
        first == 200 || filled.elapsed() >= ttl,
        "b answered {first} from its cache"
    );
    // The bound, with room for a loaded machine between two requests.
    let limit = ttl + Duration::from_millis(500);
    loop {
        let status = introspect_status(&b, "svc", SECRET, &token).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            filled.elapsed() < limit,
            "node b still authenticated a deleted client {:?} after reading it",
            filled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "node b refused the deleted client {:?} after it read it (TTL {ttl:?})",
        filled.elapsed()
    );

    // A secret rotated elsewhere (the CLI) works the same way: the new one is accepted as soon
    // as the old entry is gone, the old one refused.
    let rotated = Instant::now();
    assert_eq!(token_status(&b, "web", SECRET).await, 400, "web is cached");
    ClientStore::set_secret(&a.store, "web", SecretHash::of(NEW_SECRET))
        .await
        .unwrap();
    loop {
        if token_status(&b, "web", NEW_SECRET).await == 400 {
            break;
        }
        assert!(
            rotated.elapsed() < limit,
            "the new secret never took effect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(token_status(&b, "web", SECRET).await, 401);
}
