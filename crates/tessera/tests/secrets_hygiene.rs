//! Secrets hygiene (DESIGN.md "Never log a token, code, secret or password"; OWASP ASVS
//! V7.1.1/V7.1.2): a real `tessera serve` with every log target at `trace`
//! (`TESSERA_LOG=trace`, `RUST_LOG=trace`), in text and in JSON, runs the whole flow —
//! clients created with secrets (CLI), client credentials, a failed and a successful
//! password sign-in, authorization code with PKCE, refresh, introspection, revocation, a
//! reused refresh token, a wrong client secret, a replayed code — and everything it wrote to standard output and standard error is
//! searched for each secret the flow used: access tokens (and their signatures), refresh
//! tokens, the code, the code verifier, client secrets (also inside an HTTP Basic header),
//! the passwords, the session cookie and the master key, each also URL-encoded and
//! base64-encoded. The CLI commands run at `trace` too, and their standard error is searched
//! the same way (their standard output is where `client create` hands a generated secret
//! to the operator, on purpose).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bounds every wait on the server, so that a broken build fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const USERNAME: &str = "alice";

/// `n` random bytes, base64url.
fn random(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Every line a process wrote, in order of arrival.
type Captured = Arc<Mutex<Vec<String>>>;

/// Collects the lines of `pipe` into `into`, and sends each on `tx` while anyone listens.
fn capture(
    pipe: impl Read + Send + 'static,
    into: Captured,
    tx: mpsc::Sender<String>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    })
}

/// The environment every command of the flow gets: the log filter at trace.
fn trace_env(cmd: &mut Command, data: &std::path::Path, master_key: &str, json: bool) {
    cmd.arg("--data-dir")
        .arg(data)
        .env("TESSERA_LOG", "trace")
        .env("RUST_LOG", "trace")
        .env("TESSERA_LOG_FORMAT", if json { "json" } else { "text" })
        .env("TESSERA_MASTER_KEY", master_key)
        .env("NO_COLOR", "1")
        .env_remove("TESSERA_DATABASE_URL")
        .env_remove("TESSERA_REDIS_URL")
        .env_remove("TESSERA_ISSUER");
}

/// Runs a CLI command at trace level with `stdin`; returns its stdout and keeps its stderr
/// in `log`.
fn cli(
    args: &[&str],
    stdin: Option<&str>,
    data: &std::path::Path,
    master_key: &str,
    json: bool,
    log: &Captured,
) -> String {
    use std::io::Write;

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.args(args);
    trace_env(&mut cmd, data, master_key, json);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "tessera {args:?}: {stderr}");
    log.lock()
        .unwrap()
        .extend(stderr.lines().map(str::to_owned));
    String::from_utf8(output.stdout).unwrap()
}

/// A `tessera serve` process whose stdout and stderr are captured in full.
struct Server {
    /// `None` once stopped.
    child: Option<Child>,
    readers: Vec<std::thread::JoinHandle<()>>,
    output: Captured,
    issuer: String,
}

impl Server {
    fn start(data: &std::path::Path, master_key: &str, json: bool) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        trace_env(&mut cmd, data, master_key, json);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Captured::default();
        let (tx, rx) = mpsc::channel();
        let readers = vec![
            capture(child.stdout.take().unwrap(), output.clone(), tx.clone()),
            capture(child.stderr.take().unwrap(), output.clone(), tx),
        ];
        let issuer = loop {
            let line = rx
                .recv_timeout(PATIENCE)
                .expect("the server said it is ready");
            if line.contains("tessera is ready") {
                break issuer_of(&line, json);
            }
        };
        Self {
            child: Some(child),
            readers,
            output,
            issuer,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Stops the server with SIGTERM (a clean shutdown flushes every log line), waits for it
    /// and its output to end, and returns everything it wrote.
    fn stop(mut self) -> Vec<String> {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let signal = |name: &str| {
            Command::new("kill")
                .args([name, pid.as_str()])
                .status()
                .unwrap()
        };
        assert!(signal("-TERM").success());
        let (done, exited) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let status = child.wait();
            let _ = done.send(());
            status
        });
        if exited.recv_timeout(PATIENCE).is_err() {
            signal("-KILL");
            panic!("the server did not stop within {PATIENCE:?} of SIGTERM");
        }
        waiter.join().unwrap().unwrap();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.output.lock().unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only when a check failed before `stop`.
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The issuer of the "tessera is ready" line.
fn issuer_of(line: &str, json: bool) -> String {
    if json {
        let v: Value = serde_json::from_str(line).unwrap();
        v["fields"]["issuer"].as_str().unwrap().to_owned()
    } else {
        let at = line.find("issuer=").unwrap() + "issuer=".len();
        line[at..].split_whitespace().next().unwrap().to_owned()
    }
}

/// The `name` and `value` of each `<input type="hidden">`, unescaped.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|tag| (attribute(tag, "name"), attribute(tag, "value")))
        .collect()
}

