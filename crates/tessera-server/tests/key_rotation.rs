//! The signing-key lifecycle seen from outside: JWKS with ETag, emergency revocation, and a
//! scheduled rotation across two nodes on one database.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Node, SECRET, TestServer, http};
use serde_json::{Value, json};
use tessera_core::key_schedule::KeyPolicy;
use tessera_core::keys::KeyStore;
use tessera_core::time::Clock;

const HOUR: i64 = 3600;

fn short_rotation() -> KeyPolicy {
    KeyPolicy {
        rotation_interval: Duration::from_secs(HOUR as u64),
        publish_ahead: Duration::from_secs(600),
        token_lifetime: Duration::from_secs(900),
        leeway: Duration::from_secs(60),
    }
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn jwks_kids(server: &TestServer) -> Vec<String> {
    let jwks: Value = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn active(server: &TestServer, token: &str) -> bool {
    let r = http()
        .post(server.url("/api/v2/auth/introspect"))
        .basic_auth("svc", Some(SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["active"] == json!(true)
}

#[tokio::test]
async fn jwks_revalidates_with_etag_until_the_key_set_changes() {
    let server = TestServer::start_node(Node {
        key_policy: Some(short_rotation()),
        ..Node::default()
    })
    .await;
    let first = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let again = http()
        .get(server.url("/.well-known/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(
        again.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    assert_eq!(again.text().await.unwrap(), "");

    // The next key is published ahead of the rotation: the set changes, so does the tag.
    server.clock.advance(HOUR - 600);
    server.ring.tick(&server.store).await.unwrap();
    let changed = http()
        .get(server.url("/.well-known/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"], etag.as_str());
    let jwks: Value = changed.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_rotation_publishes_first_signs_later_and_keeps_old_tokens_verifiable() {
    let server = TestServer::start_node(Node {
        cache: true,
        key_policy: Some(short_rotation()),
        ..Node::default()
    })
    .await;
    let old = common::service_token(&server).await;
    let old_kid = kid_of(&old);
    server.clock.advance(HOUR - 600);
    server.ring.tick(&server.store).await.unwrap();
    let kids = jwks_kids(&server).await;
    assert_eq!(kids.len(), 2);
    let new_kid = kids.iter().find(|k| **k != old_kid).unwrap().clone();
    assert_eq!(
        kid_of(&common::service_token(&server).await),
        old_kid,
        "published, not yet signing"
    );
    server.clock.advance(600);
    let new = common::service_token(&server).await;
    assert_eq!(
        kid_of(&new),
        new_kid,
        "signs from its activation time, without a tick"
    );
    assert!(active(&server, &new).await);
    // The old key is retired but published while its tokens live; the token issued just
    // before the rotation is still within its 15 minutes.
    let fresh_old = {
        server.clock.advance(-1);
        let t = common::service_token(&server).await;
        server.clock.advance(1);
        t
    };
    assert_eq!(kid_of(&fresh_old), old_kid);
    assert!(jwks_kids(&server).await.contains(&old_kid));
    assert!(active(&server, &fresh_old).await);
    // Past its tokens' lifetime plus the leeway, the old key is removed.
    server.clock.advance(900 + 60);
    server.ring.tick(&server.store).await.unwrap();
    assert_eq!(jwks_kids(&server).await, vec![new_kid]);
}

#[tokio::test]
async fn an_emergency_revocation_kills_the_keys_tokens_even_cached_and_new_tokens_work() {
    let server = TestServer::start_node(Node {
        cache: true,
        ..Node::default()
    })
    .await;
    let token = common::service_token(&server).await;
    let compromised = kid_of(&token);
    assert!(active(&server, &token).await);
    assert!(active(&server, &token).await, "now cached");
    let now = server.clock.now();
    assert!(
        KeyStore::revoke(&server.store, &compromised, now)
            .await
            .unwrap()
    );
    let tick = server.ring.tick(&server.store).await.unwrap();
    assert_eq!(tick.generated.len(), 1, "a replacement key signs at once");
    assert!(
        !active(&server, &token).await,
        "the cached result died with the key"
    );
    assert!(!jwks_kids(&server).await.contains(&compromised));
    let fresh = common::service_token(&server).await;
    assert_eq!(kid_of(&fresh), tick.generated[0]);
    assert!(active(&server, &fresh).await);
    assert_eq!(jwks_kids(&server).await, tick.generated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_rotate_once_and_both_sign_with_the_new_key_after_activation() {
    let policy = short_rotation();
    let a = TestServer::start_node(Node {
        key_policy: Some(policy),
        ..Node::default()
    })
    .await;
    let b = TestServer::start_node(Node {
        share: Some(&a),
        key_policy: Some(policy),
        ..Node::default()
    })
    .await;
    let first = kid_of(&common::service_token(&a).await);
    assert_eq!(
        kid_of(&common::service_token(&b).await),
        first,
        "b loaded a's key, made none"
    );
    a.clock.advance(HOUR - 600); // the nodes share one clock
    let (ta, tb) = tokio::join!(a.ring.tick(&a.store), b.ring.tick(&b.store));
    let generated: Vec<String> = [ta.unwrap(), tb.unwrap()]
        .into_iter()
        .flat_map(|t| t.generated)
        .collect();
    assert_eq!(
        generated.len(),
        1,
        "exactly one node performed the step: {generated:?}"
    );
    assert_eq!(KeyStore::list(&a.store).await.unwrap().len(), 2);
    // Each node reloads on its own tick; b's ran after a's insert or lost the race and
    // reloaded the winner's key.
    a.ring.reload(&a.store).await.unwrap();
    b.ring.reload(&b.store).await.unwrap();
    a.clock.advance(600);
    for node in [&a, &b] {
        assert_eq!(kid_of(&common::service_token(node).await), generated[0]);
    }
}

/// Verifies a token with `jsonwebtoken` (not our code) against the server's JWKS.
async fn verify_third_party(server: &TestServer, token: &str) -> Value {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    let header = decode_header(token).unwrap();
    let jwks: JwkSet = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid published");
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[common::AUDIENCE]);
    validation.set_issuer(&[&server.issuer]);
    decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("verifies with jsonwebtoken")
        .claims
}

#[tokio::test]
async fn es256_tokens_verify_with_a_third_party_library() {
    let server = TestServer::start_node(Node {
        key_kind: tessera_store::key_material::KeyKind::Es256,
        ..Node::default()
    })
    .await;
    let token = common::service_token(&server).await;
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    let jwks: Value = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = jwks["keys"][0].as_object().unwrap();
    let mut members: Vec<_> = key.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["alg", "crv", "kid", "kty", "use", "x", "y"],
        "public members only"
    );
    assert_eq!(verify_third_party(&server, &token).await["sub"], "svc");
    assert!(active(&server, &token).await);
}

#[tokio::test]
async fn switching_from_rs256_to_es256_is_a_rotation_like_any_other() {
    let rs = TestServer::start_node(Node {
        key_policy: Some(short_rotation()),
        ..Node::default()
    })
    .await;
    let before = common::service_token(&rs).await;
    // The same deployment restarted with TESSERA_SIGNING_ALG=ES256.
    let es = TestServer::start_node(Node {
        share: Some(&rs),
        key_policy: Some(short_rotation()),
        key_kind: tessera_store::key_material::KeyKind::Es256,
        ..Node::default()
    })
    .await;
    assert_eq!(
        kid_of(&common::service_token(&es).await),
        kid_of(&before),
        "nothing changes until the schedule says so"
    );
    es.clock.advance(HOUR - 600);
    es.ring.tick(&es.store).await.unwrap();
    assert_eq!(
        jwks_kids(&es).await.len(),
        2,
        "the ES256 key is published ahead"
    );
    es.clock.advance(600);
    let after = common::service_token(&es).await;
    assert_ne!(kid_of(&after), kid_of(&before));
    assert_eq!(verify_third_party(&es, &after).await["sub"], "svc");
    assert_eq!(
        verify_third_party(&es, &before).await["sub"],
        "svc",
        "RS256 tokens still verify"
    );
}
