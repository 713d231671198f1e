//! The revocation endpoint (RFC 7009), over a real socket.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SECRET, TestServer, http};
use serde_json::Value;
use tessera_core::refresh_family::RefreshStore;
use tessera_core::revocation::{RevocationList, RevocationReason};
use tessera_core::secret::SecretHash;

/// A token response for alice through `spa` (with a refresh token).
async fn user_tokens(server: &TestServer) -> Value {
    common::spa_tokens(server, "").await
}

/// Calls the revocation endpoint as `client` (`spa` is public, the others use Basic).
async fn revoke(server: &TestServer, client: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http().post(server.url("/api/v2/auth/revoke"));
    let mut form = form.to_vec();
    if client == "spa" {
        form.push(("client_id", "spa"));
    } else {
        request = request.basic_auth(client, Some(SECRET));
    }
    request.form(&form).send().await.unwrap()
}

async fn assert_ok_empty(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 200, "{what}");
    assert_eq!(
        response.text().await.unwrap(),
        "",
        "{what}: RFC 7009 §2.2 empty body"
    );
}

fn claims(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn is_revoked(server: &TestServer, access_token: &str) -> bool {
    let jti = claims(access_token)["jti"].as_str().unwrap().to_owned();
    RevocationList::is_access_token_revoked(&server.store, &jti)
        .await
        .unwrap()
}

async fn family_reason(server: &TestServer, refresh_token: &str) -> Option<RevocationReason> {
    let (_, family) = RefreshStore::find(&server.store, &SecretHash::of(refresh_token))
        .await
        .unwrap()
        .unwrap();
    family.revoked.map(|r| r.reason)
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_whatever_the_hint() {
    let server = TestServer::start().await;
    for hint in [
        Some("refresh_token"),
        Some("access_token"),
        Some("bogus_hint"),
        None,
    ] {
        let tokens = user_tokens(&server).await;
        let refresh = tokens["refresh_token"].as_str().unwrap();
        let mut form = vec![("token", refresh)];
        if let Some(h) = hint {
            form.push(("token_type_hint", h));
        }
        assert_ok_empty(revoke(&server, "spa", &form).await, &format!("{hint:?}")).await;
        assert_eq!(
            family_reason(&server, refresh).await,
            Some(RevocationReason::ClientRequest),
            "{hint:?}"
        );
        assert!(
            is_revoked(&server, tokens["access_token"].as_str().unwrap()).await,
            "{hint:?}"
        );
        let again = [
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", refresh),
        ];
        let r = http()
            .post(server.url("/api/v2/auth/token"))
            .form(&again)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            400,
            "{hint:?}: a revoked refresh token no longer works"
        );
        assert_ok_empty(revoke(&server, "spa", &form).await, "revoking twice").await;
    }
}

#[tokio::test]
async fn revoking_an_access_token_puts_its_jti_on_the_list_whatever_the_hint() {
    let server = TestServer::start().await;
    for hint in [Some("access_token"), Some("refresh_token"), None] {
        let token = common::service_token(&server).await;
        let mut form = vec![("token", token.as_str())];
        if let Some(h) = hint {
            form.push(("token_type_hint", h));
        }
        assert!(!is_revoked(&server, &token).await);
        assert_ok_empty(revoke(&server, "svc", &form).await, &format!("{hint:?}")).await;
        assert!(is_revoked(&server, &token).await, "{hint:?}");
    }
    let tokens = user_tokens(&server).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_ok_empty(
        revoke(&server, "spa", &[("token", access)]).await,
        "user access token",
    )
    .await;
    assert!(is_revoked(&server, access).await);
    assert_eq!(
        family_reason(&server, tokens["refresh_token"].as_str().unwrap()).await,
        None,
        "revoking an access token leaves the refresh token alone"
    );
}

#[tokio::test]
async fn another_clients_tokens_are_not_revoked_but_the_answer_is_the_same() {
    let server = TestServer::start().await;
    let tokens = user_tokens(&server).await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let svc_token = common::service_token(&server).await;
    assert_ok_empty(
        revoke(&server, "web", &[("token", refresh)]).await,
        "web revokes spa's refresh token",
    )
    .await;
    assert_ok_empty(
        revoke(&server, "web", &[("token", access)]).await,
        "web revokes spa's access token",
    )
    .await;
    assert_ok_empty(
        revoke(&server, "spa", &[("token", &svc_token)]).await,
        "spa revokes svc's token",
    )
    .await;
    assert_eq!(family_reason(&server, refresh).await, None);
    assert!(!is_revoked(&server, access).await);
    assert!(!is_revoked(&server, &svc_token).await);
}

#[tokio::test]
async fn unknown_forged_and_expired_tokens_answer_200_and_change_nothing() {
    let server = TestServer::start().await;
    let real = common::service_token(&server).await;
    // A token with our header and svc's claims but a signature of someone else's key.
    let mut parts: Vec<&str> = real.split('.').collect();
    let forged_sig = URL_SAFE_NO_PAD.encode([7u8; 256]);
    parts[2] = &forged_sig;
    let forged = parts.join(".");
    for token in [
        "tsr_unknown",
        "not a token",
        "a.b.c",
        forged.as_str(),
        &"x".repeat(3000),
    ] {
        assert_ok_empty(revoke(&server, "svc", &[("token", token)]).await, token).await;
    }
    assert!(
        !is_revoked(&server, &real).await,
        "a forged signature revokes nothing"
    );
    server.clock.advance(16 * 60);
    assert_ok_empty(revoke(&server, "svc", &[("token", &real)]).await, "expired").await;
    assert!(
        !is_revoked(&server, &real).await,
        "an expired token need not be listed"
    );
}

#[tokio::test]
async fn revocation_requires_client_authentication_and_a_token() {
    let server = TestServer::start().await;
    let token = common::service_token(&server).await;
    let r = http()
        .post(server.url("/api/v2/auth/revoke"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    let r = http()
        .post(server.url("/api/v2/auth/revoke"))
        .basic_auth("svc", Some("wrong"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert!(
        !is_revoked(&server, &token).await,
        "an unauthenticated request revokes nothing"
    );
    let r = revoke(&server, "svc", &[]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn discovery_advertises_revocation_and_the_refresh_grant() {
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
        meta["revocation_endpoint"],
        server.url("/api/v2/auth/revoke")
    );
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from("refresh_token"))
    );
    assert!(meta["revocation_endpoint_auth_methods_supported"].is_array());
}