/// The unescaped value of attribute `name` at the start of `tag`.
fn attribute(tag: &str, name: &str) -> String {
    let tag = &tag[..tag.find('>').unwrap()];
    let start = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    let value = &tag[start..start + tag[start..].find('"').unwrap()];
    value
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// What the browser sees after submitting the login form with `password`: the response,
/// and the session cookie it set, if any.
async fn submit_login(
    browser: &reqwest::Client,
    authorize_url: &str,
    password: &str,
) -> (reqwest::Response, Option<String>) {
    let page = browser.get(authorize_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookies = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let html = page.text().await.unwrap();
    let mut form = hidden_inputs(&html);
    form.push(("username".into(), USERNAME.into()));
    form.push(("password".into(), password.into()));
    let action = attribute(html.split("<form ").nth(1).unwrap(), "action");
    let target = url::Url::parse(authorize_url)
        .unwrap()
        .join(&action)
        .unwrap();
    let posted = browser
        .post(target)
        .header(COOKIE, cookies)
        .form(&form)
        .send()
        .await
        .unwrap();
    let session = posted
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|c| c.to_str().ok())
        .filter_map(|c| c.split(';').next()?.split_once('='))
        .map(|(_, v)| v.to_owned())
        .find(|v| v.starts_with("tsn_"));
    (posted, session)
}

/// The secrets of one run, by name.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, name: &str, value: &str) {
        assert!(value.len() >= 8, "{name} is too short to search for");
        self.0.push((name.to_owned(), value.to_owned()));
    }

    /// Adds an access token, and its signature on its own.
    fn add_jwt(&mut self, name: &str, token: &str) {
        self.add(name, token);
        self.add(
            &format!("{name} signature"),
            token.rsplit('.').next().unwrap(),
        );
    }

    /// Every form a secret could be written in: as is, form-urlencoded, percent-encoded,
    /// and base64 (standard and URL-safe, padded or not).
    fn forms(&self) -> Vec<(String, String)> {
        let mut forms = Vec::new();
        for (name, value) in &self.0 {
            let form_encoded: String =
                url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
            let percent = form_encoded.replace('+', "%20");
            let bytes = value.as_bytes();
            for (how, form) in [
                ("as is", value.clone()),
                ("form-urlencoded", form_encoded),
                ("percent-encoded", percent),
                ("base64", STANDARD.encode(bytes)),
                ("base64 (no padding)", STANDARD_NO_PAD.encode(bytes)),
                ("base64url", URL_SAFE.encode(bytes)),
                ("base64url (no padding)", URL_SAFE_NO_PAD.encode(bytes)),
            ] {
                forms.push((format!("{name}, {how}"), form));
            }
        }
        // One entry per distinct string (an unreserved secret is its own URL encoding).
        let mut seen = std::collections::HashSet::new();
        forms.retain(|(_, form)| seen.insert(form.clone()));
        forms
    }
}

