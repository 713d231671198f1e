//! A closed-loop load generator for Tessera (and, through the path options, for other
//! OAuth 2.0 servers such as the node-oidc-provider peer in bench/peers/).
//!
//! `client-credentials`: each worker repeatedly asks for a client-credentials token
//! (`--token-path`, optional `--resource` and `--scope`).
//! `code-exchange`: the user signs in once through the login form (not timed; one session
//! shared by all workers); then each iteration is `GET /authorize` with that session (a redirect
//! to the redirect URI with a fresh code) followed by the code exchange at the token endpoint
//! (PKCE S256, a fresh verifier each time). One iteration counts once; `p50_ms`/`p99_ms` are
//! the exchange's, `authorize_p50_ms`/`authorize_p99_ms` the authorize request's.
//! `refresh`: the user signs in once (not timed); each worker then gets its own code through
//! that session and redeems it (not timed), and rotates its own refresh token chain as fast
//! as the server answers, always presenting the token it received last, as a well-behaved
//! client would.
//! `introspect`: each worker introspects tokens read from `--tokens` (a file, one per line) at
//! `--introspect-path`: with `--distinct`, every request takes the next unused token (all
//! misses of the cache); without, each worker keeps asking about one token (all hits after
//! the first). A response that is not `{"active": true}` is an error.
//! `verify`: `GET /verify` with `Authorization: Bearer <token>` against a forward-auth
//! service (`tessera guard`, `--base` is the guard), tokens from `--tokens` picked as in
//! `introspect` (`--distinct`: each once, all misses of its cache); only 200 counts as success.
//! `healthz`: `GET /healthz`, the trivial endpoint to compare against (of the server or of a
//! guard, whichever `--base` names).
//! `get`: `GET --path` (e.g. `/.well-known/jwks.json`).
//! `revoke`: each iteration gets a client-credentials token, revokes it (RFC 7009) and
//! introspects it; anything but `{"active": false}` after the revocation is an error
//! (`revoked active`).
//! `mint`: not a measurement; writes `--count` client-credentials tokens to `--out`.
//!
//! For fault injection (tests/faults/): in refresh mode, `--save-tokens DIR` makes each worker
//! append every refresh token it receives to `DIR/worker-N.tokens` (one per line, the last
//! line is the token it would present next) and end its timed phase at the first transport
//! failure (the server is gone; the script restarts it and presents the saved token); with
//! `--retry-status 503` such an answer keeps the chain (the next request presents the same
//! token) instead of ending the run. `--request-timeout` bounds every request (a `timeout`
//! error). A 5xx answer whose body is not an OAuth JSON error counts as `STATUS non-json`.
//! The output also gives `max_ms` (the slowest request, failed ones included) and the Unix
//! times of the first and last error.
//!
//! All workers finish their setup before any starts the timed phase. Any response other than
//! the expected one (a 2xx, or a redirect with a code for authorize) counts as an error, by
//! kind in `error_kinds`; transport failures too. `--distinct` runs fail when the tokens run
//! out, unless `--stop-when-exhausted`, which ends the timed phase there instead
//! (`"exhausted": true`). Throughput is divided by the measured length of the timed phase.
//!
//! Prints one JSON line with the throughput and latency percentiles of the timed phase.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    ClientCredentials,
    CodeExchange,
    Refresh,
    Introspect,
    Verify,
    Healthz,
    Get,
    Revoke,
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
    #[arg(long, default_value = "bench-svc")]
    client_id: String,
    /// Client secret (client-credentials, introspect and mint modes).
    #[arg(long)]
    client_secret: Option<String>,
    /// Redirect URI registered for the public client (code-exchange and refresh modes).
    #[arg(long, default_value = "http://127.0.0.1:8765/callback")]
    redirect_uri: String,
    /// User to sign in (code-exchange and refresh modes).
    #[arg(long, default_value = "bench")]
    username: String,
    /// Password (code-exchange and refresh modes).
    #[arg(long)]
    password: Option<String>,
    /// File of tokens, one per line (introspect and verify modes).
    #[arg(long)]
    tokens: Option<std::path::PathBuf>,
    /// Use every token once (introspect and verify modes).
    #[arg(long)]
    distinct: bool,
    /// With --distinct: end the timed phase when the tokens run out instead of failing.
    #[arg(long)]
    stop_when_exhausted: bool,
    /// How many tokens to mint (mint mode).
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// Where to write minted tokens (mint mode).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Path of the token endpoint.
    #[arg(long, default_value = "/api/v2/auth/token")]
    token_path: String,
    /// Path of the authorization endpoint.
    #[arg(long, default_value = "/api/v2/auth/authorize")]
    authorize_path: String,
    /// Path of the introspection endpoint.
    #[arg(long, default_value = "/api/v2/auth/introspect")]
    introspect_path: String,
    /// Path to GET (get mode).
    #[arg(long)]
    path: Option<String>,
    /// RFC 8707 `resource` sent with client-credentials requests (client-credentials, mint).
    #[arg(long)]
    resource: Option<String>,
    /// `scope` sent with client-credentials requests (client-credentials, mint).
    #[arg(long)]
    scope: Option<String>,
    /// Refresh mode: append every refresh token received to DIR/worker-N.tokens, and end a
    /// worker's run at its first transport failure.
    #[arg(long)]
    save_tokens: Option<std::path::PathBuf>,
    /// Refresh mode: statuses after which the chain goes on with the same token (e.g. 503).
    #[arg(long, value_delimiter = ',')]
    retry_status: Vec<u16>,
    /// Bound on each request (default: none).
    #[arg(long, value_parser = humantime::parse_duration)]
    request_timeout: Option<Duration>,
}

