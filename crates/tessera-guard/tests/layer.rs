//! The tower layer and extractor on an axum router, with `oneshot` (RFC 6750 §2-3).

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use tessera_guard::{Claims, GuardLayer, require_scope};
use tower::ServiceExt;

use common::*;

fn app(guard: tessera_guard::Guard) -> Router {
    Router::new()
        .route(
            "/orders",
            get(|claims: Claims| async move { format!("orders of {}", claims.sub) })
                .post(|| async { "created" })
                .layer(require_scope("orders:write")),
        )
        .route("/me", get(|claims: Claims| async move { claims.sub }))
        .layer(GuardLayer::new(guard))
}

fn challenge(response: &Response) -> String {
    let values: Vec<_> = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .collect();
    assert_eq!(values.len(), 1);
    values[0].to_str().unwrap().to_owned()
}

async fn body(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let request = Request::get("/me")
        .header(header::AUTHORIZATION, bearer(&token(&key, &claims())))
        .body(Body::empty())
        .unwrap();
    let response = app(guard(&server.url)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "user-42");
}

#[tokio::test]
async fn a_missing_token_gets_a_bare_bearer_challenge() {
    let (_, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let request = Request::get("/me").body(Body::empty()).unwrap();
    let response = app(guard(&server.url)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = challenge(&response);
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    assert!(
        !challenge.contains("error="),
        "RFC 6750 §3.1: no error code: {challenge}"
    );
}

#[tokio::test]
async fn an_invalid_token_gets_invalid_token_without_detail() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let mut claims = claims();
    claims["iss"] = serde_json::json!("https://evil.test");
    let token = token(&key, &claims);
    let request = Request::get("/me")
        .header(header::AUTHORIZATION, bearer(&token))
        .body(Body::empty())
        .unwrap();
    let response = app(guard(&server.url)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = challenge(&response);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains("error_description=\""), "{challenge}");
    assert!(
        !challenge.to_lowercase().contains("issuer"),
        "no hint: {challenge}"
    );
    let text = body(response).await;
    assert!(!text.contains(&token) && !text.contains("evil"));
}

#[tokio::test]
async fn a_token_in_the_query_string_is_not_looked_at() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let uri = format!("/me?access_token={}", token(&key, &claims()));
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = app(guard(&server.url)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        !challenge(&response).contains("error="),
        "treated as no token at all"
    );
    assert_eq!(server.fetches(), 0, "nothing was verified");
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let valid = bearer(&token(&key, &claims()));
    let request = Request::get("/me")
        .header(header::AUTHORIZATION, valid.clone())
        .header(header::AUTHORIZATION, valid)
        .body(Body::empty())
        .unwrap();
    let response = app(guard(&server.url)).oneshot(request).await.unwrap();
    // RFC 6750 §3.1: a repeated credential is a malformed request, not a bad token.
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(challenge(&response).contains("error=\"invalid_request\""));
    assert_eq!(server.fetches(), 0, "nothing was verified");
}

fn guard_allowing(url: &str, query: bool, form: bool) -> tessera_guard::Guard {
    let mut config = config(url);
    config.allow_query_token = query;
    config.allow_form_token = form;
    tessera_guard::Guard::new(config).unwrap()
}

#[tokio::test]
async fn a_query_token_is_accepted_when_enabled() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let uri = format!("/me?x=1&access_token={}", token(&key, &claims()));
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = app(guard_allowing(&server.url, true, false))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "user-42");
}

#[tokio::test]
async fn a_form_token_is_accepted_when_enabled_and_the_body_still_reaches_the_handler() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let app = Router::new()
        .route(
            "/echo",
            axum::routing::post(|claims: Claims, form: String| async move {
                format!("{} sent {form}", claims.sub)
            }),
        )
        .layer(GuardLayer::new(guard_allowing(&server.url, false, true)));
    let form = format!("access_token={}&item=42", token(&key, &claims()));
    let request = Request::post("/echo")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.clone()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, format!("user-42 sent {form}"));
    // Not from a JSON body, and not on GET (RFC 6750 §2.2).
    let json = Request::post("/echo")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(form.clone()))
        .unwrap();
    assert_eq!(
        app.oneshot(json).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_token_sent_two_ways_is_an_invalid_request() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let token = token(&key, &claims());
    let request = Request::get(format!("/me?access_token={token}"))
        .header(header::AUTHORIZATION, bearer(&token))
        .body(Body::empty())
        .unwrap();
    let response = app(guard_allowing(&server.url, true, true))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(challenge(&response).contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn insufficient_scope_gets_403_naming_the_scope() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let request = Request::post("/orders")
        .header(header::AUTHORIZATION, bearer(&token(&key, &claims())))
        .body(Body::empty())
        .unwrap();
    let response = app(guard(&server.url)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = challenge(&response);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"orders:write\""), "{challenge}");
}

#[tokio::test]
async fn scope_is_checked_per_request_not_cached_with_the_token() {
    let (key, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let app = app(guard(&server.url));
    let mut claims = claims();
    claims["scope"] = serde_json::json!("orders:read");
    let auth = bearer(&token(&key, &claims));
    let get = |path: &str| {
        Request::get(path)
            .header(header::AUTHORIZATION, auth.clone())
            .body(Body::empty())
            .unwrap()
    };
    // The same token, now cached, passes a route without scope and fails one with it.
    assert_eq!(
        app.clone().oneshot(get("/me")).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.clone().oneshot(get("/orders")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.clone().oneshot(get("/me")).await.unwrap().status(),
        StatusCode::OK
    );

    let mut writer = claims.clone();
    writer["scope"] = serde_json::json!("orders:read orders:write");
    writer["jti"] = serde_json::json!("writer");
    let request = Request::get("/orders")
        .header(header::AUTHORIZATION, bearer(&token(&key, &writer)))
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body(response).await, "orders of user-42");
}

#[tokio::test]
async fn a_non_bearer_scheme_gets_invalid_token() {
    let (_, jwk) = rsa_key();
    let server = JwksServer::start(vec![jwk], 300).await;
    let request = Request::get("/me")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .unwrap();
    let response = app(guard(&server.url)).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
