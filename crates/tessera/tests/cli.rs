//! The `tessera` binary as an operator uses it: client and user administration, and the
//! `serve --demo` promise that the printed curl yields a token.

mod common;

use common::{Demo, GuardProcess, printed_curl, token};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn tessera(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("TESSERA_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn ok_json(data: &Path, args: &[&str], stdin: Option<&str>) -> Value {
    let out = tessera(data, args, stdin);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fails_with(data: &Path, args: &[&str], stdin: Option<&str>, message: &str) {
    let out = tessera(data, args, stdin);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(message),
        "{args:?}: expected `{message}` in: {err}"
    );
}

#[test]
fn client_administration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let public = ok_json(
        d,
        &[
            "client",
            "create",
            "--id",
            "spa",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--scope",
            "read write",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(public["type"], "public");
    assert_eq!(
        public["grant_types"],
        serde_json::json!(["authorization_code"])
    );
    assert_eq!(public["scope"], "read write");
    assert!(public.get("client_secret").is_none());

    let svc = ok_json(
        d,
        &[
            "client",
            "create",
            "--audience",
            "https://api.test",
            "--format",
            "json",
        ],
        None,
    );
    let id = svc["client_id"].as_str().unwrap();
    assert!(id.starts_with("cl_"), "generated id: {id}");
    assert_eq!(
        svc["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    let secret = svc["client_secret"].as_str().unwrap();
    assert!(
        secret.starts_with("tss_") && secret.len() >= 47,
        "generated secret shown once"
    );

    let given = ok_json(
        d,
        &[
            "client",
            "create",
            "--id",
            "given",
            "--secret-stdin",
            "--format",
            "json",
        ],
        Some(&"s".repeat(40)),
    );
    assert!(
        given.get("client_secret").is_none(),
        "an operator-supplied secret is not echoed"
    );

    fails_with(
        d,
        &[
            "client",
            "create",
            "--id",
            "spa",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
        ],
        None,
        "already exists",
    );
    fails_with(
        d,
        &[
            "client",
            "create",
            "--redirect-uri",
            "http://app.example/cb",
        ],
        None,
        "loopback",
    );
    fails_with(
        d,
        &[
            "client",
            "create",
            "--redirect-uri",
            "https://app.example/cb#x",
        ],
        None,
        "fragment",
    );
    fails_with(
        d,
        &[
            "client",
            "create",
            "--public",
            "--grant-type",
            "client_credentials",
        ],
        None,
        "public client",
    );
    fails_with(
        d,
        &["client", "create", "--grant-type", "authorization_code"],
        None,
        "redirect-uri",
    );
    fails_with(
        d,
        &["client", "create", "--grant-type", "password"],
        None,
        "--grant-type password",
    );
    fails_with(
        d,
        &["client", "create", "--secret-stdin"],
        Some("short"),
        "at least 32",
    );
    fails_with(d, &["client", "create", "--scope", "a\"b"], None, "--scope");
    fails_with(
        d,
        &["client", "create", "--audience", "not a uri"],
        None,
        "--audience",
    );
    fails_with(d, &["client", "create", "--id", "bad id"], None, "--id");
    fails_with(d, &["client", "create", "--id", "svc:a"], None, "--id");
    let plus = format!("{}+%:", "s".repeat(40));
    fails_with(
        d,
        &["client", "create", "--secret-stdin"],
        Some(&plus),
        "letters, digits",
    );

    let list = ok_json(d, &["client", "list", "--format", "json"], None);
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.contains(&"spa") && ids.contains(&"given") && ids.contains(&id));
    assert!(
        !String::from_utf8_lossy(&tessera(d, &["client", "list", "--format", "json"], None).stdout)
            .contains("tss_")
    );

    let shown = ok_json(d, &["client", "show", "spa", "--format", "json"], None);
    assert_eq!(
        shown["redirect_uris"],
        serde_json::json!(["http://127.0.0.1:9/cb"])
    );
    assert!(
        tessera(d, &["client", "delete", "spa"], None)
            .status
            .success()
    );
    fails_with(d, &["client", "delete", "spa"], None, "no client");
    fails_with(d, &["client", "show", "spa"], None, "no client");
}

#[test]
fn user_administration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bob = ok_json(
        d,
        &[
            "user",
            "create",
            "bob",
            "--password-stdin",
            "--role",
            "admin",
            "--role",
            "ops",
            "--name",
            "Bob Builder",
            "--email",
            "bob@example.test",
            "--format",
            "json",
        ],
        Some("a long enough password\n"),
    );
    assert_eq!(bob["roles"], serde_json::json!(["admin", "ops"]));
    // The OpenID Connect profile: shown, and not vouched for unless the operator says so.
    assert_eq!(bob["name"], "Bob Builder");
    assert_eq!(bob["email"], "bob@example.test");
    assert_eq!(bob["email_verified"], false);
    assert!(bob.get("password").is_none());
    let carol = ok_json(d, &["user", "create", "carol", "--format", "json"], None);
    assert!(
        carol["password"].as_str().is_some_and(|p| p.len() >= 16),
        "generated password shown once"
    );
    fails_with(
        d,
        &["user", "create", "bob", "--password-stdin"],
        Some("another long password"),
        "already exists",
    );
    fails_with(
        d,
        &["user", "create", "dave", "--password-stdin"],
        Some("short"),
        "at least 12",
    );
    fails_with(d, &["user", "create", "with space"], None, "username");
    fails_with(
        d,
        &["user", "create", "erin", "--email", "not an address"],
        None,
        "not an email address",
    );
    fails_with(
        d,
        &["user", "create", "erin", "--email-verified"],
        None,
        "--email",
    );
    fails_with(
        d,
        &["user", "create", "erin", "--name", "tab\there"],
        None,
        "--name",
    );
    assert!(
        tessera(d, &["user", "disable", "bob"], None)
            .status
            .success()
    );
    fails_with(d, &["user", "disable", "nobody"], None, "no user");
    let out = tessera(d, &["user", "revoke-tokens", "bob"], None);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 0 token families"));
    let audit = String::from_utf8_lossy(&out.stderr);
    assert!(
        audit.contains("token_revoked") && audit.contains("reason=\"user_sign_out\""),
        "{audit}"
    );
    fails_with(d, &["user", "revoke-tokens", "nobody"], None, "no user");
    let list = ok_json(d, &["user", "list", "--format", "json"], None);
    let users = list.as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["username"], "bob");
    assert_eq!(users[0]["disabled"], true);
    assert!(
        !list.to_string().contains("argon2"),
        "hashes are not listed"
    );
}

#[tokio::test]
async fn demo_prints_a_curl_that_yields_a_token_and_restarts_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let first = Demo::start(dir.path());
    let (id, old_secret, url) = printed_curl(&first);
    let r = token(&id, &old_secret, &url).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let authorize = first.line_with("/api/v2/auth/authorize?");
    assert!(authorize.contains("code_challenge_method=S256"));
    let jwks_url = first
        .line_with("jwks.json")
        .split_whitespace()
        .find(|w| w.ends_with("jwks.json"))
        .unwrap()
        .to_owned();
    let first_kid = published_kid(&jwks_url).await;
    drop(first);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "master key is private");
    }

    let second = Demo::start(dir.path());
    let (id2, new_secret, url2) = printed_curl(&second);
    assert_eq!(id, id2);
    assert_ne!(
        old_secret, new_secret,
        "each demo start prints a fresh secret"
    );
    assert_eq!(token(&id2, &new_secret, &url2).await.status(), 200);
    assert_eq!(token(&id2, &old_secret, &url2).await.status(), 401);
    // The signing key survives the restart: the master key opens the sealed key again.
    let jwks_url = second
        .line_with("jwks.json")
        .split_whitespace()
        .find(|w| w.ends_with("jwks.json"))
        .unwrap()
        .to_owned();
    assert_eq!(published_kid(&jwks_url).await, first_kid);
    let list = ok_json(dir.path(), &["client", "list", "--format", "json"], None);
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "demo clients are not duplicated"
    );
}

