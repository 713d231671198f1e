//! The consent page (RFC 6749 §4.1.1-4.1.2.1) over a real socket: shown for third-party
//! clients only, remembered per user and client until revoked, asked again for new scopes,
//! denied with `access_denied`, and protected against cross-site posts.

mod common;

use common::{
    Browser, PASSWORD, REDIRECT, TestServer, authorize_url_for, hidden_inputs, http, query_of,
    redeem,
};
use serde_json::Value;
use tessera_core::consent::ScopeDescriptions;

#[tokio::test]
async fn consent_is_asked_for_a_third_party_client_and_skipped_for_a_first_party_one() {
    let server = TestServer::start().await;

    // First-party: straight from the login form to the client with a code.
    let mut browser = Browser::new(&server);
    let page = browser
        .authorize(
            &authorize_url_for(&server, "spa", "read"),
            "alice",
            PASSWORD,
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert!(page.location().unwrap().starts_with(REDIRECT));
    assert!(query_of(page.location().unwrap()).contains_key("code"));

    // Third-party: the login form sends the browser back to the authorization endpoint by
    // GET (Post/Redirect/Get), which shows the consent page naming the client and the user.
    let mut browser = Browser::new(&server);
    let login = browser
        .get(&authorize_url_for(&server, "partner", "read write"))
        .await;
    assert!(login.is_login());
    let mut form = hidden_inputs(&login.html);
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), PASSWORD.into()));
    let posted = browser.post("/api/v2/auth/authorize", &form).await;
    assert_eq!(posted.status, 303);
    let again = posted.location().unwrap();
    assert!(
        again.starts_with("/api/v2/auth/authorize?") && again.contains("client_id=partner"),
        "{again}"
    );
    assert!(!again.contains("password") && !again.contains("csrf_token"));
    assert!(browser.cookie("tessera_session").is_some(), "signed in");
    let consent = browser.follow_local(posted).await;
    assert!(consent.is_consent(), "{}", consent.html);
    assert!(consent.html.contains("partner app"), "client name shown");
    assert!(consent.html.contains("alice"), "user shown");
    assert!(consent.html.contains("127.0.0.1:8765"), "return host shown");
    assert!(consent.html.contains("name=\"decision\" value=\"approve\""));
    assert!(consent.html.contains("name=\"decision\" value=\"deny\""));
    assert!(!consent.html.contains("<script"), "works without script");
    // Nothing was issued before the decision.
    assert!(consent.location().is_none());
}

#[tokio::test]
async fn approving_issues_a_code_and_the_consent_is_remembered() {
    let server = TestServer::start().await;
    let url = authorize_url_for(&server, "partner", "read");
    let mut browser = Browser::new(&server);
    let consent = browser.authorize(&url, "alice", PASSWORD).await;
    let done = browser.decide(&consent, "approve").await;
    assert_eq!(done.status, 303);
    let location = done.location().unwrap().to_owned();
    let q = query_of(&location);
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(q.get("state").map(String::as_str), Some("xyz"));
    assert_eq!(q.get("iss"), Some(&server.issuer));
    let tokens = redeem(&server, "partner", None, &location).await;
    assert_eq!(tokens["scope"], "read");

    let stored = server
        .state
        .server
        .ports()
        .consents
        .find_consent("usr_alice", "partner")
        .await
        .unwrap()
        .expect("consent stored");
    assert_eq!(stored.scopes.to_string(), "read");

    // The same browser: a code at once, no page.
    let next = browser.get(&url).await;
    assert_eq!(next.status, 303, "{}", next.html);
    assert!(query_of(next.location().unwrap()).contains_key("code"));
    // Another browser (a new sign-in): the login form, then a code, no consent page.
    let mut other = Browser::new(&server);
    let page = other.authorize(&url, "alice", PASSWORD).await;
    assert_eq!(page.status, 303, "{}", page.html);
    assert!(page.location().unwrap().starts_with(REDIRECT));
    // Without a scope the client asks for every scope it may have: `write` was never
    // approved, so that asks again.
    let everything = other.get(&authorize_url_for(&server, "partner", "")).await;
    assert!(everything.is_consent());
}

#[tokio::test]
async fn a_scope_not_yet_approved_asks_again_and_is_added() {
    let server = TestServer::start_with(|policy| {
        policy.scope_descriptions =
            ScopeDescriptions::parse(&["read=Read your <orders>", "write=Change your orders"])
                .unwrap();
    })
    .await;
    let mut browser = Browser::new(&server);
    let first = browser
        .authorize(
            &authorize_url_for(&server, "partner", "read"),
            "alice",
            PASSWORD,
        )
        .await;
    assert!(
        first.html.contains("Read your &lt;orders&gt;"),
        "described, escaped"
    );
    assert!(
        !first.html.contains("Change your orders"),
        "only what is asked"
    );
    browser.decide(&first, "approve").await;

    let wider = browser
        .get(&authorize_url_for(&server, "partner", "read write"))
        .await;
    assert!(wider.is_consent(), "write was never approved");
    assert!(wider.html.contains("Change your orders"));
    let done = browser.decide(&wider, "approve").await;
    assert_eq!(done.status, 303);
    let tokens = redeem(&server, "partner", None, done.location().unwrap()).await;
    assert_eq!(tokens["scope"], "read write");

    // Both are on record now: either alone, or both, goes straight through.
    for scope in ["read", "write", "read write"] {
        let page = browser
            .get(&authorize_url_for(&server, "partner", scope))
            .await;
        assert_eq!(page.status, 303, "{scope}");
    }
}