impl Args {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.trim_end_matches('/'))
    }

    /// The form of a client-credentials request.
    fn client_credentials_form(&self) -> Vec<(&'static str, &str)> {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(r) = &self.resource {
            form.push(("resource", r));
        }
        if let Some(s) = &self.scope {
            form.push(("scope", s));
        }
        form
    }
}

/// State shared by the workers of one run.
struct Shared {
    tokens: Vec<String>,
    next: AtomicUsize,
    /// Whether a refusal was already reported on stderr (the first one is).
    reported: AtomicBool,
    /// Whether `--distinct` tokens ran out (with `--stop-when-exhausted`).
    exhausted: AtomicBool,
    /// The `Cookie` header of the signed-in session (code-exchange and refresh modes).
    session: Option<String>,
    /// Released when every worker has finished its setup.
    start: tokio::sync::Barrier,
}

impl Shared {
    /// The token for the next request of worker `index`: the next unused one with
    /// `--distinct`, else the worker's own. `None`: the distinct tokens ran out and the
    /// run stops there.
    fn token(&self, args: &Args, index: usize) -> Result<Option<&str>> {
        let i = if args.distinct {
            self.next.fetch_add(1, Ordering::Relaxed)
        } else {
            index
        };
        let Some(token) = self.tokens.get(i % self.tokens.len().max(1)) else {
            bail!("no tokens");
        };
        if args.distinct && i >= self.tokens.len() {
            if args.stop_when_exhausted {
                self.exhausted.store(true, Ordering::Relaxed);
                return Ok(None);
            }
            bail!("ran out of distinct tokens after {i}; mint more");
        }
        Ok(Some(token))
    }

    /// Reports the first refusal of the run on stderr.
    fn report(&self, what: &str) {
        if !self.reported.swap(true, Ordering::Relaxed) {
            eprintln!("loadgen: first error: {what}");
        }
    }
}

/// What one worker measured.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    /// Latencies of the authorize step (code-exchange mode).
    authorize: Vec<Duration>,
    errors: BTreeMap<String, u64>,
    started: Option<Instant>,
    ended: Option<Instant>,
    /// The slowest request, failed ones included.
    slowest: Duration,
    /// Unix times (seconds) of the first and the last error.
    first_error: Option<f64>,
    last_error: Option<f64>,
}

