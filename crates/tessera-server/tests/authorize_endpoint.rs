//! The authorization endpoint and login page (RFC 6749 §4.1.1-4.1.2.1, RFC 7636, RFC 9207),
//! plus discovery and JWKS, over a real socket.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    PASSWORD, REDIRECT, TestServer, VERIFIER, browser_login, cookies_of, hidden_inputs, http,
    query_of,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tessera_core::client::GrantType;

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    ))
}

fn authorize_url(server: &TestServer, query: &str) -> String {
    server.url(&format!("/api/v2/auth/authorize?{query}"))
}

fn valid_query(client: &str) -> String {
    format!(
        "response_type=code&client_id={client}&redirect_uri={}&state=xyz&code_challenge={}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        challenge()
    )
}

#[tokio::test]
async fn untrusted_client_or_redirect_uri_gets_an_error_page_never_a_redirect() {
    let server = TestServer::start().await;
    let c = challenge();
    let cases = [
        (
            "unknown client",
            format!(
                "response_type=code&client_id=ghost&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback&code_challenge={c}&code_challenge_method=S256"
            ),
        ),
        (
            "missing client_id",
            format!("response_type=code&code_challenge={c}&code_challenge_method=S256"),
        ),
        (
            "unregistered redirect_uri",
            format!(
                "response_type=code&client_id=spa&redirect_uri=https%3A%2F%2Fevil.test%2Fcb&code_challenge={c}&code_challenge_method=S256"
            ),
        ),
        (
            "redirect_uri prefix of a registered one",
            format!(
                "response_type=code&client_id=spa&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2Fcallback%2Fx&code_challenge={c}&code_challenge_method=S256"
            ),
        ),
        (
            "redirect_uri with different case",
            format!(
                "response_type=code&client_id=spa&redirect_uri=http%3A%2F%2F127.0.0.1%3A8765%2FCallback&code_challenge={c}&code_challenge_method=S256"
            ),
        ),
        (
            "repeated redirect_uri",
            format!(
                "{}&redirect_uri=https%3A%2F%2Fevil.test%2Fcb",
                valid_query("spa")
            ),
        ),
    ];
    for (name, query) in cases {
        let r = http()
            .get(authorize_url(&server, &query))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name}");
        assert!(
            r.headers().get("location").is_none(),
            "{name}: must not redirect"
        );
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{name}"
        );
        assert!(
            !r.text().await.unwrap().contains("evil.test"),
            "{name}: untrusted URI reflected"
        );
    }
}

#[tokio::test]
async fn other_errors_are_redirected_with_error_state_and_iss() {
    let server = TestServer::start().await;
    let base = valid_query("spa");
    let cases = [
        (
            "missing PKCE",
            base.replace(
                &format!("&code_challenge={}&code_challenge_method=S256", challenge()),
                "",
            ),
            "invalid_request",
        ),
        (
            "plain PKCE",
            base.replace("S256", "plain"),
            "invalid_request",
        ),
        (
            "missing method",
            base.replace("&code_challenge_method=S256", ""),
            "invalid_request",
        ),
        (
            "token response type",
            base.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (
            "missing response type",
            base.replace("response_type=code&", ""),
            "invalid_request",
        ),
        (
            "unknown scope",
            format!("{base}&scope=read+admin"),
            "invalid_scope",
        ),
        (
            "unregistered resource",
            format!("{base}&resource=https%3A%2F%2Fevil.test"),
            "invalid_target",
        ),
        (
            "repeated scope",
            format!("{base}&scope=read&scope=write"),
            "invalid_request",
        ),
    ];
    for (name, query, error) in cases {
        let r = http()
            .get(authorize_url(&server, &query))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{name}");
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT), "{name}: {location}");
        let q = query_of(&location);
        assert_eq!(q.get("error").map(String::as_str), Some(error), "{name}");
        assert_eq!(q.get("state").map(String::as_str), Some("xyz"), "{name}");
        assert_eq!(q.get("iss"), Some(&server.base), "{name}");
        assert!(!q.contains_key("code"), "{name}");
    }
}

