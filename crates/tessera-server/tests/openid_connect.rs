//! OpenID Connect at the edges, over a real socket: what the authorization endpoint does
//! with `nonce`, `prompt`, `max_age` and `login_hint` (OIDC Core §3.1.2.1), the ID token of
//! a refresh (§12.2), the UserInfo endpoint's RFC 6750 answers, `id_token_hint` at logout,
//! and the discovery document. The third-party clients' view is `oidc_interop.rs`.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    Browser, PASSWORD, POST_LOGOUT, REDIRECT, SECRET, TestServer, authorize_url_for, http, query_of,
};
use serde_json::Value;
use tessera_core::client::{Client, GrantType};
use tessera_core::scope::ScopeSet;
use tessera_core::secret::SecretHash;
use tessera_core::session::SessionStore;
use tessera_core::time::Clock;
use tessera_core::user::{self, User, UserProfile, UserStore};

const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "read"];

/// The test server with OpenID Connect clients (`rp-public`, `rp-web` first-party,
/// `rp-partner` third-party) and the user `olivia` with a profile.
async fn oidc_server() -> TestServer {
    let server = TestServer::start().await;
    let grants = [GrantType::AuthorizationCode, GrantType::RefreshToken];
    for (id, secret, first_party) in [
        ("rp-public", None, true),
        ("rp-web", Some(SECRET), true),
        ("rp-partner", None, false),
    ] {
        server
            .add_client_with(Client {
                scopes: ScopeSet::from_tokens(OIDC_SCOPES),
                first_party,
                post_logout_redirect_uris: vec![POST_LOGOUT.into()],
                ..server.client_template(id, secret, &grants, &[REDIRECT])
            })
            .await;
    }
    let olivia = User {
        id: "usr_olivia".into(),
        username: "olivia".into(),
        password_hash: user::hash_password(PASSWORD).unwrap(),
        roles: vec![],
        profile: UserProfile {
            name: Some("Olivia Example".into()),
            email: Some("olivia@example.test".into()),
            email_verified: true,
        },
        disabled: false,
        created_at: server.clock.now(),
    };
    UserStore::create(&server.store, &olivia).await.unwrap();
    server
}

/// An authorization URL for `client_id` with `scope` and these extra parameters.
fn url_with(server: &TestServer, client_id: &str, scope: &str, extra: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse(&authorize_url_for(server, client_id, scope)).unwrap();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.into()
}

/// Redeems the code in `location` for `client_id` (with its secret for `rp-web`).
async fn redeem(server: &TestServer, client_id: &str, location: &str) -> Value {
    let secret = (client_id == "rp-web").then_some(SECRET);
    common::redeem(server, client_id, secret, location).await
}

/// The claims of a compact JWT, unverified (the interop tests verify signatures).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Signs olivia in through `client_id` with `extra` parameters; the browser keeps the
/// session. Returns the redirect to the client.
async fn sign_in(
    server: &TestServer,
    browser: &mut Browser,
    client_id: &str,
    extra: &[(&str, &str)],
) -> String {
    let url = url_with(server, client_id, "openid profile email", extra);
    let page = browser.authorize(&url, "olivia", PASSWORD).await;
    let page = if page.is_consent() {
        browser.decide(&page, "approve").await
    } else {
        page
    };
    assert_eq!(page.status, 303, "{}", page.html);
    page.location().unwrap().to_owned()
}

async fn userinfo(server: &TestServer, token: &str) -> reqwest::Response {
    http()
        .get(server.url("/api/v2/auth/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()["www-authenticate"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_public_client_must_send_a_nonce_and_gets_it_back_in_the_id_token() {
    let server = oidc_server().await;
    let mut browser = Browser::new(&server);
    let refused = browser
        .get(&url_with(&server, "rp-public", "openid", &[]))
        .await;
    assert_eq!(refused.status, 303);
    let q = query_of(refused.location().unwrap());
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("nonce"));
    assert_eq!(q["state"], "xyz");

    let location = sign_in(
        &server,
        &mut browser,
        "rp-public",
        &[("nonce", "n-0S6_WzA2Mj")],
    )
    .await;
    let tokens = redeem(&server, "rp-public", &location).await;
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["aud"], "rp-public");
    assert_eq!(id["azp"], "rp-public");
    assert_eq!(id["sub"], "usr_olivia");
    assert_eq!(id["iss"], server.issuer);
    assert_eq!(id["name"], "Olivia Example");
    assert_eq!(id["email_verified"], true);
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(
                tokens["id_token"]
                    .as_str()
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "RS256");
}

