//! The revocation feed for remote gateways: cursor paging, long polling, authentication.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SECRET, TestServer, http};
use serde_json::Value;

async fn service_token(server: &TestServer) -> (String, String) {
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth("svc", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    (token, claims["jti"].as_str().unwrap().to_owned())
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

async fn feed(server: &TestServer, query: &str) -> (u16, Value) {
    let r = http()
        .get(server.url(&format!("/api/v2/auth/revocations?{query}")))
        .basic_auth("svc", Some(SECRET))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn jtis(page: &Value) -> Vec<String> {
    page["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["jti"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_feed_pages_by_cursor_in_revocation_order() {
    let server = TestServer::start().await;
    let (_, empty) = feed(&server, "after=0").await;
    assert_eq!(jtis(&empty), Vec::<String>::new());
    assert_eq!(empty["next"], 0);
    let mut revoked = Vec::new();
    for _ in 0..3 {
        let (token, jti) = service_token(&server).await;
        revoke(&server, &token).await;
        revoked.push(jti);
    }
    let (status, page) = feed(&server, "after=0").await;
    assert_eq!(status, 200);
    assert_eq!(jtis(&page), revoked);
    let entries = page["revocations"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["exp"].as_i64().unwrap() > 0));
    let second_seq = entries[1]["seq"].as_i64().unwrap();
    let (_, rest) = feed(&server, &format!("after={second_seq}")).await;
    assert_eq!(jtis(&rest), revoked[2..]);
    let (_, done) = feed(&server, &format!("after={}", page["next"])).await;
    assert_eq!(jtis(&done), Vec::<String>::new());
    assert_eq!(done["next"], page["next"], "an empty page keeps the cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_as_soon_as_something_is_revoked() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let (token, jti) = service_token(&server).await;
    let waiting = {
        let server = server.clone();
        tokio::spawn(async move { feed(&server, "after=0&wait=30").await })
    };
    revoke(&server, &token).await;
    let (status, page) = tokio::time::timeout(std::time::Duration::from_secs(20), waiting)
        .await
        .expect("the long poll answered before its 30 s wait")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(jtis(&page), vec![jti]);
}

#[tokio::test]
async fn the_feed_needs_a_confidential_client_and_sane_parameters() {
    let server = TestServer::start().await;
    let anonymous = http()
        .get(server.url("/api/v2/auth/revocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let wrong = http()
        .get(server.url("/api/v2/auth/revocations"))
        .basic_auth("svc", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let public = http()
        .get(server.url("/api/v2/auth/revocations"))
        .basic_auth("spa", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 401);
    for bad in ["after=-1", "after=x", "wait=1.5", "after=1&after=2"] {
        let (status, body) = feed(&server, bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
    }
}
