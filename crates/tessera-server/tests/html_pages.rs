//! Every HTML page the server renders carries the same security headers, every cookie it
//! sets the same attributes, and the error page a request id that is in the logs. Over a
//! real socket, for an http (loopback) issuer and an https one.

mod common;

use std::sync::{Arc, Mutex};

use common::{Browser, PASSWORD, Page, TestServer, authorize_url_for, hidden_inputs};

/// One page of each kind, reached the way a browser reaches it, plus every `Set-Cookie` the
/// flow produced on the way (the session cookie comes with a redirect, not a page).
async fn every_page(server: &TestServer) -> (Vec<(&'static str, Page)>, Vec<String>) {
    let mut pages = Vec::new();
    let mut cookies = Vec::new();
    let mut browser = Browser::new(server);
    let url = authorize_url_for(server, "partner", "read");

    let login = browser.get(&url).await;
    assert!(login.is_login(), "{}", login.html);
    cookies.extend(login.set_cookies());
    let mut wrong = hidden_inputs(&login.html);
    wrong.push(("username".into(), "alice".into()));
    wrong.push(("password".into(), "wrong".into()));
    pages.push(("login", login));
    let failed = browser.post("/api/v2/auth/authorize", &wrong).await;
    assert_eq!(failed.status, 401);
    pages.push(("login with an error", failed));

    let login = browser.get(&url).await;
    let mut form = hidden_inputs(&login.html);
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), PASSWORD.into()));
    let signed_in = browser.post("/api/v2/auth/authorize", &form).await;
    assert_eq!(signed_in.status, 303);
    cookies.extend(signed_in.set_cookies());
    let consent = browser.follow_local(signed_in).await;
    assert!(consent.is_consent(), "{}", consent.html);
    pages.push(("consent", consent));

    let unknown_client = browser
        .get("/api/v2/auth/authorize?response_type=code&client_id=ghost")
        .await;
    assert_eq!(unknown_client.status, 400);
    pages.push(("error: unknown client", unknown_client));
    let forged = Browser::new(server)
        .post(
            "/api/v2/auth/consent",
            &[("decision".into(), "approve".into())],
        )
        .await;
    assert_eq!(forged.status, 403);
    pages.push(("error: consent without CSRF token", forged));

    let out = browser.get("/api/v2/auth/logout").await;
    assert_eq!(out.status, 200);
    cookies.extend(out.set_cookies());
    pages.push(("signed out", out));
    (pages, cookies)
}