#[tokio::test]
async fn without_the_openid_scope_there_is_no_id_token_and_openid_is_never_a_default() {
    let server = oidc_server().await;
    // Asked for without openid, and with no scope at all (the default: every registered
    // scope but openid, so a nonce is not needed either).
    for scope in ["profile read", ""] {
        let mut browser = Browser::new(&server);
        let page = browser
            .authorize(
                &authorize_url_for(&server, "rp-public", scope),
                "olivia",
                PASSWORD,
            )
            .await;
        assert_eq!(page.status, 303, "{scope:?}");
        let tokens = redeem(&server, "rp-public", page.location().unwrap()).await;
        assert!(tokens.get("id_token").is_none(), "{scope:?}: {tokens}");
        assert!(!tokens["scope"].as_str().unwrap().contains("openid"));
    }
}

#[tokio::test]
async fn prompt_none_answers_without_a_page_or_says_why_it_cannot() {
    let server = oidc_server().await;
    let mut browser = Browser::new(&server);
    let none = [("prompt", "none"), ("nonce", "n1")];
    // No session: login_required, redirected with state and iss, never the login page.
    let page = browser
        .get(&url_with(&server, "rp-public", "openid", &none))
        .await;
    assert_eq!(page.status, 303);
    let q = query_of(page.location().unwrap());
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "xyz");
    assert_eq!(q["iss"], server.issuer);

    // Signed in: a code at once.
    sign_in(&server, &mut browser, "rp-public", &[("nonce", "n0")]).await;
    let page = browser
        .get(&url_with(&server, "rp-public", "openid", &none))
        .await;
    assert_eq!(page.status, 303);
    assert!(query_of(page.location().unwrap()).contains_key("code"));

    // A third-party client the user never approved: consent_required.
    let page = browser
        .get(&url_with(&server, "rp-partner", "openid", &none))
        .await;
    let q = query_of(page.location().unwrap());
    assert_eq!(q["error"], "consent_required");

    // An authentication older than max_age: login_required again.
    server.clock.advance(120);
    let mut stale = none.to_vec();
    stale.push(("max_age", "60"));
    let page = browser
        .get(&url_with(&server, "rp-public", "openid", &stale))
        .await;
    assert_eq!(
        query_of(page.location().unwrap())["error"],
        "login_required"
    );
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_the_password_again_once() {
    let server = oidc_server().await;
    let mut browser = Browser::new(&server);
    sign_in(&server, &mut browser, "rp-public", &[("nonce", "n0")]).await;
    let first = query_of(
        browser
            .get(&url_with(
                &server,
                "rp-public",
                "openid",
                &[("nonce", "n1")],
            ))
            .await
            .location()
            .unwrap(),
    );
    assert!(first.contains_key("code"), "the session answers");
    // max_age=0 is prompt=login, even in the second the session started.
    let zero = url_with(
        &server,
        "rp-public",
        "openid",
        &[("max_age", "0"), ("nonce", "n1")],
    );
    assert!(
        browser.get(&zero).await.is_login(),
        "max_age=0, same second"
    );

    for extra in [
        vec![("prompt", "login")],
        vec![("prompt", "select_account")],
        vec![("max_age", "0")],
    ] {
        server.clock.advance(5);
        let mut params = extra.clone();
        params.push(("nonce", "n2"));
        let url = url_with(&server, "rp-public", "openid", &params);
        assert!(browser.get(&url).await.is_login(), "{extra:?}: login page");
        let replaced = browser.cookie("tessera_session").unwrap().to_owned();
        // Signing in gives the code, and the ID token says when the user authenticated.
        let location = sign_in(&server, &mut browser, "rp-public", &params).await;
        let tokens = redeem(&server, "rp-public", &location).await;
        let id = claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["auth_time"], server.clock.now().0, "{extra:?}");
        // The session the new sign-in replaced is over on the server too.
        assert_ne!(browser.cookie("tessera_session").unwrap(), replaced);
        let stored = SessionStore::find(&server.store, &SecretHash::of(&replaced))
            .await
            .unwrap();
        assert!(stored.is_none(), "{extra:?}: the old session is deleted");
    }

    // A third-party client with prompt=login: the password, then the consent page (not the
    // login page again: the request shown again after sign-in drops prompt=login).
    let url = url_with(
        &server,
        "rp-partner",
        "openid",
        &[("prompt", "login"), ("nonce", "n3")],
    );
    let page = browser.authorize(&url, "olivia", PASSWORD).await;
    assert!(page.is_consent(), "{}", page.html);
    let done = browser.decide(&page, "approve").await;
    assert!(query_of(done.location().unwrap()).contains_key("code"));

    // prompt=consent shows the consent page even though olivia approved already.
    let url = url_with(
        &server,
        "rp-partner",
        "openid",
        &[("prompt", "consent"), ("nonce", "n4")],
    );
    assert!(browser.get(&url).await.is_consent());
}

