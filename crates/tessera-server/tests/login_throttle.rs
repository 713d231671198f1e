//! Brute-force protection of the login form over a real socket: lockout after N failures,
//! the right password refused while locked with the very page a wrong one gets, release by
//! the (manual) clock, doubling backoff, per-address counting across usernames, and
//! `X-Forwarded-For` believed only from a trusted proxy.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{PASSWORD, REDIRECT, TestServer, VERIFIER, cookies_of, hidden_inputs, http};
use sha2::{Digest, Sha256};
use tessera_core::client_ip::IpNetwork;

/// The login page of an authorization request of `spa`, ready to be submitted many times.
struct LoginPage {
    action: String,
    cookie: String,
    hidden: Vec<(String, String)>,
}

/// What a submission got back, the parts a person (or a script) can see.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

impl Answer {
    fn shows_the_generic_error(&self) -> bool {
        self.body.contains("Invalid username or password.")
    }

    fn says_try_again_later(&self) -> bool {
        self.body.contains("try again later")
    }
}

async fn open_login(server: &TestServer) -> LoginPage {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
    let url = server.url(&format!(
        "/api/v2/auth/authorize?response_type=code&client_id=spa&redirect_uri={}\
         &state=s1&code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    ));
    let page = http().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookie = cookies_of(&page);
    let hidden = hidden_inputs(&page.text().await.unwrap());
    LoginPage {
        action: server.url("/api/v2/auth/authorize"),
        cookie,
        hidden,
    }
}

/// Submits the form with `username` and `password` from `client`, with an optional
/// `X-Forwarded-For`.
async fn submit_as(
    client: &reqwest::Client,
    page: &LoginPage,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> Answer {
    let mut form = page.hidden.clone();
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    let mut request = client
        .post(&page.action)
        .header("cookie", &page.cookie)
        .form(&form);
    if let Some(xff) = forwarded_for {
        request = request.header("x-forwarded-for", xff);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    if status == 303 {
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(!location.contains("error="), "{location}");
    }
    Answer {
        status,
        retry_after,
        body: r.text().await.unwrap(),
    }
}

async fn submit(page: &LoginPage, username: &str, password: &str) -> Answer {
    submit_as(&http(), page, username, password, None).await
}

/// A client whose connections come from `ip` (any of 127/8 works on loopback).
fn http_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn n_failures_lock_the_account_and_the_right_password_is_refused_like_a_wrong_one() {
    let server = TestServer::start_with(|p| p.login_throttle.backoff = Duration::ZERO).await;
    let page = open_login(&server).await;
    for n in 1..=4 {
        let a = submit(&page, "alice", "wrong").await;
        assert_eq!(a.status, 401, "failure {n}");
        assert!(a.shows_the_generic_error() && !a.says_try_again_later());
    }
    // The fifth failure (the default limit) locks the account for the lockout (15 min).
    let fifth = submit(&page, "alice", "wrong").await;
    assert_eq!(fifth.status, 429);
    assert_eq!(fifth.retry_after.as_deref(), Some("900"));
    assert!(fifth.shows_the_generic_error() && fifth.says_try_again_later());

    // Locked: the right password gets exactly the page a wrong one gets.
    let wrong = submit(&page, "alice", "still wrong").await;
    let right = submit(&page, "alice", PASSWORD).await;
    assert_eq!(right.status, 429);
    assert_eq!(right, wrong);
    // The form is still there to try again later.
    assert!(right.body.contains("name=\"password\""));

    server.clock.advance(899);
    let almost = submit(&page, "alice", PASSWORD).await;
    assert_eq!(
        (almost.status, almost.retry_after.as_deref()),
        (429, Some("1"))
    );
    server.clock.advance(1);
    assert_eq!(submit(&page, "alice", PASSWORD).await.status, 303);
}

#[tokio::test]
async fn an_unknown_username_is_throttled_exactly_like_a_known_one() {
    let server = TestServer::start().await;
    let page = open_login(&server).await;
    let mut transcripts = Vec::new();
    for user in ["alice", "mallory"] {
        let mut transcript = Vec::new();
        for _ in 0..6 {
            let a = submit(&page, user, "wrong").await;
            transcript.push(Answer {
                // The typed username is echoed into the form; everything else must match.
                body: a.body.replace(user, "USER"),
                ..a
            });
        }
        transcripts.push(transcript);
    }
    assert_eq!(transcripts[0], transcripts[1]);
    let statuses: Vec<u16> = transcripts[0].iter().map(|a| a.status).collect();
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
}

#[tokio::test]
async fn the_backoff_doubles_and_the_clock_releases_it() {
    let server = TestServer::start().await;
    let page = open_login(&server).await;
    // Two free failures, then a wait of 1 s after the third and 2 s after the fourth.
    for _ in 0..3 {
        assert_eq!(submit(&page, "alice", "wrong").await.status, 401);
    }
    let waiting = submit(&page, "alice", PASSWORD).await;
    assert_eq!(
        (waiting.status, waiting.retry_after.as_deref()),
        (429, Some("1"))
    );
    server.clock.advance(1);
    assert_eq!(submit(&page, "alice", "wrong").await.status, 401);
    let waiting = submit(&page, "alice", PASSWORD).await;
    assert_eq!(
        (waiting.status, waiting.retry_after.as_deref()),
        (429, Some("2"))
    );
    server.clock.advance(2);
    assert_eq!(submit(&page, "alice", PASSWORD).await.status, 303);
}

#[tokio::test]
async fn a_successful_sign_in_resets_the_account_count() {
    let server = TestServer::start_with(|p| p.login_throttle.backoff = Duration::ZERO).await;
    let page = open_login(&server).await;
    for _ in 0..4 {
        assert_eq!(submit(&page, "alice", "wrong").await.status, 401);
    }
    assert_eq!(submit(&page, "alice", PASSWORD).await.status, 303);
    for _ in 0..4 {
        assert_eq!(submit(&page, "alice", "wrong").await.status, 401);
    }
    assert_eq!(submit(&page, "alice", "wrong").await.status, 429);
}

#[tokio::test]
async fn an_address_is_throttled_across_usernames_and_other_addresses_are_not() {
    let server = TestServer::start_with(|p| {
        p.login_throttle.ip_max_failures = 4;
        p.login_throttle.backoff = Duration::ZERO;
    })
    .await;
    server.add_user("bob", PASSWORD, &[]).await;
    let page = open_login(&server).await;
    let attacker = http_from("127.0.0.1");
    for (n, user) in ["u0", "u1", "u2"].iter().enumerate() {
        let a = submit_as(&attacker, &page, user, "guess", None).await;
        assert_eq!(a.status, 401, "failure {n}");
    }
    // The fourth failure from the address locks it, whatever the usernames.
    let fourth = submit_as(&attacker, &page, "u3", "guess", None).await;
    assert_eq!(
        (fourth.status, fourth.retry_after.as_deref()),
        (429, Some("900"))
    );
    let locked = submit_as(&attacker, &page, "bob", PASSWORD, None).await;
    assert_eq!(locked.status, 429);
    assert!(locked.shows_the_generic_error() && locked.says_try_again_later());
    // Bob, from another address, is not affected.
    let elsewhere = submit_as(&http_from("127.0.0.2"), &page, "bob", PASSWORD, None).await;
    assert_eq!(elsewhere.status, 303);
}

#[tokio::test]
async fn forwarded_for_is_ignored_without_trusted_proxies() {
    let server = TestServer::start_with(|p| {
        p.login_throttle.ip_max_failures = 2;
        p.login_throttle.backoff = Duration::ZERO;
    })
    .await;
    let page = open_login(&server).await;
    let client = http();
    // A fresh claimed address per guess changes nothing: the peer is counted.
    for (user, xff) in [("u0", "198.51.100.1"), ("u1", "198.51.100.2")] {
        submit_as(&client, &page, user, "guess", Some(xff)).await;
    }
    let third = submit_as(&client, &page, "alice", PASSWORD, Some("198.51.100.3")).await;
    assert_eq!(third.status, 429);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_counted() {
    let server = TestServer::start_with(|p| {
        p.login_throttle.ip_max_failures = 2;
        p.login_throttle.backoff = Duration::ZERO;
        p.trusted_proxies = vec![IpNetwork::parse("127.0.0.0/8").unwrap()];
    })
    .await;
    let page = open_login(&server).await;
    let proxy = http();
    for user in ["u0", "u1"] {
        let a = submit_as(&proxy, &page, user, "guess", Some("198.51.100.1")).await;
        assert!(a.status == 401 || a.status == 429);
    }
    // The client behind the proxy is locked, even when it forges a hop on the left...
    let forged = submit_as(
        &proxy,
        &page,
        "alice",
        PASSWORD,
        Some("203.0.113.9, 198.51.100.1"),
    )
    .await;
    assert_eq!(forged.status, 429);
    // ...while another client behind the same proxy signs in.
    let other = submit_as(&proxy, &page, "alice", PASSWORD, Some("198.51.100.2")).await;
    assert_eq!(other.status, 303);
}

#[tokio::test]
async fn parallel_guesses_cannot_outrun_the_lockout() {
    let server = TestServer::start_with(|p| p.login_throttle.backoff = Duration::ZERO).await;
    let page = open_login(&server).await;
    let client = http();
    let guesses = (0..20).map(|n| {
        let (client, page) = (&client, &page);
        async move { submit_as(client, page, "alice", &format!("guess{n}"), None).await }
    });
    let answers = futures_util::future::join_all(guesses).await;
    // At most the allowance (5) was checked; every other guess was refused unseen.
    let checked = answers.iter().filter(|a| a.status == 401).count();
    assert!(checked <= 4, "{checked} guesses checked without a lockout");
    assert!(answers.iter().all(|a| a.status == 401 || a.status == 429));
    // Every checked guess was counted, and only those: the lockout comes exactly at the
    // fifth checked guess, whether it fell in the burst or after it.
    // A lockout answers 429 with the lockout's Retry-After; a guess refused because another
    // was in flight, 429 with 1 s.
    let locked_in_burst = answers
        .iter()
        .any(|a| a.status == 429 && a.retry_after.as_deref() != Some("1"));
    let mut total = checked + usize::from(locked_in_burst);
    server.clock.advance(1);
    while total < 5 {
        let a = submit(&page, "alice", "late guess").await;
        assert_ne!(
            a.retry_after.as_deref(),
            Some("1"),
            "nothing is in flight any more"
        );
        total += 1;
        assert_eq!(a.status, if total == 5 { 429 } else { 401 });
    }
    assert_eq!(total, 5);
    assert_eq!(submit(&page, "alice", PASSWORD).await.status, 429);
}