fn assert_secure_html(name: &str, page: &Page) {
    let h = &page.headers;
    let header = |n: &str| {
        h.get(n)
            .unwrap_or_else(|| panic!("{name}: no {n}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert!(header("content-type").starts_with("text/html"), "{name}");
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{name}: {csp}");
    }
    assert!(
        !csp.contains("script-src"),
        "{name}: no script source at all"
    );
    assert!(!csp.contains("unsafe-inline"), "{name}: {csp}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{name}");
    assert_eq!(header("cache-control"), "no-store", "{name}");
    assert_eq!(header("x-frame-options"), "DENY", "{name}");
    assert!(!page.html.contains("<script"), "{name}: no script");
    assert!(!page.html.contains(" style="), "{name}: no inline style");
    assert!(
        page.html
            .contains("<link rel=\"stylesheet\" href=\"/assets/tessera.css\">"),
        "{name}"
    );
}

#[tokio::test]
async fn every_html_page_carries_the_security_headers_and_cookies_are_locked_down() {
    for (issuer, secure) in [(None, false), (Some("https://auth.example.test"), true)] {
        let server = TestServer::start_with(move |policy| {
            if let Some(issuer) = issuer {
                policy.issuer = issuer.to_owned();
            }
        })
        .await;
        let (pages, cookies) = every_page(&server).await;
        let kinds: Vec<_> = pages.iter().map(|(name, _)| *name).collect();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        for (name, page) in &pages {
            assert_secure_html(&format!("{name} (secure: {secure})"), page);
        }

        let names: Vec<&str> = cookies
            .iter()
            .map(|c| c.split('=').next().unwrap())
            .collect();
        let (session, csrf) = if secure {
            ("__Host-tessera_session", "__Host-tessera_csrf")
        } else {
            ("tessera_session", "tessera_csrf")
        };
        assert!(
            names.contains(&session) && names.contains(&csrf),
            "{names:?}"
        );
        for cookie in &cookies {
            let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
            for required in ["HttpOnly", "SameSite=Lax", "Path=/"] {
                assert!(attributes.contains(&required), "{cookie}");
            }
            assert_eq!(attributes.contains(&"Secure"), secure, "{cookie}");
            assert_eq!(cookie.starts_with("__Host-"), secure, "{cookie}");
            assert!(!cookie.contains("Domain="), "{cookie}: host-only");
        }
        // The stylesheet the CSP allows is there, cacheable and typed.
        let css = Browser::new(&server).get("/assets/tessera.css").await;
        assert_eq!(css.status, 200);
        assert!(
            css.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/css")
        );
        assert!(css.html.contains("prefers-color-scheme: dark"));
    }
}

/// A `tracing` subscriber that keeps every event as `message field=value ...`.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl tracing::field::Visit for Line<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

impl tracing::Subscriber for Captured {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut line = format!("{}", event.metadata().level());
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn the_error_page_shows_a_request_id_that_is_logged_with_the_error() {
    let logs = Captured::default();
    tracing::subscriber::set_global_default(logs.clone()).expect("the only subscriber");
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let mut ids = Vec::new();
    for query in [
        "response_type=code&client_id=ghost",
        "response_type=code&client_id=spa&redirect_uri=https%3A%2F%2Fevil.test%2Fcb",
    ] {
        let page = browser
            .get(&format!("/api/v2/auth/authorize?{query}"))
            .await;
        assert_eq!(page.status, 400, "{query}");
        assert!(page.location().is_none(), "{query}: never redirected");
        let id = page.headers["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 12, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(
            page.html
                .contains(&format!("<code id=\"request-id\">{id}</code>")),
            "{query}: the id is on the page"
        );
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "each error gets its own id");

    let lines = logs.0.lock().unwrap().clone();
    for (id, reason) in ids.iter().zip([
        "the client is not registered",
        "redirect_uri is not registered for this client",
    ]) {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("request_id={id}")))
            .unwrap_or_else(|| panic!("no log line with request_id={id}: {lines:#?}"));
        assert!(line.starts_with("WARN"), "{line}");
        assert!(line.contains(reason), "{line}");
    }
}

#[tokio::test]
async fn the_login_page_is_labelled_focused_and_says_what_went_wrong_without_saying_which() {
    let server = TestServer::start().await;
    let mut browser = Browser::new(&server);
    let url = authorize_url_for(&server, "spa", "read");
    let page = browser.get(&url).await;
    let html = &page.html;
    assert!(
        html.contains("<strong>spa app</strong>"),
        "the client's name"
    );
    for field in ["username", "password"] {
        assert!(
            html.contains(&format!("<label for=\"{field}\">")),
            "{field}"
        );
        assert!(
            html.contains(&format!("id=\"{field}\" name=\"{field}\"")),
            "{field}"
        );
    }
    // Focus starts on the username; the fields come in reading order, then the button.
    assert_eq!(html.matches("autofocus").count(), 1);
    let username = html.find("id=\"username\"").unwrap();
    let password = html.find("id=\"password\"").unwrap();
    let button = html.find("<button type=\"submit\">").unwrap();
    assert!(username < password && password < button);
    assert!(html[username..password].contains("autofocus"));
    assert!(
        html.contains("autocomplete=\"username\"")
            && html.contains("autocomplete=\"current-password\"")
    );
    assert!(!html.contains("aria-invalid"), "no error yet");
    // A plain form post: works without JavaScript.
    assert!(html.contains("<form method=\"post\" action=\"/api/v2/auth/authorize\">"));

    let mut form = hidden_inputs(html);
    form.push(("username".into(), "nobody".into()));
    form.push(("password".into(), "wrong".into()));
    let failed = browser.post("/api/v2/auth/authorize", &form).await;
    assert_eq!(failed.status, 401);
    let html = &failed.html;
    assert!(html.contains("role=\"alert\" id=\"login-error\">Invalid username or password."));
    // Both fields point at the message: it does not say which one was wrong.
    assert_eq!(
        html.matches("aria-describedby=\"login-error\" aria-invalid=\"true\"")
            .count(),
        2
    );
    assert!(html.contains("value=\"nobody\""), "the username is kept");
    assert!(!html.contains("value=\"wrong\""), "the password is not");
}