#[tokio::test]
async fn bad_prompt_and_max_age_values_are_invalid_requests() {
    let server = oidc_server().await;
    for extra in [
        [("prompt", "none login")],
        [("prompt", "create")],
        [("max_age", "-1")],
        [("max_age", "soon")],
    ] {
        let mut params = extra.to_vec();
        params.push(("nonce", "n"));
        let page = Browser::new(&server)
            .get(&url_with(&server, "rp-public", "openid", &params))
            .await;
        assert_eq!(page.status, 303, "{extra:?}");
        assert_eq!(
            query_of(page.location().unwrap())["error"],
            "invalid_request",
            "{extra:?}"
        );
    }
}

#[tokio::test]
async fn login_hint_fills_in_the_username_escaped() {
    let server = oidc_server().await;
    let hint = "olivia\"><script>";
    let url = url_with(
        &server,
        "rp-public",
        "openid",
        &[("login_hint", hint), ("nonce", "n")],
    );
    let page = Browser::new(&server).get(&url).await;
    assert!(page.is_login());
    assert!(
        page.html
            .contains("value=\"olivia&quot;&gt;&lt;script&gt;\""),
        "{}",
        page.html
    );
    assert!(!page.html.contains("<script>"));
}

#[tokio::test]
async fn a_refresh_gives_a_new_id_token_without_nonce_and_with_the_first_auth_time() {
    let server = oidc_server().await;
    let mut browser = Browser::new(&server);
    let location = sign_in(&server, &mut browser, "rp-web", &[("nonce", "n1")]).await;
    let first = redeem(&server, "rp-web", &location).await;
    let first_id = claims(first["id_token"].as_str().unwrap());
    server.clock.advance(30);
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth("rp-web", Some(SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refreshed: Value = r.json().await.unwrap();
    let id = claims(refreshed["id_token"].as_str().unwrap());
    assert_eq!(id["sub"], first_id["sub"]);
    assert_eq!(id["aud"], "rp-web");
    assert_eq!(id["auth_time"], first_id["auth_time"]);
    assert_eq!(id["iat"], server.clock.now().0);
    assert!(id.get("nonce").is_none(), "{id}");
    assert_ne!(id["at_hash"], first_id["at_hash"]);

    // Narrowed to a scope without openid: no ID token.
    let r = http()
        .post(server.url("/api/v2/auth/token"))
        .basic_auth("rp-web", Some(SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().unwrap(),
            ),
            ("scope", "read"),
        ])
        .send()
        .await
        .unwrap();
    let narrowed: Value = r.json().await.unwrap();
    assert!(narrowed.get("id_token").is_none(), "{narrowed}");
}

#[tokio::test]
async fn userinfo_answers_per_scope_and_refuses_per_rfc_6750() {
    let server = oidc_server().await;
    let mut browser = Browser::new(&server);
    let location = sign_in(&server, &mut browser, "rp-web", &[("nonce", "n")]).await;
    let tokens = redeem(&server, "rp-web", &location).await;
    let access = tokens["access_token"].as_str().unwrap();

    let r = userinfo(&server, access).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "sub": "usr_olivia",
            "name": "Olivia Example",
            "preferred_username": "olivia",
            "email": "olivia@example.test",
            "email_verified": true,
        })
    );
    // The token in a form body, on POST (RFC 6750 §2.2).
    let r = http()
        .post(server.url("/api/v2/auth/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // No token: a challenge without an error code (RFC 6750 §3.1).
    let r = http()
        .get(server.url("/api/v2/auth/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(www_authenticate(&r), r#"Bearer realm="tessera""#);
    // Both ways at once.
    let r = http()
        .post(server.url("/api/v2/auth/userinfo"))
        .bearer_auth(access)
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(www_authenticate(&r).contains(r#"error="invalid_request""#));
    // Not a token of ours.
    let r = userinfo(&server, "not-a-token").await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains(r#"error="invalid_token""#));
    // An ID token is not an access token (RFC 8725 §3.11: typ JWT, not at+jwt), here or at
    // introspection.
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(userinfo(&server, id_token).await.status(), 401);
    let r = http()
        .post(server.url("/api/v2/auth/introspect"))
        .basic_auth("rp-web", Some(SECRET))
        .form(&[("token", id_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);

    // A token without openid: insufficient_scope, 403.
    let page = browser
        .get(&authorize_url_for(&server, "rp-web", "profile email"))
        .await;
    let plain = redeem(&server, "rp-web", page.location().unwrap()).await;
    let r = userinfo(&server, plain["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 403);
    let challenge = www_authenticate(&r);
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="openid""#), "{challenge}");

    // A disabled user's tokens describe no one.
    UserStore::set_disabled(&server.store, "olivia", true)
        .await
        .unwrap();
    let r = userinfo(&server, access).await;
    assert_eq!(r.status(), 401);
    UserStore::set_disabled(&server.store, "olivia", false)
        .await
        .unwrap();

    // An expired token.
    server.clock.advance(tokens["expires_in"].as_i64().unwrap());
    let r = userinfo(&server, access).await;
    assert_eq!(r.status(), 401);
    assert!(www_authenticate(&r).contains(r#"error="invalid_token""#));
}

#[tokio::test]
async fn a_revoked_access_token_gets_no_userinfo() {
    let server = oidc_server().await;
    let mut browser = Browser::new(&server);
    let location = sign_in(&server, &mut browser, "rp-web", &[("nonce", "n")]).await;
    let tokens = redeem(&server, "rp-web", &location).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&server, access).await.status(), 200);
    let r = http()
        .post(server.url("/api/v2/auth/revoke"))
        .basic_auth("rp-web", Some(SECRET))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(userinfo(&server, access).await.status(), 401);
}

#[tokio::test]
async fn id_token_hint_names_the_client_at_logout() {
    let server = oidc_server().await;
    let mut browser = Browser::new(&server);
    let location = sign_in(&server, &mut browser, "rp-public", &[("nonce", "n")]).await;
    let id_token = redeem(&server, "rp-public", &location).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let logout = |extra: &[(&str, &str)]| {
        let mut url = reqwest::Url::parse(&server.url("/api/v2/auth/logout")).unwrap();
        url.query_pairs_mut()
            .append_pair("post_logout_redirect_uri", POST_LOGOUT)
            .append_pair("state", "bye")
            .extend_pairs(extra);
        url.to_string()
    };

    // A hint whose signature does not verify names no one: no redirect.
    let mut parts: Vec<&str> = id_token.split('.').collect();
    let forged_claims = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&serde_json::json!({"aud": "rp-web", "iss": server.issuer})).unwrap(),
    );
    parts[1] = &forged_claims;
    let forged = parts.join(".");
    let page = browser.get(&logout(&[("id_token_hint", &forged)])).await;
    assert_eq!(page.status, 200, "signed-out page, no redirect");
    // A hint for another client than the one named: no redirect.
    let page = browser
        .get(&logout(&[
            ("id_token_hint", &id_token),
            ("client_id", "rp-web"),
        ]))
        .await;
    assert_eq!(page.status, 200);

    // The hint alone, long expired: back to the client's registered URI.
    sign_in(&server, &mut browser, "rp-public", &[("nonce", "n")]).await;
    server.clock.advance(86_400);
    let page = browser.get(&logout(&[("id_token_hint", &id_token)])).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location().unwrap(), format!("{POST_LOGOUT}?state=bye"));
    assert!(browser.cookie("tessera_session").is_none(), "signed out");
}

#[tokio::test]
async fn discovery_describes_the_openid_provider() {
    let server = oidc_server().await;
    let meta: Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], server.issuer);
    assert_eq!(
        meta["userinfo_endpoint"],
        format!("{}/api/v2/auth/userinfo", server.issuer)
    );
    assert_eq!(
        meta["end_session_endpoint"],
        format!("{}/api/v2/auth/logout", server.issuer)
    );
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        meta["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        meta["response_modes_supported"],
        serde_json::json!(["query"])
    );
    assert_eq!(meta["request_uri_parameter_supported"], false);
    let listed =
        |field: &str, value: &str| meta[field].as_array().unwrap().iter().any(|v| v == value);
    for scope in ["openid", "profile", "email"] {
        assert!(listed("scopes_supported", scope), "{scope}");
    }
    for claim in [
        "sub",
        "auth_time",
        "nonce",
        "at_hash",
        "name",
        "email",
        "email_verified",
    ] {
        assert!(listed("claims_supported", claim), "{claim}");
    }
    // The OAuth metadata is the same document.
    let oauth: Value = http()
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oauth, meta);
}
