//! `tessera serve`: wire configuration to the store, keys and HTTP server, then run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use metrics_exporter_prometheus::PrometheusBuilder;
use tessera_cache::{LocalCache, RedisBus, RedisCache, RedisLink, RevocationFollower, TieredCache};
use tessera_core::AuthorizationServer;
use tessera_core::policy::Policy;
use tessera_core::time::SystemClock;
use tessera_server::{AppState, HealthCheck};
use tessera_store::key_material::{ScheduledKeyRing, Tick};
use tessera_store::{Database, OsRandom};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, ServeArgs};
use crate::{demo, janitor, keys, storage};

/// How often Redis is pinged when nothing else uses it, so health stays current.
const REDIS_WATCH: Duration = Duration::from_secs(1);

/// Ready when the store answers; Redis is optional (without it the node is slower, not
/// wrong), so its absence is reported, not failed.
struct Health {
    store: Arc<dyn Database>,
    redis: Option<RedisLink>,
}

#[async_trait]
impl HealthCheck for Health {
    async fn ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }

    async fn degraded(&self) -> Option<String> {
        match &self.redis {
            Some(redis) if !redis.is_up() => Some("redis unavailable".to_owned()),
            _ => None,
        }
    }
}

/// Installs the log subscriber (stderr, text or JSON, filtered by `TESSERA_LOG`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Checks the settings before anything binds a port.
fn check(args: &ServeArgs) -> Result<()> {
    let within = |d: Duration, min: u64, max: u64| (min..=max).contains(&d.as_secs());
    if !within(args.keys.access_token_ttl, 60, 86_400) {
        bail!("TESSERA_ACCESS_TOKEN_TTL / --access-token-ttl must be between 1m and 24h");
    }
    if !within(args.code_ttl, 10, 600) {
        bail!("TESSERA_CODE_TTL / --code-ttl must be between 10s and 10m (RFC 6749 §4.1.2)");
    }
    if !within(args.session_ttl, 60, 30 * 86_400) {
        bail!("TESSERA_SESSION_TTL / --session-ttl must be between 1m and 30d");
    }
    if !within(args.refresh_token_ttl, 3600, 365 * 86_400) {
        bail!("TESSERA_REFRESH_TOKEN_TTL / --refresh-token-ttl must be between 1h and 365d");
    }
    if args.refresh_token_max_lifetime < args.refresh_token_ttl
        || args.refresh_token_max_lifetime.as_secs() > 3 * 365 * 86_400
    {
        bail!(
            "TESSERA_REFRESH_TOKEN_MAX_LIFETIME / --refresh-token-max-lifetime must be at least \
             the refresh token TTL and at most 3 years"
        );
    }
    if args.refresh_grace.as_secs() > 300 {
        bail!("TESSERA_REFRESH_GRACE / --refresh-grace must be at most 5m");
    }
    if args.validation_cache_ttl.as_secs() > 3600 {
        bail!("TESSERA_VALIDATION_CACHE_TTL / --validation-cache-ttl must be at most 1h");
    }
    if args.revocation_poll_interval < Duration::from_millis(10)
        || args.revocation_poll_interval > Duration::from_secs(1)
    {
        bail!(
            "TESSERA_REVOCATION_POLL_INTERVAL / --revocation-poll-interval must be between 10ms \
             and 1s (a revoked token must be refused everywhere within one second)"
        );
    }
    if args.keys.jwks_max_age.as_secs() > 86_400 {
        bail!("TESSERA_JWKS_MAX_AGE / --jwks-max-age must be at most 24h");
    }
    args.redis.check().map_err(anyhow::Error::msg)?;
    keys::policy(&args.keys)?;
    keys::kind(&args.keys)?;
    if args.key_refresh_interval < Duration::from_secs(1) {
        bail!("TESSERA_KEY_REFRESH_INTERVAL / --key-refresh-interval must be at least 1s");
    }
    Ok(())
}

