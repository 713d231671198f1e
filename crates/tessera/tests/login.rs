//! `tessera login`, `tessera token` and `tessera logout` as a person uses them, against a
//! `tessera serve --demo` process, with the browser's part played over HTTP: open the
//! authorization URL the CLI prints, fill in the login form, follow the redirect to the
//! CLI's loopback listener.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

/// The public client the tests sign in with.
const CLIENT: &str = "tessera-cli";
/// Bounds every wait on a process, so that a broken build fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `serve --demo` process; killed on drop.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Demo {
    fn start(data: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_ISSUER")
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        Self {
            child,
            lines: line_reader(stdout),
        }
    }

    /// The next printed line containing `needle`.
    fn line_with(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(PATIENCE)
                .expect("demo output ended before the expected line");
            if line.contains(needle) {
                return line;
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends each line of `pipe` to the receiver, from a thread; the channel disconnects when
/// the pipe closes (the process exited).
fn line_reader(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The word after `key` in `line`.
fn word_after(line: &str, key: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == key).unwrap();
    words[at + 1].to_owned()
}

/// A demo server with the CLI's public client registered, and a config directory.
struct Setup {
    demo: Option<Demo>,
    data: tempfile::TempDir,
    home: tempfile::TempDir,
    issuer: String,
    password: String,
    service_secret: String,
    metadata: Value,
}

impl Setup {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let demo = Demo::start(data.path());
        let issuer = word_after(&demo.line_with("demo is ready at"), "at");
        let service_secret = word_after(&demo.line_with("confidential client"), "secret");
        let password = word_after(&demo.line_with("password"), "password");
        let created = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args([
                "client",
                "create",
                "--id",
                CLIENT,
                "--public",
                "--first-party",
            ])
            .args(["--redirect-uri", "http://127.0.0.1/callback"])
            .args(["--grant-type", "authorization_code"])
            .args(["--grant-type", "refresh_token"])
            .args(["--scope", "read write", "--data-dir"])
            .arg(data.path())
            .env_remove("TESSERA_DATABASE_URL")
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        let metadata: Value =
            reqwest::get(format!("{issuer}/.well-known/oauth-authorization-server"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        Self {
            demo: Some(demo),
            data,
            home: tempfile::tempdir().unwrap(),
            issuer,
            password,
            service_secret,
            metadata,
        }
    }

    /// `TESSERA_CONFIG_DIR`: not created yet, so that `login` creates it.
    fn config_dir(&self) -> PathBuf {
        self.home.path().join("config")
    }

    fn tokens_path(&self) -> PathBuf {
        self.config_dir().join("tokens.json")
    }

    fn session_path(&self) -> PathBuf {
        self.config_dir().join("session.json")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(args)
            .env("TESSERA_CONFIG_DIR", self.config_dir())
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn endpoint(&self, name: &str) -> String {
        self.metadata[name].as_str().unwrap().to_owned()
    }

    /// Runs `tessera login` and signs in as the demo user when it prints the URL.
    async fn login(&self) -> Login {
        let mut child = self
            .command(&[
                "login",
                "--issuer",
                &self.issuer,
                "--client-id",
                CLIENT,
                "--scope",
                "read",
                "--no-browser",
                "--timeout",
                "60s",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = line_reader(child.stderr.take().unwrap());
        let prefix = self.endpoint("authorization_endpoint") + "?";
        let mut printed = Vec::new();
        let url = loop {
            let line = stderr
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no authorization URL printed: {printed:?}"));
            printed.push(line.clone());
            if line.trim_start().starts_with(&prefix) {
                break line.trim().to_owned();
            }
        };
        let callback = browser_sign_in(&url, &self.password).await;
        // The rest of stderr, until the process closes it by exiting.
        loop {
            match stderr.recv_timeout(PATIENCE) {
                Ok(line) => printed.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("tessera login did not exit: {printed:?}")
                }
            }
        }
        let output = child.wait_with_output().unwrap();
        Login {
            status: output.status,
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: printed.join("\n"),
            callback,
        }
    }

    /// Signs in and checks that it worked.
    async fn signed_in(&self) -> Login {
        let login = self.login().await;
        assert!(login.status.success(), "tessera login: {}", login.stderr);
        login
    }

    /// `tessera token [args]`: the printed token, after checking the output's shape.
    fn token(&self, args: &[&str]) -> String {
        let out = self.run(&[&["token"], args].concat());
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "tessera token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.ends_with('\n') && stdout.lines().count() == 1,
            "only the token and a newline: {stdout:?}"
        );
        let token = stdout.trim_end().to_owned();
        assert!(!token.is_empty() && !token.contains(char::is_whitespace));
        token
    }

    fn stored_tokens(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.tokens_path()).unwrap()).unwrap()
    }

    /// Whether the server considers `token` active (RFC 7662, as the demo service).
    async fn active(&self, token: &str) -> bool {
        let answer: Value = reqwest::Client::new()
            .post(self.endpoint("introspection_endpoint"))
            .basic_auth("demo-service", Some(&self.service_secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["active"] == true {
            assert_eq!(answer["client_id"], CLIENT, "{answer}");
            assert_eq!(answer["iss"], self.issuer.as_str(), "{answer}");
            assert!(
                answer["sub"].as_str().is_some_and(|sub| sub != CLIENT),
                "a user's token: {answer}"
            );
        }
        answer["active"] == true
    }

    /// A refresh_token grant as the CLI's client: the status and the answer.
    async fn refresh(&self, refresh_token: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(self.endpoint("token_endpoint"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLIENT),
            ])
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }
}

struct Login {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
    /// The URL the browser was sent to, with the authorization code.
    callback: String,
}

/// What a browser and its user do with the authorization URL: load the login page (which
/// sets the CSRF-binding cookie), submit the form with every hidden field, and follow the
/// redirect to the loopback redirect URI. Returns that URL.
async fn browser_sign_in(url: &str, password: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookies = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    assert!(!cookies.is_empty(), "the login page sets a cookie");
    let html = page.text().await.unwrap();
    let mut form = hidden_inputs(&html);
    assert!(form.iter().any(|(name, _)| name == "csrf_token"), "{html}");
    form.push(("username".into(), "demo".into()));
    form.push(("password".into(), password.into()));
    let action = attribute(html.split("<form ").nth(1).unwrap(), "action");
    let target = url::Url::parse(url).unwrap().join(&action).unwrap();
    let posted = browser
        .post(target)
        .header(COOKIE, cookies)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(posted.status().is_redirection(), "{}", posted.status());
    let location = posted.headers()[LOCATION].to_str().unwrap().to_owned();
    let redirect_uri = url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    assert!(
        redirect_uri.starts_with("http://127.0.0.1:") && redirect_uri.ends_with("/callback"),
        "{redirect_uri}"
    );
    assert!(
        location.starts_with(&format!("{redirect_uri}?")) && location.contains("code="),
        "{location}"
    );
    let landed = browser.get(&location).send().await.unwrap();
    assert_eq!(landed.status(), 200);
    assert!(landed.text().await.unwrap().contains("Signed in"));
    location
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

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn login_end_to_end_with_a_scripted_browser_saves_private_credentials() {
    let setup = Setup::start().await;
    let login = setup.login().await;
    assert!(login.status.success(), "{}", login.stderr);
    assert!(login.stdout.is_empty(), "{:?}", login.stdout);
    assert!(
        login
            .stderr
            .contains(&format!("Signed in to {}", setup.issuer))
            && login
                .stderr
                .contains(&setup.config_dir().display().to_string()),
        "{}",
        login.stderr
    );

    #[cfg(unix)]
    {
        assert_eq!(mode(&setup.config_dir()), 0o700);
        assert_eq!(mode(&setup.tokens_path()), 0o600);
        assert_eq!(mode(&setup.session_path()), 0o600);
    }
    let mut files: Vec<String> = std::fs::read_dir(setup.config_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != ".lock")
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["session.json", "tokens.json"],
        "no temporary file left"
    );

    let tokens = setup.stored_tokens();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(tokens["scope"], "read");
    let session: Value =
        serde_json::from_slice(&std::fs::read(setup.session_path()).unwrap()).unwrap();
    assert_eq!(session["issuer"], setup.issuer.as_str());
    assert_eq!(session["client_id"], CLIENT);
    assert_eq!(session["token_endpoint"], setup.endpoint("token_endpoint"));
    assert_eq!(
        session["revocation_endpoint"],
        setup.endpoint("revocation_endpoint")
    );

    // Nothing secret in plain sight besides the tokens in tokens.json: not the password,
    // not the authorization code, and no token on the terminal or in session.json.
    let code = url::Url::parse(&login.callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let session_text = std::fs::read_to_string(setup.session_path()).unwrap();
    let tokens_text = std::fs::read_to_string(setup.tokens_path()).unwrap();
    for secret in [setup.password.as_str(), code.as_str(), access, refresh] {
        assert!(!login.stderr.contains(secret), "{}", login.stderr);
        assert!(!session_text.contains(secret), "{session_text}");
    }
    for secret in [setup.password.as_str(), code.as_str()] {
        assert!(!tokens_text.contains(secret));
    }
    assert!(setup.active(access).await, "the saved token is accepted");
}

#[tokio::test]
async fn token_prints_an_accepted_token_and_reuses_it_while_fresh() {
    let setup = Setup::start().await;
    setup.signed_in().await;
    let stored = setup.stored_tokens();

    let first = setup.token(&[]);
    assert_eq!(
        first, stored["access_token"],
        "a fresh token is not renewed"
    );
    assert!(setup.active(&first).await);
    let second = setup.token(&[]);
    assert_eq!(second, first);
    assert_eq!(setup.stored_tokens(), stored, "nothing was renewed");
}

#[tokio::test]
async fn token_renews_across_an_expiry() {
    let setup = Setup::start().await;
    setup.signed_in().await;
    let first = setup.token(&[]);
    let first_refresh = setup.stored_tokens()["refresh_token"].clone();

    // Asking for more time than a token has left renews it: the demo's tokens live 15
    // minutes, so an hour means "renew now".
    let second = setup.token(&["--min-valid", "1h"]);
    assert_ne!(second, first, "renewed");
    assert!(setup.active(&second).await);
    let stored = setup.stored_tokens();
    assert_eq!(stored["access_token"], second.as_str());
    assert_ne!(
        stored["refresh_token"], first_refresh,
        "the rotated refresh token replaced the old one"
    );
    assert_eq!(setup.token(&[]), second, "fresh again: kept");

    // An expired token, by the local clock that `expires_in` was measured with: set the
    // receipt and expiry of the stored tokens back by the token's lifetime (the server
    // still knows it as valid; only the client's view matters here).
    let mut expired = stored.clone();
    let lifetime = stored["expires_at"].as_u64().unwrap() - stored["received_at"].as_u64().unwrap();
    let past = unix_now() - 1;
    expired["expires_at"] = past.into();
    expired["received_at"] = (past - lifetime).into();
    std::fs::write(setup.tokens_path(), expired.to_string()).unwrap();
    let third = setup.token(&[]);
    assert_ne!(third, second, "an expired token is renewed");
    assert!(setup.active(&third).await);
    let renewed = setup.stored_tokens();
    assert_ne!(renewed["refresh_token"], stored["refresh_token"]);
    assert!(renewed["expires_at"].as_u64().unwrap() > unix_now());
    assert_eq!(setup.token(&[]), third);
}

#[tokio::test]
async fn logout_revokes_the_session_and_deletes_the_credentials() {
    let setup = Setup::start().await;
    setup.signed_in().await;
    let access = setup.token(&[]);
    let refresh = setup.stored_tokens()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = setup.run(&["logout"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Signed out"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!setup.tokens_path().exists() && !setup.session_path().exists());

    let (status, answer) = setup.refresh(&refresh).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        !setup.active(&access).await,
        "revoking the family revokes its access tokens too"
    );

    let out = setup.run(&["token"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("run `tessera login"));

    let again = setup.run(&["logout"]);
    assert!(again.status.success(), "signing out twice is harmless");
}

#[test]
fn token_without_a_session_exits_2_and_prints_nothing() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("token")
        .env("TESSERA_CONFIG_DIR", home.path().join("never-created"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not signed in; run `tessera login --issuer"),
        "{stderr}"
    );
    assert!(!home.path().join("never-created").exists());
}

#[tokio::test]
async fn token_after_the_session_was_revoked_at_the_server_exits_2() {
    let setup = Setup::start().await;
    setup.signed_in().await;
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["user", "revoke-tokens", "demo", "--data-dir"])
        .arg(setup.data.path())
        .env_remove("TESSERA_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success());

    // The access token has 15 minutes left; renewal is what finds out.
    let out = setup.run(&["token", "--min-valid", "1h"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            "the session has ended; run `tessera login --issuer {} --client-id {CLIENT}`",
            setup.issuer
        )),
        "{stderr}"
    );
    assert!(
        !setup.tokens_path().exists(),
        "the refused refresh token is deleted"
    );
    let out = setup.run(&["token"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn logout_without_the_server_deletes_credentials_and_exits_1() {
    let mut setup = Setup::start().await;
    setup.signed_in().await;
    drop(setup.demo.take());

    let out = setup.run(&["logout"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not be confirmed"), "{stderr}");
    assert!(!setup.tokens_path().exists() && !setup.session_path().exists());
}

#[tokio::test]
async fn concurrent_token_commands_share_the_session_without_a_replay() {
    let setup = Setup::start().await;
    setup.signed_in().await;
    // Each renews (an hour is more than a token lives): without coordination two of them
    // would present the same single-use refresh token, and the server would end the session.
    let children: Vec<Child> = (0..6)
        .map(|_| {
            setup
                .command(&["token", "--min-valid", "1h"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut tokens = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokens.push(String::from_utf8(out.stdout).unwrap());
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 6, "each renewed in turn");
    let refresh = setup.stored_tokens()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, answer) = setup.refresh(&refresh).await;
    assert_eq!(status, 200, "the session is alive: {answer}");
}
