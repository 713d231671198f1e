//! A real little JWKS server and token forgery helpers for the guard's tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use tessera_core::keys::{Jwk, SigningKey};
use tessera_core::time::UnixTime;
use tessera_guard::{Guard, GuardConfig, GuardError, InvalidReason};
use tessera_store::MasterKey;
use tessera_store::key_material::{KeyKind, KeyPairSigner, RsaBits, generate};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "orders-api";

/// A JWKS endpoint on 127.0.0.1:0 that counts what it is asked.
pub struct JwksServer {
    pub url: String,
    pub base: String,
    state: Arc<ServerState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct ServerState {
    keys: Mutex<Vec<Jwk>>,
    fetches: AtomicUsize,
    other_requests: AtomicUsize,
    max_age: u64,
}

impl JwksServer {
    pub async fn start(keys: Vec<Jwk>, max_age: u64) -> Self {
        let state = Arc::new(ServerState {
            keys: Mutex::new(keys),
            fetches: AtomicUsize::new(0),
            other_requests: AtomicUsize::new(0),
            max_age,
        });
        let app = Router::new()
            .route("/jwks", get(jwks))
            .fallback(other)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            url: format!("http://{addr}/jwks"),
            base: format!("http://{addr}"),
            state,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// How many requests went anywhere but `/jwks`.
    pub fn other_requests(&self) -> usize {
        self.state.other_requests.load(Ordering::SeqCst)
    }

    pub fn withdraw_all(&self) {
        self.state.keys.lock().unwrap().clear();
    }

    pub fn publish(&self, jwk: Jwk) {
        self.state.keys.lock().unwrap().push(jwk);
    }

    /// Stops the server and waits until it no longer accepts connections.
    pub async fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server stops")
                .unwrap();
        }
    }
}

async fn jwks(State(state): State<Arc<ServerState>>) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = state.keys.lock().unwrap().clone();
    let mut response = axum::Json(json!({ "keys": keys })).into_response();
    let value = HeaderValue::from_str(&format!("public, max-age={}", state.max_age)).unwrap();
    response.headers_mut().insert(header::CACHE_CONTROL, value);
    response
}

async fn other(State(state): State<Arc<ServerState>>, _uri: Uri) -> Response {
    state.other_requests.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({ "keys": [] })).into_response()
}

pub fn master() -> MasterKey {
    MasterKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
}

pub fn rsa_key() -> (KeyPairSigner, Jwk) {
    let (signer, stored) = generate(
        &master(),
        KeyKind::Rs256(RsaBits::Rsa2048),
        1,
        UnixTime(0),
        UnixTime(0),
    )
    .unwrap();
    (signer, stored.public)
}

pub fn ec_key() -> (KeyPairSigner, Jwk) {
    let (signer, stored) =
        generate(&master(), KeyKind::Es256, 2, UnixTime(0), UnixTime(0)).unwrap();
    (signer, stored.public)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

static JTI: AtomicUsize = AtomicUsize::new(0);

/// Valid RFC 9068 claims for [`ISSUER`] and [`AUDIENCE`], with a fresh `jti`.
pub fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": "user-42",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::SeqCst)),
        "client_id": "web-app",
        "scope": "orders:read profile",
    })
}

/// A token signed the way Tessera signs (`tessera_core::jwt::sign`).
pub fn token(key: &KeyPairSigner, claims: &Value) -> String {
    tessera_core::jwt::sign(key, "at+jwt", claims).unwrap()
}

/// A token with an arbitrary header, signed by `key` (or with `signature` verbatim).
pub fn forge(header: &Value, claims: &Value, key: Option<&KeyPairSigner>) -> String {
    let mut out = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()));
    let signature = key
        .map(|k| k.sign(out.as_bytes()).unwrap())
        .unwrap_or_default();
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(signature));
    out
}

pub fn config(url: &str) -> GuardConfig {
    GuardConfig::new(url, ISSUER, AUDIENCE)
}

pub fn guard(url: &str) -> Guard {
    Guard::new(config(url)).unwrap()
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

pub fn invalid(reason: InvalidReason) -> GuardError {
    GuardError::InvalidToken(reason)
}

/// Waits (bounded) until `condition` holds, polling; panics after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