#[tokio::test]
async fn scopes_without_a_description_are_shown_by_name() {
    let server = TestServer::start_with(|policy| {
        policy.scope_descriptions = ScopeDescriptions::parse(&["read=Read your orders"]).unwrap();
    })
    .await;
    let mut browser = Browser::new(&server);
    let page = browser
        .authorize(
            &authorize_url_for(&server, "partner", "read write"),
            "alice",
            PASSWORD,
        )
        .await;
    assert!(page.html.contains("Read your orders"));
    assert!(page.html.contains("<code>write</code>"), "{}", page.html);
}

#[tokio::test]
async fn denying_redirects_with_access_denied_state_and_iss_and_is_not_remembered() {
    let server = TestServer::start().await;
    let url = authorize_url_for(&server, "partner", "read");
    let mut browser = Browser::new(&server);
    let consent = browser.authorize(&url, "alice", PASSWORD).await;
    let denied = browser.decide(&consent, "deny").await;
    assert_eq!(denied.status, 303);
    let location = denied.location().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(location);
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert_eq!(q.get("state").map(String::as_str), Some("xyz"));
    assert_eq!(q.get("iss"), Some(&server.issuer));
    assert!(!q.contains_key("code"));
    let stored = server
        .state
        .server
        .ports()
        .consents
        .find_consent("usr_alice", "partner")
        .await
        .unwrap();
    assert_eq!(stored, None);
    // Asked again next time.
    assert!(browser.get(&url).await.is_consent());
}

#[tokio::test]
async fn revoking_the_consent_asks_again() {
    let server = TestServer::start().await;
    let url = authorize_url_for(&server, "partner", "read");
    let mut browser = Browser::new(&server);
    let consent = browser.authorize(&url, "alice", PASSWORD).await;
    browser.decide(&consent, "approve").await;
    assert_eq!(browser.get(&url).await.status, 303);

    // What `tessera user revoke-consent alice --client partner` does.
    let consents = &server.state.server.ports().consents;
    assert_eq!(
        consents
            .revoke_consents("usr_alice", Some("partner"))
            .await
            .unwrap(),
        1
    );
    let again = browser.get(&url).await;
    assert!(again.is_consent(), "{}", again.html);
    let done = browser.decide(&again, "approve").await;
    assert_eq!(done.status, 303);
    assert!(query_of(done.location().unwrap()).contains_key("code"));
}

#[tokio::test]
async fn a_consent_post_without_the_right_csrf_token_is_refused() {
    let server = TestServer::start().await;
    let url = authorize_url_for(&server, "partner", "read");
    let mut browser = Browser::new(&server);
    let consent = browser.authorize(&url, "alice", PASSWORD).await;
    let genuine = hidden_inputs(&consent.html);
    assert!(genuine.iter().any(|(k, _)| k == "csrf_token"));
    let with = |token: Option<&str>| {
        let mut form: Vec<(String, String)> = genuine
            .iter()
            .filter(|(k, _)| k != "csrf_token")
            .cloned()
            .collect();
        if let Some(t) = token {
            form.push(("csrf_token".into(), t.into()));
        }
        form.push(("decision".into(), "approve".into()));
        form
    };
    let post = |form: Vec<(String, String)>, cookie: Option<String>| {
        let mut request = http().post(server.url("/api/v2/auth/consent")).form(&form);
        if let Some(c) = cookie {
            request = request.header("cookie", c);
        }
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.headers().get("location").is_some())
        }
    };
    let session = browser.cookie_header();

    // Another signed-in session of the same user: its own token is not this one's.
    let mut other = Browser::new(&server);
    let other_page = other.authorize(&url, "alice", PASSWORD).await;
    let other_token = hidden_inputs(&other_page.html)
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1;
    // The login form's token for this browser is not a consent token either.
    let login_token = hidden_inputs(&Browser::new(&server).get(&url).await.html)
        .into_iter()
        .find(|(k, _)| k == "csrf_token")
        .unwrap()
        .1;

    for (name, form, cookie) in [
        ("no token", with(None), Some(session.clone())),
        ("wrong token", with(Some("x")), Some(session.clone())),
        (
            "another session's token",
            with(Some(&other_token)),
            Some(session.clone()),
        ),
        (
            "a login token",
            with(Some(&login_token)),
            Some(session.clone()),
        ),
        (
            "no session cookie (cross-site post)",
            genuine_with_decision(&genuine),
            None,
        ),
    ] {
        let (status, redirected) = post(form, cookie).await;
        assert_eq!(status, 403, "{name}");
        assert!(!redirected, "{name}");
    }
    let stored = server
        .state
        .server
        .ports()
        .consents
        .find_consent("usr_alice", "partner")
        .await
        .unwrap();
    assert_eq!(stored, None, "nothing was approved");

    // The genuine form still works.
    let (status, redirected) = post(genuine_with_decision(&genuine), Some(session)).await;
    assert_eq!(status, 303);
    assert!(redirected);
}

