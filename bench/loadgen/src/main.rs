//! A closed-loop load generator for the token endpoint.
//!
//! `client-credentials`: each worker repeatedly asks for a client-credentials token.
//! `refresh`: each worker signs a user in once (login form + code exchange, not timed), then
//! rotates its own refresh token chain as fast as the server answers, always presenting the
//! token it received last, as a well-behaved client would.
//! `introspect`: each worker introspects tokens read from `--tokens` (a file, one per line):
//! with `--distinct`, every request takes the next unused token (all misses of the cache);
//! without, each worker keeps asking about one token (all hits after the first).
//! `verify`: `GET /verify` with `Authorization: Bearer <token>` against a forward-auth
//! service (`tessera guard`, `--base` is the guard), tokens from `--tokens` picked as in
//! `introspect` (`--distinct`: each once, all misses of its cache); only 200 counts as success.
//! `healthz`: `GET /healthz`, the trivial endpoint to compare against (of the server or of a
//! guard, whichever `--base` names).
//! `mint`: not a measurement; writes `--count` client-credentials tokens to `--out`.
//!
//! Prints one JSON line with the throughput and latency percentiles of the timed phase.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    ClientCredentials,
    Refresh,
    Introspect,
    Verify,
    Healthz,
    Mint,
}

/// Load generator for Tessera's token endpoint.
#[derive(Debug, Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Issuer base URL.
    #[arg(long)]
    base: String,
    /// Concurrent workers (each one request at a time).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Length of the timed phase.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Client id.
    #[arg(long)]
    client_id: String,
    /// Client secret (client-credentials mode).
    #[arg(long)]
    client_secret: Option<String>,
    /// Redirect URI registered for the public client (refresh mode).
    #[arg(long, default_value = "http://127.0.0.1:8765/callback")]
    redirect_uri: String,
    /// User to sign in (refresh mode).
    #[arg(long, default_value = "bench")]
    username: String,
    /// Password (refresh mode).
    #[arg(long)]
    password: Option<String>,
    /// File of tokens, one per line (introspect and verify modes).
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    /// Use every token once (introspect and verify modes).
    #[arg(long)]
    distinct: bool,
    /// How many tokens to mint (mint mode).
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Where to write minted tokens (mint mode).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

