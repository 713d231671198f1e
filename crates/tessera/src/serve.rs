//! `tessera serve`: wire configuration to the store, keys and HTTP server, then run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use metrics_exporter_prometheus::PrometheusBuilder;
use tessera_cache::{
    CachingClientStore, LocalCache, RedisBus, RedisCache, RedisLink, RevocationFollower,
    TieredCache,
};
use tessera_core::AuthorizationServer;
use tessera_core::audit;
use tessera_core::consent::ScopeDescriptions;
use tessera_core::login_throttle::ThrottleSettings;
use tessera_core::policy::Policy;
use tessera_core::time::SystemClock;
use tessera_server::{AppState, HealthCheck};
use tessera_store::key_material::{ScheduledKeyRing, Tick};
use tessera_store::{Database, OsRandom};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, ServeArgs};
use crate::settings::Setting;
use crate::{demo, janitor, keys, reload, storage};

/// The configuration file named by the settings, if any.
fn config_file(settings: &[Setting]) -> Option<std::path::PathBuf> {
    settings
        .iter()
        .find(|s| s.key == "config")
        .and_then(|s| s.value.clone())
        .map(std::path::PathBuf::from)
}

/// The longest validation-cache TTL the settings allow (a reload may raise it up to this).
const MAX_VALIDATION_CACHE_TTL: Duration = Duration::from_secs(3600);

/// Most clients the client cache holds (a bound on memory, not on correctness: unknown ids
/// are never cached, and a client that does not fit is read from the store each time).
const CLIENT_CACHE_CAPACITY: u64 = 10_000;

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

/// Changes the log filter of a running process (a configuration reload).
pub type LogHandle = tracing_subscriber::reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// The log filter of commands without a `--log-level`: `TESSERA_LOG`, or the default.
pub fn env_log_filter() -> String {
    std::env::var("TESSERA_LOG").unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".to_owned())
}

/// Installs the log subscriber (stderr, text or JSON) with `filter` (a level or
/// `EnvFilter` directives); an invalid filter falls back to the default.
pub fn init_logging(format: LogFormat, filter: &str) -> LogHandle {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_new(filter)
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let output = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour for a terminal only: journald and log files get plain text.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
    handle
}

/// The issuer: as configured, or derived from the bound address.
fn issuer(args: &ServeArgs, bound: std::net::SocketAddr) -> Result<String> {
    let issuer = match &args.issuer {
        Some(i) => i.trim_end_matches('/').to_owned(),
        None if bound.ip().is_unspecified() => format!("http://127.0.0.1:{}", bound.port()),
        None => format!("http://{bound}"),
    };
    crate::config_cmd::check_issuer(&issuer, args.allow_http_issuer)
        .map_err(|problem| anyhow::anyhow!("issuer {issuer}: {problem}"))?;
    Ok(issuer)
}

/// The policy the flows apply, from the settings (the issuer is fixed at start).
pub fn policy(args: &ServeArgs, issuer: String) -> Policy {
    let mut policy = Policy::new(issuer);
    policy.access_token_ttl = args.keys.access_token_ttl;
    policy.code_ttl = args.code_ttl;
    policy.session_ttl = args.session_ttl;
    policy.refresh_token_ttl = args.refresh_token_ttl;
    policy.refresh_token_max_lifetime = args.refresh_token_max_lifetime;
    policy.refresh_grace = args.refresh_grace;
    policy.validation_cache_ttl = args.validation_cache_ttl;
    // Every entry passed the flag's parser, which applies the same rules.
    policy.scope_descriptions =
        ScopeDescriptions::parse(&args.scope_descriptions).unwrap_or_default();
    policy.login_throttle = ThrottleSettings {
        max_failures: args.login_max_failures,
        ip_max_failures: args.login_ip_max_failures,
        lockout: args.login_lockout,
        backoff: args.login_backoff,
    };
    policy.token_rate_limit = args.token_rate_limit;
    policy.trusted_proxies = args.trusted_proxies.clone();
    policy
}

/// How the server was started, for reloading its configuration.
pub struct Startup {
    /// The command line, re-resolved on each reload (the environment is the process's).
    pub argv: Vec<std::ffi::OsString>,
    /// The settings in force at start.
    pub settings: Vec<Setting>,
    /// Warnings found by the checks at start.
    pub warnings: Vec<String>,
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs, startup: Startup) -> Result<()> {
    let started = Instant::now();
    let log = init_logging(args.log_format, &args.log_level);
    for warning in &startup.warnings {
        tracing::warn!("configuration: {warning}");
    }
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
    let policy = policy(&args, issuer(&args, bound)?);
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
    // Built for the longest validation-cache TTL a reload may set (entries get the TTL in
    // force when they are written), so revocation markers always outlive entries.
    let cache = Arc::new(TieredCache::new(
        LocalCache::new(args.validation_cache_capacity, MAX_VALIDATION_CACHE_TTL),
        redis
            .as_ref()
            .map(|link| RedisCache::new(link.clone(), MAX_VALIDATION_CACHE_TTL)),
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
    // Client authentication (token, introspection, revocation) reads the client on every
    // request; changes made through this node's ports evict at once, others show within the TTL.
    if !args.client_cache_ttl.is_zero() {
        ports.clients = Arc::new(CachingClientStore::new(
            ports.clients.clone(),
            CLIENT_CACHE_CAPACITY,
            args.client_cache_ttl,
        ));
    }
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
    let watched = args
        .watch_config
        .then(|| config_file(&startup.settings))
        .flatten();
    tokio::spawn(reload::run(
        reload::Reloader {
            argv: startup.argv,
            running: startup.settings,
            issuer: issuer.clone(),
            server: server.clone(),
            log,
        },
        watched,
    ));
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
        audit::key_rotated(kid);
    }
    for kid in &tick.deleted {
        tracing::info!(%kid, "removed a signing key no token needs any more");
        audit::key_removed(kid);
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
