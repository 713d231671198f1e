//! `tessera-client` against a real Tessera: single-flight renewal, persist-before-use and
//! crash recovery through the grace window, a lost refresh response, client credentials,
//! background renewal, and the reqwest wrapper's retry on `invalid_token`.
//!
//! Requests go through a small counting proxy in front of the server, which can also lose
//! the response of the first refresh (the server processes the request; the client gets a
//! broken response).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{AUDIENCE, SECRET, TestServer, eventually_async, spa_tokens};
use tessera_client::{
    AuthorizedClient, ClientCredentials, Error, MemoryStore, RenewBefore, RetryPolicy, StoreError,
    TokenManager, TokenSet, TokenStore,
};
use tessera_guard::{Claims, Guard, GuardConfig, GuardLayer};

/// Counts token requests by grant type and can lose the first refresh response.
struct Proxy {
    base: String,
    state: Arc<ProxyState>,
}

struct ProxyState {
    upstream: String,
    refreshes: AtomicUsize,
    client_credentials: AtomicUsize,
    lose_next_refresh: AtomicBool,
    http: reqwest::Client,
}

impl Proxy {
    async fn start(server: &TestServer) -> Self {
        let state = Arc::new(ProxyState {
            upstream: server.base.clone(),
            refreshes: AtomicUsize::new(0),
            client_credentials: AtomicUsize::new(0),
            lose_next_refresh: AtomicBool::new(false),
            http: reqwest::Client::new(),
        });
        let app = Router::new().fallback(forward).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, state }
    }

    fn token_endpoint(&self) -> String {
        format!("{}/api/v2/auth/token", self.base)
    }

    fn refreshes(&self) -> usize {
        self.state.refreshes.load(Ordering::SeqCst)
    }
}

async fn forward(State(proxy): State<Arc<ProxyState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let grant = form
        .iter()
        .find(|(k, _)| k == "grant_type")
        .map(|(_, v)| v.clone());
    let mut lose = false;
    match grant.as_deref() {
        Some("refresh_token") => {
            proxy.refreshes.fetch_add(1, Ordering::SeqCst);
            lose = proxy.lose_next_refresh.swap(false, Ordering::SeqCst);
        }
        Some("client_credentials") => {
            proxy.client_credentials.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }
    let url = format!("{}{}", proxy.upstream, parts.uri);
    let mut upstream = proxy.http.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap();
    if lose {
        // The server has rotated the token; the client sees the connection break mid-body.
        let broken = futures_util::stream::once(async {
            Err::<Bytes, _>(std::io::Error::other("response lost"))
        });
        return (status, Body::from_stream(broken)).into_response();
    }
    let mut response = (status, bytes).into_response();
    for name in [
        "content-type",
        "cache-control",
        "www-authenticate",
        "retry-after",
    ] {
        if let Some(value) = headers.get(name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// A session of alice through `spa` whose access token is due for renewal now.
async fn expiring_session(server: &TestServer) -> TokenSet {
    let body = spa_tokens(server, "").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    TokenSet {
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: Some(body["refresh_token"].as_str().unwrap().to_owned()),
        scope: body["scope"].as_str().map(str::to_owned),
        received_at: now - 900,
        expires_at: now,
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
    }
}

fn manager(proxy: &Proxy, store: impl TokenStore) -> TokenManager {
    TokenManager::refreshing(
        proxy.token_endpoint(),
        ClientCredentials::public("spa"),
        store,
    )
    .retry(quick_retries())
    .build()
}

/// Whether the server accepts `token` as an active access token (introspected as `svc`).
async fn active(server: &TestServer, token: &str) -> bool {
    let r = common::http()
        .post(server.url("/api/v2/auth/introspect"))
        .basic_auth("svc", Some(SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    body["active"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_callers_cause_one_refresh_and_share_its_token() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server).await;
    let session = expiring_session(&server).await;
    let tokens = manager(&proxy, MemoryStore::with(session.clone()));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let tokens = tokens.clone();
        callers.spawn(async move { tokens.access_token().await });
    }
    let mut handed_out = std::collections::HashSet::new();
    while let Some(result) = callers.join_next().await {
        handed_out.insert(result.unwrap().unwrap());
    }
    assert_eq!(proxy.refreshes(), 1, "one refresh for 200 callers");
    assert_eq!(handed_out.len(), 1, "every caller got the same token");
    let renewed = handed_out.into_iter().next().unwrap();
    assert!(renewed != session.access_token, "a new token");
    assert!(
        active(&server, &renewed).await,
        "the family was not revoked"
    );
    let rotated = tokens.tokens().unwrap().refresh_token.unwrap();
    assert!(
        Some(rotated) != session.refresh_token,
        "the refresh token rotated"
    );
}

/// A store whose next save fails, as if the process died between receiving the rotated
/// tokens and persisting them.
struct CrashingStore {
    inner: MemoryStore,
    crash_next_save: AtomicBool,
}

#[async_trait]
impl TokenStore for CrashingStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.inner.load().await
    }
    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        if self.crash_next_save.swap(false, Ordering::SeqCst) {
            return Err(StoreError("killed before the write".into()));
        }
        self.inner.save(tokens).await
    }
    async fn clear(&self) -> Result<(), StoreError> {
        self.inner.clear().await
    }
}

/// Renews once with a crash before the save, then "restarts" from what the store holds.
async fn renew_across_a_crash(server: &TestServer) -> Result<String, Error> {
    let proxy = Proxy::start(server).await;
    let session = expiring_session(server).await;
    let before_crash = manager(
        &proxy,
        CrashingStore {
            inner: MemoryStore::with(session.clone()),
            crash_next_save: AtomicBool::new(true),
        },
    );
    let crashed = before_crash.access_token().await;
    assert!(
        matches!(crashed, Err(Error::Store(_))),
        "nothing handed out before the save: {crashed:?}"
    );
    assert_eq!(proxy.refreshes(), 1, "the server rotated the token");
    drop(before_crash);
    // The restarted process finds the old, already rotated refresh token in its store.
    let restarted = manager(&proxy, MemoryStore::with(session));
    restarted.access_token().await
}

#[tokio::test]
async fn a_crash_before_the_save_is_survived_within_the_grace_window() {
    let server =
        TestServer::start_with(|policy| policy.refresh_grace = Duration::from_secs(30)).await;
    let token = renew_across_a_crash(&server).await.unwrap();
    assert!(active(&server, &token).await);
}

#[tokio::test]
async fn a_crash_before_the_save_without_grace_requires_reauthentication() {
    let server = TestServer::start().await;
    assert_eq!(
        renew_across_a_crash(&server).await,
        Err(Error::ReauthenticationRequired)
    );
}

#[tokio::test]
async fn a_failed_save_is_retried_before_the_next_token_is_handed_out() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server).await;
    let store = Arc::new(CrashingStore {
        inner: MemoryStore::with(expiring_session(&server).await),
        crash_next_save: AtomicBool::new(true),
    });
    let tokens = manager(&proxy, SharedStore(store.clone()));
    assert!(matches!(tokens.access_token().await, Err(Error::Store(_))));
    // The process lives on: the next call saves first, then hands out, without a refresh.
    let token = tokens.access_token().await.unwrap();
    assert_eq!(proxy.refreshes(), 1);
    let saved = store.inner.load().await.unwrap().unwrap();
    assert_eq!(saved.access_token, token);
    assert!(active(&server, &token).await);
}