/// State shared by the workers of one run.
struct Shared {
    tokens: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    /// Whether a refusal was already reported on stderr (verify mode reports the first).
    reported: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// The token for the next request of worker `index`: the next unused one with
    /// `--distinct`, else the worker's own.
    fn token(&self, distinct: bool, index: usize) -> Result<&str> {
        let i = if distinct {
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        } else {
            index
        };
        let Some(token) = self.tokens.get(i % self.tokens.len().max(1)) else {
            bail!("no tokens");
        };
        if distinct && i >= self.tokens.len() {
            bail!("ran out of distinct tokens after {i}; mint more");
        }
        Ok(token)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = std::sync::Arc::new(Args::parse());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    if let Mode::Mint = args.mode {
        return mint(&args, &http).await;
    }
    let tokens = match (&args.mode, &args.tokens) {
        (Mode::Introspect | Mode::Verify, Some(path)) => std::fs::read_to_string(path)?
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        (Mode::Introspect | Mode::Verify, None) => bail!("--tokens is required"),
        _ => Vec::new(),
    };
    let shared = std::sync::Arc::new(Shared {
        tokens,
        next: std::sync::atomic::AtomicUsize::new(0),
        reported: std::sync::atomic::AtomicBool::new(false),
    });
    let mut workers = Vec::new();
    for index in 0..args.concurrency {
        let (args, http, shared) = (args.clone(), http.clone(), shared.clone());
        workers.push(tokio::spawn(async move {
            worker(&args, &http, &shared, index).await
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0u64;
    for w in workers {
        let (l, e) = w.await??;
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d: &Duration| d.as_secs_f64() * 1000.0)
    };
    let secs = args.duration.as_secs_f64();
    println!(
        "{}",
        json!({
            "mode": format!("{:?}", args.mode),
            "concurrency": args.concurrency,
            "seconds": secs,
            "ok": latencies.len(),
            "errors": errors,
            "per_second": (latencies.len() as f64 / secs).round(),
            "p50_ms": (pct(0.50) * 100.0).round() / 100.0,
            "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
        })
    );
    Ok(())
}

/// Runs one worker: setup, then requests until the duration is over.
async fn worker(
    args: &Args,
    http: &reqwest::Client,
    shared: &Shared,
    index: usize,
) -> Result<(Vec<Duration>, u64)> {
    let token_url = format!("{}/api/v2/auth/token", args.base);
    let introspect_url = format!("{}/api/v2/auth/introspect", args.base);
    let healthz_url = format!("{}/healthz", args.base);
    let verify_url = format!("{}/verify", args.base);
    let mut refresh = match args.mode {
        Mode::Refresh => Some(sign_in(args, http).await?),
        _ => None,
    };
    let mut latencies = Vec::new();
    let mut errors = 0;
    let deadline = Instant::now() + args.duration;
    while Instant::now() < deadline {
        let started = Instant::now();
        let request = match (&args.mode, &refresh) {
            (Mode::ClientCredentials, _) => http
                .post(&token_url)
                .basic_auth(&args.client_id, args.client_secret.as_deref())
                .form(&[("grant_type", "client_credentials")]),
            (Mode::Refresh, Some(rt)) => http.post(&token_url).form(&[
                ("grant_type", "refresh_token"),
                ("client_id", args.client_id.as_str()),
                ("refresh_token", rt.as_str()),
            ]),
            (Mode::Refresh, None) => bail!("no refresh token"),
            (Mode::Introspect, _) => {
                let token = shared.token(args.distinct, index)?;
                http.post(&introspect_url)
                    .basic_auth(&args.client_id, args.client_secret.as_deref())
                    .form(&[("token", token)])
            }
            (Mode::Verify, _) => {
                let token = shared.token(args.distinct, index)?;
                http.get(&verify_url).bearer_auth(token)
            }
            (Mode::Healthz, _) => http.get(&healthz_url),
            (Mode::Mint, _) => bail!("mint is not a load"),
        };
        let response = request.send().await;
        match response {
            Ok(r) if matches!(args.mode, Mode::Verify) && r.status() != reqwest::StatusCode::OK => {
                errors += 1;
                if !shared
                    .reported
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    let challenge = r
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    eprintln!("verify refused with {}: {challenge}", r.status());
                }
            }
            Ok(r) if r.status().is_success() => {
                match args.mode {
                    Mode::Refresh => {
                        let body: Value = r.json().await?;
                        let next = body["refresh_token"].as_str().context("no refresh_token")?;
                        refresh = Some(next.to_owned());
                    }
                    Mode::Introspect => {
                        let body: Value = r.json().await?;
                        if body["active"] != true {
                            bail!("a token was not active: {body}");
                        }
                    }
                    _ => {
                        r.bytes().await?;
                    }
                }
                latencies.push(started.elapsed());
            }
            Ok(r) => {
                errors += 1;
                if let Mode::Refresh = args.mode {
                    bail!("refresh failed with {}: {}", r.status(), r.text().await?);
                }
            }
            Err(_) => errors += 1,
        }
    }
    Ok((latencies, errors))
}

/// Writes `--count` fresh client-credentials tokens to `--out`, one per line.
async fn mint(args: &Args, http: &reqwest::Client) -> Result<()> {
    let out = args.out.as_ref().context("--out is required")?;
    let token_url = format!("{}/api/v2/auth/token", args.base);
    let mut tasks = tokio::task::JoinSet::new();
    let per_worker = args.count.div_ceil(args.concurrency.max(1));
    for _ in 0..args.concurrency.max(1) {
        let (http, url) = (http.clone(), token_url.clone());
        let (id, secret) = (args.client_id.clone(), args.client_secret.clone());
        tasks.spawn(async move {
            let mut tokens = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let body: Value = http
                    .post(&url)
                    .basic_auth(&id, secret.as_deref())
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await?
                    .json()
                    .await?;
                let token = body["access_token"].as_str().context("no access_token")?;
                tokens.push(token.to_owned());
            }
            anyhow::Ok(tokens)
        });
    }
    let mut all = Vec::with_capacity(args.count);
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    all.truncate(args.count);
    std::fs::write(out, all.join("\n") + "\n")?;
    Ok(())
}

/// Signs the user in through the login form and redeems the code: a refresh token.
async fn sign_in(args: &Args, http: &reqwest::Client) -> Result<String> {
    let password = args.password.as_deref().context("--password is required")?;
    let verifier = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{:?}", Instant::now())));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut url = url::Url::parse(&format!("{}/api/v2/auth/authorize", args.base))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &args.client_id)
        .append_pair("redirect_uri", &args.redirect_uri)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let page = http.get(url.as_str()).send().await?;
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no CSRF cookie")?
        .to_owned();
    let html = page.text().await?;
    let mut form: Vec<(String, String)> = html
        .split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|piece| {
            let name = piece.split("name=\"").nth(1)?.split('"').next()?;
            let value = piece.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.replace("&amp;", "&")))
        })
        .collect();
    form.push(("username".into(), args.username.clone()));
    form.push(("password".into(), password.to_owned()));
    let posted = http
        .post(format!("{}/api/v2/auth/authorize", args.base))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await?;
    let location = posted
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("sign-in did not redirect")?;
    let code = url::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context("no code in the redirect")?;
    let token: Value = http
        .post(format!("{}/api/v2/auth/token", args.base))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", args.client_id.as_str()),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", args.redirect_uri.as_str()),
        ])
        .send()
        .await?
        .json()
        .await?;
    token["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .context("the code exchange returned no refresh token")
}
