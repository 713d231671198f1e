//! The token endpoint's contract (RFC 6749 §3.2, §4.1.3, §4.4, §5), table-driven, over a
//! real socket.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{AUDIENCE, PASSWORD, REDIRECT, SECRET, TestServer, browser_login, http, query_of};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::client::{ClientStore, GrantType};
use tessera_core::refresh_family::RefreshStore;
use tessera_core::secret::SecretHash;
use tessera_core::user::UserStore;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct Answer {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

async fn post(server: &TestServer, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Answer {
    let mut request = http().post(server.url("/api/v2/auth/token")).form(form);
    if let Some((id, secret)) = basic {
        let value = STANDARD.encode(format!("{id}:{secret}"));
        request = request.header("authorization", format!("Basic {value}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

/// A fresh code for `client_id`, issued to alice with the RFC 7636 example challenge.
async fn code_for(server: &TestServer, client_id: &str, extra: &str) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
    let url = server.url(&format!(
        "/api/v2/auth/authorize?response_type=code&client_id={client_id}\
         &redirect_uri={}&state=s1&code_challenge={challenge}&code_challenge_method=S256{extra}",
        urlencode(REDIRECT)
    ));
    let location = browser_login(&url, "alice", PASSWORD).await;
    query_of(&location)["code"].clone()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn successful_response_shape_and_no_store_headers() {
    let server = TestServer::start().await;
    let a = post(
        &server,
        Some(("svc", SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 900);
    assert_eq!(a.body["scope"], "read write");
    assert!(a.body["access_token"].as_str().unwrap().split('.').count() == 3);
    assert!(a.body.get("refresh_token").is_none());
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.headers["pragma"], "no-cache");
}

#[tokio::test]
async fn client_credentials_error_table() {
    let server = TestServer::start().await;
    type Case<'a> = (
        &'a str,
        Option<(&'a str, &'a str)>,
        Vec<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cc = ("grant_type", "client_credentials");
    let cases: Vec<Case> = vec![
        (
            "wrong secret (basic)",
            Some(("svc", "nope")),
            vec![cc],
            401,
            "invalid_client",
        ),
        (
            "unknown client (basic)",
            Some(("ghost", SECRET)),
            vec![cc],
            401,
            "invalid_client",
        ),
        (
            "wrong secret (post)",
            None,
            vec![cc, ("client_id", "svc"), ("client_secret", "x")],
            401,
            "invalid_client",
        ),
        (
            "no client authentication",
            None,
            vec![cc],
            401,
            "invalid_client",
        ),
        (
            "confidential client without secret",
            None,
            vec![cc, ("client_id", "svc")],
            401,
            "invalid_client",
        ),
        (
            "two auth methods",
            Some(("svc", SECRET)),
            vec![cc, ("client_secret", SECRET)],
            400,
            "invalid_request",
        ),
        (
            "basic id differs from form id",
            Some(("svc", SECRET)),
            vec![cc, ("client_id", "web")],
            401,
            "invalid_client",
        ),
        (
            "public client",
            None,
            vec![cc, ("client_id", "spa")],
            400,
            "unauthorized_client",
        ),
        (
            "grant not allowed",
            Some(("web", SECRET)),
            vec![cc],
            400,
            "unauthorized_client",
        ),
        (
            "unknown scope",
            Some(("svc", SECRET)),
            vec![cc, ("scope", "read admin")],
            400,
            "invalid_scope",
        ),
        (
            "malformed scope",
            Some(("svc", SECRET)),
            vec![cc, ("scope", "read  write")],
            400,
            "invalid_scope",
        ),
        (
            "unregistered resource",
            Some(("svc", SECRET)),
            vec![cc, ("resource", "https://evil.test")],
            400,
            "invalid_target",
        ),
        (
            "missing grant_type",
            Some(("svc", SECRET)),
            vec![],
            400,
            "invalid_request",
        ),
        (
            "repeated grant_type",
            Some(("svc", SECRET)),
            vec![cc, cc],
            400,
            "invalid_request",
        ),
        (
            "unsupported grant_type",
            Some(("svc", SECRET)),
            vec![("grant_type", "password")],
            400,
            "unsupported_grant_type",
        ),
        (
            "implicit-style grant",
            Some(("svc", SECRET)),
            vec![("grant_type", "token")],
            400,
            "unsupported_grant_type",
        ),
    ];
    for (name, basic, form, status, error) in cases {
        let a = post(&server, basic, &form).await;
        assert_eq!(a.status, status, "{name}: {}", a.body);
        assert_eq!(a.body["error"], error, "{name}");
        assert!(a.body["error_description"].is_string(), "{name}");
        let challenged = a.headers.contains_key("www-authenticate");
        assert_eq!(
            challenged,
            status == 401 && basic.is_some(),
            "{name}: WWW-Authenticate iff Basic failed"
        );
        let text = a.body.to_string();
        assert!(!text.contains(SECRET), "{name}: secret echoed");
    }
}

#[tokio::test]
async fn requested_resource_becomes_the_audience() {
    let server = TestServer::start().await;
    let form = [
        ("grant_type", "client_credentials"),
        ("resource", "https://other.example.test"),
    ];
    let a = post(&server, Some(("svc", SECRET)), &form).await;
    let token = a.body["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://other.example.test");
    let a = post(
        &server,
        Some(("svc", SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let payload = a.body["access_token"]
        .as_str()
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap()
        .to_owned();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(
        claims["aud"], AUDIENCE,
        "default audience is the first registered"
    );
}

#[tokio::test]
async fn authorization_code_error_table() {
    let server = TestServer::start().await;
    let ac = ("grant_type", "authorization_code");
    // Each case gets its own fresh code; `{code}` is substituted.
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "wrong verifier",
            "spa",
            vec![
                (
                    "code_verifier",
                    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
                ),
                ("redirect_uri", REDIRECT),
            ],
            400,
            "invalid_grant",
        ),
        (
            "malformed verifier",
            "spa",
            vec![("code_verifier", "short"), ("redirect_uri", REDIRECT)],
            400,
            "invalid_request",
        ),
        (
            "missing verifier",
            "spa",
            vec![("redirect_uri", REDIRECT)],
            400,
            "invalid_request",
        ),
        (
            "redirect_uri mismatch",
            "spa",
            vec![
                ("code_verifier", VERIFIER),
                ("redirect_uri", "http://127.0.0.1:8765/other"),
            ],
            400,
            "invalid_grant",
        ),
        (
            "redirect_uri omitted though sent",
            "spa",
            vec![("code_verifier", VERIFIER)],
            400,
            "invalid_request",
        ),
        (
            "resource not part of the grant",
            "spa",
            vec![
                ("code_verifier", VERIFIER),
                ("redirect_uri", REDIRECT),
                ("resource", "https://evil.test"),
            ],
            400,
            "invalid_target",
        ),
    ];
    for (name, client, form, status, error) in cases {
        let code = code_for(&server, "spa", "").await;
        let mut full = vec![ac, ("client_id", client), ("code", &code)];
        full.extend(form);
        let a = post(&server, None, &full).await;
        assert_eq!(a.status, status, "{name}: {}", a.body);
        assert_eq!(a.body["error"], error, "{name}");
        assert!(!a.body.to_string().contains(&code), "{name}: code echoed");
    }
    let a = post(
        &server,
        None,
        &[
            ac,
            ("client_id", "spa"),
            ("code", "tsc_made-up"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_grant")),
        "unknown code"
    );
    let a = post(
        &server,
        None,
        &[ac, ("client_id", "spa"), ("code_verifier", VERIFIER)],
    )
    .await;
    assert_eq!(a.body["error"], "invalid_request", "missing code");
}

#[tokio::test]
async fn another_clients_code_is_refused_without_burning_it() {
    let server = TestServer::start().await;
    let code = code_for(&server, "spa", "").await;
    let form = |id: &'static str| {
        vec![
            ("grant_type", "authorization_code"),
            ("client_id", id),
            ("code", code.as_str()),
            ("code_verifier", VERIFIER),
            ("redirect_uri", REDIRECT),
        ]
    };
    let stolen = post(
        &server,
        Some(("web", SECRET)),
        &form("web")[..1]
            .iter()
            .chain(&form("web")[2..])
            .copied()
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(
        (stolen.status, stolen.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let legit = post(&server, None, &form("spa")).await;
    assert_eq!(
        legit.status, 200,
        "the rightful client can still redeem: {}",
        legit.body
    );
}

#[tokio::test]
async fn expired_code_is_refused() {
    let server = TestServer::start().await;
    let code = code_for(&server, "spa", "").await;
    server.clock.advance(61);
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", &code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
    ];
    let a = post(&server, None, &form).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn disabled_user_cannot_redeem_an_outstanding_code() {
    let server = TestServer::start().await;
    let code = code_for(&server, "spa", "").await;
    assert!(
        UserStore::set_disabled(&server.store, "alice", true)
            .await
            .unwrap()
    );
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", &code),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
    ];
    let a = post(&server, None, &form).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_of_one_code_have_exactly_one_winner() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let code = code_for(&server, "spa", "").await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (server, code) = (server.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            let form = [
                ("grant_type", "authorization_code"),
                ("client_id", "spa"),
                ("code", code.as_str()),
                ("code_verifier", VERIFIER),
                ("redirect_uri", REDIRECT),
            ];
            let a = post(&server, None, &form).await;
            (a.status, a.body["error"].as_str().map(str::to_owned))
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, _) => wins += 1,
            (400, Some(e)) => assert_eq!(e, "invalid_grant"),
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(wins, 1);
}

/// A request body that sends its first bytes and then stalls forever (a slowloris client).
struct Trickle(bool);

impl http_body::Body for Trickle {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.0 {
            return std::task::Poll::Pending;
        }
        self.0 = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data("grant_type=".into()))))
    }
}

#[tokio::test]
async fn a_stalled_request_body_is_cut_off_with_408() {
    use tower::ServiceExt;
    let server = TestServer::start().await;
    let app = tessera_server::app(server.state.clone());
    let request = axum::http::Request::post("/api/v2/auth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::new(Trickle(false)))
        .unwrap();
    // Paused time advances by itself once everything waits, so the timeout fires at once.
    tokio::time::pause();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 408);
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "invalid_request");
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_gives_503_without_internals() {
    let server = TestServer::start().await;
    server.store.close().await;
    let a = post(
        &server,
        Some(("svc", SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["error"], "temporarily_unavailable");
    let text = a.body.to_string();
    assert!(
        !text.contains("sqlx") && !text.contains("pool") && !text.contains("SELECT"),
        "{text}"
    );
}

/// `exp - iat` of the access token in a token response, and its `expires_in`.
fn access_lifetime(body: &Value) -> (i64, i64) {
    let payload = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("an access token: {body}"))
        .split('.')
        .nth(1)
        .unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    (lifetime, body["expires_in"].as_i64().unwrap())
}

/// `expires_at - issued_at` of the stored refresh token of a token response.
async fn refresh_lifetime(server: &TestServer, body: &Value) -> i64 {
    let token = body["refresh_token"].as_str().expect("a refresh token");
    let (stored, _) = RefreshStore::find(&server.store, &SecretHash::of(token))
        .await
        .unwrap()
        .expect("the refresh token is stored");
    stored.expires_at.0 - stored.issued_at.0
}

/// Redeems a code of `web` (confidential, global lifetimes) for alice.
async fn web_tokens(server: &TestServer) -> Value {
    let code = code_for(server, "web", "").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
    ];
    let a = post(server, Some(("web", SECRET)), &form).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

async fn refreshed(server: &TestServer, refresh_token: &str) -> Value {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "spa"),
        ("refresh_token", refresh_token),
    ];
    let a = post(server, None, &form).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

#[tokio::test]
async fn a_clients_own_token_lifetimes_beat_the_global_ones() {
    const MINUTE: u64 = 60;
    const DAY: i64 = 86_400;
    let server = TestServer::start().await;
    let global_access = (900, 900);
    let global_refresh = 14 * DAY;
    let five_minutes = Some(Duration::from_secs(5 * MINUTE));
    let two_days = Some(Duration::from_secs(2 * DAY as u64));

    // A service with only an access override, next to `svc` with none.
    server
        .add_client(
            "svc-short",
            Some(SECRET),
            &[GrantType::ClientCredentials],
            &[],
        )
        .await;
    assert!(
        ClientStore::set_token_lifetimes(&server.store, "svc-short", five_minutes, None)
            .await
            .unwrap()
    );
    let cc = [("grant_type", "client_credentials")];
    let short = post(&server, Some(("svc-short", SECRET)), &cc).await;
    assert_eq!(short.status, 200, "{}", short.body);
    assert_eq!(access_lifetime(&short.body), (300, 300), "the override");
    let global = post(&server, Some(("svc", SECRET)), &cc).await;
    assert_eq!(
        access_lifetime(&global.body),
        global_access,
        "the global TTL"
    );

    // `spa` overrides both: its code exchange and each rotation use them...
    assert!(
        ClientStore::set_token_lifetimes(&server.store, "spa", five_minutes, two_days)
            .await
            .unwrap()
    );
    let first = common::spa_tokens(&server, "read").await;
    assert_eq!(access_lifetime(&first), (300, 300));
    assert_eq!(refresh_lifetime(&server, &first).await, 2 * DAY);
    let rotated = refreshed(&server, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(access_lifetime(&rotated), (300, 300));
    assert_eq!(refresh_lifetime(&server, &rotated).await, 2 * DAY);
    // ...while `web`, with none, gets the global values.
    let web = web_tokens(&server).await;
    assert_eq!(access_lifetime(&web), global_access);
    assert_eq!(refresh_lifetime(&server, &web).await, global_refresh);

    // Cleared, the global values apply from the next token on.
    assert!(
        ClientStore::set_token_lifetimes(&server.store, "spa", None, None)
            .await
            .unwrap()
    );
    let after = refreshed(&server, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(access_lifetime(&after), global_access);
    assert_eq!(refresh_lifetime(&server, &after).await, global_refresh);
}
