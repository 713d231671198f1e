//! Two `tessera serve` processes on one PostgreSQL database and one Redis prefix: the
//! scaled-out deployment, tested as operators run it.
//!
//! Needs the machine's PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379);
//! without them the test says so and passes, except under `CI=true`, where it fails.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const REDIRECT: &str = "http://127.0.0.1:8765/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const PASSWORD: &str = "a long enough password";

fn services_available() -> bool {
    let up = |addr: &str| std::net::TcpStream::connect(addr).is_ok();
    let (pg, redis) = (up("127.0.0.1:5432"), up("127.0.0.1:6379"));
    if pg && redis {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and PostgreSQL ({pg}) or Redis ({redis}) is not reachable"
    );
    eprintln!("SKIPPED: PostgreSQL or Redis is not reachable on 127.0.0.1");
    false
}

/// A throwaway PostgreSQL database, dropped when the test ends.
struct Database {
    name: String,
}

impl Database {
    fn create() -> Self {
        let name = format!("tessera_multinode_{}_{}", std::process::id(), rand_suffix());
        psql(&format!("CREATE DATABASE {name}"));
        Self { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([PG_ADMIN, "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos:x}")
}

/// The environment every process of the deployment shares.
fn deployment_env(db: &Database, prefix: &str) -> Vec<(String, String)> {
    [
        ("TESSERA_DATABASE_URL", db.url()),
        ("TESSERA_MASTER_KEY", STANDARD.encode([9u8; 32])),
        ("TESSERA_REDIS_URL", "redis://127.0.0.1:6379".into()),
        ("TESSERA_REDIS_PREFIX", prefix.into()),
        ("TESSERA_ISSUER", "http://auth.multinode.test".into()),
        // A shared public name over plain http: only allowed explicitly.
        ("TESSERA_ALLOW_HTTP_ISSUER", "true".into()),
        ("TESSERA_JWKS_MAX_AGE", "1s".into()),
        ("TESSERA_KEY_PUBLISH_AHEAD", "1s".into()),
        // Only the Redis bus can make nodes reload their keys within the test.
        ("TESSERA_KEY_REFRESH_INTERVAL", "1h".into()),
        ("NO_COLOR", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn cli(env: &[(String, String)], args: &[&str], stdin: Option<&str>) -> Value {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
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
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// A running node; killed on drop.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(env: &[(String, String)]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Owned by the node from here on, so it is killed and reaped whatever happens.
        let mut node = Self {
            child,
            base: String::new(),
        };
        let stderr = node.child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        while node.base.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the node started");
            if let Some(listen) = line.split("listen=").nth(1) {
                let addr = listen.split_whitespace().next().unwrap();
                node.base = format!("http://{addr}");
            }
        }
        node
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs alice in at `node` for the public client and returns the code.
async fn code_at(node: &Node) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
    let mut url = reqwest::Url::parse(&node.url("/api/v2/auth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "spa")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let page = http().get(url.as_str()).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let mut form: Vec<(String, String)> = html
        .split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|p| {
            let name = p.split("name=\"").nth(1)?.split('"').next()?;
            let value = p.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.replace("&amp;", "&")))
        })
        .collect();
    form.push(("username".into(), "alice".into()));
    form.push(("password".into(), PASSWORD.into()));
    let posted = http()
        .post(node.url("/api/v2/auth/authorize"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = posted.headers()["location"].to_str().unwrap().to_owned();
    reqwest::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

async fn token(node: &Node, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> (u16, Value) {
    let mut request = http().post(node.url("/api/v2/auth/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn introspect(node: &Node, secret: &str, token: &str) -> bool {
    let r = http()
        .post(node.url("/api/v2/auth/introspect"))
        .basic_auth("svc", Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["active"] == true
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_and_redis_behave_as_one_server() {
    if !services_available() {
        return;
    }
    let db = Database::create();
    let prefix = format!(
        "tessera-multinode-{}-{}:",
        std::process::id(),
        rand_suffix()
    );
    let env = deployment_env(&db, &prefix);
    cli(&env, &["migrate"], None);
    let svc = cli(
        &env,
        &[
            "client", "create", "--id", "svc", "--scope", "read", "--format", "json",
        ],
        None,
    );
    let secret = svc["client_secret"].as_str().unwrap().to_owned();
    cli(
        &env,
        &[
            "client",
            "create",
            "--id",
            "spa",
            "--public",
            "--first-party",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            REDIRECT,
            "--scope",
            "read",
            "--format",
            "json",
        ],
        None,
    );
    cli(
        &env,
        &[
            "user",
            "create",
            "alice",
            "--password-stdin",
            "--format",
            "json",
        ],
        Some(PASSWORD),
    );
    let a = Node::start(&env);
    let b = Node::start(&env);

    // A code issued through node A is redeemed on node B.
    let code = code_at(&a).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
    ];
    let (status, first) = token(&b, &form, None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        token(&a, &form, None).await.0,
        400,
        "and is single-use across nodes"
    );

    // 100 concurrent refreshes of one token, spread over both nodes: exactly one winner.
    let code = code_at(&b).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
    ];
    let (_, tokens) = token(&a, &form, None).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let nodes = Arc::new([a.base.clone(), b.base.clone()]);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (nodes, refresh) = (nodes.clone(), refresh.clone());
        tasks.push(tokio::spawn(async move {
            let r = http()
                .post(format!("{}/api/v2/auth/token", nodes[i % 2]))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", "spa"),
                    ("refresh_token", refresh.as_str()),
                ])
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 400),
        "{statuses:?}"
    );

    // A revocation on A is refused by B within a second, whatever B had cached.
    let (_, cc) = token(
        &a,
        &[("grant_type", "client_credentials")],
        Some(("svc", &secret)),
    )
    .await;
    let access = cc["access_token"].as_str().unwrap().to_owned();
    assert!(introspect(&b, &secret, &access).await);
    assert!(introspect(&b, &secret, &access).await, "cached on b");
    let r = http()
        .post(a.url("/api/v2/auth/revoke"))
        .basic_auth("svc", Some(&secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let revoked_at = Instant::now();
    while introspect(&b, &secret, &access).await {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "b still accepts a revoked token"
        );
    }

    // A key rotation started by the operator is used by both nodes once it activates.
    let old_kid = kid_of(&access);
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["keys", "rotate"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rotated_at = Instant::now();
    for node in [&a, &b] {
        loop {
            let (_, t) = token(
                node,
                &[("grant_type", "client_credentials")],
                Some(("svc", &secret)),
            )
            .await;
            if kid_of(t["access_token"].as_str().unwrap()) != old_kid {
                break;
            }
            assert!(
                rotated_at.elapsed() < Duration::from_secs(10),
                "{} never used the new key",
                node.base
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop((a, b));
    cleanup_redis(&prefix);
}

fn cleanup_redis(prefix: &str) {
    let Ok(mut conn) =
        redis::Client::open("redis://127.0.0.1:6379").and_then(|c| c.get_connection())
    else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut conn);
    }
}