impl Tally {
    fn error(&mut self, kind: String) {
        *self.errors.entry(kind).or_default() += 1;
        let now = unix_now();
        self.first_error.get_or_insert(now);
        self.last_error = Some(now);
    }
}

/// Now as Unix seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The error kind of a refused request: its status, marked `non-json` for a 5xx whose body
/// is not an OAuth JSON error (RFC 6749 §5.2).
fn status_kind(status: reqwest::StatusCode, body: &str) -> String {
    let json_error = serde_json::from_str::<Value>(body)
        .ok()
        .is_some_and(|v| v["error"].is_string());
    if status.is_server_error() && !json_error {
        format!("{} non-json", status.as_u16())
    } else {
        status.as_u16().to_string()
    }
}

/// The error kind of a transport failure.
fn transport_kind(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else {
        "transport".into()
    }
}

/// Appends `token` to a worker's file of received refresh tokens.
fn save_token(file: Option<&mut std::fs::File>, token: &str) -> Result<()> {
    use std::io::Write;
    if let Some(f) = file {
        f.write_all(format!("{token}\n").as_bytes())?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    let mut http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(args.concurrency);
    if let Some(t) = args.request_timeout {
        http = http.timeout(t);
    }
    let http = http.build()?;
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
    let session = match args.mode {
        Mode::CodeExchange | Mode::Refresh => Some(sign_in(&args, &http).await?),
        _ => None,
    };
    let shared = Arc::new(Shared {
        tokens,
        next: AtomicUsize::new(0),
        reported: AtomicBool::new(false),
        exhausted: AtomicBool::new(false),
        session,
        start: tokio::sync::Barrier::new(args.concurrency),
    });
    let mut workers = Vec::new();
    for index in 0..args.concurrency {
        let (args, http, shared) = (args.clone(), http.clone(), shared.clone());
        workers.push(tokio::spawn(async move {
            worker(&args, &http, &shared, index).await
        }));
    }
    let mut all = Tally::default();
    for w in workers {
        let t = w.await??;
        all.latencies.extend(t.latencies);
        all.authorize.extend(t.authorize);
        all.slowest = all.slowest.max(t.slowest);
        all.first_error = match (all.first_error, t.first_error) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.last_error = match (all.last_error, t.last_error) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (kind, n) in t.errors {
            *all.errors.entry(kind).or_default() += n;
        }
        all.started = match (all.started, t.started) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.ended = match (all.ended, t.ended) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let secs = match (all.started, all.ended) {
        (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
        _ => args.duration.as_secs_f64(),
    }
    .max(1e-9);
    let errors: u64 = all.errors.values().sum();
    let mut out = json!({
        "mode": format!("{:?}", args.mode),
        "concurrency": args.concurrency,
        "seconds": (secs * 1000.0).round() / 1000.0,
        "ok": all.latencies.len(),
        "errors": errors,
        "error_kinds": all.errors,
        "per_second": (all.latencies.len() as f64 / secs).round(),
        "p50_ms": percentile(&mut all.latencies, 0.50),
        "p99_ms": percentile(&mut all.latencies, 0.99),
        "max_ms": (all.slowest.as_secs_f64() * 100_000.0).round() / 100.0,
        "first_error_at": all.first_error,
        "last_error_at": all.last_error,
    });
    if args.mode == Mode::CodeExchange {
        out["authorize_p50_ms"] = percentile(&mut all.authorize, 0.50).into();
        out["authorize_p99_ms"] = percentile(&mut all.authorize, 0.99).into();
    }
    if args.distinct {
        out["exhausted"] = shared.exhausted.load(Ordering::Relaxed).into();
    }
    println!("{out}");
    Ok(())
}

/// The `p` quantile of `latencies` in milliseconds, rounded to 0.01.
fn percentile(latencies: &mut [Duration], p: f64) -> f64 {
    latencies.sort_unstable();
    let ms = latencies
        .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
        .map_or(0.0, |d: &Duration| d.as_secs_f64() * 1000.0);
    (ms * 100.0).round() / 100.0
}

/// Runs one worker: setup, then (once every worker is set up) requests until the duration
/// is over.
async fn worker(
    args: &Args,
    http: &reqwest::Client,
    shared: &Shared,
    index: usize,
) -> Result<Tally> {
    let token_url = args.url(&args.token_path);
    let introspect_url = args.url(&args.introspect_path);
    let healthz_url = args.url("/healthz");
    let verify_url = args.url("/verify");
    let get_url = args.url(args.path.as_deref().unwrap_or("/"));
    let revoke_url = args.url("/api/v2/auth/revoke");
    if args.mode == Mode::Get && args.path.is_none() {
        bail!("--path is required");
    }
    let mut saved = match (&args.save_tokens, args.mode) {
        (Some(dir), Mode::Refresh) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("worker-{index}.tokens")))?,
        ),
        (Some(_), _) => bail!("--save-tokens is for refresh mode"),
        _ => None,
    };
    let mut refresh = match args.mode {
        Mode::Refresh => {
            let cookie = shared.session.as_deref().context("no session")?;
            let (code, verifier) = match authorize(args, http, cookie).await? {
                Ok(pair) => pair,
                Err(refusal) => bail!("authorize failed: {refusal}"),
            };
            let response = exchange(args, http, &code, &verifier).await?;
            let status = response.status();
            let body: Value = response.json().await?;
            let token = body["refresh_token"].as_str().with_context(|| {
                format!("the code exchange returned no refresh token ({status}): {body}")
            })?;
            save_token(saved.as_mut(), token)?;
            Some(token.to_owned())
        }
        _ => None,
    };
    shared.start.wait().await;
    let mut tally = Tally {
        started: Some(Instant::now()),
        ..Tally::default()
    };
    let deadline = Instant::now() + args.duration;
    while Instant::now() < deadline {
        let started = Instant::now();
        let request = match args.mode {
            Mode::ClientCredentials => http
                .post(&token_url)
                .basic_auth(&args.client_id, args.client_secret.as_deref())
                .form(&args.client_credentials_form()),
            Mode::CodeExchange => {
                let cookie = shared.session.as_deref().context("no session")?;
                let (code, verifier) = match authorize(args, http, cookie).await {
                    Ok(Ok(pair)) => pair,
                    Ok(Err(refusal)) => {
                        shared.report(&format!("authorize: {refusal}"));
                        tally.error(format!(
                            "authorize {}",
                            refusal.split(':').next().unwrap_or("")
                        ));
                        tally.slowest = tally.slowest.max(started.elapsed());
                        continue;
                    }
                    Err(e) => {
                        shared.report(&format!("authorize: {e}"));
                        tally.error("authorize transport".into());
                        tally.slowest = tally.slowest.max(started.elapsed());
                        continue;
                    }
                };
                tally.authorize.push(started.elapsed());
                let exchanged = Instant::now();
                match exchange(args, http, &code, &verifier).await {
                    Ok(r) if r.status().is_success() => {
                        r.bytes().await?;
                        tally.latencies.push(exchanged.elapsed());
                    }
                    Ok(r) => {
                        let status = r.status();
                        shared.report(&format!("exchange: {status} {}", r.text().await?));
                        tally.error(format!("exchange {}", status.as_u16()));
                    }
                    Err(e) => {
                        shared.report(&format!("exchange: {e}"));
                        tally.error("exchange transport".into());
                    }
                }
                tally.slowest = tally.slowest.max(started.elapsed());
                continue;
            }
            Mode::Refresh => {
                let rt = refresh.as_deref().context("no refresh token")?;
                http.post(&token_url).form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", args.client_id.as_str()),
                    ("refresh_token", rt),
                ])
            }
            Mode::Revoke => {
                match revoke_round(args, http, &token_url, &revoke_url, &introspect_url).await {
                    Ok(None) => tally.latencies.push(started.elapsed()),
                    Ok(Some(kind)) => {
                        shared.report(&kind);
                        tally.error(kind.split(':').next().unwrap_or("").to_owned());
                    }
                    Err(e) => {
                        let kind = e
                            .downcast_ref::<reqwest::Error>()
                            .map_or("transport".into(), transport_kind);
                        shared.report(&format!("revoke round: {e:#}"));
                        tally.error(kind);
                    }
                }
                tally.slowest = tally.slowest.max(started.elapsed());
                continue;
            }
            Mode::Introspect => {
                let Some(token) = shared.token(args, index)? else {
                    break;
                };
                http.post(&introspect_url)
                    .basic_auth(&args.client_id, args.client_secret.as_deref())
                    .form(&[("token", token)])
            }
            Mode::Verify => {
                let Some(token) = shared.token(args, index)? else {
                    break;
                };
                http.get(&verify_url).bearer_auth(token)
            }
            Mode::Healthz => http.get(&healthz_url),
            Mode::Get => http.get(&get_url),
            Mode::Mint => bail!("mint is not a load"),
        };
        let sent = request.send().await;
        tally.slowest = tally.slowest.max(started.elapsed());
        match sent {
            Ok(r) if args.mode == Mode::Verify && r.status() != reqwest::StatusCode::OK => {
                let challenge = r
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                shared.report(&format!("verify refused with {}: {challenge}", r.status()));
                tally.error(r.status().as_u16().to_string());
            }
            Ok(r) if r.status().is_success() => {
                match args.mode {
                    Mode::Refresh => {
                        let body: Value = r.json().await?;
                        let next = body["refresh_token"].as_str().context("no refresh_token")?;
                        save_token(saved.as_mut(), next)?;
                        refresh = Some(next.to_owned());
                    }
                    Mode::Introspect => {
                        let body: Value = r.json().await?;
                        if body["active"] != true {
                            shared.report(&format!("a token was not active: {body}"));
                            tally.error("inactive".into());
                            continue;
                        }
                    }
                    _ => {
                        r.bytes().await?;
                    }
                }
                tally.latencies.push(started.elapsed());
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if args.mode == Mode::Refresh && !args.retry_status.contains(&status.as_u16()) {
                    // The chain is broken: this worker cannot go on.
                    bail!("refresh failed with {status}: {body}");
                }
                shared.report(&format!("{status}: {body}"));
                tally.error(status_kind(status, &body));
            }
            Err(e) => {
                shared.report(&format!("transport: {e}"));
                tally.error(transport_kind(&e));
                if saved.is_some() {
                    // The server is gone: the fault script restarts it and presents the
                    // token this worker saved last.
                    break;
                }
            }
        }
    }
    tally.ended = Some(Instant::now());
    Ok(tally)
}

