//! The example API with real tokens: per-route scopes, the caller's identity in handlers.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use serde_json::{Value, json};
use tessera_core::keys::{Jwks, SigningKey};
use tessera_guard::{Guard, GuardConfig};
use tessera_store::MasterKey;
use tessera_store::key_material::{KeyKind, KeyPairSigner, generate};
use tower::ServiceExt;

const AUDIENCE: &str = "https://orders.example.test";

/// A key, its JWKS served on a loopback port, and a guard trusting it.
async fn setup() -> (KeyPairSigner, String, Guard) {
    let master =
        MasterKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([3u8; 32]))
            .unwrap();
    let (key, stored) = generate(
        &master,
        KeyKind::default(),
        1,
        tessera_core::time::UnixTime(0),
        tessera_core::time::UnixTime(0),
    )
    .unwrap();
    let jwks = Jwks {
        keys: vec![stored.public],
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = GuardConfig::new(
        format!("{issuer}/.well-known/jwks.json"),
        issuer.clone(),
        AUDIENCE,
    );
    (key, issuer, Guard::new(config).unwrap())
}

fn token(key: &dyn SigningKey, issuer: &str, scope: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "iss": issuer, "sub": "usr_alice", "aud": AUDIENCE, "exp": now + 600, "iat": now,
        "nbf": now, "jti": format!("jti-{scope}"), "client_id": "web", "scope": scope,
    });
    tessera_core::jwt::sign(key, "at+jwt", &claims).unwrap()
}

async fn call(app: axum::Router, method: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri("/orders");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_route_requires_its_scope_and_handlers_see_the_caller() {
    let (key, issuer, guard) = setup().await;
    let app = orders_service::app(guard);
    assert_eq!(
        call(app.clone(), "GET", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let reader = token(&key, &issuer, "orders:read");
    let (status, body) = call(app.clone(), "GET", Some(&reader)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["owner"], "usr_alice");
    assert_eq!(
        call(app.clone(), "POST", Some(&reader)).await.0,
        StatusCode::FORBIDDEN
    );
    let writer = token(&key, &issuer, "orders:read orders:write");
    let (status, body) = call(app.clone(), "POST", Some(&writer)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["created_by"], "usr_alice");
    assert_eq!(body["client"], "web");
    let healthz = app
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK, "open routes stay open");
}
