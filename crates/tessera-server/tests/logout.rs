//! Signing out, `GET|POST /api/v2/auth/logout` (OpenID Connect RP-Initiated Logout 1.0),
//! over a real socket: the session ends server-side and in the browser, and the browser is
//! sent back only to a post-logout redirect URI registered for the client it names.

mod common;

use common::{
    Browser, PASSWORD, POST_LOGOUT, REDIRECT, TestServer, authorize_url_for, http, query_of,
};
use tessera_core::secret::SecretHash;
use tessera_core::session::SessionStore;

#[tokio::test]
async fn signing_out_ends_the_session_server_side_and_clears_the_cookie() {
    let server = TestServer::start().await;
    let url = authorize_url_for(&server, "spa", "read");
    for method in ["GET", "POST"] {
        let mut browser = Browser::new(&server);
        let signed_in = browser.authorize(&url, "alice", PASSWORD).await;
        assert_eq!(signed_in.status, 303, "{method}");
        let session = browser.cookie("tessera_session").unwrap().to_owned();
        assert_eq!(browser.get(&url).await.status, 303, "{method}: signed in");

        let out = match method {
            "GET" => browser.get("/api/v2/auth/logout").await,
            _ => browser.post("/api/v2/auth/logout", &[]).await,
        };
        assert_eq!(out.status, 200, "{method}");
        assert!(out.html.contains("You are signed out"), "{method}");
        let cleared = out
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("tessera_session="))
            .expect("the session cookie is cleared");
        assert!(
            cleared.starts_with("tessera_session=;") && cleared.contains("Max-Age=0"),
            "{cleared}"
        );
        assert!(browser.cookie("tessera_session").is_none());

        // The browser is asked to sign in again…
        assert!(browser.get(&url).await.is_login(), "{method}");
        // …and the old cookie is dead on the server too, even if something kept it.
        let replayed = http()
            .get(&url)
            .header("cookie", format!("tessera_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(replayed.status(), 200, "{method}: login page again");
        assert!(
            SessionStore::find(&server.store, &SecretHash::of(&session))
                .await
                .unwrap()
                .is_none(),
            "{method}: deleted from the store"
        );
    }
}

#[tokio::test]
async fn signing_out_without_a_session_still_shows_the_page() {
    let server = TestServer::start().await;
    let r = http()
        .get(server.url("/api/v2/auth/logout"))
        .header("cookie", "tessera_session=tsn_unknown")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("You are signed out"));
}

/// A logout request: its name, its parameters, and where it must redirect (`None`: the
/// signed-out page).
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

#[tokio::test]
async fn post_logout_redirect_uri_is_followed_only_when_registered_for_the_client() {
    let server = TestServer::start().await;
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("registered, with state", &[("client_id", "spa"), ("post_logout_redirect_uri", POST_LOGOUT), ("state", "s 1&2")], Some("http://127.0.0.1:8765/signed-out?state=s+1%262")),
        ("registered, no state", &[("client_id", "spa"), ("post_logout_redirect_uri", POST_LOGOUT)], Some(POST_LOGOUT)),
        ("registered for the third-party client too", &[("client_id", "partner"), ("post_logout_redirect_uri", POST_LOGOUT)], Some(POST_LOGOUT)),
        ("no client_id", &[("post_logout_redirect_uri", POST_LOGOUT)], None),
        ("unknown client", &[("client_id", "ghost"), ("post_logout_redirect_uri", POST_LOGOUT)], None),
        ("a client without post-logout URIs", &[("client_id", "web"), ("post_logout_redirect_uri", POST_LOGOUT)], None),
        ("the login redirect URI is not a logout URI", &[("client_id", "spa"), ("post_logout_redirect_uri", REDIRECT)], None),
        ("unregistered", &[("client_id", "spa"), ("post_logout_redirect_uri", "https://evil.test/")], None),
        ("trailing slash", &[("client_id", "spa"), ("post_logout_redirect_uri", "http://127.0.0.1:8765/signed-out/")], None),
        ("another port (no loopback exception)", &[("client_id", "spa"), ("post_logout_redirect_uri", "http://127.0.0.1:9999/signed-out")], None),
        ("added query", &[("client_id", "spa"), ("post_logout_redirect_uri", "http://127.0.0.1:8765/signed-out?next=evil")], None),
        ("repeated URI", &[("client_id", "spa"), ("post_logout_redirect_uri", POST_LOGOUT), ("post_logout_redirect_uri", "https://evil.test/")], None),
        ("repeated client_id", &[("client_id", "web"), ("client_id", "spa"), ("post_logout_redirect_uri", POST_LOGOUT)], None),
    ];
    for (name, pairs, expected) in cases {
        for method in ["GET", "POST"] {
            let request = match method {
                "GET" => {
                    let mut query = url::form_urlencoded::Serializer::new(String::new());
                    query.extend_pairs(pairs.iter());
                    let target = format!("/api/v2/auth/logout?{}", query.finish());
                    http().get(server.url(&target))
                }
                _ => http().post(server.url("/api/v2/auth/logout")).form(pairs),
            };
            let r = request.send().await.unwrap();
            let location = r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            match expected {
                Some(target) => {
                    assert_eq!(r.status(), 303, "{name} ({method})");
                    assert_eq!(location.as_deref(), Some(*target), "{name} ({method})");
                    assert_eq!(r.headers()["cache-control"], "no-store");
                }
                None => {
                    assert_eq!(r.status(), 200, "{name} ({method})");
                    assert_eq!(location, None, "{name} ({method}): never redirected");
                    let html = r.text().await.unwrap();
                    assert!(html.contains("You are signed out"), "{name}");
                    assert!(!html.contains("evil.test"), "{name}: nothing echoed");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_registered_redirect_still_ends_the_session() {
    let server = TestServer::start().await;
    let url = authorize_url_for(&server, "spa", "read");
    let mut browser = Browser::new(&server);
    browser.authorize(&url, "alice", PASSWORD).await;
    let out = browser
        .get(&format!(
            "/api/v2/auth/logout?client_id=spa&state=xyz&post_logout_redirect_uri={}",
            url::form_urlencoded::byte_serialize(POST_LOGOUT.as_bytes()).collect::<String>()
        ))
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(query_of(out.location().unwrap())["state"], "xyz");
    assert!(browser.cookie("tessera_session").is_none());
    assert!(browser.get(&url).await.is_login());
}

#[tokio::test]
async fn discovery_advertises_the_end_session_endpoint() {
    let server = TestServer::start().await;
    let meta: serde_json::Value = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["end_session_endpoint"],
        server.url("/api/v2/auth/logout")
    );
    let other = http()
        .put(server.url("/api/v2/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 405);
}