/// One revoke-mode iteration: a client-credentials token, its revocation, and its
/// introspection. `Some(kind: detail)` names what went wrong.
async fn revoke_round(
    args: &Args,
    http: &reqwest::Client,
    token_url: &str,
    revoke_url: &str,
    introspect_url: &str,
) -> Result<Option<String>> {
    let secret = args.client_secret.as_deref();
    let r = http
        .post(token_url)
        .basic_auth(&args.client_id, secret)
        .form(&args.client_credentials_form())
        .send()
        .await?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        return Ok(Some(format!(
            "token {}: {body}",
            status_kind(status, &body)
        )));
    }
    let parsed: Value = serde_json::from_str(&body)?;
    let token = parsed["access_token"].as_str().context("no access_token")?;
    let r = http
        .post(revoke_url)
        .basic_auth(&args.client_id, secret)
        .form(&[("token", token)])
        .send()
        .await?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        return Ok(Some(format!(
            "revoke {}: {body}",
            status_kind(status, &body)
        )));
    }
    let r = http
        .post(introspect_url)
        .basic_auth(&args.client_id, secret)
        .form(&[("token", token)])
        .send()
        .await?;
    let status = r.status();
    let body = r.text().await?;
    if !status.is_success() {
        return Ok(Some(format!(
            "introspect {}: {body}",
            status_kind(status, &body)
        )));
    }
    let parsed: Value = serde_json::from_str(&body)?;
    if parsed["active"] != false {
        return Ok(Some(format!("revoked active: {body}")));
    }
    Ok(None)
}