/// The server keeps clients in memory for `client_cache_ttl`: a client deleted with the CLI
/// (another process) authenticates for at most that long after the server read it.
#[tokio::test]
async fn a_client_deleted_by_the_cli_is_refused_within_the_client_cache_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(1);
    let demo = Demo::start_with_env(dir.path(), &[("TESSERA_CLIENT_CACHE_TTL", "1s")]);
    let (id, secret, url) = printed_curl(&demo);
    let read = Instant::now();
    assert_eq!(token(&id, &secret, &url).await.status(), 200);
    let deleted = tessera(dir.path(), &["client", "delete", &id], None);
    assert!(deleted.status.success(), "{deleted:?}");
    // The server's cache still has it (unless this machine is slow enough for it to expire).
    let first = token(&id, &secret, &url).await.status();
    assert!(
        first == 200 || read.elapsed() >= ttl,
        "answered {first} from the cache"
    );
    // Room for a loaded machine between two requests.
    let limit = ttl + Duration::from_millis(500);
    loop {
        let status = token(&id, &secret, &url).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            read.elapsed() < limit,
            "a deleted client still authenticates {:?} after the server read it",
            read.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn published_kid(jwks_url: &str) -> String {
    let jwks: Value = reqwest::get(jwks_url).await.unwrap().json().await.unwrap();
    jwks["keys"][0]["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn janitor_once_removes_expired_records_and_says_how_many() {
    use tessera_core::secret::SecretHash;
    use tessera_core::session::{Session, SessionStore};
    use tessera_core::time::UnixTime;
    use tessera_core::user::{User, UserProfile, UserStore};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tessera.db", dir.path().display());
    let store = tessera_store::SqliteStore::open(&url).await.unwrap();
    let user = User {
        id: "usr_1".into(),
        username: "u".into(),
        password_hash: "x".into(),
        roles: vec![],
        profile: UserProfile::default(),
        disabled: false,
        created_at: UnixTime(0),
    };
    UserStore::create(&store, &user).await.unwrap();
    for (id, expires_at) in [("old", 1), ("live", i64::MAX / 2)] {
        let session = Session {
            id_hash: SecretHash::of(id),
            user_id: "usr_1".into(),
            auth_time: UnixTime(0),
            expires_at: UnixTime(expires_at),
        };
        SessionStore::create(&store, &session).await.unwrap();
    }
    store.close().await;

    let out = tessera(dir.path(), &["janitor", "--once"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("removed 1 expired records") && printed.contains("sessions 1"),
        "{printed}"
    );
    let store = tessera_store::SqliteStore::open(&url).await.unwrap();
    assert!(
        SessionStore::find(&store, &SecretHash::of("old"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        SessionStore::find(&store, &SecretHash::of("live"))
            .await
            .unwrap()
            .is_some()
    );
    store.close().await;
    let again = tessera(dir.path(), &["janitor", "--once"], None);
    assert!(String::from_utf8_lossy(&again.stdout).contains("removed 0 expired records"));
}

#[tokio::test]
async fn metrics_count_issued_tokens_and_requests_by_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let (id, secret, url) = printed_curl(&demo);
    for _ in 0..3 {
        assert_eq!(token(&id, &secret, &url).await.status(), 200);
    }
    assert_eq!(token(&id, "wrong", &url).await.status(), 401);
    let metrics_url = url.replace("/api/v2/auth/token", "/metrics");
    let text = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"tessera_tokens_issued_total{grant="client_credentials"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"tessera_http_requests_total{endpoint="/api/v2/auth/token",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("tessera_http_request_duration_seconds"),
        "{text}"
    );
    assert!(!text.contains(&secret), "no secret in metrics");
}

fn keys_json(dir: &Path) -> Vec<Value> {
    ok_json(dir, &["keys", "list", "--format", "json"], None)
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn keys_rotate_publishes_ahead_and_revoke_replaces_the_key_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // `keys rotate` on an empty store schedules the first key (nothing to publish ahead of).
    let out = tessera(d, &["keys", "rotate"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = keys_json(d);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["state"], "next");
    let first = keys[0]["kid"].as_str().unwrap().to_owned();
    // Key operations are audit events.
    let audit = String::from_utf8_lossy(&out.stderr);
    assert!(
        audit.contains("key_rotated") && audit.contains(&format!("kid=\"{first}\"")),
        "{audit}"
    );

    let again = tessera(d, &["keys", "rotate"], None);
    assert!(String::from_utf8_lossy(&again.stdout).contains("already scheduled"));
    assert_eq!(keys_json(d).len(), 1, "a second rotate does not stack keys");

    let out = tessera(d, &["keys", "revoke", &first], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key_revoked"));
    let keys = keys_json(d);
    let states: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&(first.as_str(), "revoked")), "{states:?}");
    assert_eq!(
        states.iter().filter(|(_, s)| *s == "active").count(),
        1,
        "{states:?}"
    );
    fails_with(d, &["keys", "revoke", &first], None, "already revoked");
    fails_with(d, &["keys", "revoke", "no-such-kid"], None, "no key");
}

#[test]
fn rewrap_moves_keys_to_a_new_master_key_and_a_wrong_key_fails_clearly() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(tessera(d, &["keys", "rotate"], None).status.success());
    let before = std::fs::read_to_string(d.join("master.key")).unwrap();
    let new_key = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let out = tessera(
        d,
        &["keys", "rewrap", "--new-master-key-stdin"],
        Some(&new_key),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("resealed 1 keys"));
    let after = std::fs::read_to_string(d.join("master.key")).unwrap();
    assert_ne!(before, after);
    assert_eq!(after.trim(), new_key);
    assert_eq!(
        keys_json(d).len(),
        1,
        "the keys open under the new master key"
    );

    // Starting with the old (wrong) master key fails clearly and creates no key.
    let wrong = tessera(
        d,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--master-key",
            before.trim(),
        ],
        None,
    );
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("cannot be unsealed") && err.contains("TESSERA_MASTER_KEY"),
        "{err}"
    );
    assert_eq!(keys_json(d).len(), 1, "no silent new key");
}

#[tokio::test]
async fn with_redis_a_key_revoked_from_the_cli_leaves_every_servers_jwks_at_once() {
    if std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and Redis is not reachable at 127.0.0.1:6379"
        );
        eprintln!("SKIPPED: Redis is not reachable at 127.0.0.1:6379");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("tessera-cli-test-{}:", std::process::id());
    let env = [
        ("TESSERA_REDIS_URL", "redis://127.0.0.1:6379"),
        ("TESSERA_REDIS_PREFIX", prefix.as_str()),
        // Without the bus the server would notice only an hour later.
        ("TESSERA_KEY_REFRESH_INTERVAL", "1h"),
    ];
    let demo = Demo::start_with_env(dir.path(), &env);
    let jwks_url = demo
        .line_with("jwks.json")
        .split_whitespace()
        .find(|w| w.ends_with("jwks.json"))
        .unwrap()
        .to_owned();
    let kid = published_kid(&jwks_url).await;
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["keys", "revoke", &kid, "--data-dir"])
        .arg(dir.path())
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked_at = std::time::Instant::now();
    loop {
        let jwks: Value = reqwest::get(&jwks_url).await.unwrap().json().await.unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        if !kids.contains(&kid.as_str()) && !kids.is_empty() {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "the server still publishes the revoked key: {kids:?}"
        );
        tokio::task::yield_now().await;
    }
}