#[tokio::test]
async fn login_page_is_safe_and_failed_sign_in_does_not_reveal_users() {
    let server = TestServer::start().await;
    let url = authorize_url(&server, &valid_query("spa"));
    let page = http().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no script allowed at all");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let cookie = cookies_of(&page);
    let set_cookie = h["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("spa app"), "client name shown");
    assert!(html.contains("<label for=\"username\">") && html.contains("<label for=\"password\">"));

    let mut messages = Vec::new();
    for (user, pass) in [("alice", "wrong password"), ("nobody", PASSWORD)] {
        let mut form = hidden_inputs(&html);
        form.push(("username".into(), user.into()));
        form.push(("password".into(), pass.into()));
        let r = http()
            .post(server.url("/api/v2/auth/authorize"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{user}");
        assert!(r.headers().get("location").is_none());
        let body = r.text().await.unwrap();
        assert!(!body.contains(pass), "password echoed");
        let start = body.find("id=\"login-error\"").expect("error shown");
        messages.push(body[start..start + 60].to_owned());
    }
    assert_eq!(
        messages[0], messages[1],
        "same message for unknown user and wrong password"
    );
}

#[tokio::test]
async fn login_without_the_csrf_binding_is_refused() {
    let server = TestServer::start().await;
    let page = http()
        .get(authorize_url(&server, &valid_query("spa")))
        .send()
        .await
        .unwrap();
    let cookie = cookies_of(&page);
    let html = page.text().await.unwrap();
    let mut form = hidden_inputs(&html);
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), PASSWORD.into()));
    let no_cookie = http()
        .post(server.url("/api/v2/auth/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), 403);
    let other = http()
        .post(server.url("/api/v2/auth/authorize"))
        .header("cookie", "tessera_csrf=someone-else")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    let tampered: Vec<_> = form
        .iter()
        .map(|(k, v)| {
            if k == "csrf_token" {
                (k.clone(), "x".to_owned())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let r = http()
        .post(server.url("/api/v2/auth/authorize"))
        .header("cookie", &cookie)
        .form(&tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let ok = http()
        .post(server.url("/api/v2/auth/authorize"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 303, "the genuine form still works");
}

#[tokio::test]
async fn a_signed_in_browser_gets_a_fresh_code_without_the_form() {
    let server = TestServer::start().await;
    let url = authorize_url(&server, &valid_query("spa"));
    let page = http().get(&url).send().await.unwrap();
    let cookie = cookies_of(&page);
    let mut form = hidden_inputs(&page.text().await.unwrap());
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), PASSWORD.into()));
    let signed_in = http()
        .post(server.url("/api/v2/auth/authorize"))
        .header("cookie", &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    let session = cookies_of(&signed_in);
    assert!(session.starts_with("tessera_session=tsn_"), "{session}");
    let first = query_of(signed_in.headers()["location"].to_str().unwrap())["code"].clone();
    let again = http()
        .get(&url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303);
    let second = query_of(again.headers()["location"].to_str().unwrap())["code"].clone();
    assert_ne!(first, second, "every authorization gets its own code");
    server.clock.advance(8 * 3600);
    let expired = http()
        .get(&url)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        expired.status(),
        200,
        "an expired session shows the login form again"
    );
}

#[tokio::test]
async fn a_native_app_on_an_ephemeral_loopback_port_completes_the_flow() {
    // RFC 8252 §7.3: registered without a port, used with whatever port the OS handed out.
    let server = TestServer::start().await;
    server
        .add_client(
            "cli",
            None,
            &[GrantType::AuthorizationCode],
            &["http://127.0.0.1/callback"],
        )
        .await;
    let query_with = |redirect: &str| {
        format!(
            "response_type=code&client_id=cli&redirect_uri={}&state=xyz&code_challenge={}&code_challenge_method=S256",
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
            challenge()
        )
    };

    // Anything but the registered URI on another port is still an error page.
    for refused in [
        "http://127.0.0.1:53682/other",
        "http://127.0.0.1:80@evil.test/callback",
        "http://127.0.0.1.evil.test:53682/callback",
        "http://localhost:53682/callback",
    ] {
        let r = http()
            .get(authorize_url(&server, &query_with(refused)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{refused}");
        assert!(r.headers().get("location").is_none(), "{refused}");
    }

    let used = "http://127.0.0.1:53682/callback";
    let location = browser_login(
        &authorize_url(&server, &query_with(used)),
        "alice",
        PASSWORD,
    )
    .await;
    assert!(
        location.starts_with("http://127.0.0.1:53682/callback?"),
        "redirected to the port the client asked for: {location}"
    );
    let q = query_of(&location);
    assert_eq!(q.get("state").map(String::as_str), Some("xyz"));
    let code = q["code"].clone();

    let redeem = |redirect: &'static str| {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", "cli"),
            ("code", code.as_str()),
            ("code_verifier", VERIFIER),
            ("redirect_uri", redirect),
        ];
        let request = http().post(server.url("/api/v2/auth/token")).form(&form);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    // RFC 6749 §4.1.3: the token request must repeat the URI of the authorization request,
    // port included; neither another port nor the registered URI will do.
    for other in [
        "http://127.0.0.1:53683/callback",
        "http://127.0.0.1/callback",
    ] {
        let (status, body) = redeem(other).await;
        assert_eq!(status, 400, "{other}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{other}");
    }
    let (status, body) = redeem(used).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].as_str().is_some());
}

#[tokio::test]
async fn discovery_metadata_and_jwks() {
    let server = TestServer::start().await;
    let meta: Value = http()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], server.base);
    assert_eq!(meta["token_endpoint"], server.url("/api/v2/auth/token"));
    assert_eq!(
        meta["authorization_endpoint"],
        server.url("/api/v2/auth/authorize")
    );
    assert_eq!(meta["jwks_uri"], server.url("/.well-known/jwks.json"));
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
    );
    let oidc: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta, oidc);

    let r = http()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = r.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut members: Vec<_> = key.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["alg", "e", "kid", "kty", "n", "use"],
        "public members only"
    );
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(key["n"].as_str().unwrap())
            .unwrap()
            .len(),
        256,
        "RSA-2048"
    );
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_gives_a_503_page_not_a_500() {
    let server = TestServer::start().await;
    server.store.close().await;
    let response = http()
        .get(authorize_url(&server, &valid_query("spa")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let page = response.text().await.unwrap();
    assert!(page.contains("temporarily unavailable"), "{page}");
    assert!(!page.contains("sqlx") && !page.contains("pool"), "{page}");
}
