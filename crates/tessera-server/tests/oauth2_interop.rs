//! Interoperability with clients we did not write: the `oauth2` crate drives the code flow
//! with PKCE and client credentials against a real server on a socket, and `jsonwebtoken`
//! (not the code that signed) verifies the tokens with keys fetched from the JWKS endpoint.

mod common;

use common::{
    AUDIENCE, PASSWORD, REDIRECT, SECRET, TestServer, browser_login, oauth_http, query_of,
};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge,
    RedirectUrl, RefreshToken, Scope, TokenResponse, TokenUrl,
};
use serde_json::Value;

/// Verifies an access token with `jsonwebtoken` and the server's published JWKS.
async fn verify(server: &TestServer, token: &str, audience: &str) -> Value {
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1 typ");
    let kid = header.kid.expect("kid in header");
    let jwks: JwkSet = reqwest::get(server.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = jwks.find(&kid).expect("the token's kid is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[&server.base]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub", "aud"]);
    validation.validate_nbf = true;
    decode::<Value>(token, &key, &validation)
        .expect("token verifies with jsonwebtoken")
        .claims
}

fn oauth_client(
    server: &TestServer,
    id: &str,
    secret: Option<&str>,
) -> oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
> {
    let mut client = BasicClient::new(ClientId::new(id.into()))
        .set_auth_uri(AuthUrl::new(server.url("/api/v2/auth/authorize")).unwrap())
        .set_token_uri(TokenUrl::new(server.url("/api/v2/auth/token")).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    if let Some(s) = secret {
        client = client.set_client_secret(ClientSecret::new(s.into()));
    }
    client
}

async fn code_flow(server: &TestServer, id: &str, secret: Option<&str>, auth: AuthType) {
    let client = oauth_client(server, id, secret).set_auth_type(auth);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read".into()))
        .add_extra_param("resource", AUDIENCE)
        .set_pkce_challenge(challenge)
        .url();
    let location = browser_login(url.as_str(), "alice", PASSWORD).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(&location);
    assert_eq!(q.get("state"), Some(csrf.secret()), "state echoed");
    assert_eq!(q.get("iss"), Some(&server.base), "RFC 9207 iss");
    let code = q.get("code").expect("code in redirect");
    assert!(code.starts_with("tsc_"));

    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&oauth_http)
        .await
        .expect("code exchange succeeds");
    assert_eq!(token.token_type().as_ref(), "bearer");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "read");
    let claims = verify(server, token.access_token().secret(), AUDIENCE).await;
    assert_eq!(claims["sub"], "usr_alice");
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["roles"], serde_json::json!(["admin", "billing"]));
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 900, "default access token TTL is 15 minutes");

    // RFC 6749 §4.1.2: the same code a second time is refused.
    let (_, verifier2) = PkceCodeChallenge::new_random_sha256();
    let replay = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier2)
        .request_async(&oauth_http)
        .await;
    assert!(replay.is_err(), "a used code must not be redeemed again");
}

/// Refreshes through the `oauth2` crate and checks rotation, narrowing and revocation.
async fn refresh_and_revoke(server: &TestServer, id: &str, secret: Option<&str>, auth: AuthType) {
    let client = oauth_client(server, id, secret).set_auth_type(auth);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("read".into()))
        .add_scope(Scope::new("write".into()))
        .set_pkce_challenge(challenge)
        .url();
    let code = query_of(&browser_login(url.as_str(), "alice", PASSWORD).await)["code"].clone();
    let first = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(&oauth_http)
        .await
        .unwrap();
    let first_refresh = first.refresh_token().expect("a refresh token").clone();
    let second = client
        .exchange_refresh_token(&first_refresh)
        .add_scope(Scope::new("read".into()))
        .request_async(&oauth_http)
        .await
        .expect("refresh succeeds");
    let claims = verify(server, second.access_token().secret(), AUDIENCE).await;
    assert_eq!(claims["scope"], "read", "narrowed on refresh");
    let second_refresh = second.refresh_token().expect("rotated").clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());

    // The crate refuses to send revocations over plain http (RFC 7009 §2.1 requires TLS),
    // and this test server is http on loopback; revoke with a plain form post instead.
    let mut form = vec![("token", second_refresh.secret().as_str())];
    let mut request = common::http().post(server.url("/api/v2/auth/revoke"));
    match secret {
        Some(s) => request = request.basic_auth(id, Some(s)),
        None => form.push(("client_id", id)),
    }
    let revoked = request.form(&form).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    let after = client
        .exchange_refresh_token(&RefreshToken::new(second_refresh.secret().clone()))
        .request_async(&oauth_http)
        .await;
    assert!(after.is_err(), "a revoked refresh token no longer works");
}

#[tokio::test]
async fn oauth2_crate_refreshes_and_revokes_as_a_public_client() {
    let server = TestServer::start().await;
    refresh_and_revoke(&server, "spa", None, AuthType::RequestBody).await;
}

#[tokio::test]
async fn oauth2_crate_refreshes_and_revokes_as_a_confidential_client() {
    let server = TestServer::start().await;
    refresh_and_revoke(&server, "web", Some(SECRET), AuthType::BasicAuth).await;
}

#[tokio::test]
async fn oauth2_crate_code_flow_public_client_with_pkce() {
    let server = TestServer::start().await;
    code_flow(&server, "spa", None, AuthType::RequestBody).await;
}

#[tokio::test]
async fn oauth2_crate_code_flow_confidential_client_basic_auth() {
    let server = TestServer::start().await;
    code_flow(&server, "web", Some(SECRET), AuthType::BasicAuth).await;
}

#[tokio::test]
async fn oauth2_crate_code_flow_confidential_client_post_auth() {
    let server = TestServer::start().await;
    code_flow(&server, "web", Some(SECRET), AuthType::RequestBody).await;
}

#[tokio::test]
async fn oauth2_crate_client_credentials() {
    let server = TestServer::start().await;
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = oauth_client(&server, "svc", Some(SECRET)).set_auth_type(auth);
        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("write".into()))
            .request_async(&oauth_http)
            .await
            .expect("client credentials succeed");
        assert!(
            token.refresh_token().is_none(),
            "RFC 6749 §4.4.3: no refresh token"
        );
        let claims = verify(&server, token.access_token().secret(), AUDIENCE).await;
        assert_eq!(claims["sub"], "svc");
        assert_eq!(claims["client_id"], "svc");
        assert_eq!(claims["scope"], "write");
        assert!(claims.get("roles").is_none());
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    }
}

#[tokio::test]
async fn oauth2_crate_sees_invalid_client_for_a_wrong_secret() {
    let server = TestServer::start().await;
    let client = oauth_client(&server, "svc", Some("tss_wrong")).set_auth_type(AuthType::BasicAuth);
    let err = client
        .exchange_client_credentials()
        .request_async(&oauth_http)
        .await
        .unwrap_err();
    match err {
        oauth2::RequestTokenError::ServerResponse(r) => {
            assert_eq!(r.error().as_ref(), "invalid_client");
        }
        other => panic!("expected an invalid_client response, got {other:?}"),
    }
}