struct SharedStore(Arc<CrashingStore>);

#[async_trait]
impl TokenStore for SharedStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.0.load().await
    }
    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        self.0.save(tokens).await
    }
    async fn clear(&self) -> Result<(), StoreError> {
        self.0.clear().await
    }
}

#[tokio::test]
async fn a_lost_refresh_response_is_recovered_within_the_grace_window() {
    let server =
        TestServer::start_with(|policy| policy.refresh_grace = Duration::from_secs(30)).await;
    let proxy = Proxy::start(&server).await;
    proxy.state.lose_next_refresh.store(true, Ordering::SeqCst);
    let tokens = manager(&proxy, MemoryStore::with(expiring_session(&server).await));
    let token = tokens.access_token().await.unwrap();
    assert_eq!(proxy.refreshes(), 2, "the lost one and its retry");
    assert!(active(&server, &token).await);
    // The session goes on: the next rotation works too.
    let next = tokens
        .renew_rejected(&token)
        .await
        .expect("the family is intact");
    assert!(active(&server, &next).await);
}

#[tokio::test]
async fn a_lost_refresh_response_without_grace_ends_the_session_cleanly() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server).await;
    proxy.state.lose_next_refresh.store(true, Ordering::SeqCst);
    let store = Arc::new(CrashingStore {
        inner: MemoryStore::with(expiring_session(&server).await),
        crash_next_save: AtomicBool::new(false),
    });
    let tokens = manager(&proxy, SharedStore(store.clone()));
    assert_eq!(
        tokens.access_token().await,
        Err(Error::ReauthenticationRequired)
    );
    assert_eq!(
        store.inner.load().await.unwrap(),
        None,
        "the dead session is cleared"
    );
    assert_eq!(
        tokens.access_token().await,
        Err(Error::ReauthenticationRequired),
        "and not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_are_cached_and_fetched_once_for_concurrent_callers() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server).await;
    let tokens = TokenManager::client_credentials(
        proxy.token_endpoint(),
        ClientCredentials::confidential("svc", SECRET),
    )
    .scope("read")
    .build();
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let tokens = tokens.clone();
        callers.spawn(async move { tokens.access_token().await.unwrap() });
    }
    let mut handed_out = std::collections::HashSet::new();
    while let Some(token) = callers.join_next().await {
        handed_out.insert(token.unwrap());
    }
    assert_eq!(handed_out.len(), 1);
    assert!(handed_out.contains(&tokens.access_token().await.unwrap()));
    assert_eq!(proxy.state.client_credentials.load(Ordering::SeqCst), 1);
    assert_eq!(tokens.tokens().unwrap().scope.as_deref(), Some("read"));
}