#[test]
fn export_then_import_moves_clients_users_and_keys_to_another_store() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let svc = ok_json(
        a.path(),
        &["client", "create", "--id", "svc", "--format", "json"],
        None,
    );
    ok_json(
        a.path(),
        &[
            "user",
            "create",
            "alice",
            "--password-stdin",
            "--role",
            "r",
            "--name",
            "Alice Example",
            "--email",
            "alice@example.test",
            "--email-verified",
            "--format",
            "json",
        ],
        Some("a long enough password"),
    );
    assert!(
        tessera(a.path(), &["keys", "rotate"], None)
            .status
            .success()
    );
    let exported = tessera(a.path(), &["export"], None);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let document = String::from_utf8(exported.stdout).unwrap();
    assert!(
        !document.contains(svc["client_secret"].as_str().unwrap()),
        "only the secret's hash travels"
    );
    assert!(!document.contains("a long enough password"));

    // The target shares the master key (or the keys were rewrapped for it).
    std::fs::copy(a.path().join("master.key"), b.path().join("master.key")).unwrap();
    let imported = tessera(b.path(), &["import"], Some(&document));
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        String::from_utf8_lossy(&imported.stdout).contains("imported 3 records (0 already present")
    );
    // The user's OpenID Connect profile travels with the user.
    let users = ok_json(b.path(), &["user", "list", "--format", "json"], None);
    assert_eq!(users[0]["name"], "Alice Example");
    assert_eq!(users[0]["email"], "alice@example.test");
    assert_eq!(users[0]["email_verified"], true);
    for list in [["client", "list"], ["user", "list"], ["keys", "list"]] {
        let args = [list[0], list[1], "--format", "json"];
        assert_eq!(
            ok_json(a.path(), &args, None),
            ok_json(b.path(), &args, None),
            "{list:?}"
        );
    }
    let again = tessera(b.path(), &["import"], Some(&document));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("imported 0 records (3 already present")
    );
    fails_with(
        b.path(),
        &["import"],
        Some("{\"not\": \"an export\"}"),
        "not a Tessera export",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_guard_forward_auth_answers_with_identity_scope_rules_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let (id, secret, token_url) = printed_curl(&demo);
    let issuer = token_url.replace("/api/v2/auth/token", "");
    let rules = dir.path().join("rules");
    std::fs::write(&rules, "/admin admin\n/orders read\n").unwrap();
    let guard = GuardProcess::start(&[
        "--issuer",
        &issuer,
        "--audience",
        "urn:tessera:demo-api",
        "--rules",
        rules.to_str().unwrap(),
        "--client-id",
        &id,
        "--client-secret",
        &secret,
    ]);
    let body: Value = token(&id, &secret, &token_url).await.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let verify = |path: &'static str, authorization: Option<String>| {
        let mut request = reqwest::Client::new()
            .get(format!("{}/verify", guard.base))
            .header("x-original-uri", path);
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        request.send()
    };
    let ok = verify("/orders/42?x=1", Some(format!("Bearer {access}")))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-subject"], id.as_str());
    assert_eq!(ok.headers()["x-auth-client-id"], id.as_str());
    assert_eq!(ok.headers()["x-auth-scope"], "read write");

    let forbidden = verify("/admin/users", Some(format!("Bearer {access}")))
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let challenge = forbidden.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("admin"),
        "{challenge}"
    );

    let missing = verify("/orders", None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert!(
        missing.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let garbage = verify("/orders", Some("Bearer not.a.token".into()))
        .await
        .unwrap();
    assert_eq!(garbage.status(), 401);
    assert!(
        garbage.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );

    // Revoked at the issuer: refused within a second, although the guard cached it.
    let revoked = reqwest::Client::new()
        .post(token_url.replace("/token", "/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let at = std::time::Instant::now();
    while verify("/orders", Some(format!("Bearer {access}")))
        .await
        .unwrap()
        .status()
        == 200
    {
        assert!(
            at.elapsed() < Duration::from_secs(1),
            "the guard still accepts a revoked token"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tessera_guard_in_introspection_mode_asks_the_issuer_about_each_token() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let (id, secret, token_url) = printed_curl(&demo);
    let issuer = token_url.replace("/api/v2/auth/token", "");
    let guard = GuardProcess::start(&[
        "--issuer",
        &issuer,
        "--audience",
        "urn:tessera:demo-api",
        "--mode",
        "introspection",
        "--cache-ttl",
        "0s",
        "--client-id",
        &id,
        "--client-secret",
        &secret,
    ]);
    let body: Value = token(&id, &secret, &token_url).await.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let verify = |base: String| {
        reqwest::Client::new()
            .get(format!("{base}/verify"))
            .header("authorization", format!("Bearer {access}"))
            .send()
    };
    let ok = verify(guard.base.clone()).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-auth-subject"], id.as_str());
    let revoked = reqwest::Client::new()
        .post(token_url.replace("/token", "/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // With no cache, the very next check asks the issuer, which says inactive.
    let refused = verify(guard.base.clone()).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[test]
fn client_token_lifetimes_are_validated_updated_shown_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fn create<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["client", "create", "--id", "svc"];
        args.extend_from_slice(extra);
        args
    }
    // Each refusal names the flag, the value and the allowed range, and creates nothing.
    for (extra, message) in [
        (
            &["--access-token-ttl", "30s"][..],
            "--access-token-ttl 30s is out of range: allowed 1m to 24h",
        ),
        (
            &["--access-token-ttl", "25h"][..],
            "--access-token-ttl 25h is out of range: allowed 1m to 24h",
        ),
        (
            &["--refresh-token-ttl", "59m"][..],
            "--refresh-token-ttl 59m is out of range: allowed 1h to 365d",
        ),
        (
            &["--refresh-token-ttl", "366d"][..],
            "--refresh-token-ttl 366d is out of range: allowed 1h to 365d",
        ),
        (
            &["--access-token-ttl", "soon"][..],
            "--access-token-ttl soon: not a duration",
        ),
        (
            &["--access-token-ttl", "2h", "--refresh-token-ttl", "1h"][..],
            "--refresh-token-ttl 1h is shorter than --access-token-ttl 2h",
        ),
    ] {
        fails_with(d, &create(extra), None, message);
    }
    assert_eq!(
        ok_json(d, &["client", "list", "--format", "json"], None),
        serde_json::json!([])
    );

    let svc = ok_json(
        d,
        &create(&[
            "--access-token-ttl",
            "5m",
            "--refresh-token-ttl",
            "2d",
            "--format",
            "json",
        ]),
        None,
    );
    assert_eq!(
        (&svc["access_token_ttl"], &svc["refresh_token_ttl"]),
        (&serde_json::json!(300), &serde_json::json!(172_800))
    );
    let shown = String::from_utf8(tessera(d, &["client", "show", "svc"], None).stdout).unwrap();
    assert!(shown.contains("access_ttl     5m"), "{shown}");
    assert!(shown.contains("refresh_ttl    2d"), "{shown}");
    let listed = String::from_utf8(tessera(d, &["client", "list"], None).stdout).unwrap();
    assert!(
        listed.contains("ACCESS_TTL") && listed.contains(" 5m "),
        "{listed}"
    );

    // Update changes what is given and keeps the rest; `default` clears an override.
    let lifetimes = |v: &Value| {
        (
            v["access_token_ttl"].clone(),
            v["refresh_token_ttl"].clone(),
        )
    };
    let update = |extra: &[&str]| {
        let mut args = vec!["client", "update", "svc", "--format", "json"];
        args.extend_from_slice(extra);
        ok_json(d, &args, None)
    };
    let updated = update(&["--access-token-ttl", "10m"]);
    assert_eq!(lifetimes(&updated), (600.into(), 172_800.into()));
    let updated = update(&["--refresh-token-ttl", "default"]);
    assert_eq!(lifetimes(&updated), (600.into(), Value::Null));
    let shown = String::from_utf8(tessera(d, &["client", "show", "svc"], None).stdout).unwrap();
    assert!(shown.contains("refresh_ttl    server default"), "{shown}");

    // Refused updates change nothing.
    fails_with(
        d,
        &["client", "update", "svc", "--access-token-ttl", "0s"],
        None,
        "--access-token-ttl 0s is out of range: allowed 1m to 24h",
    );
    update(&["--access-token-ttl", "2h", "--refresh-token-ttl", "3h"]);
    fails_with(
        d,
        &["client", "update", "svc", "--refresh-token-ttl", "1h"],
        None,
        "--refresh-token-ttl 1h is shorter than --access-token-ttl 2h",
    );
    fails_with(d, &["client", "update", "svc"], None, "nothing to update");
    fails_with(
        d,
        &["client", "update", "nope", "--access-token-ttl", "5m"],
        None,
        "no client with id `nope`",
    );
    let shown = ok_json(d, &["client", "show", "svc", "--format", "json"], None);
    assert_eq!(lifetimes(&shown), (7_200.into(), 10_800.into()));

    // Export and import carry the overrides; an export from before them imports with none.
    let exported = tessera(d, &["export"], None);
    assert!(exported.status.success());
    let document = String::from_utf8(exported.stdout).unwrap();
    let target = tempfile::tempdir().unwrap();
    assert!(
        tessera(target.path(), &["import"], Some(&document))
            .status
            .success()
    );
    let imported = ok_json(
        target.path(),
        &["client", "show", "svc", "--format", "json"],
        None,
    );
    assert_eq!(lifetimes(&imported), (7_200.into(), 10_800.into()));

    let mut old: Value = serde_json::from_str(&document).unwrap();
    for client in old["clients"].as_array_mut().unwrap() {
        let fields = client.as_object_mut().unwrap();
        fields.remove("access_token_ttl").unwrap();
        fields.remove("refresh_token_ttl").unwrap();
    }
    let target = tempfile::tempdir().unwrap();
    let imported = tessera(target.path(), &["import"], Some(&old.to_string()));
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let imported = ok_json(
        target.path(),
        &["client", "show", "svc", "--format", "json"],
        None,
    );
    assert_eq!(lifetimes(&imported), (Value::Null, Value::Null));
}

#[tokio::test]
async fn consent_and_sign_out_settings_are_registered_shown_exported_and_revoked() {
    use tessera_core::consent::{Consent, ConsentStore};
    use tessera_core::scope::ScopeSet;
    use tessera_core::time::UnixTime;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let partner = ok_json(
        d,
        &[
            "client",
            "create",
            "--id",
            "partner",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--post-logout-redirect-uri",
            "https://partner.example/bye",
            "--post-logout-redirect-uri",
            "http://127.0.0.1:9/bye",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(partner["first_party"], false, "third-party unless told");
    assert_eq!(
        partner["post_logout_redirect_uris"],
        serde_json::json!(["https://partner.example/bye", "http://127.0.0.1:9/bye"])
    );
    let own = ok_json(
        d,
        &[
            "client",
            "create",
            "--id",
            "own",
            "--public",
            "--first-party",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(own["first_party"], true);
    assert_eq!(own["post_logout_redirect_uris"], serde_json::json!([]));
    for bad in [
        "http://partner.example/bye",
        "https://partner.example/bye#x",
        "/bye",
    ] {
        fails_with(
            d,
            &[
                "client",
                "create",
                "--id",
                "bad",
                "--public",
                "--redirect-uri",
                "http://127.0.0.1:9/cb",
                "--post-logout-redirect-uri",
                bad,
            ],
            None,
            "--post-logout-redirect-uri",
        );
    }

    let shown = String::from_utf8(tessera(d, &["client", "show", "partner"], None).stdout).unwrap();
    assert!(shown.contains("party          third-party"), "{shown}");
    assert!(
        shown.contains("post_logout    https://partner.example/bye http://127.0.0.1:9/bye"),
        "{shown}"
    );
    let listed = String::from_utf8(tessera(d, &["client", "list"], None).stdout).unwrap();
    assert!(
        listed.contains("PARTY")
            && listed.contains("first-party")
            && listed.contains("third-party"),
        "{listed}"
    );

    // Update flips it either way and keeps the rest.
    let first_party = |id: &str| {
        ok_json(d, &["client", "show", id, "--format", "json"], None)["first_party"].clone()
    };
    for value in ["true", "false"] {
        let updated = ok_json(
            d,
            &[
                "client",
                "update",
                "partner",
                "--first-party",
                value,
                "--format",
                "json",
            ],
            None,
        );
        assert_eq!(updated["first_party"].to_string(), value);
        assert_eq!(first_party("partner").to_string(), value);
        assert_eq!(
            updated["post_logout_redirect_uris"],
            partner["post_logout_redirect_uris"]
        );
    }
    fails_with(
        d,
        &["client", "update", "nope", "--first-party", "true"],
        None,
        "no client with id `nope`",
    );

    // Export and import carry both; an export from before them imports as first-party
    // without post-logout URIs (as the migration treats clients registered before).
    let exported = tessera(d, &["export"], None);
    assert!(exported.status.success());
    let document = String::from_utf8(exported.stdout).unwrap();
    let target = tempfile::tempdir().unwrap();
    assert!(
        tessera(target.path(), &["import"], Some(&document))
            .status
            .success()
    );
    assert_eq!(
        ok_json(
            target.path(),
            &["client", "show", "partner", "--format", "json"],
            None
        ),
        ok_json(d, &["client", "show", "partner", "--format", "json"], None)
    );
    let mut old: Value = serde_json::from_str(&document).unwrap();
    for client in old["clients"].as_array_mut().unwrap() {
        let fields = client.as_object_mut().unwrap();
        fields.remove("first_party").unwrap();
        fields.remove("post_logout_redirect_uris").unwrap();
    }
    let target = tempfile::tempdir().unwrap();
    let imported = tessera(target.path(), &["import"], Some(&old.to_string()));
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let imported = ok_json(
        target.path(),
        &["client", "show", "partner", "--format", "json"],
        None,
    );
    assert_eq!(imported["first_party"], true);
    assert_eq!(imported["post_logout_redirect_uris"], serde_json::json!([]));

    // revoke-consent forgets one client's consent, or every one.
    let alice = ok_json(d, &["user", "create", "alice", "--format", "json"], None);
    let alice_id = alice["id"].as_str().unwrap().to_owned();
    let url = format!("sqlite://{}/tessera.db", d.display());
    let store = tessera_store::SqliteStore::open(&url).await.unwrap();
    for client in ["partner", "own"] {
        let consent = Consent {
            user_id: alice_id.clone(),
            client_id: client.into(),
            scopes: ScopeSet::from_tokens(["read"]),
            granted_at: UnixTime(1),
        };
        store.save_consent(&consent).await.unwrap();
    }
    let out = tessera(
        d,
        &["user", "revoke-consent", "alice", "--client", "partner"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("revoked 1 consent of alice for client partner"),
        "{printed}"
    );
    assert!(
        store
            .find_consent(&alice_id, "partner")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_consent(&alice_id, "own")
            .await
            .unwrap()
            .is_some()
    );
    let out = tessera(d, &["user", "revoke-consent", "alice"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("revoked 1 consent of alice for every client"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        store
            .find_consent(&alice_id, "own")
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
    fails_with(
        d,
        &["user", "revoke-consent", "nobody"],
        None,
        "no user named `nobody`",
    );
    fails_with(
        d,
        &["user", "revoke-consent", "alice", "--client", "ghost"],
        None,
        "no client with id `ghost`",
    );
}

#[test]
fn scope_descriptions_are_checked_and_come_from_flags_environment_or_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A malformed description stops the server before it binds, naming the setting.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "config",
            "check",
            "--",
            "--scope-description",
            "no equals sign",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SCOPE=DESCRIPTION"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The variable separates entries with `;`.
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["config", "show", "--format", "json"])
        .env(
            "TESSERA_SCOPE_DESCRIPTIONS",
            "orders:read=Read your orders;profile=See your profile",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("orders:read=Read your orders,profile=See your profile"),
        "{shown}"
    );
    // A file array.
    let file = d.join("tessera.toml");
    std::fs::write(
        &file,
        "[serve]\nscope_descriptions = [\"orders:read=Read your orders\", \"write=Change things\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["config", "show", "--format", "json", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("orders:read=Read your orders,write=Change things")
    );
}