/// Asserts that no secret appears in `output` (named `what`) in any form.
fn assert_clean(what: &str, output: &[String], secrets: &Secrets) {
    let mut leaks = Vec::new();
    for (form, value) in secrets.forms() {
        for line in output.iter().filter(|l| l.contains(&value)) {
            leaks.push(format!("{form} in: {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{what} leaks {} secret(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

async fn form_post(
    http: &reqwest::Client,
    url: &str,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = http.post(url).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn str_of(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
        .to_owned()
}

/// The whole flow against a server logging at trace in `json` or text.
async fn flow(json: bool) {
    let data = tempfile::tempdir().unwrap();
    let mut secrets = Secrets::default();
    let master_raw = {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        bytes
    };
    let master_key = STANDARD.encode(master_raw);
    secrets.add("master key", &master_key);
    secrets.add(
        "master key (hex)",
        &master_raw
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    );

    // The operator's part: clients with secrets and a user, through the CLI at trace.
    let cli_log = Captured::default();
    let web_secret = format!("tss_{}", random(32));
    secrets.add("web client secret", &web_secret);
    cli(
        &[
            "client",
            "create",
            "--id",
            "web",
            "--first-party",
            "--secret-stdin",
            "--redirect-uri",
            REDIRECT,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "read write",
        ],
        Some(&web_secret),
        data.path(),
        &master_key,
        json,
        &cli_log,
    );
    let created = cli(
        &[
            "client",
            "create",
            "--id",
            "svc",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read",
            "--format",
            "json",
        ],
        None,
        data.path(),
        &master_key,
        json,
        &cli_log,
    );
    let created: Value = serde_json::from_str(&created).unwrap();
    let svc_secret = str_of(&created, "client_secret");
    secrets.add("svc client secret (generated)", &svc_secret);
    // Characters that encode differently in a form, a URL and JSON.
    let password = format!("pw {}+/&=\"é{}", random(9), random(6));
    secrets.add("password", &password);
    cli(
        &["user", "create", USERNAME, "--password-stdin"],
        Some(&password),
        data.path(),
        &master_key,
        json,
        &cli_log,
    );

    let server = Server::start(data.path(), &master_key, json);
    let http = reqwest::Client::new();
    let token_url = server.url("/api/v2/auth/token");
    secrets.add("web Basic credentials", &format!("web:{web_secret}"));
    secrets.add("svc Basic credentials", &format!("svc:{svc_secret}"));

    // Client credentials.
    let (status, body) = form_post(
        &http,
        &token_url,
        Some(("svc", &svc_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let service_token = str_of(&body, "access_token");
    secrets.add_jwt("client-credentials access token", &service_token);

    // Authorization code with PKCE, after one failed sign-in.
    let verifier = random(48);
    secrets.add("code_verifier", &verifier);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut authorize = url::Url::parse(&server.url("/api/v2/auth/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "web")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "read")
        .append_pair("state", "st-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let wrong_password = format!("wrong {}+/&=", random(12));
    secrets.add("wrong password", &wrong_password);
    let (refused, _) = submit_login(&browser, authorize.as_str(), &wrong_password).await;
    assert!(
        !refused.status().is_redirection(),
        "a wrong password signs no one in"
    );
    let (signed_in, session) = submit_login(&browser, authorize.as_str(), &password).await;
    assert!(
        signed_in.status().is_redirection(),
        "{}",
        signed_in.status()
    );
    let session = session.expect("a session cookie");
    secrets.add("session cookie", &session);
    let location = url::Url::parse(signed_in.headers()[LOCATION].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    secrets.add("authorization code", &code);
    let (status, body) = form_post(
        &http,
        &token_url,
        Some(("web", &web_secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user_token = str_of(&body, "access_token");
    let first_refresh = str_of(&body, "refresh_token");
    secrets.add_jwt("code access token", &user_token);
    secrets.add("first refresh token", &first_refresh);

    // Refresh, authenticating in the form this time (client_secret_post).
    let (status, body) = form_post(
        &http,
        &token_url,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
            ("client_id", "web"),
            ("client_secret", &web_secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let refreshed_token = str_of(&body, "access_token");
    let second_refresh = str_of(&body, "refresh_token");
    secrets.add_jwt("refreshed access token", &refreshed_token);
    secrets.add("second refresh token", &second_refresh);

    // Introspection, of an access token and of a refresh token.
    for token in [&refreshed_token, &second_refresh] {
        let (status, body) = form_post(
            &http,
            &server.url("/api/v2/auth/introspect"),
            Some(("web", &web_secret)),
            &[("token", token)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["active"], true, "{body}");
    }

    // Revocation of the service token.
    let (status, _) = form_post(
        &http,
        &server.url("/api/v2/auth/revoke"),
        Some(("svc", &svc_secret)),
        &[("token", &service_token)],
    )
    .await;
    assert_eq!(status, 200);

    // Reuse of the rotated refresh token: refused, the family revoked.
    let (status, body) = form_post(
        &http,
        &token_url,
        Some(("web", &web_secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
        ],
    )
    .await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (400, "invalid_grant")
    );
    let (status, body) = form_post(
        &http,
        &token_url,
        Some(("web", &web_secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &second_refresh),
        ],
    )
    .await;
    assert_eq!(status, 400, "reuse revoked the family: {body}");

    // Failures that carry secrets: a wrong client secret, a replayed code.
    let wrong_secret = format!("tss_{}", random(32));
    secrets.add("wrong client secret", &wrong_secret);
    let (status, _) = form_post(
        &http,
        &token_url,
        Some(("web", &wrong_secret)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &second_refresh),
        ],
    )
    .await;
    assert_eq!(status, 401);
    let (status, body) = form_post(
        &http,
        &token_url,
        Some(("web", &web_secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, str_of(&body, "error").as_str()),
        (400, "invalid_grant")
    );

    // Close the clients' keep-alive connections, so the shutdown waits for nothing.
    drop(http);
    drop(browser);
    let output = server.stop();
    // The filter really was lowered, and the log covered every request: otherwise a clean
    // result would prove nothing. (Nothing in the server emits at TRACE itself; what `trace`
    // adds over the default `info,sqlx=warn,tower_http=warn` is every DEBUG line: each
    // request of tower_http and each SQL statement of sqlx.)
    let request_line = |path: &str| {
        output
            .iter()
            .any(|l| l.contains("DEBUG") && l.contains("tower_http") && l.contains(path))
    };
    for path in [
        "/api/v2/auth/token",
        "/api/v2/auth/authorize",
        "/api/v2/auth/introspect",
        "/api/v2/auth/revoke",
    ] {
        assert!(request_line(path), "no DEBUG request line for {path}");
    }
    assert!(
        output
            .iter()
            .any(|l| l.contains("DEBUG") && l.contains("sqlx::query")),
        "no DEBUG line of sqlx"
    );
    for event in [
        "refresh_reuse_detected",
        "code_reuse_detected",
        "token_revoked",
        "login_failed",
    ] {
        assert!(
            output.iter().any(|l| l.contains(event)),
            "no {event} event in the server's output"
        );
    }
    assert_clean("the server's output", &output, &secrets);
    let cli_log = cli_log.lock().unwrap().clone();
    assert_clean("the CLI's standard error", &cli_log, &secrets);
}

#[tokio::test]
async fn trace_text_logs_of_the_full_flow_hold_no_secret() {
    flow(false).await;
}

#[tokio::test]
async fn trace_json_logs_of_the_full_flow_hold_no_secret() {
    flow(true).await;
}
