//! The settings model through the binary: precedence of flag, environment, file, profile
//! and default; every bound's message; file errors with their line; and live reload of a
//! running server on SIGHUP and on a file change.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Every `TESSERA_*` variable of the test environment is removed, so only what a case sets
/// counts.
fn tessera(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA_") {
            command.env_remove(key);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// `tessera config show --format json`, as a map from key to (value, source kind, source).
fn show(args: &[&str], env: &[(&str, &str)]) -> Vec<Value> {
    let mut all = vec!["config", "show", "--format", "json"];
    all.extend_from_slice(args);
    let out = tessera(&all, env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

fn setting<'a>(settings: &'a [Value], key: &str) -> &'a Value {
    settings
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no setting {key}"))
}

#[test]
fn precedence_is_flag_then_environment_then_file_then_profile_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(&file, "# lifetimes\naccess_token_ttl = \"20m\"\n").unwrap();
    let file = file.to_str().unwrap();
    let env = ("TESSERA_ACCESS_TOKEN_TTL", "25m");
    let profile = ("TESSERA_PROFILE", "internal");
    let config = ("TESSERA_CONFIG", file);
    let flag = ["--", "--access-token-ttl", "30m"];
    // (case, flags, environment, expected value, expected source)
    type Case<'a> = (
        &'a str,
        &'a [&'a str],
        Vec<(&'a str, &'a str)>,
        &'a str,
        Value,
    );
    let cases: [Case; 5] = [
        (
            "default",
            &[],
            vec![],
            "15m",
            serde_json::json!({ "kind": "default" }),
        ),
        (
            "profile over default",
            &[],
            vec![profile],
            "60m",
            serde_json::json!({ "kind": "profile", "profile": "internal" }),
        ),
        (
            "file over profile",
            &[],
            vec![profile, config],
            "20m",
            serde_json::json!({ "kind": "file", "path": file, "line": 2 }),
        ),
        (
            "environment over file",
            &[],
            vec![profile, config, env],
            "25m",
            serde_json::json!({ "kind": "env", "var": "TESSERA_ACCESS_TOKEN_TTL" }),
        ),
        (
            "flag over environment",
            &flag,
            vec![profile, config, env],
            "30m",
            serde_json::json!({ "kind": "flag", "flag": "--access-token-ttl" }),
        ),
    ];
    for (name, args, env, value, source) in cases {
        let settings = show(args, &env);
        let access = setting(&settings, "access_token_ttl");
        assert_eq!(access["value"], value, "{name}");
        assert_eq!(access["source"], source, "{name}");
    }
}