#[tokio::test]
async fn wrong_client_credentials_are_a_typed_rejection_not_a_retry_loop() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server).await;
    let tokens = TokenManager::client_credentials(
        proxy.token_endpoint(),
        ClientCredentials::confidential("svc", "wrong"),
    )
    .build();
    let error = tokens.access_token().await.unwrap_err();
    assert!(
        matches!(&error, Error::Rejected { status: 401, error, .. } if error == "invalid_client"),
        "{error:?}"
    );
    assert!(!error.to_string().contains("wrong"), "no secret in errors");
    assert_eq!(proxy.state.client_credentials.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_reported_as_unavailable() {
    let tokens = TokenManager::client_credentials(
        "http://127.0.0.1:9/api/v2/auth/token",
        ClientCredentials::confidential("svc", SECRET),
    )
    .retry(quick_retries())
    .build();
    assert!(matches!(
        tokens.access_token().await,
        Err(Error::Unavailable(_))
    ));
}

#[tokio::test]
async fn background_renewal_renews_before_callers_need_it() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server).await;
    let body = spa_tokens(&server, "").await;
    let lifetime = body["expires_in"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let session = TokenSet {
        access_token: body["access_token"].as_str().unwrap().to_owned(),
        refresh_token: Some(body["refresh_token"].as_str().unwrap().to_owned()),
        scope: None,
        received_at: now,
        expires_at: now + lifetime,
    };
    // Renewal becomes due about a second from now.
    let tokens = TokenManager::refreshing(
        proxy.token_endpoint(),
        ClientCredentials::public("spa"),
        MemoryStore::with(session.clone()),
    )
    .renew_before(RenewBefore::Fixed(Duration::from_secs(lifetime - 2)))
    .build();
    assert_eq!(tokens.access_token().await.unwrap(), session.access_token);
    let background = tokens.spawn_background_renewal();
    eventually_async(Duration::from_secs(10), || async {
        tokens.tokens().unwrap().access_token != session.access_token
    })
    .await;
    background.abort();
    let renewed = tokens.tokens().unwrap().access_token;
    assert!(
        tokens.access_token().await.unwrap() == renewed,
        "no wait, no refresh"
    );
    assert_eq!(proxy.refreshes(), 1);
}

/// A resource server that checks every request online (introspection, no cache), so a
/// revoked token is refused at once with `401 invalid_token`.
async fn resource_server(server: &TestServer) -> String {
    let config = GuardConfig::introspecting(
        server.url("/api/v2/auth/introspect"),
        "svc",
        SECRET,
        &server.issuer,
        AUDIENCE,
    );
    let mut config = config;
    config.cache_ttl = Duration::ZERO;
    let guard = Guard::new(config).unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|claims: Claims| async move { claims.sub }).post(|| async { "posted" }),
        )
        .layer(GuardLayer::new(guard));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn the_reqwest_wrapper_renews_and_retries_once_on_invalid_token() {
    let server = TestServer::start().await;
    let proxy = Proxy::start(&server).await;
    let api = resource_server(&server).await;
    let body = spa_tokens(&server, "").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let session = TokenSet {
        access_token: access.clone(),
        refresh_token: Some(body["refresh_token"].as_str().unwrap().to_owned()),
        scope: None,
        received_at: now,
        expires_at: now + 900,
    };
    let tokens = manager(&proxy, MemoryStore::with(session));
    let client = AuthorizedClient::new(reqwest::Client::new(), tokens.clone());
    let me = client.send(client.get(format!("{api}/me"))).await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.text().await.unwrap(), "usr_alice");
    assert_eq!(proxy.refreshes(), 0, "a fresh token is not renewed");

    // The access token is revoked behind the client's back (RFC 7009).
    let revoked = common::http()
        .post(server.url("/api/v2/auth/revoke"))
        .form(&[("token", access.as_str()), ("client_id", "spa")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // A POST is not repeated: the caller sees the 401.
    let post = client
        .send(client.request(reqwest::Method::POST, format!("{api}/me")))
        .await
        .unwrap();
    assert_eq!(post.status(), 401);
    assert_eq!(proxy.refreshes(), 0);
    // A GET is: renewed once, repeated, and it passes.
    let me = client.send(client.get(format!("{api}/me"))).await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(proxy.refreshes(), 1);
    assert!(tokens.tokens().unwrap().access_token != access, "renewed");
}
