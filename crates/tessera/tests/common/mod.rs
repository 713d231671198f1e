//! Helpers shared by the binary's integration tests: the demo server and a guard process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A `serve --demo` process whose stdout is read line by line.
pub struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Demo {
    pub fn start(data: &Path) -> Self {
        Self::start_with_env(data, &[])
    }

    pub fn start_with_env(data: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .envs(env.iter().copied())
            .env_remove("TESSERA_DATABASE_URL")
            .env_remove("TESSERA_ISSUER")
            .env_remove("TESSERA_MASTER_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The first printed line containing `needle` (the demo prints within seconds; the
    /// bound only keeps a broken build from hanging the suite).
    pub fn line_with(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
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

/// Parses the printed `curl -s -u ID:SECRET -d grant_type=client_credentials URL`.
pub fn printed_curl(demo: &Demo) -> (String, String, String) {
    let line = demo.line_with("grant_type=client_credentials");
    let words: Vec<&str> = line.split_whitespace().collect();
    let creds = words[words.iter().position(|w| *w == "-u").unwrap() + 1];
    let (id, secret) = creds.split_once(':').unwrap();
    (
        id.to_owned(),
        secret.to_owned(),
        words.last().unwrap().to_string(),
    )
}

pub async fn token(id: &str, secret: &str, url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// A `tessera guard` process; killed on drop.
pub struct GuardProcess {
    pub child: Child,
    pub base: String,
}

impl GuardProcess {
    pub fn start(args: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("guard")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut guard = Self {
            child,
            base: String::new(),
        };
        let stderr = guard.child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        while guard.base.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the guard started");
            if let Some(listen) = line.split("listen=").nth(1) {
                guard.base = format!("http://{}", listen.split_whitespace().next().unwrap());
            }
        }
        guard
    }
}

impl Drop for GuardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GuardProcess {
    /// The guard's port.
    pub fn port(&self) -> &str {
        self.base.rsplit(':').next().unwrap()
    }
}