#[test]
fn a_profile_presets_lifetimes_and_explicit_settings_override_it() {
    let settings = show(
        &[],
        &[
            ("TESSERA_PROFILE", "high"),
            ("TESSERA_REFRESH_TOKEN_TTL", "3d"),
        ],
    );
    let value = |key| {
        setting(&settings, key)["value"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(value("refresh_token_ttl"), "3d", "the environment wins");
    assert_eq!(value("refresh_token_max_lifetime"), "30d", "the preset");
    assert_eq!(value("session_ttl"), "1h", "the preset");
    assert_eq!(value("code_ttl"), "60s", "not in the profile: the default");
}

#[test]
fn a_command_table_in_the_file_wins_over_the_top_level_and_secrets_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.toml");
    std::fs::write(
        &file,
        "code_ttl = \"30s\"\nmaster_key = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"\n\
         database_url = \"postgres://tessera:hunter2@db/tessera\"\n\n[serve]\ncode_ttl = \"45s\"\n",
    )
    .unwrap();
    let settings = show(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(setting(&settings, "code_ttl")["value"], "45s");
    assert_eq!(setting(&settings, "code_ttl")["source"]["line"], 6);
    assert_eq!(setting(&settings, "master_key")["value"], "***");
    let url = setting(&settings, "database_url")["value"]
        .as_str()
        .unwrap();
    assert!(
        !url.contains("hunter2") && url.contains("db/tessera"),
        "{url}"
    );
}

/// Each bound: `config check` fails, naming the setting, its value, its source and the range.
#[test]
fn every_bound_has_a_message_naming_setting_value_source_and_range() {
    let cases = [
        (
            "TESSERA_ACCESS_TOKEN_TTL",
            "30s",
            "access_token_ttl = 30s",
            "1m to 24h",
        ),
        (
            "TESSERA_ACCESS_TOKEN_TTL",
            "2d",
            "access_token_ttl = 2d",
            "1m to 24h",
        ),
        (
            "TESSERA_REFRESH_TOKEN_TTL",
            "30m",
            "refresh_token_ttl = 30m",
            "1h to 365d",
        ),
        (
            "TESSERA_REFRESH_TOKEN_TTL",
            "400d",
            "refresh_token_ttl = 400d",
            "1h to 365d",
        ),
        ("TESSERA_CODE_TTL", "1h", "code_ttl = 1h", "10s to 10m"),
        (
            "TESSERA_SESSION_TTL",
            "40d",
            "session_ttl = 40d",
            "1m to 30d",
        ),
        (
            "TESSERA_REFRESH_GRACE",
            "10m",
            "refresh_grace = 10m",
            "0s to 5m",
        ),
        (
            "TESSERA_VALIDATION_CACHE_TTL",
            "2h",
            "validation_cache_ttl = 2h",
            "0s to 1h",
        ),
        (
            "TESSERA_CLIENT_CACHE_TTL",
            "2m",
            "client_cache_ttl = 2m",
            "0s to 1m",
        ),
        (
            "TESSERA_JWKS_MAX_AGE",
            "2d",
            "jwks_max_age = 2d",
            "0s to 24h",
        ),
        (
            "TESSERA_REVOCATION_POLL_INTERVAL",
            "5s",
            "revocation_poll_interval = 5s",
            "10ms to 1s",
        ),
        (
            "TESSERA_REFRESH_TOKEN_MAX_LIFETIME",
            "1d",
            "refresh_token_max_lifetime = 1d",
            "at least refresh_token_ttl (14d)",
        ),
        (
            "TESSERA_ISSUER",
            "http://auth.example.com",
            "issuer = http://auth.example.com",
            "must be https unless it is a loopback address",
        ),
        (
            "TESSERA_ISSUER",
            "https://a.example/?x=1",
            "issuer = https://a.example/?x=1",
            "query",
        ),
        (
            "TESSERA_LOG",
            "info,[",
            "log_level = info,[",
            "not a log filter",
        ),
        (
            "TESSERA_LOGIN_MAX_FAILURES",
            "0",
            "login_max_failures = 0",
            "1 to 100",
        ),
        (
            "TESSERA_LOGIN_IP_MAX_FAILURES",
            "20000",
            "login_ip_max_failures = 20000",
            "1 to 10000",
        ),
        (
            "TESSERA_LOGIN_LOCKOUT",
            "30s",
            "login_lockout = 30s",
            "1m to 24h",
        ),
        (
            "TESSERA_LOGIN_BACKOFF",
            "5m",
            "login_backoff = 5m",
            "0s to 1m",
        ),
    ];
    for (var, value, described, allowed) in cases {
        let out = tessera(&["config", "check"], &[(var, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} accepted");
        assert!(
            stderr.contains(described)
                && stderr.contains(&format!("(from environment {var})"))
                && stderr.contains(allowed),
            "{var}={value}: {stderr}"
        );
    }
    let refresh_below_access = tessera(
        &[
            "config",
            "check",
            "--",
            "--access-token-ttl",
            "2h",
            "--refresh-token-ttl",
            "1h",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&refresh_below_access.stderr);
    assert!(
        stderr.contains("refresh_token_ttl = 1h (from flag --refresh-token-ttl)")
            && stderr.contains("at least access_token_ttl (2h)"),
        "{stderr}"
    );
}

#[test]
fn a_valid_configuration_checks_out_with_warnings_outside_the_recommended_range() {
    let out = tessera(&["config", "check"], &[("TESSERA_ACCESS_TOKEN_TTL", "5m")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: access_token_ttl = 5m")
            && stderr.contains("recommended 15m to 1h"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_to_start_on_an_invalid_setting_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let listen = format!("127.0.0.1:{port}");
    let out = tessera(
        &[
            "serve",
            "--listen",
            &listen,
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[("TESSERA_CODE_TTL", "1h")],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("code_ttl = 1h (from environment TESSERA_CODE_TTL)")
    );
    assert!(
        !dir.path().join("tessera.db").exists(),
        "nothing was opened or created"
    );
}

#[test]
fn file_mistakes_are_reported_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "a misspelt key",
            "code_ttl = \"30s\"\nacess_token_ttl = \"20m\"\n",
            "line 2: unknown setting acess_token_ttl (did you mean access_token_ttl?)",
        ),
        (
            "a bad value",
            "\n\nrefresh_grace = \"soon\"\n",
            "refresh_grace (",
        ),
        (
            "a table that is no command",
            "[sevre]\ncode_ttl = \"1m\"\n",
            "line 1: [sevre] is not a command",
        ),
        (
            "a flag given a string",
            "[serve]\ndemo = \"yes\"\n",
            "demo (",
        ),
        ("not TOML", "code_ttl = \n", "line 1: not valid TOML"),
        (
            "an unknown profile",
            "profile = \"paranoid\"\n",
            "\"paranoid\" is not a profile",
        ),
    ];
    for (name, text, expected) in cases {
        let file = dir.path().join("t.toml");
        std::fs::write(&file, text).unwrap();
        let out = tessera(
            &["config", "check", "--config", file.to_str().unwrap()],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    // The bad value also names its file and line.
    std::fs::write(dir.path().join("t.toml"), "\n\nrefresh_grace = \"soon\"\n").unwrap();
    let path = dir.path().join("t.toml");
    let out = tessera(
        &["config", "check", "--config", path.to_str().unwrap()],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{} line 3", path.display())),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `tessera serve --demo` whose stderr (the log) can be waited on.
struct Server {
    child: Child,
    log: mpsc::Receiver<String>,
    base: String,
    id: String,
    secret: String,
}

impl Server {
    fn start(data: &Path, config: &Path, extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (key, _) in std::env::vars() {
            if key.starts_with("TESSERA_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .arg("--config")
            .arg(config)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let err_tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut server = Self {
            child,
            log,
            base: String::new(),
            id: String::new(),
            secret: String::new(),
        };
        let curl = server.wait_for("grant_type=client_credentials");
        let words: Vec<&str> = curl.split_whitespace().collect();
        let creds = words[words.iter().position(|w| *w == "-u").unwrap() + 1];
        let (id, secret) = creds.split_once(':').unwrap();
        server.id = id.to_owned();
        server.secret = secret.to_owned();
        let url = words.last().unwrap().to_string();
        server.base = url.replace("/api/v2/auth/token", "");
        server
    }

    /// The next output line containing `needle` (the bound only keeps a broken build from
    /// hanging the suite).
    fn wait_for(&self, needle: &str) -> String {
        loop {
            let line = self
                .log
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `exp - iat` of a fresh client-credentials token, requested on `connection`.
    fn token_lifetime(&self, connection: &mut Connection) -> i64 {
        let body = connection.post_token(&self.id, &self.secret);
        let token = body["access_token"].as_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(
            body["expires_in"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
        );
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One keep-alive HTTP/1.1 connection, reused for every request: if a reload dropped
/// connections, the next request on it would fail.
struct Connection {
    stream: TcpStream,
    host: String,
}

impl Connection {
    fn open(base: &str) -> Self {
        let host = base.trim_start_matches("http://").to_owned();
        let stream = TcpStream::connect(&host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Self { stream, host }
    }

    fn post_token(&mut self, id: &str, secret: &str) -> Value {
        let body = "grant_type=client_credentials";
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        write!(
            self.stream,
            "POST /api/v2/auth/token HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {basic}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        )
        .unwrap();
        // Read the head, then exactly Content-Length bytes: the connection stays open.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = self
                .stream
                .read(&mut byte)
                .expect("the connection is still up");
            assert_eq!(n, 1, "the server closed the connection");
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("a content length");
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

#[test]
fn sighup_applies_a_new_access_ttl_to_the_next_token_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "access_token_ttl = \"15m\"\n").unwrap();
    let server = Server::start(&dir.path().join("data"), &config, &[]);
    let mut connection = Connection::open(&server.base);
    assert_eq!(server.token_lifetime(&mut connection), 900);

    std::fs::write(
        &config,
        "access_token_ttl = \"20m\"\njanitor_interval = \"10m\"\n",
    )
    .unwrap();
    server.hangup();
    let restart = server.wait_for("needs a restart");
    assert!(restart.contains("janitor_interval: 5m -> 10m"), "{restart}");
    let reloaded = server.wait_for("configuration reloaded");
    assert!(
        reloaded.contains("access_token_ttl: 15m -> 20m"),
        "{reloaded}"
    );
    let audit = server.wait_for("config_reloaded");
    assert!(
        audit.contains("audit")
            && audit.contains("outcome=\"success\"")
            && audit.contains("reason=\"SIGHUP\"")
            && audit.contains("access_token_ttl: 15m -> 20m"),
        "{audit}"
    );
    assert_eq!(
        server.token_lifetime(&mut connection),
        1200,
        "the next token, on the same connection"
    );

    // An invalid file is rejected, reported with the same message, and changes nothing.
    std::fs::write(&config, "access_token_ttl = \"2d\"\n").unwrap();
    server.hangup();
    let rejected = server.wait_for("configuration rejected");
    assert!(
        rejected.contains("access_token_ttl = 2d")
            && rejected.contains("tessera.toml line 1")
            && rejected.contains("1m to 24h"),
        "{rejected}"
    );
    let audit = server.wait_for("config_reloaded");
    assert!(audit.contains("outcome=\"failure\""), "{audit}");
    assert_eq!(server.token_lifetime(&mut connection), 1200);
    let metrics = get_metrics(&server.base);
    assert!(
        metrics.contains("tessera_config_reloads_total{result=\"applied\"} 1")
            && metrics.contains("tessera_config_reloads_total{result=\"rejected\"} 1")
            && metrics.contains("tessera_config_last_reload_success 0"),
        "{metrics}"
    );
}

#[test]
fn watch_config_reloads_when_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "access_token_ttl = \"15m\"\n").unwrap();
    let server = Server::start(&dir.path().join("data"), &config, &["--watch-config"]);
    let mut connection = Connection::open(&server.base);
    assert_eq!(server.token_lifetime(&mut connection), 900);
    std::fs::write(&config, "access_token_ttl = \"30m\"\n").unwrap();
    let reloaded = server.wait_for("configuration reloaded");
    assert!(reloaded.contains("file changed"), "{reloaded}");
    assert_eq!(server.token_lifetime(&mut connection), 1800);
}

/// `GET /metrics` over a plain connection (the test needs no async runtime).
fn get_metrics(base: &str) -> String {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_guard_settings_are_checked_too() {
    let cases = [
        (
            vec!["--issuer", "http://auth.example.com", "--audience", "api"],
            "issuer = http://auth.example.com (from flag --issuer): must be https",
        ),
        (
            vec![
                "--issuer",
                "https://auth.example.com",
                "--audience",
                "api",
                "--cache-ttl",
                "2h",
            ],
            "cache_ttl = 2h (from flag --cache-ttl): must be 0s to 1h",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["config", "check", "--command", "guard", "--"];
        all.extend(args);
        let out = tessera(&all, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{stderr}"
        );
    }
    let ok = tessera(
        &[
            "config",
            "check",
            "--command",
            "guard",
            "--",
            "--issuer",
            "http://127.0.0.1:8080",
            "--audience",
            "api",
        ],
        &[],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn throttling_and_rate_limit_settings_parse_check_and_show() {
    let settings = show(
        &[
            "--",
            "--token-rate-limit",
            "100/s",
            "--trusted-proxies",
            "10.0.0.0/8,127.0.0.1",
        ],
        &[("TESSERA_LOGIN_MAX_FAILURES", "7")],
    );
    assert_eq!(setting(&settings, "token_rate_limit")["value"], "100/s");
    assert_eq!(
        setting(&settings, "trusted_proxies")["value"],
        "10.0.0.0/8,127.0.0.1"
    );
    assert_eq!(setting(&settings, "login_max_failures")["value"], "7");
    assert_eq!(setting(&settings, "login_lockout")["value"], "15m");
    for (var, value, expected) in [
        ("TESSERA_TOKEN_RATE_LIMIT", "5/d", "is not a rate"),
        ("TESSERA_TOKEN_RATE_LIMIT", "0/s", "1 to 1000000"),
        (
            "TESSERA_TRUSTED_PROXIES",
            "10.0.0.0/33",
            "not an IP address or network",
        ),
    ] {
        let out = tessera(&["config", "check"], &[(var, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(expected),
            "{var}={value}: {stderr}"
        );
    }
    // An address limit below the account limit is allowed, with a warning.
    let out = tessera(
        &["config", "check", "--", "--login-ip-max-failures", "3"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("a shared address locks before any account"),
        "{stderr}"
    );
}

/// A client-credentials request on its own connection: the status line and the body.
fn token_request(base: &str, id: &str, secret: &str) -> (String, String) {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).unwrap();
    let body = "grant_type=client_credentials";
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    write!(
        stream,
        "POST /api/v2/auth/token HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

#[test]
fn the_token_rate_limit_applies_in_the_binary_and_changes_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "token_rate_limit = \"1/h\"\n").unwrap();
    let server = Server::start(&dir.path().join("data"), &config, &[]);
    let (head, _) = token_request(&server.base, &server.id, &server.secret);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, body) = token_request(&server.base, &server.id, &server.secret);
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 3600"),
        "{head}"
    );
    assert!(body.contains("\"error\":\"slow_down\""), "{body}");
    let metrics = get_metrics(&server.base);
    assert!(
        metrics.contains("tessera_token_rate_limited_total 1"),
        "{metrics}"
    );

    std::fs::write(&config, "token_rate_limit = \"off\"\n").unwrap();
    server.hangup();
    let reloaded = server.wait_for("configuration reloaded");
    assert!(
        reloaded.contains("token_rate_limit: 1/h -> off"),
        "{reloaded}"
    );
    let (head, _) = token_request(&server.base, &server.id, &server.secret);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
