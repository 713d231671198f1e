//! Audit events over a real socket, captured from `tracing`: one schema (target `audit`,
//! `event`, `outcome` and a fixed set of optional fields) for failed and throttled sign-ins,
//! lockouts, sign-ins, token issuance for every grant, refresh reuse and revocation, with
//! hash prefixes in place of tokens; and not one secret, token or password anywhere in the
//! server's log output.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    PASSWORD, REDIRECT, SECRET, TestServer, VERIFIER, cookies_of, hidden_inputs, http, spa_tokens,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing_subscriber::fmt::MakeWriter;

/// The fields an audit event may carry: the one schema.
const SCHEMA: [&str; 15] = [
    "message",
    "event",
    "outcome",
    "client_id",
    "user",
    "account",
    "ip",
    "grant",
    "token",
    "family",
    "kid",
    "scope",
    "reason",
    "retry_after_s",
    "detail",
];

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The audit events, as their `fields` objects.
    fn audit_events(&self) -> Vec<serde_json::Map<String, Value>> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|v| v["target"] == "audit")
            .map(|v| v["fields"].as_object().unwrap().clone())
            .collect()
    }
}

fn prefix(secret: &str) -> String {
    hex8(&Sha256::digest(secret.as_bytes()))
}

fn hex8(digest: &[u8]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Submits the login form of a `spa` authorization request once.
async fn sign_in(server: &TestServer, username: &str, password: &str) -> u16 {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
    let url = server.url(&format!(
        "/api/v2/auth/authorize?response_type=code&client_id=spa&redirect_uri={}\
         &code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    ));
    let page = http().get(&url).send().await.unwrap();
    let cookie = cookies_of(&page);
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    let r = http()
        .post(server.url("/api/v2/auth/authorize"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn refresh(server: &TestServer, refresh_token: &str) -> (u16, Value) {
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "spa"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn audit_events_follow_one_schema_and_carry_no_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // The test runtime is single-threaded: the server's tasks run on this thread and log
    // through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = TestServer::start_with(|p| {
        p.login_throttle.max_failures = 3;
        p.login_throttle.backoff = Duration::ZERO;
    })
    .await;
    server.add_user("bob", PASSWORD, &[]).await;
    const WRONG: &str = "hunter2-but-not-bobs";

    // Three failures lock bob; the fourth attempt is not even checked.
    assert_eq!(sign_in(&server, "bob", WRONG).await, 401);
    assert_eq!(sign_in(&server, "bob", WRONG).await, 401);
    assert_eq!(sign_in(&server, "bob", WRONG).await, 429);
    assert_eq!(sign_in(&server, "bob", PASSWORD).await, 429);

    // Alice signs in and redeems a code; the refresh token is rotated, then reused.
    let tokens = spa_tokens(&server, "read").await;
    let first_access = tokens["access_token"].as_str().unwrap().to_owned();
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) = refresh(&server, &first_refresh).await;
    assert_eq!(status, 200);
    let (status, _) = refresh(&server, &first_refresh).await;
    assert_eq!(status, 400);

    // A service token, then revoked.
    let service_token = common::service_token(&server).await;
    let r = http()
        .post(server.url("/api/v2/auth/revoke"))
        .basic_auth("svc", Some(SECRET))
        .form(&[("token", service_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let events = captured.audit_events();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "login_failed",
            "login_failed",
            "login_failed",
            "login_locked",
            "login_failed",
            "login_succeeded",
            "token_issued",
            "token_issued",
            "refresh_reuse_detected",
            "token_issued",
            "token_revoked",
        ]
    );
    let schema: BTreeSet<&str> = SCHEMA.into_iter().collect();
    for e in &events {
        assert!(e["outcome"].is_string(), "{e:?}");
        assert_eq!(e["message"], e["event"]);
        for key in e.keys() {
            assert!(
                schema.contains(key.as_str()),
                "field {key} is not in the schema"
            );
        }
    }

    let bob = prefix("bob");
    let failed = &events[0];
    assert_eq!(failed["outcome"], "failure");
    assert_eq!(failed["client_id"], "spa");
    assert_eq!(failed["user"], "usr_bob");
    assert_eq!(failed["account"], bob.as_str());
    assert_eq!(failed["ip"], "127.0.0.1");
    let locked = &events[3];
    assert_eq!(locked["outcome"], "locked");
    assert_eq!(locked["reason"], "account");
    assert_eq!(locked["user"], "usr_bob");
    assert_eq!(locked["retry_after_s"], 900);
    let throttled = &events[4];
    assert_eq!(throttled["outcome"], "throttled");
    assert_eq!(throttled["account"], bob.as_str());
    // Not looked up, so not known: the same event an unknown username gets.
    assert!(throttled.get("user").is_none());
    assert_eq!(events[5]["user"], "usr_alice");

    let code = &events[6];
    assert_eq!(code["grant"], "authorization_code");
    assert_eq!(code["client_id"], "spa");
    assert_eq!(code["user"], "usr_alice");
    assert_eq!(code["scope"], "read");
    assert_eq!(code["token"], prefix(&first_access).as_str());
    let family = code["family"].as_str().unwrap();
    let rotation = &events[7];
    assert_eq!(rotation["grant"], "refresh_token");
    assert_eq!(rotation["family"], family);
    assert_eq!(
        rotation["token"],
        prefix(rotated["access_token"].as_str().unwrap()).as_str()
    );
    let reuse = &events[8];
    assert_eq!(reuse["outcome"], "failure");
    assert_eq!(reuse["family"], family);
    assert_eq!(reuse["token"], prefix(&first_refresh).as_str());
    assert_eq!(reuse["reason"], "refresh_token_reuse");
    let service = &events[9];
    assert_eq!(
        (service["grant"].as_str(), service["client_id"].as_str()),
        (Some("client_credentials"), Some("svc"))
    );
    assert!(service.get("user").is_none());
    let revoked = &events[10];
    assert_eq!(revoked["token"], prefix(&service_token).as_str());
    assert_eq!(revoked["client_id"], "svc");

    // Nothing secret anywhere in the output, audit or not.
    let everything = captured.text();
    for secret in [
        PASSWORD,
        WRONG,
        SECRET,
        &first_access,
        &first_refresh,
        rotated["access_token"].as_str().unwrap(),
        rotated["refresh_token"].as_str().unwrap(),
        &service_token,
    ] {
        assert!(
            !everything.contains(secret),
            "a secret reached the logs: {}…",
            &secret[..8]
        );
    }
}