/// The issuer: as configured, or derived from the bound address.
fn issuer(args: &ServeArgs, bound: std::net::SocketAddr) -> Result<String> {
    let issuer = match &args.issuer {
        Some(i) => i.trim_end_matches('/').to_owned(),
        None if bound.ip().is_unspecified() => format!("http://127.0.0.1:{}", bound.port()),
        None => format!("http://{bound}"),
    };
    // RFC 8414 §2: an https URL with no query or fragment (http allowed for local use).
    let url =
        url::Url::parse(&issuer).context("TESSERA_ISSUER / --issuer must be an absolute URL")?;
    if !matches!(url.scheme(), "http" | "https")
        || url.query().is_some()
        || url.fragment().is_some()
    {
        bail!("TESSERA_ISSUER / --issuer must be an http(s) URL without query or fragment");
    }
    Ok(issuer)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<()> {
    let started = Instant::now();
    init_logging(args.log_format);
    check(&args)?;
    let store = storage::open(&args.store).await?;
    let master = keys::master_key(&args.keys, &args.store)?;
    // Opens every stored key first: a wrong master key stops the start here, before any
    // key could be generated in its place.
    let (ring, tick) = ScheduledKeyRing::start(
        &*store,
        master,
        keys::kind(&args.keys)?,
        Arc::new(SystemClock),
        keys::policy(&args.keys)?,
    )
    .await
    .context(
        "cannot load the signing keys (is TESSERA_MASTER_KEY the one they were sealed with?)",
    )?;
    log_tick(&tick);
    let ring = Arc::new(ring);

    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    let mut policy = Policy::new(issuer(&args, bound)?);
    policy.access_token_ttl = args.keys.access_token_ttl;
    policy.code_ttl = args.code_ttl;
    policy.session_ttl = args.session_ttl;
    policy.refresh_token_ttl = args.refresh_token_ttl;
    policy.refresh_token_max_lifetime = args.refresh_token_max_lifetime;
    policy.refresh_grace = args.refresh_grace;
    policy.validation_cache_ttl = args.validation_cache_ttl;
    let issuer = policy.issuer.clone();

    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let mut ports = tessera_store::ports(
        store.clone(),
        ring.clone(),
        Arc::new(SystemClock),
        Arc::new(OsRandom::default()),
    );
    // Redis is prepared, not connected: a node starts with Redis down and picks it up when
    // it comes (the store stays the truth; Redis only saves work and wakes other nodes).
    let redis = match args.redis.options() {
        Some(options) => {
            let link = RedisLink::open(&options).context("TESSERA_REDIS_URL / --redis-url")?;
            link.watch(REDIS_WATCH);
            Some(link)
        }
        None => None,
    };
    let cache = Arc::new(TieredCache::new(
        LocalCache::new(args.validation_cache_capacity, args.validation_cache_ttl),
        redis
            .as_ref()
            .map(|link| RedisCache::new(link.clone(), args.validation_cache_ttl)),
    ));
    let (follower, _follow) = RevocationFollower::start(
        ports.revocations.clone(),
        cache.clone(),
        args.revocation_poll_interval,
        |n| metrics::counter!("tessera_revocations_received_total").increment(n),
    )
    .await
    .context("cannot read the revocation list")?;
    ports.cache = cache;
    // A key operation elsewhere (`tessera keys revoke` on another host) wakes the key ring
    // through the bus at once; without Redis it waits for the next refresh.
    let key_wake = Arc::new(tokio::sync::Notify::new());
    ports.on_revocation = match &redis {
        Some(link) => {
            let wake = key_wake.clone();
            let bus = RedisBus::new(link.clone(), follower)
                .with_hook(Arc::new(move || wake.notify_one()));
            bus.subscribe();
            Arc::new(bus)
        }
        None => Arc::new(follower),
    };
    if !args.janitor_interval.is_zero() {
        let (store, redis, interval) = (store.clone(), redis.clone(), args.janitor_interval);
        tokio::spawn(async move { janitor::run_every(&*store, redis.as_ref(), interval).await });
    }
    let server = Arc::new(AuthorizationServer::new(ports, policy));
    let health = Health {
        store: store.clone(),
        redis: redis.clone(),
    };
    let mut state = AppState::new(server.clone(), Arc::new(health));
    state.jwks_max_age = args.keys.jwks_max_age;
    {
        // Every node takes due schedule steps (the store lets one win each) and reloads
        // what the others did.
        let (store, ring, every) = (store.clone(), ring.clone(), args.key_refresh_interval);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = key_wake.notified() => {}
                }
                match ring.tick(&*store).await {
                    Ok(tick) => log_tick(&tick),
                    Err(e) => tracing::error!(error = %e, "key schedule step failed; will retry"),
                }
            }
        });
    }
    state.metrics = Some(metrics);
    let demo = match args.demo {
        true => Some(demo::prepare(&server, &issuer).await?),
        false => None,
    };
    state.demo = demo.as_ref().map(|d| Arc::new(d.info.clone()));
    let router = tessera_server::app(state.clone());
    tracing::info!(
        %issuer,
        listen = %bound,
        ready_ms = started.elapsed().as_millis() as u64,
        "tessera is ready"
    );
    if let Some(setup) = &demo {
        demo::print(setup);
    }
    tessera_server::serve(listener, router, shutdown_signal())
        .await
        .context("server failed")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn log_tick(tick: &Tick) {
    for kid in &tick.generated {
        tracing::info!(%kid, "generated a signing key (published before it signs)");
    }
    for kid in &tick.deleted {
        tracing::info!(%kid, "removed a signing key no token needs any more");
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