fn genuine_with_decision(genuine: &[(String, String)]) -> Vec<(String, String)> {
    let mut form = genuine.to_vec();
    form.push(("decision".into(), "approve".into()));
    form
}

#[tokio::test]
async fn the_consent_form_trusts_nothing_it_carries() {
    let server = TestServer::start().await;
    let url = authorize_url_for(&server, "partner", "read");
    let mut browser = Browser::new(&server);
    let consent = browser.authorize(&url, "alice", PASSWORD).await;
    let genuine = hidden_inputs(&consent.html);
    let changed = |name: &str, value: &str| {
        let mut form: Vec<(String, String)> = genuine
            .iter()
            .map(|(k, v)| {
                if k == name {
                    (k.clone(), value.to_owned())
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
        form.push(("decision".into(), "approve".into()));
        form
    };
    // A redirect URI swapped in the form: an error page, never a redirect there.
    let evil = browser
        .post(
            "/api/v2/auth/consent",
            &changed("redirect_uri", "https://evil.test/cb"),
        )
        .await;
    assert_eq!(evil.status, 400);
    assert!(evil.location().is_none());
    // A scope the client may not have: redirected as invalid_scope, nothing approved.
    let admin = browser
        .post("/api/v2/auth/consent", &changed("scope", "read admin"))
        .await;
    assert_eq!(admin.status, 303);
    assert_eq!(
        query_of(admin.location().unwrap())
            .get("error")
            .map(String::as_str),
        Some("invalid_scope")
    );
    // No decision: refused.
    let mut undecided = genuine.clone();
    undecided.push(("decision".into(), "maybe".into()));
    assert_eq!(
        browser
            .post("/api/v2/auth/consent", &undecided)
            .await
            .status,
        400
    );
    assert_eq!(
        server
            .state
            .server
            .ports()
            .consents
            .find_consent("usr_alice", "partner")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn an_expired_session_at_the_consent_form_signs_in_again() {
    let server = TestServer::start().await;
    let url = authorize_url_for(&server, "partner", "read");
    let mut browser = Browser::new(&server);
    let consent = browser.authorize(&url, "alice", PASSWORD).await;
    server.clock.advance(8 * 3600);
    let late = browser.decide(&consent, "approve").await;
    assert_eq!(late.status, 303);
    let location = late.location().unwrap();
    assert!(
        location.starts_with("/api/v2/auth/authorize?"),
        "{location}"
    );
    assert!(browser.get(location).await.is_login());
}

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn consent_decisions_and_sign_out_are_audit_events() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(captured.clone())
        .finish();
    // Single-threaded test runtime: the server's tasks log through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let consent = browser
        .authorize(
            &authorize_url_for(&server, "partner", "read"),
            "alice",
            PASSWORD,
        )
        .await;
    browser.decide(&consent, "approve").await;
    let wider = browser
        .get(&authorize_url_for(&server, "partner", "read write"))
        .await;
    browser.decide(&wider, "deny").await;
    let out = browser.get("/api/v2/auth/logout?client_id=partner").await;
    assert_eq!(out.status, 200);
    // Without a session there is nobody to sign out: no event.
    browser.get("/api/v2/auth/logout").await;

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let events: Vec<serde_json::Map<String, Value>> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["target"] == "audit")
        .map(|v| v["fields"].as_object().unwrap().clone())
        .filter(|e| e["event"] != "login_succeeded")
        .collect();
    let field =
        |e: &serde_json::Map<String, Value>, k: &str| e.get(k).cloned().unwrap_or(Value::Null);
    let summary: Vec<[Value; 5]> = events
        .iter()
        .map(|e| {
            [
                field(e, "event"),
                field(e, "outcome"),
                field(e, "client_id"),
                field(e, "user"),
                field(e, "scope"),
            ]
        })
        .collect();
    assert_eq!(
        summary,
        [
            ["consent_granted", "success", "partner", "usr_alice", "read"].map(Value::from),
            [
                "consent_denied",
                "denied",
                "partner",
                "usr_alice",
                "read write"
            ]
            .map(Value::from),
            [
                "logout".into(),
                "success".into(),
                "partner".into(),
                "usr_alice".into(),
                Value::Null
            ],
        ]
    );
    for e in &events {
        assert_eq!(e["ip"], "127.0.0.1", "{e:?}");
    }
    assert!(!text.contains("tsn_"), "no session id in the log");
}