/// Writes `--count` fresh client-credentials tokens to `--out`, one per line.
async fn mint(args: &Args, http: &reqwest::Client) -> Result<()> {
    let out = args.out.as_ref().context("--out is required")?;
    let token_url = args.url(&args.token_path);
    let form: Vec<(String, String)> = args
        .client_credentials_form()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    let per_worker = args.count.div_ceil(args.concurrency.max(1));
    for _ in 0..args.concurrency.max(1) {
        let (http, url, form) = (http.clone(), token_url.clone(), form.clone());
        let (id, secret) = (args.client_id.clone(), args.client_secret.clone());
        tasks.spawn(async move {
            let mut tokens = Vec::with_capacity(per_worker);
            for _ in 0..per_worker {
                let response = http
                    .post(&url)
                    .basic_auth(&id, secret.as_deref())
                    .form(&form)
                    .send()
                    .await?;
                let status = response.status();
                let body: Value = response.json().await?;
                let token = body["access_token"]
                    .as_str()
                    .with_context(|| format!("no access_token ({status}): {body}"))?;
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

/// A fresh PKCE pair: (verifier, S256 challenge).
fn pkce() -> (String, String) {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let verifier = URL_SAFE_NO_PAD.encode(Sha256::digest(format!(
        "{n} {:?} {}",
        Instant::now(),
        std::process::id()
    )));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The authorization request's URL for a PKCE challenge.
fn authorize_url(args: &Args, challenge: &str) -> Result<url::Url> {
    let mut url = url::Url::parse(&args.url(&args.authorize_path))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &args.client_id)
        .append_pair("redirect_uri", &args.redirect_uri)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url)
}

/// `GET /authorize` with a signed-in session: the code and its PKCE verifier, or (inner
/// `Err`) what came back instead of a redirect (302 or 303) with a code, as "status: detail".
async fn authorize(
    args: &Args,
    http: &reqwest::Client,
    cookie: &str,
) -> Result<std::result::Result<(String, String), String>> {
    let (verifier, challenge) = pkce();
    let url = authorize_url(args, &challenge)?;
    let response = http
        .get(url.as_str())
        .header("cookie", cookie)
        .send()
        .await?;
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    response.bytes().await?;
    let code = location.as_deref().and_then(|l| {
        url::Url::parse(l)
            .ok()?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
    });
    Ok(match code {
        Some(code) if status.is_redirection() => Ok((code, verifier)),
        _ => Err(format!(
            "{}: no redirect with a code (location {location:?})",
            status.as_u16()
        )),
    })
}

/// The code exchange at the token endpoint.
async fn exchange(
    args: &Args,
    http: &reqwest::Client,
    code: &str,
    verifier: &str,
) -> reqwest::Result<reqwest::Response> {
    http.post(args.url(&args.token_path))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", args.client_id.as_str()),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", args.redirect_uri.as_str()),
        ])
        .send()
        .await
}

/// Signs the user in once through the login form: the `Cookie` header of the session. The
/// client must be first-party (no consent page).
async fn sign_in(args: &Args, http: &reqwest::Client) -> Result<String> {
    let password = args.password.as_deref().context("--password is required")?;
    let (_, challenge) = pkce();
    let url = authorize_url(args, &challenge)?;
    let page = http.get(url.as_str()).send().await?;
    let csrf_cookie = page
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
        .post(args.url(&args.authorize_path))
        .header("cookie", csrf_cookie)
        .form(&form)
        .send()
        .await?;
    let status = posted.status();
    let cookies: Vec<String> = posted
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter(|pair| pair.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .map(str::to_owned)
        .collect();
    if !status.is_redirection() || cookies.is_empty() {
        bail!(
            "sign-in failed ({status}, no session cookie): {}",
            posted
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect::<String>()
        );
    }
    Ok(cookies.join("; "))
}
