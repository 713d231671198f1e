//! `tessera guard`: the forward-auth service in front of other people's APIs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tessera_guard::discovery::{self, DiscoveryError, IssuerMetadata};
use tessera_guard::forward_auth::{self, ScopeRules};
use tessera_guard::revocation_feed::{self, FeedConfig};
use tessera_guard::{Guard, GuardConfig, IntrospectionConfig};
use tokio::net::TcpListener;

use crate::cli::{GuardArgs, GuardMode, LogFormat};
use crate::serve;

/// Runs the forward-auth service until SIGINT or SIGTERM.
pub async fn run(args: GuardArgs) -> Result<()> {
    serve::init_logging(LogFormat::Text, &serve::env_log_filter());
    let issuer = args.issuer.trim_end_matches('/').to_owned();
    let config = guard_config(&args, &issuer).await?;
    let guard = Guard::new(config).context("guard settings")?;
    let rules = match &args.rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            ScopeRules::parse(&text).with_context(|| path.display().to_string())?
        }
        None => ScopeRules::default(),
    };
    let _feed = match (&args.client_id, &args.client_secret) {
        (Some(id), Some(secret)) => Some(
            revocation_feed::follow(guard.clone(), FeedConfig::new(&issuer, id, secret))
                .await
                .context("cannot follow the issuer's revocation feed")?,
        ),
        _ => {
            tracing::warn!(
                "no TESSERA_GUARD_CLIENT_ID: revoked tokens are accepted until they expire"
            );
            None
        }
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, %issuer, mode = ?args.mode, "tessera guard is ready");
    tessera_server::serve(
        listener,
        forward_auth::router(guard, rules),
        serve::shutdown_signal(),
    )
    .await
    .context("guard failed")
}

/// The guard's configuration from the arguments, reading the issuer's metadata for the
/// endpoints not given explicitly.
async fn guard_config(args: &GuardArgs, issuer: &str) -> Result<GuardConfig> {
    let needs_metadata = match args.mode {
        GuardMode::Jwt => args.jwks_url.is_none(),
        GuardMode::Introspection => args.introspection_url.is_none(),
    };
    let metadata = if needs_metadata {
        Some(discover(issuer, args.discovery_timeout).await?)
    } else {
        None
    };
    let endpoint = |given: &Option<String>, found: Option<&String>| {
        given.clone().or_else(|| found.cloned()).unwrap_or_default()
    };
    let jwks_url = endpoint(&args.jwks_url, metadata.as_ref().map(|m| &m.jwks_uri));
    let mut config = GuardConfig::new(jwks_url, issuer, args.audience.clone());
    if args.mode == GuardMode::Introspection {
        let found = metadata
            .as_ref()
            .and_then(|m| m.introspection_endpoint.as_ref());
        let url = endpoint(&args.introspection_url, found);
        if url.is_empty() {
            bail!(
                "the issuer advertises no introspection endpoint; set TESSERA_GUARD_INTROSPECTION_URL"
            );
        }
        let (Some(client_id), Some(client_secret)) = (&args.client_id, &args.client_secret) else {
            bail!(
                "introspection mode needs TESSERA_GUARD_CLIENT_ID and TESSERA_GUARD_CLIENT_SECRET"
            );
        };
        config.introspection = Some(IntrospectionConfig {
            endpoint: url,
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
        });
    }
    config.algorithms = args.algorithms.clone();
    config.cache_ttl = args.cache_ttl;
    config.cache_capacity = args.cache_capacity;
    config.leeway = args.leeway;
    config.jwks_min_refresh = args.jwks_min_refresh;
    config.stale_limit = args.stale_limit;
    config.allow_query_token = args.allow_query_token;
    Ok(config)
}

/// Reads the issuer's metadata, retrying while it is unreachable (the guard may well start
/// before the issuer) until `timeout`; a document that is wrong is not retried.
async fn discover(issuer: &str, timeout: Duration) -> Result<IssuerMetadata> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(200);
    loop {
        match discovery::discover(issuer, Duration::from_secs(5)).await {
            Ok(metadata) => return Ok(metadata),
            Err(error @ DiscoveryError::Unreachable(..)) if Instant::now() + pause < deadline => {
                tracing::warn!(%error, "issuer metadata unavailable; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(error) => {
                return Err(error).context(format!("cannot read the metadata of issuer {issuer}"));
            }
        }
    }
}
